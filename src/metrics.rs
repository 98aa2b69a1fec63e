//! Super-resolution evaluation: PSNR and SSIM on RGB and on the BT.601 luma (Y) channel.
//!
//! The numbers follow the protocol used by the SR literature and by BasicSR
//! (`basicsr.metrics.calculate_psnr` / `calculate_ssim`), which in turn reproduces the
//! original MATLAB `ssim_index.m` of Wang et al.:
//!
//! * images are 8-bit RGB in HWC layout and are evaluated in `f64`;
//! * `border` pixels are cropped from every side of both images first (usually the
//!   upscaling factor);
//! * the Y channel is ITU-R BT.601 "studio swing" luma,
//!   `Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255`, kept un-rounded in `[16, 235]`;
//! * PSNR is `10 log10(255² / MSE)` with the MSE taken over every pixel and channel
//!   (`+inf` for identical images);
//! * SSIM uses `C1 = (0.01·255)²`, `C2 = (0.03·255)²` and an 11×11 Gaussian window with
//!   σ = 1.5 normalised to sum 1, applied with *valid* filtering (no padding, the SSIM
//!   map is `(H-10)×(W-10)`), and returns the mean of the SSIM map. RGB SSIM is the mean
//!   of the three per-channel SSIMs.
//!
//! One deliberate difference from BasicSR: BasicSR's `to_y_channel` passes through
//! `float32`, so its Y-channel scores carry `float32` rounding (about 1e-8 on SSIM and
//! 1e-6 dB on PSNR). Here everything stays in `f64`, which is what the formula says.
//! MATLAB evaluation scripts that call `rgb2ycbcr` on `uint8` images instead round Y to
//! integers, which typically moves PSNR-Y by a few hundredths of a dB (more at high
//! PSNR) and SSIM-Y in the third decimal; that variant is not implemented here.
//!
//! ```
//! use gaze::metrics::evaluate_sr;
//! use ndarray::Array3;
//!
//! let hr = Array3::<u8>::from_shape_fn((32, 32, 3), |(i, j, c)| (i * 7 + j * 3 + c) as u8);
//! let score = evaluate_sr(&hr, &hr, 4).unwrap();
//! assert!(score.psnr_y.is_infinite());
//! assert!((score.ssim_rgb - 1.0).abs() < 1e-12);
//! ```

use std::fmt;

use ndarray::{Array2, Array3, ArrayRef, ArrayRef2, ArrayRef3, ArrayView, Axis, Dimension, Slice};

/// Side length of the square SSIM window (the smallest image SSIM accepts).
pub const SSIM_WINDOW: usize = 11;

/// Standard deviation, in pixels, of the Gaussian SSIM window.
pub const SSIM_SIGMA: f64 = 1.5;

/// SSIM stabiliser for the luminance term, `(0.01 · 255)²`.
pub const SSIM_C1: f64 = (0.01 * 255.0) * (0.01 * 255.0);

/// SSIM stabiliser for the contrast/structure term, `(0.03 · 255)²`.
pub const SSIM_C2: f64 = (0.03 * 255.0) * (0.03 * 255.0);

/// Peak signal value of 8-bit images, used for PSNR.
pub const PEAK_8BIT: f64 = 255.0;

/// Errors from the SR metrics. None of the functions in this module panic on bad input;
/// they return one of these instead.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricsError {
    /// Two arrays that must have the same shape do not.
    ShapeMismatch {
        /// Shape of the first argument.
        left: Vec<usize>,
        /// Shape of the second argument.
        right: Vec<usize>,
    },
    /// The super-resolved output and the HR reference of [`evaluate_sr`] differ in shape.
    SrHrShapeMismatch {
        /// Shape `[H, W, C]` of the SR output.
        sr: Vec<usize>,
        /// Shape `[H, W, C]` of the HR reference.
        hr: Vec<usize>,
    },
    /// An HWC image does not have exactly 3 (RGB) channels.
    NotRgb {
        /// The offending shape.
        shape: Vec<usize>,
    },
    /// An array that should be an image has fewer than 2 axes.
    NotAnImage {
        /// Number of axes the array has.
        ndim: usize,
    },
    /// Cropping `border` pixels from each side would leave nothing.
    BorderTooLarge {
        /// Image height before cropping.
        height: usize,
        /// Image width before cropping.
        width: usize,
        /// Pixels to crop from each side.
        border: usize,
    },
    /// The image (after cropping `border` pixels per side) is smaller than the
    /// 11×11 SSIM window.
    TooSmall {
        /// Height after cropping.
        height: usize,
        /// Width after cropping.
        width: usize,
        /// Pixels cropped from each side (0 when no cropping was involved).
        border: usize,
    },
    /// The arrays have no elements, so the mean squared error is undefined.
    Empty,
    /// The PSNR peak value is not a finite positive number.
    InvalidPeak(f64),
}

impl fmt::Display for MetricsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetricsError::ShapeMismatch { left, right } => {
                write!(
                    f,
                    "shape mismatch: first array is {left:?}, second is {right:?}"
                )
            }
            MetricsError::SrHrShapeMismatch { sr, hr } => write!(
                f,
                "SR output has shape {sr:?} but the HR reference has shape {hr:?}; \
                 crop the HR image to a multiple of the scale factor (and check the \
                 scale) before evaluating"
            ),
            MetricsError::NotRgb { shape } => write!(
                f,
                "expected an RGB image in HWC layout with 3 channels, got shape {shape:?}"
            ),
            MetricsError::NotAnImage { ndim } => write!(
                f,
                "expected an image with at least 2 axes (H, W[, C]), got {ndim} axes"
            ),
            MetricsError::BorderTooLarge {
                height,
                width,
                border,
            } => write!(
                f,
                "cannot crop {border} px from each side of a {height}x{width} image: \
                 nothing would be left"
            ),
            MetricsError::TooSmall {
                height,
                width,
                border,
            } => {
                write!(f, "image is {height}x{width}")?;
                if *border > 0 {
                    write!(f, " after cropping {border} px from each side")?;
                }
                write!(
                    f,
                    "; SSIM needs at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels"
                )
            }
            MetricsError::Empty => write!(f, "cannot compute a metric over an empty array"),
            MetricsError::InvalidPeak(peak) => {
                write!(f, "PSNR peak must be a finite positive number, got {peak}")
            }
        }
    }
}

impl std::error::Error for MetricsError {}

/// The four standard SR scores of one image pair (see [`evaluate_sr`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SrScore {
    /// PSNR in dB on the BT.601 Y channel (`+inf` for identical images).
    pub psnr_y: f64,
    /// SSIM on the BT.601 Y channel.
    pub ssim_y: f64,
    /// PSNR in dB over all three RGB channels (`+inf` for identical images).
    pub psnr_rgb: f64,
    /// Mean of the per-channel SSIMs of R, G and B.
    pub ssim_rgb: f64,
}

impl fmt::Display for SrScore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PSNR-Y {:.4} dB, SSIM-Y {:.6}, PSNR-RGB {:.4} dB, SSIM-RGB {:.6}",
            self.psnr_y, self.ssim_y, self.psnr_rgb, self.ssim_rgb
        )
    }
}

/// Converts an 8-bit RGB image (HWC, 3 channels) to ITU-R BT.601 luma in `f64`:
/// `Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255`, with `R, G, B` in `[0, 255]`.
///
/// The result is not rounded and lies in `[16, 235]` (black → 16, white → 235). This
/// is MATLAB's `rgb2ycbcr` Y channel on `double` input (times 255) and BasicSR's
/// `to_y_channel` (which BasicSR evaluates in `float32`; this is the exact `f64` value).
///
/// Accepts `&Array3<u8>`, `&ArrayView3<u8>` or any other array reference.
///
/// # Errors
///
/// [`MetricsError::NotRgb`] if the image does not have exactly 3 channels.
pub fn rgb_to_y(img: &ArrayRef3<u8>) -> Result<Array2<f64>, MetricsError> {
    let (h, w, c) = img.dim();
    if c != 3 {
        return Err(MetricsError::NotRgb {
            shape: img.shape().to_vec(),
        });
    }
    Ok(Array2::from_shape_fn((h, w), |(i, j)| {
        let r = f64::from(img[[i, j, 0]]);
        let g = f64::from(img[[i, j, 1]]);
        let b = f64::from(img[[i, j, 2]]);
        16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0
    }))
}

/// Returns a view of `img` with `border` pixels removed from each side of its first two
/// axes (H and W); any further axes (channels) are untouched. `border == 0` returns the
/// whole image. Equivalent to numpy's `img[border:-border, border:-border, ...]`.
///
/// # Errors
///
/// * [`MetricsError::NotAnImage`] if the array has fewer than 2 axes.
/// * [`MetricsError::BorderTooLarge`] if `2 * border` is not smaller than both the
///   height and the width (the crop would be empty).
pub fn crop_border<A, D: Dimension>(
    img: &ArrayRef<A, D>,
    border: usize,
) -> Result<ArrayView<'_, A, D>, MetricsError> {
    let shape = img.shape();
    if shape.len() < 2 {
        return Err(MetricsError::NotAnImage { ndim: shape.len() });
    }
    let (height, width) = (shape[0], shape[1]);
    let doubled = border.saturating_mul(2);
    if doubled >= height || doubled >= width {
        if border == 0 {
            // Nothing to crop; an already empty image stays as it is.
            return Ok(img.view());
        }
        return Err(MetricsError::BorderTooLarge {
            height,
            width,
            border,
        });
    }
    let cropped = img
        .slice_axis(Axis(0), Slice::from(border..height - border))
        .slice_axis_move(Axis(1), Slice::from(border..width - border));
    Ok(cropped)
}

/// Peak signal-to-noise ratio in dB, `10 log10(peak² / MSE)`, with the mean squared error
/// taken in `f64` over every element (all pixels and all channels) of two arrays of any
/// rank. Use [`PEAK_8BIT`] (255) for 8-bit data.
///
/// Returns `f64::INFINITY` when the arrays are identical (MSE == 0). NaNs in the input
/// propagate to the result.
///
/// # Errors
///
/// * [`MetricsError::ShapeMismatch`] if the shapes differ.
/// * [`MetricsError::Empty`] if the arrays have no elements.
/// * [`MetricsError::InvalidPeak`] if `peak` is not finite and positive.
pub fn psnr<D: Dimension>(
    a: &ArrayRef<f64, D>,
    b: &ArrayRef<f64, D>,
    peak: f64,
) -> Result<f64, MetricsError> {
    if !(peak.is_finite() && peak > 0.0) {
        return Err(MetricsError::InvalidPeak(peak));
    }
    let mse = mse(a, b)?;
    if mse == 0.0 {
        return Ok(f64::INFINITY);
    }
    Ok(10.0 * (peak * peak / mse).log10())
}

/// Mean squared error in `f64` over every element of two same-shaped arrays.
///
/// # Errors
///
/// [`MetricsError::ShapeMismatch`] if the shapes differ, [`MetricsError::Empty`] if the
/// arrays have no elements.
pub fn mse<D: Dimension>(a: &ArrayRef<f64, D>, b: &ArrayRef<f64, D>) -> Result<f64, MetricsError> {
    check_same_shape(a.shape(), b.shape())?;
    if a.is_empty() {
        return Err(MetricsError::Empty);
    }
    let mut sum = NeumaierSum::default();
    for (x, y) in a.iter().zip(b.iter()) {
        let d = x - y;
        sum.add(d * d);
    }
    Ok(sum.total() / a.len() as f64)
}

/// The normalised 1-D Gaussian of the SSIM window: 11 taps, σ = 1.5, summing to 1.
/// The 2-D window is its outer product with itself (MATLAB
/// `fspecial('gaussian', 11, 1.5)`, OpenCV `getGaussianKernel(11, 1.5)` outer itself).
pub fn ssim_gaussian_1d() -> [f64; SSIM_WINDOW] {
    let half = (SSIM_WINDOW / 2) as f64;
    let mut g = [0.0; SSIM_WINDOW];
    for (k, v) in g.iter_mut().enumerate() {
        let x = k as f64 - half;
        *v = (-(x * x) / (2.0 * SSIM_SIGMA * SSIM_SIGMA)).exp();
    }
    let total: f64 = g.iter().sum();
    for v in &mut g {
        *v /= total;
    }
    g
}

/// The SSIM map of two single-channel images with values in `[0, 255]`, exactly as
/// MATLAB `ssim_index.m` / BasicSR `_ssim`: valid 11×11 Gaussian filtering, so the map is
/// `(H-10)×(W-10)`.
///
/// # Errors
///
/// [`MetricsError::ShapeMismatch`] if the shapes differ, [`MetricsError::TooSmall`] if the
/// images are smaller than 11×11.
pub fn ssim_map(a: &ArrayRef2<f64>, b: &ArrayRef2<f64>) -> Result<Array2<f64>, MetricsError> {
    let (h, w) = a.dim();
    let (oh, ow) = (
        h.saturating_sub(SSIM_WINDOW - 1),
        w.saturating_sub(SSIM_WINDOW - 1),
    );
    let mut map = Vec::with_capacity(oh * ow);
    ssim_rows(a, b, 0, |row| map.extend_from_slice(row))?;
    Ok(Array2::from_shape_fn((oh, ow), |(i, j)| map[i * ow + j]))
}

/// Mean SSIM of two single-channel images with values in `[0, 255]` (the mean of
/// [`ssim_map`]); 1 for identical images.
///
/// # Errors
///
/// [`MetricsError::ShapeMismatch`] if the shapes differ, [`MetricsError::TooSmall`] if the
/// images are smaller than 11×11.
pub fn ssim(a: &ArrayRef2<f64>, b: &ArrayRef2<f64>) -> Result<f64, MetricsError> {
    ssim_bordered(a, b, 0)
}

/// SSIM of two multi-channel HWC images with values in `[0, 255]`: the mean over the
/// channels of the per-channel [`ssim`], as BasicSR does for RGB.
///
/// # Errors
///
/// [`MetricsError::ShapeMismatch`] if the shapes differ, [`MetricsError::TooSmall`] if the
/// images are smaller than 11×11, [`MetricsError::Empty`] if there are no channels.
pub fn ssim_channels(a: &ArrayRef3<f64>, b: &ArrayRef3<f64>) -> Result<f64, MetricsError> {
    ssim_channels_bordered(a, b, 0)
}

/// Evaluates a super-resolved image against its HR reference with the standard SR
/// protocol: both are cropped by `border` pixels on every side (usually the scale
/// factor), then PSNR and SSIM are computed on the BT.601 Y channel and on RGB.
///
/// Both images must be 8-bit RGB, HWC, with identical shapes; if the HR image's size is
/// not a multiple of the scale factor the caller must crop it to the SR output's size
/// first. Accepts `&Array3<u8>` or `&ArrayView3<u8>`.
///
/// # Errors
///
/// * [`MetricsError::SrHrShapeMismatch`] if the shapes differ (the message gives both).
/// * [`MetricsError::NotRgb`] if the images do not have 3 channels.
/// * [`MetricsError::TooSmall`] if less than 11×11 pixels remain after cropping.
pub fn evaluate_sr(
    sr: &ArrayRef3<u8>,
    hr: &ArrayRef3<u8>,
    border: usize,
) -> Result<SrScore, MetricsError> {
    if sr.shape() != hr.shape() {
        return Err(MetricsError::SrHrShapeMismatch {
            sr: sr.shape().to_vec(),
            hr: hr.shape().to_vec(),
        });
    }
    let (h, w, c) = sr.dim();
    if c != 3 {
        return Err(MetricsError::NotRgb {
            shape: sr.shape().to_vec(),
        });
    }
    let doubled = border.saturating_mul(2);
    let (ch, cw) = (h.saturating_sub(doubled), w.saturating_sub(doubled));
    if ch < SSIM_WINDOW || cw < SSIM_WINDOW {
        return Err(MetricsError::TooSmall {
            height: ch,
            width: cw,
            border,
        });
    }
    let sr = crop_border(sr, border)?;
    let hr = crop_border(hr, border)?;

    let sr_y = rgb_to_y(&sr)?;
    let hr_y = rgb_to_y(&hr)?;
    let sr_rgb: Array3<f64> = sr.mapv(f64::from);
    let hr_rgb: Array3<f64> = hr.mapv(f64::from);

    Ok(SrScore {
        psnr_y: psnr(&sr_y, &hr_y, PEAK_8BIT)?,
        ssim_y: ssim_bordered(&sr_y, &hr_y, border)?,
        psnr_rgb: psnr(&sr_rgb, &hr_rgb, PEAK_8BIT)?,
        ssim_rgb: ssim_channels_bordered(&sr_rgb, &hr_rgb, border)?,
    })
}

// ---------------------------------------------------------------------------------------
// Internals
// ---------------------------------------------------------------------------------------

fn check_same_shape(left: &[usize], right: &[usize]) -> Result<(), MetricsError> {
    if left == right {
        Ok(())
    } else {
        Err(MetricsError::ShapeMismatch {
            left: left.to_vec(),
            right: right.to_vec(),
        })
    }
}

/// `border` only feeds the error message.
fn ssim_bordered(
    a: &ArrayRef2<f64>,
    b: &ArrayRef2<f64>,
    border: usize,
) -> Result<f64, MetricsError> {
    let mut sum = NeumaierSum::default();
    let mut count = 0usize;
    ssim_rows(a, b, border, |row| {
        for &v in row {
            sum.add(v);
        }
        count += row.len();
    })?;
    Ok(sum.total() / count as f64)
}

fn ssim_channels_bordered(
    a: &ArrayRef3<f64>,
    b: &ArrayRef3<f64>,
    border: usize,
) -> Result<f64, MetricsError> {
    check_same_shape(a.shape(), b.shape())?;
    let channels = a.len_of(Axis(2));
    if channels == 0 {
        return Err(MetricsError::Empty);
    }
    let mut total = 0.0;
    for k in 0..channels {
        let ak = a.index_axis(Axis(2), k);
        let bk = b.index_axis(Axis(2), k);
        total += ssim_bordered(&ak, &bk, border)?;
    }
    Ok(total / channels as f64)
}

/// Streams the SSIM map to `emit`, one output row (of `W-10` values) at a time, top to
/// bottom.
///
/// Each of the five local statistics (E[x], E[y], E[x²], E[y²], E[xy]) is the 'valid'
/// correlation with the separable window `g ⊗ g`: first horizontally along each input
/// row, then vertically over 11 horizontally-filtered rows kept in a ring buffer. Both
/// passes add their 11 products in tap order. Working on rows keeps the memory traffic
/// to a few rows instead of five full-size intermediate images.
fn ssim_rows(
    a: &ArrayRef2<f64>,
    b: &ArrayRef2<f64>,
    border: usize,
    mut emit: impl FnMut(&[f64]),
) -> Result<(), MetricsError> {
    const STATS: usize = 5;
    check_same_shape(a.shape(), b.shape())?;
    let (h, w) = a.dim();
    if h < SSIM_WINDOW || w < SSIM_WINDOW {
        return Err(MetricsError::TooSmall {
            height: h,
            width: w,
            border,
        });
    }
    let ow = w - SSIM_WINDOW + 1;
    let g = ssim_gaussian_1d();

    // Input rows of the five per-pixel quantities x, y, x², y², xy.
    let mut src: [Vec<f64>; STATS] = std::array::from_fn(|_| vec![0.0; w]);
    // ring[r % 11][stat]: horizontally filtered row r.
    let mut ring: [[Vec<f64>; STATS]; SSIM_WINDOW] =
        std::array::from_fn(|_| std::array::from_fn(|_| vec![0.0; ow]));
    // Vertically filtered output row per statistic, and the SSIM row.
    let mut acc: [Vec<f64>; STATS] = std::array::from_fn(|_| vec![0.0; ow]);
    let mut out = vec![0.0; ow];

    for (r, (row_a, row_b)) in a.rows().into_iter().zip(b.rows()).enumerate() {
        for (j, (&x, &y)) in row_a.iter().zip(row_b.iter()).enumerate() {
            src[0][j] = x;
            src[1][j] = y;
            src[2][j] = x * x;
            src[3][j] = y * y;
            src[4][j] = x * y;
        }
        let slot = &mut ring[r % SSIM_WINDOW];
        for (filtered, input) in slot.iter_mut().zip(&src) {
            filtered.fill(0.0);
            // Tap-major so the inner loop vectorises.
            for (u, &k) in g.iter().enumerate() {
                for (f, s) in filtered.iter_mut().zip(&input[u..]) {
                    *f += k * s;
                }
            }
        }
        if r + 1 < SSIM_WINDOW {
            continue;
        }
        // Output row i = r - 10 covers input rows i ..= r.
        let i = r + 1 - SSIM_WINDOW;
        for (stat, dst) in acc.iter_mut().enumerate() {
            dst.fill(0.0);
            for (u, &k) in g.iter().enumerate() {
                let filtered = &ring[(i + u) % SSIM_WINDOW][stat];
                for (d, f) in dst.iter_mut().zip(filtered) {
                    *d += k * f;
                }
            }
        }
        let [mu1, mu2, e_xx, e_yy, e_xy] = &acc;
        for (j, o) in out.iter_mut().enumerate() {
            let (m1, m2) = (mu1[j], mu2[j]);
            let (m1_sq, m2_sq, m1_m2) = (m1 * m1, m2 * m2, m1 * m2);
            let s1_sq = e_xx[j] - m1_sq;
            let s2_sq = e_yy[j] - m2_sq;
            let s12 = e_xy[j] - m1_m2;
            *o = ((2.0 * m1_m2 + SSIM_C1) * (2.0 * s12 + SSIM_C2))
                / ((m1_sq + m2_sq + SSIM_C1) * (s1_sq + s2_sq + SSIM_C2));
        }
        emit(&out);
    }
    Ok(())
}

/// Compensated (Neumaier) summation, so long means do not drift with image size.
#[derive(Default)]
struct NeumaierSum {
    sum: f64,
    compensation: f64,
}

impl NeumaierSum {
    fn add(&mut self, v: f64) {
        let t = self.sum + v;
        if self.sum.abs() >= v.abs() {
            self.compensation += (self.sum - t) + v;
        } else {
            self.compensation += (v - t) + self.sum;
        }
        self.sum = t;
    }

    fn total(&self) -> f64 {
        self.sum + self.compensation
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{s, Array2, Array3};

    /// First image of the Python cross-check pair: `(i*7 + j*13 + c*5) % 256`.
    fn image_a(h: usize, w: usize) -> Array3<u8> {
        Array3::from_shape_fn((h, w, 3), |(i, j, c)| {
            ((i * 7 + j * 13 + c * 5) % 256) as u8
        })
    }

    /// Second image of the Python cross-check pair: `(i*i + 3*j + c) % 256`.
    fn image_b(h: usize, w: usize) -> Array3<u8> {
        Array3::from_shape_fn((h, w, 3), |(i, j, c)| ((i * i + 3 * j + c) % 256) as u8)
    }

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    /// Naive SSIM straight from the definition: a 2-D (non-separable) Gaussian window
    /// built independently, an explicit 4-deep loop per output pixel, and local
    /// statistics computed as weighted central moments rather than E[x²] - μ².
    fn naive_ssim(x: &Array2<f64>, y: &Array2<f64>) -> f64 {
        let (h, w) = x.dim();
        let mut win = [[0.0f64; 11]; 11];
        let mut total = 0.0;
        for (u, row) in win.iter_mut().enumerate() {
            for (v, cell) in row.iter_mut().enumerate() {
                let du = u as f64 - 5.0;
                let dv = v as f64 - 5.0;
                *cell = (-(du * du + dv * dv) / (2.0 * 1.5 * 1.5)).exp();
                total += *cell;
            }
        }
        let c1 = (0.01f64 * 255.0).powi(2);
        let c2 = (0.03f64 * 255.0).powi(2);
        let mut acc = 0.0;
        let mut count = 0usize;
        for i in 0..=h - 11 {
            for j in 0..=w - 11 {
                let (mut mx, mut my) = (0.0, 0.0);
                for u in 0..11 {
                    for v in 0..11 {
                        let k = win[u][v] / total;
                        mx += k * x[[i + u, j + v]];
                        my += k * y[[i + u, j + v]];
                    }
                }
                let (mut vx, mut vy, mut cxy) = (0.0, 0.0, 0.0);
                for u in 0..11 {
                    for v in 0..11 {
                        let k = win[u][v] / total;
                        let dx = x[[i + u, j + v]] - mx;
                        let dy = y[[i + u, j + v]] - my;
                        vx += k * dx * dx;
                        vy += k * dy * dy;
                        cxy += k * dx * dy;
                    }
                }
                acc += ((2.0 * mx * my + c1) * (2.0 * cxy + c2))
                    / ((mx * mx + my * my + c1) * (vx + vy + c2));
                count += 1;
            }
        }
        acc / count as f64
    }

    #[test]
    fn y_of_white_and_black() {
        let mut img = Array3::<u8>::zeros((1, 2, 3));
        img.slice_mut(s![0, 1, ..]).fill(255);
        let y = rgb_to_y(&img).unwrap();
        assert!(close(y[[0, 0]], 16.0, 1e-12), "{}", y[[0, 0]]);
        assert!(close(y[[0, 1]], 235.0, 1e-12), "{}", y[[0, 1]]);
    }

    #[test]
    fn y_of_primaries() {
        let mut img = Array3::<u8>::zeros((1, 3, 3));
        img[[0, 0, 0]] = 255;
        img[[0, 1, 1]] = 255;
        img[[0, 2, 2]] = 255;
        let y = rgb_to_y(&img).unwrap();
        assert!(close(y[[0, 0]], 16.0 + 65.481, 1e-12));
        assert!(close(y[[0, 1]], 16.0 + 128.553, 1e-12));
        assert!(close(y[[0, 2]], 16.0 + 24.966, 1e-12));
    }

    #[test]
    fn y_accepts_views_and_rejects_non_rgb() {
        let img = image_a(4, 5);
        let view = img.slice(s![1.., .., ..]);
        assert_eq!(rgb_to_y(&view).unwrap().dim(), (3, 5));
        let gray = Array3::<u8>::zeros((4, 5, 1));
        assert_eq!(
            rgb_to_y(&gray),
            Err(MetricsError::NotRgb {
                shape: vec![4, 5, 1]
            })
        );
    }

    #[test]
    fn crop_border_works() {
        let img = image_a(10, 12);
        let c = crop_border(&img, 2).unwrap();
        assert_eq!(c.shape(), &[6, 8, 3]);
        assert_eq!(c[[0, 0, 1]], img[[2, 2, 1]]);
        assert_eq!(c[[5, 7, 2]], img[[7, 9, 2]]);
        assert_eq!(crop_border(&img, 0).unwrap().shape(), &[10, 12, 3]);

        let y = Array2::<f64>::zeros((10, 12));
        assert_eq!(crop_border(&y, 4).unwrap().shape(), &[2, 4]);
        assert_eq!(
            crop_border(&y, 5),
            Err(MetricsError::BorderTooLarge {
                height: 10,
                width: 12,
                border: 5
            })
        );
        assert!(matches!(
            crop_border(&y, usize::MAX),
            Err(MetricsError::BorderTooLarge { .. })
        ));
        let line = ndarray::Array1::<f64>::zeros(5);
        assert_eq!(
            crop_border(&line, 1),
            Err(MetricsError::NotAnImage { ndim: 1 })
        );
    }

    #[test]
    fn psnr_identical_is_infinite() {
        let a = image_a(6, 7).mapv(f64::from);
        assert_eq!(psnr(&a, &a, 255.0).unwrap(), f64::INFINITY);
    }

    #[test]
    fn psnr_hand_computed() {
        // Errors 0, 1, 2, 3 → MSE = (0 + 1 + 4 + 9) / 4 = 3.5.
        let a = Array2::from_shape_vec((2, 2), vec![10.0, 20.0, 30.0, 40.0]).unwrap();
        let b = Array2::from_shape_vec((2, 2), vec![10.0, 21.0, 28.0, 43.0]).unwrap();
        let expected = 10.0 * (255.0f64 * 255.0 / 3.5).log10(); // 42.6901...
        let got = psnr(&a, &b, 255.0).unwrap();
        assert!(close(got, expected, 1e-12), "{got} vs {expected}");
        assert!(close(got, 42.690_123_165_176_345, 1e-9), "{got}");
        // Peak 1: 10 log10(1 / 3.5).
        assert!(close(
            psnr(&a, &b, 1.0).unwrap(),
            -5.440_680_443_502_757,
            1e-12
        ));
        // Every pixel off by 255 → 0 dB.
        let z = Array2::<f64>::zeros((3, 3));
        let f = Array2::<f64>::from_elem((3, 3), 255.0);
        assert!(close(psnr(&z, &f, 255.0).unwrap(), 0.0, 1e-12));
    }

    #[test]
    fn psnr_errors() {
        let a = Array2::<f64>::zeros((2, 2));
        let b = Array2::<f64>::zeros((2, 3));
        assert_eq!(
            psnr(&a, &b, 255.0),
            Err(MetricsError::ShapeMismatch {
                left: vec![2, 2],
                right: vec![2, 3]
            })
        );
        let e = Array2::<f64>::zeros((0, 3));
        assert_eq!(psnr(&e, &e, 255.0), Err(MetricsError::Empty));
        assert!(matches!(
            psnr(&a, &a, 0.0),
            Err(MetricsError::InvalidPeak(_))
        ));
        assert!(matches!(
            psnr(&a, &a, f64::NAN),
            Err(MetricsError::InvalidPeak(_))
        ));
    }

    #[test]
    fn gaussian_window_sums_to_one_and_is_symmetric() {
        let g = ssim_gaussian_1d();
        assert!(close(g.iter().sum::<f64>(), 1.0, 1e-15));
        for k in 0..11 {
            assert_eq!(g[k], g[10 - k]);
        }
        assert!(g[5] > g[4] && g[4] > g[0]);
    }

    #[test]
    fn ssim_identical_is_one() {
        let a = image_a(13, 17).mapv(f64::from);
        let y = rgb_to_y(&image_a(13, 17)).unwrap();
        assert!(close(ssim(&y, &y).unwrap(), 1.0, 1e-12));
        assert!(close(ssim_channels(&a, &a).unwrap(), 1.0, 1e-12));
        let map = ssim_map(&y, &y).unwrap();
        assert_eq!(map.dim(), (3, 7));
    }

    #[test]
    fn ssim_constant_shift_matches_naive() {
        let base = image_a(20, 23);
        let x = base.slice(s![.., .., 0]).mapv(f64::from);
        let y = x.mapv(|v| (v + 10.0).min(255.0));
        let got = ssim(&x, &y).unwrap();
        let naive = naive_ssim(&x, &y);
        assert!(close(got, naive, 1e-10), "{got} vs naive {naive}");
        // Python reference (see the script in `python_reference`).
        assert!(close(got, 0.996_307_284_888_365_5, 1e-9), "{got}");
        assert!(got < 1.0);
    }

    #[test]
    fn ssim_matches_naive_on_dissimilar_images_and_views() {
        let a = rgb_to_y(&image_a(15, 19)).unwrap();
        let b = rgb_to_y(&image_b(15, 19)).unwrap();
        let got = ssim(&a, &b).unwrap();
        assert!(close(got, naive_ssim(&a, &b), 1e-10));
        // Non-standard layout (transposed view) gives the transposed problem's answer.
        let at = a.t();
        let bt = b.t();
        let got_t = ssim(&at, &bt).unwrap();
        assert!(close(
            got_t,
            naive_ssim(&at.to_owned(), &bt.to_owned()),
            1e-10
        ));
    }

    #[test]
    fn ssim_is_mean_of_map_and_channels_are_averaged() {
        let a = image_a(17, 29).mapv(f64::from);
        let b = image_b(17, 29).mapv(f64::from);
        let (a0, b0) = (a.index_axis(Axis(2), 0), b.index_axis(Axis(2), 0));
        let map = ssim_map(&a0, &b0).unwrap();
        assert_eq!(map.dim(), (7, 19));
        let s0 = ssim(&a0, &b0).unwrap();
        assert!(close(map.mean().unwrap(), s0, 1e-14));
        // A strided channel view gives the same result as a contiguous copy.
        assert_eq!(s0, ssim(&a0.to_owned(), &b0.to_owned()).unwrap());
        assert!(close(s0, naive_ssim(&a0.to_owned(), &b0.to_owned()), 1e-10));
        let per_channel: f64 = (0..3)
            .map(|k| ssim(&a.index_axis(Axis(2), k), &b.index_axis(Axis(2), k)).unwrap())
            .sum::<f64>()
            / 3.0;
        assert!(close(ssim_channels(&a, &b).unwrap(), per_channel, 1e-15));
    }

    #[test]
    fn ssim_errors() {
        let a = Array2::<f64>::zeros((10, 20));
        assert_eq!(
            ssim(&a, &a),
            Err(MetricsError::TooSmall {
                height: 10,
                width: 20,
                border: 0
            })
        );
        let b = Array2::<f64>::zeros((11, 11));
        let c = Array2::<f64>::zeros((11, 12));
        assert!(matches!(
            ssim(&b, &c),
            Err(MetricsError::ShapeMismatch { .. })
        ));
        assert!(close(ssim(&b, &b).unwrap(), 1.0, 1e-15));
        let none = Array3::<f64>::zeros((11, 11, 0));
        assert_eq!(ssim_channels(&none, &none), Err(MetricsError::Empty));
    }

    /// The Python reference values below were computed with numpy 2.4.6 / scipy 1.17.1:
    ///
    /// ```text
    /// i, j, c = np.meshgrid(np.arange(20), np.arange(23), np.arange(3), indexing="ij")
    /// a = ((i * 7 + j * 13 + c * 5) % 256).astype(np.uint8)
    /// b = ((i * i + 3 * j + c) % 256).astype(np.uint8)
    /// x = np.arange(11) - 5.0; g = np.exp(-x**2 / (2 * 1.5**2)); w = np.outer(g, g); w /= w.sum()
    /// filt = lambda z: scipy.signal.correlate2d(z, w, mode="valid")
    /// def ssim2(x, y):   # x, y float64 2-D
    ///     C1, C2 = (0.01 * 255)**2, (0.03 * 255)**2
    ///     mu1, mu2 = filt(x), filt(y)
    ///     s1, s2, s12 = filt(x*x) - mu1**2, filt(y*y) - mu2**2, filt(x*y) - mu1*mu2
    ///     return (((2*mu1*mu2 + C1) * (2*s12 + C2)) / ((mu1**2 + mu2**2 + C1) * (s1 + s2 + C2))).mean()
    /// y64 = lambda im: 16.0 + (65.481*im[..., 0] + 128.553*im[..., 1] + 24.966*im[..., 2]) / 255.0
    /// psnr = lambda x, y: 10 * np.log10(255.0**2 / np.mean((x - y)**2))
    /// crop = lambda im, bd: im if bd == 0 else im[bd:-bd, bd:-bd, ...]
    /// # then psnr/ssim2 on y64(crop(.)) for Y, and psnr / mean of per-channel ssim2 for RGB.
    /// ```
    ///
    /// The Rust values agree to within 1e-14.
    #[allow(dead_code)]
    fn python_reference() {}

    const PY_B0: SrScore = SrScore {
        psnr_y: 9.87722821448391,
        ssim_y: 0.18173681000332995,
        psnr_rgb: 8.403922470845613,
        ssim_rgb: 0.17200858160774804,
    };
    const PY_B2: SrScore = SrScore {
        psnr_y: 9.3468470932318,
        ssim_y: 0.16014228774736453,
        psnr_rgb: 7.858337855023802,
        ssim_rgb: 0.1532951658527213,
    };

    fn assert_score(got: SrScore, want: SrScore) {
        assert!(close(got.psnr_y, want.psnr_y, 1e-9), "{got:?} vs {want:?}");
        assert!(close(got.ssim_y, want.ssim_y, 1e-9), "{got:?} vs {want:?}");
        assert!(
            close(got.psnr_rgb, want.psnr_rgb, 1e-9),
            "{got:?} vs {want:?}"
        );
        assert!(
            close(got.ssim_rgb, want.ssim_rgb, 1e-9),
            "{got:?} vs {want:?}"
        );
    }

    #[test]
    fn evaluate_matches_python_reference() {
        let a = image_a(20, 23);
        let b = image_b(20, 23);
        assert_score(evaluate_sr(&a, &b, 0).unwrap(), PY_B0);
        assert_score(evaluate_sr(&a, &b, 2).unwrap(), PY_B2);
        // Symmetric metrics.
        assert_score(evaluate_sr(&b, &a, 2).unwrap(), PY_B2);
    }

    #[test]
    fn evaluate_matches_python_on_noisy_pair() {
        // HR: a smooth ramp; SR: HR plus uniform noise in [-10, 10] from a 64-bit LCG,
        // clamped. The same bytes were fed to the Python reference.
        let mut state: u64 = 12345;
        let mut next = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as u32
        };
        let hr =
            Array3::from_shape_fn((96, 130, 3), |(i, j, c)| ((i * 2 + j + c * 40) % 256) as u8);
        let sr = hr.mapv(|v| (i32::from(v) + (next() % 21) as i32 - 10).clamp(0, 255) as u8);
        let want = SrScore {
            psnr_y: 37.40305505285181,
            ssim_y: 0.8863313447977639,
            psnr_rgb: 32.579371620872834,
            ssim_rgb: 0.7229627414203871,
        };
        assert_score(evaluate_sr(&sr, &hr, 4).unwrap(), want);
    }

    #[test]
    fn evaluate_identical() {
        let a = image_a(20, 23);
        let s = evaluate_sr(&a, &a, 4).unwrap();
        assert_eq!(s.psnr_y, f64::INFINITY);
        assert_eq!(s.psnr_rgb, f64::INFINITY);
        assert!(close(s.ssim_y, 1.0, 1e-12));
        assert!(close(s.ssim_rgb, 1.0, 1e-12));
        assert!(s.to_string().contains("PSNR-Y inf dB"));
    }

    #[test]
    fn evaluate_crops_the_border() {
        // Differences only inside the border must not affect the score.
        let a = image_a(20, 23);
        let mut b = a.clone();
        b.slice_mut(s![0..2, .., ..]).fill(0);
        b.slice_mut(s![.., 21.., ..]).fill(7);
        let s = evaluate_sr(&a, &b, 2).unwrap();
        assert_eq!(s.psnr_rgb, f64::INFINITY);
        assert!(evaluate_sr(&a, &b, 1).unwrap().psnr_rgb.is_finite());
    }

    #[test]
    fn evaluate_errors() {
        let a = image_a(20, 23);
        let b = image_b(20, 24);
        let err = evaluate_sr(&a, &b, 0).unwrap_err();
        assert_eq!(
            err,
            MetricsError::SrHrShapeMismatch {
                sr: vec![20, 23, 3],
                hr: vec![20, 24, 3]
            }
        );
        let msg = err.to_string();
        assert!(
            msg.contains("[20, 23, 3]") && msg.contains("[20, 24, 3]"),
            "{msg}"
        );

        let gray = Array3::<u8>::zeros((20, 20, 1));
        assert!(matches!(
            evaluate_sr(&gray, &gray, 0),
            Err(MetricsError::NotRgb { .. })
        ));

        let err = evaluate_sr(&a, &a, 5).unwrap_err();
        assert_eq!(
            err,
            MetricsError::TooSmall {
                height: 10,
                width: 13,
                border: 5
            }
        );
        assert!(
            err.to_string().contains("10x13 after cropping 5 px"),
            "{err}"
        );
        assert!(matches!(
            evaluate_sr(&a, &a, usize::MAX),
            Err(MetricsError::TooSmall { .. })
        ));
        let tiny = Array3::<u8>::zeros((0, 0, 3));
        assert!(matches!(
            evaluate_sr(&tiny, &tiny, 0),
            Err(MetricsError::TooSmall { .. })
        ));
    }

    #[test]
    fn errors_implement_std_error() {
        fn takes_error(_: &dyn std::error::Error) {}
        takes_error(&MetricsError::Empty);
        assert!(!MetricsError::InvalidPeak(-1.0).to_string().is_empty());
    }
}
