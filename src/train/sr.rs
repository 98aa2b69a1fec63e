//! Super-resolution as a [`TrainTask`], BasicSR's paired recipe on a folder of HR images:
//! each HR image is cropped to a multiple of the scale and degraded once, on loading, with
//! MATLAB's antialiased bicubic ([`crate::degrade::degrade`], bit-exact with the benchmarks'
//! `LR_bicubic` files); training items are aligned random patches (LR side `patch`, HR side
//! `patch · scale`) with BasicSR's `augment` (horizontal flip, vertical flip, transposition);
//! the loss is the L1 distance on [0, 1] values. Validation reports the loss and the Y-PSNR of
//! the whole validation images with the benchmarks' protocol (outputs rounded to 8 bits,
//! `scale` border pixels cropped), beside bicubic's in the model card.
//!
//! Layout: `DIR/train` and `DIR/val` (or `DIR/validation`) of HR images, or one folder of HR
//! images whose last tenth (name order) is held out. Benchmark sets (Set5, Set14…) never belong
//! there: they are for `gaze sr-eval`.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use rand::{Rng, SeedableRng};

use super::{mix, Batch, StepOutput, Target, TrainTask};
use crate::backbones::Model;
use crate::degrade::{degrade, imresize, mod_crop};
use crate::io::{read_image, Image};
use crate::sr::{image_files, sr_forward, upscale_tensor_with, SrOptions, Tiling};
use crate::Error;

/// One HR image and its bicubic LR image, both RGB HWC in [0, 1] on the 8-bit grid.
struct Pair {
    name: String,
    hr: Image,
    lr: Image,
}

/// Paired HR/LR super-resolution data, augmentation and loss.
pub struct SrTask {
    train: Vec<Pair>,
    val: Vec<Pair>,
    scale: usize,
    /// LR side of the square training patches (the HR patch is `scale` times larger).
    pub patch: usize,
    /// Patches drawn from each training image per epoch.
    pub patches_per_image: usize,
    bicubic_val_psnr_y: f64,
    description: serde_json::Value,
}

fn load(files: &[PathBuf], scale: usize, patch: usize) -> Result<Vec<Pair>, Error> {
    files
        .iter()
        .map(|path| {
            let img = read_image(path)?;
            let hr = mod_crop(&img, scale);
            let lr = degrade(&hr, scale).map_err(|e| {
                Error::msg(format!("'{}': {e}", path.display()))
            })?;
            if lr.width < patch || lr.height < patch {
                let side = patch * scale;
                return Err(Error::msg(format!(
                    "'{}' ({}×{}) is smaller than one training patch ({side}×{side} HR pixels); use a smaller --patch",
                    path.display(),
                    img.width,
                    img.height,
                )));
            }
            Ok(Pair {
                name: path.display().to_string(),
                hr,
                lr,
            })
        })
        .collect()
}

/// Y-PSNR of `sr` against `hr` with the benchmarks' protocol.
fn psnr_y(sr: &Image, hr: &Image, scale: usize) -> Result<f64, Error> {
    crate::metrics::evaluate_sr(&sr.to_rgb8(), &hr.to_rgb8(), scale)
        .map(|s| s.psnr_y)
        .map_err(|e| Error::msg(e.to_string()))
}

impl SrTask {
    /// Opens `dir` (see the module docs) for the super-resolution `model`; `patch` is the LR
    /// side of the training patches.
    pub fn open(
        dir: &Path,
        model: &Model,
        patch: usize,
        patches_per_image: usize,
    ) -> Result<SrTask, Error> {
        let scale = model.scale().ok_or_else(|| {
            Error::msg(format!(
                "'{}' is a {} model, not a super-resolution model",
                model.info().name,
                model.task()
            ))
        })?;
        if patch == 0 {
            return Err(Error::msg("--patch must be at least 1 LR pixel"));
        }
        let val_dir = ["val", "validation"]
            .iter()
            .map(|v| dir.join(v))
            .find(|v| v.is_dir());
        let (train_files, val_files, layout) = match (dir.join("train"), val_dir) {
            (t, Some(v)) if t.is_dir() => (
                image_files(&t)?,
                image_files(&v)?,
                format!("{} / {}", t.display(), v.display()),
            ),
            _ => {
                let files = image_files(dir)?;
                let (train, val) = super::hold_out(files.len());
                let held = files.len() - train.end;
                (
                    files[train].to_vec(),
                    files[val].to_vec(),
                    format!("{} (last {held} images held out)", dir.display()),
                )
            }
        };
        let train = load(&train_files, scale, patch)?;
        let val = load(&val_files, scale, 1)?;
        let mut bicubic = 0.0;
        for p in &val {
            bicubic += psnr_y(&imresize(&p.lr, scale as f64)?, &p.hr, scale)?;
        }
        let bicubic_val_psnr_y = bicubic / val.len().max(1) as f64;
        let description = serde_json::json!({
            "dir": dir.display().to_string(),
            "layout": layout,
            "train_images": train.iter().map(|p| p.name.clone()).collect::<Vec<_>>(),
            "val_images": val.iter().map(|p| p.name.clone()).collect::<Vec<_>>(),
            "degradation": format!("MATLAB bicubic ×1/{scale} with antialiasing (gaze degrade), rounded to 8 bits"),
            "lr_patch": patch,
            "hr_patch": patch * scale,
            "patches_per_image": patches_per_image,
            "val_bicubic_psnr_y": bicubic_val_psnr_y,
        });
        Ok(SrTask {
            train,
            val,
            scale,
            patch,
            patches_per_image: patches_per_image.max(1),
            bicubic_val_psnr_y,
            description,
        })
    }

    /// Mean Y-PSNR of bicubic upsampling on the validation images (the floor to beat).
    pub fn bicubic_val_psnr_y(&self) -> f64 {
        self.bicubic_val_psnr_y
    }

    /// Validation images.
    pub fn val_len(&self) -> usize {
        self.val.len()
    }

    /// An aligned random patch pair of `p`, augmented: CHW LR and HR values.
    fn item(&self, p: &Pair, rng: &mut impl Rng) -> (Vec<f32>, Vec<f32>) {
        let (s, lp) = (self.scale, self.patch);
        let x0 = rng.random_range(0..=p.lr.width - lp);
        let y0 = rng.random_range(0..=p.lr.height - lp);
        let (hflip, vflip, transpose) = (
            rng.random_bool(0.5),
            rng.random_bool(0.5),
            rng.random_bool(0.5),
        );
        let lr = crop_augmented(&p.lr, x0, y0, lp, hflip, vflip, transpose);
        let hr = crop_augmented(&p.hr, x0 * s, y0 * s, lp * s, hflip, vflip, transpose);
        (lr, hr)
    }
}

/// The `side`² square at (`x0`, `y0`) of `img` as CHW values, flipped and transposed.
fn crop_augmented(
    img: &Image,
    x0: usize,
    y0: usize,
    side: usize,
    hflip: bool,
    vflip: bool,
    transpose: bool,
) -> Vec<f32> {
    let mut out = vec![0f32; 3 * side * side];
    for y in 0..side {
        for x in 0..side {
            // Output (y, x) reads the source after the inverse of transpose ∘ vflip ∘ hflip.
            let (mut sy, mut sx) = if transpose { (x, y) } else { (y, x) };
            if vflip {
                sy = side - 1 - sy;
            }
            if hflip {
                sx = side - 1 - sx;
            }
            let src = ((y0 + sy) * img.width + x0 + sx) * 3;
            for c in 0..3 {
                out[(c * side + y) * side + x] = img.rgb[src + c];
            }
        }
    }
    out
}

impl TrainTask for SrTask {
    fn train_len(&self) -> usize {
        self.train.len() * self.patches_per_image
    }

    fn train_batch(
        &self,
        indices: &[usize],
        seed: u64,
        device: &Device,
    ) -> (Option<Batch>, Vec<String>) {
        if indices.is_empty() {
            return (None, Vec::new());
        }
        let (n, lp, hp) = (indices.len(), self.patch, self.patch * self.scale);
        let mut lr = Vec::with_capacity(n * 3 * lp * lp);
        let mut hr = Vec::with_capacity(n * 3 * hp * hp);
        for &i in indices {
            // Each item's patch and augmentation depend on the batch seed and the item only.
            let mut rng = rand::rngs::StdRng::seed_from_u64(mix(seed, i as u64));
            let (l, h) = self.item(&self.train[i % self.train.len()], &mut rng);
            lr.extend(l);
            hr.extend(h);
        }
        let batch = Batch {
            x: Tensor::from_data(TensorData::new(lr, [n, 3, lp, lp]), device),
            target: Target::Image(Tensor::from_data(
                TensorData::new(hr, [n, 3, hp, hp]),
                device,
            )),
        };
        (Some(batch), Vec::new())
    }

    fn step(&self, model: &Model, batch: Batch) -> Result<StepOutput, Error> {
        let items = batch.len();
        let Target::Image(hr) = batch.target else {
            return Err(Error::msg("super-resolution batches carry HR images"));
        };
        let sr = sr_forward(model, batch.x, false)?;
        Ok(StepOutput {
            loss: (sr - hr).abs().mean(),
            counts: Vec::new(),
            items,
        })
    }

    fn validate(&self, model: &Model, device: &Device) -> Result<Vec<(String, f64)>, Error> {
        let (mut loss, mut psnr) = (0.0f64, 0.0f64);
        for p in &self.val {
            let out = upscale_tensor_with(
                model,
                p.lr.to_tensor(device),
                SrOptions {
                    tiling: Tiling::auto(p.lr.height, p.lr.width),
                    ..SrOptions::default()
                },
            )?;
            loss += (out.clone() - p.hr.to_tensor(device))
                .abs()
                .mean()
                .into_scalar::<f32>() as f64;
            psnr += psnr_y(&Image::from_tensor(out, &p.lr), &p.hr, self.scale)?;
        }
        let n = self.val.len().max(1) as f64;
        Ok(vec![
            ("val_l1".into(), loss / n),
            ("val_psnr_y".into(), psnr / n),
        ])
    }

    fn describe(&self) -> serde_json::Value {
        let mut d = self.description.clone();
        d["augmentation"] = serde_json::json!({"hflip": true, "vflip": true, "transpose": true});
        d["loss"] = serde_json::json!("L1 on [0, 1] values");
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn augmented_crops_are_the_dihedral_transforms() {
        // A 3×3 patch of a 4×4 image whose red channel counts pixels row-major.
        let rgb = (0..16).flat_map(|i| [i as f32, 0.0, 0.0]).collect();
        let img = Image {
            width: 4,
            height: 4,
            rgb,
            alpha: None,
            gray: false,
            sixteen_bit: false,
        };
        let red = |h, v, t| crop_augmented(&img, 1, 1, 3, h, v, t)[..9].to_vec();
        assert_eq!(
            red(false, false, false),
            [5., 6., 7., 9., 10., 11., 13., 14., 15.]
        );
        assert_eq!(
            red(true, false, false),
            [7., 6., 5., 11., 10., 9., 15., 14., 13.]
        );
        assert_eq!(
            red(false, true, false),
            [13., 14., 15., 9., 10., 11., 5., 6., 7.]
        );
        assert_eq!(
            red(false, false, true),
            [5., 9., 13., 6., 10., 14., 7., 11., 15.]
        );
    }

    /// HR pixels carry the index of the LR pixel they shrink into; every augmented pair must
    /// keep that correspondence (`hr[Y][X] == lr[Y / s][X / s]`).
    #[test]
    fn patch_pairs_stay_aligned_under_augmentation() {
        let (s, lw, lh) = (3usize, 11usize, 9usize);
        let code = |x: usize, y: usize| (y * lw + x) as f32;
        let image = |w: usize, h: usize, f: &dyn Fn(usize, usize) -> f32| Image {
            width: w,
            height: h,
            rgb: (0..h)
                .flat_map(|y| (0..w).flat_map(move |x| [f(x, y), 0.5, 0.25]))
                .collect(),
            alpha: None,
            gray: false,
            sixteen_bit: false,
        };
        let pair = Pair {
            name: "synthetic".into(),
            lr: image(lw, lh, &|x, y| code(x, y)),
            hr: image(lw * s, lh * s, &|x, y| code(x / s, y / s)),
        };
        let task = SrTask {
            train: Vec::new(),
            val: Vec::new(),
            scale: s,
            patch: 4,
            patches_per_image: 1,
            bicubic_val_psnr_y: 0.0,
            description: serde_json::Value::Null,
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let (lp, hp) = (4, 4 * s);
        for _ in 0..32 {
            let (lr, hr) = task.item(&pair, &mut rng);
            for y in 0..hp {
                for x in 0..hp {
                    assert_eq!(hr[y * hp + x], lr[(y / s) * lp + x / s], "({x}, {y})");
                }
            }
        }
    }
}
