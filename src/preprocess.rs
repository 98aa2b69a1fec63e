//! The eval transform of a classifier, equal to timm's
//! `create_transform(**resolve_data_config({}, model=m))` on a PIL image:
//!
//! 1. `Image.open(p).convert("RGB")` ([`open_rgb`], [`to_pil_rgb`]): palette expanded, alpha
//!    dropped (not composited), gray replicated, 16-bit samples reduced as PIL does;
//! 2. resize to `floor(size / crop_pct)`: the short side for `crop_mode = center`, both sides for
//!    `squash`, the long side for `border`, with PIL's resampling ([`resize`]: the same filters,
//!    the same 22-bit fixed-point coefficients and rounding, so the result equals PIL's to the
//!    bit);
//! 3. centre crop (padding with the mean colour for `border`), as torchvision's `CenterCrop` and
//!    timm's `CenterCropOrPad`, with Python's round-half-to-even for the offsets;
//! 4. `ToTensor` and `Normalize` in f32.
//!
//! ```no_run
//! use gaze::prelude::*;
//!
//! let device = Device::flex();
//! let model = gaze::create_model("resnet50", &device)?;
//! let transform = gaze::preprocess::Transform::of(&model)?;
//! let image = gaze::preprocess::open_rgb("cat.jpg")?;
//! let x: Tensor<4> = transform.to_tensor(&[image], &device); // [1, 3, 224, 224]
//! # Ok::<(), gaze::Error>(())
//! ```

use std::path::Path;

use burn::prelude::*;
use image::{DynamicImage, RgbImage};

use crate::backbones::{CropMode, DataConfig, Interpolation, Model};
use crate::io::{decode_image, ImageIoError};

/// Reads an image as PIL's `Image.open(path).convert("RGB")` does. JPEG files are decoded with
/// libjpeg-turbo's algorithms (through mozjpeg: islow IDCT, fancy upsampling), as PIL does, so
/// the pixels are PIL's exactly; other formats through the `image` crate.
pub fn open_rgb(path: impl AsRef<Path>) -> Result<RgbImage, ImageIoError> {
    let path = path.as_ref();
    let mut head = [0u8; 3];
    let is_jpeg = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
        .is_ok()
        && head == [0xFF, 0xD8, 0xFF];
    if is_jpeg {
        return decode_jpeg(path);
    }
    Ok(to_pil_rgb(&decode_image(path)?))
}

/// A JPEG as PIL decodes it (gray replicated; CMYK/YCCK as PIL's inverted-Adobe conversion).
fn decode_jpeg(path: &Path) -> Result<RgbImage, ImageIoError> {
    let fail = |message: String| ImageIoError::Decode {
        path: path.display().to_string(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    // libjpeg pads a truncated scan with gray and only warns; PIL refuses the file ("image file
    // is truncated"), and so does gaze.
    if !jpeg_is_complete(&bytes) {
        return Err(fail(
            "the JPEG data is truncated (no end-of-image marker after its last scan)".into(),
        ));
    }
    // mozjpeg reports libjpeg's fatal errors by unwinding.
    let decoded = std::panic::catch_unwind(|| -> std::io::Result<(usize, usize, Vec<u8>)> {
        use mozjpeg::{ColorSpace, Decompress};
        let d = Decompress::new_mem(&bytes)?;
        let cmyk = matches!(d.color_space(), ColorSpace::JCS_CMYK | ColorSpace::JCS_YCCK);
        let mut img = if cmyk {
            d.to_colorspace(ColorSpace::JCS_CMYK)?
        } else {
            d.rgb()?
        };
        let (w, h) = (img.width(), img.height());
        let mut px = img.read_scanlines::<u8>()?;
        img.finish()?;
        if cmyk {
            // PIL reads 4-channel JPEGs as inverted CMYK: out = k - k·(255 - c)/255, rounded.
            let muldiv255 = |a: u32, b: u32| {
                let t = a * b + 128;
                ((t >> 8) + t) >> 8
            };
            px = px
                .chunks_exact(4)
                .flat_map(|q| {
                    let k = q[3] as u32;
                    [0, 1, 2].map(|i| (k - muldiv255(255 - q[i] as u32, k)) as u8)
                })
                .collect();
        }
        Ok((w, h, px))
    });
    match decoded {
        Ok(Ok((w, h, px))) if w > 0 && h > 0 => RgbImage::from_raw(w as u32, h as u32, px)
            .ok_or_else(|| fail("short pixel data".into())),
        Ok(Ok(_)) => Err(fail("the image is empty".into())),
        Ok(Err(e)) => Err(fail(e.to_string())),
        Err(payload) => Err(fail(
            payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "corrupt JPEG data".into()),
        )),
    }
}

/// Whether a JPEG stream ends its last scan with an end-of-image marker (`FF D9`). Entropy-coded
/// data never holds `FF D9` (a data `FF` is followed by `00`), and an embedded EXIF thumbnail's
/// marker comes before the main image's last start-of-scan (`FF DA`), so a file cut anywhere in
/// or after its last scan lacks it.
pub fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let Some(last_sos) = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]) else {
        return true; // no scan at all: the decoder's own error says more
    };
    bytes[last_sos..].windows(2).any(|w| w == [0xFF, 0xD9])
}

/// PIL's `convert("RGB")` of a decoded image.
///
/// PIL keeps the high byte of 16-bit colour samples (its PNG decoder reads them as `RGB;16B`;
/// 16-bit gray + alpha opens as RGBA of high bytes too), but reads 16-bit gray as integers
/// (`I;16`), which `convert` clips to 255: a 16-bit gray image is mostly white in PIL, and so it
/// is here, because timm-trained models saw exactly that.
/// Alpha is dropped without compositing; gray is replicated to the three channels.
pub fn to_pil_rgb(img: &DynamicImage) -> RgbImage {
    let (w, h) = (img.width(), img.height());
    let gray = |v: Vec<u8>| {
        RgbImage::from_fn(w, h, |x, y| {
            let g = v[(y * w + x) as usize];
            image::Rgb([g, g, g])
        })
    };
    match img {
        DynamicImage::ImageLuma8(g) => gray(g.as_raw().clone()),
        DynamicImage::ImageLumaA8(g) => gray(g.as_raw().chunks(2).map(|p| p[0]).collect()),
        DynamicImage::ImageLuma16(g) => {
            gray(g.as_raw().iter().map(|&v| v.min(255) as u8).collect())
        }
        // PIL opens 16-bit gray + alpha as RGBA of the high bytes.
        DynamicImage::ImageLumaA16(g) => {
            gray(g.as_raw().chunks(2).map(|p| (p[0] >> 8) as u8).collect())
        }
        DynamicImage::ImageRgb16(_) | DynamicImage::ImageRgba16(_) => {
            let rgba = img.to_rgba16();
            RgbImage::from_fn(w, h, |x, y| {
                let p = rgba.get_pixel(x, y).0;
                image::Rgb([(p[0] >> 8) as u8, (p[1] >> 8) as u8, (p[2] >> 8) as u8])
            })
        }
        _ => img.to_rgb8(),
    }
}

/// PIL's `convert("L")` of an RGB image: ITU-R 601-2 luma in 16-bit fixed point.
pub fn pil_luma(rgb: &RgbImage) -> image::GrayImage {
    image::GrayImage::from_fn(rgb.width(), rgb.height(), |x, y| {
        let [r, g, b] = rgb.get_pixel(x, y).0;
        let l = (r as u32 * 19595 + g as u32 * 38470 + b as u32 * 7471 + 0x8000) >> 16;
        image::Luma([l as u8])
    })
}

/// Errors of the transform.
#[derive(Debug, thiserror::Error)]
pub enum TransformError {
    /// The model has no image-classification transform (e.g. an SR model).
    #[error("'{0}' takes whole images in [0, 1]; it has no classification transform")]
    NotAClassifier(String),
    /// The model takes a channel count the transform cannot make.
    #[error("the transform makes 1- or 3-channel inputs; the model takes {0} channels")]
    Channels(usize),
}

/// A classifier's eval transform (timm's `transforms_imagenet_eval`).
#[derive(Debug, Clone, PartialEq)]
pub struct Transform {
    /// Output `[H, W]`.
    pub size: [usize; 2],
    /// Resampling filter.
    pub interpolation: Interpolation,
    /// Fraction of the resized image kept by the centre crop.
    pub crop_pct: f64,
    /// How the image is fitted before the crop.
    pub crop_mode: CropMode,
    /// Per-channel mean of [0, 1] values.
    pub mean: [f64; 3],
    /// Per-channel standard deviation.
    pub std: [f64; 3],
    /// 1 (PIL's `L` conversion, first mean/std) or 3.
    pub channels: usize,
}

impl Transform {
    /// The transform of a data configuration; `None` for image-to-image models.
    pub fn from_config(data: &DataConfig) -> Option<Transform> {
        data.image().map(|c| Transform {
            size: [c.input_size[1], c.input_size[2]],
            interpolation: c.interpolation,
            crop_pct: c.crop_pct,
            crop_mode: c.crop_mode,
            mean: c.mean,
            std: c.std,
            channels: c.input_size[0],
        })
    }

    /// The transform as timm's data-config JSON (`input_size`, `interpolation`, `crop_pct`,
    /// `crop_mode`, `mean`, `std`), as `gaze train` writes it to a run's `data_config.json`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "input_size": [self.channels, self.size[0], self.size[1]],
            "interpolation": self.interpolation.name(),
            "crop_pct": self.crop_pct,
            "crop_mode": self.crop_mode.name(),
            "mean": self.mean,
            "std": self.std,
        })
    }

    /// Reads a data-config JSON file (the format of [`Self::to_json`]).
    pub fn from_json_file(path: &Path) -> Result<Transform, crate::Error> {
        let bad =
            |why: String| crate::Error::msg(format!("data config '{}': {why}", path.display()));
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let num = |x: &serde_json::Value| {
            x.as_f64()
                .ok_or_else(|| bad(format!("{x} is not a number")))
        };
        let triple = |k: &str| -> Result<[f64; 3], crate::Error> {
            let a = v[k]
                .as_array()
                .filter(|a| a.len() == 3)
                .ok_or_else(|| bad(format!("'{k}' must have 3 numbers")))?;
            Ok([num(&a[0])?, num(&a[1])?, num(&a[2])?])
        };
        let size = triple("input_size")?;
        let channels = size[0] as usize;
        if !matches!(channels, 1 | 3) || size[1] < 1.0 || size[2] < 1.0 {
            return Err(bad(format!("input_size {size:?} is not [1 or 3, H, W]")));
        }
        let name = |k: &str| {
            v[k].as_str()
                .ok_or_else(|| bad(format!("'{k}' is missing")))
        };
        Ok(Transform {
            size: [size[1] as usize, size[2] as usize],
            interpolation: Interpolation::from_name(name("interpolation")?)
                .ok_or_else(|| bad("unknown interpolation".into()))?,
            crop_pct: num(&v["crop_pct"])?,
            crop_mode: CropMode::from_name(name("crop_mode")?)
                .ok_or_else(|| bad("unknown crop_mode".into()))?,
            mean: triple("mean")?,
            std: triple("std")?,
            channels,
        })
    }

    /// The transform of a model: its registry entry's configuration, with the model's channel
    /// count (a model made with `in_chans = 1` gets PIL's gray conversion).
    pub fn of(model: &Model) -> Result<Transform, TransformError> {
        let info = model.info();
        let mut t = Transform::from_config(&info.data)
            .ok_or_else(|| TransformError::NotAClassifier(info.name.to_string()))?;
        t.channels = match model.in_chans() {
            c @ (1 | 3) => c,
            c => return Err(TransformError::Channels(c)),
        };
        Ok(t)
    }

    /// The size the image is resized to before the crop, timm's `scale_size`:
    /// `floor(size / crop_pct)` per side.
    pub fn scale_size(&self) -> [usize; 2] {
        self.size
            .map(|s| (s as f64 / self.crop_pct).floor() as usize)
    }

    /// The `(width, height)` of the resize for an image of `(width, height)`.
    pub fn resized_size(&self, width: usize, height: usize) -> (usize, usize) {
        let [sh, sw] = self.scale_size();
        match self.crop_mode {
            CropMode::Squash => (sw, sh),
            CropMode::Center if sh == sw => {
                // torchvision's Resize(int): the short side to `sh`, the long side truncated.
                let (short, long) = (width.min(height), width.max(height));
                let new_long = (sh as f64 * long as f64 / short as f64) as usize;
                if width <= height {
                    (sh, new_long)
                } else {
                    (new_long, sh)
                }
            }
            // timm's ResizeKeepRatio: `longest = 1` for border, `0` (shortest) otherwise.
            CropMode::Center | CropMode::Border => {
                let longest = if self.crop_mode == CropMode::Border {
                    1.0
                } else {
                    0.0
                };
                let rh = height as f64 / sh as f64;
                let rw = width as f64 / sw as f64;
                let ratio = rh.max(rw) * longest + rh.min(rw) * (1.0 - longest);
                (
                    round_half_even(width as f64 / ratio) as usize,
                    round_half_even(height as f64 / ratio) as usize,
                )
            }
        }
    }

    /// Resize and crop: the 8-bit image the normalisation is applied to.
    pub fn resize_and_crop(&self, img: &RgbImage) -> RgbImage {
        let (w, h) = self.resized_size(img.width() as usize, img.height() as usize);
        let resized = resize(img, w.max(1), h.max(1), self.interpolation);
        let fill = match self.crop_mode {
            CropMode::Border => self.mean.map(|m| round_half_even(255.0 * m) as u8),
            _ => [0; 3],
        };
        center_crop(&resized, self.size[1], self.size[0], fill)
    }

    /// The normalised CHW values of one image (`channels × H × W`).
    pub fn apply(&self, img: &RgbImage) -> Vec<f32> {
        self.normalize(&self.resize_and_crop(img))
    }

    /// `ToTensor` and `Normalize` of an image already at its final size (CHW values).
    pub fn normalize(&self, img: &RgbImage) -> Vec<f32> {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let mut out = vec![0f32; self.channels * h * w];
        let norm = |v: u8, c: usize| (v as f32 / 255.0 - self.mean[c] as f32) / self.std[c] as f32;
        if self.channels == 1 {
            for (o, p) in out.iter_mut().zip(pil_luma(img).as_raw()) {
                *o = norm(*p, 0);
            }
        } else {
            for (i, p) in img.as_raw().chunks(3).enumerate() {
                for c in 0..3 {
                    out[c * h * w + i] = norm(p[c], c);
                }
            }
        }
        out
    }

    /// A batch `[N, C, H, W]` of transformed images.
    pub fn to_tensor(&self, images: &[RgbImage], device: &Device) -> Tensor<4> {
        let [h, w] = self.size;
        let mut values = Vec::with_capacity(images.len() * self.channels * h * w);
        for img in images {
            values.extend(self.apply(img));
        }
        Tensor::from_data(
            TensorData::new(values, [images.len(), self.channels, h, w]),
            device,
        )
    }
}

/// Python's `round` (half to even).
fn round_half_even(v: f64) -> f64 {
    let r = v.round();
    if (v - v.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
        r - v.signum()
    } else {
        r
    }
}

/// torchvision's `center_crop` (timm's `center_crop_or_pad`): pads with `fill` when the crop is
/// larger than the image, offsets rounded half to even.
pub fn center_crop(img: &RgbImage, width: usize, height: usize, fill: [u8; 3]) -> RgbImage {
    let (iw, ih) = (img.width() as i64, img.height() as i64);
    let (cw, ch) = (width as i64, height as i64);
    // Padding (left, top) when the crop is larger; the right/bottom padding takes the rest.
    let pad_l = if cw > iw { (cw - iw) / 2 } else { 0 };
    let pad_t = if ch > ih { (ch - ih) / 2 } else { 0 };
    let pad_r = if cw > iw { (cw - iw + 1) / 2 } else { 0 };
    let pad_b = if ch > ih { (ch - ih + 1) / 2 } else { 0 };
    let (pw, ph) = (iw + pad_l + pad_r, ih + pad_t + pad_b);
    let top = round_half_even((ph - ch) as f64 / 2.0) as i64;
    let left = round_half_even((pw - cw) as f64 / 2.0) as i64;
    RgbImage::from_fn(width as u32, height as u32, |x, y| {
        let sx = x as i64 + left - pad_l;
        let sy = y as i64 + top - pad_t;
        if (0..iw).contains(&sx) && (0..ih).contains(&sy) {
            *img.get_pixel(sx as u32, sy as u32)
        } else {
            image::Rgb(fill)
        }
    })
}

/// PIL's `Image.resize((width, height), filter)` of an 8-bit RGB image, bit-exact.
pub fn resize(img: &RgbImage, width: usize, height: usize, filter: Interpolation) -> RgbImage {
    let (iw, ih) = (img.width() as usize, img.height() as usize);
    if (iw, ih) == (width, height) {
        return img.clone();
    }
    let support = match filter {
        Interpolation::Nearest => return resize_nearest(img, width, height),
        Interpolation::Box => 0.5,
        Interpolation::Bilinear | Interpolation::Hamming => 1.0,
        Interpolation::Bicubic => 2.0,
        Interpolation::Lanczos => 3.0,
    };
    let (need_h, need_v) = (width != iw, height != ih);
    let src = img.as_raw().clone();
    let horizontal = |buf: &[u8], h: usize| {
        let c = Coefficients::new(iw, width, support, filter);
        resample(buf, h, iw, width, 3, 3 * iw, &c)
    };
    let vertical = |buf: &[u8], w: usize| {
        let c = Coefficients::new(ih, height, support, filter);
        resample(buf, w * 3, ih, height, w * 3, 1, &c)
    };
    // Pillow 13 filters vertically first when the height shrinks by more than twice what the
    // width loses; the intermediate is 8-bit either way, so the order changes the pixels.
    let out = match (need_h, need_v) {
        (true, true) if height < ih && ih - height > 2 * iw.saturating_sub(width) => {
            horizontal(&vertical(&src, iw), height)
        }
        (true, true) => vertical(&horizontal(&src, ih), width),
        (true, false) => horizontal(&src, ih),
        (false, true) => vertical(&src, iw),
        (false, false) => src,
    };
    RgbImage::from_raw(width as u32, height as u32, out).expect("sizes agree")
}

/// One 1-D pass of PIL's 8-bit resampling over `lines` independent lines. Along a line, input
/// sample `i` of channel/column `j` is at `j + i * step`; `line_stride` separates lines; the
/// output has the same layout with `out_len` samples per line.
fn resample(
    src: &[u8],
    lines: usize,
    in_len: usize,
    out_len: usize,
    step: usize,
    line_stride: usize,
    c: &Coefficients,
) -> Vec<u8> {
    // Horizontal pass: lines are rows (stride 3·w), samples 3 apart, 3 channels per sample.
    // Vertical pass: lines are the 3·w columns (stride 1), samples a row apart.
    let horizontal = line_stride != 1;
    let channels = if horizontal { 3 } else { 1 };
    let out_step = if horizontal { 3 } else { lines };
    let out_line_stride = if horizontal { 3 * out_len } else { 1 };
    let mut out = vec![0u8; lines * out_len * channels];
    for line in 0..lines {
        let base = line * line_stride;
        for o in 0..out_len {
            let (start, n) = c.bounds[o];
            let k = &c.k[o * c.ksize..o * c.ksize + n];
            for ch in 0..channels {
                let mut acc: i32 = 1 << (PRECISION_BITS - 1);
                for (i, &kv) in k.iter().enumerate() {
                    let v = src[base + ch + (start + i) * step] as i32;
                    acc = acc.wrapping_add(v.wrapping_mul(kv));
                }
                out[line * out_line_stride + o * out_step + ch] = clip8(acc);
            }
        }
    }
    debug_assert!(in_len >= c.bounds.iter().map(|(s, n)| s + n).max().unwrap_or(0));
    out
}

/// Bits of the fractional part of PIL's fixed-point coefficients (`32 - 8 - 2`).
const PRECISION_BITS: u32 = 22;

fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// One pass's taps (PIL's `precompute_coeffs` + `normalize_coeffs_8bpc`).
struct Coefficients {
    ksize: usize,
    /// `(first input index, tap count)` per output index.
    bounds: Vec<(usize, usize)>,
    /// Fixed-point taps, `ksize` per output index.
    k: Vec<i32>,
}

impl Coefficients {
    fn new(in_size: usize, out_size: usize, support: f64, filter: Interpolation) -> Coefficients {
        let scale = in_size as f64 / out_size as f64;
        let filterscale = scale.max(1.0);
        let support = support * filterscale;
        let ksize = support.ceil() as usize * 2 + 1;
        let mut bounds = Vec::with_capacity(out_size);
        let mut k = vec![0i32; out_size * ksize];
        let mut taps = vec![0f64; ksize];
        for xx in 0..out_size {
            let center = (xx as f64 + 0.5) * scale;
            // C's `(int)` truncates toward zero.
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize - xmin;
            let mut sum = 0.0;
            for (x, tap) in taps.iter_mut().enumerate().take(xmax) {
                *tap = filter_weight(
                    filter,
                    (x as f64 + xmin as f64 - center + 0.5) / filterscale,
                );
                sum += *tap;
            }
            for x in 0..xmax {
                let w = if sum != 0.0 { taps[x] / sum } else { taps[x] };
                let fixed = w * (1u32 << PRECISION_BITS) as f64;
                k[xx * ksize + x] = if w < 0.0 {
                    (fixed - 0.5) as i32
                } else {
                    (fixed + 0.5) as i32
                };
            }
            bounds.push((xmin, xmax));
        }
        Coefficients { ksize, bounds, k }
    }
}

fn filter_weight(filter: Interpolation, x: f64) -> f64 {
    let x = x.abs();
    match filter {
        Interpolation::Box => {
            if x < 0.5 {
                1.0
            } else {
                0.0
            }
        }
        Interpolation::Bilinear => (1.0 - x).max(0.0),
        Interpolation::Hamming => {
            if x >= 1.0 {
                0.0
            } else if x == 0.0 {
                1.0
            } else {
                let px = x * std::f64::consts::PI;
                px.sin() / px * (0.54 + 0.46 * px.cos())
            }
        }
        Interpolation::Bicubic => {
            // Keys' cubic with a = -0.5, as PIL.
            let a = -0.5;
            if x < 1.0 {
                ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
            } else if x < 2.0 {
                (((x - 5.0) * x + 8.0) * x - 4.0) * a
            } else {
                0.0
            }
        }
        Interpolation::Lanczos => {
            let sinc = |x: f64| {
                if x == 0.0 {
                    1.0
                } else {
                    let px = x * std::f64::consts::PI;
                    px.sin() / px
                }
            };
            if x < 3.0 {
                sinc(x) * sinc(x / 3.0)
            } else {
                0.0
            }
        }
        Interpolation::Nearest => unreachable!("nearest does not use taps"),
    }
}

/// PIL's nearest resize (`ImagingScaleAffine`): the source index of output `x` is
/// `floor(scale/2 + x·scale)`, accumulated in f64 as PIL does.
fn resize_nearest(img: &RgbImage, width: usize, height: usize) -> RgbImage {
    let index = |in_size: usize, out_size: usize| -> Vec<u32> {
        let step = in_size as f64 / out_size as f64;
        let mut pos = step * 0.5;
        (0..out_size)
            .map(|_| {
                let i = (pos as usize).min(in_size - 1) as u32;
                pos += step;
                i
            })
            .collect()
    };
    let xs = index(img.width() as usize, width);
    let ys = index(img.height() as usize, height);
    RgbImage::from_fn(width as u32, height as u32, |x, y| {
        *img.get_pixel(xs[x as usize], ys[y as usize])
    })
}
