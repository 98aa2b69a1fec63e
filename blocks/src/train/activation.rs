//! Element-wise activations with their gradients on the autodiff flex device: GELU through the
//! vectorised `erf` of [`crate::cpu_kernels::gelu_slice`], forward and backward one pass each.
//! Burn's autodiff GELU evaluates libm's `erf` per element in the forward and again, with
//! `exp`, in several tensor ops of its backward (12% of a ViT-Tiny training step).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::flex::FlexTensor;
use burn::backend::Flex;
use burn::prelude::*;
use rayon::prelude::*;

use crate::cpu_kernels::{gelu_grad_slice, gelu_slice};

use super::{autodiff_primitive, flex_tensor, host, record};

/// Values per task.
const CHUNK: usize = 1 << 15;

/// Exact GELU recorded with its gradient when `x` is an f32 tensor of the autodiff flex device;
/// otherwise `x` back.
pub(crate) fn gelu<const D: usize>(x: Tensor<D>) -> Result<Tensor<D>, Tensor<D>> {
    let Some(input) = autodiff_primitive(x.clone()) else {
        return Err(x);
    };
    let mut values = host(input.primitive()).values().to_vec();
    values.par_chunks_mut(CHUNK).for_each(gelu_slice);
    let output = flex_tensor(values, x.dims().to_vec());
    Ok(record(
        GeluBackward,
        [input.node()],
        input.primitive().clone(),
        output,
    ))
}

/// GELU's backward; the state is the input.
#[derive(Debug)]
struct GeluBackward;

impl Backward<Flex, 1> for GeluBackward {
    type State = FlexTensor;

    fn backward(self, ops: Ops<FlexTensor, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node);
        let [Some(node)] = &ops.parents else {
            return;
        };
        let shape = grad.layout().shape().to_vec();
        let x = host(&ops.state);
        let mut dx = host(&grad).values().to_vec();
        dx.par_chunks_mut(CHUNK)
            .zip(x.values().par_chunks(CHUNK))
            .for_each(|(dx, x)| gelu_grad_slice(dx, x));
        grads.register::<Flex>(node.id, flex_tensor(dx, shape));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::tests::random;
    use crate::train::max_diff;

    /// Output and input gradient of `Σ gelu(x) · r` equal Burn's GELU (over ±6, where the
    /// tails matter).
    #[test]
    fn gelu_and_gradient_equal_burns() {
        let device = Device::flex().autodiff();
        let x = random([2, 3, 40, 50], 7, &device).mul_scalar(12.0);
        let r = random([2, 3, 40, 50], 8, &device);
        let run = |ours: bool| {
            let x = x.clone().require_grad();
            let y = if ours {
                gelu(x.clone()).unwrap_or_else(|_| panic!("the path applies"))
            } else {
                burn::tensor::activation::gelu(x.clone())
            };
            let grads = (y.clone() * r.clone()).sum().backward();
            (y.inner(), x.grad(&grads).expect("input gradient"))
        };
        let ((y, dx), (y_ref, dx_ref)) = (run(true), run(false));
        for (name, a, b) in [("output", y, y_ref), ("gradient", dx, dx_ref)] {
            let diff = max_diff(a, b);
            assert!(diff < 1e-5, "{name} differs by {diff}");
        }
        assert!(gelu(random([1, 1, 2, 2], 9, &Device::flex())).is_err());
    }
}
