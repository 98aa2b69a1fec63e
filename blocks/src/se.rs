//! Squeeze-and-Excitation (SE) channel attention from "Squeeze-and-Excitation Networks"
//! (Hu, Shen, Sun, CVPR 2018), exactly timm's `timm.layers.squeeze_excite.SEModule` — the
//! module `create_attn('se', channels)` builds for timm's SE-ResNet/ResNeXt, RegNet, CSPNet, …
//!
//! The squeeze is a global average pool, the excitation a bottleneck MLP of two 1×1
//! convolutions (paper eq. 2–4):
//!
//! `z = GAP(x)`, `s = σ(W₂ δ(BN(W₁ z + b₁)) + b₂)`, `y = x ⊙ s`
//!
//! with `δ` = ReLU, `σ` = sigmoid, no BN by default, and `W₁ : C → r` where
//! `r = make_divisible(C · rd_ratio, rd_divisor, round_limit = 0)` (timm's defaults
//! `rd_ratio = 1/16`, `rd_divisor = 8`, so `r ≥ 8`).
//!
//! The activation and gate (`act_layer=`, `gate_layer=`) are [`Activation`]s.

use crate::conv::Conv2d;
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::prelude::*;

use crate::layers::{conv_same, reduced_channels, Activation};

/// Configuration of [`SeModule`] (the arguments of timm's `SEModule`, same defaults).
#[derive(Config, Debug)]
pub struct SeConfig {
    /// Channels of the input (and of the output).
    pub channels: usize,
    /// Reduction ratio of the bottleneck: `rd = make_divisible(channels · rd_ratio, rd_divisor, 0)`.
    #[config(default = 0.0625)]
    pub rd_ratio: f64,
    /// Explicit bottleneck width; overrides `rd_ratio` when set and non-zero (RegNet uses it).
    pub rd_channels: Option<usize>,
    /// The bottleneck width is rounded to a multiple of this.
    #[config(default = 8)]
    pub rd_divisor: usize,
    /// timm's experimental `add_maxpool`: squeeze with `(avg + max) / 2` instead of `avg`.
    #[config(default = false)]
    pub add_maxpool: bool,
    /// Whether `fc1` and `fc2` have biases.
    #[config(default = true)]
    pub bias: bool,
    /// Whether a BatchNorm (`bn`) follows `fc1` (timm's `norm_layer=nn.BatchNorm2d`).
    #[config(default = false)]
    pub use_norm: bool,
    /// The hidden activation.
    #[config(default = "Activation::Relu")]
    pub act_layer: Activation,
    /// The gate.
    #[config(default = "Activation::Sigmoid")]
    pub gate_layer: Activation,
}

impl SeConfig {
    /// The bottleneck width `rd_channels` timm would use.
    pub fn reduced_channels(&self) -> usize {
        reduced_channels(
            self.channels,
            self.rd_ratio,
            self.rd_channels,
            self.rd_divisor,
        )
    }

    /// Builds the block with randomly initialised weights.
    pub fn init(&self, device: &Device) -> SeModule {
        let rd = self.reduced_channels();
        SeModule {
            fc1: conv_same(self.channels, rd, 1, self.bias, device),
            bn: self.use_norm.then(|| BatchNormConfig::new(rd).init(device)),
            fc2: conv_same(rd, self.channels, 1, self.bias, device),
            add_maxpool: self.add_maxpool,
            act: self.act_layer,
            gate: self.gate_layer,
        }
    }
}

/// Squeeze-and-excitation. timm keys: `fc1.{weight,bias}`, `bn.*` (with `use_norm`),
/// `fc2.{weight,bias}`.
#[derive(Module, Debug)]
pub struct SeModule {
    /// 1×1 convolution `C → rd`.
    pub fc1: Conv2d,
    /// Optional BatchNorm after `fc1`.
    pub bn: Option<BatchNorm>,
    /// 1×1 convolution `rd → C`.
    pub fc2: Conv2d,
    /// Squeeze with `(avg + max) / 2`.
    pub add_maxpool: bool,
    /// Hidden activation.
    #[module(skip)]
    pub act: Activation,
    /// Gate.
    #[module(skip)]
    pub gate: Activation,
}

impl SeModule {
    /// `[N, C, H, W] → [N, C, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let gate = self.attention_map(x.clone());
        x * gate
    }

    /// The channel gate `s`, `[N, C, 1, 1]`.
    pub fn attention_map(&self, x: Tensor<4>) -> Tensor<4> {
        let [n, c, h, w] = x.dims();
        let flat = x.reshape([n, c, h * w]);
        let mut z = flat.clone().mean_dim(2);
        if self.add_maxpool {
            z = z.mul_scalar(0.5) + flat.max_dim(2).mul_scalar(0.5);
        }
        let mut s = self.fc1.forward(z.reshape([n, c, 1, 1]));
        if let Some(bn) = &self.bn {
            s = bn.forward(s);
        }
        let s = self.fc2.forward(self.act.apply(s));
        self.gate.apply(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduced_channels_follow_timm() {
        // timm: SEModule(24).fc1.out_channels == 8, SEModule(64, rd_ratio=.25) == 16,
        // SEModule(256) == 16, SEModule(2048) == 128.
        assert_eq!(SeConfig::new(24).reduced_channels(), 8);
        assert_eq!(SeConfig::new(64).with_rd_ratio(0.25).reduced_channels(), 16);
        assert_eq!(SeConfig::new(256).reduced_channels(), 16);
        assert_eq!(SeConfig::new(2048).reduced_channels(), 128);
        assert_eq!(
            SeConfig::new(24)
                .with_rd_channels(Some(6))
                .reduced_channels(),
            6
        );
    }

    #[test]
    fn keeps_shape() {
        let device = Device::flex();
        let se = SeConfig::new(16).init(&device);
        let y = se.forward(Tensor::<4>::ones([2, 16, 5, 3], &device));
        assert_eq!(y.dims(), [2, 16, 5, 3]);
    }
}
