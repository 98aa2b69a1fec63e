//! The two attention modules of HAN, "Single Image Super-Resolution via a Holistic Attention
//! Network" (Niu et al., ECCV 2020); semantics and names follow the official
//! `src/model/han.py` (github.com/wwlCape/HAN).
//!
//! **Layer attention** ([`LayerAttention`], official `LAM_Module`, paper eq. 4) attends over the
//! `N` intermediate feature groups stacked as `FG ∈ ℝ^{B×N×C×H×W}`. With each group flattened
//! to a row of `φ(FG) ∈ ℝ^{N×CHW}`:
//!
//! `E = φ φᵀ ∈ ℝ^{N×N}`, `A = softmax_row(max_row(E) − E)`,
//! `F_L = reshape_{B×NC×H×W}(γ · reshape(A φ) + FG)`
//!
//! The official code subtracts the energy from its row maximum before the softmax (the same
//! trick as DANet's channel attention), so the weights favour the *least* correlated groups.
//!
//! **Channel-spatial attention** ([`ChannelSpatialAttention`], official `CSAM_Module`, paper
//! eq. 5) treats the channels as a third spatial axis: a 3×3×3 convolution with one input and
//! one output channel (padding 1, bias) runs over `x` viewed as `[B, 1, C, H, W]`:
//!
//! `F_CS = x ⊙ (γ · σ(conv3d(x))) + x`
//!
//! In both modules `γ` is a learnable scalar initialised to 0 (official
//! `nn.Parameter(torch.zeros(1))`), so both start as the identity (LAM up to the reshape).
//! Keys: `gamma` (shape `[1]`), and for CSAM `conv.weight` (`[1, 1, 3, 3, 3]`) and `conv.bias`.

use crate::cpu_kernels::sigmoid;
use burn::module::Param;
use burn::nn::conv::{Conv3d, Conv3dConfig};
use burn::nn::PaddingConfig3d;
use burn::prelude::*;
use burn::tensor::activation::softmax;

/// Configuration of [`LayerAttention`].
#[derive(Config, Debug)]
pub struct LayerAttentionConfig {
    /// Channels `C` of each stacked feature group (official `in_dim`, `n_feats` in HAN); the
    /// module has no weights depending on it, it is only checked against the input.
    pub channels: usize,
}

/// HAN layer attention module (official `LAM_Module`): `[B, N, C, H, W] → [B, N·C, H, W]`.
/// Key: `gamma`.
#[derive(Module, Debug)]
pub struct LayerAttention {
    /// The learnable output scale `γ` (shape `[1]`, initialised to 0).
    pub gamma: Param<Tensor<1>>,
    /// Channels per feature group.
    pub channels: usize,
}

impl LayerAttentionConfig {
    /// Builds the module with `γ = 0`, as the official code does.
    pub fn init(&self, device: &Device) -> LayerAttention {
        LayerAttention {
            gamma: Param::from_tensor(Tensor::zeros([1], device)),
            channels: self.channels,
        }
    }
}

impl LayerAttention {
    /// `[B, N, C, H, W] → [B, N·C, H, W]`: the attended groups concatenated along channels
    /// (group-major, as the official `view(B, -1, H, W)`).
    pub fn forward(&self, x: Tensor<5>) -> Tensor<4> {
        let [b, n, c, h, w] = x.dims();
        assert_eq!(
            c, self.channels,
            "LayerAttention: expected {} channels per group",
            self.channels
        );
        let out = self
            .attention_map(x.clone())
            .matmul(x.clone().reshape([b, n, c * h * w]));
        let gamma = self.gamma.val().reshape([1, 1, 1, 1, 1]);
        (gamma * out.reshape([b, n, c, h, w]) + x).reshape([b, n * c, h, w])
    }

    /// The `[B, N, N]` layer-attention weights `softmax(max_row(E) − E)`.
    pub fn attention_map(&self, x: Tensor<5>) -> Tensor<3> {
        let [b, n, c, h, w] = x.dims();
        let q = x.reshape([b, n, c * h * w]);
        let energy = q.clone().matmul(q.swap_dims(1, 2));
        let row_max = energy.clone().max_dim(2);
        softmax(row_max.expand([b, n, n]) - energy, 2)
    }
}

/// Configuration of [`ChannelSpatialAttention`].
#[derive(Config, Debug)]
pub struct ChannelSpatialAttentionConfig {
    /// Channels of the input (official `in_dim`); the 3-D convolution's weights do not depend
    /// on it, it is only checked against the input.
    pub channels: usize,
}

/// HAN channel-spatial attention module (official `CSAM_Module`):
/// `x ⊙ (γ · σ(conv3d(x as [B, 1, C, H, W]))) + x`. Keys: `gamma`, `conv.weight`, `conv.bias`.
#[derive(Module, Debug)]
pub struct ChannelSpatialAttention {
    /// 3×3×3 convolution, 1 → 1 channel, padding 1, with bias.
    pub conv: Conv3d,
    /// The learnable scale `γ` (shape `[1]`, initialised to 0).
    pub gamma: Param<Tensor<1>>,
    /// Channels of the input.
    pub channels: usize,
}

impl ChannelSpatialAttentionConfig {
    /// Builds the module with a random convolution and `γ = 0`, as the official code does.
    pub fn init(&self, device: &Device) -> ChannelSpatialAttention {
        ChannelSpatialAttention {
            conv: Conv3dConfig::new([1, 1], [3, 3, 3])
                .with_padding(PaddingConfig3d::Explicit(1, 1, 1))
                .init(device),
            gamma: Param::from_tensor(Tensor::zeros([1], device)),
            channels: self.channels,
        }
    }
}

impl ChannelSpatialAttention {
    /// `[B, C, H, W] → [B, C, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let gamma = self.gamma.val().reshape([1, 1, 1, 1]);
        x.clone() * (gamma * self.attention_map(x.clone())) + x
    }

    /// The `[B, C, H, W]` gate `σ(conv3d(x))` before the `γ` scale.
    pub fn attention_map(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        assert_eq!(
            c, self.channels,
            "ChannelSpatialAttention: expected {} channels",
            self.channels
        );
        let volume: Tensor<5> = x.unsqueeze_dim(1);
        sigmoid(self.conv.forward(volume)).reshape([b, c, h, w])
    }
}
