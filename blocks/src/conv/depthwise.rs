//! Depthwise convolution (`groups = C_in = C_out`: one `kh × kw` filter per channel) on the
//! CPU: `out[b, c, y, x] = bias[c] + Σᵢⱼ w[c, i, j] · x[b, c, y·s + i·d − p, x·s + j·d − p]`.
//!
//! Why: flex lowers a depthwise convolution to its grouped 3-D convolution loops, 4–8 GFLOP/s
//! on the 14×14 and 7×7 maps of BiFormer's last stages (PyTorch: 5–6× faster there), and im2col
//! would build a column buffer for a product of one row. Here each task is one channel plane:
//! a zero-padded copy of it (no bounds checks in the loop), then per output row and block of 16
//! pixels all `kh·kw` taps multiply-added into 16 accumulators held in registers (compiled for
//! the CPU's widest instruction set through `pulp`), stored once. Any kernel size, stride, dilation
//! and zero padding; the BatchNorm/ReLU epilogue of `forward_bn` is applied to each plane.

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
