//! The training engine shared by every task: AdamW (decoupled weight decay, PyTorch's
//! defaults) with a linear warm-up and cosine schedule stepped per iteration (burn's optimizer
//! and schedulers), a run directory with a CSV metrics log, one checkpoint per epoch written
//! atomically (model, optimiser, scheduler, epoch, step and seed in one file), and exact resume
//! after a kill at any moment: the data order and augmentation of an epoch depend only on the
//! seed and the epoch, so a resumed run computes what the uninterrupted run would have.
//!
//! A task ([`TrainTask`]) supplies batches, the loss and the validation metrics;
//! [`classification`], [`segmentation`] and [`sr`] are the tasks.
//!
//! ```no_run
//! use gaze::prelude::*;
//! use gaze::train::{classification::ClassificationTask, fit, TrainConfig};
//! use std::path::Path;
//!
//! let device = Device::flex().autodiff();
//! let options = ModelOptions::new().num_classes(10).in_chans(1);
//! let model = gaze::create_model_with("seresnet18", &options, &device)?;
//! let task = ClassificationTask::open(Path::new("/usr/share/datasets/fashion-mnist"), &model, None)?;
//! let config = TrainConfig { epochs: 10, batch: 128, lr: 2e-3, ..TrainConfig::default() };
//! let report = fit(model, &task, &config, Path::new("runs/fmnist"), &[device], |_| {})?;
//! println!("{:?}", report.last_metrics);
//! # Ok::<(), gaze::Error>(())
//! ```

pub mod classification;
pub mod segmentation;
pub mod sr;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::lr_scheduler::cosine::CosineAnnealingLrSchedulerConfig;
use burn::lr_scheduler::linear::LinearLrSchedulerConfig;
use burn::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::lr_scheduler::sequential::SequentialLrSchedulerConfig;
use burn::lr_scheduler::LrSchedulerRecord;
use burn::module::{Module, ParamGroup};
use burn::optim::{AdamWConfig, GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::backbones::{create_model_with, Model, ModelOptions};
use crate::Error;

/// A training batch on the training device.
pub struct Batch {
    /// Inputs `[N, C, H, W]`.
    pub x: Tensor<4>,
    /// What the model should predict.
    pub target: Target,
}

/// The targets of a batch, by task.
pub enum Target {
    /// Class indices `[N]`.
    Classes(Tensor<1, Int>),
    /// HR images `[N, 3, s·H, s·W]` in [0, 1] (super-resolution).
    Image(Tensor<4>),
    /// Per-pixel targets `[N, 1, H, W]`: the class index (0/1 for a binary mask) and
    /// whether the pixel counts (its field of view), both as floats.
    Mask {
        /// Class index per pixel.
        truth: Tensor<4>,
        /// 1 where the pixel counts, 0 elsewhere.
        valid: Tensor<4>,
    },
}

impl Batch {
    /// Items in the batch.
    pub fn len(&self) -> usize {
        self.x.dims()[0]
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Loss and counts of one batch, for the epoch's running means.
pub struct StepOutput {
    /// Mean loss of the batch (on the autodiff graph).
    pub loss: Tensor<1>,
    /// Named sums to average over the epoch (e.g. `correct`), with the batch size.
    pub counts: Vec<(&'static str, f64)>,
    /// Items in the batch.
    pub items: usize,
}

/// What a task gives the engine.
pub trait TrainTask {
    /// Training items.
    fn train_len(&self) -> usize;
    /// Loads and augments the items at `indices` (augmentation drawn from `seed`). Items that
    /// cannot be read are left out and described in the second value.
    fn train_batch(
        &self,
        indices: &[usize],
        seed: u64,
        device: &Device,
    ) -> (Option<Batch>, Vec<String>);
    /// The loss of a batch.
    fn step(&self, model: &Model, batch: Batch) -> Result<StepOutput, Error>;
    /// Validation metrics `(name, value)` of the model (in eval mode, on `device`).
    fn validate(&self, model: &Model, device: &Device) -> Result<Vec<(String, f64)>, Error>;
    /// A description of the data for the model card.
    fn describe(&self) -> serde_json::Value;
}

/// Hyper-parameters of a run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrainConfig {
    /// Epochs.
    pub epochs: usize,
    /// Batch size.
    pub batch: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Final learning rate of the cosine.
    pub min_lr: f64,
    /// Warm-up epochs (linear from `lr / steps` to `lr`).
    pub warmup_epochs: f64,
    /// Decoupled weight decay (not applied to biases and norm parameters).
    pub weight_decay: f64,
    /// Seed of the data order, augmentation and dropout.
    pub seed: u64,
    /// Continue from the run directory's checkpoint.
    pub resume: bool,
    /// Stop after this many optimiser steps (tests; `None`: the whole run).
    pub max_steps: Option<u64>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 10,
            batch: 64,
            lr: 1e-3,
            min_lr: 1e-6,
            warmup_epochs: 1.0,
            weight_decay: 0.05,
            seed: 0,
            resume: false,
            max_steps: None,
        }
    }
}

/// Progress events.
#[derive(Debug, Clone)]
pub enum Event {
    /// Resumed from a checkpoint after `epoch`.
    Resumed {
        /// Last complete epoch.
        epoch: usize,
        /// Optimiser steps taken.
        step: u64,
    },
    /// An epoch starts.
    EpochStart {
        /// 1-based epoch.
        epoch: usize,
        /// Steps in it.
        steps: usize,
    },
    /// A step finished.
    Step {
        /// Step within the epoch (1-based).
        step: usize,
        /// Running mean loss of the epoch.
        loss: f64,
        /// Learning rate used.
        lr: f64,
    },
    /// An item could not be read and was skipped.
    Skipped(String),
    /// An epoch finished, with its CSV row.
    EpochEnd {
        /// 1-based epoch.
        epoch: usize,
        /// Column names and values.
        metrics: Vec<(String, f64)>,
    },
}

/// What a finished run reports.
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    /// Epochs completed.
    pub epochs: usize,
    /// Optimiser steps taken.
    pub steps: u64,
    /// Metrics of the last epoch.
    pub last_metrics: Vec<(String, f64)>,
    /// Items skipped because they could not be read.
    pub skipped: usize,
    /// The final weights (official key names).
    pub weights: PathBuf,
    /// Seconds of this invocation.
    pub seconds: f64,
}

/// What the checkpoint stores besides the records.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CheckpointMeta {
    model: String,
    num_classes: Option<usize>,
    in_chans: usize,
    /// Attention in the decoder blocks (segmentation models created with that option).
    #[serde(default)]
    decoder_attention: Option<String>,
    epoch: usize,
    step: u64,
    config: TrainConfig,
    skipped: usize,
}

const CHECKPOINT: &str = "checkpoint.gaze";
const MAGIC: &[u8; 8] = b"GAZECKP1";

/// Paths of a run directory.
pub struct RunDir(pub PathBuf);

impl RunDir {
    /// The checkpoint (replaced atomically after each epoch).
    pub fn checkpoint(&self) -> PathBuf {
        self.0.join(CHECKPOINT)
    }
    /// The per-epoch metrics log.
    pub fn metrics(&self) -> PathBuf {
        self.0.join("metrics.csv")
    }
    /// The final weights under the official key names.
    pub fn weights(&self) -> PathBuf {
        self.0.join("model.safetensors")
    }
    /// The model card.
    pub fn card(&self) -> PathBuf {
        self.0.join("model_card.json")
    }
}

fn write_checkpoint(
    path: &Path,
    meta: &CheckpointMeta,
    model: &Model,
    optim: &ModuleOptimizer,
    sched: &ModuleLrScheduler,
) -> Result<(), Error> {
    let rec =
        |e: burn::store::RecordError| Error::msg(format!("cannot serialise the checkpoint: {e:?}"));
    let meta_bytes = serde_json::to_vec(meta).map_err(|e| Error::msg(e.to_string()))?;
    let parts: [Bytes; 3] = [
        model.clone().into_record().into_bytes().map_err(rec)?,
        optim.into_bytes().map_err(rec)?,
        sched.to_record().into_bytes().map_err(rec)?,
    ];
    crate::atomic_write::write_atomically(path, |f| {
        f.write_all(MAGIC)?;
        f.write_all(&(meta_bytes.len() as u64).to_le_bytes())?;
        f.write_all(&meta_bytes)?;
        for p in &parts {
            f.write_all(&(p.len() as u64).to_le_bytes())?;
            f.write_all(p)?;
        }
        Ok(())
    })?;
    Ok(())
}

fn read_checkpoint(path: &Path) -> Result<(CheckpointMeta, [Vec<u8>; 3]), Error> {
    let bad = |why: &str| {
        Error::msg(format!(
            "'{}' is not a gaze checkpoint: {why}",
            path.display()
        ))
    };
    let bytes = std::fs::read(path)?;
    if bytes.len() < 16 || &bytes[..8] != MAGIC {
        return Err(bad("wrong header"));
    }
    let mut pos = 8;
    let take = |pos: &mut usize| -> Result<Vec<u8>, Error> {
        let len = bytes
            .get(*pos..*pos + 8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize)
            .ok_or_else(|| bad("truncated"))?;
        let part = bytes
            .get(*pos + 8..(*pos + 8).saturating_add(len))
            .ok_or_else(|| bad("truncated"))?
            .to_vec();
        *pos += 8 + len;
        Ok(part)
    };
    let meta: CheckpointMeta =
        serde_json::from_slice(&take(&mut pos)?).map_err(|e| bad(&e.to_string()))?;
    let parts = [take(&mut pos)?, take(&mut pos)?, take(&mut pos)?];
    Ok((meta, parts))
}

fn scheduler(config: &TrainConfig, steps_per_epoch: usize) -> Result<ModuleLrScheduler, Error> {
    let total = (config.epochs * steps_per_epoch).max(1);
    let warmup = ((config.warmup_epochs * steps_per_epoch as f64).round() as usize).min(total - 1);
    let min_lr = config.min_lr.min(config.lr);
    let cosine = CosineAnnealingLrSchedulerConfig::new(config.lr, (total - warmup).max(1))
        .with_min_lr(min_lr);
    let built = if warmup == 0 {
        cosine.init()
    } else {
        SequentialLrSchedulerConfig::new(
            vec![
                LinearLrSchedulerConfig::new(config.lr / warmup as f64, config.lr, warmup).into(),
                cosine.into(),
            ],
            vec![warmup],
        )
        .init()
    };
    built.map_err(|e| Error::msg(format!("learning-rate schedule: {e}")))
}

fn optimizer(config: &TrainConfig) -> ModuleOptimizer {
    AdamWConfig::new()
        .with_epsilon(1e-8)
        .with_weight_decay(config.weight_decay as f32)
        .init()
        .with_group(
            // timm's `param_groups_weight_decay`: no decay on 1-D parameters.
            ParamGroup::from_any_predicates(vec!["gamma", "beta", "bias"]),
            AdamWConfig::new()
                .with_epsilon(1e-8)
                .with_weight_decay(0.0)
                .build(),
            None,
        )
}

/// The permutation of the training items in `epoch` (1-based): a function of the seed and the
/// epoch only.
pub fn epoch_order(len: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(mix(seed, epoch as u64));
    order.shuffle(&mut rng);
    order
}

/// SplitMix64 of two values: independent seeds per (seed, epoch, step).
pub fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The split of `n` items (natural order) when a dataset has no validation folder: the last
/// tenth, rounded up, is held out; a single item trains and validates on itself.
pub(crate) fn hold_out(n: usize) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
    let held = if n >= 2 { n.div_ceil(10) } else { 0 };
    let val = if held > 0 { n - held..n } else { 0..n };
    (0..n - held, val)
}

/// Trains `model` (on the first of `devices`, all autodiff devices) on `task` in `run_dir`; with
/// several devices each batch is split between them and the gradients are summed on the first
/// (Burn's multi-device strategy, which needs no collective operations). With `config.resume`, the
/// run continues after the checkpoint's epoch (the model, optimiser, scheduler, step and seed
/// restored; rows of unfinished epochs dropped from the metrics log). Ends by saving the
/// weights under the official key names and a model card.
pub fn fit(
    model: Model,
    task: &dyn TrainTask,
    config: &TrainConfig,
    run_dir: &Path,
    devices: &[Device],
    mut on_event: impl FnMut(&Event),
) -> Result<TrainReport, Error> {
    let start = Instant::now();
    let device = devices
        .first()
        .ok_or_else(|| Error::msg("no training device"))?;
    let run = RunDir(run_dir.to_path_buf());
    std::fs::create_dir_all(run_dir)?;
    let batch = config.batch.max(1);
    let steps_per_epoch = task.train_len().div_ceil(batch);
    if steps_per_epoch == 0 {
        return Err(Error::msg("the training set is empty"));
    }
    let mut config = config.clone();
    let mut model = model;
    let mut optim = optimizer(&config);
    let mut sched = scheduler(&config, steps_per_epoch)?;
    let (mut first_epoch, mut step, mut skipped) = (1, 0u64, 0usize);
    let name = model.info().name.to_string();
    let (num_classes, in_chans) = (model.config().num_classes(), model.in_chans());
    let decoder_attention = model
        .options()
        .decoder_attention
        .map(|k| k.name().to_string());
    if config.resume && run.checkpoint().is_file() {
        let (meta, [m, o, s]) = read_checkpoint(&run.checkpoint())?;
        if meta.model != name || meta.num_classes != num_classes || meta.in_chans != in_chans {
            return Err(Error::msg(format!(
                "the checkpoint in '{}' is of {} ({} classes, {} input channels), not {name} ({} classes, {in_chans} input channels)",
                run_dir.display(),
                meta.model,
                meta.num_classes.unwrap_or(0),
                meta.in_chans,
                num_classes.unwrap_or(0)
            )));
        }
        let rec = |e: burn::store::RecordError| Error::msg(format!("corrupt checkpoint: {e:?}"));
        model = model
            .try_load_record(ModuleRecord::from_bytes(Bytes::from_bytes_vec(m)).map_err(rec)?)
            .map_err(rec)?;
        optim = optim.from_bytes(Bytes::from_bytes_vec(o)).map_err(rec)?;
        sched = sched
            .load_record(LrSchedulerRecord::from_bytes(Bytes::from_bytes_vec(s)).map_err(rec)?);
        // The run's schedule and seed are the checkpoint's. Its length cannot change: the
        // cosine was laid out over the planned steps.
        if config.epochs != meta.config.epochs {
            return Err(Error::msg(format!(
                "the run in '{}' was planned for {} epochs and its learning-rate schedule with it; it cannot be resumed for {}",
                run_dir.display(),
                meta.config.epochs,
                config.epochs
            )));
        }
        config = TrainConfig {
            resume: true,
            max_steps: config.max_steps,
            ..meta.config
        };
        first_epoch = meta.epoch + 1;
        step = meta.step;
        skipped = meta.skipped;
        truncate_metrics(&run.metrics(), meta.epoch)?;
        on_event(&Event::Resumed {
            epoch: meta.epoch,
            step,
        });
    } else if run.checkpoint().exists() {
        return Err(Error::msg(format!(
            "'{}' already holds a run; pass --resume to continue it or choose another directory",
            run_dir.display()
        )));
    } else {
        let _ = std::fs::remove_file(run.metrics());
    }
    let mut last_metrics = Vec::new();
    let mut epoch_done = first_epoch - 1;
    'epochs: for epoch in first_epoch..=config.epochs {
        device.seed(mix(config.seed, 1000 + epoch as u64));
        let order = epoch_order(task.train_len(), config.seed, epoch);
        on_event(&Event::EpochStart {
            epoch,
            steps: steps_per_epoch,
        });
        let (mut loss_sum, mut items) = (0.0f64, 0usize);
        let mut count_sums: Vec<(&'static str, f64)> = Vec::new();
        for (i, indices) in order.chunks(batch).enumerate() {
            if config.max_steps.is_some_and(|m| step >= m) {
                break 'epochs;
            }
            // Burn's multi-device strategy (gradients summed on the main device, one
            // optimiser step): each device takes a contiguous shard of the batch. An item's
            // augmentation depends on the batch seed and the item, not on the sharding.
            let batch_seed = mix(mix(config.seed, epoch as u64), i as u64);
            let shard_len = indices.len().div_ceil(devices.len());
            let mut shards = Vec::new();
            for (shard, dev) in indices.chunks(shard_len).zip(devices) {
                let (b, bad) = task.train_batch(shard, batch_seed, dev);
                for why in bad {
                    skipped += 1;
                    on_event(&Event::Skipped(why));
                }
                shards.extend(b.map(|b| (b, dev)));
            }
            let lr = sched.step();
            let total: usize = shards.iter().map(|(b, _)| b.len()).sum();
            if total == 0 {
                continue;
            }
            let single = shards.len() == 1;
            let mut accumulated = GradientsAccumulator::<Model>::new();
            for (b, dev) in shards {
                let replica = if single {
                    model.clone()
                } else {
                    model.clone().fork(dev)
                };
                let out = task.step(&replica, b)?;
                let loss_value = out.loss.clone().into_scalar::<f32>() as f64;
                if !loss_value.is_finite() {
                    return Err(Error::msg(format!(
                        "the loss became {loss_value} at epoch {epoch}, step {}; lower --lr",
                        i + 1
                    )));
                }
                // The shards' mean losses weighted by their share: the batch's mean loss.
                let loss = if single {
                    out.loss
                } else {
                    out.loss.mul_scalar(out.items as f64 / total as f64)
                };
                let grads = GradientsParams::from_grads(loss.backward(), &replica);
                accumulated.accumulate(&model, grads.to_device(device, &replica));
                loss_sum += loss_value * out.items as f64;
                items += out.items;
                for (k, v) in out.counts {
                    match count_sums.iter_mut().find(|(n, _)| *n == k) {
                        Some(slot) => slot.1 += v,
                        None => count_sums.push((k, v)),
                    }
                }
            }
            model = optim.step(lr.clone(), model, accumulated.grads());
            step += 1;
            on_event(&Event::Step {
                step: i + 1,
                loss: loss_sum / items.max(1) as f64,
                lr: lr.base(),
            });
        }
        let mut metrics = vec![
            ("epoch".to_string(), epoch as f64),
            ("step".to_string(), step as f64),
            ("train_loss".to_string(), loss_sum / items.max(1) as f64),
        ];
        for (k, v) in &count_sums {
            metrics.push((format!("train_{k}"), 100.0 * v / items.max(1) as f64));
        }
        metrics.extend(task.validate(&model.clone().valid(), &device.clone().inner())?);
        append_metrics(&run.metrics(), &metrics)?;
        write_checkpoint(
            &run.checkpoint(),
            &CheckpointMeta {
                model: name.clone(),
                num_classes,
                in_chans,
                decoder_attention: decoder_attention.clone(),
                epoch,
                step,
                config: config.clone(),
                skipped,
            },
            &model,
            &optim,
            &sched,
        )?;
        on_event(&Event::EpochEnd {
            epoch,
            metrics: metrics.clone(),
        });
        last_metrics = metrics;
        epoch_done = epoch;
    }
    let final_model = model.valid();
    final_model.save_safetensors(run.weights())?;
    let report = TrainReport {
        epochs: epoch_done,
        steps: step,
        last_metrics,
        skipped,
        weights: run.weights(),
        seconds: start.elapsed().as_secs_f64(),
    };
    let card = serde_json::json!({
        "model": name,
        "num_classes": num_classes,
        "in_chans": in_chans,
        "decoder_attention": decoder_attention,
        "data": task.describe(),
        "config": config,
        "epochs_completed": report.epochs,
        "steps": report.steps,
        "metrics": report.last_metrics.iter().map(|(k, v)| (k.clone(), serde_json::json!(*v))).collect::<serde_json::Map<_, _>>(),
        "skipped_items": report.skipped,
        "command": std::env::args().collect::<Vec<_>>().join(" "),
        "wall_seconds_this_invocation": report.seconds,
        "weights": "model.safetensors (official key names)",
    });
    crate::atomic_write::write_atomically(&run.card(), |f| {
        f.write_all(
            serde_json::to_string_pretty(&card)
                .expect("json")
                .as_bytes(),
        )
    })?;
    Ok(report)
}

/// Rebuilds a trained model from a run directory's checkpoint (for evaluation or export).
pub fn load_run_model(run_dir: &Path, device: &Device) -> Result<Model, Error> {
    let (meta, [m, _, _]) = read_checkpoint(&RunDir(run_dir.to_path_buf()).checkpoint())?;
    let mut options = ModelOptions::new().in_chans(meta.in_chans);
    if let Some(n) = meta.num_classes {
        options = options.num_classes(n);
    }
    if let Some(kind) = &meta.decoder_attention {
        options = options.decoder_attention(kind.parse().map_err(|e| Error::msg(format!("{e}")))?);
    }
    let model = create_model_with(&meta.model, &options, device)?;
    model
        .try_load_record(
            ModuleRecord::from_bytes(Bytes::from_bytes_vec(m))
                .map_err(|e| Error::msg(format!("corrupt checkpoint: {e:?}")))?,
        )
        .map_err(|e| Error::msg(format!("corrupt checkpoint: {e:?}")))
}

fn append_metrics(path: &Path, metrics: &[(String, f64)]) -> Result<(), Error> {
    let exists = path.is_file();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    if !exists {
        let header: Vec<&str> = metrics.iter().map(|(k, _)| k.as_str()).collect();
        writeln!(f, "{}", header.join(","))?;
    }
    let row: Vec<String> = metrics.iter().map(|(_, v)| format!("{v}")).collect();
    writeln!(f, "{}", row.join(","))?;
    f.sync_all()?;
    Ok(())
}

/// Drops rows of epochs after `last_epoch` (written before a kill, after the checkpoint).
fn truncate_metrics(path: &Path, last_epoch: usize) -> Result<(), Error> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let kept: Vec<&str> = text
        .lines()
        .enumerate()
        .filter(|(i, l)| {
            *i == 0
                || l.split(',')
                    .next()
                    .and_then(|e| e.parse::<f64>().ok())
                    .is_some_and(|e| e as usize <= last_epoch)
        })
        .map(|(_, l)| l)
        .collect();
    crate::atomic_write::write_atomically(path, |f| {
        f.write_all((kept.join("\n") + "\n").as_bytes())
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::hold_out;

    #[test]
    fn hold_out_keeps_the_last_tenth_rounded_up() {
        assert_eq!(hold_out(0), (0..0, 0..0));
        assert_eq!(hold_out(1), (0..1, 0..1));
        assert_eq!(hold_out(2), (0..1, 1..2));
        assert_eq!(hold_out(10), (0..9, 9..10));
        assert_eq!(hold_out(25), (0..22, 22..25));
    }
}
