//! Segmentation: a model's per-pixel probabilities for an image of any size (whole, or a
//! sliding window whose overlaps are blended with feathered weights), masks, overlays, and the
//! DRIVE evaluation protocol (field-of-view pixels only, pooled over a test set).
//!
//! Probabilities are kept as 16-bit levels (`round(p · 65535)`), the values `gaze segment`
//! writes as 16-bit PNGs, and every figure is computed from those levels: the F1, AUC, … that
//! `gaze seg-eval` reports are exactly what anyone recomputes from the written PNGs.
//!
//! ```no_run
//! use gaze::prelude::*;
//! use gaze::segment::{probabilities, save_png, Tiling};
//! use std::path::Path;
//!
//! let device = Device::flex();
//! let model = create_model("attention_unet_small", &device)?.load_weights("drive.safetensors")?;
//! let image = gaze::preprocess::open_rgb("01_test.tif")?;
//! let probs = probabilities(&model, &image, Tiling::Auto)?;
//! save_png(&probs.mask(0.5), Path::new("01_mask.png"))?;
//! save_png(&probs.probability_image(), Path::new("01_prob.png"))?;
//! # Ok::<(), gaze::Error>(())
//! ```

use std::path::Path;

use burn::prelude::*;
use burn::tensor::activation::{sigmoid, softmax};
use image::{GrayImage, ImageBuffer, Luma, RgbImage};

use crate::backbones::Model;
use crate::preprocess::pil_luma;
use crate::Error;

/// Levels of a quantised probability (16-bit).
pub const LEVELS: u32 = 65535;

/// How an image is cut for inference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tiling {
    /// The whole image at once up to 1024×1024 pixels, else 512² tiles overlapping by 64.
    Auto,
    /// The whole image at once.
    Whole,
    /// Square tiles of `tile` pixels overlapping by `overlap`, blended with weights that ramp
    /// linearly over the overlap, so no seam shows.
    Tiles {
        /// Tile side.
        tile: usize,
        /// Overlap between neighbouring tiles.
        overlap: usize,
    },
}

/// The model's input for an RGB image: `[1, C, H, W]`, `ToTensor` then the model's
/// normalisation; one-channel models take PIL's luma.
pub fn input_values(model: &Model, image: &RgbImage) -> Vec<f32> {
    let (mean, std) = model.info().data.mean_std();
    let (w, h) = (image.width() as usize, image.height() as usize);
    let norm = |v: u8, c: usize| (v as f32 / 255.0 - mean[c] as f32) / std[c] as f32;
    if model.in_chans() == 1 {
        return pil_luma(image)
            .as_raw()
            .iter()
            .map(|&v| norm(v, 0))
            .collect();
    }
    let mut out = vec![0f32; 3 * h * w];
    for (i, p) in image.as_raw().chunks(3).enumerate() {
        for c in 0..3 {
            out[c * h * w + i] = norm(p[c], c);
        }
    }
    out
}

/// Per-pixel class probabilities `[K, H, W]`: the sigmoid of one output channel (a binary
/// mask), else the softmax over the channels.
pub fn activate(logits: Tensor<4>) -> Tensor<4> {
    if logits.dims()[1] == 1 {
        sigmoid(logits)
    } else {
        softmax(logits, 1)
    }
}

/// A model's probabilities for one image.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbabilityMap {
    /// Output channels (1: binary).
    pub classes: usize,
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `[classes, height, width]` probabilities.
    pub values: Vec<f32>,
}

/// Runs a segmentation model on an image of any size.
pub fn probabilities(
    model: &Model,
    image: &RgbImage,
    tiling: Tiling,
) -> Result<ProbabilityMap, Error> {
    let device = model_device(model);
    let (w, h) = (image.width() as usize, image.height() as usize);
    let c = model.in_chans();
    let x = Tensor::<4>::from_data(
        TensorData::new(input_values(model, image), [1, c, h, w]),
        &device,
    );
    let tiling = match tiling {
        Tiling::Auto if h * w > 1024 * 1024 => Tiling::Tiles {
            tile: 512,
            overlap: 64,
        },
        Tiling::Auto => Tiling::Whole,
        t => t,
    };
    let run = |x: Tensor<4>| -> Result<Tensor<4>, Error> {
        let logits = model.forward(x)?.into_mask().ok_or_else(|| {
            Error::msg(format!(
                "'{}' is not a segmentation model (it outputs no mask)",
                model.info().name
            ))
        })?;
        Ok(activate(logits))
    };
    let probs = match tiling {
        Tiling::Tiles { tile, overlap } if tile < h.max(w) => {
            if tile == 0 || overlap >= tile {
                return Err(Error::msg(format!(
                    "tiles of {tile} pixels cannot overlap by {overlap}"
                )));
            }
            let mut sum: Option<Tensor<4>> = None;
            let mut weight = Tensor::<4>::zeros([1, 1, h, w], &device);
            let (th, tw) = (tile.min(h), tile.min(w));
            for y0 in tile_starts(h, tile, overlap) {
                for x0 in tile_starts(w, tile, overlap) {
                    let part = x.clone().slice([0..1, 0..c, y0..y0 + th, x0..x0 + tw]);
                    let ramp = feather(th, tw, overlap, [y0 > 0, y0 + th < h, x0 > 0, x0 + tw < w]);
                    let ramp =
                        Tensor::<4>::from_data(TensorData::new(ramp, [1, 1, th, tw]), &device);
                    let p = run(part)? * ramp.clone();
                    let k = p.dims()[1];
                    let acc = sum
                        .take()
                        .unwrap_or_else(|| Tensor::zeros([1, k, h, w], &device));
                    let ranges = [0..1, 0..k, y0..y0 + th, x0..x0 + tw];
                    let part_sum = acc.clone().slice(ranges.clone()) + p;
                    sum = Some(acc.slice_assign(ranges, part_sum));
                    let wr = [0..1, 0..1, y0..y0 + th, x0..x0 + tw];
                    let wacc = weight.clone().slice(wr.clone()) + ramp;
                    weight = weight.slice_assign(wr, wacc);
                }
            }
            sum.expect("at least one tile") / weight
        }
        _ => run(x)?,
    };
    let classes = probs.dims()[1];
    Ok(ProbabilityMap {
        classes,
        width: w,
        height: h,
        values: probs
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .map_err(|e| Error::msg(format!("reading the probabilities back failed: {e:?}")))?,
    })
}

fn model_device(model: &Model) -> Device {
    use burn::module::Module;
    model
        .devices()
        .into_iter()
        .next()
        .unwrap_or_else(Device::flex)
}

/// Tile origins along one side: every `tile - overlap` pixels, the last tile flush with the end.
pub fn tile_starts(len: usize, tile: usize, overlap: usize) -> Vec<usize> {
    if tile >= len {
        return vec![0];
    }
    let stride = tile - overlap;
    let mut starts: Vec<usize> = (0..)
        .map(|i| i * stride)
        .take_while(|&s| s + tile < len)
        .collect();
    starts.push(len - tile);
    starts
}

/// Blending weights of one tile: 1 inside, ramping linearly to `1 / (overlap + 1)` over
/// `overlap` pixels along each side that borders another tile (`[top, bottom, left, right]`).
fn feather(h: usize, w: usize, overlap: usize, inner: [bool; 4]) -> Vec<f32> {
    let ramp = |i: usize, n: usize, lo: bool, hi: bool| -> f32 {
        let mut v = 1.0f32;
        if lo && i < overlap {
            v = v.min((i + 1) as f32 / (overlap + 1) as f32);
        }
        if hi && n - 1 - i < overlap {
            v = v.min((n - i) as f32 / (overlap + 1) as f32);
        }
        v
    };
    let mut out = Vec::with_capacity(h * w);
    for y in 0..h {
        let wy = ramp(y, h, inner[0], inner[1]);
        for x in 0..w {
            out.push(wy * ramp(x, w, inner[2], inner[3]));
        }
    }
    out
}

impl ProbabilityMap {
    /// The foreground probability of each pixel: the one channel of a binary model, else
    /// one minus the background's (class 0).
    pub fn foreground(&self) -> Vec<f32> {
        let n = self.width * self.height;
        if self.classes == 1 {
            self.values[..n].to_vec()
        } else {
            self.values[..n].iter().map(|p| 1.0 - p).collect()
        }
    }

    /// [`ProbabilityMap::foreground`] as 16-bit levels, `round(p · 65535)`.
    pub fn foreground_levels(&self) -> Vec<u16> {
        self.foreground().into_iter().map(quantize).collect()
    }

    /// The foreground probability as a 16-bit gray image.
    pub fn probability_image(&self) -> ImageBuffer<Luma<u16>, Vec<u16>> {
        ImageBuffer::from_raw(
            self.width as u32,
            self.height as u32,
            self.foreground_levels(),
        )
        .expect("one value per pixel")
    }

    /// The mask: for a binary model 255 where the (16-bit) probability is at least
    /// `threshold`, else 0; for K classes the most probable class's index per pixel.
    pub fn mask(&self, threshold: f64) -> GrayImage {
        let n = self.width * self.height;
        let values: Vec<u8> = if self.classes == 1 {
            self.foreground_levels()
                .into_iter()
                .map(|q| if above(q, threshold) { 255 } else { 0 })
                .collect()
        } else {
            (0..n)
                .map(|i| {
                    (0..self.classes)
                        .max_by(|&a, &b| self.values[a * n + i].total_cmp(&self.values[b * n + i]))
                        .unwrap_or(0) as u8
                })
                .collect()
        };
        GrayImage::from_raw(self.width as u32, self.height as u32, values).expect("one per pixel")
    }
}

impl ProbabilityMap {
    /// 255 on foreground pixels, 0 elsewhere: the binary mask, or the pixels whose most
    /// probable class is not the background (class 0).
    pub fn foreground_mask(&self, threshold: f64) -> GrayImage {
        let mut mask = self.mask(threshold);
        if self.classes > 1 {
            for p in mask.pixels_mut() {
                p.0[0] = if p.0[0] > 0 { 255 } else { 0 };
            }
        }
        mask
    }
}

/// `round(clamp(p, 0, 1) · 65535)`.
pub fn quantize(p: f32) -> u16 {
    (p.clamp(0.0, 1.0) as f64 * LEVELS as f64).round() as u16
}

/// Whether a 16-bit probability level counts as foreground at `threshold`.
pub fn above(level: u16, threshold: f64) -> bool {
    level as f64 / LEVELS as f64 >= threshold
}

/// The image with the mask's foreground tinted (alpha 0.5 of `color`).
pub fn overlay(image: &RgbImage, mask: &GrayImage, color: [u8; 3]) -> RgbImage {
    let mut out = image.clone();
    for (p, m) in out.pixels_mut().zip(mask.pixels()) {
        if m.0[0] > 0 {
            for c in 0..3 {
                p.0[c] = ((p.0[c] as u16 + color[c] as u16 + 1) / 2) as u8;
            }
        }
    }
    out
}

/// Writes a PNG (8- or 16-bit gray, or RGB) atomically.
pub fn save_png<P: image::Pixel<Subpixel = S> + image::PixelWithColorType, S: image::Primitive>(
    img: &ImageBuffer<P, Vec<S>>,
    path: &Path,
) -> Result<(), Error>
where
    [S]: image::EncodableLayout,
{
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, image::ImageFormat::Png)
        .map_err(|e| Error::msg(format!("cannot encode '{}': {e}", path.display())))?;
    crate::atomic_write::write_atomically(path, |f| std::io::Write::write_all(f, bytes.get_ref()))?;
    Ok(())
}

/// Counts of foreground and background pixels per 16-bit probability level: pooled over any
/// number of images, it gives the DRIVE figures exactly (AUC with ties as the trapezoidal
/// ROC, i.e. the Mann–Whitney statistic; confusion counts at any threshold).
#[derive(Clone, PartialEq, Eq)]
pub struct LevelHistogram {
    positive: Vec<u64>,
    negative: Vec<u64>,
}

impl std::fmt::Debug for LevelHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "LevelHistogram({} positive, {} negative)",
            self.positives(),
            self.negatives()
        )
    }
}

impl Default for LevelHistogram {
    fn default() -> Self {
        Self::new()
    }
}

/// The DRIVE figures of a set of pixels.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct SegMetrics {
    /// F1 = Dice = 2TP / (2TP + FP + FN).
    pub f1: f64,
    /// Area under the ROC curve of the probabilities.
    pub auc: f64,
    /// (TP + TN) / all.
    pub accuracy: f64,
    /// Sensitivity (recall) TP / (TP + FN).
    pub sensitivity: f64,
    /// Specificity TN / (TN + FP).
    pub specificity: f64,
    /// Precision TP / (TP + FP).
    pub precision: f64,
    /// Intersection over union TP / (TP + FP + FN).
    pub iou: f64,
    /// Pixels counted.
    pub pixels: u64,
}

impl LevelHistogram {
    /// No pixels.
    pub fn new() -> Self {
        LevelHistogram {
            positive: vec![0; LEVELS as usize + 1],
            negative: vec![0; LEVELS as usize + 1],
        }
    }

    /// Adds the pixels where `valid` (the field of view; all when `None`): `levels` are the
    /// probabilities, `truth` the ground truth (foreground where non-zero).
    pub fn add(&mut self, levels: &[u16], truth: &[u8], valid: Option<&[u8]>) {
        for (i, (&q, &t)) in levels.iter().zip(truth).enumerate() {
            if valid.is_some_and(|v| v[i] == 0) {
                continue;
            }
            if t > 0 {
                self.positive[q as usize] += 1;
            } else {
                self.negative[q as usize] += 1;
            }
        }
    }

    /// Adds another histogram's pixels.
    pub fn merge(&mut self, other: &LevelHistogram) {
        for (a, b) in self.positive.iter_mut().zip(&other.positive) {
            *a += b;
        }
        for (a, b) in self.negative.iter_mut().zip(&other.negative) {
            *a += b;
        }
    }

    /// Foreground pixels.
    pub fn positives(&self) -> u64 {
        self.positive.iter().sum()
    }

    /// Background pixels.
    pub fn negatives(&self) -> u64 {
        self.negative.iter().sum()
    }

    /// The figures at `threshold` (a pixel is foreground when its level / 65535 ≥ threshold).
    pub fn metrics(&self, threshold: f64) -> SegMetrics {
        let (mut tp, mut fp) = (0u64, 0u64);
        for q in 0..=LEVELS as usize {
            if above(q as u16, threshold) {
                tp += self.positive[q];
                fp += self.negative[q];
            }
        }
        let (p, n) = (self.positives(), self.negatives());
        let (fn_, tn) = (p - tp, n - fp);
        let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        SegMetrics {
            f1: ratio(2 * tp, 2 * tp + fp + fn_),
            auc: self.auc(),
            accuracy: ratio(tp + tn, p + n),
            sensitivity: ratio(tp, p),
            specificity: ratio(tn, n),
            precision: ratio(tp, tp + fp),
            iou: ratio(tp, tp + fp + fn_),
            pixels: p + n,
        }
    }

    /// P(score of a foreground pixel > a background pixel's) + ½ P(equal): the area under the
    /// ROC curve with ties (scikit-learn's `roc_auc_score`). 0.5 when a class is absent.
    pub fn auc(&self) -> f64 {
        let (p, n) = (self.positives(), self.negatives());
        if p == 0 || n == 0 {
            return 0.5;
        }
        let (mut below, mut wins) = (0u64, 0f64);
        for q in 0..=LEVELS as usize {
            wins += self.positive[q] as f64 * (below as f64 + 0.5 * self.negative[q] as f64);
            below += self.negative[q];
        }
        wins / (p as f64 * n as f64)
    }
}
