//! The layer normalisation every gaze model uses: Burn's `LayerNorm` (same fields `gamma`,
//! `beta`, same config and defaults, same record, so checkpoints map as before), with
//!
//! - [`LayerNorm::forward_channels`]: the norm over the channels of every pixel of an NCHW map
//!   (timm's `LayerNorm2d`, VapSR's pixel norm) in one pass over the map on the flex CPU
//!   device, where permuting to channels-last and back copied the map twice per norm;
//! - a training path (`train::layer_norm`): on the autodiff flex device the norm over the last
//!   axis is one recorded op with its own backward, where Burn's autodiff composes it from nine
//!   ops (two means, a square, a square root, a division…), each kept for the backward.
//!
//! Everywhere else (inference over the last axis, GPU devices) it is Burn's `layer_norm`,
//! which flex runs fused.
//!
//! ```
//! use burn::prelude::*;
//! use gaze_blocks::layer_norm::LayerNormConfig;
//!
//! let device = Device::flex();
//! let norm = LayerNormConfig::new(8).init(&device);
//! let tokens = Tensor::<3>::ones([2, 5, 8], &device);
//! assert_eq!(norm.forward(tokens).dims(), [2, 5, 8]);
//! let map = Tensor::<4>::ones([2, 8, 3, 4], &device); // NCHW, normalised over C
//! assert_eq!(norm.forward_channels(map).dims(), [2, 8, 3, 4]);
//! ```

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::prelude::*;
use burn::tensor::DType;

use crate::cpu_kernels::{on_plain_flex, HostView};

/// Configuration of [`LayerNorm`]: Burn's `LayerNormConfig`, field for field.
#[derive(Config, Debug)]
pub struct LayerNormConfig {
    /// The size of the normalised axis.
    pub d_model: usize,
    /// Added to the variance (PyTorch's `eps`).
    #[config(default = 1e-5)]
    pub epsilon: f64,
    /// Whether the norm has a learnt shift `beta`.
    #[config(default = true)]
    pub bias: bool,
}

impl LayerNormConfig {
    /// A norm with `gamma = 1` and `beta = 0`, as Burn's and PyTorch's start.
    pub fn init(&self, device: &Device) -> LayerNorm {
        LayerNorm {
            gamma: Initializer::Ones.init([self.d_model], device),
            beta: self
                .bias
                .then(|| Initializer::Zeros.init([self.d_model], device)),
            epsilon: self.epsilon,
        }
    }
}

/// `y = (x − mean) / √(var + ε) · γ + β` over the last axis (biased variance), as Burn's and
/// PyTorch's `LayerNorm`.
#[derive(Module, Debug)]
#[module(custom_display)]
pub struct LayerNorm {
    /// The learnt scale `γ`, `[d_model]` (PyTorch's `weight`).
    pub gamma: Param<Tensor<1>>,
    /// The learnt shift `β`, `[d_model]` (PyTorch's `bias`).
    pub beta: Option<Param<Tensor<1>>>,
    /// Added to the variance.
    pub epsilon: f64,
}

impl LayerNorm {
    /// `[…, d_model] → […, d_model]`, normalised over the last axis.
    ///
    /// # Panics
    /// If the last axis is not `d_model` long.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        let [d_model] = self.gamma.dims();
        assert_eq!(
            input.dims()[D - 1],
            d_model,
            "LayerNorm over {d_model} values, input {:?}",
            input.dims()
        );
        let input = match crate::train::layer_norm::forward(self, input) {
            Ok(output) => return output,
            Err(input) => input,
        };
        let gamma = self.gamma.val();
        let beta = self.beta.as_ref().map(|b| b.val());
        let dtype = input.dtype();
        if matches!(dtype, DType::F16 | DType::BF16) {
            // Sums of squares in half precision overflow: normalise in f32, as Burn does.
            let beta = beta.map(|b| b.cast(DType::F32));
            let output = burn::tensor::module::layer_norm(
                input.cast(DType::F32),
                gamma.cast(DType::F32),
                beta,
                self.epsilon,
            );
            return output.cast(dtype);
        }
        burn::tensor::module::layer_norm(input, gamma, beta, self.epsilon)
    }

    /// `[N, d_model, H, W] → [N, d_model, H, W]`, each pixel normalised over the channels:
    /// PyTorch's `norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)` (timm's `LayerNorm2d`). On
    /// the flex CPU device one pass per block of pixels reads and writes the map in NCHW.
    ///
    /// # Panics
    /// If the channel axis is not `d_model` long.
    pub fn forward_channels(&self, input: Tensor<4>) -> Tensor<4> {
        let [n, c, h, w] = input.dims();
        let [d_model] = self.gamma.dims();
        assert_eq!(
            c,
            d_model,
            "LayerNorm over {d_model} channels, input {:?}",
            input.dims()
        );
        if !on_plain_flex(&input) {
            return self
                .forward(input.permute([0, 2, 3, 1]))
                .permute([0, 3, 1, 2]);
        }
        let device = input.device();
        let x = HostView::new(input).expect("flex f32 (checked above)");
        let gamma = HostView::new(self.gamma.val()).expect("flex f32 like the input");
        let beta = self
            .beta
            .as_ref()
            .map(|b| HostView::new(b.val()).expect("flex f32"));
        let out = normalise_channels(
            x.values(),
            [n, c, h * w],
            gamma.values(),
            beta.as_ref().map(HostView::values),
            self.epsilon as f32,
        );
        Tensor::from_data(TensorData::new(out, [n, c, h, w]), &device)
    }
}

/// Shown on one line as Burn's: `LayerNorm {d_model: 192, epsilon: 0.000001, bias: true, params: 384}`.
impl burn::module::ModuleDisplay for LayerNorm {
    fn custom_settings(&self) -> Option<burn::module::DisplaySettings> {
        burn::module::DisplaySettings::new()
            .with_new_line_after_attribute(false)
            .optional()
    }

    fn custom_content(&self, content: burn::module::Content) -> Option<burn::module::Content> {
        let [d_model] = self.gamma.shape().dims();
        content
            .add("d_model", &d_model)
            .add("epsilon", &self.epsilon)
            .add("bias", &self.beta.is_some())
            .optional()
    }
}

/// Pixels per task of [`normalise_channels`]: a block's channel runs stay in L1/L2 across the
/// three passes (48 channels × 1024 pixels: 192 KiB).
const PIXELS_PER_TASK: usize = 1024;

/// The channel norm of `n` planes `[c, pixels]`: per pixel the mean and biased variance over
/// the `c` channels, then `(x − mean) · rstd · γ[c] + β[c]`. Blocks of pixels run in parallel;
/// within a block every loop runs along the pixels (contiguous, vectorised).
fn normalise_channels(
    x: &[f32],
    [n, c, pixels]: [usize; 3],
    gamma: &[f32],
    beta: Option<&[f32]>,
    epsilon: f32,
) -> Vec<f32> {
    use crate::cpu_kernels::SendPtr;
    use rayon::prelude::*;
    let mut out = vec![0.0f32; n * c * pixels];
    if c == 0 || pixels == 0 {
        return out;
    }
    let blocks = pixels.div_ceil(PIXELS_PER_TASK);
    let out_ptr = SendPtr(out.as_mut_ptr());
    (0..n * blocks).into_par_iter().for_each(|task| {
        let (image, block) = (task / blocks, task % blocks);
        let first = block * PIXELS_PER_TASK;
        let len = PIXELS_PER_TASK.min(pixels - first);
        let plane = &x[image * c * pixels..(image + 1) * c * pixels];
        let channel = |k: usize| &plane[k * pixels + first..k * pixels + first + len];
        crate::train::vectorised(
            #[inline(always)]
            || {
                let mut mean = vec![0.0f32; len];
                for k in 0..c {
                    for (m, &v) in mean.iter_mut().zip(channel(k)) {
                        *m += v;
                    }
                }
                let inv_c = 1.0 / c as f32;
                mean.iter_mut().for_each(|m| *m *= inv_c);
                let mut rstd = vec![0.0f32; len];
                for k in 0..c {
                    for ((s, &v), &m) in rstd.iter_mut().zip(channel(k)).zip(&mean) {
                        let d = v - m;
                        *s += d * d;
                    }
                }
                rstd.iter_mut()
                    .for_each(|s| *s = 1.0 / (*s * inv_c + epsilon).sqrt());
                for k in 0..c {
                    let (g, b) = (gamma[k], beta.map_or(0.0, |b| b[k]));
                    // SAFETY: this task alone writes channel k's pixels [first, first + len) of
                    // this image.
                    let dst = unsafe {
                        std::slice::from_raw_parts_mut(
                            out_ptr.get().add((image * c + k) * pixels + first),
                            len,
                        )
                    };
                    for (((y, &v), &m), &r) in dst.iter_mut().zip(channel(k)).zip(&mean).zip(&rstd)
                    {
                        *y = (v - m) * r * g + b;
                    }
                }
            },
        )
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::tests::random;

    fn norm(c: usize, bias: bool, seed: u64, device: &Device) -> LayerNorm {
        let mut norm = LayerNormConfig::new(c)
            .with_bias(bias)
            .with_epsilon(1e-6)
            .init(device);
        let affine = random([2, c, 1, 1], seed, device);
        norm.gamma = Param::from_tensor(affine.clone().slice([0..1]).reshape([c]).add_scalar(1.0));
        if let Some(beta) = &mut norm.beta {
            *beta = Param::from_tensor(affine.slice([1..2]).reshape([c]));
        }
        norm
    }

    /// `forward_channels` equals Burn's LayerNorm on the permuted map (with and without β, a
    /// map smaller than one task and one of several, a non-contiguous input, an offset mean).
    #[test]
    fn forward_channels_is_burns_layer_norm_over_the_channel_axis() {
        let device = Device::flex();
        for (shape, bias, transposed) in [
            ([2, 48, 40, 36], true, false),
            ([1, 5, 3, 4], false, false),
            ([3, 64, 17, 70], true, true),
        ] {
            let norm = norm(shape[1], bias, 3, &device);
            let x = random(shape, 5, &device).mul_scalar(4.0).add_scalar(3.0);
            let x = if transposed {
                // The same values behind a transposed layout.
                let t = x.clone().swap_dims(2, 3).into_data();
                Tensor::<4>::from_data(t, &device).swap_dims(2, 3)
            } else {
                x
            };
            let burn_norm = {
                let mut b = burn::nn::LayerNormConfig::new(shape[1])
                    .with_bias(bias)
                    .with_epsilon(1e-6)
                    .init(&device);
                b.gamma = norm.gamma.clone();
                b.beta = norm.beta.clone();
                b
            };
            let want = burn_norm
                .forward(x.clone().permute([0, 2, 3, 1]))
                .permute([0, 3, 1, 2]);
            let got = norm.forward_channels(x.clone());
            let d = crate::train::max_diff(got, want.clone());
            assert!(d < 1e-5, "{shape:?}: max diff {d}");
            // And `forward` over the last axis is Burn's too.
            let d = crate::train::max_diff(
                norm.forward(x.permute([0, 2, 3, 1])).permute([0, 3, 1, 2]),
                want,
            );
            assert!(d < 1e-5, "{shape:?} (last axis): max diff {d}");
        }
    }
}
