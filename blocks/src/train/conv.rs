//! The training path of [`Conv2d`] on the flex CPU device: the forward runs gaze's kernels
//! (direct or im2col + GEMM, as in inference) and is recorded on Burn's autodiff graph as one
//! operation with its own backward, through Burn's backend-extension API (the autodiff
//! primitive from `Tensor::try_into_primitive::<Autodiff<Flex>>`, a `Backward` step).
//!
//! Why: a ResNet-50 training step spent most of its time in flex's convolution and its
//! gradients (`conv2d_x_backward` as a transposed convolution, `conv2d_weight_backward` as a
//! 3-D convolution), one small GEMM per 512-pixel tile: 46 GFLOP/s on two cores where the same
//! `gemm` crate reaches 150+ on large products. Here both gradients are per image and group
//! a few large GEMMs over bands of output rows, as the im2col forward:
//!
//! - `∂L/∂W[co, (ci, i, j)] = Σ_b Σ_p ∂L/∂Y[b, co, p] · col_b[(ci, i, j), p]` — the columns of
//!   the forward (the map itself for 1×1 stride-1 convolutions) against the output gradient;
//! - `∂L/∂X = col2im(Wᵀ · ∂L/∂Y)` — the column gradient added back onto the pixels each column
//!   entry was read from (for 1×1 stride-1 convolutions the product is `∂L/∂X` itself);
//! - `∂L/∂b[co] = Σ_b Σ_p ∂L/∂Y[b, co, p]`.
//!
//! Every sum runs in a fixed order (GEMMs split by output blocks, col2im by input channel),
//! so training stays bit-for-bit repeatable (the exact-resume tests). Depthwise convolutions
//! take the `conv::depthwise` kernel forward and its gradients (per channel plane: the taps'
//! `w · dy` added back onto the padded input, and per tap the products of `dy` with the padded
//! input summed over the images in order); Burn's autodiff ran them as a transposed and a 3-D
//! grouped convolution, most of a VapSR training step. Autodiff graphs with gradient
//! checkpointing, other devices and dtypes, and the geometries neither path takes (thin groups,
//! `Same` padding) keep Burn's `conv2d`.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::flex::FlexTensor;
use burn::backend::Flex;
use burn::prelude::*;
use rayon::prelude::*;

use crate::conv::im2col::{fill_columns, Geometry, PARALLEL_MIN_WORK};
use crate::conv::{depthwise, Conv2d};
use crate::cpu_kernels::{assume_init, assume_init_mut, matmul, unwritten, Init, Strided};
use std::mem::MaybeUninit;

use super::{flex_tensor, host, into_flex, layer_primitives, plain, record_layer, vectorised};

/// `conv(input)` recorded with [`ConvBackward`] when `input` and the parameters are f32
/// tensors of the autodiff flex device and the im2col path takes the geometry; otherwise the
/// input back.
pub(crate) fn forward(conv: &Conv2d, input: Tensor<4>) -> Result<Tensor<4>, Tensor<4>> {
    let Some(geometry) = conv
        .im2col_geometry(&input)
        .or_else(|| conv.depthwise_geometry(&input))
    else {
        return Err(input);
    };
    let Some((x, weight, bias)) = layer_primitives(&input, &conv.weight, conv.bias.as_ref()) else {
        return Err(input);
    };
    // The forward on the values, as in inference.
    let output = conv
        .forward_with(plain(&x), plain(&weight), bias.as_ref().map(plain), None)
        .unwrap_or_else(|_| unreachable!("the im2col or depthwise path accepted it"));
    let state = ConvState {
        x: x.primitive().clone(),
        weight: weight.primitive().clone(),
        geometry,
    };
    let output = into_flex(output);
    Ok(record_layer(
        ConvBackward,
        (x.node(), weight.node(), bias.map(|bias| bias.node())),
        state,
        output,
    ))
}

/// What the backward needs: the forward's input and weight values and its geometry.
#[derive(Clone, Debug)]
struct ConvState {
    x: FlexTensor,
    weight: FlexTensor,
    geometry: Geometry,
}

/// The backward step; parents `[x, weight]` or `[x, weight, bias]`.
#[derive(Debug)]
struct ConvBackward;

impl<const N: usize> Backward<Flex, N> for ConvBackward {
    type State = ConvState;

    fn backward(self, ops: Ops<ConvState, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node);
        let ConvState {
            x,
            weight,
            geometry: g,
        } = ops.state;
        let (grad, x, weight) = (host(&grad), host(&x), host(&weight));
        let [kh, kw] = g.kernel;
        let depthwise = g.depthwise();
        if let Some(node) = &ops.parents[0] {
            let dx = if depthwise {
                depthwise::input_grad(grad.values(), weight.values(), g)
            } else {
                input_grad(grad.values(), weight.values(), &g)
            };
            grads.register::<Flex>(
                node.id,
                flex_tensor(dx, vec![g.batch, g.cin, g.height, g.width]),
            );
        }
        if let Some(node) = &ops.parents[1] {
            let dw = if depthwise {
                depthwise::weight_grad(grad.values(), x.values(), g)
            } else {
                weight_grad(grad.values(), x.values(), &g)
            };
            let shape = vec![g.cout, g.cin / g.groups, kh, kw];
            grads.register::<Flex>(node.id, flex_tensor(dw, shape));
        }
        if let Some(Some(node)) = ops.parents.get(2) {
            grads.register::<Flex>(
                node.id,
                flex_tensor(bias_grad(grad.values(), &g), vec![g.cout]),
            );
        }
    }
}

/// `∂L/∂b[co] = Σ_b Σ_p dy[b, co, p]`, summed in f64 in a fixed order.
fn bias_grad(dy: &[f32], g: &Geometry) -> Vec<f32> {
    let plane = g.out[0] * g.out[1];
    (0..g.cout)
        .into_par_iter()
        .map(|co| {
            (0..g.batch)
                .map(|b| {
                    dy[(b * g.cout + co) * plane..][..plane]
                        .iter()
                        .map(|&v| v as f64)
                        .sum::<f64>()
                })
                .sum::<f64>() as f32
        })
        .collect()
}

/// `∂L/∂W[co, (ci, i, j)] = Σ_b Σ_p dy[b, co, p] · col_b[(ci, i, j), p]`: per image, group and
/// band one GEMM of the output gradient against the band's columns, accumulated.
fn weight_grad(dy: &[f32], x: &[f32], g: &Geometry) -> Vec<f32> {
    let [kh, kw] = g.kernel;
    let (cig, cog) = (g.cin / g.groups, g.cout / g.groups);
    let depth = cig * kh * kw;
    let plane = g.out[0] * g.out[1];
    let out_w = g.out[1];
    let rows_per_band = g.band_rows(depth);
    // Each group's first product (first image, first band) writes its block without reading
    // it; only an empty batch or map leaves the gradient zero.
    if g.batch == 0 || plane == 0 {
        return vec![0.0; g.cout * depth];
    }
    let mut dw = unwritten(g.cout * depth);
    let mut col = unwritten(if g.pointwise() {
        0
    } else {
        depth * rows_per_band * out_w
    });
    for b in 0..g.batch {
        for group in 0..g.groups {
            let input =
                &x[(b * g.cin + group * cig) * g.height * g.width..][..cig * g.height * g.width];
            let grad = &dy[(b * g.cout + group * cog) * plane..][..cog * plane];
            let dst = &mut dw[group * cog * depth..][..cog * depth];
            for y0 in (0..g.out[0]).step_by(rows_per_band) {
                let rows = rows_per_band.min(g.out[0] - y0);
                let n = rows * out_w;
                // The band's columns, `depth × n` (the product reads them transposed).
                let columns = if g.pointwise() {
                    Strided {
                        ptr: input.as_ptr(),
                        rs: g.height as isize * g.width as isize,
                        cs: 1,
                    }
                } else {
                    let col = &mut col[..depth * n];
                    fill_columns(col, input, g, y0..y0 + rows, true);
                    Strided {
                        ptr: col.as_ptr().cast::<f32>(),
                        rs: n as isize,
                        cs: 1,
                    }
                };
                let first = b == 0 && y0 == 0;
                // SAFETY: dst is `cog × depth` row-major; the gradient band is `cog × n` with
                // row stride `plane` from `y0 · out_w`; the columns `depth × n` with row stride
                // `columns.rs`; all inside their buffers.
                unsafe {
                    matmul(
                        [cog, depth, n],
                        dst.as_mut_ptr().cast(),
                        depth,
                        Init::accumulating(!first),
                        Strided {
                            ptr: grad[y0 * out_w..].as_ptr(),
                            rs: plane as isize,
                            cs: 1,
                        },
                        columns.transposed(),
                        cog * depth * n >= PARALLEL_MIN_WORK,
                    );
                }
            }
        }
    }
    // SAFETY: every group's block was written by its first product (batch and map not empty).
    unsafe { assume_init(dw) }
}

/// `∂L/∂X = col2im(Wᵀ · dy)`: per image, group and band, the column gradient `Wᵀ · dy_band`
/// (`depth × n`) added onto the input pixels each column entry was read from.
fn input_grad(dy: &[f32], w: &[f32], g: &Geometry) -> Vec<f32> {
    let [kh, kw] = g.kernel;
    let (cig, cog) = (g.cin / g.groups, g.cout / g.groups);
    let depth = cig * kh * kw;
    let plane = g.out[0] * g.out[1];
    let map = g.height * g.width;
    let out_w = g.out[1];
    let rows_per_band = g.band_rows(depth);
    // A pointwise convolution's products write every input pixel's gradient (one band, the
    // whole map); otherwise col2im adds onto zeros. The column gradient is written by its
    // product before col2im reads it.
    let mut dx = if g.pointwise() {
        unwritten(g.batch * g.cin * map)
    } else {
        vec![MaybeUninit::new(0.0); g.batch * g.cin * map]
    };
    let mut dcol = unwritten(depth * rows_per_band * out_w);
    for b in 0..g.batch {
        for group in 0..g.groups {
            let grad = &dy[(b * g.cout + group * cog) * plane..][..cog * plane];
            let weight = Strided {
                ptr: w[group * cog * depth..].as_ptr(),
                rs: depth as isize,
                cs: 1,
            }
            .transposed();
            let dx = &mut dx[(b * g.cin + group * cig) * map..][..cig * map];
            for y0 in (0..g.out[0]).step_by(rows_per_band) {
                let rows = rows_per_band.min(g.out[0] - y0);
                let n = rows * out_w;
                let band = Strided {
                    ptr: grad[y0 * out_w..].as_ptr(),
                    rs: plane as isize,
                    cs: 1,
                };
                let threaded = depth * n * cog >= PARALLEL_MIN_WORK;
                if g.pointwise() {
                    // SAFETY: dx is `cig × map` row-major (depth = cig, n = map); the weight
                    // `cog × depth` read transposed; the gradient `cog × n`; in bounds.
                    unsafe {
                        matmul(
                            [depth, n, cog],
                            dx.as_mut_ptr().cast(),
                            map,
                            Init::Overwrite,
                            weight,
                            band,
                            threaded,
                        );
                    }
                    continue;
                }
                let dcol = &mut dcol[..depth * n];
                // SAFETY: dcol is `depth × n` row-major; operands as above. The product writes
                // every value of dcol (cog ≥ 1); dx holds zeros or added gradients.
                let (dcol, dx) = unsafe {
                    matmul(
                        [depth, n, cog],
                        dcol.as_mut_ptr().cast(),
                        n,
                        Init::Overwrite,
                        weight,
                        band,
                        threaded,
                    );
                    (assume_init_mut(dcol), assume_init_mut(dx))
                };
                col2im_add(dcol, dx, g, y0..y0 + rows);
            }
        }
    }
    // SAFETY: zeros added onto, or (pointwise) every image's and group's map written by its
    // product.
    unsafe { assume_init(dx) }
}

/// `dx[ci, y·s + i·d − p, x·s + j·d − p] += dcol[(ci, i, j), (y − y0, x)]` for the output rows
/// `rows` (entries of the padding are dropped): the inverse of `fill_columns`, input channels
/// in parallel (each writes its own plane).
fn col2im_add(dcol: &[f32], dx: &mut [f32], g: &Geometry, rows: std::ops::Range<usize>) {
    let [kh, kw] = g.kernel;
    let [sh, sw] = g.stride;
    let (dh, ph) = (g.dilation[0], g.pad[0]);
    let (height, width, out_w) = (g.height, g.width, g.out[1]);
    let n = rows.len() * out_w;
    let add_channel = |(dcol, dx): (&[f32], &mut [f32])| {
        for (r, dcol) in dcol.chunks(n).enumerate() {
            let (i, j) = (r / kw, r % kw);
            let (first, last, x0) = g.inside_columns(j);
            if first == last {
                continue;
            }
            for (y, src) in rows.clone().zip(dcol.chunks(out_w)) {
                let iy = (y * sh + i * dh) as isize - ph as isize;
                if iy < 0 || iy >= height as isize {
                    continue;
                }
                let dst = &mut dx[iy as usize * width..][..width];
                if sw == 1 {
                    vectorised(
                        #[inline(always)]
                        || {
                            for (d, s) in dst[x0..].iter_mut().zip(&src[first..last]) {
                                *d += s;
                            }
                        },
                    )
                } else {
                    for (d, s) in dst[x0..].iter_mut().step_by(sw).zip(&src[first..last]) {
                        *d += s;
                    }
                }
            }
        }
    };
    let per_channel = kh * kw * n;
    dcol.par_chunks(per_channel)
        .zip(dx.par_chunks_mut(height * width))
        .with_min_len((16384 / per_channel.max(1)).max(1))
        .for_each(add_channel);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::tests::{conv_of, random};
    use crate::conv::Conv2dConfig;
    use crate::train::max_diff;
    use burn::nn::PaddingConfig2d;

    /// The gradients of `Σ conv(x) · r` with respect to the input, weight and bias through
    /// this path equal those of Burn's `conv2d` on the same values.
    #[test]
    fn gradients_equal_burns_conv2d() {
        let device = Device::flex().autodiff();
        // (batch, cin, cout, groups, h, w, k, stride, dilation, padding [t, l, b, r], bias,
        // input needs a gradient): the direct kernel's forward (3×3 stride 1), a ResNet stem
        // (input without gradient), stride 2, 1×1 at stride 1 (the map as columns) and 2,
        // dilation, groups, a 4×4 kernel at stride 3 with asymmetric padding, over-wide
        // padding, and a map larger than the column budget (several bands).
        let cases = [
            (2, 8, 6, 1, 9, 10, 3, 1, 1, [1, 1, 1, 1], true, true),
            (2, 3, 8, 1, 23, 30, 7, 2, 1, [3, 3, 3, 3], false, false),
            (3, 20, 12, 1, 12, 13, 3, 2, 1, [1, 1, 1, 1], true, true),
            (2, 24, 40, 1, 7, 9, 1, 1, 1, [0, 0, 0, 0], true, true),
            (1, 32, 8, 1, 10, 17, 1, 2, 1, [0, 0, 0, 0], false, true),
            (1, 50, 6, 1, 15, 14, 3, 1, 2, [2, 2, 2, 2], false, true),
            (2, 64, 32, 2, 8, 9, 3, 1, 1, [1, 1, 1, 1], true, true),
            (1, 64, 32, 2, 6, 5, 1, 1, 1, [0, 0, 0, 0], false, true),
            (1, 18, 5, 1, 7, 8, 4, 3, 1, [0, 2, 1, 0], true, true),
            (1, 16, 4, 1, 5, 6, 3, 1, 1, [4, 4, 4, 4], false, true),
            (1, 300, 4, 1, 40, 80, 3, 1, 1, [1, 1, 1, 1], true, true),
            // Depthwise (the `depthwise` kernel's gradients): 3×3, 5×5 at stride 2, 7×7 at
            // dilation 3 (VapSR), a 4×4 kernel at stride 3 with asymmetric padding.
            (2, 8, 8, 8, 9, 10, 3, 1, 1, [1, 1, 1, 1], true, true),
            (2, 6, 6, 6, 11, 9, 5, 2, 1, [2, 2, 2, 2], false, true),
            (2, 4, 4, 4, 20, 17, 7, 1, 3, [9, 9, 9, 9], true, true),
            (1, 3, 3, 3, 9, 10, 4, 3, 1, [0, 2, 1, 0], true, false),
        ];
        for (i, (b, cin, cout, groups, h, w, k, s, d, padding, bias, x_grad)) in
            cases.into_iter().enumerate()
        {
            let conv = conv_of((cin, cout, groups, k, s, d, padding, bias), &device);
            let x = random([b, cin, h, w], 200 + i as u64, &device);
            let x = if x_grad { x.require_grad() } else { x };
            let ours = forward(&conv, x.clone()).unwrap_or_else(|_| panic!("case {i} taken"));
            let reference = conv.as_burn().forward(x.clone());
            assert!(
                max_diff(ours.clone(), reference.clone()) < 1e-5,
                "case {i} forward"
            );
            let weights = random(ours.dims(), 300 + i as u64, &device);
            let gradients = |y: Tensor<4>| {
                let grads = (y * weights.clone()).sum().backward();
                let of = |t: Option<Tensor<4>>| t.map(|t| t.inner());
                (
                    of(x.grad(&grads)),
                    conv.weight.grad(&grads).expect("weight gradient"),
                    conv.bias
                        .as_ref()
                        .map(|b| b.grad(&grads).expect("bias gradient")),
                )
            };
            let (dx, dw, db) = gradients(ours);
            let (dx_ref, dw_ref, db_ref) = gradients(reference);
            assert_eq!(dx.is_some(), x_grad, "case {i}");
            if let (Some(dx), Some(dx_ref)) = (dx, dx_ref) {
                let diff = max_diff(dx, dx_ref);
                assert!(diff < 1e-4, "case {i}: input gradient differs by {diff}");
            }
            let diff = max_diff(dw, dw_ref);
            assert!(diff < 1e-4, "case {i}: weight gradient differs by {diff}");
            if let (Some(db), Some(db_ref)) = (db, db_ref) {
                let diff = max_diff(db, db_ref);
                assert!(diff < 1e-4, "case {i}: bias gradient differs by {diff}");
            }
        }
    }

    /// Thin groups and autodiff graphs without a gradient keep their paths: the former Burn's
    /// `conv2d`, the latter this forward without recording a step.
    #[test]
    fn falls_back_where_the_path_does_not_apply() {
        let device = Device::flex().autodiff();
        let thin_groups = Conv2dConfig::new([8, 8], [3, 3])
            .with_groups(2)
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(&device);
        assert!(forward(&thin_groups, random([1, 8, 6, 6], 1, &device)).is_err());
        let plain = Conv2dConfig::new([8, 8], [3, 3]).init(&Device::flex());
        assert!(forward(&plain, random([1, 8, 6, 6], 2, &Device::flex())).is_err());
    }
}
