//! The vast-receptive-field attention block (VAB) of VapSR: "Efficient Image Super-Resolution
//! using Vast-Receptive-Field Attention" (Zhou, Cai, Gu, Li, Liu, Chen, Qiao, Dong; ECCV 2022
//! AIM workshop). Official code: github.com/zhoumumu/VapSR (`code/vapsr.py`, classes
//! `Attention` and `VAB`).
//!
//! [`VastAttention`] (official `Attention`) is pixel attention whose gate has a vast receptive
//! field at the cost of a few depthwise kernels: a 1×1 convolution, a 5×5 depthwise one and a
//! 5×5 depthwise one with dilation 3 (a 17×17 window together), all with bias and "same" zero
//! padding (2, then 6). The gate multiplies the input as it is, without a sigmoid:
//!
//! `A(u) = u ⊙ DWD₅ₓ₅,d=3(DW₅ₓ₅(PW₁ₓ₁(u)))`
//!
//! [`Vab`] (official `VAB`) wraps it between two 1×1 projections `C → C_a → C` with a GELU
//! (exact, erf-based) before the attention, adds the input back, and ends with the *pixel
//! normalization*: a LayerNorm over the `C` channels of every pixel (PyTorch's
//! `nn.LayerNorm(C)` on the `[N, H, W, C]` permutation, epsilon 1e-5, biased variance):
//!
//! `y = PN(x + W₂ ∗ A(GELU(W₁ ∗ x)))`,
//! `PN(z)[n, :, h, w] = γ ⊙ (z[n, :, h, w] − μ) / √(σ² + ε) + β`
//!
//! with `μ`, `σ²` the mean and variance over the channels of that pixel.
//!
//! ```
//! use burn::module::Module;
//! use burn::prelude::*;
//! use gaze_blocks::vab::VabConfig;
//!
//! let device = Device::flex();
//! let block = VabConfig::new(48, 64).init(&device);
//! let x = Tensor::<4>::ones([1, 48, 9, 11], &device);
//! assert_eq!(block.forward(x).dims(), [1, 48, 9, 11]);
//! // proj_1, pointwise, depthwise ×2, proj_2 (with biases) and the norm's γ, β.
//! assert_eq!(block.num_params(), 13_840);
//! ```

use crate::conv::{Conv2d, Conv2dConfig};
use crate::layer_norm::{LayerNorm, LayerNormConfig};
use burn::nn::PaddingConfig2d;
use burn::prelude::*;

use crate::layers::{conv_same, Activation};

/// Configuration of [`VastAttention`]; the defaults are VapSR's.
#[derive(Config, Debug)]
pub struct VastAttentionConfig {
    /// Channels of the input and output (`dim`; VapSR's `d_atten`).
    pub channels: usize,
    /// Kernel of the plain depthwise convolution (5).
    #[config(default = 5)]
    pub kernel_size: usize,
    /// Kernel of the dilated depthwise convolution (5).
    #[config(default = 5)]
    pub dilated_kernel_size: usize,
    /// Dilation of the dilated depthwise convolution (3).
    #[config(default = 3)]
    pub dilation: usize,
}

/// VapSR's attention branch (official `Attention`):
/// `u ⊙ depthwise_dilated(depthwise(pointwise(u)))`. Keys `pointwise`, `depthwise`,
/// `depthwise_dilated` (`.weight`, `.bias`), as the official checkpoints name them.
#[derive(Module, Debug)]
pub struct VastAttention {
    /// 1×1 convolution `C → C`, with bias.
    pub pointwise: Conv2d,
    /// Depthwise 5×5 convolution (groups = C), padding 2, with bias.
    pub depthwise: Conv2d,
    /// Depthwise 5×5 convolution with dilation 3 (groups = C), padding 6, with bias.
    pub depthwise_dilated: Conv2d,
}

/// A depthwise (groups = channels), stride-1 convolution with "same" zero padding
/// `dilation · (k − 1) / 2` and a bias.
fn depthwise_conv(channels: usize, kernel: usize, dilation: usize, device: &Device) -> Conv2d {
    let pad = dilation * (kernel - 1) / 2;
    Conv2dConfig::new([channels, channels], [kernel, kernel])
        .with_groups(channels)
        .with_dilation([dilation, dilation])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(true)
        .init(device)
}

impl VastAttentionConfig {
    /// Builds the block with random weights.
    pub fn init(&self, device: &Device) -> VastAttention {
        let c = self.channels;
        VastAttention {
            pointwise: conv_same(c, c, 1, true, device),
            depthwise: depthwise_conv(c, self.kernel_size, 1, device),
            depthwise_dilated: depthwise_conv(c, self.dilated_kernel_size, self.dilation, device),
        }
    }
}

impl VastAttention {
    /// `[N, C, H, W] → [N, C, H, W]`: the input times its attention map.
    ///
    /// ```
    /// use burn::prelude::*;
    /// use gaze_blocks::vab::VastAttentionConfig;
    ///
    /// let device = Device::flex();
    /// let attn = VastAttentionConfig::new(8).init(&device);
    /// // Inputs smaller than the 17×17 window are fine: the padding is zeros.
    /// let x = Tensor::<4>::ones([2, 8, 5, 7], &device);
    /// assert_eq!(attn.forward(x).dims(), [2, 8, 5, 7]);
    /// ```
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let map = self.attention_map(x.clone());
        x * map
    }

    /// The attention map `depthwise_dilated(depthwise(pointwise(u)))` itself (unbounded: no
    /// sigmoid), for visualisation.
    pub fn attention_map(&self, x: Tensor<4>) -> Tensor<4> {
        let a = self.pointwise.forward(x);
        let a = self.depthwise.forward(a);
        self.depthwise_dilated.forward(a)
    }
}

/// Configuration of [`Vab`]; the defaults are VapSR's.
#[derive(Config, Debug)]
pub struct VabConfig {
    /// Channels of the input and output (`d_model`; VapSR's `num_feat`).
    pub d_model: usize,
    /// Width of the attention branch (`d_atten`).
    pub d_atten: usize,
    /// Epsilon of the pixel normalization (PyTorch's `nn.LayerNorm` default).
    #[config(default = 1e-5)]
    pub norm_eps: f64,
}

/// The vast-receptive-field attention block (official `VAB`):
/// `pixel_norm(x + proj_2(atten_branch(GELU(proj_1(x)))))`. Keys `proj_1`, `atten_branch.*`,
/// `proj_2`, `pixel_norm` (`.weight`/`.bias`, loaded as the LayerNorm's γ/β).
#[derive(Module, Debug)]
pub struct Vab {
    /// 1×1 projection `d_model → d_atten`, with bias.
    pub proj_1: Conv2d,
    /// The GELU after `proj_1` (official `activation`, `nn.GELU()`: exact).
    #[module(skip)]
    pub activation: Activation,
    /// The attention branch (official `atten_branch`).
    pub atten_branch: VastAttention,
    /// 1×1 projection `d_atten → d_model`, with bias.
    pub proj_2: Conv2d,
    /// LayerNorm over the channels of each pixel, after the residual sum.
    pub pixel_norm: LayerNorm,
}

impl VabConfig {
    /// Builds the block with random weights.
    pub fn init(&self, device: &Device) -> Vab {
        Vab {
            proj_1: conv_same(self.d_model, self.d_atten, 1, true, device),
            activation: Activation::Gelu,
            atten_branch: VastAttentionConfig::new(self.d_atten).init(device),
            proj_2: conv_same(self.d_atten, self.d_model, 1, true, device),
            pixel_norm: LayerNormConfig::new(self.d_model)
                .with_epsilon(self.norm_eps)
                .init(device),
        }
    }
}

impl Vab {
    /// `[N, C, H, W] → [N, C, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = self.activation.apply(self.proj_1.forward(x.clone()));
        let y = self.proj_2.forward(self.atten_branch.forward(y)) + x;
        pixel_norm(&self.pixel_norm, y)
    }
}

/// A LayerNorm over the channels of every pixel of an NCHW map (VapSR's pixel normalization;
/// timm's `LayerNorm2d`): [`LayerNorm::forward_channels`].
pub fn pixel_norm(norm: &LayerNorm, x: Tensor<4>) -> Tensor<4> {
    norm.forward_channels(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Module;

    #[test]
    fn shapes_and_param_counts() {
        let device = Device::flex();
        let attn = VastAttentionConfig::new(64).init(&device);
        // pointwise 64·64 + 64, two depthwise 64·25 + 64.
        assert_eq!(attn.num_params(), 4160 + 2 * 1664);
        let block = VabConfig::new(32, 64).init(&device);
        let y = block.forward(Tensor::<4>::ones([2, 32, 3, 20], &device));
        assert_eq!(y.dims(), [2, 32, 3, 20]);
    }

    #[test]
    fn pixel_norm_normalises_each_pixel_over_channels() {
        let device = Device::flex();
        let norm = LayerNormConfig::new(4).init(&device);
        let x = Tensor::<4>::from_data(
            TensorData::new((0..24).map(|v| (v * v) as f32).collect(), [1, 4, 2, 3]),
            &device,
        );
        let y = pixel_norm(&norm, x);
        let mean = y.clone().mean_dim(1).abs().max().into_scalar::<f32>();
        let var = y.powi_scalar(2).mean_dim(1);
        let var_err = var.sub_scalar(1.0).abs().max().into_scalar::<f32>();
        assert!(mean < 1e-5, "mean {mean}");
        assert!(var_err < 1e-3, "variance error {var_err}");
    }
}
