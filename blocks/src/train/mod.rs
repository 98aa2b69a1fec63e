//! Training paths on the flex CPU device: layers whose forward runs gaze's CPU kernels and is
//! recorded on Burn's autodiff graph as one operation with a backward of its own, through
//! Burn's backend-extension API (`Tensor::try_into_primitive::<Autodiff<Flex>>` gives the
//! autodiff primitive, a `Backward` step registers the gradients).
//!
//! Why: Burn's autodiff composes each layer from many generic ops, each a new tensor (flex
//! zero-fills and re-aligns every one) and several of them transposing copies; the backward
//! doubles that. A training step of ResNet-50 ran at 0.30× PyTorch's, ViT-Tiny at 0.34×.
//!
//! Each path applies to f32 tensors of the autodiff flex device whose graph has no gradient
//! checkpointing (what gaze's training builds); anything else keeps Burn's op. Sums run in a
//! fixed order, so a training run stays bit-for-bit repeatable (the exact-resume tests).

pub(crate) mod activation;
pub(crate) mod attention;
pub(crate) mod batch_norm;
pub(crate) mod conv;
pub(crate) mod layer_norm;
pub(crate) mod linear;

use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::ops::{Backward, NodeGuard, OpsKind};
use burn::backend::autodiff::Autodiff;
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::Flex;
use burn::module::Param;
use burn::prelude::*;
use burn::tensor::DType;

use crate::cpu_kernels::HostView;

/// Burn's autodiff over flex without gradient checkpointing.
pub(crate) type AutodiffFlex = Autodiff<Flex, NoCheckpointing>;

/// The autodiff primitive of `t` when it is an f32 tensor of the autodiff flex device.
pub(crate) fn autodiff_primitive<const D: usize>(
    t: Tensor<D>,
) -> Option<FloatTensor<AutodiffFlex>> {
    if t.dtype() != DType::F32 || !t.device().is_autodiff() {
        return None;
    }
    let primitive = t.try_into_primitive::<AutodiffFlex>().ok()?;
    (primitive.primitive().dtype() == DType::F32).then_some(primitive)
}

/// The autodiff primitives of a layer's input, weight and optional bias when all are f32
/// tensors of the autodiff flex device.
pub(crate) type LayerPrimitives = (
    FloatTensor<AutodiffFlex>,
    FloatTensor<AutodiffFlex>,
    Option<FloatTensor<AutodiffFlex>>,
);

/// [`LayerPrimitives`] of `input`, `weight` and `bias`, or `None` when one of them is not an f32
/// tensor of the autodiff flex device (the layer then keeps Burn's op).
pub(crate) fn layer_primitives<const D: usize, const W: usize>(
    input: &Tensor<D>,
    weight: &Param<Tensor<W>>,
    bias: Option<&Param<Tensor<1>>>,
) -> Option<LayerPrimitives> {
    let x = autodiff_primitive(input.clone())?;
    let weight = autodiff_primitive(weight.val())?;
    let bias = match bias {
        Some(bias) => Some(autodiff_primitive(bias.val())?),
        None => None,
    };
    Some((x, weight, bias))
}

/// The values of a flex tensor (contiguous; no copy when they are).
pub(crate) fn host(t: &FlexTensor) -> HostView {
    HostView::of_flex(t.clone()).expect("f32 (checked when the op was recorded)")
}

/// A flex tensor of `values` in `shape`.
pub(crate) fn flex_tensor(values: Vec<f32>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// A plain flex tensor of an autodiff primitive's values (shares the buffer).
pub(crate) fn plain<const D: usize>(t: &FloatTensor<AutodiffFlex>) -> Tensor<D> {
    Tensor::from_primitive::<Flex>(t.primitive().clone())
}

/// The flex primitive of a plain tensor computed from [`plain`] inputs.
pub(crate) fn into_flex<const D: usize>(t: Tensor<D>) -> FlexTensor {
    t.try_into_primitive::<Flex>()
        .expect("a kernel on flex tensors returns a flex tensor")
}

/// Runs `f` compiled for the best instruction set of this CPU (AVX-512, AVX2+FMA, …: `pulp`'s
/// run-time dispatch; the binary's baseline is SSE2). Call it inside each parallel task: the
/// instruction set does not carry over into closures run elsewhere. Mark the closure
/// `#[inline(always)]`: `pulp` calls it once per instruction set, and a body the compiler
/// keeps out of line is compiled once, for the baseline (the LayerNorm loops ran in SSE2).
#[inline(always)]
pub(crate) fn vectorised<R>(f: impl FnOnce() -> R) -> R {
    pulp::Arch::new().dispatch(f)
}

/// `(Σ a, Σ a · (b − m))` over two runs of one length, in 16 f32 lanes (vectorised), the lanes
/// then added in f64.
#[inline(always)]
pub(crate) fn sum_and_centred_dot(a: &[f32], b: &[f32], m: f32) -> (f64, f64) {
    const LANES: usize = 16;
    let (mut sums, mut dots) = ([0.0f32; LANES], [0.0f32; LANES]);
    let (a_chunks, b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (a_rest, b_rest) = (a_chunks.remainder(), b_chunks.remainder());
    for (a, b) in a_chunks.zip(b_chunks) {
        for i in 0..LANES {
            sums[i] += a[i];
            dots[i] += a[i] * (b[i] - m);
        }
    }
    let mut sum: f64 = sums.iter().map(|&v| v as f64).sum();
    let mut dot: f64 = dots.iter().map(|&v| v as f64).sum();
    for (&a, &b) in a_rest.iter().zip(b_rest) {
        sum += a as f64;
        dot += (a * (b - m)) as f64;
    }
    (sum, dot)
}

/// Registers `output` on the graph with `step` (its state kept only when a parent needs a
/// gradient: a pass on the autodiff device without one records nothing to run backward).
pub(crate) fn record<S, const N: usize, const D: usize>(
    step: S,
    parents: [NodeGuard; N],
    state: S::State,
    output: FlexTensor,
) -> Tensor<D>
where
    S: Backward<Flex, N>,
{
    let output = match step
        .prepare::<NoCheckpointing>(parents)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(state, output),
        OpsKind::UnTracked(prep) => prep.finish(output),
    };
    Tensor::from_primitive::<AutodiffFlex>(output)
}

/// [`record`] for a layer whose parents are `[x, weight]` or `[x, weight, bias]`.
pub(crate) fn record_layer<S, T, const D: usize>(
    step: S,
    (x, weight, bias): (NodeGuard, NodeGuard, Option<NodeGuard>),
    state: T,
    output: FlexTensor,
) -> Tensor<D>
where
    S: Backward<Flex, 2, State = T> + Backward<Flex, 3, State = T>,
{
    match bias {
        Some(bias) => record::<S, 3, D>(step, [x, weight, bias], state, output),
        None => record::<S, 2, D>(step, [x, weight], state, output),
    }
}

/// The largest absolute difference of two tensors of one shape.
#[cfg(test)]
pub(crate) fn max_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b).abs().max().into_scalar::<f32>()
}
