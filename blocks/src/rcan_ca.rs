//! Channel attention and the residual channel attention block (RCAB) of RCAN,
//! "Image Super-Resolution Using Very Deep Residual Channel Attention Networks"
//! (Zhang et al., ECCV 2018).
//!
//! Channel attention (paper eqs. 5–6, official `CALayer`) rescales each channel by a gate
//! computed from its global average:
//!
//! `z = avgpool(x) ∈ ℝᶜ`, `s = σ(W_U δ(W_D z + b_D) + b_U)`, `CA(x) = s ⊙ x`
//!
//! with `W_D` a 1×1 convolution `C → C/r`, δ the ReLU and `W_U` a 1×1 convolution `C/r → C`,
//! both with bias. RCAB (paper eq. 7, official `RCAB`) wraps it in a residual block:
//!
//! `RCAB(x) = x + CA(W₂ ∗ δ(W₁ ∗ x))`
//!
//! Semantics and names follow the official `RCAN_TrainCode/code/model/rcan.py`
//! (github.com/yulunzhang/RCAN). Official keys: `conv_du.0.*` / `conv_du.2.*` for the CA layer
//! and `body.0.*`, `body.2.*`, `body.3.conv_du.{0,2}.*` for RCAB; [`rcab_key_map`]
//! maps them onto the fields here.

use crate::conv::Conv2d;
use burn::prelude::*;
use burn::tensor::activation::relu;

use crate::cpu_kernels::sigmoid;
use crate::layers::conv_same;

/// Configuration of [`RcanChannelAttention`].
#[derive(Config, Debug)]
pub struct RcanChannelAttentionConfig {
    /// Channels of the input and output.
    pub channels: usize,
    /// The bottleneck has `channels / reduction` channels (16 in RCAN).
    #[config(default = 16)]
    pub reduction: usize,
}

/// RCAN channel attention (official `CALayer`): `x ⊙ σ(conv_up(relu(conv_down(avgpool(x)))))`.
/// Official keys `conv_du.0.*` → `conv_down.*`, `conv_du.2.*` → `conv_up.*`.
#[derive(Module, Debug)]
pub struct RcanChannelAttention {
    /// 1×1 convolution `C → C/r` with bias (official `conv_du.0`).
    pub conv_down: Conv2d,
    /// 1×1 convolution `C/r → C` with bias (official `conv_du.2`).
    pub conv_up: Conv2d,
}

impl RcanChannelAttentionConfig {
    /// Builds the block with randomly initialised weights.
    pub fn init(&self, device: &Device) -> RcanChannelAttention {
        let hidden = self.channels / self.reduction;
        RcanChannelAttention {
            conv_down: conv_same(self.channels, hidden, 1, true, device),
            conv_up: conv_same(hidden, self.channels, 1, true, device),
        }
    }
}

impl RcanChannelAttention {
    /// `[N, C, H, W] → [N, C, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let gate = self.attention_map(x.clone());
        x * gate
    }

    /// The channel gate `σ(…) ∈ [N, C, 1, 1]` itself.
    pub fn attention_map(&self, x: Tensor<4>) -> Tensor<4> {
        let [n, c, _, _] = x.dims();
        let z = x.mean_dim(3).mean_dim(2);
        debug_assert_eq!(z.dims(), [n, c, 1, 1]);
        sigmoid(self.conv_up.forward(relu(self.conv_down.forward(z))))
    }
}

/// Configuration of [`Rcab`].
#[derive(Config, Debug)]
pub struct RcabConfig {
    /// Channels of the input and output (`n_feat`).
    pub channels: usize,
    /// Kernel size of the two body convolutions (3 in RCAN).
    #[config(default = 3)]
    pub kernel_size: usize,
    /// Channel-attention reduction (16 in RCAN).
    #[config(default = 16)]
    pub reduction: usize,
    /// Whether the body convolutions have a bias (true in RCAN).
    #[config(default = true)]
    pub bias: bool,
    /// Scale of the residual branch. The official RCAN passes `res_scale=1` and its forward
    /// ignores the argument (the multiplication is commented out); BasicSR's RCAB applies it.
    /// The default 1.0 reproduces both.
    #[config(default = 1.0)]
    pub res_scale: f64,
}

/// Residual channel attention block: `x + res_scale · CA(conv2(relu(conv1(x))))`.
/// Official keys `body.0.*` → `conv1.*`, `body.2.*` → `conv2.*`, `body.3.*` → `ca.*`.
/// (The official block's `bn=True` option, never used by RCAN, is not supported.)
#[derive(Module, Debug)]
pub struct Rcab {
    /// First body convolution (official `body.0`).
    pub conv1: Conv2d,
    /// Second body convolution (official `body.2`).
    pub conv2: Conv2d,
    /// Channel attention (official `body.3`).
    pub ca: RcanChannelAttention,
    /// Scale of the residual branch.
    pub res_scale: f64,
}

impl RcabConfig {
    /// Builds the block with randomly initialised weights.
    pub fn init(&self, device: &Device) -> Rcab {
        let (c, k) = (self.channels, self.kernel_size);
        Rcab {
            conv1: conv_same(c, c, k, self.bias, device),
            conv2: conv_same(c, c, k, self.bias, device),
            ca: RcanChannelAttentionConfig::new(c)
                .with_reduction(self.reduction)
                .init(device),
            res_scale: self.res_scale,
        }
    }
}

impl Rcab {
    /// `[N, C, H, W] → [N, C, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let res = self
            .ca
            .forward(self.conv2.forward(relu(self.conv1.forward(x.clone()))));
        if self.res_scale == 1.0 {
            res + x
        } else {
            res.mul_scalar(self.res_scale) + x
        }
    }
}

/// The official RCAN names of [`RcanChannelAttention`] (`conv_du.0`, `conv_du.2`), also
/// inside any network that plugs it in as an attention kind.
pub fn key_map() -> gaze_weights::KeyMap {
    gaze_weights::KeyMap::new(&[("conv_du.0", "conv_down"), ("conv_du.2", "conv_up")])
}

/// The official RCAN names of an [`Rcab`] (`body.0`, `body.2`, `body.3.conv_du.*`).
pub fn rcab_key_map() -> gaze_weights::KeyMap {
    key_map().then(gaze_weights::KeyMap::new(&[
        ("body.0.{p}$", "conv1.{p}$"),
        ("body.2.{p}$", "conv2.{p}$"),
        ("body.3.conv_down", "ca.conv_down"),
        ("body.3.conv_up", "ca.conv_up"),
    ]))
}
