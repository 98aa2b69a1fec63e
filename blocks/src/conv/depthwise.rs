//! Depthwise convolution (`groups = C_in = C_out`: one `kh × kw` filter per channel) on the
//! CPU: `out[b, c, y, x] = bias[c] + Σᵢⱼ w[c, i, j] · x[b, c, y·s + i·d − p, x·s + j·d − p]`.
//!
//! Why: flex lowers a depthwise convolution to its grouped 3-D convolution loops, 4–8 GFLOP/s
//! on the 14×14 and 7×7 maps of BiFormer's last stages (PyTorch: 5–6× faster there), and im2col
//! would build a column buffer for a product of one row. Here each task is one channel plane:
//! a zero-padded copy of it (no bounds checks in the loop), then per output row and block of 16
//! pixels all `kh·kw` taps multiply-added into 16 accumulators held in registers (compiled for
//! the CPU's widest instruction set through `pulp`), stored once. Any kernel size, stride, dilation
//! and zero padding; the BatchNorm/ReLU epilogue of `forward_bn` is applied to each plane;
//! [`input_grad`] and [`weight_grad`] are its gradients for `train::conv`.

use super::im2col::Geometry;
use super::Epilogue;
use rayon::prelude::*;

/// Output pixels of one row computed together: 16 accumulators (one AVX-512 register, two
/// AVX2 ones) that stay in registers over all the taps.
const BLOCK: usize = 16;

/// The convolution of `x` (`[B, C, H, W]`) with `w` (`[C, 1, kh, kw]`), `g.groups == g.cin ==
/// g.cout`.
pub(crate) fn conv(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    g: Geometry,
    epilogue: Option<&Epilogue>,
) -> Vec<f32> {
    let channels = g.cin;
    let [kh, kw] = g.kernel;
    let (plane_in, plane_out) = (g.height * g.width, g.out[0] * g.out[1]);
    assert!(
        g.groups == channels && g.cout == channels,
        "depthwise geometry"
    );
    assert_eq!(x.len(), g.batch * channels * plane_in, "input size");
    assert_eq!(w.len(), channels * kh * kw, "weight size");
    let mut out = vec![0.0; g.batch * channels * plane_out];
    let padded = Padded::new(&g);
    let work = (plane_out * kh * kw).max(1);
    out.par_chunks_mut(plane_out.max(1))
        .with_min_len((1 << 14) / work + 1)
        .enumerate()
        .for_each_init(Vec::new, |scratch, (i, dst)| {
            let channel = i % channels;
            padded.fill(scratch, &x[i * plane_in..][..plane_in]);
            pulp::Arch::new().dispatch(Plane {
                dst,
                src: scratch,
                taps: &w[channel * kh * kw..][..kh * kw],
                bias: bias.map_or(0.0, |b| b[channel]),
                row_stride: padded.row_stride,
                g: &g,
            });
            if let Some(epilogue) = epilogue {
                epilogue.apply(channel, dst);
            }
        });
    out
}

/// The zero-padded copy of a channel plane that every tap reads without bounds checks: the
/// padding on all sides, and on the right enough zeros for the last block of a row to read
/// `BLOCK` pixels at the stride.
struct Padded {
    rows: usize,
    row_stride: usize,
    top: usize,
    left: usize,
    height: usize,
    width: usize,
}

impl Padded {
    fn new(g: &Geometry) -> Self {
        let [kh, kw] = g.kernel;
        let [sh, sw] = g.stride;
        let [dh, dw] = g.dilation;
        let [oh, ow] = g.out;
        // The last tap of the last output read `(o − 1)·s + (k − 1)·d`; blocks round `ow` up.
        let rows = (oh.max(1) - 1) * sh + (kh - 1) * dh + 1;
        let row_stride = (ow.div_ceil(BLOCK) * BLOCK - 1) * sw + (kw - 1) * dw + 1;
        Padded {
            rows: rows.max(g.pad[0] + g.height),
            row_stride: row_stride.max(g.pad[1] + g.width),
            top: g.pad[0],
            left: g.pad[1],
            height: g.height,
            width: g.width,
        }
    }

    fn fill(&self, buffer: &mut Vec<f32>, plane: &[f32]) {
        buffer.clear();
        buffer.resize(self.rows * self.row_stride, 0.0);
        for (y, row) in plane.chunks_exact(self.width.max(1)).enumerate() {
            let start = (self.top + y) * self.row_stride + self.left;
            buffer[start..start + self.width].copy_from_slice(row);
        }
        debug_assert!(self.top + self.height <= self.rows);
    }
}

/// One channel plane of [`conv`], from its [`Padded`] copy.
struct Plane<'a> {
    dst: &'a mut [f32],
    src: &'a [f32],
    taps: &'a [f32],
    bias: f32,
    row_stride: usize,
    g: &'a Geometry,
}

impl pulp::NullaryFnOnce for Plane<'_> {
    type Output = ();

    // Inlined into pulp's per-instruction-set entry points, so the loops below are compiled
    // (the block's 16 lanes as vector registers, `mul_add` as FMA) for the CPU's instruction
    // set.
    #[inline(always)]
    fn call(self) {
        let Plane {
            dst,
            src,
            taps,
            bias,
            row_stride,
            g,
        } = self;
        let [kh, kw] = g.kernel;
        let [sh, sw] = g.stride;
        let [dh, dw] = g.dilation;
        let out_w = g.out[1];
        for (y, row) in dst.chunks_exact_mut(out_w.max(1)).enumerate() {
            for x0 in (0..out_w).step_by(BLOCK) {
                let mut acc = [bias; BLOCK];
                for i in 0..kh {
                    let input = &src[(y * sh + i * dh) * row_stride..][..row_stride];
                    for j in 0..kw {
                        let tap = taps[i * kw + j];
                        let start = x0 * sw + j * dw;
                        if sw == 1 {
                            let pixels = &input[start..start + BLOCK];
                            for (a, v) in acc.iter_mut().zip(pixels) {
                                *a = v.mul_add(tap, *a);
                            }
                        } else {
                            let pixels = &input[start..start + (BLOCK - 1) * sw + 1];
                            for (a, v) in acc.iter_mut().zip(pixels.iter().step_by(sw)) {
                                *a = v.mul_add(tap, *a);
                            }
                        }
                    }
                }
                let n = BLOCK.min(out_w - x0);
                row[x0..x0 + n].copy_from_slice(&acc[..n]);
            }
        }
    }
}

/// `∂L/∂x` of [`conv`] from the output gradient `dy` (`[B, C, H', W']`): per channel plane, every
/// tap's `w · dy` row added onto the zero-padded input positions it was read from, then the
/// map cut out of the padding. Planes are independent, so the sums run in a fixed order.
pub(crate) fn input_grad(dy: &[f32], w: &[f32], g: Geometry) -> Vec<f32> {
    let channels = g.cin;
    let [kh, kw] = g.kernel;
    let (plane_in, plane_out) = (g.height * g.width, g.out[0] * g.out[1]);
    let padded = Padded::new(&g);
    let mut dx = vec![0.0f32; g.batch * channels * plane_in];
    dx.par_chunks_mut(plane_in.max(1))
        .enumerate()
        .for_each_init(Vec::new, |scratch: &mut Vec<f32>, (i, dx)| {
            let channel = i % channels;
            scratch.clear();
            scratch.resize(padded.rows * padded.row_stride, 0.0);
            pulp::Arch::new().dispatch(PlaneInputGrad {
                dx_padded: scratch,
                dy: &dy[i * plane_out..][..plane_out],
                taps: &w[channel * kh * kw..][..kh * kw],
                row_stride: padded.row_stride,
                g: &g,
            });
            for (y, row) in dx.chunks_exact_mut(g.width.max(1)).enumerate() {
                let start = (padded.top + y) * padded.row_stride + padded.left;
                row.copy_from_slice(&scratch[start..start + g.width]);
            }
        });
    dx
}

/// One plane of [`input_grad`] into its padded buffer.
struct PlaneInputGrad<'a> {
    dx_padded: &'a mut [f32],
    dy: &'a [f32],
    taps: &'a [f32],
    row_stride: usize,
    g: &'a Geometry,
}

impl pulp::NullaryFnOnce for PlaneInputGrad<'_> {
    type Output = ();

    #[inline(always)]
    fn call(self) {
        let [kh, kw] = self.g.kernel;
        let [sh, sw] = self.g.stride;
        let [dh, dw] = self.g.dilation;
        let out_w = self.g.out[1];
        for (y, dy) in self.dy.chunks_exact(out_w.max(1)).enumerate() {
            for i in 0..kh {
                let row = &mut self.dx_padded[(y * sh + i * dh) * self.row_stride..];
                for j in 0..kw {
                    let tap = self.taps[i * kw + j];
                    let start = j * dw;
                    if sw == 1 {
                        for (d, &g) in row[start..start + out_w].iter_mut().zip(dy) {
                            *d = g.mul_add(tap, *d);
                        }
                    } else {
                        for (x, &g) in dy.iter().enumerate() {
                            let d = &mut row[start + x * sw];
                            *d = g.mul_add(tap, *d);
                        }
                    }
                }
            }
        }
    }
}

/// `∂L/∂w[c, i, j] = Σ_b Σ_(y, x) dy[b, c, y, x] · x_padded[b, c, y·s + i·d, x·s + j·d]`, per
/// channel over the images in order, each plane's sums in f32 lanes added in f64.
pub(crate) fn weight_grad(dy: &[f32], x: &[f32], g: Geometry) -> Vec<f32> {
    let channels = g.cin;
    let [kh, kw] = g.kernel;
    let (plane_in, plane_out) = (g.height * g.width, g.out[0] * g.out[1]);
    let padded = Padded::new(&g);
    let mut dw = vec![0.0f32; channels * kh * kw];
    dw.par_chunks_mut((kh * kw).max(1))
        .enumerate()
        .for_each(|(c, dw)| {
            let mut sums = vec![0.0f64; kh * kw];
            let mut scratch = Vec::new();
            for b in 0..g.batch {
                let plane = b * channels + c;
                padded.fill(&mut scratch, &x[plane * plane_in..][..plane_in]);
                pulp::Arch::new().dispatch(PlaneWeightGrad {
                    sums: &mut sums,
                    dy: &dy[plane * plane_out..][..plane_out],
                    x_padded: &scratch,
                    row_stride: padded.row_stride,
                    g: &g,
                });
            }
            for (d, s) in dw.iter_mut().zip(sums) {
                *d = s as f32;
            }
        });
    dw
}

/// One plane's share of [`weight_grad`].
struct PlaneWeightGrad<'a> {
    sums: &'a mut [f64],
    dy: &'a [f32],
    x_padded: &'a [f32],
    row_stride: usize,
    g: &'a Geometry,
}

impl pulp::NullaryFnOnce for PlaneWeightGrad<'_> {
    type Output = ();

    #[inline(always)]
    fn call(self) {
        const LANES: usize = 16;
        let [kh, kw] = self.g.kernel;
        let [sh, sw] = self.g.stride;
        let [dh, dw] = self.g.dilation;
        let out_w = self.g.out[1];
        for i in 0..kh {
            for j in 0..kw {
                let mut lanes = [0.0f32; LANES];
                let mut tail = 0.0f32;
                for (y, dy) in self.dy.chunks_exact(out_w.max(1)).enumerate() {
                    let row = &self.x_padded[(y * sh + i * dh) * self.row_stride + j * dw..];
                    if sw == 1 {
                        let (dy_chunks, x_chunks) =
                            (dy.chunks_exact(LANES), row[..out_w].chunks_exact(LANES));
                        let (dy_rest, x_rest) = (dy_chunks.remainder(), x_chunks.remainder());
                        for (g, v) in dy_chunks.zip(x_chunks) {
                            for l in 0..LANES {
                                lanes[l] = g[l].mul_add(v[l], lanes[l]);
                            }
                        }
                        for (&g, &v) in dy_rest.iter().zip(x_rest) {
                            tail = g.mul_add(v, tail);
                        }
                    } else {
                        for (x, &g) in dy.iter().enumerate() {
                            tail = g.mul_add(row[x * sw], tail);
                        }
                    }
                }
                let plane: f64 = lanes.iter().map(|&v| v as f64).sum::<f64>() + tail as f64;
                self.sums[i * kw + j] += plane;
            }
        }
    }
}
