//! Reading and writing images for the models: any common format, 8 or 16 bits, gray, RGB or
//! with alpha, converted to and from NCHW tensors in [0, 1].

use std::path::Path;

use burn::prelude::*;
use image::{DynamicImage, ImageBuffer, ImageFormat, Luma};
use ndarray::Array3;

use crate::atomic_write::write_atomically;

/// An image as the models see it: RGB in [0, 1] (gray sources replicated to three channels),
/// plus what is needed to write the result back in the source's own kind.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Interleaved RGB (HWC) in [0, 1].
    pub rgb: Vec<f32>,
    /// Alpha (HW) in [0, 1], if the source had an alpha channel.
    pub alpha: Option<Vec<f32>>,
    /// The source had a single colour channel (gray or gray + alpha).
    pub gray: bool,
    /// The source had 16 bits per channel.
    pub sixteen_bit: bool,
}

/// Errors of image reading and writing.
#[derive(Debug, thiserror::Error)]
pub enum ImageIoError {
    /// The file could not be opened or read.
    #[error("cannot read image '{path}': {source}")]
    Io {
        /// The file.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The bytes could not be decoded.
    #[error("cannot decode image '{path}': {message}")]
    Decode {
        /// The file.
        path: String,
        /// Cause.
        message: String,
    },
    /// The output could not be encoded or written.
    #[error("cannot write image '{path}': {message}")]
    Write {
        /// The file.
        path: String,
        /// Cause.
        message: String,
    },
}

/// Reads an image file; the format is recognised from its content.
pub fn read_image(path: impl AsRef<Path>) -> Result<Image, ImageIoError> {
    Ok(Image::from_dynamic(&decode_image(path.as_ref())?))
}

/// Decodes an image file as stored (bit depth, channels, palette expanded); the format is
/// recognised from its content. An empty image is an error.
pub fn decode_image(path: &Path) -> Result<DynamicImage, ImageIoError> {
    let shown = path.display().to_string();
    let io = |source| ImageIoError::Io {
        path: shown.clone(),
        source,
    };
    let decoded = image::ImageReader::open(path)
        .map_err(io)?
        .with_guessed_format()
        .map_err(io)?
        .decode()
        .map_err(|e| ImageIoError::Decode {
            path: shown.clone(),
            message: e.to_string(),
        })?;
    if decoded.width() == 0 || decoded.height() == 0 {
        return Err(ImageIoError::Decode {
            path: shown,
            message: "the image is empty".into(),
        });
    }
    Ok(decoded)
}

impl Image {
    /// Converts a decoded image.
    pub fn from_dynamic(img: &DynamicImage) -> Image {
        let color = img.color();
        let (width, height) = (img.width() as usize, img.height() as usize);
        let gray = color.channel_count() <= 2;
        let sixteen_bit = color.bytes_per_pixel() / color.channel_count() >= 2;
        let rgba = img.to_rgba32f();
        let mut rgb = Vec::with_capacity(width * height * 3);
        let mut alpha = Vec::with_capacity(width * height);
        for p in rgba.pixels() {
            rgb.extend_from_slice(&p.0[..3]);
            alpha.push(p.0[3]);
        }
        Image {
            width,
            height,
            rgb,
            alpha: color.has_alpha().then_some(alpha),
            gray,
            sixteen_bit,
        }
    }

    /// An 8-bit RGB image from HWC u8 data.
    pub fn from_rgb8(pixels: &Array3<u8>) -> Image {
        let (height, width, _) = pixels.dim();
        Image {
            width,
            height,
            rgb: pixels.iter().map(|&v| v as f32 / 255.0).collect(),
            alpha: None,
            gray: false,
            sixteen_bit: false,
        }
    }

    /// `[1, 3, H, W]` tensor of the RGB channels.
    pub fn to_tensor(&self, device: &Device) -> Tensor<4> {
        let data = TensorData::new(self.rgb.clone(), [self.height, self.width, 3]);
        Tensor::<3>::from_data(data, device)
            .permute([2, 0, 1])
            .unsqueeze::<4>()
    }

    /// RGB rounded to 8 bits (HWC), as SR evaluation quantises outputs.
    pub fn to_rgb8(&self) -> Array3<u8> {
        let data = self.rgb.iter().map(|&v| quantize(v, 255.0) as u8).collect();
        Array3::from_shape_vec((self.height, self.width, 3), data).expect("rgb length is H·W·3")
    }

    /// Takes a model output `[1, 3, H, W]` (any range; clamped to [0, 1]) as the colour of an
    /// image of the same kind as `like` (gray, bit depth); alpha is left unset.
    pub fn from_tensor(output: Tensor<4>, like: &Image) -> Image {
        let [_, _, height, width] = output.dims();
        let hwc = output
            .squeeze_dim::<3>(0)
            .permute([1, 2, 0])
            .clamp(0.0, 1.0);
        let rgb = hwc
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .expect("f32 output");
        Image {
            width,
            height,
            rgb,
            alpha: None,
            gray: like.gray,
            sixteen_bit: like.sixteen_bit,
        }
    }

    /// Resizes the alpha channel of `source` to this image's size with bicubic (Catmull-Rom)
    /// interpolation and attaches it.
    pub fn with_alpha_resized_from(mut self, source: &Image) -> Image {
        if let Some(alpha) = &source.alpha {
            let buf: ImageBuffer<Luma<f32>, Vec<f32>> =
                ImageBuffer::from_raw(source.width as u32, source.height as u32, alpha.clone())
                    .expect("alpha length is H·W");
            let resized = image::imageops::resize(
                &buf,
                self.width as u32,
                self.height as u32,
                image::imageops::FilterType::CatmullRom,
            );
            self.alpha = Some(
                resized
                    .into_raw()
                    .into_iter()
                    .map(|v| v.clamp(0.0, 1.0))
                    .collect(),
            );
        }
        self
    }

    fn to_dynamic(&self, format: ImageFormat) -> DynamicImage {
        let n = self.width * self.height;
        let luma = |i: usize| (self.rgb[3 * i] + self.rgb[3 * i + 1] + self.rgb[3 * i + 2]) / 3.0;
        // JPEG holds neither alpha nor 16 bits.
        let alpha = self.alpha.as_ref().filter(|_| format != ImageFormat::Jpeg);
        let wide = self.sixteen_bit && matches!(format, ImageFormat::Png | ImageFormat::Tiff);
        let mut samples = Vec::with_capacity(n * 4);
        for i in 0..n {
            if self.gray {
                samples.push(luma(i));
            } else {
                samples.extend_from_slice(&self.rgb[3 * i..3 * i + 3]);
            }
            if let Some(a) = alpha {
                samples.push(a[i]);
            }
        }
        let (w, h) = (self.width as u32, self.height as u32);
        macro_rules! buffer {
            ($variant:ident, $pixel:ident, $max:expr, $t:ty) => {
                DynamicImage::$variant(
                    ImageBuffer::<image::$pixel<$t>, Vec<$t>>::from_raw(
                        w,
                        h,
                        samples.iter().map(|&v| quantize(v, $max) as $t).collect(),
                    )
                    .expect("sample count matches"),
                )
            };
        }
        match (self.gray, alpha.is_some(), wide) {
            (true, false, false) => buffer!(ImageLuma8, Luma, 255.0, u8),
            (true, true, false) => buffer!(ImageLumaA8, LumaA, 255.0, u8),
            (false, false, false) => buffer!(ImageRgb8, Rgb, 255.0, u8),
            (false, true, false) => buffer!(ImageRgba8, Rgba, 255.0, u8),
            (true, false, true) => buffer!(ImageLuma16, Luma, 65535.0, u16),
            (true, true, true) => buffer!(ImageLumaA16, LumaA, 65535.0, u16),
            (false, false, true) => buffer!(ImageRgb16, Rgb, 65535.0, u16),
            (false, true, true) => buffer!(ImageRgba16, Rgba, 65535.0, u16),
        }
    }
}

/// `round(clamp(v, 0, 1) · max)`, the quantisation the SR protocol uses.
fn quantize(v: f32, max: f32) -> f32 {
    (v.clamp(0.0, 1.0) * max).round()
}

/// Writes an image; the format comes from the extension (png, jpg/jpeg, tif/tiff, bmp, gif).
/// The file is written atomically: a failure never leaves a partial file behind.
pub fn write_image(path: impl AsRef<Path>, img: &Image) -> Result<(), ImageIoError> {
    let path = path.as_ref();
    let shown = path.display().to_string();
    let fail = |message: String| ImageIoError::Write {
        path: shown.clone(),
        message,
    };
    let format = ImageFormat::from_path(path).map_err(|_| {
        fail("unknown output format; use a .png, .jpg, .tif, .bmp or .gif file name".into())
    })?;
    if !format.writing_enabled()
        || !matches!(
            format,
            ImageFormat::Png
                | ImageFormat::Jpeg
                | ImageFormat::Tiff
                | ImageFormat::Bmp
                | ImageFormat::Gif
        )
    {
        return Err(fail(format!(
            "writing {format:?} images is not supported; use .png, .jpg, .tif, .bmp or .gif"
        )));
    }
    let mut dynamic = img.to_dynamic(format);
    if matches!(format, ImageFormat::Gif | ImageFormat::Bmp) {
        dynamic = DynamicImage::ImageRgba8(dynamic.to_rgba8());
    }
    let mut bytes = std::io::Cursor::new(Vec::new());
    dynamic
        .write_to(&mut bytes, format)
        .map_err(|e| fail(e.to_string()))?;
    write_atomically(path, |f| std::io::Write::write_all(f, bytes.get_ref()))
        .map_err(|e| fail(e.to_string()))
}
