//! The attention-in-attention block (AAB) of A2N: "Attention in Attention Network for Image
//! Super-Resolution" (Haoyu Chen, Jinjin Gu, Zhi Zhang; arXiv 2104.09497, 2021). Official code:
//! github.com/haoyuc/A2N, `code/model/aan.py` (`AAB`, `AttentionBranch`).
//!
//! The block has two parallel branches, an *attention* branch (pixel attention around 3×3
//! convolutions) and a *non-attention* branch (a plain convolution), and a second, "outer"
//! attention that decides per image how much each branch contributes: the paper's dynamic
//! attention module, the official code's `ADM` ("attention dropout module"). With `x` the block
//! input, `δ` LeakyReLU(0.2), `σ` the sigmoid and `⊙` the element-wise product, written as the
//! official code computes it:
//!
//! * input projection: `x₁ = δ(W_first ∗ x)` (1×1, no bias);
//! * ADM: `π = softmax(W₂ relu(W₁ GAP(x₁)) / t)` over the `K = 2` branches, with `t = 30` the
//!   softmax temperature (two bias-free Linear layers `C → C / r → 2`, `r = 4`);
//! * attention branch: `A(x₁) = k4 ∗ ((k3 ∗ x₁) ⊙ σ(k2 ∗ δ(k1 ∗ x₁)))` (3×3 `k1`, `k3`, `k4`
//!   without bias, 1×1 `k2` with bias);
//! * non-attention branch: `N(x₁) = W_na ∗ x₁` (3×3 in A2N, 1×1 in the lighter A2N-M; no bias);
//! * output: `y = x + W_last ∗ δ(π₀ · A(x₁) + π₁ · N(x₁))` (1×1, no bias).
//!
//! ```
//! use burn::prelude::*;
//! use gaze_blocks::aab::AabConfig;
//!
//! let device = Device::flex();
//! let block = AabConfig::new(16).init(&device);
//! let x = Tensor::<4>::ones([2, 16, 8, 8], &device);
//! assert_eq!(block.forward(x.clone()).dims(), [2, 16, 8, 8]);
//! // The ADM's weights of the attention and non-attention branches, one row per image.
//! assert_eq!(block.branch_weights(x).dims(), [2, 2]);
//! ```

use crate::conv::Conv2d;
use crate::linear::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{relu, softmax};

use crate::cpu_kernels::sigmoid;
use crate::layers::{conv_same, lrelu};

/// Number of branches the ADM weighs (the official `K`): attention and non-attention.
pub const AAB_BRANCHES: usize = 2;

/// Configuration of [`AttentionBranch`].
#[derive(Config, Debug)]
pub struct AttentionBranchConfig {
    /// Channels of the input (and of the output).
    pub channels: usize,
    /// Kernel size of `k1`, `k3` and `k4` (official `k_size`, 3).
    #[config(default = 3)]
    pub kernel_size: usize,
}

/// A2N's attention branch (official `AttentionBranch`): `k4 ∗ ((k3 ∗ x) ⊙ σ(k2 ∗ δ(k1 ∗ x)))`.
/// Unlike PAN's `PAConv` ([`crate::PixelAttentionConv`]), the gate is computed from a 3×3
/// convolution and a LeakyReLU before the 1×1 one. Keys: `k1.weight`, `k2.{weight,bias}`,
/// `k3.weight`, `k4.weight`.
#[derive(Module, Debug)]
pub struct AttentionBranch {
    /// Convolution feeding the gate (no bias).
    pub k1: Conv2d,
    /// 1×1 convolution producing the gate logits (with bias).
    pub k2: Conv2d,
    /// Convolution whose output is gated (no bias).
    pub k3: Conv2d,
    /// Convolution applied after the gate (no bias).
    pub k4: Conv2d,
}

impl AttentionBranchConfig {
    /// Builds the branch with randomly initialised weights.
    pub fn init(&self, device: &Device) -> AttentionBranch {
        let (c, k) = (self.channels, self.kernel_size);
        AttentionBranch {
            k1: conv_same(c, c, k, false, device),
            k2: conv_same(c, c, 1, true, device),
            k3: conv_same(c, c, k, false, device),
            k4: conv_same(c, c, k, false, device),
        }
    }
}

impl AttentionBranch {
    /// `[N, C, H, W] → [N, C, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let gate = self.attention_map(x.clone());
        self.k4.forward(self.k3.forward(x) * gate)
    }

    /// The pixel-attention gate `σ(k2 ∗ δ(k1 ∗ x))`, `[N, C, H, W]` in (0, 1).
    pub fn attention_map(&self, x: Tensor<4>) -> Tensor<4> {
        sigmoid(self.k2.forward(lrelu(self.k1.forward(x))))
    }
}

/// The dynamic attention module (official `ADM`, "attention dropout module", an `nn.Sequential(Linear, ReLU, Linear)`):
/// `W₂ relu(W₁ z)` on the pooled features `z`, both Linear layers without bias. Official keys
/// `ADM.0.weight` → `fc1.weight`, `ADM.2.weight` → `fc2.weight` (see [`key_map`]).
#[derive(Module, Debug)]
pub struct AttentionDropout {
    /// `C → C / reduction`.
    pub fc1: Linear,
    /// `C / reduction → K`.
    pub fc2: Linear,
}

impl AttentionDropout {
    /// Pooled features `[N, C]` → branch logits `[N, K]` (before the temperature softmax).
    pub fn forward(&self, z: Tensor<2>) -> Tensor<2> {
        self.fc2.forward(relu(self.fc1.forward(z)))
    }
}

/// Configuration of [`Aab`]; the defaults are A2N's.
#[derive(Config, Debug)]
pub struct AabConfig {
    /// Channels of the input and output (`nf`, 40 in A2N).
    pub channels: usize,
    /// The ADM's hidden width is `channels / reduction` (official `reduction`, 4).
    #[config(default = 4)]
    pub reduction: usize,
    /// Softmax temperature `t` of the branch weights (official `t`, 30).
    #[config(default = 30.0)]
    pub temperature: f64,
    /// Kernel of the non-attention branch: 3 in A2N, 1 in A2N-M (the official code's
    /// commented-out alternative).
    #[config(default = 3)]
    pub non_attention_kernel: usize,
}

/// The attention-in-attention block. Official keys: `conv_first.weight`, `conv_last.weight`,
/// `ADM.{0,2}.weight` (our `adm.fc1`, `adm.fc2`), `attention.k*`, `non_attention.weight`.
#[derive(Module, Debug)]
pub struct Aab {
    /// 1×1 input projection (no bias).
    pub conv_first: Conv2d,
    /// 1×1 output projection before the residual (no bias).
    pub conv_last: Conv2d,
    /// The dynamic attention module (official `ADM`).
    pub adm: AttentionDropout,
    /// The attention branch.
    pub attention: AttentionBranch,
    /// The non-attention branch (no bias).
    pub non_attention: Conv2d,
    /// Softmax temperature of the branch weights.
    pub temperature: f64,
}

impl AabConfig {
    /// Builds the block with randomly initialised weights.
    pub fn init(&self, device: &Device) -> Aab {
        let c = self.channels;
        let hidden = c / self.reduction;
        Aab {
            conv_first: conv_same(c, c, 1, false, device),
            conv_last: conv_same(c, c, 1, false, device),
            adm: AttentionDropout {
                fc1: LinearConfig::new(c, hidden).with_bias(false).init(device),
                fc2: LinearConfig::new(hidden, AAB_BRANCHES)
                    .with_bias(false)
                    .init(device),
            },
            attention: AttentionBranchConfig::new(c).init(device),
            non_attention: conv_same(c, c, self.non_attention_kernel, false, device),
            temperature: self.temperature,
        }
    }
}

impl Aab {
    /// `[N, C, H, W] → [N, C, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x1 = lrelu(self.conv_first.forward(x.clone()));
        let weights = self.weights_of(x1.clone());
        let [n, _] = weights.dims();
        let w_att = weights.clone().narrow(1, 0, 1).reshape([n, 1, 1, 1]);
        let w_non = weights.narrow(1, 1, 1).reshape([n, 1, 1, 1]);
        let mixed =
            self.attention.forward(x1.clone()) * w_att + self.non_attention.forward(x1) * w_non;
        self.conv_last.forward(lrelu(mixed)) + x
    }

    /// The ADM's branch weights `π` for the block input `x`: `[N, 2]`, column 0 the attention
    /// branch, column 1 the non-attention branch, rows summing to 1 (for visualisation).
    pub fn branch_weights(&self, x: Tensor<4>) -> Tensor<2> {
        self.weights_of(lrelu(self.conv_first.forward(x)))
    }

    /// `softmax(ADM(GAP(x₁)) / t)` of the projected features `x₁`.
    fn weights_of(&self, x1: Tensor<4>) -> Tensor<2> {
        let [n, c, h, w] = x1.dims();
        let pooled: Tensor<2> = x1.reshape([n, c, h * w]).mean_dim(2).reshape([n, c]);
        softmax(self.adm.forward(pooled).div_scalar(self.temperature), 1)
    }
}

/// The official names of [`Aab`]'s ADM (`ADM.0`, `ADM.2`), inside A2N's trunk too.
pub fn key_map() -> gaze_weights::KeyMap {
    gaze_weights::KeyMap::new(&KEY_RULES)
}

/// The rules of [`key_map`], for families that add their own.
pub const KEY_RULES: [(&str, &str); 2] = [("ADM.0", "adm.fc1"), ("ADM.2", "adm.fc2")];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_weights_sum_to_one_and_params_match_a2n() {
        let device = Device::flex();
        let block = AabConfig::new(40).init(&device);
        // PyTorch's count of the official AAB(nf=40).
        assert_eq!(block.num_params(), 62_860);
        let x = Tensor::<4>::random(
            [3, 40, 5, 7],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        assert_eq!(block.forward(x.clone()).dims(), [3, 40, 5, 7]);
        let sums = block
            .branch_weights(x)
            .sum_dim(1)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert!(sums.iter().all(|s| (s - 1.0).abs() < 1e-5), "{sums:?}");
    }
}
