//! Super-resolution on whole images: tiling for large inputs, colour handling, evaluation.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use gaze_backbones::Model;
use serde::Serialize;

use crate::io::{read_image, Image};
use crate::metrics::evaluate_sr;
use crate::Error;

/// The model `gaze upscale` runs when none is named: PAN ×4 trained by gaze itself
/// (`gaze train --task sr` on free-licence photographs; `trained/sr_default/model_card.json`),
/// whose weights are embedded in the library.
pub const DEFAULT_MODEL: &str = "pan_x4";

/// The embedded weights of [`DEFAULT_MODEL`] (safetensors, official PAN key names).
pub const DEFAULT_WEIGHTS: &[u8] = include_bytes!("../trained/sr_default/pan_x4.safetensors");

/// The model card of the embedded weights (JSON: data, recipe, metrics).
pub const DEFAULT_MODEL_CARD: &str = include_str!("../trained/sr_default/model_card.json");

/// The embedded default upscaler ([`DEFAULT_MODEL`] with [`DEFAULT_WEIGHTS`]) on `device`:
/// super-resolution with nothing to download.
///
/// ```
/// use gaze::prelude::*;
/// use gaze::io::Image;
///
/// let device = Device::flex();
/// let model = gaze::sr::default_model(&device)?;
/// let small = Image::from_rgb8(&ndarray::Array3::from_elem((12, 16, 3), 128u8));
/// let big = gaze::sr::upscale_image(&model, &small, &device, None)?;
/// assert_eq!((big.height, big.width), (48, 64));
/// # Ok::<(), gaze::Error>(())
/// ```
pub fn default_model(device: &Device) -> Result<Model, Error> {
    let checkpoint = crate::Checkpoint::from_safetensors_bytes(
        DEFAULT_WEIGHTS.to_vec(),
        "the embedded default weights",
    )?;
    let (model, _) = crate::create_model(DEFAULT_MODEL, device)?
        .load_checkpoint(checkpoint)
        .map_err(|(report, _)| {
            Error::msg(format!(
                "the embedded weights do not fit {DEFAULT_MODEL}: {report}"
            ))
        })?;
    Ok(model)
}

/// How to cut a large input into tiles so memory stays bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tiling {
    /// Side of a tile in input pixels.
    pub tile: usize,
    /// Context added on every side of a tile. When it covers the network's receptive-field
    /// radius (37 px for PAN) the context is discarded and the result equals the untiled one
    /// ([`Blend::Crop`]); otherwise neighbouring tiles are cross-faded over the `2 · overlap`
    /// pixels they share ([`Blend::Feather`]). Multiples of 16 keep tiles aligned to the
    /// attention windows of window-attention models.
    pub overlap: usize,
}

impl Tiling {
    /// Tiles of 256 px with 48 px of context.
    pub const DEFAULT: Tiling = Tiling {
        tile: 256,
        overlap: 48,
    };

    /// The tiling to use for an `h × w` input: none when it fits in one tile of 512 px.
    pub fn auto(h: usize, w: usize) -> Option<Tiling> {
        (h * w > 512 * 512).then_some(Tiling::DEFAULT)
    }
}

/// How to run an SR model on a whole image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SrOptions {
    /// Cut large inputs into tiles (see [`Tiling`]); `None` runs the image whole.
    pub tiling: Option<Tiling>,
    /// Average the outputs of the 8 flips/transpositions of the input (the papers' "+"
    /// rows; 8× the compute).
    pub self_ensemble: bool,
    /// How tiles are combined; `None` picks [`Blend::for_model`].
    pub blend: Option<Blend>,
}

/// Runs an SR model on `[N, C, H, W]`, tile by tile when `tiling` is given.
/// Errors when the model is not a super-resolution model.
pub fn upscale_tensor(
    model: &Model,
    x: Tensor<4>,
    tiling: Option<Tiling>,
) -> Result<Tensor<4>, Error> {
    upscale_tensor_with(
        model,
        x,
        SrOptions {
            tiling,
            ..SrOptions::default()
        },
    )
}

/// The geometric self-ensemble of `run` on `x` (Lim et al., EDSR, 2017; the "+" of RCAN, HAN,
/// HAT…): the mean over the 8 transforms T of the dihedral group (vertical flip, horizontal
/// flip, transposition and their compositions) of `T⁻¹(run(T(x)))`, in float.
pub fn self_ensemble(
    x: Tensor<4>,
    run: impl Fn(Tensor<4>) -> Result<Tensor<4>, Error>,
) -> Result<Tensor<4>, Error> {
    let mut sum: Option<Tensor<4>> = None;
    for t in 0..8u8 {
        let (flip_v, flip_h, transpose) = (t & 1 != 0, t & 2 != 0, t & 4 != 0);
        let mut xt = x.clone();
        if flip_v {
            xt = xt.flip([2]);
        }
        if flip_h {
            xt = xt.flip([3]);
        }
        if transpose {
            xt = xt.swap_dims(2, 3);
        }
        let mut y = run(xt)?;
        if transpose {
            y = y.swap_dims(2, 3);
        }
        if flip_h {
            y = y.flip([3]);
        }
        if flip_v {
            y = y.flip([2]);
        }
        sum = Some(match sum {
            None => y,
            Some(s) => s + y,
        });
    }
    Ok(sum.expect("8 transforms") / 8.0)
}

/// The upscaling factor of an SR model; an error for any other model.
fn sr_scale(model: &Model) -> Result<usize, Error> {
    model.scale().ok_or_else(|| {
        Error::msg(format!(
            "model '{}' is not a super-resolution model",
            model.info().name
        ))
    })
}

/// One forward pass of an SR model on `x` (a whole image or a tile), self-ensembled when asked.
pub(crate) fn sr_forward(model: &Model, x: Tensor<4>, ensemble: bool) -> Result<Tensor<4>, Error> {
    let forward = |x: Tensor<4>| -> Result<Tensor<4>, Error> {
        model
            .forward(x)?
            .into_image()
            .ok_or_else(|| Error::msg("the model did not return an image"))
    };
    if ensemble {
        self_ensemble(x, forward)
    } else {
        forward(x)
    }
}

/// [`upscale_tensor`] with every option: tiles, each tile self-ensembled when asked.
pub fn upscale_tensor_with(
    model: &Model,
    x: Tensor<4>,
    options: SrOptions,
) -> Result<Tensor<4>, Error> {
    let scale = sr_scale(model)?;
    let sr = |x: Tensor<4>| sr_forward(model, x, options.self_ensemble);
    let [n, c, h, w] = x.dims();
    let Some(tiling) = options
        .tiling
        .filter(|t| t.tile > 0 && (h > t.tile || w > t.tile))
    else {
        return sr(x);
    };
    let blend = options
        .blend
        .unwrap_or_else(|| Blend::for_model(model, tiling));
    let device = x.device();
    let mut outputs = Vec::with_capacity(n);
    for i in 0..n {
        let item = x.clone().slice([i..i + 1, 0..c, 0..h, 0..w]);
        let mut rows = Vec::with_capacity(h * scale * w * scale * c);
        run_bands(&sr, item, scale, tiling, blend, |band, _| {
            rows.extend_from_slice(band);
            Ok(())
        })?;
        let hwc = Tensor::<3>::from_data(TensorData::new(rows, [h * scale, w * scale, c]), &device);
        outputs.push(hwc.permute([2, 0, 1]).unsqueeze::<4>());
    }
    Ok(Tensor::cat(outputs, 0))
}

/// How the outputs of overlapping tiles are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blend {
    /// Keep each tile's own region, discard its context: exact for models whose receptive
    /// field the context covers ([`Model::receptive_radius`], e.g. PAN).
    Crop,
    /// Cross-fade neighbouring tiles linearly over the `2 · overlap` pixels they share, so that
    /// models with global attention (channel attention pools over the tile) show no seam.
    Feather,
}

impl Blend {
    /// [`Blend::Crop`] when the model's receptive field fits in the tiling's context,
    /// [`Blend::Feather`] otherwise.
    pub fn for_model(model: &Model, tiling: Tiling) -> Blend {
        match model.receptive_radius() {
            Some(r) if r <= tiling.overlap => Blend::Crop,
            _ => Blend::Feather,
        }
    }
}

/// The weights of one tile along one axis, in output pixels `[e0·s, e1·s)`: the tile owns input
/// pixels `[i0, i1)` and was run on `[e0, e1)` (its context clipped to `[0, full)`).
fn axis_weights(e0: usize, e1: usize, i0: usize, i1: usize, s: usize, blend: Blend) -> Vec<f32> {
    (e0 * s..e1 * s)
        .map(|p| {
            let q = p as f64 + 0.5;
            match blend {
                Blend::Crop => f32::from((i0 * s..i1 * s).contains(&p)),
                Blend::Feather => {
                    // A neighbour before: ramp up over [e0, 2·i0 − e0); after: down over
                    // [2·i1 − e1, e1). Complementary ramps of neighbours sum to 1.
                    let mut wgt = 1.0f64;
                    if e0 < i0 {
                        let (a, b) = ((e0 * s) as f64, ((2 * i0 - e0) * s) as f64);
                        wgt = wgt.min(((q - a) / (b - a)).clamp(0.0, 1.0));
                    }
                    if i1 < e1 {
                        let (a, b) = (((2 * i1).saturating_sub(e1) * s) as f64, (e1 * s) as f64);
                        wgt = wgt.min(((b - q) / (b - a)).clamp(0.0, 1.0));
                    }
                    wgt as f32
                }
            }
        })
        .collect()
}

/// Runs `sr` on `x` (`[1, C, H, W]`) in bands of tiles, one band of `tiling.tile` input rows at
/// a time, and hands the finished output rows (HWC, f32, not clamped) to `emit` in order, with
/// the number of bands done so far: memory holds one band of output, never the whole image.
pub fn run_bands(
    sr: &dyn Fn(Tensor<4>) -> Result<Tensor<4>, Error>,
    x: Tensor<4>,
    scale: usize,
    tiling: Tiling,
    blend: Blend,
    mut emit: impl FnMut(&[f32], usize) -> Result<(), Error>,
) -> Result<(), Error> {
    let [_, c, h, w] = x.dims();
    let (tile, overlap) = (tiling.tile.max(1), tiling.overlap);
    let (ws, s) = (w * scale, scale);
    // Output rows [start, start + rows) still open: weighted sums and weight sums.
    let mut start = 0usize;
    let mut acc: Vec<f32> = Vec::new();
    let mut wsum: Vec<f32> = Vec::new();
    let bands = h.div_ceil(tile);
    for band in 0..bands {
        let (i0, i1) = (band * tile, ((band + 1) * tile).min(h));
        let (e0, e1) = (i0.saturating_sub(overlap), (i1 + overlap).min(h));
        let rows_needed = e1 * s - start;
        acc.resize(rows_needed * ws * c, 0.0);
        wsum.resize(rows_needed * ws, 0.0);
        let wy = axis_weights(e0, e1, i0, i1, s, blend);
        for j0 in (0..w).step_by(tile) {
            let j1 = (j0 + tile).min(w);
            let (f0, f1) = (j0.saturating_sub(overlap), (j1 + overlap).min(w));
            let wx = axis_weights(f0, f1, j0, j1, s, blend);
            let out = sr(x.clone().slice([0..1, 0..c, e0..e1, f0..f1]))?;
            let [_, oc, oh, ow] = out.dims();
            if (oc, oh, ow) != (c, (e1 - e0) * s, (f1 - f0) * s) {
                return Err(Error::msg(format!(
                    "the model returned {oc}×{oh}×{ow} for a {c}×{}×{} tile at ×{s}",
                    e1 - e0,
                    f1 - f0
                )));
            }
            let data = out
                .into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .map_err(|e| Error::msg(format!("tile output: {e:?}")))?;
            for (ty, &wyv) in wy.iter().enumerate() {
                if wyv == 0.0 {
                    continue;
                }
                let row = e0 * s + ty - start;
                for (tx, &wxv) in wx.iter().enumerate() {
                    let wgt = wyv * wxv;
                    if wgt == 0.0 {
                        continue;
                    }
                    let col = f0 * s + tx;
                    let cell = row * ws + col;
                    wsum[cell] += wgt;
                    for ch in 0..c {
                        acc[cell * c + ch] += wgt * data[(ch * oh + ty) * ow + tx];
                    }
                }
            }
        }
        // Rows before the next band's context are final.
        let done_until = if band + 1 < bands {
            ((band + 1) * tile).saturating_sub(overlap) * s
        } else {
            h * s
        };
        let finished = done_until - start;
        for cell in 0..finished * ws {
            let wgt = wsum[cell];
            for ch in 0..c {
                acc[cell * c + ch] /= wgt;
            }
        }
        emit(&acc[..finished * ws * c], band + 1)?;
        acc.drain(..finished * ws * c);
        wsum.drain(..finished * ws);
        start = done_until;
    }
    Ok(())
}

/// Upscales an image: gray inputs go through the RGB model as three equal channels and come
/// back gray, alpha is upscaled separately with bicubic interpolation, the bit depth is kept.
pub fn upscale_image(
    model: &Model,
    img: &Image,
    device: &Device,
    tiling: Option<Tiling>,
) -> Result<Image, Error> {
    upscale_image_with(
        model,
        img,
        device,
        SrOptions {
            tiling,
            ..SrOptions::default()
        },
    )
}

/// [`upscale_image`] with every option (tiling, self-ensemble).
pub fn upscale_image_with(
    model: &Model,
    img: &Image,
    device: &Device,
    options: SrOptions,
) -> Result<Image, Error> {
    let output = upscale_tensor_with(model, img.to_tensor(device), options)?;
    Ok(Image::from_tensor(output, img).with_alpha_resized_from(img))
}

/// Upscales `img` and writes the result to a PNG file band by band ([`run_bands`]): peak memory
/// grows with one row of tiles, not with the output (a 4000×3000 photo at ×4 is a 16000×12000
/// PNG). Gray stays gray, the bit depth is kept, alpha is upscaled with bicubic interpolation
/// row by row; the file is written atomically. `progress(done, total)` counts bands. Without
/// tiling, or when the image fits one tile, the output is made whole and then written.
pub fn upscale_image_to_png(
    model: &Model,
    img: &Image,
    device: &Device,
    options: SrOptions,
    path: &Path,
    mut progress: impl FnMut(usize, usize),
) -> Result<(), Error> {
    let scale = sr_scale(model)?;
    let tiling = options
        .tiling
        .filter(|t| t.tile > 0 && (img.height > t.tile || img.width > t.tile));
    let Some(tiling) = tiling else {
        let out = upscale_image_with(model, img, device, options)?;
        progress(1, 1);
        return Ok(crate::io::write_image(path, &out)?);
    };
    let sr = |x: Tensor<4>| sr_forward(model, x, options.self_ensemble);
    let (ws, hs) = (img.width * scale, img.height * scale);
    let alpha = img
        .alpha
        .as_ref()
        .map(|a| crate::degrade::RowResampler::new(a, img.height, img.width, scale));
    let channels = if img.gray { 1 } else { 3 } + usize::from(alpha.is_some());
    let color = match (img.gray, alpha.is_some()) {
        (true, false) => png::ColorType::Grayscale,
        (true, true) => png::ColorType::GrayscaleAlpha,
        (false, false) => png::ColorType::Rgb,
        (false, true) => png::ColorType::Rgba,
    };
    let (depth, max) = if img.sixteen_bit {
        (png::BitDepth::Sixteen, 65535.0f32)
    } else {
        (png::BitDepth::Eight, 255.0f32)
    };
    let bands = img.height.div_ceil(tiling.tile);
    let blend = options
        .blend
        .unwrap_or_else(|| Blend::for_model(model, tiling));
    let x = img.to_tensor(device);
    let io_err = |e: Error| std::io::Error::other(e.to_string());
    let result = crate::atomic_write::write_atomically(path, |file| {
        let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), ws as u32, hs as u32);
        encoder.set_color(color);
        encoder.set_depth(depth);
        let mut writer = encoder.write_header().map_err(std::io::Error::other)?;
        let mut stream = writer.stream_writer().map_err(std::io::Error::other)?;
        let mut y = 0usize;
        let mut line = Vec::with_capacity(ws * channels * 2);
        run_bands(&sr, x, scale, tiling, blend, |rows, done| {
            for row in rows.chunks(ws * 3) {
                let alpha_row = alpha.as_ref().map(|a| a.row(y));
                line.clear();
                for (i, px) in row.chunks(3).enumerate() {
                    let mut push = |v: f32| {
                        let q = (v.clamp(0.0, 1.0) * max).round();
                        if img.sixteen_bit {
                            line.extend_from_slice(&(q as u16).to_be_bytes());
                        } else {
                            line.push(q as u8);
                        }
                    };
                    if img.gray {
                        push((px[0] + px[1] + px[2]) / 3.0);
                    } else {
                        px.iter().for_each(|&v| push(v));
                    }
                    if let Some(a) = &alpha_row {
                        push(a[i]);
                    }
                }
                std::io::Write::write_all(&mut stream, &line)
                    .map_err(|e| Error::msg(format!("writing the PNG: {e}")))?;
                y += 1;
            }
            progress(done, bands);
            Ok(())
        })
        .map_err(io_err)?;
        stream.finish().map_err(std::io::Error::other)?;
        Ok(())
    });
    result.map_err(|e| Error::msg(format!("cannot write '{}': {e}", path.display())))
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
    /// Whether the outputs are ×8 self-ensembles.
    pub self_ensemble: bool,
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

/// The image files of a folder (not recursive), sorted by name; an error when there are none.
pub fn image_files(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Error::msg(format!("cannot read directory '{}': {e}", dir.display())))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && crate::data::is_image(p))
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
    on_image: impl FnMut(&ImageScore),
) -> Result<Report, Error> {
    evaluate_with(model, device, pairs, false, on_image)
}

/// [`evaluate`], optionally with the ×8 self-ensemble ([`self_ensemble`]).
pub fn evaluate_with(
    model: &Model,
    device: &Device,
    pairs: &[(String, PathBuf, PathBuf)],
    self_ensemble: bool,
    mut on_image: impl FnMut(&ImageScore),
) -> Result<Report, Error> {
    let scale = sr_scale(model)?;
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
        let output = upscale_tensor_with(
            model,
            lr.to_tensor(device),
            SrOptions {
                tiling: Tiling::auto(lr.height, lr.width),
                self_ensemble,
                blend: None,
            },
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
        self_ensemble,
        psnr_y: mean(|s| s.psnr_y),
        ssim_y: mean(|s| s.ssim_y),
        psnr_rgb: mean(|s| s.psnr_rgb),
        ssim_rgb: mean(|s| s.ssim_rgb),
        images,
    })
}
