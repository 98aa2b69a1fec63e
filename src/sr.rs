//! Super-resolution on whole images: tiling for large inputs, colour handling, evaluation.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use gaze_backbones::Model;
use serde::Serialize;

use crate::io::{read_image, Image};
use crate::metrics::evaluate_sr;
use crate::Error;

/// How to cut a large input into tiles so memory stays bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tiling {
    /// Side of a tile in input pixels.
    pub tile: usize,
    /// Context added around each tile and then discarded. When it covers the network's
    /// receptive-field radius (37 px for PAN) the result equals the untiled one.
    pub overlap: usize,
}

impl Tiling {
    /// Tiles of 256 px with 40 px of context.
    pub const DEFAULT: Tiling = Tiling {
        tile: 256,
        overlap: 40,
    };

    /// The tiling to use for an `h × w` input: none when it fits in one tile of 512 px.
    pub fn auto(h: usize, w: usize) -> Option<Tiling> {
        (h * w > 512 * 512).then_some(Tiling::DEFAULT)
    }
}

/// Runs an SR model on `[N, C, H, W]`, tile by tile when `tiling` is given.
/// Errors when the model is not a super-resolution model.
pub fn upscale_tensor(
    model: &Model,
    x: Tensor<4>,
    tiling: Option<Tiling>,
) -> Result<Tensor<4>, Error> {
    let scale = model.scale().ok_or_else(|| {
        Error::msg(format!(
            "model '{}' is not a super-resolution model",
            model.info().name
        ))
    })?;
    let sr = |x: Tensor<4>| -> Result<Tensor<4>, Error> {
        model
            .forward(x)?
            .into_image()
            .ok_or_else(|| Error::msg("the model did not return an image"))
    };
    let [n, _, h, w] = x.dims();
    let Some(Tiling { tile, overlap }) =
        tiling.filter(|t| t.tile > 0 && (h > t.tile || w > t.tile))
    else {
        return sr(x);
    };
    let mut out: Option<Tensor<4>> = None;
    for y0 in (0..h).step_by(tile) {
        for x0 in (0..w).step_by(tile) {
            let (y1, x1) = ((y0 + tile).min(h), (x0 + tile).min(w));
            let (py0, px0) = (y0.saturating_sub(overlap), x0.saturating_sub(overlap));
            let (py1, px1) = ((y1 + overlap).min(h), (x1 + overlap).min(w));
            let patch = sr(x.clone().slice([0..n, 0..x.dims()[1], py0..py1, px0..px1]))?;
            let c = patch.dims()[1];
            let inner = patch.slice([
                0..n,
                0..c,
                (y0 - py0) * scale..(y1 - py0) * scale,
                (x0 - px0) * scale..(x1 - px0) * scale,
            ]);
            let canvas =
                out.unwrap_or_else(|| Tensor::zeros([n, c, h * scale, w * scale], &x.device()));
            out = Some(canvas.slice_assign(
                [0..n, 0..c, y0 * scale..y1 * scale, x0 * scale..x1 * scale],
                inner,
            ));
        }
    }
    Ok(out.expect("at least one tile"))
}

/// Upscales an image: gray inputs go through the RGB model as three equal channels and come
/// back gray, alpha is upscaled separately with bicubic interpolation, the bit depth is kept.
pub fn upscale_image(
    model: &Model,
    img: &Image,
    device: &Device,
    tiling: Option<Tiling>,
) -> Result<Image, Error> {
    let output = upscale_tensor(model, img.to_tensor(device), tiling)?;
    Ok(Image::from_tensor(output, img).with_alpha_resized_from(img))
}

/// Scores of one image.
#[derive(Debug, Clone, Serialize)]
pub struct ImageScore {
    /// HR file stem.
    pub name: String,
    /// PSNR on BT.601 Y (dB).
    pub psnr_y: f64,
    /// SSIM on Y.
    pub ssim_y: f64,
    /// PSNR on RGB (dB).
    pub psnr_rgb: f64,
    /// SSIM on RGB (mean over channels).
    pub ssim_rgb: f64,
}

/// The whole evaluation, as printed by `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Model name.
    pub model: String,
    /// Upscaling factor.
    pub scale: usize,
    /// Mean over images.
    pub psnr_y: f64,
    /// Mean over images.
    pub ssim_y: f64,
    /// Mean over images.
    pub psnr_rgb: f64,
    /// Mean over images.
    pub ssim_rgb: f64,
    /// Per image, in name order.
    pub images: Vec<ImageScore>,
}

/// Extensions of the image files the build can decode.
pub const IMAGE_EXTENSIONS: [&str; 7] = ["png", "jpg", "jpeg", "bmp", "tif", "tiff", "gif"];

fn image_files(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Error::msg(format!("cannot read directory '{}': {e}", dir.display())))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::msg(format!("no images in '{}'", dir.display())));
    }
    Ok(files)
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Pairs every HR image with its LR input: `NAME` ↔ `NAMEx{scale}` (Set5/Set14 naming) or `NAME`.
pub fn pair_images(
    hr_dir: &Path,
    lr_dir: &Path,
    scale: usize,
) -> Result<Vec<(String, PathBuf, PathBuf)>, Error> {
    let lr_by_stem: HashMap<String, PathBuf> = image_files(lr_dir)?
        .into_iter()
        .map(|p| (stem(&p), p))
        .collect();
    image_files(hr_dir)?
        .into_iter()
        .map(|hr| {
            let name = stem(&hr);
            let suffixed = format!("{name}x{scale}");
            let lr = lr_by_stem
                .get(&suffixed)
                .or_else(|| lr_by_stem.get(&name))
                .ok_or_else(|| {
                    Error::msg(format!(
                        "no LR image for '{}' in '{}' (looked for {suffixed}.* and {name}.*)",
                        hr.display(),
                        lr_dir.display()
                    ))
                })?;
            Ok((name, hr, lr.clone()))
        })
        .collect()
}

/// Evaluates `model` on HR/LR pairs (see [`pair_images`]) with the standard protocol: output
/// clamped to [0, 1] and rounded to 8 bits, HR cropped to the SR size, `scale` pixels of border
/// cropped, PSNR and SSIM on BT.601 Y and on RGB, averaged over images.
pub fn evaluate(
    model: &Model,
    device: &Device,
    pairs: &[(String, PathBuf, PathBuf)],
    mut on_image: impl FnMut(&ImageScore),
) -> Result<Report, Error> {
    let scale = model.scale().ok_or_else(|| {
        Error::msg(format!(
            "'{}' is not a super-resolution model",
            model.info().name
        ))
    })?;
    let mut images = Vec::with_capacity(pairs.len());
    for (name, hr_path, lr_path) in pairs {
        let lr = read_image(lr_path)?;
        let hr = read_image(hr_path)?;
        let (h, w) = (lr.height * scale, lr.width * scale);
        if hr.height < h || hr.width < w {
            return Err(Error::msg(format!(
                "'{}' is {}×{}, smaller than its LR image ×{scale} ({}×{})",
                hr_path.display(),
                hr.width,
                hr.height,
                w,
                h
            )));
        }
        let output = upscale_tensor(
            model,
            lr.to_tensor(device),
            Tiling::auto(lr.height, lr.width),
        )?;
        let sr = Image::from_tensor(output, &lr).to_rgb8();
        // HR images whose size is not a multiple of the scale are cropped to the SR size.
        let hr = hr.to_rgb8().slice_move(ndarray::s![..h, ..w, ..]);
        let s = evaluate_sr(&sr, &hr, scale).map_err(|e| Error::msg(format!("{name}: {e}")))?;
        let score = ImageScore {
            name: name.clone(),
            psnr_y: s.psnr_y,
            ssim_y: s.ssim_y,
            psnr_rgb: s.psnr_rgb,
            ssim_rgb: s.ssim_rgb,
        };
        on_image(&score);
        images.push(score);
    }
    let mean = |f: fn(&ImageScore) -> f64| images.iter().map(f).sum::<f64>() / images.len() as f64;
    Ok(Report {
        model: model.info().name.to_string(),
        scale,
        psnr_y: mean(|s| s.psnr_y),
        ssim_y: mean(|s| s.ssim_y),
        psnr_rgb: mean(|s| s.psnr_rgb),
        ssim_rgb: mean(|s| s.ssim_rgb),
        images,
    })
}
