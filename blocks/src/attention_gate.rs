//! Attention gates of Attention U-Net, "Attention U-Net: Learning Where to Look for the
//! Pancreas" (Oktay et al., MIDL 2018).
//!
//! An additive attention gate filters skip features `x` with a coarser gating signal `g`
//! (paper eqs. 1–2):
//!
//! `q = ψᵀ relu(W_xᵀ x + W_gᵀ g + b_g) + b_ψ`, `α = σ(q)`, `x̂ = α ⊙ x`
//!
//! Two variants:
//!
//! * [`GridAttentionGate`]: the official gate, `_GridAttentionBlockND` with
//!   `mode='concatenation'`, `dimension=2` from github.com/ozan-oktay/Attention-Gated-Networks
//!   (`models/layers/grid_attention_layer.py`, `_concatenation`). `x` is sub-sampled by `theta`
//!   (a `k×k` stride-`k` convolution without bias, `k = sub_sample`), `phi(g)` (1×1 with bias)
//!   is bilinearly resized to `theta(x)`'s size, `psi` (1×1 with bias, one channel) gives the
//!   logits, `σ(ψ)` is bilinearly resized back to `x`'s size, and the gated `y = α ⊙ x` goes
//!   through the output transform `W` (1×1 convolution with bias, then BatchNorm):
//!
//!   `α = up_x(σ(psi(relu(theta(x) + up_θ(phi(g))))))`, `out = BN(W ∗ (α ⊙ x))`
//!
//!   The official code resizes with `F.upsample(mode='bilinear')` without `align_corners`,
//!   which is `align_corners=False` on PyTorch ≥ 0.4 (the default here; PyTorch ≤ 0.3, when
//!   the repository was written, behaved as `align_corners=True`, selectable with
//!   [`GridAttentionGateConfig::align_corners`]). Official keys: `theta.weight`,
//!   `phi.{weight,bias}`, `psi.{weight,bias}`, `W.0.*` (→ `w_conv`), `W.1.*` (→ `w_bn`).
//! * [`AttentionUNetGate`]: the simpler, widely used `Attention_block` of the AttU_Net in
//!   github.com/LeeJunHyun/Image_Segmentation (`network.py`). `x` and `g` have the same size;
//!   each has a 1×1 convolution (with bias) + BatchNorm, and `psi` is 1×1 convolution +
//!   BatchNorm + sigmoid; there is no output transform:
//!
//!   `out = x ⊙ σ(BN(psi ∗ relu(BN(W_g ∗ g) + BN(W_x ∗ x))))`
//!
//!   Official keys `W_g.{0,1}`, `W_x.{0,1}`, `psi.{0,1}` (→ `w_g` / `w_x` / `psi`
//!   `.{conv,bn}`).
//!
//! [`key_map`] maps both variants' keys. Both `forward`s take
//! `(x, g)`: the skip features first, the gating signal second.

use crate::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};

use crate::cpu_kernels::sigmoid;
use crate::layers::{conv_same, ConvNormAct, ConvNormActConfig};

/// Configuration of [`GridAttentionGate`].
#[derive(Config, Debug)]
pub struct GridAttentionGateConfig {
    /// Channels of the skip features `x` (official `in_channels`).
    pub in_channels: usize,
    /// Channels of the gating signal `g` (official `gating_channels`).
    pub gating_channels: usize,
    /// Channels of the intermediate space; `None` gives the official default
    /// `max(in_channels / 2, 1)`.
    #[config(default = "None")]
    pub inter_channels: Option<usize>,
    /// Kernel size and stride of `theta` (official `sub_sample_factor`, 2 in Attention U-Net).
    #[config(default = 2)]
    pub sub_sample: usize,
    /// `align_corners` of the two bilinear resizes (see the module docs).
    #[config(default = false)]
    pub align_corners: bool,
}

/// The official Attention U-Net grid attention gate (`GridAttentionBlock2D`, mode
/// `'concatenation'`).
#[derive(Module, Debug)]
pub struct GridAttentionGate {
    /// `k×k`, stride-`k` projection of `x` without bias.
    pub theta: Conv2d,
    /// 1×1 projection of `g` with bias.
    pub phi: Conv2d,
    /// 1×1 convolution to one channel with bias (the attention logits).
    pub psi: Conv2d,
    /// Output transform convolution, 1×1 with bias (official `W.0`).
    pub w_conv: Conv2d,
    /// Output transform BatchNorm (official `W.1`).
    pub w_bn: BatchNorm,
    /// `align_corners` of the bilinear resizes.
    pub align_corners: bool,
}

impl GridAttentionGateConfig {
    /// Builds the gate with randomly initialised weights.
    pub fn init(&self, device: &Device) -> GridAttentionGate {
        let (c, s) = (self.in_channels, self.sub_sample);
        let inter = self.inter_channels.unwrap_or((c / 2).max(1));
        GridAttentionGate {
            theta: Conv2dConfig::new([c, inter], [s, s])
                .with_stride([s, s])
                .with_bias(false)
                .init(device),
            phi: conv_same(self.gating_channels, inter, 1, true, device),
            psi: conv_same(inter, 1, 1, true, device),
            w_conv: conv_same(c, c, 1, true, device),
            w_bn: BatchNormConfig::new(c).init(device),
            align_corners: self.align_corners,
        }
    }
}

impl GridAttentionGate {
    /// `x: [N, C, H, W]`, `g: [N, C_g, H_g, W_g]` → the transformed gated features
    /// `[N, C, H, W]` (the official `W_y`).
    pub fn forward(&self, x: Tensor<4>, g: Tensor<4>) -> Tensor<4> {
        self.forward_with_attention(x, g).0
    }

    /// Both official outputs: `(W_y, sigm_psi_f)`, the second being the attention map
    /// `[N, 1, H, W]` resized to `x`'s size.
    pub fn forward_with_attention(&self, x: Tensor<4>, g: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let [_, _, h, w] = x.dims();
        let theta_x = self.theta.forward(x.clone());
        let [_, _, th, tw] = theta_x.dims();
        let phi_g = self.resize(self.phi.forward(g), [th, tw]);
        let f = relu(theta_x + phi_g);
        let att = self.resize(sigmoid(self.psi.forward(f)), [h, w]);
        let y = att.clone() * x;
        (self.w_conv.forward_bn(y, &self.w_bn, false), att)
    }

    fn resize(&self, x: Tensor<4>, size: [usize; 2]) -> Tensor<4> {
        let [_, _, h, w] = x.dims();
        if [h, w] == size {
            return x;
        }
        interpolate(
            x,
            InterpolateOptions::new(InterpolateMode::Bilinear)
                .with_align_corners(self.align_corners)
                .with_output_size(size),
        )
    }
}

/// Configuration of [`AttentionUNetGate`].
#[derive(Config, Debug)]
pub struct AttentionUNetGateConfig {
    /// Channels of the skip features `x` (`F_l`).
    pub in_channels: usize,
    /// Channels of the gating signal `g` (`F_g`).
    pub gating_channels: usize,
    /// Channels of the intermediate space (`F_int`).
    pub inter_channels: usize,
}

/// The `Attention_block` of LeeJunHyun/Image_Segmentation's AttU_Net:
/// `x ⊙ σ(psi(relu(W_g(g) + W_x(x))))`, with `g` already at `x`'s resolution.
#[derive(Module, Debug)]
pub struct AttentionUNetGate {
    /// Projection of the gating signal (`W_g`).
    pub w_g: ConvNormAct,
    /// Projection of the skip features (`W_x`).
    pub w_x: ConvNormAct,
    /// Projection to one channel (`psi`, followed by the sigmoid).
    pub psi: ConvNormAct,
}

impl AttentionUNetGateConfig {
    /// Builds the gate with randomly initialised weights.
    pub fn init(&self, device: &Device) -> AttentionUNetGate {
        AttentionUNetGate {
            w_g: projection(self.gating_channels, self.inter_channels, device),
            w_x: projection(self.in_channels, self.inter_channels, device),
            psi: projection(self.inter_channels, 1, device),
        }
    }
}

impl AttentionUNetGate {
    /// `x: [N, C, H, W]`, `g: [N, C_g, H, W]` → the gated skip features `[N, C, H, W]`.
    pub fn forward(&self, x: Tensor<4>, g: Tensor<4>) -> Tensor<4> {
        let att = self.attention_map(x.clone(), g);
        x * att
    }

    /// The attention map `[N, 1, H, W]`.
    pub fn attention_map(&self, x: Tensor<4>, g: Tensor<4>) -> Tensor<4> {
        let f = relu(self.w_g.forward(g) + self.w_x.forward(x));
        sigmoid(self.psi.forward(f))
    }
}

/// The official names (Oktay's `W.0`/`W.1`, both gates' `W_g`, `W_x`, `psi` sequentials).
pub fn key_map() -> gaze_weights::KeyMap {
    gaze_weights::KeyMap::new(&[
        ("W.0", "w_conv"),
        ("W.1", "w_bn"),
        ("W_g.0", "w_g.conv"),
        ("W_g.1", "w_g.bn"),
        ("W_x.0", "w_x.conv"),
        ("W_x.1", "w_x.bn"),
        ("psi.0", "psi.conv"),
        ("psi.1", "psi.bn"),
    ])
}

/// A 1×1 convolution with bias followed by BatchNorm (an `nn.Sequential(conv, bn)`).
fn projection(cin: usize, cout: usize, device: &Device) -> ConvNormAct {
    ConvNormActConfig::new(cin, cout, 1)
        .with_bias(true)
        .init(device)
}
