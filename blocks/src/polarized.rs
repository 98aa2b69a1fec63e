//! Polarized self-attention (PSA) from "Polarized Self-Attention: Towards High-quality
//! Pixel-wise Regression" (Liu, Shao, Chen, Sheng, Dai, Li, 2021), following the **official
//! DeLightCMU code**, github.com/DeLightCMU/PSA `semantic-segmentation/network/PSA.py`
//! (`PSA_p`, `PSA_s`), not the paper's equations nor third-party ports.
//!
//! The paper (eqs. 1–5) defines, with `C/2` internal channels,
//!
//! * a channel-only branch `A^ch(X) = σ(W_z(W_v(X) × softmax_HW(W_q(X))))` (`C×1×1`),
//! * a spatial-only branch `A^sp(X) = σ(softmax_C(GAP(W_q(X))) × W_v(X))` (`1×H×W`),
//! * a parallel layout `X ⊙ A^ch + X ⊙ A^sp` and a sequential one `A^sp(Y) ⊙ Y`, `Y = X ⊙ A^ch`.
//!
//! The official code (whose released HRNet-OCR checkpoints use `PSA_s`) differs in details,
//! and we reproduce those:
//!
//! * channel-only branch (official method `spatial_pool`, convs `conv_q_right` `C → 1` and
//!   `conv_v_right` `C → C/2`, both 1×1 without bias): `ctx = V · softmax_HW(q)ᵀ`
//!   (`[N, C/2, 1, 1]`), then `conv_up`, then `σ`, then `x ⊙ ·`. In **PSA-p** `conv_up` is a
//!   single bias-free 1×1 conv `C/2 → C` and there is **no LayerNorm**; in **PSA-s** it is
//!   `conv(C/2 → C/8, bias) → LayerNorm([C/8, 1, 1]) → ReLU → conv(C/8 → C, bias)`
//!   (official `conv_up.0`, `.1`, `.3`; our `conv_up_seq.{reduce, norm, expand}`);
//! * spatial-only branch (official method `channel_pool`, convs `conv_q_left` and `conv_v_left`,
//!   both `C → C/2`, 1×1 without bias): `g = GAP(conv_q_left(x))` (`[N, 1, C/2]`, **no softmax
//!   over channels**), `θ = conv_v_left(x)` (`[N, C/2, HW]`). **PSA-p**: map
//!   `σ(softmax_HW(g θ))`; **PSA-s**: map `σ(g softmax_HW(θ))` (the softmax is over the spatial
//!   positions of each channel, before the product). Then `x ⊙ map`;
//! * **PSA-p** returns `channel_pool(x) + spatial_pool(x)`; **PSA-s** returns
//!   `channel_pool(spatial_pool(x))`, i.e. the spatial branch applied to the channel branch's
//!   output.
//!
//! The official constructor `PSA_x(inplanes, planes, kernel_size=1, stride=1)` only works with
//! `inplanes == planes` and stride 1 (the gates multiply the input), which is how it is used, so
//! [`PolarizedConfig`] has one `channels`. PSA-s needs `channels ≥ 8` (`C/8 ≥ 1`).
//! Official keys load one-to-one except the PSA-s `conv_up.{0,1,3}` ([`key_map`]).

use crate::conv::{Conv2d, Conv2dConfig};
use burn::module::Param;
use burn::nn::Initializer;
use burn::prelude::*;
use burn::tensor::activation::{relu, softmax};

use crate::cpu_kernels::sigmoid;
use crate::layers::conv_same;

/// How the two branches are composed.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum PolarizedMode {
    /// Official `PSA_p`: `x ⊙ A^ch(x) + x ⊙ A^sp(x)`.
    Parallel,
    /// Official `PSA_s`: `y ⊙ A^sp(y)` with `y = x ⊙ A^ch(x)`.
    Sequential,
}

/// Configuration of [`PolarizedSelfAttention`]: official `PSA_p(channels, channels)` or
/// `PSA_s(channels, channels)`.
#[derive(Config, Debug)]
pub struct PolarizedConfig {
    /// Channels of the input and output (`inplanes == planes`); even, and ≥ 8 for PSA-s.
    pub channels: usize,
    /// Parallel (`PSA_p`) or sequential (`PSA_s`).
    #[config(default = "PolarizedMode::Parallel")]
    pub mode: PolarizedMode,
}

/// PyTorch's `nn.LayerNorm([C, 1, 1])` on a `[N, C, 1, 1]` context: normalises over all of
/// `C·1·1`, with element-wise affine parameters of shape `[C, 1, 1]` (official `conv_up.1`).
#[derive(Module, Debug)]
pub struct ContextLayerNorm {
    /// Scale, `[C, 1, 1]`.
    pub weight: Param<Tensor<3>>,
    /// Shift, `[C, 1, 1]`.
    pub bias: Param<Tensor<3>>,
    epsilon: f64,
}

impl ContextLayerNorm {
    fn new(channels: usize, device: &Device) -> Self {
        ContextLayerNorm {
            weight: Param::from_tensor(Tensor::ones([channels, 1, 1], device)),
            bias: Param::from_tensor(Tensor::zeros([channels, 1, 1], device)),
            epsilon: 1e-5,
        }
    }

    /// `[N, C, H, W] → [N, C, H, W]` normalised over `(C, H, W)` (biased variance).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [n, c, h, w] = x.dims();
        let flat: Tensor<2> = x.reshape([n, c * h * w]);
        let (var, mean) = flat.clone().var_mean_bias(1);
        let normed = (flat - mean) / (var + self.epsilon).sqrt();
        normed.reshape([n, c, h, w]) * self.weight.val().unsqueeze::<4>()
            + self.bias.val().unsqueeze::<4>()
    }
}

/// PSA-s's `conv_up`: `conv(C/2 → C/8, bias) → LayerNorm([C/8,1,1]) → ReLU → conv(C/8 → C, bias)`
/// (official `conv_up.0`, `conv_up.1`, `conv_up.3`).
#[derive(Module, Debug)]
pub struct ConvUpBottleneck {
    /// Official `conv_up.0`.
    pub reduce: Conv2d,
    /// Official `conv_up.1`.
    pub norm: ContextLayerNorm,
    /// Official `conv_up.3`.
    pub expand: Conv2d,
}

impl ConvUpBottleneck {
    /// `[N, C/2, 1, 1] → [N, C, 1, 1]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.expand
            .forward(relu(self.norm.forward(self.reduce.forward(x))))
    }
}

/// Polarized self-attention, official DeLightCMU semantics (module docs). Keys:
/// `conv_q_right`, `conv_v_right`, `conv_q_left`, `conv_v_left` (all `.weight`), and
/// `conv_up.weight` (PSA-p) or `conv_up_seq.{reduce,norm,expand}.*` (PSA-s, official
/// `conv_up.{0,1,3}.*`).
#[derive(Module, Debug)]
pub struct PolarizedSelfAttention {
    /// Channel-only branch query `W_q`, 1×1 `C → 1`, no bias.
    pub conv_q_right: Conv2d,
    /// Channel-only branch value `W_v`, 1×1 `C → C/2`, no bias.
    pub conv_v_right: Conv2d,
    /// PSA-p's `W_z`: 1×1 `C/2 → C`, no bias (`None` in PSA-s).
    pub conv_up: Option<Conv2d>,
    /// PSA-s's `W_z` bottleneck with LayerNorm (`None` in PSA-p).
    pub conv_up_seq: Option<ConvUpBottleneck>,
    /// Spatial-only branch query (pooled), 1×1 `C → C/2`, no bias.
    pub conv_q_left: Conv2d,
    /// Spatial-only branch value, 1×1 `C → C/2`, no bias.
    pub conv_v_left: Conv2d,
    #[module(skip)]
    mode: PolarizedMode,
}

impl PolarizedConfig {
    /// Builds the block. The four query/value convolutions use the official Kaiming-normal
    /// (fan-in, ReLU gain) initialisation; `conv_up` uses Burn's default.
    ///
    /// # Panics
    /// If `channels` is odd, or below 8 in sequential mode.
    pub fn init(&self, device: &Device) -> PolarizedSelfAttention {
        let c = self.channels;
        assert!(
            c % 2 == 0,
            "polarized self-attention: channels must be even"
        );
        let inter = c / 2;
        let kaiming = |cin: usize, cout: usize| {
            Conv2dConfig::new([cin, cout], [1, 1])
                .with_bias(false)
                .with_initializer(Initializer::KaimingNormal {
                    gain: std::f64::consts::SQRT_2,
                    fan_out_only: false,
                })
                .init(device)
        };
        let (conv_up, conv_up_seq) = match self.mode {
            PolarizedMode::Parallel => (Some(conv_same(inter, c, 1, false, device)), None),
            PolarizedMode::Sequential => {
                let bottleneck = inter / 4;
                assert!(
                    bottleneck >= 1,
                    "polarized self-attention (sequential): channels must be at least 8"
                );
                let up = ConvUpBottleneck {
                    reduce: conv_same(inter, bottleneck, 1, true, device),
                    norm: ContextLayerNorm::new(bottleneck, device),
                    expand: conv_same(bottleneck, c, 1, true, device),
                };
                (None, Some(up))
            }
        };
        PolarizedSelfAttention {
            conv_q_right: kaiming(c, 1),
            conv_v_right: kaiming(c, inter),
            conv_up,
            conv_up_seq,
            conv_q_left: kaiming(c, inter),
            conv_v_left: kaiming(c, inter),
            mode: self.mode,
        }
    }
}

impl PolarizedSelfAttention {
    /// `[N, C, H, W] → [N, C, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self.mode {
            PolarizedMode::Parallel => {
                let sp = self.spatial_only(x.clone());
                sp + self.channel_only(x)
            }
            PolarizedMode::Sequential => self.spatial_only(self.channel_only(x)),
        }
    }

    /// The composition mode.
    pub fn mode(&self) -> PolarizedMode {
        self.mode
    }

    /// Channel-only branch `x ⊙ A^ch(x)` (official `spatial_pool`).
    pub fn channel_only(&self, x: Tensor<4>) -> Tensor<4> {
        let att = self.channel_attention(x.clone());
        x * att
    }

    /// The channel weights `A^ch(x)`, `[N, C, 1, 1]`.
    pub fn channel_attention(&self, x: Tensor<4>) -> Tensor<4> {
        let [n, _, h, w] = x.dims();
        let v = self.conv_v_right.forward(x.clone());
        let inter = v.dims()[1];
        let v: Tensor<3> = v.reshape([n, inter, h * w]);
        // softmax over the H·W positions of the single query map
        let q: Tensor<3> = softmax(self.conv_q_right.forward(x).reshape([n, 1, h * w]), 2);
        let context: Tensor<4> = v.matmul(q.swap_dims(1, 2)).reshape([n, inter, 1, 1]);
        let up = match (&self.conv_up, &self.conv_up_seq) {
            (Some(conv), _) => conv.forward(context),
            (None, Some(bottleneck)) => bottleneck.forward(context),
            (None, None) => unreachable!("PSA has one conv_up"),
        };
        sigmoid(up)
    }

    /// Spatial-only branch `x ⊙ A^sp(x)` (official `channel_pool`).
    pub fn spatial_only(&self, x: Tensor<4>) -> Tensor<4> {
        let att = self.spatial_attention(x.clone());
        x * att
    }

    /// The spatial map `A^sp(x)`, `[N, 1, H, W]`.
    pub fn spatial_attention(&self, x: Tensor<4>) -> Tensor<4> {
        let [n, _, h, w] = x.dims();
        let g = self.conv_q_left.forward(x.clone());
        let inter = g.dims()[1];
        // global average pool → [N, 1, C/2]
        let g: Tensor<3> = g.reshape([n, inter, h * w]).mean_dim(2).swap_dims(1, 2);
        let theta: Tensor<3> = self.conv_v_left.forward(x).reshape([n, inter, h * w]);
        let context = match self.mode {
            PolarizedMode::Parallel => softmax(g.matmul(theta), 2),
            PolarizedMode::Sequential => g.matmul(softmax(theta, 2)),
        };
        sigmoid(context.reshape([n, 1, h, w]))
    }
}

/// The official names of PSA-s's `conv_up` sequential.
pub fn key_map() -> gaze_weights::KeyMap {
    gaze_weights::KeyMap::new(&[
        ("conv_up.0", "conv_up_seq.reduce"),
        ("conv_up.1", "conv_up_seq.norm"),
        ("conv_up.3", "conv_up_seq.expand"),
    ])
}
