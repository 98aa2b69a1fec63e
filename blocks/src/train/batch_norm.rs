//! The training path of BatchNorm on the flex CPU device: batch statistics, normalisation and
//! their gradients computed per channel straight on the NCHW map, recorded on Burn's autodiff
//! graph as one operation.
//!
//! Why: Burn's generic `batch_norm_train` (which flex keeps) swaps the batch and channel axes
//! and copies the map for each of its two means, then normalises in four element-wise passes,
//! each a new tensor; its backward does the same again. In a ResNet-50 training step that was
//! 15% of the time, a third of it in the transposing copies. Here the forward reads the map
//! twice (mean, then the centred variance, summed in f64) and writes it once, the backward
//! reads it twice and writes once:
//!
//! - `y = γ · x̂ + β`, `x̂ = (x − μ) / √(σ² + ε)`, with `μ`, `σ²` the biased batch statistics;
//! - `∂L/∂β = Σ dy`, `∂L/∂γ = Σ dy · x̂`,
//!   `∂L/∂x = γ / √(σ² + ε) · (dy − ∂L/∂β / M − x̂ · ∂L/∂γ / M)` over the `M` values of a channel.
//!
//! The running statistics are updated as Burn's `BatchNorm` updates them (momentum, biased
//! variance). Sums run in a fixed order per channel, so training stays repeatable.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::flex::FlexTensor;
use burn::backend::Flex;
use burn::nn::BatchNorm;
use burn::prelude::*;
use rayon::prelude::*;

use super::{autodiff_primitive, flex_tensor, host, record, sum_and_centred_dot};

/// `bn(x)` in training mode (batch statistics, running statistics updated) recorded with
/// [`BatchNormBackward`] when `x` and the affine parameters are f32 tensors of the autodiff
/// flex device and the layer is in training mode; otherwise the input back.
pub(crate) fn forward<const D: usize>(
    bn: &BatchNorm,
    x: Tensor<D>,
) -> Result<Tensor<D>, Tensor<D>> {
    let dims = x.dims();
    if !bn.training.is_enabled() || D < 2 || bn.gamma.dims() != [dims[1]] {
        return Err(x);
    }
    let device = x.device();
    let Some(input) = autodiff_primitive(x.clone()) else {
        return Err(x);
    };
    let (Some(gamma), Some(beta)) = (
        autodiff_primitive(bn.gamma.val()),
        autodiff_primitive(bn.beta.val()),
    ) else {
        return Err(x);
    };
    let shape = Shape {
        channels: dims[1],
        inner: dims[2..].iter().product(),
        batch: dims[0],
    };
    let (values, gamma_values, beta_values) = (
        host(input.primitive()),
        host(gamma.primitive()),
        host(beta.primitive()),
    );
    let stats = statistics(values.values(), shape, bn.epsilon);
    let output = normalise(
        values.values(),
        &stats,
        gamma_values.values(),
        beta_values.values(),
        shape,
    );
    let output = flex_tensor(output, dims.to_vec());
    let state = BatchNormState {
        x: input.primitive().clone(),
        dims: dims.to_vec(),
        gamma: gamma_values.values().to_vec(),
        mean: stats.mean.clone(),
        inv_std: stats.inv_std,
        shape,
    };
    let output = record(
        BatchNormBackward,
        [input.node(), gamma.node(), beta.node()],
        state,
        output,
    );
    // Burn's `BatchNorm::forward_train`: an exponential average of the batch statistics.
    let update = |running: Tensor<1>, batch: Vec<f32>| {
        let batch = Tensor::<1>::from_data(TensorData::new(batch, [shape.channels]), &device);
        running
            .to_device(&device)
            .mul_scalar(1.0 - bn.momentum)
            .add(batch.mul_scalar(bn.momentum))
            .detach()
    };
    bn.running_mean
        .update(update(bn.running_mean.value_sync(), stats.mean));
    bn.running_var
        .update(update(bn.running_var.value_sync(), stats.variance));
    Ok(output)
}

/// A map's sizes: `[batch, channels, inner…]`.
#[derive(Clone, Copy, Debug)]
struct Shape {
    batch: usize,
    channels: usize,
    inner: usize,
}

impl Shape {
    /// The `batch` runs of `inner` values of channel `c`.
    fn runs<'a>(&self, values: &'a [f32], c: usize) -> impl Iterator<Item = &'a [f32]> {
        let (channels, inner) = (self.channels, self.inner);
        (0..self.batch).map(move |b| &values[(b * channels + c) * inner..][..inner])
    }

    fn count(&self) -> f64 {
        (self.batch * self.inner) as f64
    }
}

/// Per-channel batch statistics.
struct Statistics {
    mean: Vec<f32>,
    variance: Vec<f32>,
    inv_std: Vec<f32>,
}

/// Mean and biased variance of every channel (two passes, f64 sums), and `1/√(σ² + ε)`.
fn statistics(x: &[f32], shape: Shape, epsilon: f64) -> Statistics {
    let per_channel: Vec<(f64, f64)> = (0..shape.channels)
        .into_par_iter()
        .map(|c| {
            pulp::Arch::new().dispatch(ChannelStatistics {
                x,
                shape,
                channel: c,
            })
        })
        .collect();
    Statistics {
        mean: per_channel.iter().map(|&(m, _)| m as f32).collect(),
        variance: per_channel.iter().map(|&(_, v)| v as f32).collect(),
        inv_std: per_channel
            .iter()
            .map(|&(_, v)| (1.0 / (v + epsilon).sqrt()) as f32)
            .collect(),
    }
}

/// Mean and biased variance of one channel: `Σ x`, then `Σ (x − μ)²` around the mean rounded
/// to f32 (the rounding adds `n·(μ − μ₃₂)²` to the sum, taken off again).
struct ChannelStatistics<'a> {
    x: &'a [f32],
    shape: Shape,
    channel: usize,
}

impl pulp::NullaryFnOnce for ChannelStatistics<'_> {
    type Output = (f64, f64);

    #[inline(always)]
    fn call(self) -> (f64, f64) {
        let (x, shape, c) = (self.x, self.shape, self.channel);
        let mut sum = 0.0;
        for run in shape.runs(x, c) {
            sum += sum_and_centred_dot(run, run, 0.0).0;
        }
        let mean = sum / shape.count();
        let rounded = mean as f32;
        let mut squares = 0.0;
        for run in shape.runs(x, c) {
            squares += centred_squares(run, rounded);
        }
        squares -= shape.count() * (mean - rounded as f64).powi(2);
        (mean, squares.max(0.0) / shape.count())
    }
}

/// `Σ (x − m)²` in 16 f32 lanes (vectorised), the lanes then added in f64.
#[inline(always)]
fn centred_squares(x: &[f32], m: f32) -> f64 {
    const LANES: usize = 16;
    let mut lanes = [0.0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (l, &v) in lanes.iter_mut().zip(chunk) {
            *l += (v - m) * (v - m);
        }
    }
    let tail: f64 = rest.iter().map(|&v| ((v - m) as f64).powi(2)).sum();
    lanes.iter().map(|&v| v as f64).sum::<f64>() + tail
}

/// `γ · (x − μ) / √(σ² + ε) + β`, planes in parallel.
fn normalise(x: &[f32], stats: &Statistics, gamma: &[f32], beta: &[f32], shape: Shape) -> Vec<f32> {
    let mut out = vec![0.0f32; x.len()];
    out.par_chunks_mut(shape.inner.max(1))
        .zip(x.par_chunks(shape.inner.max(1)))
        .enumerate()
        .for_each(|(plane, (out, x))| {
            let c = plane % shape.channels;
            pulp::Arch::new().dispatch(Normalise {
                out,
                x,
                mean: stats.mean[c],
                scale: gamma[c] * stats.inv_std[c],
                shift: beta[c],
            })
        });
    out
}

/// `γ · (x − μ) / σ + β` of one plane, centred first: `v · scale + (β − μ · scale)` loses
/// digits when |μ| ≫ σ. (Structs like this one are inlined by pulp into its per-instruction-set
/// entry points; closures stayed baseline SSE2 code.)
struct Normalise<'a> {
    out: &'a mut [f32],
    x: &'a [f32],
    mean: f32,
    scale: f32,
    shift: f32,
}

impl pulp::NullaryFnOnce for Normalise<'_> {
    type Output = ();

    #[inline(always)]
    fn call(self) {
        for (o, &v) in self.out.iter_mut().zip(self.x) {
            *o = (v - self.mean) * self.scale + self.shift;
        }
    }
}

/// `(Σ dy, Σ dy · x̂)` of one channel over the batch.
struct GradSums<'a> {
    dy: &'a [f32],
    x: &'a [f32],
    shape: Shape,
    channel: usize,
    mean: f32,
    inv_std: f32,
}

impl pulp::NullaryFnOnce for GradSums<'_> {
    type Output = (f64, f64);

    #[inline(always)]
    fn call(self) -> (f64, f64) {
        let (c, shape) = (self.channel, self.shape);
        // A loop, not `fold` with a closure: LLVM kept the closure out of line, as baseline
        // code.
        let (mut sum, mut dot) = (0.0, 0.0);
        for (dy, x) in shape.runs(self.dy, c).zip(shape.runs(self.x, c)) {
            let (a, b) = sum_and_centred_dot(dy, x, self.mean);
            sum += a;
            dot += b;
        }
        (sum, dot * self.inv_std as f64)
    }
}

/// What the backward needs: the input, `γ`, and the batch statistics.
#[derive(Clone, Debug)]
struct BatchNormState {
    x: FlexTensor,
    /// The input's dimensions.
    dims: Vec<usize>,
    gamma: Vec<f32>,
    mean: Vec<f32>,
    inv_std: Vec<f32>,
    shape: Shape,
}

/// The backward step; parents `[x, γ, β]`.
#[derive(Debug)]
struct BatchNormBackward;

impl Backward<Flex, 3> for BatchNormBackward {
    type State = BatchNormState;

    fn backward(self, ops: Ops<BatchNormState, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node);
        let BatchNormState {
            x,
            dims,
            gamma,
            mean,
            inv_std,
            shape,
        } = ops.state;
        let (dy, x) = (host(&grad), host(&x));
        let (dy, x) = (dy.values(), x.values());
        // Per channel: Σ dy and Σ dy · x̂.
        let sums: Vec<(f64, f64)> = (0..shape.channels)
            .into_par_iter()
            .map(|c| {
                pulp::Arch::new().dispatch(GradSums {
                    dy,
                    x,
                    shape,
                    channel: c,
                    mean: mean[c],
                    inv_std: inv_std[c],
                })
            })
            .collect();
        let [node_x, node_gamma, node_beta] = &ops.parents;
        let channels = vec![shape.channels];
        if let Some(node) = node_x {
            let mut dx = vec![0.0f32; x.len()];
            let count = shape.count();
            dx.par_chunks_mut(shape.inner.max(1))
                .zip(dy.par_chunks(shape.inner.max(1)))
                .zip(x.par_chunks(shape.inner.max(1)))
                .enumerate()
                .for_each(|(plane, ((dx, dy), x))| {
                    let c = plane % shape.channels;
                    let (sum, dot) = sums[c];
                    pulp::Arch::new().dispatch(InputGrad {
                        dx,
                        dy,
                        x,
                        mean: mean[c],
                        inv_std: inv_std[c],
                        scale: gamma[c] * inv_std[c],
                        mean_dy: (sum / count) as f32,
                        mean_dot: (dot / count) as f32,
                    })
                });
            grads.register::<Flex>(node.id, flex_tensor(dx, dims));
        }
        let column = |f: &dyn Fn(&(f64, f64)) -> f64| -> FlexTensor {
            flex_tensor(sums.iter().map(|s| f(s) as f32).collect(), channels.clone())
        };
        if let Some(node) = node_gamma {
            grads.register::<Flex>(node.id, column(&|&(_, dot)| dot));
        }
        if let Some(node) = node_beta {
            grads.register::<Flex>(node.id, column(&|&(sum, _)| sum));
        }
    }
}

/// `∂L/∂x` of one plane: `γ/σ · (dy − mean(dy) − x̂ · mean(dy · x̂))`. A struct, so that pulp
/// inlines the loop into its per-instruction-set entry points (from a closure it stayed
/// baseline SSE2 code, 5% of a ResNet-50 training step).
struct InputGrad<'a> {
    dx: &'a mut [f32],
    dy: &'a [f32],
    x: &'a [f32],
    mean: f32,
    inv_std: f32,
    scale: f32,
    mean_dy: f32,
    mean_dot: f32,
}

impl pulp::NullaryFnOnce for InputGrad<'_> {
    type Output = ();

    #[inline(always)]
    fn call(self) {
        let InputGrad {
            dx,
            dy,
            x,
            mean,
            inv_std,
            scale,
            mean_dy,
            mean_dot,
        } = self;
        for ((d, &g), &v) in dx.iter_mut().zip(dy).zip(x) {
            let normalised = (v - mean) * inv_std;
            *d = scale * (g - mean_dy - normalised * mean_dot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::tests::random;
    use crate::train::max_diff;
    use burn::module::Param;
    use burn::nn::BatchNormConfig;

    /// Output, gradients of `Σ bn(x) · r` for `x`, `γ`, `β`, and the running statistics after
    /// the step equal Burn's `BatchNorm` in training mode.
    #[test]
    fn training_step_equals_burns_batch_norm() {
        let device = Device::flex().autodiff();
        for (i, [b, c, h, w]) in [[2, 6, 5, 7], [3, 16, 8, 8], [1, 4, 1, 9]]
            .into_iter()
            .enumerate()
        {
            let seed = 10 * i as u64;
            let layer = || {
                let mut bn = BatchNormConfig::new(c).with_momentum(0.3).init(&device);
                let values = |offset: f32| {
                    random([1, 1, 1, c], seed + 1, &device)
                        .reshape([c])
                        .add_scalar(offset)
                };
                bn.gamma = Param::from_tensor(values(1.0));
                bn.beta = Param::from_tensor(values(0.2));
                bn
            };
            let (ours_bn, burn_bn) = (layer(), layer());
            // A shifted, scaled map: statistics away from 0 and 1.
            let x = random([b, c, h, w], seed + 2, &device)
                .mul_scalar(3.0)
                .add_scalar(0.7);
            let r = random([b, c, h, w], seed + 3, &device);
            let run = |bn: &BatchNorm, ours: bool| {
                let x = x.clone().require_grad();
                let y = if ours {
                    forward(bn, x.clone()).unwrap_or_else(|_| panic!("case {i} taken"))
                } else {
                    bn.forward(x.clone())
                };
                let grads = (y.clone() * r.clone()).sum().backward();
                (
                    y.inner(),
                    x.grad(&grads).expect("input gradient"),
                    bn.gamma.grad(&grads).expect("gamma gradient"),
                    bn.beta.grad(&grads).expect("beta gradient"),
                )
            };
            let (y, dx, dg, db) = run(&ours_bn, true);
            let (y_ref, dx_ref, dg_ref, db_ref) = run(&burn_bn, false);
            for (name, diff) in [
                ("output", max_diff(y, y_ref)),
                ("input gradient", max_diff(dx, dx_ref)),
                ("gamma gradient", max_diff(dg, dg_ref)),
                ("beta gradient", max_diff(db, db_ref)),
                (
                    "running mean",
                    max_diff(
                        ours_bn.running_mean.value_sync(),
                        burn_bn.running_mean.value_sync(),
                    ),
                ),
                (
                    "running variance",
                    max_diff(
                        ours_bn.running_var.value_sync(),
                        burn_bn.running_var.value_sync(),
                    ),
                ),
            ] {
                assert!(diff < 1e-4, "case {i}: {name} differs by {diff}");
            }
        }
    }

    /// A frozen layer (training flag off) and plain tensors keep Burn's path.
    #[test]
    fn falls_back_outside_training() {
        let device = Device::flex().autodiff();
        let mut bn = BatchNormConfig::new(4).init(&device);
        bn.training = burn::module::Param::from_bool(false);
        assert!(forward(&bn, random([1, 4, 3, 3], 1, &device)).is_err());
        let plain = BatchNormConfig::new(4).init(&Device::flex());
        assert!(forward(&plain, random([1, 4, 3, 3], 2, &Device::flex())).is_err());
    }
}
