//! Element-wise activations with their gradients on the autodiff flex device, forward and
//! backward one vectorised pass each: GELU through the vectorised `erf` of
//! [`crate::cpu_kernels::gelu_slice`] (Burn's autodiff GELU evaluates libm's `erf` per element
//! in the forward and again, with `exp`, in several tensor ops of its backward: 12% of a
//! ViT-Tiny training step), the sigmoid and SiLU through the vectorised exponential (Burn:
//! libm `expf` per element; PAN's pixel attention, HaloNet-50ts), and LeakyReLU (Burn: a
//! `mask_where` each way and a scaled copy; the SR networks).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::flex::FlexTensor;
use burn::backend::Flex;
use burn::prelude::*;
use rayon::prelude::*;

use crate::cpu_kernels::{
    gelu_grad_slice, gelu_slice, leaky_relu_grad_slice, leaky_relu_slice, sigmoid_grad_slice,
    sigmoid_slice, silu_grad_slice, silu_slice,
};

use super::{autodiff_primitive, flex_tensor, host, record};

/// Values per task.
const CHUNK: usize = 1 << 15;

/// An activation with a training path.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Gelu,
    Sigmoid,
    Silu,
    /// LeakyReLU with this negative slope.
    LeakyRelu(f32),
}

impl Kind {
    /// The activation in place.
    fn forward(self, values: &mut [f32]) {
        match self {
            Kind::Gelu => gelu_slice(values),
            Kind::Sigmoid => sigmoid_slice(values),
            Kind::Silu => silu_slice(values),
            Kind::LeakyRelu(slope) => leaky_relu_slice(values, slope),
        }
    }

    /// `grad ← grad · f′(x)`.
    fn gradient(self, grad: &mut [f32], x: &[f32]) {
        match self {
            Kind::Gelu => gelu_grad_slice(grad, x),
            Kind::Sigmoid => sigmoid_grad_slice(grad, x),
            Kind::Silu => silu_grad_slice(grad, x),
            Kind::LeakyRelu(slope) => leaky_relu_grad_slice(grad, x, slope),
        }
    }
}

/// Exact GELU recorded with its gradient when `x` is an f32 tensor of the autodiff flex device;
/// otherwise `x` back.
pub(crate) fn gelu<const D: usize>(x: Tensor<D>) -> Result<Tensor<D>, Tensor<D>> {
    activation(x, Kind::Gelu)
}

/// The sigmoid, as [`gelu`].
pub(crate) fn sigmoid<const D: usize>(x: Tensor<D>) -> Result<Tensor<D>, Tensor<D>> {
    activation(x, Kind::Sigmoid)
}

/// SiLU, as [`gelu`].
pub(crate) fn silu<const D: usize>(x: Tensor<D>) -> Result<Tensor<D>, Tensor<D>> {
    activation(x, Kind::Silu)
}

/// LeakyReLU with `slope`, as [`gelu`] (Burn's autodiff op is a `mask_where` each way plus a
/// scaled copy: 7% of a PAN training step).
pub(crate) fn leaky_relu<const D: usize>(x: Tensor<D>, slope: f64) -> Result<Tensor<D>, Tensor<D>> {
    activation(x, Kind::LeakyRelu(slope as f32))
}

fn activation<const D: usize>(x: Tensor<D>, kind: Kind) -> Result<Tensor<D>, Tensor<D>> {
    let Some(input) = autodiff_primitive(x.clone()) else {
        return Err(x);
    };
    let mut values = host(input.primitive()).values().to_vec();
    values
        .par_chunks_mut(CHUNK)
        .for_each(|values| kind.forward(values));
    let output = flex_tensor(values, x.dims().to_vec());
    Ok(record(
        ActivationBackward(kind),
        [input.node()],
        input.primitive().clone(),
        output,
    ))
}

/// An activation's backward; the state is the input.
#[derive(Debug)]
struct ActivationBackward(Kind);

impl Backward<Flex, 1> for ActivationBackward {
    type State = FlexTensor;

    fn backward(self, ops: Ops<FlexTensor, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node);
        let [Some(node)] = &ops.parents else {
            return;
        };
        let shape = grad.layout().shape().to_vec();
        let x = host(&ops.state);
        let mut dx = host(&grad).values().to_vec();
        let kind = self.0;
        dx.par_chunks_mut(CHUNK)
            .zip(x.values().par_chunks(CHUNK))
            .for_each(|(dx, x)| kind.gradient(dx, x));
        grads.register::<Flex>(node.id, flex_tensor(dx, shape));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::tests::random;
    use crate::train::max_diff;

    /// Output and input gradient of `Σ f(x) · r` equal Burn's GELU, sigmoid and SiLU (over ±6,
    /// where the tails matter).
    #[test]
    fn activations_and_gradients_equal_burns() {
        type Ours = fn(Tensor<4>) -> Result<Tensor<4>, Tensor<4>>;
        let device = Device::flex().autodiff();
        let x = random([2, 3, 40, 50], 7, &device).mul_scalar(12.0);
        let r = random([2, 3, 40, 50], 8, &device);
        let cases: [(&str, Ours, fn(Tensor<4>) -> Tensor<4>); 5] = [
            ("gelu", gelu, burn::tensor::activation::gelu),
            ("sigmoid", sigmoid, burn::tensor::activation::sigmoid),
            ("silu", silu, burn::tensor::activation::silu),
            (
                "leaky_relu 0.2",
                |x| leaky_relu(x, 0.2),
                |x| burn::tensor::activation::leaky_relu(x, 0.2),
            ),
            (
                "leaky_relu 0.05",
                |x| leaky_relu(x, 0.05),
                |x| burn::tensor::activation::leaky_relu(x, 0.05),
            ),
        ];
        for (kind, ours, burns) in cases {
            let run = |use_ours: bool| {
                let x = x.clone().require_grad();
                let y = if use_ours {
                    ours(x.clone()).unwrap_or_else(|_| panic!("the path applies"))
                } else {
                    burns(x.clone())
                };
                let grads = (y.clone() * r.clone()).sum().backward();
                (y.inner(), x.grad(&grads).expect("input gradient"))
            };
            let ((y, dx), (y_ref, dx_ref)) = (run(true), run(false));
            for (name, a, b) in [("output", y, y_ref), ("gradient", dx, dx_ref)] {
                let diff = max_diff(a, b);
                assert!(diff < 1e-5, "{kind} {name} differs by {diff}");
            }
            assert!(ours(random([1, 1, 2, 2], 9, &Device::flex())).is_err());
        }
    }
}
