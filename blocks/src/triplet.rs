//! Triplet attention from "Rotate to Attend: Convolutional Triplet Attention Module"
//! (Misra, Nalamada, Arasanipalai, Hou, WACV 2021), following the official
//! github.com/landskape-ai/triplet-attention (`MODELS/triplet_attention.py`: `BasicConv`,
//! `ChannelPool`, `SpatialGate`, `TripletAttention`; the root `triplet_attention.py` is the same
//! maths with the gates renamed `cw`, `hc`, `hw` and `ZPool` / `AttentionGate`).
//!
//! Three branches capture the (C, W), (H, C) and (H, W) interactions. Each rotates the tensor
//! so that one axis takes the channel role, Z-pools that axis (max and mean, stacked into 2
//! channels), and turns the result into a gate with a 7×7 convolution (2 → 1, no bias),
//! BatchNorm (eps 1e-5, momentum 0.01, no ReLU: `relu=False`) and a sigmoid (paper eq. 1–3):
//!
//! `y = ⅓ (x̂₁ ⊙ σ(ψ₁(Z(x̂₁))))ʳ + ⅓ (x̂₂ ⊙ σ(ψ₂(Z(x̂₂))))ʳ + ⅓ x ⊙ σ(ψ₃(Z(x)))`
//!
//! where `x̂₁ = x.permute(0, 2, 1, 3)` (`[N, H, C, W]`: gate `ChannelGateH`, convolving the
//! (C, W) plane), `x̂₂ = x.permute(0, 3, 2, 1)` (`[N, W, H, C]`: gate `ChannelGateW`, the (H, C)
//! plane, in that order), `ʳ` rotates back, and `Z(t) = [maxₐₓᵢₛ₁ t, meanₐₓᵢₛ₁ t]`. With
//! `no_spatial` the third branch is dropped and the factor is ½.
//!
//! Official keys: `ChannelGateH.spatial.{conv.weight, bn.*}`, `ChannelGateW.…`,
//! `SpatialGate.…` (root version: `cw.conv.{conv,bn}`, `hc.…`, `hw.…`); Rust fields are
//! `channel_gate_h`, `channel_gate_w`, `spatial_gate`, each with `spatial.{conv, bn}`.
//! [`key_map`] maps both official namings.

use burn::prelude::*;

use crate::cpu_kernels::sigmoid;
use crate::layers::{ConvNormAct, ConvNormActConfig};

/// Configuration of [`TripletAttention`].
#[derive(Config, Debug)]
pub struct TripletAttentionConfig {
    /// Drop the (H, W) spatial branch and average the two rotated ones (official `no_spatial`).
    #[config(default = false)]
    pub no_spatial: bool,
    /// Kernel size of each gate's convolution (7 officially; odd).
    #[config(default = 7)]
    pub kernel_size: usize,
}

/// One branch's gate (official `SpatialGate` / `AttentionGate`): `x ⊙ σ(BN(conv(Z(x))))`,
/// Z-pooling over dimension 1 of whatever layout it is given.
#[derive(Module, Debug)]
pub struct ZPoolGate {
    /// Conv + BN (official `spatial`, or `conv` in the root version).
    pub spatial: ConvNormAct,
}

impl ZPoolGate {
    fn new(kernel_size: usize, device: &Device) -> Self {
        ZPoolGate {
            // Official `BasicConv(2, 1, k, padding=(k-1)/2, relu=False)`: BN eps 1e-5,
            // momentum 0.01.
            spatial: ConvNormActConfig::new(2, 1, kernel_size)
                .with_momentum(0.01)
                .init(device),
        }
    }

    /// The gate `σ(BN(conv([max₁ x, mean₁ x])))`, `[N, 1, A, B]` for an `[N, K, A, B]` input.
    pub fn gate(&self, x: Tensor<4>) -> Tensor<4> {
        let z = Tensor::cat(vec![x.clone().max_dim(1), x.mean_dim(1)], 1);
        sigmoid(self.spatial.forward(z))
    }

    /// `x ⊙ gate(x)`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let g = self.gate(x.clone());
        x * g
    }
}

/// Triplet attention. Parameters: per gate the 7×7 conv weight (98) and BN γ, β (2), plus BN
/// running statistics as buffers.
#[derive(Module, Debug)]
pub struct TripletAttention {
    /// The (C, W) branch: H is Z-pooled (official `ChannelGateH`, root `cw`).
    pub channel_gate_h: ZPoolGate,
    /// The (H, C) branch: W is Z-pooled (official `ChannelGateW`, root `hc`).
    pub channel_gate_w: ZPoolGate,
    /// The (H, W) branch: C is Z-pooled (official `SpatialGate`, root `hw`); `None` with
    /// `no_spatial`.
    pub spatial_gate: Option<ZPoolGate>,
}

impl TripletAttentionConfig {
    /// Builds the block with randomly initialised weights.
    pub fn init(&self, device: &Device) -> TripletAttention {
        assert!(
            self.kernel_size % 2 == 1,
            "triplet attention: kernel_size must be odd"
        );
        let k = self.kernel_size;
        TripletAttention {
            channel_gate_h: ZPoolGate::new(k, device),
            channel_gate_w: ZPoolGate::new(k, device),
            spatial_gate: (!self.no_spatial).then(|| ZPoolGate::new(k, device)),
        }
    }
}

impl TripletAttention {
    /// `[N, C, H, W] → [N, C, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        // Rotate, gate, rotate back (both permutations are their own inverse).
        let out_h = self
            .channel_gate_h
            .forward(x.clone().permute([0, 2, 1, 3]))
            .permute([0, 2, 1, 3]);
        let out_w = self
            .channel_gate_w
            .forward(x.clone().permute([0, 3, 2, 1]))
            .permute([0, 3, 2, 1]);
        match &self.spatial_gate {
            Some(gate) => (gate.forward(x) + out_h + out_w).mul_scalar(1.0 / 3.0),
            None => (out_h + out_w).mul_scalar(0.5),
        }
    }

    /// The three gates in the input's layout: `[N, C, 1, W]`, `[N, C, H, 1]` and (unless
    /// `no_spatial`) `[N, 1, H, W]`, for visualisation.
    pub fn gates(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<4>, Option<Tensor<4>>) {
        let g_h = self
            .channel_gate_h
            .gate(x.clone().permute([0, 2, 1, 3]))
            .permute([0, 2, 1, 3]);
        let g_w = self
            .channel_gate_w
            .gate(x.clone().permute([0, 3, 2, 1]))
            .permute([0, 3, 2, 1]);
        let g_s = self.spatial_gate.as_ref().map(|g| g.gate(x));
        (g_h, g_w, g_s)
    }
}

/// The official names (`ChannelGateH`, `ChannelGateW`, `SpatialGate`, each `.spatial`); the
/// `cw`/`hc`/`hw` naming of the other release is read too.
pub fn key_map() -> gaze_weights::KeyMap {
    gaze_weights::KeyMap::new(&[
        ("ChannelGateH", "channel_gate_h"),
        ("ChannelGateW", "channel_gate_w"),
        ("SpatialGate", "spatial_gate"),
    ])
    .with_aliases(&[
        ("cw.conv", "ChannelGateH.spatial"),
        ("hc.conv", "ChannelGateW.spatial"),
        ("hw.conv", "SpatialGate.spatial"),
    ])
}
