//! Contrast-aware channel attention (CCA) of IMDN, "Lightweight Image Super-Resolution with
//! Information Multi-distillation Network" (Hui, Gao, Yang, Wang; ACM MM 2019), also used by
//! BSRN.
//!
//! RCAN's channel attention pools each channel by its mean; CCA pools it by its *contrast*, the
//! standard deviation plus the mean over the `H × W` positions (paper Sec. 3.2):
//!
//! `z_c = sqrt( (1/HW) Σᵢⱼ (x_c(i,j) − μ_c)² ) + μ_c`, with `μ_c = (1/HW) Σᵢⱼ x_c(i,j)`
//!
//! (the population standard deviation, divided by `HW`), then the same squeeze–excitation gate:
//!
//! `s = σ(W_U δ(W_D z + b_D) + b_U)`, `CCA(x) = s ⊙ x`
//!
//! with `W_D` a 1×1 convolution `C → C/r`, δ the ReLU, `W_U` a 1×1 convolution `C/r → C`, both
//! with bias, σ the sigmoid. Semantics and names follow the official `CCALayer`
//! (`model/block.py`, github.com/Zheng222/IMDN): the gate is the `nn.Sequential` `conv_du`,
//! whose keys `conv_du.0.*` / `conv_du.2.*` [`key_map`] maps onto `conv_down` / `conv_up`.

use crate::conv::Conv2d;
use burn::prelude::*;
use burn::tensor::activation::relu;

use crate::cpu_kernels::sigmoid;
use crate::layers::conv_same;

/// Configuration of [`CcaLayer`].
///
/// ```
/// use burn::prelude::*;
/// use gaze_blocks::cca::CcaLayerConfig;
///
/// let device = Device::flex();
/// let cca = CcaLayerConfig::new(32).init(&device); // bottleneck 32 / 16 = 2 channels
/// let x = Tensor::<4>::ones([1, 32, 5, 7], &device);
/// assert_eq!(cca.forward(x).dims(), [1, 32, 5, 7]);
/// ```
#[derive(Config, Debug)]
pub struct CcaLayerConfig {
    /// Channels of the input and output.
    pub channels: usize,
    /// The bottleneck has `channels / reduction` channels (16 in IMDN and BSRN).
    #[config(default = 16)]
    pub reduction: usize,
}

/// Contrast-aware channel attention (official `CCALayer`):
/// `x ⊙ σ(conv_up(relu(conv_down(std(x) + mean(x)))))`.
/// Official keys `conv_du.0.*` → `conv_down.*`, `conv_du.2.*` → `conv_up.*`.
#[derive(Module, Debug)]
pub struct CcaLayer {
    /// 1×1 convolution `C → C/r` with bias (official `conv_du.0`).
    pub conv_down: Conv2d,
    /// 1×1 convolution `C/r → C` with bias (official `conv_du.2`).
    pub conv_up: Conv2d,
}

impl CcaLayerConfig {
    /// Builds the block with randomly initialised weights.
    ///
    /// # Panics
    /// If `channels / reduction` is 0 (the bottleneck would have no channel).
    pub fn init(&self, device: &Device) -> CcaLayer {
        let hidden = self.channels / self.reduction;
        assert!(
            hidden > 0,
            "CCA on {} channels with reduction {} leaves no bottleneck channel",
            self.channels,
            self.reduction
        );
        CcaLayer {
            conv_down: conv_same(self.channels, hidden, 1, true, device),
            conv_up: conv_same(hidden, self.channels, 1, true, device),
        }
    }
}

/// The per-channel contrast `std(x) + mean(x)` over the spatial positions: `[N, C, H, W]` →
/// `[N, C, 1, 1]` (the official `stdv_channels(x) + avg_pool(x)`; population variance).
pub fn contrast(x: Tensor<4>) -> Tensor<4> {
    let mean = x.clone().mean_dim(3).mean_dim(2);
    let std = (x - mean.clone()).square().mean_dim(3).mean_dim(2).sqrt();
    std + mean
}

impl CcaLayer {
    /// `[N, C, H, W] → [N, C, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let gate = self.attention_map(x.clone());
        x * gate
    }

    /// The channel gate `σ(…) ∈ [N, C, 1, 1]` itself.
    pub fn attention_map(&self, x: Tensor<4>) -> Tensor<4> {
        sigmoid(
            self.conv_up
                .forward(relu(self.conv_down.forward(contrast(x)))),
        )
    }
}

/// The official names of [`CcaLayer`] (`conv_du.0`, `conv_du.2`), at any depth (so also
/// inside IMDN's `IMDB<k>.cca` and BSRN's blocks).
pub fn key_map() -> gaze_weights::KeyMap {
    gaze_weights::KeyMap::new(&[("conv_du.0", "conv_down"), ("conv_du.2", "conv_up")])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contrast_is_population_std_plus_mean() {
        let device = Device::flex();
        // One channel holding 1, 3 (mean 2, population std 1), one constant channel of 5.
        let x = Tensor::<4>::from_data(
            TensorData::new(vec![1.0f32, 3.0, 5.0, 5.0], [1, 2, 1, 2]),
            &device,
        );
        let z = contrast(x).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(z, vec![3.0, 5.0]);
        assert_eq!(
            key_map().map("IMDB1.cca.conv_du.2.weight"),
            "IMDB1.cca.conv_up.weight"
        );
    }
}
