//! SC-PA: the self-calibrated convolution block with pixel attention, the trunk block of PAN
//! (Zhao et al. 2020, Fig. 2b).
//!
//! The input is split by two 1×1 convolutions into halves of `channels / reduction` channels.
//! One half goes through a plain 3×3 convolution, the other through [`PixelAttentionConv`];
//! both are activated, concatenated, fused by a 1×1 convolution and added to the input:
//!
//! `y = x + conv3([lrelu(k1 ∗ lrelu(conv1_a ∗ x)), lrelu(PAConv(lrelu(conv1_b ∗ x)))])`

use crate::conv::{Conv2d, Conv2dConfig};
use burn::nn::PaddingConfig2d;
use burn::prelude::*;

use crate::layers::{conv_same, lrelu};
use crate::pixel_attention::{PixelAttentionConv, PixelAttentionConvConfig};

/// Configuration of [`Scpa`].
#[derive(Config, Debug)]
pub struct ScpaConfig {
    /// Channels of the input and output (`nf` in the official code).
    pub channels: usize,
    /// Each branch works on `channels / reduction` channels.
    #[config(default = 2)]
    pub reduction: usize,
    /// Stride of the plain branch's 3×3 convolution (1 in PAN).
    #[config(default = 1)]
    pub stride: usize,
    /// Dilation of the plain branch's 3×3 convolution (1 in PAN).
    #[config(default = 1)]
    pub dilation: usize,
}

/// The SC-PA block. Official keys: `conv1_a`, `conv1_b`, `k1.0` (our `k1`), `PAConv.k2/k3/k4`
/// (our `pa_conv`), `conv3`; every convolution but PAConv's gate is bias-free.
#[derive(Module, Debug)]
pub struct Scpa {
    /// 1×1 projection into the plain branch.
    pub conv1_a: Conv2d,
    /// 1×1 projection into the attention branch.
    pub conv1_b: Conv2d,
    /// The plain branch's 3×3 convolution.
    pub k1: Conv2d,
    /// The attention branch.
    pub pa_conv: PixelAttentionConv,
    /// 1×1 fusion of the two branches.
    pub conv3: Conv2d,
}

impl ScpaConfig {
    /// Builds the block with randomly initialised weights.
    pub fn init(&self, device: &Device) -> Scpa {
        let width = self.channels / self.reduction;
        let d = self.dilation;
        Scpa {
            conv1_a: conv_same(self.channels, width, 1, false, device),
            conv1_b: conv_same(self.channels, width, 1, false, device),
            k1: Conv2dConfig::new([width, width], [3, 3])
                .with_stride([self.stride, self.stride])
                .with_dilation([d, d])
                .with_padding(PaddingConfig2d::Explicit(d, d, d, d))
                .with_bias(false)
                .init(device),
            pa_conv: PixelAttentionConvConfig::new(width).init(device),
            conv3: conv_same(width * self.reduction, self.channels, 1, false, device),
        }
    }
}

impl Scpa {
    /// `[N, C, H, W] → [N, C, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let plain = lrelu(self.k1.forward(lrelu(self.conv1_a.forward(x.clone()))));
        let attended = lrelu(self.pa_conv.forward(lrelu(self.conv1_b.forward(x.clone()))));
        self.conv3.forward(Tensor::cat(vec![plain, attended], 1)) + x
    }
}
