//! [`Linear`] with its gradients on the autodiff flex device: the forward is the inference
//! GEMM over all rows at once (bias included), the backward three products of the same shapes:
//!
//! - `∂L/∂X = dY · Wᵀ` (`[rows, d_out] · [d_out, d_in]`),
//! - `∂L/∂W = Xᵀ · dY` (`[d_in, rows] · [rows, d_out]`),
//! - `∂L/∂b = Σ_rows dY`.
//!
//! Burn's autodiff `linear` multiplies a `[B, N, d_in]` input by the weight as a batched
//! matmul (one small GEMM per image: 8 of 197 rows for a ViT-Tiny batch, where one of 1576
//! rows keeps both cores busy), adds the bias as a broadcast op, and its backward transposes
//! and sums over the batch axis in further ops.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::flex::FlexTensor;
use burn::backend::Flex;
use burn::prelude::*;
use rayon::prelude::*;

use crate::cpu_kernels::{matmul, Init, Strided};
use crate::linear::{gemm_linear, Linear, PARALLEL_MIN_WORK};

use super::{flex_tensor, host, into_flex, layer_primitives, plain, record_layer, vectorised};

/// `linear(input)` recorded with [`LinearBackward`] when the input and parameters are f32
/// tensors of the autodiff flex device (and the sizes agree: otherwise Burn's op reports
/// them); otherwise the input back.
pub(crate) fn forward<const D: usize>(
    linear: &Linear,
    input: Tensor<D>,
) -> Result<Tensor<D>, Tensor<D>> {
    let [d_input, d_output] = linear.weight.dims();
    if input.dims()[D - 1] != d_input {
        return Err(input);
    }
    let Some((x, weight, bias)) = layer_primitives(&input, &linear.weight, linear.bias.as_ref())
    else {
        return Err(input);
    };
    let output = into_flex(gemm_linear::<D>(
        plain(&x),
        plain(&weight),
        bias.as_ref().map(plain),
    ));
    let dims = input.dims();
    let state = LinearState {
        x: x.primitive().clone(),
        weight: weight.primitive().clone(),
        rows: dims[..D - 1].iter().product(),
        d_input,
        d_output,
    };
    Ok(record_layer(
        LinearBackward,
        (x.node(), weight.node(), bias.map(|bias| bias.node())),
        state,
        output,
    ))
}

/// What the backward needs: the input, the weight and the sizes.
#[derive(Clone, Debug)]
struct LinearState {
    x: FlexTensor,
    weight: FlexTensor,
    rows: usize,
    d_input: usize,
    d_output: usize,
}

/// The backward step; parents `[x, weight]` or `[x, weight, bias]`.
#[derive(Debug)]
struct LinearBackward;

impl<const N: usize> Backward<Flex, N> for LinearBackward {
    type State = LinearState;

    fn backward(self, ops: Ops<LinearState, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node);
        let LinearState {
            x,
            weight,
            rows,
            d_input,
            d_output,
        } = ops.state;
        let x_shape = x.layout().shape().to_vec();
        let (dy, x, weight) = (host(&grad), host(&x), host(&weight));
        let (dy, x, weight) = (dy.values(), x.values(), weight.values());
        let threaded = rows * d_input * d_output >= PARALLEL_MIN_WORK;
        let rows_of = |values: &[f32], width: usize| Strided {
            ptr: values.as_ptr(),
            rs: width as isize,
            cs: 1,
        };
        let multiplies = rows > 0 && d_input > 0 && d_output > 0;
        if let Some(node) = &ops.parents[0] {
            let mut dx = vec![0.0f32; rows * d_input];
            if multiplies {
                // SAFETY: dx is `rows × d_input`; dy `rows × d_output`; the weight
                // `d_input × d_output` read transposed; all row-major and in bounds.
                unsafe {
                    matmul(
                        [rows, d_input, d_output],
                        dx.as_mut_ptr(),
                        d_input,
                        Init::Overwrite,
                        rows_of(dy, d_output),
                        rows_of(weight, d_output).transposed(),
                        threaded,
                    );
                }
            }
            grads.register::<Flex>(node.id, flex_tensor(dx, x_shape));
        }
        if let Some(node) = &ops.parents[1] {
            let mut dw = vec![0.0f32; d_input * d_output];
            if multiplies {
                // SAFETY: dw is `d_input × d_output`; x `rows × d_input` read transposed; dy
                // `rows × d_output`; in bounds.
                unsafe {
                    matmul(
                        [d_input, d_output, rows],
                        dw.as_mut_ptr(),
                        d_output,
                        Init::Overwrite,
                        rows_of(x, d_input).transposed(),
                        rows_of(dy, d_output),
                        threaded,
                    );
                }
            }
            grads.register::<Flex>(node.id, flex_tensor(dw, vec![d_input, d_output]));
        }
        if let Some(Some(node)) = ops.parents.get(2) {
            grads.register::<Flex>(
                node.id,
                flex_tensor(column_sums(dy, d_output), vec![d_output]),
            );
        }
    }
}

/// Sums of the columns of a row-major `[rows, width]` matrix: blocks of columns in parallel,
/// rows added in order within each (a fixed order: repeatable).
fn column_sums(values: &[f32], width: usize) -> Vec<f32> {
    const BLOCK: usize = 64;
    let mut sums = vec![0.0f32; width];
    sums.par_chunks_mut(BLOCK)
        .enumerate()
        .for_each(|(block, sums)| {
            vectorised(
                #[inline(always)]
                || {
                    for row in values.chunks_exact(width.max(1)) {
                        for (s, v) in sums.iter_mut().zip(&row[block * BLOCK..]) {
                            *s += v;
                        }
                    }
                },
            )
        });
    sums
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::tests::random;
    use crate::linear::LinearConfig;
    use crate::train::max_diff;
    use burn::nn::LinearLayout;

    /// Output and gradients of `Σ linear(x) · r` for the input, weight and bias equal Burn's
    /// `linear`, for both weight layouts, with and without bias, rank 2 to 4.
    #[test]
    fn gradients_equal_burns_linear() {
        let device = Device::flex().autodiff();
        for (i, (layout, bias)) in [
            (LinearLayout::Row, true),
            (LinearLayout::Col, false),
            (LinearLayout::Col, true),
        ]
        .into_iter()
        .enumerate()
        {
            let layer = LinearConfig::new(37, 29)
                .with_bias(bias)
                .with_layout(layout)
                .init(&device);
            let x = random([3, 5, 7, 37], 40 + i as u64, &device).require_grad();
            let r = random([3, 5, 7, 29], 50 + i as u64, &device);
            let reference = |x: Tensor<4>| {
                burn::tensor::module::linear(
                    x,
                    layer.weight.val(),
                    layer.bias.as_ref().map(|b| b.val()),
                )
            };
            let run = |ours: bool| {
                let y = if ours {
                    forward(&layer, x.clone()).unwrap_or_else(|_| panic!("case {i} taken"))
                } else {
                    reference(x.clone())
                };
                let grads = (y.clone() * r.clone()).sum().backward();
                (
                    y.inner(),
                    x.grad(&grads).expect("input gradient"),
                    layer.weight.grad(&grads).expect("weight gradient"),
                    layer.bias.as_ref().map(|b| b.grad(&grads).expect("bias")),
                )
            };
            let (y, dx, dw, db) = run(true);
            let (y_ref, dx_ref, dw_ref, db_ref) = run(false);
            assert!(max_diff(y, y_ref) < 1e-5, "case {i} output");
            assert!(max_diff(dx, dx_ref) < 1e-4, "case {i} input gradient");
            assert!(max_diff(dw, dw_ref) < 1e-4, "case {i} weight gradient");
            if let (Some(db), Some(db_ref)) = (db, db_ref) {
                let d = max_diff(db, db_ref);
                assert!(d < 1e-4, "case {i} bias gradient {d}");
            }
        }
        // Rank 2 goes the same way.
        let layer = LinearConfig::new(4, 3).init(&device);
        assert!(forward(&layer, random([1, 1, 6, 4], 1, &device).reshape([6, 4])).is_ok());
        assert!(forward(
            &layer,
            random([1, 1, 6, 4], 1, &Device::flex()).reshape([6, 4])
        )
        .is_err());
    }
}
