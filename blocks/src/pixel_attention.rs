//! Pixel attention (PA) from "Efficient Image Super-Resolution Using Pixel Attention"
//! (Zhao et al., ECCVW 2020).
//!
//! Unlike channel attention (a C-vector) or spatial attention (an H×W map), PA produces a full
//! C×H×W gate with a single 1×1 convolution (paper eq. 1):
//!
//! `PA(x) = x ⊙ σ(W₁ₓ₁ ∗ x + b)`
//!
//! [`PixelAttentionConv`] is the gated 3×3 convolution used in the attention branch of the
//! SC-PA block (official `PAConv`): `k4 ∗ ((k3 ∗ x) ⊙ σ(k2 ∗ x))`.

use crate::conv::Conv2d;
use burn::prelude::*;

use crate::cpu_kernels::sigmoid;
use crate::layers::conv_same;

/// Configuration of [`PixelAttention`].
#[derive(Config, Debug)]
pub struct PixelAttentionConfig {
    /// Channels of the input (and of the output).
    pub channels: usize,
}

/// Pixel attention: `x ⊙ σ(conv1×1(x))`. Checkpoint keys: `conv.weight`, `conv.bias`.
#[derive(Module, Debug)]
pub struct PixelAttention {
    /// The 1×1 convolution producing the C×H×W gate logits.
    pub conv: Conv2d,
}

impl PixelAttentionConfig {
    /// Builds the block with randomly initialised weights.
    pub fn init(&self, device: &Device) -> PixelAttention {
        PixelAttention {
            conv: conv_same(self.channels, self.channels, 1, true, device),
        }
    }
}

impl PixelAttention {
    /// `[N, C, H, W] → [N, C, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let gate = sigmoid(self.conv.forward(x.clone()));
        x * gate
    }

    /// The attention map `σ(conv1×1(x))` itself, for visualisation.
    pub fn attention_map(&self, x: Tensor<4>) -> Tensor<4> {
        sigmoid(self.conv.forward(x))
    }
}

/// Configuration of [`PixelAttentionConv`].
#[derive(Config, Debug)]
pub struct PixelAttentionConvConfig {
    /// Channels of the input (and of the output).
    pub channels: usize,
    /// Kernel size of the two convolutions around the gate (3 in PAN).
    #[config(default = 3)]
    pub kernel_size: usize,
}

/// Convolution with pixel attention (official `PAConv`): `k4 ∗ ((k3 ∗ x) ⊙ σ(k2 ∗ x))`.
/// Keys: `k2.{weight,bias}` (1×1 gate), `k3.weight`, `k4.weight` (no biases).
#[derive(Module, Debug)]
pub struct PixelAttentionConv {
    /// 1×1 convolution producing the gate logits.
    pub k2: Conv2d,
    /// Convolution whose output is gated.
    pub k3: Conv2d,
    /// Convolution applied after the gate.
    pub k4: Conv2d,
}

impl PixelAttentionConvConfig {
    /// Builds the block with randomly initialised weights.
    pub fn init(&self, device: &Device) -> PixelAttentionConv {
        let (c, k) = (self.channels, self.kernel_size);
        PixelAttentionConv {
            k2: conv_same(c, c, 1, true, device),
            k3: conv_same(c, c, k, false, device),
            k4: conv_same(c, c, k, false, device),
        }
    }
}

impl PixelAttentionConv {
    /// `[N, C, H, W] → [N, C, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let gate = sigmoid(self.k2.forward(x.clone()));
        self.k4.forward(self.k3.forward(x) * gate)
    }
}
