//! `gaze train --task classify|segment|sr --model M --data DIR --out RUN_DIR …`: train any
//! registered classifier, segmentation or super-resolution model from scratch or fine-tune it
//! from a checkpoint;
//! `--resume RUN_DIR` continues a run after an interruption (even kill -9) from its last
//! complete epoch.

use std::path::{Path, PathBuf};

use gaze::train::classification::ClassificationTask;
use gaze::train::segmentation::SegmentationTask;
use gaze::train::sr::SrTask;
use gaze::train::{fit, Event, TrainConfig, TrainTask};
use gaze::{DeviceChoice, ModelOptions};
use kdam::{tqdm, Bar, BarExt};
use serde::{Deserialize, Serialize};

use super::CliResult;

/// Arguments of `gaze train`.
#[derive(Debug, Clone, clap::Args, Serialize, Deserialize)]
pub struct Args {
    /// What to train: classify, segment (binary masks in the DRIVE layout) or sr
    /// (super-resolution from HR images, degraded with MATLAB bicubic on loading).
    #[arg(long, default_value = "classify")]
    pub task: String,
    /// Registered model (see `gaze list`).
    #[arg(long, required_unless_present = "resume")]
    pub model: Option<String>,
    /// Data. classify: IDX files (Fashion-MNIST), an ImageFolder tree with train/ and val/, or
    /// one ImageFolder tree (split 90/10). segment: the DRIVE root (its training/ is used) or a
    /// folder with images/ and 1st_manual/ or masks/ (optional mask/ for the field of view).
    /// sr: a folder with train/ and val/ HR images, or one folder of HR images (split 90/10).
    #[arg(long, required_unless_present = "resume")]
    pub data: Option<PathBuf>,
    /// Checkpoint to fine-tune from (official or gaze-saved); the head is replaced when the class
    /// count differs, the stem adapted when the channel count does.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Classes of the head (default: the data's classes).
    #[arg(long)]
    pub num_classes: Option<usize>,
    /// Input channels (default: 1 for IDX data, else 3).
    #[arg(long)]
    pub in_chans: Option<usize>,
    /// Square image side for training and validation (default: the model's input size, or the
    /// native size of IDX images).
    #[arg(long)]
    pub image_size: Option<usize>,
    /// Epochs.
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// Batch size.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Peak learning rate (AdamW).
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Final learning rate of the cosine schedule.
    #[arg(long, default_value_t = 1e-6)]
    pub min_lr: f64,
    /// Linear warm-up, in epochs.
    #[arg(long, default_value_t = 1.0)]
    pub warmup_epochs: f64,
    /// Decoupled weight decay.
    #[arg(long, default_value_t = 0.05)]
    pub weight_decay: f64,
    /// Label smoothing.
    #[arg(long, default_value_t = 0.1)]
    pub label_smoothing: f32,
    /// Smallest area fraction of the random resized crop (timm: 0.08).
    #[arg(long, default_value_t = 0.08)]
    pub scale_min: f64,
    /// No random horizontal flips.
    #[arg(long)]
    pub no_hflip: bool,
    /// segment: attention in every decoder block of a `unet_<encoder>` model (scse as smp, or
    /// any `gaze bench-attn` kind).
    #[arg(long)]
    #[serde(default)]
    pub decoder_attention: Option<gaze::blocks::attention::AttentionKind>,
    /// Side of the random square training patches. segment: default 96 (0: whole images);
    /// sr: LR pixels (the HR patch is scale times larger), default 48.
    #[arg(long)]
    #[serde(default)]
    pub patch: Option<usize>,
    /// segment, sr: patches drawn from each training image per epoch.
    #[arg(long, default_value_t = 32)]
    #[serde(default)]
    pub patches_per_image: usize,
    /// Seed of data order, augmentation and initialisation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Run directory (metrics.csv, checkpoint, model.safetensors, model_card.json).
    #[arg(long, required_unless_present = "resume")]
    pub out: Option<PathBuf>,
    /// Continue the run in this directory (its arguments and schedule are reused).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// cpu or wgpu.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
    /// Devices for data-parallel training: each batch is split between GPUs 0..N and the
    /// gradients summed on the first (WGPU, or CUDA with the `cuda` feature).
    #[arg(long, default_value_t = 1)]
    pub devices: usize,
    /// Stop after this many optimiser steps (smoke tests).
    #[arg(long, hide = true)]
    pub max_steps: Option<u64>,
}

const ARGS_FILE: &str = "train_args.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Classify,
    Segment,
    Sr,
}

/// Runs `gaze train`.
pub fn run(args: &Args) -> CliResult {
    let args = match &args.resume {
        Some(dir) => resumed_args(args, dir)?,
        None => args.clone(),
    };
    let kind = match args.task.as_str() {
        "classify" => Kind::Classify,
        "segment" => Kind::Segment,
        "sr" => Kind::Sr,
        other => {
            return Err(format!("unknown --task {other}; use classify, segment or sr").into());
        }
    };
    let name = args.model.clone().expect("required by clap");
    let data = args.data.clone().expect("required by clap");
    let out = args.out.clone().expect("required by clap");
    let info = gaze::model_info(&name)?;
    match (kind, info.task) {
        (Kind::Classify, gaze::Task::Classification { .. })
        | (Kind::Segment, gaze::Task::Segmentation { .. })
        | (Kind::Sr, gaze::Task::SuperResolution { .. }) => {}
        _ => {
            return Err(format!(
                "{} is a {} model; --task {} needs a {}",
                info.name,
                info.task,
                args.task,
                match kind {
                    Kind::Classify => "classifier",
                    Kind::Segment => "segmentation model (e.g. attention_unet_small)",
                    Kind::Sr => "super-resolution model (e.g. pan_x4)",
                }
            )
            .into())
        }
    }
    if !data.is_dir() {
        return Err(format!("data folder '{}' does not exist", data.display()).into());
    }
    let idx = kind == Kind::Classify && gaze::data::IdxImages::is_idx_dir(&data);
    let in_chans = args.in_chans.unwrap_or(if idx { 1 } else { 3 });
    let num_classes = match (args.num_classes, kind) {
        (Some(n), _) => n,
        (None, Kind::Segment) => 1,
        (None, Kind::Sr) => 0,
        (None, Kind::Classify) => data_classes(&data, idx)?,
    };
    let devices: Vec<_> = args
        .device
        .open_many(args.devices)?
        .into_iter()
        .map(|d| d.autodiff())
        .collect();
    let device = devices[0].clone();
    device.seed(args.seed);
    let mut options = ModelOptions::new().in_chans(in_chans);
    if kind != Kind::Sr {
        options = options.num_classes(num_classes);
    }
    if let Some(kind) = args.decoder_attention {
        options = options.decoder_attention(kind);
    }
    let mut model = gaze::create_model_with(info.name, &options, &device)?;
    if let Some(w) = &args.weights {
        if args.resume.is_none() {
            let (loaded, summary) = model.load_weights_with_summary(w)?;
            eprintln!("{summary}");
            model = loaded;
        }
    }
    std::fs::create_dir_all(&out)?;
    let task: Box<dyn TrainTask> = if kind == Kind::Segment {
        let patch = args.patch.unwrap_or(96);
        let patch = (patch > 0).then_some(patch);
        let task = SegmentationTask::open(&data, &model, patch, args.patches_per_image)?;
        for w in task.warnings() {
            eprintln!("warning: {w}");
        }
        Box::new(task)
    } else if kind == Kind::Sr {
        let task = SrTask::open(
            &data,
            &model,
            args.patch.unwrap_or(48),
            args.patches_per_image,
        )?;
        eprintln!(
            "validation images: {}; bicubic Y-PSNR {:.4} dB",
            task.val_len(),
            task.bicubic_val_psnr_y()
        );
        Box::new(task)
    } else {
        let mut task = ClassificationTask::open(&data, &model, args.image_size)?;
        task.scale_min = args.scale_min;
        task.hflip = !args.no_hflip;
        task.label_smoothing = args.label_smoothing;
        let data_config = serde_json::to_string_pretty(&task.eval.to_json())?;
        gaze::atomic_write::write_atomically(&out.join("data_config.json"), |f| {
            std::io::Write::write_all(f, data_config.as_bytes())
        })?;
        let names = task.class_names().join("\n") + "\n";
        gaze::atomic_write::write_atomically(&out.join("labels.txt"), |f| {
            std::io::Write::write_all(f, names.as_bytes())
        })?;
        Box::new(task)
    };
    let config = TrainConfig {
        epochs: args.epochs,
        batch: args.batch,
        lr: args.lr,
        min_lr: args.min_lr,
        warmup_epochs: args.warmup_epochs,
        weight_decay: args.weight_decay,
        seed: args.seed,
        resume: args.resume.is_some(),
        max_steps: args.max_steps,
    };
    if args.resume.is_none() {
        let json = serde_json::to_string_pretty(&args)?;
        gaze::atomic_write::write_atomically(&out.join(ARGS_FILE), |f| {
            std::io::Write::write_all(f, json.as_bytes())
        })?;
    }
    let what = match kind {
        Kind::Sr => format!("{} input channels", in_chans),
        _ => format!("{num_classes} classes, {in_chans} input channels"),
    };
    eprintln!(
        "training {} ({what}) on '{}' into '{}'",
        info.name,
        data.display(),
        out.display()
    );
    let mut bar: Option<Bar> = None;
    let report = fit(
        model,
        task.as_ref(),
        &config,
        &out,
        &devices,
        |event| match event {
            Event::Resumed { epoch, step } => {
                eprintln!("resumed after epoch {epoch} (step {step})")
            }
            Event::EpochStart { epoch, steps } => {
                bar = Some(tqdm!(
                    total = *steps,
                    desc = format!("epoch {epoch}/{}", config.epochs),
                    force_refresh = true
                ));
            }
            Event::Step { loss, lr, .. } => {
                if let Some(bar) = bar.as_mut() {
                    bar.set_postfix(format!("loss={loss:.4} lr={lr:.2e}"));
                    let _ = bar.update(1);
                }
            }
            Event::Skipped(why) => eprintln!("\nwarning: skipped {why}"),
            Event::EpochEnd { epoch, metrics } => {
                bar = None;
                let shown: Vec<String> = metrics
                    .iter()
                    .filter(|(k, _)| k != "epoch" && k != "step")
                    .map(|(k, v)| format!("{k} {v:.4}"))
                    .collect();
                eprintln!("\nepoch {epoch}: {}", shown.join("  "));
            }
        },
    )?;
    eprintln!(
        "done: {} epochs, {} steps in {:.0} s; weights {} ({} images skipped)",
        report.epochs,
        report.steps,
        report.seconds,
        report.weights.display(),
        report.skipped
    );
    Ok(())
}

fn data_classes(data: &Path, idx: bool) -> CliResult<usize> {
    Ok(if idx {
        let t = gaze::data::IdxImages::open(data, "train")?;
        t.labels.iter().copied().max().map_or(0, |m| m as usize + 1)
    } else {
        let root = if data.join("train").is_dir() {
            data.join("train")
        } else {
            data.to_path_buf()
        };
        gaze::data::LabeledImages::image_folder(&root)?
            .classes
            .len()
    })
}

/// The arguments of the run in `dir`, with --max-steps and --device from the command line.
fn resumed_args(cli: &Args, dir: &Path) -> CliResult<Args> {
    let path = dir.join(ARGS_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "'{}' is not a gaze training run ({}: {e})",
            dir.display(),
            path.display()
        )
    })?;
    let mut args: Args =
        serde_json::from_str(&text).map_err(|e| format!("'{}' is corrupt: {e}", path.display()))?;
    if let Some(m) = &cli.model {
        if Some(m) != args.model.as_ref() {
            return Err(format!(
                "the run in '{}' trains {}, not {m}",
                dir.display(),
                args.model.as_deref().unwrap_or("?")
            )
            .into());
        }
    }
    args.max_steps = cli.max_steps;
    args.device = cli.device;
    args.resume = Some(dir.to_path_buf());
    args.out = Some(dir.to_path_buf());
    Ok(args)
}
