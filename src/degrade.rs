//! MATLAB's `imresize(img, scale, 'bicubic')`, exactly: the degradation that made the LR images
//! of the SR benchmarks (Set5, Set14, B100, Urban100, DIV2K's `LR_bicubic`).
//!
//! What makes it bit-exact (checked by `tests/suite/degrade.rs` against the `LR_bicubic` files
//! of Set5 and Set14 at ×2, ×3, ×4: zero differing pixels):
//! * Keys' cubic kernel with a = −0.5, widened by `1/scale` when shrinking (antialiasing:
//!   `h(x) = scale · cubic(scale · x)`, support `4 / scale` pixels);
//! * output pixel `x` (1-based) samples the input at `u = x / scale + (1 − 1/scale) / 2`,
//!   taps `floor(u − width/2) + 0 … ceil(width) + 1`, weights normalised to sum 1;
//! * symmetric edge handling (the index sequence `1…n, n…1` repeated);
//! * one dimension after the other, the one reduced most first (rows on ties), each pass
//!   computed in f64 and **rounded to the integer type after each pass** (half away from
//!   zero, saturated), as MATLAB does for `uint8`/`uint16` images;
//! * the output size is `ceil(scale · size)`; the benchmarks first crop the HR image to a
//!   multiple of the factor (`modcrop`), as [`degrade`] does.

use crate::io::Image;
use crate::Error;

/// Keys' cubic convolution kernel, a = −0.5 (MATLAB's `cubic`).
fn cubic(x: f64) -> f64 {
    let a = x.abs();
    let (a2, a3) = (a * a, a * a * a);
    if a <= 1.0 {
        1.5 * a3 - 2.5 * a2 + 1.0
    } else if a <= 2.0 {
        -0.5 * a3 + 2.5 * a2 - 4.0 * a + 2.0
    } else {
        0.0
    }
}

/// The taps of one 1-D resampling: `out[i] = Σ_k weights[i][k] · in[indices[i][k]]`.
#[derive(Debug, Clone)]
pub(crate) struct Contributions {
    /// Taps per output sample.
    pub(crate) taps: usize,
    /// `out_len × taps` normalised weights.
    pub(crate) weights: Vec<f64>,
    /// `out_len × taps` 0-based input indices (edges mirrored).
    pub(crate) indices: Vec<usize>,
}

impl Contributions {
    /// The taps of output sample `i`: `(input index, weight)`.
    pub(crate) fn taps_of(&self, i: usize) -> impl Iterator<Item = (usize, f64)> + '_ {
        let r = i * self.taps..(i + 1) * self.taps;
        self.indices[r.clone()]
            .iter()
            .copied()
            .zip(self.weights[r].iter().copied())
    }
}

/// Bicubic (MATLAB's kernel and edges, in float, no rounding) of a `h × w` plane by an integer
/// factor, one output row at a time: for streaming an alpha channel beside a tiled SR output.
pub(crate) struct RowResampler<'a> {
    plane: &'a [f32],
    w: usize,
    rows: Contributions,
    cols: Contributions,
}

impl<'a> RowResampler<'a> {
    pub(crate) fn new(plane: &'a [f32], h: usize, w: usize, scale: usize) -> Self {
        let s = scale as f64;
        RowResampler {
            plane,
            w,
            rows: contributions(h, h * scale, s),
            cols: contributions(w, w * scale, s),
        }
    }

    /// Output row `y` (length `w · scale`), clamped to [0, 1].
    pub(crate) fn row(&self, y: usize) -> Vec<f32> {
        let mut line = vec![0.0f64; self.w];
        for (k, wk) in self.rows.taps_of(y) {
            for (l, v) in line
                .iter_mut()
                .zip(&self.plane[k * self.w..(k + 1) * self.w])
            {
                *l += wk * *v as f64;
            }
        }
        let out_w = self.cols.weights.len() / self.cols.taps;
        (0..out_w)
            .map(|x| {
                let v: f64 = self.cols.taps_of(x).map(|(k, wk)| wk * line[k]).sum();
                v.clamp(0.0, 1.0) as f32
            })
            .collect()
    }
}

/// MATLAB's `contributions(in_length, out_length, scale, @cubic, 4, true)`.
pub(crate) fn contributions(in_len: usize, out_len: usize, scale: f64) -> Contributions {
    let antialias = scale < 1.0;
    let kernel_width = if antialias { 4.0 / scale } else { 4.0 };
    let kernel = |x: f64| {
        if antialias {
            scale * cubic(scale * x)
        } else {
            cubic(x)
        }
    };
    let taps = kernel_width.ceil() as usize + 2;
    // Symmetric padding: position p (1-based, any integer) reads aux[(p - 1) mod 2n].
    let period = 2 * in_len as i64;
    let mirror = |p: i64| -> usize {
        let m = (p - 1).rem_euclid(period);
        if m < in_len as i64 {
            m as usize
        } else {
            (period - 1 - m) as usize
        }
    };
    let mut weights = Vec::with_capacity(out_len * taps);
    let mut indices = Vec::with_capacity(out_len * taps);
    for x in 1..=out_len {
        let u = x as f64 / scale + 0.5 * (1.0 - 1.0 / scale);
        let left = (u - kernel_width / 2.0).floor() as i64;
        let row: Vec<f64> = (0..taps)
            .map(|k| kernel(u - (left + k as i64) as f64))
            .collect();
        let sum: f64 = row.iter().sum();
        weights.extend(row.iter().map(|w| w / sum));
        indices.extend((0..taps).map(|k| mirror(left + k as i64)));
    }
    Contributions {
        taps,
        weights,
        indices,
    }
}

/// MATLAB's conversion of a double to an integer image type: round half away from zero,
/// saturate to `[0, max]`.
fn to_integer(v: f64, max: f64) -> f64 {
    v.round().clamp(0.0, max)
}

/// One pass along a dimension of a planar `[outer, len, inner]` buffer.
fn resize_dim(
    data: &[f64],
    outer: usize,
    len: usize,
    inner: usize,
    c: &Contributions,
    max: f64,
) -> Vec<f64> {
    let out_len = c.weights.len() / c.taps;
    let mut out = vec![0.0; outer * out_len * inner];
    for o in 0..outer {
        let src = &data[o * len * inner..(o + 1) * len * inner];
        let dst = &mut out[o * out_len * inner..(o + 1) * out_len * inner];
        for i in 0..out_len {
            let w = &c.weights[i * c.taps..(i + 1) * c.taps];
            let idx = &c.indices[i * c.taps..(i + 1) * c.taps];
            for j in 0..inner {
                let v: f64 = w
                    .iter()
                    .zip(idx)
                    .map(|(&w, &k)| w * src[k * inner + j])
                    .sum();
                dst[i * inner + j] = to_integer(v, max);
            }
        }
    }
    out
}

/// `imresize(plane, scale, 'bicubic')` of one integer-valued `h × w` plane (values in
/// `0..=max`, e.g. 255 for `uint8`); returns the plane and its size
/// `(ceil(scale·h), ceil(scale·w))`.
pub fn imresize_plane(
    plane: &[f64],
    h: usize,
    w: usize,
    scale: f64,
    max: f64,
) -> (Vec<f64>, usize, usize) {
    assert_eq!(plane.len(), h * w, "plane is h·w");
    let (oh, ow) = (
        (h as f64 * scale).ceil() as usize,
        (w as f64 * scale).ceil() as usize,
    );
    // Equal scales: rows first (MATLAB's stable sort of the scales).
    let rows = contributions(h, oh, scale);
    let tmp = resize_dim(plane, 1, h, w, &rows, max);
    let cols = contributions(w, ow, scale);
    let out = resize_dim(&tmp, oh, w, 1, &cols, max);
    (out, oh, ow)
}

/// `imresize(img, scale, 'bicubic')` of an image at its own bit depth (8 or 16 bits per
/// channel; alpha too). Gray images stay gray.
///
/// ```
/// use gaze::degrade::imresize;
/// use gaze::io::Image;
///
/// let img = Image::from_rgb8(&ndarray::Array3::from_elem((12, 9, 3), 200u8));
/// let small = imresize(&img, 1.0 / 3.0).unwrap();
/// assert_eq!((small.height, small.width), (4, 3));
/// assert!(small.rgb.iter().all(|&v| (v * 255.0 - 200.0).abs() < 1e-3));
/// ```
pub fn imresize(img: &Image, scale: f64) -> Result<Image, Error> {
    if !(scale.is_finite() && scale > 0.0) {
        return Err(Error::msg(format!("invalid resize factor {scale}")));
    }
    let (h, w) = (img.height, img.width);
    let (oh, ow) = (
        (h as f64 * scale).ceil() as usize,
        (w as f64 * scale).ceil() as usize,
    );
    if h == 0 || w == 0 || oh == 0 || ow == 0 {
        return Err(Error::msg(format!(
            "cannot resize a {w}×{h} image by {scale}"
        )));
    }
    let max = if img.sixteen_bit { 65535.0 } else { 255.0 };
    let resize = |plane: Vec<f64>| imresize_plane(&plane, h, w, scale, max).0;
    let level = |v: f32| (v as f64 * max).round();
    // Gray sources hold three equal channels: resize one.
    let channels = if img.gray { 1 } else { 3 };
    let planes: Vec<Vec<f64>> = (0..channels)
        .map(|c| {
            resize(
                img.rgb
                    .iter()
                    .skip(c)
                    .step_by(3)
                    .map(|&v| level(v))
                    .collect(),
            )
        })
        .collect();
    let mut rgb = Vec::with_capacity(oh * ow * 3);
    for i in 0..oh * ow {
        for c in 0..3 {
            rgb.push((planes[c.min(channels - 1)][i] / max) as f32);
        }
    }
    let alpha = img.alpha.as_ref().map(|a| {
        resize(a.iter().map(|&v| level(v)).collect())
            .into_iter()
            .map(|v| (v / max) as f32)
            .collect()
    });
    Ok(Image {
        width: ow,
        height: oh,
        rgb,
        alpha,
        gray: img.gray,
        sixteen_bit: img.sixteen_bit,
    })
}

/// The benchmarks' LR image of an HR one: crop to a multiple of `scale` (MATLAB `modcrop`:
/// bottom and right), then `imresize(hr, 1/scale, 'bicubic')`.
///
/// ```
/// use gaze::degrade::degrade;
/// use gaze::io::Image;
///
/// let hr = Image::from_rgb8(&ndarray::Array3::from_elem((25, 17, 3), 90u8));
/// let lr = degrade(&hr, 4).unwrap();
/// assert_eq!((lr.height, lr.width), (6, 4));
/// ```
pub fn degrade(hr: &Image, scale: usize) -> Result<Image, Error> {
    if scale < 2 {
        return Err(Error::msg(format!(
            "the degradation factor must be at least 2, got {scale}"
        )));
    }
    if hr.height < scale || hr.width < scale {
        return Err(Error::msg(format!(
            "a {}×{} image is smaller than the factor {scale}",
            hr.width, hr.height
        )));
    }
    imresize(&mod_crop(hr, scale), 1.0 / scale as f64)
}

/// Crops the bottom and right so both sides are multiples of `scale`.
pub fn mod_crop(img: &Image, scale: usize) -> Image {
    let (h, w) = (img.height / scale * scale, img.width / scale * scale);
    if (h, w) == (img.height, img.width) {
        return img.clone();
    }
    let rgb = (0..h)
        .flat_map(|y| {
            img.rgb[y * img.width * 3..(y * img.width + w) * 3]
                .iter()
                .copied()
        })
        .collect();
    let alpha = img.alpha.as_ref().map(|a| {
        (0..h)
            .flat_map(|y| a[y * img.width..y * img.width + w].iter().copied())
            .collect()
    });
    Image {
        width: w,
        height: h,
        rgb,
        alpha,
        ..img.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_and_weights() {
        assert_eq!(cubic(0.0), 1.0);
        assert_eq!(cubic(1.0), 0.0);
        assert_eq!(cubic(2.0), 0.0);
        assert!((cubic(0.5) - 0.5625).abs() < 1e-15);
        let c = contributions(12, 4, 1.0 / 3.0);
        assert_eq!(c.taps, 14);
        for i in 0..4 {
            let s: f64 = c.weights[i * 14..(i + 1) * 14].iter().sum();
            assert!((s - 1.0).abs() < 1e-12);
        }
        // Mirrored edges: the first output's leftmost taps read 1-based 0, -1, … as 1, 2, …
        assert_eq!(&c.indices[..3], &[4, 3, 2]);
    }

    #[test]
    fn constant_and_sizes() {
        let plane = vec![77.0; 30 * 20];
        let (out, oh, ow) = imresize_plane(&plane, 30, 20, 0.5, 255.0);
        assert_eq!((oh, ow), (15, 10));
        assert!(out.iter().all(|&v| v == 77.0));
        let (_, oh, ow) = imresize_plane(&plane, 30, 20, 2.0, 255.0);
        assert_eq!((oh, ow), (60, 40));
    }
}
