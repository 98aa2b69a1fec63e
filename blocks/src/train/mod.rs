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
pub(crate) mod linear;

use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::ops::{Backward, NodeGuard, OpsKind};
use burn::backend::autodiff::Autodiff;
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::Flex;
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

/// The largest absolute difference of two tensors of one shape.
#[cfg(test)]
pub(crate) fn max_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b).abs().max().into_scalar::<f32>()
}
