//! Image classification as a [`TrainTask`]: ImageFolder trees (with `train/` and `val/`
//! sub-folders, or a deterministic 10 % hold-out) and IDX files (MNIST, Fashion-MNIST: `train`
//! for training, `t10k` for validation); timm's train augmentation (random resized crop with
//! scale (s, 1) and ratio (3/4, 4/3), horizontal flip) and eval transform; label-smoothed cross
//! entropy; top-1/top-5 validation.

use std::path::Path;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::prelude::*;
use image::RgbImage;
use rand::{Rng, SeedableRng};

use super::{mix, Batch, StepOutput, Target, TrainTask};
use crate::backbones::{CropMode, Model};
use crate::classify::top1_top5_hits;
use crate::data::{IdxImages, LabeledImages};
use crate::preprocess::{open_rgb, resize, Transform};
use crate::Error;

/// Where the images come from.
enum Source {
    Folder(LabeledImages),
    Idx(IdxImages),
}

impl Source {
    fn len(&self) -> usize {
        match self {
            Source::Folder(f) => f.items.len(),
            Source::Idx(i) => i.len(),
        }
    }

    fn classes(&self) -> usize {
        match self {
            Source::Folder(f) => f.classes.len(),
            Source::Idx(i) => i.labels.iter().copied().max().map_or(0, |m| m as usize + 1),
        }
    }

    fn get(&self, i: usize) -> Result<(RgbImage, usize), String> {
        match self {
            Source::Folder(f) => {
                let (path, label) = &f.items[i];
                open_rgb(path)
                    .map(|img| (img, *label))
                    .map_err(|e| e.to_string())
            }
            Source::Idx(idx) => {
                let g = idx.image(i);
                let img = RgbImage::from_fn(idx.cols as u32, idx.rows as u32, |x, y| {
                    let v = g[y as usize * idx.cols + x as usize];
                    image::Rgb([v, v, v])
                });
                Ok((img, idx.labels[i] as usize))
            }
        }
    }
}

/// Image classification data, augmentation and loss.
pub struct ClassificationTask {
    train: Source,
    val: Source,
    /// The eval transform (validation).
    pub eval: Transform,
    /// Smallest area fraction of the random resized crop (timm: 0.08).
    pub scale_min: f64,
    /// Random horizontal flips.
    pub hflip: bool,
    /// Label smoothing of the loss.
    pub label_smoothing: f32,
    /// Images per validation batch.
    pub val_batch: usize,
    description: serde_json::Value,
}

impl ClassificationTask {
    /// Opens `dir` for `model`: IDX files, an ImageFolder tree with `train/` and `val/`, or one
    /// ImageFolder tree split 90/10. Images are made `image_size` square (default: the model's
    /// input size, or the native size of IDX images).
    pub fn open(
        dir: &Path,
        model: &Model,
        image_size: Option<usize>,
    ) -> Result<ClassificationTask, Error> {
        let mut eval = Transform::of(model)?;
        let (train, val, layout) = if IdxImages::is_idx_dir(dir) {
            let train = IdxImages::open(dir, "train")?;
            let val = IdxImages::open(dir, "t10k")?;
            // Native size: the eval transform is a no-op resize.
            let side = image_size.unwrap_or(train.rows);
            eval.size = [side, side];
            eval.crop_pct = 1.0;
            eval.crop_mode = CropMode::Squash;
            (Source::Idx(train), Source::Idx(val), "idx (train / t10k)")
        } else {
            if let Some(side) = image_size {
                eval.size = [side, side];
            }
            let split = ["val", "validation", "test"]
                .iter()
                .map(|v| dir.join(v))
                .find(|v| v.is_dir());
            match (dir.join("train").is_dir(), split) {
                (true, Some(v)) => (
                    Source::Folder(LabeledImages::image_folder(&dir.join("train"))?),
                    Source::Folder(LabeledImages::image_folder(&v)?),
                    "image folder (train / val)",
                ),
                _ => {
                    let all = LabeledImages::image_folder(dir)?;
                    let (mut train, mut val) = (all.clone(), all.clone());
                    // Every tenth image of the natural order (each class keeps ~10 %).
                    let (t, v): (Vec<_>, Vec<_>) = all
                        .items
                        .into_iter()
                        .enumerate()
                        .partition(|(i, _)| i % 10 != 9);
                    train.items = t.into_iter().map(|(_, x)| x).collect();
                    val.items = v.into_iter().map(|(_, x)| x).collect();
                    if val.items.is_empty() {
                        val.items = train.items.clone();
                    }
                    (
                        Source::Folder(train),
                        Source::Folder(val),
                        "image folder (90/10 split)",
                    )
                }
            }
        };
        let num_classes = model.config().num_classes().unwrap_or(0);
        let data_classes = train.classes().max(val.classes());
        if data_classes > num_classes {
            return Err(Error::msg(format!(
                "the data has {data_classes} classes, the model predicts {num_classes}; pass --num-classes {data_classes}"
            )));
        }
        let description = serde_json::json!({
            "dir": dir.display().to_string(),
            "layout": layout,
            "train_items": train.len(),
            "val_items": val.len(),
            "classes": data_classes,
            "image_size": eval.size,
        });
        Ok(ClassificationTask {
            train,
            val,
            eval,
            scale_min: 0.08,
            hflip: true,
            label_smoothing: 0.1,
            val_batch: 64,
            description,
        })
    }

    /// Class names by label: the folder names, or the indices for IDX data (`gaze train`
    /// writes them to the run's `labels.txt`, which `gaze classify --labels` reads).
    pub fn class_names(&self) -> Vec<String> {
        match &self.train {
            Source::Folder(f) => f.classes.clone(),
            Source::Idx(_) => (0..self.train.classes().max(self.val.classes()))
                .map(|i| i.to_string())
                .collect(),
        }
    }

    /// Number of validation items.
    pub fn val_len(&self) -> usize {
        self.val.len()
    }

    /// timm's `RandomResizedCropAndInterpolation` + `RandomHorizontalFlip` on one image.
    fn augment(&self, img: &RgbImage, rng: &mut impl Rng) -> RgbImage {
        let (w, h) = (img.width() as f64, img.height() as f64);
        let (lo, hi) = ((3.0f64 / 4.0).ln(), (4.0f64 / 3.0).ln());
        let mut crop = None;
        for _ in 0..10 {
            let area = w * h * rng.random_range(self.scale_min.min(1.0)..=1.0);
            let ratio = rng.random_range(lo..=hi).exp();
            let cw = (area * ratio).sqrt().round();
            let ch = (area / ratio).sqrt().round();
            if cw >= 1.0 && ch >= 1.0 && cw <= w && ch <= h {
                let top = rng.random_range(0..=(h - ch) as u32);
                let left = rng.random_range(0..=(w - cw) as u32);
                crop = Some((left, top, cw as u32, ch as u32));
                break;
            }
        }
        let (left, top, cw, ch) = crop.unwrap_or_else(|| {
            let in_ratio = w / h;
            let (cw, ch) = if in_ratio < 0.75 {
                (w, (w / 0.75).round())
            } else if in_ratio > 4.0 / 3.0 {
                ((h * 4.0 / 3.0).round(), h)
            } else {
                (w, h)
            };
            (
                ((w - cw) / 2.0) as u32,
                ((h - ch) / 2.0) as u32,
                cw as u32,
                ch as u32,
            )
        });
        let region = image::imageops::crop_imm(img, left, top, cw, ch).to_image();
        let [sh, sw] = self.eval.size;
        let mut out = resize(&region, sw, sh, self.eval.interpolation);
        if self.hflip && rng.random_bool(0.5) {
            image::imageops::flip_horizontal_in_place(&mut out);
        }
        out
    }

    fn tensor(&self, values: Vec<f32>, n: usize, device: &Device) -> Tensor<4> {
        let [h, w] = self.eval.size;
        Tensor::from_data(
            TensorData::new(values, [n, self.eval.channels, h, w]),
            device,
        )
    }
}

fn logits_of(model: &Model, x: Tensor<4>) -> Result<Tensor<2>, Error> {
    model.forward(x)?.into_logits().ok_or_else(|| {
        Error::msg(format!(
            "'{}' does not output class logits",
            model.info().name
        ))
    })
}

impl TrainTask for ClassificationTask {
    fn train_len(&self) -> usize {
        self.train.len()
    }

    fn train_batch(
        &self,
        indices: &[usize],
        seed: u64,
        device: &Device,
    ) -> (Option<Batch>, Vec<String>) {
        let mut values = Vec::new();
        let mut classes = Vec::new();
        let mut bad = Vec::new();
        for &i in indices {
            // Each item's augmentation depends on the batch seed and the item only.
            let mut rng = rand::rngs::StdRng::seed_from_u64(mix(seed, i as u64));
            match self.train.get(i) {
                Ok((img, label)) => {
                    values.extend(self.eval.normalize(&self.augment(&img, &mut rng)));
                    classes.push(label as i64);
                }
                Err(e) => bad.push(e),
            }
        }
        if classes.is_empty() {
            return (None, bad);
        }
        let n = classes.len();
        let batch = Batch {
            x: self.tensor(values, n, device),
            target: Target::Classes(Tensor::from_data(TensorData::new(classes, [n]), device)),
        };
        (Some(batch), bad)
    }

    fn step(&self, model: &Model, batch: Batch) -> Result<StepOutput, Error> {
        let items = batch.len();
        let Target::Classes(classes) = batch.target else {
            return Err(Error::msg("classification batches carry class indices"));
        };
        let logits = logits_of(model, batch.x)?;
        let correct = logits
            .clone()
            .argmax(1)
            .squeeze_dim::<1>(1)
            .equal(classes.clone())
            .int()
            .sum()
            .into_scalar::<i64>() as f64;
        let smoothing = (self.label_smoothing > 0.0).then_some(self.label_smoothing);
        let loss = CrossEntropyLossConfig::new()
            .with_smoothing(smoothing)
            .init(&logits.device())
            .forward(logits, classes);
        Ok(StepOutput {
            loss,
            counts: vec![("top1", correct)],
            items,
        })
    }

    fn validate(&self, model: &Model, device: &Device) -> Result<Vec<(String, f64)>, Error> {
        let (mut loss_sum, mut top1, mut top5, mut n) = (0.0f64, 0usize, 0usize, 0usize);
        let indices: Vec<usize> = (0..self.val.len()).collect();
        for chunk in indices.chunks(self.val_batch.max(1)) {
            let mut values = Vec::new();
            let mut labels = Vec::new();
            for &i in chunk {
                if let Ok((img, label)) = self.val.get(i) {
                    values.extend(self.eval.apply(&img));
                    labels.push(label);
                }
            }
            if labels.is_empty() {
                continue;
            }
            let b = labels.len();
            let logits = logits_of(model, self.tensor(values, b, device))?;
            let targets = Tensor::<1, Int>::from_data(
                TensorData::new(labels.iter().map(|&l| l as i64).collect::<Vec<_>>(), [b]),
                device,
            );
            let loss = CrossEntropyLossConfig::new()
                .init(device)
                .forward(logits.clone(), targets)
                .into_scalar::<f32>() as f64;
            loss_sum += loss * b as f64;
            let c = logits.dims()[1];
            let values = logits
                .into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .map_err(|e| Error::msg(format!("{e:?}")))?;
            for (row, &label) in values.chunks(c).zip(&labels) {
                let (hit1, hit5) = top1_top5_hits(row, label);
                top1 += hit1;
                top5 += hit5;
            }
            n += b;
        }
        let n = n.max(1) as f64;
        Ok(vec![
            ("val_loss".into(), loss_sum / n),
            ("val_top1".into(), 100.0 * top1 as f64 / n),
            ("val_top5".into(), 100.0 * top5 as f64 / n),
        ])
    }

    fn describe(&self) -> serde_json::Value {
        let mut d = self.description.clone();
        d["augmentation"] = serde_json::json!({
            "random_resized_crop_scale": [self.scale_min, 1.0],
            "hflip": self.hflip,
            "label_smoothing": self.label_smoothing,
        });
        d
    }
}
