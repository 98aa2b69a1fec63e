//! Split attention ("Splat") from "ResNeSt: Split-Attention Networks" (Zhang et al., CVPRW
//! 2022), exactly timm's `timm.layers.split_attn.SplitAttn` (`create_attn('splat', …)`, the
//! 3×3 convolution of every ResNeSt bottleneck).
//!
//! A grouped convolution produces `R` (radix) feature-map splits `Uᵢ` per cardinal group; their
//! sum is pooled, passed through a bottleneck (`fc1`, BN, ReLU, `fc2`), and an r-softmax across
//! the splits weights them (paper eq. 1–3, per cardinal group `k`):
//!
//! `ŝ = GAP(Σᵢ Uᵢ)`, `aᵢ = softmaxᵢ(fc2ᵢ(δ(BN(fc1(ŝ)))))`, `V = Σᵢ aᵢ ⊙ Uᵢ`
//!
//! With `radix = 1` the softmax becomes a sigmoid (an SE-like gate on the conv output).
//!
//! timm specifics: `conv` has `groups · radix` groups and `out · radix` outputs and no bias;
//! `fc1`/`fc2` are 1×1 convolutions with `groups` groups and biases; the attention width is
//! `make_divisible(in · radix · rd_ratio, 8, min_value = 32)` (round limit 0.9) or
//! `rd_channels · radix`. The r-softmax views `fc2`'s output as `[N, groups, radix, -1]` and
//! normalises over `radix`. DropBlock (`drop`) is training-only and left out.

use crate::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::softmax;

use crate::cpu_kernels::sigmoid;
use crate::layers::make_divisible;
use crate::layers::Activation;

/// Configuration of [`SplitAttn`] (the arguments of timm's `SplitAttn`; every default is
/// timm's except `use_norm`, which is on as in ResNeSt — timm's bare default is
/// `norm_layer=None`).
#[derive(Config, Debug)]
pub struct SplitAttnConfig {
    /// Channels of the input.
    pub in_channels: usize,
    /// Channels of the output (timm's `out_channels or in_channels`; ResNeSt passes both).
    pub out_channels: usize,
    /// Kernel size of the split convolution.
    #[config(default = 3)]
    pub kernel_size: usize,
    /// Stride of the split convolution.
    #[config(default = 1)]
    pub stride: usize,
    /// Zero padding of the split convolution (default: `kernel_size / 2`).
    pub padding: Option<usize>,
    /// Dilation of the split convolution.
    #[config(default = 1)]
    pub dilation: usize,
    /// Cardinality (ResNeSt's `K`; timm's `groups`).
    #[config(default = 1)]
    pub groups: usize,
    /// Whether the split convolution has a bias.
    #[config(default = false)]
    pub bias: bool,
    /// Number of splits per cardinal group (ResNeSt's `R`).
    #[config(default = 2)]
    pub radix: usize,
    /// Attention width ratio: `make_divisible(in · radix · rd_ratio, rd_divisor, min_value = 32)`.
    #[config(default = 0.25)]
    pub rd_ratio: f64,
    /// Explicit attention width per split; the width is then `rd_channels · radix`.
    pub rd_channels: Option<usize>,
    /// The attention width is rounded to a multiple of this.
    #[config(default = 8)]
    pub rd_divisor: usize,
    /// Whether BatchNorms `bn0` (after `conv`) and `bn1` (after `fc1`) exist (ResNeSt: yes).
    #[config(default = true)]
    pub use_norm: bool,
    /// The activation after `bn0` and after `bn1`.
    #[config(default = "Activation::Relu")]
    pub act_layer: Activation,
}

impl SplitAttnConfig {
    /// The attention width (`fc1`'s output channels) timm would use.
    pub fn attn_channels(&self) -> usize {
        match self.rd_channels {
            Some(rd) => rd * self.radix,
            None => make_divisible(
                self.in_channels as f64 * self.radix as f64 * self.rd_ratio,
                self.rd_divisor,
                Some(32),
                0.9,
            ),
        }
    }

    /// Builds the block with randomly initialised weights.
    pub fn init(&self, device: &Device) -> SplitAttn {
        let out = self.out_channels;
        let mid = out * self.radix;
        let attn = self.attn_channels();
        let pad = self.padding.unwrap_or(self.kernel_size / 2);
        let (s, d, g) = (self.stride, self.dilation, self.groups);
        let bn = |c| self.use_norm.then(|| BatchNormConfig::new(c).init(device));
        SplitAttn {
            conv: Conv2dConfig::new([self.in_channels, mid], [self.kernel_size; 2])
                .with_stride([s, s])
                .with_dilation([d, d])
                .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
                .with_groups(g * self.radix)
                .with_bias(self.bias)
                .init(device),
            bn0: bn(mid),
            fc1: Conv2dConfig::new([out, attn], [1, 1])
                .with_groups(g)
                .init(device),
            bn1: bn(attn),
            fc2: Conv2dConfig::new([attn, mid], [1, 1])
                .with_groups(g)
                .init(device),
            radix: self.radix,
            cardinality: g,
            act: self.act_layer,
        }
    }
}

/// Split attention. timm keys: `conv.weight` (`conv.bias` with `bias`), `bn0.*`,
/// `fc1.{weight,bias}`, `bn1.*`, `fc2.{weight,bias}`.
#[derive(Module, Debug)]
pub struct SplitAttn {
    /// Grouped convolution `in → out · radix` (groups `cardinality · radix`).
    pub conv: Conv2d,
    /// BatchNorm after `conv`.
    pub bn0: Option<BatchNorm>,
    /// 1×1 grouped convolution `out → attn`.
    pub fc1: Conv2d,
    /// BatchNorm after `fc1`.
    pub bn1: Option<BatchNorm>,
    /// 1×1 grouped convolution `attn → out · radix`.
    pub fc2: Conv2d,
    /// Splits per cardinal group.
    pub radix: usize,
    /// Cardinal groups.
    pub cardinality: usize,
    /// Activation (timm's `act0` and `act1`).
    #[module(skip)]
    pub act: Activation,
}

impl SplitAttn {
    /// `[N, C_in, H, W] → [N, C_out, H', W']` (`H' = H / stride`, conv arithmetic).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.conv.forward(x);
        let x = match &self.bn0 {
            Some(bn) => bn.forward(x),
            None => x,
        };
        let x = self.act.apply(x);
        let [b, rc, h, w] = x.dims();
        let r = self.radix;
        let c = rc / r;

        let attn = self.attention(x.clone());
        if r > 1 {
            let splits: Tensor<5> = x.reshape([b, r, c, h, w]);
            (splits * attn.reshape([b, r, c, 1, 1]))
                .sum_dim(1)
                .reshape([b, c, h, w])
        } else {
            x * attn.reshape([b, rc, 1, 1])
        }
    }

    /// The split weights `aᵢ` for the activated conv output `x` (`[N, out · radix, H', W']`),
    /// as `[N, out · radix]` in `x`'s channel order (radix-major).
    pub fn attention(&self, x: Tensor<4>) -> Tensor<2> {
        let [b, rc, h, w] = x.dims();
        let r = self.radix;
        let c = rc / r;
        let gap_in = if r > 1 {
            x.reshape([b, r, c, h * w])
                .sum_dim(1)
                .reshape([b, c, h * w])
        } else {
            x.reshape([b, c, h * w])
        };
        let gap = gap_in.mean_dim(2).reshape([b, c, 1, 1]);
        let a = self.fc1.forward(gap);
        let a = match &self.bn1 {
            Some(bn) => bn.forward(a),
            None => a,
        };
        let a = self.fc2.forward(self.act.apply(a));
        if r > 1 {
            // timm RadixSoftmax: view [B, card, radix, -1], transpose(1, 2), softmax over radix.
            let a = a
                .reshape([b, self.cardinality, r, rc / (self.cardinality * r)])
                .swap_dims(1, 2);
            softmax(a, 1).reshape([b, rc])
        } else {
            sigmoid(a).reshape([b, rc])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attn_channels_follow_timm() {
        // timm: SplitAttn(...).fc1.out_channels.
        assert_eq!(SplitAttnConfig::new(64, 64).attn_channels(), 32);
        assert_eq!(SplitAttnConfig::new(128, 128).attn_channels(), 64);
        assert_eq!(
            SplitAttnConfig::new(64, 64).with_radix(1).attn_channels(),
            32
        );
        assert_eq!(
            SplitAttnConfig::new(64, 64)
                .with_rd_channels(Some(16))
                .attn_channels(),
            32
        );
    }

    #[test]
    fn stride_and_out_channels() {
        let device = Device::flex();
        let sa = SplitAttnConfig::new(8, 12)
            .with_stride(2)
            .with_groups(2)
            .init(&device);
        let y = sa.forward(Tensor::<4>::ones([1, 8, 7, 9], &device));
        assert_eq!(y.dims(), [1, 12, 4, 5]);
    }
}
