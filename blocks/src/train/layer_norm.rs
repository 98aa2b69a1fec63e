//! [`LayerNorm`] over the last axis with its gradients on the autodiff flex device, forward and
//! backward one pass over the rows each. With `x̂ = (x − μ) · r`, `r = 1 / √(σ² + ε)` per row
//! and `g = dY · γ`:
//!
//! - `∂L/∂x = r · (g − mean(g) − x̂ · mean(g · x̂))` per row,
//! - `∂L/∂γ = Σ_rows dY · x̂`, `∂L/∂β = Σ_rows dY`.
//!
//! Burn's autodiff composes the norm from nine ops (means, square, square root, division,
//! broadcast scale and shift), each a tensor of the input's size kept for a backward of as many
//! ops again: 24 norms in a ViT-Tiny step. The column sums for `γ` and `β` add fixed blocks of
//! rows in a fixed order, so a step is bit-for-bit repeatable.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::flex::FlexTensor;
use burn::backend::Flex;
use burn::prelude::*;
use rayon::prelude::*;

use crate::layer_norm::LayerNorm;

use super::{flex_tensor, host, layer_primitives, record_layer, vectorised};

/// Rows per task (and per partial sum of the parameter gradients).
const ROWS: usize = 64;
/// Lanes of the row sums.
const LANES: usize = 16;

/// `norm(input)` recorded with [`LayerNormBackward`] when the input and parameters are f32
/// tensors of the autodiff flex device; otherwise the input back.
pub(crate) fn forward<const D: usize>(
    norm: &LayerNorm,
    input: Tensor<D>,
) -> Result<Tensor<D>, Tensor<D>> {
    let Some((x, gamma, beta)) = layer_primitives(&input, &norm.gamma, norm.beta.as_ref()) else {
        return Err(input);
    };
    let shape = input.dims().to_vec();
    let d = shape[D - 1];
    let rows = shape[..D - 1].iter().product::<usize>();
    let values = host(x.primitive());
    let gamma_values = host(gamma.primitive());
    let beta_values = beta.as_ref().map(|b| host(b.primitive()));
    let (xs, g, b) = (
        values.values(),
        gamma_values.values(),
        beta_values.as_ref().map(|b| b.values()),
    );
    let mut x_hat = vec![0.0f32; rows * d];
    let mut rstd = vec![0.0f32; rows];
    let mut out = vec![0.0f32; rows * d];
    let epsilon = norm.epsilon as f32;
    if d > 0 {
        x_hat
            .par_chunks_mut(ROWS * d)
            .zip(rstd.par_chunks_mut(ROWS))
            .zip(out.par_chunks_mut(ROWS * d))
            .zip(xs.par_chunks(ROWS * d))
            .for_each(|(((x_hat, rstd), out), xs)| {
                vectorised(
                    #[inline(always)]
                    || {
                        for (((x_hat, r), out), x) in x_hat
                            .chunks_exact_mut(d)
                            .zip(rstd.iter_mut())
                            .zip(out.chunks_exact_mut(d))
                            .zip(xs.chunks_exact(d))
                        {
                            let mean = lane_sum(x, |v| v) / d as f32;
                            let var = lane_sum(x, |v| (v - mean) * (v - mean)) / d as f32;
                            *r = 1.0 / (var + epsilon).sqrt();
                            for (((h, y), &v), &gk) in
                                x_hat.iter_mut().zip(out.iter_mut()).zip(x).zip(g)
                            {
                                *h = (v - mean) * *r;
                                *y = *h * gk;
                            }
                            if let Some(b) = b {
                                for (y, &bk) in out.iter_mut().zip(b) {
                                    *y += bk;
                                }
                            }
                        }
                    },
                )
            });
    }
    let state = LayerNormState {
        x_hat: flex_tensor(x_hat, shape.clone()),
        rstd,
        gamma: gamma.primitive().clone(),
    };
    let output = flex_tensor(out, shape);
    Ok(record_layer(
        LayerNormBackward,
        (x.node(), gamma.node(), beta.map(|beta| beta.node())),
        state,
        output,
    ))
}

/// `Σ f(v)` over a row in [`LANES`] f32 lanes (vectorised), the lanes then added in order.
#[inline(always)]
fn lane_sum(row: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let chunks = row.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for i in 0..LANES {
            lanes[i] += f(chunk[i]);
        }
    }
    lanes.iter().sum::<f32>() + rest.iter().map(|&v| f(v)).sum::<f32>()
}

/// What the backward needs: the normalised input, each row's `1/√(σ² + ε)` and `γ`.
#[derive(Clone, Debug)]
struct LayerNormState {
    x_hat: FlexTensor,
    rstd: Vec<f32>,
    gamma: FlexTensor,
}

/// The backward step; parents `[x, γ]` or `[x, γ, β]`.
#[derive(Debug)]
struct LayerNormBackward;

impl<const N: usize> Backward<Flex, N> for LayerNormBackward {
    type State = LayerNormState;

    fn backward(self, ops: Ops<LayerNormState, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node);
        let LayerNormState { x_hat, rstd, gamma } = ops.state;
        let shape = x_hat.layout().shape().to_vec();
        let d = *shape.last().expect("a norm has an axis");
        let (dy, x_hat, gamma) = (host(&grad), host(&x_hat), host(&gamma));
        let (dy, x_hat, gamma) = (dy.values(), x_hat.values(), gamma.values());
        let rows = rstd.len();
        let wants_input = ops.parents[0].is_some();
        let mut dx = vec![0.0f32; if wants_input { rows * d } else { 0 }];
        let tasks = rows.div_ceil(ROWS);
        // Per block of rows: its share of ∂L/∂γ and ∂L/∂β, and its rows of ∂L/∂x.
        let partials: Vec<(Vec<f32>, Vec<f32>)> = if d == 0 {
            Vec::new()
        } else {
            let mut dx_blocks: Vec<&mut [f32]> = if wants_input {
                dx.chunks_mut(ROWS * d).collect()
            } else {
                (0..tasks).map(|_| &mut [][..]).collect()
            };
            dx_blocks
                .par_iter_mut()
                .enumerate()
                .map(|(task, dx)| {
                    let first = task * ROWS;
                    let count = ROWS.min(rows - first);
                    let block = first * d..(first + count) * d;
                    let (dy, x_hat) = (&dy[block.clone()], &x_hat[block]);
                    vectorised(
                        #[inline(always)]
                        || {
                            let (mut d_gamma, mut d_beta) = (vec![0.0f32; d], vec![0.0f32; d]);
                            for (dy, h) in dy.chunks_exact(d).zip(x_hat.chunks_exact(d)) {
                                for (((dg, db), &g), &h) in
                                    d_gamma.iter_mut().zip(d_beta.iter_mut()).zip(dy).zip(h)
                                {
                                    *dg += g * h;
                                    *db += g;
                                }
                            }
                            if !dx.is_empty() {
                                for (((dx, dy), h), &r) in dx
                                    .chunks_exact_mut(d)
                                    .zip(dy.chunks_exact(d))
                                    .zip(x_hat.chunks_exact(d))
                                    .zip(&rstd[first..first + count])
                                {
                                    for ((v, &g), &gk) in dx.iter_mut().zip(dy).zip(gamma) {
                                        *v = g * gk;
                                    }
                                    let mean_g = lane_sum(dx, |v| v) / d as f32;
                                    let mean_gh = dot(dx, h) / d as f32;
                                    for (v, &h) in dx.iter_mut().zip(h) {
                                        *v = r * (*v - mean_g - h * mean_gh);
                                    }
                                }
                            }
                            (d_gamma, d_beta)
                        },
                    )
                })
                .collect()
        };
        let column_sum = |pick: fn(&(Vec<f32>, Vec<f32>)) -> &Vec<f32>| {
            let mut total = vec![0.0f32; d];
            for partial in &partials {
                for (t, &v) in total.iter_mut().zip(pick(partial)) {
                    *t += v;
                }
            }
            total
        };
        if let Some(node) = &ops.parents[0] {
            grads.register::<Flex>(node.id, flex_tensor(dx, shape));
        }
        if let Some(node) = &ops.parents[1] {
            grads.register::<Flex>(node.id, flex_tensor(column_sum(|p| &p.0), vec![d]));
        }
        if N > 2 {
            if let Some(node) = &ops.parents[N - 1] {
                grads.register::<Flex>(node.id, flex_tensor(column_sum(|p| &p.1), vec![d]));
            }
        }
    }
}

/// `Σ a · b` in [`LANES`] f32 lanes, the lanes then added in order.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (a, b) in ca.zip(cb) {
        for i in 0..LANES {
            lanes[i] += a[i] * b[i];
        }
    }
    lanes.iter().sum::<f32>() + ra.iter().zip(rb).map(|(a, b)| a * b).sum::<f32>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::tests::random;
    use crate::layer_norm::LayerNormConfig;
    use crate::train::max_diff;
    use burn::module::Param;

    /// Output and the gradients of `Σ norm(x) · r` for x, γ and β equal Burn's LayerNorm
    /// (rows of several widths, with and without β, a row count that is not a multiple of a
    /// task's; offset inputs, so the centring matters).
    #[test]
    fn gradients_equal_burns_layer_norm() {
        let device = Device::flex().autodiff();
        for ([a, b, c, d], bias) in [
            ([2, 3, 50, 192], true),
            ([1, 1, 7, 37], false),
            ([1, 2, 65, 8], true),
        ] {
            let x = random([a, b, c, d], 11, &device)
                .mul_scalar(3.0)
                .add_scalar(2.0);
            let r = random([a, b, c, d], 12, &device);
            let affine = random([2, d, 1, 1], 13, &device);
            let gamma = affine.clone().slice([0..1]).reshape([d]).add_scalar(1.0);
            let beta = affine.slice([1..2]).reshape([d]);
            let run = |ours: bool| {
                let x = x.clone().require_grad();
                let gamma = Param::from_tensor(gamma.clone().require_grad());
                let beta = bias.then(|| Param::from_tensor(beta.clone().require_grad()));
                let y = if ours {
                    let mut norm = LayerNormConfig::new(d).with_bias(bias).init(&device);
                    norm.gamma = gamma.clone();
                    norm.beta = beta.clone();
                    forward(&norm, x.clone()).unwrap_or_else(|_| panic!("the path applies"))
                } else {
                    burn::tensor::module::layer_norm(
                        x.clone(),
                        gamma.val(),
                        beta.as_ref().map(|b| b.val()),
                        1e-5,
                    )
                };
                let grads = (y.clone() * r.clone()).sum().backward();
                let mut out = vec![
                    ("output", y.inner().reshape([a * b * c * d])),
                    ("dx", x.grad(&grads).expect("dx").reshape([a * b * c * d])),
                    ("dgamma", gamma.val().grad(&grads).expect("dgamma")),
                ];
                if let Some(beta) = &beta {
                    out.push(("dbeta", beta.val().grad(&grads).expect("dbeta")));
                }
                out
            };
            for ((name, a), (_, b)) in run(true).into_iter().zip(run(false)) {
                let diff = max_diff(a, b);
                assert!(diff < 1e-4, "{d} wide, {name} differs by {diff}");
            }
        }
        let plain = LayerNormConfig::new(4).init(&Device::flex());
        assert!(forward(&plain, random([1, 1, 2, 4], 9, &Device::flex())).is_err());
    }
}
