//! The hybrid attention block (HAB) and its channel-attention block (CAB) of HAT,
//! "Activating More Pixels in Image Super-Resolution Transformer" (Chen, Wang, Zhou, Qiao, Dong;
//! CVPR 2023), exactly the official `hat/archs/hat_arch.py` (github.com/XPixelGroup/HAT) `HAB`,
//! `CAB` and `ChannelAttention`, with the official parameter names (see [`key_map`]).
//!
//! **CAB** ([`Cab`], paper eq. 4's `CAB`): a narrow convolution pair then RCAN-style channel
//! attention,
//!
//! `CAB(x) = CA(W₂ ∗ GELU(W₁ ∗ x))`, `CA(y) = y ⊙ σ(W_U δ(W_D avgpool(y) + b_D) + b_U)`,
//!
//! with `W₁` a 3×3 convolution `C → C / compress_ratio`, `W₂` a 3×3 convolution back to `C`,
//! the exact (erf) GELU, and the gate's 1×1 convolutions `C → C / squeeze_factor → C` (δ: ReLU,
//! σ: sigmoid). HAT's `ChannelAttention` is RCAN's `CALayer`, so it is
//! [`RcanChannelAttention`] here (reduction = `squeeze_factor`).
//!
//! **HAB** ([`Hab`], paper eqs. 3–4) on a channels-last `[B, H, W, C]` map whose sides are
//! multiples of the window `M`:
//!
//! 1. `x̂ = LN₁(x)`;
//! 2. `x_C = CAB(x̂)` (on the whole map, NCHW inside);
//! 3. `x_A = (S)W-MSA(x̂)`: with a shift `s > 0`, the map is rolled by `(−s, −s)`, split into
//!    `M × M` windows, each attends within itself with the relative position bias and the
//!    shifted-window mask (`0` / `−100` between tokens of different regions, the mask of
//!    [`crate::window_attention::swin_attn_mask`]), merged and rolled back by `(s, s)` — the
//!    Swin [`WindowAttention`] with `N = M²` tokens per window;
//! 4. `x ← x + x_A + conv_scale · x_C` (`conv_scale` = α = 0.01 in HAT);
//! 5. `x ← x + MLP(LN₂(x))` (`fc1`, exact GELU, `fc2`; hidden `⌊C · mlp_ratio⌋`).
//!
//! The official block reads the relative position index (`rpi_sa`) and the mask from its model
//! (`HAT.relative_position_index_SA`, `HAT.calculate_mask(x_size)`); here the index is built with
//! the block ([`WindowAttention::relative_position_index`], the same values) and the network
//! passes the mask ([`Hab::attn_mask`]). The official `HAB` also shrinks the window to the
//! configured `input_resolution` when that is not larger than the window, which the official
//! network cannot run (its model-level index keeps the full window), so it is not modelled:
//! every HAT configuration has `img_size` 64 > `window_size`.
//!
//! Official keys (under `layers.{i}.residual_group.blocks.{j}.`): `norm1.*`,
//! `attn.relative_position_bias_table`, `attn.qkv.*`, `attn.proj.*`, `conv_block.cab.0.*`,
//! `conv_block.cab.2.*`, `conv_block.cab.3.attention.1.*`, `conv_block.cab.3.attention.3.*`,
//! `norm2.*`, `mlp.fc1.*`, `mlp.fc2.*`; [`key_map`] renames the `cab.*` Sequential indices.
//!
//! ```
//! use burn::prelude::*;
//! use gaze_blocks::hab::HabConfig;
//!
//! let device = Device::flex();
//! let hab = HabConfig::new(12, 2, 4)
//!     .with_shift_size(2)
//!     .with_squeeze_factor(2)
//!     .init(&device);
//! let x = Tensor::<4>::ones([1, 8, 12, 12], &device);
//! let mask = hab.attn_mask(8, 12, &device);
//! assert_eq!(hab.forward(x, mask).dims(), [1, 8, 12, 12]);
//! ```

use crate::conv::Conv2d;
use crate::cpu_kernels::gelu;
use crate::layer_norm::{LayerNorm, LayerNormConfig};
use burn::prelude::*;

use crate::layers::conv_same;
use crate::rcan_ca::{RcanChannelAttention, RcanChannelAttentionConfig};
use crate::vit_attention::{TokenMlp, TokenMlpConfig};
use crate::window_attention::{
    swin_attn_mask, window_partition, window_reverse, WindowAttention, WindowAttentionConfig,
};

/// The LayerNorm epsilon of HAT (`nn.LayerNorm`'s default).
pub const HAT_LN_EPS: f64 = 1e-5;

/// Configuration of [`Cab`] (the official `CAB(num_feat, compress_ratio, squeeze_factor)`).
#[derive(Config, Debug)]
pub struct CabConfig {
    /// Channels in and out (`num_feat`).
    pub num_feat: usize,
    /// The first convolution narrows to `num_feat / compress_ratio` channels.
    #[config(default = 3)]
    pub compress_ratio: usize,
    /// The channel gate's bottleneck is `num_feat / squeeze_factor` channels.
    #[config(default = 30)]
    pub squeeze_factor: usize,
}

/// HAT's channel-attention block: `CA(conv2(GELU(conv1(x))))` on NCHW. Official keys (inside
/// `conv_block`): `cab.0` → `conv1`, `cab.2` → `conv2`, `cab.3.attention.1` →
/// `ca.conv_down`, `cab.3.attention.3` → `ca.conv_up`.
#[derive(Module, Debug)]
pub struct Cab {
    /// 3×3 convolution `C → C / compress_ratio` with bias (official `cab.0`).
    pub conv1: Conv2d,
    /// 3×3 convolution `C / compress_ratio → C` with bias (official `cab.2`).
    pub conv2: Conv2d,
    /// The channel attention (official `cab.3`, HAT's `ChannelAttention`).
    pub ca: RcanChannelAttention,
}

impl CabConfig {
    /// Builds the block with random weights.
    pub fn init(&self, device: &Device) -> Cab {
        let c = self.num_feat;
        let narrow = c / self.compress_ratio;
        Cab {
            conv1: conv_same(c, narrow, 3, true, device),
            conv2: conv_same(narrow, c, 3, true, device),
            ca: RcanChannelAttentionConfig::new(c)
                .with_reduction(self.squeeze_factor)
                .init(device),
        }
    }
}

impl Cab {
    /// `[N, C, H, W] → [N, C, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.ca
            .forward(self.conv2.forward(gelu(self.conv1.forward(x))))
    }
}

/// Configuration of [`Hab`] (the arguments of the official `HAB`, same defaults).
#[derive(Config, Debug)]
pub struct HabConfig {
    /// Token width `C`.
    pub dim: usize,
    /// Number of heads.
    pub num_heads: usize,
    /// Window side `M`.
    pub window_size: usize,
    /// Cyclic shift `s` (0: W-MSA; HAT alternates 0 and `M / 2`).
    #[config(default = 0)]
    pub shift_size: usize,
    /// CAB narrowing factor.
    #[config(default = 3)]
    pub compress_ratio: usize,
    /// CAB channel-gate squeeze factor.
    #[config(default = 30)]
    pub squeeze_factor: usize,
    /// Weight α of the CAB branch.
    #[config(default = 0.01)]
    pub conv_scale: f64,
    /// MLP hidden width ratio: hidden = `⌊dim · mlp_ratio⌋`.
    #[config(default = 4.0)]
    pub mlp_ratio: f64,
    /// Whether `attn.qkv` has a bias.
    #[config(default = true)]
    pub qkv_bias: bool,
}

impl HabConfig {
    /// Builds the block with random weights.
    ///
    /// # Panics
    /// Unless `shift_size < window_size` (the official assertion).
    pub fn init(&self, device: &Device) -> Hab {
        assert!(
            self.shift_size < self.window_size,
            "shift_size must be in 0..window_size"
        );
        let norm = || {
            LayerNormConfig::new(self.dim)
                .with_epsilon(HAT_LN_EPS)
                .init(device)
        };
        Hab {
            norm1: norm(),
            attn: WindowAttentionConfig::new(self.dim, self.num_heads)
                .with_window_size([self.window_size; 2])
                .with_qkv_bias(self.qkv_bias)
                .init(device),
            conv_block: CabConfig::new(self.dim)
                .with_compress_ratio(self.compress_ratio)
                .with_squeeze_factor(self.squeeze_factor)
                .init(device),
            norm2: norm(),
            mlp: TokenMlpConfig::new(self.dim, (self.dim as f64 * self.mlp_ratio) as usize)
                .init(device),
            window_size: self.window_size,
            shift_size: self.shift_size,
            conv_scale: self.conv_scale,
        }
    }
}

/// The hybrid attention block on `[B, H, W, C]` (see the module docs).
#[derive(Module, Debug)]
pub struct Hab {
    /// LayerNorm before the attention and the CAB.
    pub norm1: LayerNorm,
    /// (Shifted) window self-attention with relative position bias.
    pub attn: WindowAttention,
    /// The channel-attention branch (official `conv_block`).
    pub conv_block: Cab,
    /// LayerNorm before the MLP.
    pub norm2: LayerNorm,
    /// The MLP.
    pub mlp: TokenMlp,
    /// Window side `M`.
    pub window_size: usize,
    /// Cyclic shift `s`.
    pub shift_size: usize,
    /// Weight α of the CAB branch.
    pub conv_scale: f64,
}

/// The shifted-window mask of the official `HAT.calculate_mask` for an `h × w` map (multiples
/// of `window`), `[nW, M², M²]`: `0` within a region, `−100` across regions.
pub fn hat_attn_mask(
    h: usize,
    w: usize,
    window: usize,
    shift: usize,
    device: &Device,
) -> Tensor<3> {
    let n = window * window;
    let values = swin_attn_mask(h, w, [window; 2], [shift; 2]);
    let nw = values.len() / (n * n);
    Tensor::from_data(TensorData::new(values, [nw, n, n]), device)
}

impl Hab {
    /// The mask this block needs for an `h × w` map (`None` without a shift); a network
    /// builds it once and passes it to every shifted block.
    pub fn attn_mask(&self, h: usize, w: usize, device: &Device) -> Option<Tensor<3>> {
        (self.shift_size > 0)
            .then(|| hat_attn_mask(h, w, self.window_size, self.shift_size, device))
    }

    /// `[B, H, W, C] → [B, H, W, C]`; `H`, `W` multiples of the window. `mask` (`[nW, M², M²]`,
    /// [`hat_attn_mask`]) is used by shifted blocks only, as in the official forward.
    ///
    /// # Panics
    /// If a shifted block gets no mask, or a side is not a multiple of the window.
    pub fn forward(&self, x: Tensor<4>, mask: Option<Tensor<3>>) -> Tensor<4> {
        let [b, h, w, c] = x.dims();
        let ws = self.window_size;
        assert!(
            h.is_multiple_of(ws) && w.is_multiple_of(ws),
            "HAB: {h}×{w} map is not a multiple of the window {ws}"
        );
        let xn = self.norm1.forward(x.clone());

        // Conv_X: the CAB on the normalised map.
        let conv_x = self
            .conv_block
            .forward(xn.clone().permute([0, 3, 1, 2]))
            .permute([0, 2, 3, 1]);

        // (S)W-MSA.
        let s = self.shift_size as i64;
        let shifted = if s > 0 {
            xn.roll(&[-s, -s], &[1usize, 2])
        } else {
            xn
        };
        let mask = if s > 0 {
            Some(mask.expect("a shifted HAB needs the attention mask"))
        } else {
            None
        };
        let nwin = b * (h / ws) * (w / ws);
        let windows = window_partition(shifted, [ws, ws]).reshape([nwin, ws * ws, c]);
        let attn = self.attn.forward(windows, mask).reshape([nwin, ws, ws, c]);
        let attn = window_reverse(attn, [ws, ws], h, w);
        let attn_x = if s > 0 {
            attn.roll(&[s, s], &[1usize, 2])
        } else {
            attn
        };

        let x = x + attn_x + conv_x.mul_scalar(self.conv_scale);
        x.clone() + self.mlp.forward(self.norm2.forward(x))
    }
}

/// The official names of a [`Hab`]'s CAB (`conv_block.cab.0`, `.cab.2`,
/// `.cab.3.attention.1`, `.cab.3.attention.3`); every other name is the official one already.
/// The attention's `relative_position_index` (built at init) is ignored.
pub fn key_map() -> gaze_weights::KeyMap {
    gaze_weights::KeyMap::new(&[
        ("conv_block.cab.0", "conv_block.conv1"),
        ("conv_block.cab.2", "conv_block.conv2"),
        ("conv_block.cab.3.attention.1", "conv_block.ca.conv_down"),
        ("conv_block.cab.3.attention.3", "conv_block.ca.conv_up"),
    ])
    .ignoring(&[r"(^|\.)relative_position_index$"])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_matches_the_official_calculate_mask() {
        // HAT.calculate_mask((8, 12)) with window 4, shift 2: zero entries per window.
        let device = Device::flex();
        let mask = hat_attn_mask(8, 12, 4, 2, &device);
        assert_eq!(mask.dims(), [6, 16, 16]);
        let values: Vec<f32> = mask.into_data().try_to_vec().unwrap();
        let zeros: Vec<usize> = values
            .chunks(256)
            .map(|w| w.iter().filter(|&&v| v == 0.0).count())
            .collect();
        assert_eq!(zeros, vec![256, 256, 128, 128, 128, 64]);
    }

    #[test]
    fn key_map_names_the_cab() {
        let m = key_map();
        assert_eq!(
            m.map("layers.0.residual_group.blocks.1.conv_block.cab.3.attention.1.weight"),
            "layers.0.residual_group.blocks.1.conv_block.ca.conv_down.weight"
        );
        assert_eq!(
            m.unmap("blocks.0.conv_block.conv2.bias"),
            "blocks.0.conv_block.cab.2.bias"
        );
    }
}
