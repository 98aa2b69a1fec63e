//! The linear layer every gaze model uses: Burn's `Linear` (same fields `weight`
//! `[d_input, d_output]` and `bias`, same config and defaults, same record), whose forward on
//! the flex CPU device runs one `gemm` call on the tensors' own buffers, split over the thread
//! pool from about a million multiply-adds.
//!
//! Why: flex splits a matrix product over threads only from 192³ multiply-adds, so the token
//! MLPs and projections of small transformers (LeViT-128S: 196 tokens × 128 → 256, 6.4·10⁶)
//! ran on one of the two cores; `gemm` measured here on two threads against one: 196×128·128→256
//! 0.22 against 0.36 ms, 49×256·256→384 0.18 against 0.28 ms. Autodiff and GPU tensors keep
//! Burn's `linear`.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::{Initializer, LinearLayout};
use burn::prelude::*;

use crate::cpu_kernels::{
    as_unwritten, assume_init, matmul, on_plain_flex, unwritten, HostView, Strided,
};
use std::mem::MaybeUninit;

/// Configuration of [`Linear`]: Burn's `LinearConfig`, field for field.
#[derive(Config, Debug)]
pub struct LinearConfig {
    /// Input features.
    pub d_input: usize,
    /// Output features.
    pub d_output: usize,
    /// Whether the layer has a bias.
    #[config(default = true)]
    pub bias: bool,
    /// Initialisation (Burn's default, gain `1/√3`).
    #[config(default = "Initializer::KaimingUniform{gain:0.5773502691896258,fan_out_only:false}")]
    pub initializer: Initializer,
    /// Layout in which the weight is created.
    #[config(default = "LinearLayout::Row")]
    pub layout: LinearLayout,
}

impl LinearConfig {
    /// The layer, initialised as Burn initialises its own.
    pub fn init(&self, device: &Device) -> Linear {
        let burn_linear = burn::nn::LinearConfig::new(self.d_input, self.d_output)
            .with_bias(self.bias)
            .with_initializer(self.initializer.clone())
            .with_layout(self.layout.clone())
            .init(device);
        Linear {
            weight: burn_linear.weight,
            bias: burn_linear.bias,
        }
    }
}

/// `y = x W + b` over the last axis: Burn's `Linear` with a threaded GEMM behind `forward`
/// (module docs).
#[derive(Module, Debug)]
pub struct Linear {
    /// `[d_input, d_output]`.
    pub weight: Param<Tensor<2>>,
    /// `[d_output]`.
    pub bias: Option<Param<Tensor<1>>>,
}

/// Smallest product (`m·n·k`) split over the thread pool.
const PARALLEL_MIN_WORK: usize = 1 << 20;

impl Linear {
    /// `[…, d_input] → […, d_output]`, as Burn's `Linear::forward`.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        let weight = self.weight.val();
        let bias = self.bias.as_ref().map(|b| b.val());
        if on_plain_flex(&input) {
            return gemm_linear(input, weight, bias);
        }
        burn::tensor::module::linear(input, weight, bias)
    }
}

/// [`Linear::forward`] on flex's buffers: the input made contiguous (a free view when it is),
/// the weight read with its own strides (a checkpoint's transposed view is not copied).
fn gemm_linear<const D: usize>(
    input: Tensor<D>,
    weight: Tensor<2>,
    bias: Option<Tensor<1>>,
) -> Tensor<D> {
    let device = input.device();
    let mut shape = input.dims();
    let [d_input, d_output] = weight.dims();
    assert_eq!(
        shape[D - 1],
        d_input,
        "Linear: input features {} for a {d_input} → {d_output} layer",
        shape[D - 1]
    );
    let rows = shape[..D - 1].iter().product::<usize>();
    let input = HostView::new(input).expect("flex f32 (checked by the caller)");
    let bias = bias.map(|b| HostView::new(b).expect("flex f32 like the input"));
    let weight = weight
        .try_into_primitive::<burn::backend::Flex>()
        .expect("flex like the input");
    let layout = weight.layout();
    let strides = layout.strides();
    // Every value is written: the bias (then accumulated into), or the product alone (zeros
    // first only for an empty product, which writes nothing).
    let mut out = unwritten(rows * d_output);
    if let Some(bias) = &bias {
        for row in out.chunks_mut(d_output.max(1)) {
            row.copy_from_slice(as_unwritten(bias.values()));
        }
    } else if d_input == 0 {
        out.fill(MaybeUninit::new(0.0));
    }
    if rows > 0 && d_output > 0 && d_input > 0 {
        let storage = weight.storage::<f32>();
        let (rs, cs) = (strides[0], strides[1]);
        // The last element the strided weight reads lies inside the buffer.
        let last = layout.start_offset() as isize
            + (d_input as isize - 1) * rs
            + (d_output as isize - 1) * cs;
        assert!(
            rs >= 0 && cs >= 0 && (last as usize) < storage.len(),
            "Linear: weight layout {strides:?} outside its buffer"
        );
        // SAFETY: out is rows × d_output row-major; the input rows × d_input row-major; the
        // weight d_input × d_output with strides (rs, cs) inside its buffer (checked above).
        unsafe {
            matmul(
                [rows, d_output, d_input],
                out.as_mut_ptr().cast(),
                d_output,
                bias.is_some(),
                Strided {
                    ptr: input.values().as_ptr(),
                    rs: d_input as isize,
                    cs: 1,
                },
                Strided {
                    ptr: storage.as_ptr().add(layout.start_offset()),
                    rs,
                    cs,
                },
                rows * d_input * d_output >= PARALLEL_MIN_WORK,
            );
        }
    }
    shape[D - 1] = d_output;
    // SAFETY: every value was written above.
    let out = unsafe { assume_init(out) };
    Tensor::from_data(TensorData::new(out, shape), &device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equals_burns_linear_with_both_weight_layouts() {
        let device = Device::flex();
        for (layout, bias, rows) in [
            (LinearLayout::Row, true, 7),
            (LinearLayout::Col, false, 300),
            (LinearLayout::Col, true, 1),
        ] {
            let layer = LinearConfig::new(37, 29)
                .with_bias(bias)
                .with_layout(layout)
                .init(&device);
            let burn_layer = burn::nn::Linear {
                weight: layer.weight.clone(),
                bias: layer.bias.clone(),
            };
            let x =
                Tensor::<3>::random([2, rows, 37], burn::tensor::Distribution::Default, &device);
            let d = (layer.forward(x.clone()) - burn_layer.forward(x))
                .abs()
                .max()
                .into_scalar::<f32>();
            assert!(d < 1e-5, "rows {rows}: max diff {d}");
        }
    }
}
