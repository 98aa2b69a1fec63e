//! CBAM, the Convolutional Block Attention Module from "CBAM: Convolutional Block Attention
//! Module" (Woo et al., ECCV 2018), exactly timm's `timm.layers.cbam.CbamModule`
//! (`create_attn('cbam', channels)`).
//!
//! Channel attention, then spatial attention, applied in sequence (paper eq. 1–3):
//!
//! `M_c(x) = σ(MLP(AvgPool(x)) + MLP(MaxPool(x)))`, `x' = M_c(x) ⊙ x`
//!
//! `M_s(x') = σ(BN(conv₇ₓ₇([mean_c(x'); max_c(x')])))`, `y = M_s(x') ⊙ x'`
//!
//! timm specifics: the shared MLP is two bias-free 1×1 convolutions `C → r → C` with ReLU and
//! `r = make_divisible(C / 16, 1, round_limit = 0)`; the spatial convolution is timm's
//! `ConvNormAct(2, 1, 7, apply_act=False)`: a bias-free 7×7 convolution (padding 3) followed by
//! a BatchNorm (which the paper does not have).

use crate::conv::Conv2d;
use burn::prelude::*;

use crate::layers::{conv_same, reduced_channels};
use crate::layers::{Activation, ConvNormAct, ConvNormActConfig};

/// Configuration of [`CbamModule`] (the arguments of timm's `CbamModule`, same defaults).
#[derive(Config, Debug)]
pub struct CbamConfig {
    /// Channels of the input (and of the output).
    pub channels: usize,
    /// Reduction ratio of the channel MLP.
    #[config(default = 0.0625)]
    pub rd_ratio: f64,
    /// Explicit MLP width; overrides `rd_ratio` when set and non-zero.
    pub rd_channels: Option<usize>,
    /// The MLP width is rounded to a multiple of this (1: plain rounding).
    #[config(default = 1)]
    pub rd_divisor: usize,
    /// Kernel size of the spatial-attention convolution.
    #[config(default = 7)]
    pub spatial_kernel_size: usize,
    /// The MLP's hidden activation.
    #[config(default = "Activation::Relu")]
    pub act_layer: Activation,
    /// The gate of both attentions.
    #[config(default = "Activation::Sigmoid")]
    pub gate_layer: Activation,
    /// Whether the MLP's 1×1 convolutions have biases.
    #[config(default = false)]
    pub mlp_bias: bool,
}

impl CbamConfig {
    /// The channel-MLP width timm would use.
    pub fn reduced_channels(&self) -> usize {
        reduced_channels(
            self.channels,
            self.rd_ratio,
            self.rd_channels,
            self.rd_divisor,
        )
    }

    /// Builds the block with randomly initialised weights.
    pub fn init(&self, device: &Device) -> CbamModule {
        let rd = self.reduced_channels();
        CbamModule {
            channel: ChannelAttn {
                fc1: conv_same(self.channels, rd, 1, self.mlp_bias, device),
                fc2: conv_same(rd, self.channels, 1, self.mlp_bias, device),
                act: self.act_layer,
                gate: self.gate_layer,
            },
            spatial: SpatialAttn {
                conv: ConvNormActConfig::new(2, 1, self.spatial_kernel_size).init(device),
                gate: self.gate_layer,
            },
        }
    }
}

/// CBAM. timm keys: `channel.fc1.weight`, `channel.fc2.weight`, `spatial.conv.conv.weight`,
/// `spatial.conv.bn.{weight,bias,running_mean,running_var}`.
#[derive(Module, Debug)]
pub struct CbamModule {
    /// Channel attention (applied first).
    pub channel: ChannelAttn,
    /// Spatial attention.
    pub spatial: SpatialAttn,
}

impl CbamModule {
    /// `[N, C, H, W] → [N, C, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.spatial.forward(self.channel.forward(x))
    }
}

/// CBAM's channel attention (timm `ChannelAttn`): a shared MLP on the average- and
/// max-pooled descriptors, summed, then gated.
#[derive(Module, Debug)]
pub struct ChannelAttn {
    /// 1×1 convolution `C → r`.
    pub fc1: Conv2d,
    /// 1×1 convolution `r → C`.
    pub fc2: Conv2d,
    /// Hidden activation.
    #[module(skip)]
    pub act: Activation,
    /// Gate.
    #[module(skip)]
    pub gate: Activation,
}

impl ChannelAttn {
    /// `[N, C, H, W] → [N, C, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let gate = self.attention_map(x.clone());
        x * gate
    }

    /// The channel gate `M_c(x)`, `[N, C, 1, 1]`.
    pub fn attention_map(&self, x: Tensor<4>) -> Tensor<4> {
        let [n, c, h, w] = x.dims();
        let flat = x.reshape([n, c, h * w]);
        let avg = flat.clone().mean_dim(2).reshape([n, c, 1, 1]);
        let max = flat.max_dim(2).reshape([n, c, 1, 1]);
        let mlp = |z| self.fc2.forward(self.act.apply(self.fc1.forward(z)));
        self.gate.apply(mlp(avg) + mlp(max))
    }
}

/// CBAM's spatial attention (timm `SpatialAttn`): conv + BN on the channel-wise mean and max.
#[derive(Module, Debug)]
pub struct SpatialAttn {
    /// timm's `ConvNormAct(2, 1, k, apply_act=False)`.
    pub conv: ConvNormAct,
    /// Gate.
    #[module(skip)]
    pub gate: Activation,
}

impl SpatialAttn {
    /// `[N, C, H, W] → [N, C, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let gate = self.attention_map(x.clone());
        x * gate
    }

    /// The spatial gate `M_s(x)`, `[N, 1, H, W]`.
    pub fn attention_map(&self, x: Tensor<4>) -> Tensor<4> {
        let pooled = Tensor::cat(vec![x.clone().mean_dim(1), x.max_dim(1)], 1);
        self.gate.apply(self.conv.forward(pooled))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduced_channels_follow_timm() {
        // timm: CbamModule(c).channel.fc1.out_channels.
        assert_eq!(CbamConfig::new(24).reduced_channels(), 2);
        assert_eq!(CbamConfig::new(64).reduced_channels(), 4);
        assert_eq!(CbamConfig::new(40).reduced_channels(), 3);
    }
}
