//! Binary segmentation as a [`TrainTask`], on a folder in the DRIVE layout
//! ([`SegmentationSet`]): the DRIVE root (its `training/` is used) or any folder with
//! `images/` and ground-truth masks. Validation images come from a `validation/` or `val/`
//! folder beside `training/`, else the last tenth of the training images (natural order) is
//! held out; the test set is never read.
//!
//! Training items are random square patches (or whole images, zero-padded to the batch's
//! largest and masked out), with horizontal and vertical flips, rotations by multiples of 90°
//! and brightness/contrast jitter (torchvision's `ColorJitter` formulas). The loss is binary
//! cross-entropy plus the soft Dice loss, both over field-of-view pixels only; validation
//! reports the loss and the DRIVE figures at threshold 0.5 ([`crate::segment::SegMetrics`]).

use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::tensor::activation::{relu, sigmoid};
use image::RgbImage;
use rand::{Rng, SeedableRng};

use super::{mix, Batch, StepOutput, Target, TrainTask};
use crate::backbones::Model;
use crate::data::{SegPixels, SegmentationSet};
use crate::segment::{activate, LevelHistogram};
use crate::Error;

/// One image in memory.
struct Sample {
    name: String,
    pixels: SegPixels,
}

impl Sample {
    fn size(&self) -> (usize, usize) {
        (
            self.pixels.image.width() as usize,
            self.pixels.image.height() as usize,
        )
    }
}

/// A patch (or whole image) ready for the batch: normalised CHW values, truth and validity.
struct Item {
    w: usize,
    h: usize,
    values: Vec<f32>,
    truth: Vec<f32>,
    valid: Vec<f32>,
}

/// Binary segmentation data, augmentation and loss.
pub struct SegmentationTask {
    train: Vec<Sample>,
    val: Vec<Sample>,
    /// Side of the random square patches (`None`: whole images).
    pub patch: Option<usize>,
    /// Patches drawn from each training image per epoch.
    pub patches_per_image: usize,
    /// Brightness and contrast jitter (factors drawn from `[1 - j, 1 + j]`).
    pub jitter: f32,
    mean: [f32; 3],
    std: [f32; 3],
    channels: usize,
    warnings: Vec<String>,
    description: serde_json::Value,
}

fn load(set: &SegmentationSet, range: std::ops::Range<usize>) -> Result<Vec<Sample>, Error> {
    set.samples[range]
        .iter()
        .map(|s| {
            Ok(Sample {
                name: s.image.display().to_string(),
                pixels: s.read()?,
            })
        })
        .collect()
}

impl SegmentationTask {
    /// Opens `dir` (see the module docs) for a binary segmentation `model`.
    pub fn open(
        dir: &Path,
        model: &Model,
        patch: Option<usize>,
        patches_per_image: usize,
    ) -> Result<SegmentationTask, Error> {
        match model.task() {
            crate::Task::Segmentation { num_classes: 1 } => {}
            crate::Task::Segmentation { num_classes } => {
                return Err(Error::msg(format!(
                    "segmentation training takes binary masks (one output channel); the model has {num_classes}: pass --num-classes 1"
                )))
            }
            task => {
                return Err(Error::msg(format!(
                    "'{}' is a {task} model, not a segmentation model",
                    model.info().name
                )))
            }
        }
        let train_root: PathBuf = if dir.join("training").is_dir() {
            dir.join("training")
        } else {
            dir.to_path_buf()
        };
        let set = SegmentationSet::open(&train_root, true)?;
        let val_root = ["validation", "val"]
            .iter()
            .map(|v| dir.join(v))
            .find(|v| v.join("images").is_dir());
        let (train, val, layout) = match &val_root {
            Some(v) => {
                let val_set = SegmentationSet::open(v, true)?;
                (
                    load(&set, 0..set.samples.len())?,
                    load(&val_set, 0..val_set.samples.len())?,
                    format!("{} / {}", train_root.display(), v.display()),
                )
            }
            None => {
                let (train, val) = super::hold_out(set.samples.len());
                let held = set.samples.len() - train.end;
                (
                    load(&set, train)?,
                    load(&set, val)?,
                    format!("{} (last {held} images held out)", train_root.display()),
                )
            }
        };
        let mut warnings: Vec<String> = set
            .missing_fov()
            .into_iter()
            .map(|p| {
                format!(
                    "no field-of-view mask for '{}': every pixel counts",
                    p.display()
                )
            })
            .collect();
        warnings.dedup();
        let (mean, std) = model.info().data.mean_std();
        let description = serde_json::json!({
            "dir": dir.display().to_string(),
            "layout": layout,
            "train_images": train.len(),
            "val_images": val.iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
            "patch": patch,
            "patches_per_image": patches_per_image,
        });
        Ok(SegmentationTask {
            train,
            val,
            patch,
            patches_per_image: patches_per_image.max(1),
            jitter: 0.2,
            mean: mean.map(|v| v as f32),
            std: std.map(|v| v as f32),
            channels: model.in_chans(),
            warnings,
            description,
        })
    }

    /// Warnings about the data (images without a field-of-view mask).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Validation images.
    pub fn val_len(&self) -> usize {
        self.val.len()
    }

    /// Normalised CHW values of an RGB image (luma for one-channel models).
    fn normalize(&self, img: &RgbImage) -> Vec<f32> {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let norm = |v: f32, c: usize| (v / 255.0 - self.mean[c]) / self.std[c];
        if self.channels == 1 {
            return crate::preprocess::pil_luma(img)
                .as_raw()
                .iter()
                .map(|&v| norm(v as f32, 0))
                .collect();
        }
        let mut out = vec![0f32; 3 * h * w];
        for (i, p) in img.as_raw().chunks(3).enumerate() {
            for c in 0..3 {
                out[c * h * w + i] = norm(p[c] as f32, c);
            }
        }
        out
    }

    /// A random patch of sample `s`, augmented.
    fn item(&self, s: &Sample, rng: &mut impl Rng) -> Item {
        let (w, h) = s.size();
        let (pw, ph) = match self.patch {
            Some(p) => (p.min(w), p.min(h)),
            None => (w, h),
        };
        // Prefer patches centred in the field of view (ten tries).
        let mut origin = (0, 0);
        for _ in 0..10 {
            origin = (rng.random_range(0..=w - pw), rng.random_range(0..=h - ph));
            let (cx, cy) = (origin.0 + pw / 2, origin.1 + ph / 2);
            if s.pixels.fov[cy * w + cx] > 0 {
                break;
            }
        }
        let (x0, y0) = origin;
        let img =
            image::imageops::crop_imm(&s.pixels.image, x0 as u32, y0 as u32, pw as u32, ph as u32)
                .to_image();
        let cut = |m: &[u8]| -> Vec<u8> {
            (y0..y0 + ph)
                .flat_map(|y| m[y * w + x0..y * w + x0 + pw].iter().copied())
                .collect()
        };
        let truth = cut(s
            .pixels
            .truth
            .as_deref()
            .expect("training samples have truth"));
        let valid = cut(&s.pixels.fov);
        // Geometry: flips, then a rotation by k·90° (k even for non-square patches).
        let (hflip, vflip) = (rng.random_bool(0.5), rng.random_bool(0.5));
        let k = if pw == ph {
            rng.random_range(0..4u8)
        } else {
            2 * rng.random_range(0..2u8)
        };
        let geo = |img: RgbImage| -> RgbImage {
            let mut img = img;
            if hflip {
                image::imageops::flip_horizontal_in_place(&mut img);
            }
            if vflip {
                image::imageops::flip_vertical_in_place(&mut img);
            }
            match k {
                1 => image::imageops::rotate90(&img),
                2 => image::imageops::rotate180(&img),
                3 => image::imageops::rotate270(&img),
                _ => img,
            }
        };
        let as_rgb = |m: Vec<u8>| -> RgbImage {
            RgbImage::from_fn(pw as u32, ph as u32, |x, y| {
                let v = m[y as usize * pw + x as usize];
                image::Rgb([v, v, v])
            })
        };
        let first = |img: RgbImage| -> Vec<f32> { img.pixels().map(|p| p.0[0] as f32).collect() };
        let mut img = geo(img);
        let truth = first(geo(as_rgb(truth)));
        let valid = first(geo(as_rgb(valid)));
        let (ow, oh) = (img.width() as usize, img.height() as usize);
        // torchvision's ColorJitter: brightness scales, contrast blends with the mean gray.
        if self.jitter > 0.0 {
            let b = rng.random_range(1.0 - self.jitter..=1.0 + self.jitter);
            let c = rng.random_range(1.0 - self.jitter..=1.0 + self.jitter);
            let blend = |v: f32, other: f32, f: f32| (f * v + (1.0 - f) * other).clamp(0.0, 255.0);
            for p in img.pixels_mut() {
                for ch in 0..3 {
                    p.0[ch] = blend(p.0[ch] as f32, 0.0, b).round() as u8;
                }
            }
            let gray = crate::preprocess::pil_luma(&img);
            let mean = gray.as_raw().iter().map(|&v| v as f32).sum::<f32>()
                / gray.as_raw().len().max(1) as f32;
            for p in img.pixels_mut() {
                for ch in 0..3 {
                    p.0[ch] = blend(p.0[ch] as f32, mean, c).round() as u8;
                }
            }
        }
        Item {
            w: ow,
            h: oh,
            values: self.normalize(&img),
            truth,
            valid,
        }
    }

    /// Stacks items into a batch, zero-padding each to the largest (padding is not valid).
    fn batch(&self, items: Vec<Item>, device: &Device) -> Batch {
        let (w, h) = items
            .iter()
            .fold((0, 0), |(w, h), it| (w.max(it.w), h.max(it.h)));
        let (n, c) = (items.len(), self.channels);
        let mut x = vec![0f32; n * c * h * w];
        let mut truth = vec![0f32; n * h * w];
        let mut valid = vec![0f32; n * h * w];
        for (i, it) in items.iter().enumerate() {
            for y in 0..it.h {
                for ch in 0..c {
                    let src = &it.values[(ch * it.h + y) * it.w..(ch * it.h + y + 1) * it.w];
                    let dst = ((i * c + ch) * h + y) * w;
                    x[dst..dst + it.w].copy_from_slice(src);
                }
                let dst = (i * h + y) * w;
                truth[dst..dst + it.w].copy_from_slice(&it.truth[y * it.w..(y + 1) * it.w]);
                valid[dst..dst + it.w].copy_from_slice(&it.valid[y * it.w..(y + 1) * it.w]);
            }
        }
        Batch {
            x: Tensor::from_data(TensorData::new(x, [n, c, h, w]), device),
            target: Target::Mask {
                truth: Tensor::from_data(TensorData::new(truth, [n, 1, h, w]), device),
                valid: Tensor::from_data(TensorData::new(valid, [n, 1, h, w]), device),
            },
        }
    }
}

/// Binary cross-entropy on logits plus the soft Dice loss, both over the valid pixels:
/// `BCE = Σ v·(max(z,0) − z·y + log(1 + e^{−|z|})) / Σ v`,
/// `Dice = 1 − (2 Σ v·p·y + 1) / (Σ v·p + Σ v·y + 1)` with `p = σ(z)`.
pub fn bce_dice_loss(logits: Tensor<4>, truth: Tensor<4>, valid: Tensor<4>) -> Tensor<1> {
    let count = valid.clone().sum().clamp_min(1.0);
    let bce = relu(logits.clone()) - logits.clone() * truth.clone()
        + logits.clone().abs().neg().exp().log1p();
    let bce = (bce * valid.clone()).sum() / count;
    let p = sigmoid(logits) * valid.clone();
    let y = truth * valid;
    let dice = (p.clone() * y.clone())
        .sum()
        .mul_scalar(2.0)
        .add_scalar(1.0)
        / (p.sum() + y.sum()).add_scalar(1.0);
    bce + dice.neg().add_scalar(1.0)
}

fn mask_logits(model: &Model, x: Tensor<4>) -> Result<Tensor<4>, Error> {
    model
        .forward(x)?
        .into_mask()
        .ok_or_else(|| Error::msg(format!("'{}' does not output a mask", model.info().name)))
}

impl TrainTask for SegmentationTask {
    fn train_len(&self) -> usize {
        self.train.len() * self.patches_per_image
    }

    fn train_batch(
        &self,
        indices: &[usize],
        seed: u64,
        device: &Device,
    ) -> (Option<Batch>, Vec<String>) {
        let items: Vec<Item> = indices
            .iter()
            .map(|&i| {
                // Each item's patch and augmentation depend on the batch seed and the item only.
                let mut rng = rand::rngs::StdRng::seed_from_u64(mix(seed, i as u64));
                self.item(&self.train[i % self.train.len()], &mut rng)
            })
            .collect();
        if items.is_empty() {
            return (None, Vec::new());
        }
        (Some(self.batch(items, device)), Vec::new())
    }

    fn step(&self, model: &Model, batch: Batch) -> Result<StepOutput, Error> {
        let items = batch.len();
        let Target::Mask { truth, valid } = batch.target else {
            return Err(Error::msg("segmentation batches carry masks"));
        };
        let logits = mask_logits(model, batch.x)?;
        Ok(StepOutput {
            loss: bce_dice_loss(logits, truth, valid),
            counts: Vec::new(),
            items,
        })
    }

    fn validate(&self, model: &Model, device: &Device) -> Result<Vec<(String, f64)>, Error> {
        let mut histogram = LevelHistogram::new();
        let mut loss_sum = 0.0f64;
        for s in &self.val {
            let (w, h) = s.size();
            let x = Tensor::<4>::from_data(
                TensorData::new(self.normalize(&s.pixels.image), [1, self.channels, h, w]),
                device,
            );
            let logits = mask_logits(model, x)?;
            let truth = s
                .pixels
                .truth
                .as_deref()
                .expect("validation samples have truth");
            let as_tensor = |m: &[u8]| {
                Tensor::<4>::from_data(
                    TensorData::new(
                        m.iter().map(|&v| v as f32).collect::<Vec<_>>(),
                        [1, 1, h, w],
                    ),
                    device,
                )
            };
            loss_sum += bce_dice_loss(logits.clone(), as_tensor(truth), as_tensor(&s.pixels.fov))
                .into_scalar::<f32>() as f64;
            let probs: Vec<f32> = activate(logits)
                .into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .map_err(|e| Error::msg(format!("{e:?}")))?;
            let levels: Vec<u16> = probs.into_iter().map(crate::segment::quantize).collect();
            histogram.add(&levels, truth, Some(&s.pixels.fov));
        }
        let m = histogram.metrics(0.5);
        Ok(vec![
            ("val_loss".into(), loss_sum / self.val.len().max(1) as f64),
            ("val_f1".into(), m.f1),
            ("val_auc".into(), m.auc),
            ("val_acc".into(), m.accuracy),
            ("val_sens".into(), m.sensitivity),
            ("val_spec".into(), m.specificity),
        ])
    }

    fn describe(&self) -> serde_json::Value {
        let mut d = self.description.clone();
        d["augmentation"] = serde_json::json!({
            "hflip": true,
            "vflip": true,
            "rot90": true,
            "brightness_contrast_jitter": self.jitter,
        });
        d["loss"] = serde_json::json!("BCE + soft Dice over field-of-view pixels");
        d
    }
}
