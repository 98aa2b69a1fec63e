//! Efficient Channel Attention (ECA) from "ECA-Net: Efficient Channel Attention for Deep
//! Convolutional Neural Networks" (Wang et al., CVPR 2020), exactly timm's
//! `timm.layers.eca.EcaModule` (`create_attn('eca', channels)`, ECA-ResNet).
//!
//! SE's bottleneck MLP is replaced by a 1-D convolution across the pooled channel vector, so
//! each channel's gate depends on its `k` neighbours only (paper eq. 4 and 12):
//!
//! `y = x ⊙ σ(conv1d_k(GAP(x)))`, `k = ψ(C) = |log₂(C)/γ + b/γ|_odd`
//!
//! timm computes `t = int(|log₂ C + β| / γ)` and `k = max(t if t odd else t + 1, 3)` with
//! `γ = 2`, `β = 1`: `k = 3` below 128 channels, 5 from 128, 7 from 2048. The convolution has
//! no bias and zero padding `(k - 1) / 2`.

use burn::nn::conv::{Conv1d, Conv1dConfig};
use burn::nn::PaddingConfig1d;
use burn::prelude::*;

use crate::layers::Activation;

/// ECA's adaptive kernel size, timm's formula (`math.log(channels, 2)`, i.e. `ln C / ln 2`).
pub fn eca_kernel_size(channels: usize, gamma: f64, beta: f64) -> usize {
    let log2 = (channels as f64).ln() / 2f64.ln();
    let t = ((log2 + beta).abs() / gamma) as usize;
    let k = if t % 2 == 1 { t } else { t + 1 };
    k.max(3)
}

/// Configuration of [`EcaModule`] (the arguments of timm's `EcaModule`, same defaults).
#[derive(Config, Debug)]
pub struct EcaConfig {
    /// Channels of the input (and of the output); sets the adaptive kernel size.
    pub channels: usize,
    /// A fixed (odd) kernel size instead of the adaptive one (timm's `EcaModule(None, k)`).
    pub kernel_size: Option<usize>,
    /// `γ` of the kernel-size mapping.
    #[config(default = 2.0)]
    pub gamma: f64,
    /// `β` (the paper's `b`) of the kernel-size mapping.
    #[config(default = 1.0)]
    pub beta: f64,
    /// The gate.
    #[config(default = "Activation::Sigmoid")]
    pub gate_layer: Activation,
}

impl EcaConfig {
    /// The kernel size timm would use.
    pub fn resolved_kernel_size(&self) -> usize {
        self.kernel_size
            .unwrap_or_else(|| eca_kernel_size(self.channels, self.gamma, self.beta))
    }

    /// Builds the block with randomly initialised weights.
    pub fn init(&self, device: &Device) -> EcaModule {
        let k = self.resolved_kernel_size();
        assert!(k % 2 == 1, "ECA kernel size must be odd, got {k}");
        let pad = (k - 1) / 2;
        EcaModule {
            conv: Conv1dConfig::new(1, 1, k)
                .with_padding(PaddingConfig1d::Explicit(pad, pad))
                .with_bias(false)
                .init(device),
            gate: self.gate_layer,
        }
    }
}

/// Efficient channel attention. timm key: `conv.weight`, shape `[1, 1, k]`.
#[derive(Module, Debug)]
pub struct EcaModule {
    /// The 1-D convolution across channels (`nn.Conv1d(1, 1, k, bias=False)`).
    pub conv: Conv1d,
    /// Gate.
    #[module(skip)]
    pub gate: Activation,
}

impl EcaModule {
    /// `[N, C, H, W] → [N, C, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let gate = self.attention_map(x.clone());
        x * gate
    }

    /// The channel gate, `[N, C, 1, 1]`.
    pub fn attention_map(&self, x: Tensor<4>) -> Tensor<4> {
        let [n, c, h, w] = x.dims();
        let z = x.reshape([n, c, h * w]).mean_dim(2).reshape([n, 1, c]);
        self.gate.apply(self.conv.forward(z)).reshape([n, c, 1, 1])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_size_follows_timm() {
        // timm.layers.EcaModule(c).conv.kernel_size for these channel counts.
        for (c, k) in [
            (1, 3),
            (24, 3),
            (64, 3),
            (127, 3),
            (128, 5),
            (256, 5),
            (512, 5),
            (2047, 5),
            (2048, 7),
            (4096, 7),
        ] {
            assert_eq!(eca_kernel_size(c, 2.0, 1.0), k, "channels {c}");
        }
    }
}
