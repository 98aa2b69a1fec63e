//! Multi-spectral channel attention from "FcaNet: Frequency Channel Attention Networks"
//! (Qin, Zhang, Wu, Li, ICCV 2021), following the official `model/layer.py` of
//! github.com/cfzd/FcaNet (`MultiSpectralAttentionLayer`, `MultiSpectralDCTLayer`,
//! `get_freq_indices`).
//!
//! SE's global average pooling is the lowest (DC) coefficient of the 2-D DCT. FcaNet splits the
//! channels into `n` equal groups and pools group `i` with its own DCT basis function of
//! frequency `(uᵢ, vᵢ)` (paper eqs. 6–8):
//!
//! `Freqᵢ = Σₕ Σ_w Xⁱ[h, w] · Bᵢ[h, w]`, with
//! `Bᵢ[h, w] = β(uᵢ, h, H) · β(vᵢ, w, W)`, `β(f, p, N) = cos(π f (p + ½) / N) / √N · (√2 if f > 0)`,
//!
//! `att = σ(fc₂(ReLU(fc₁([Freq₀, …, Freqₙ₋₁]))))`, `y = x ⊙ att`.
//!
//! Semantics reproduced from the official code:
//! * the frequency lists `top`, `low` and `bot` index a 7×7 frequency space; they are scaled by
//!   `dct_h / 7` and `dct_w / 7` (integer division), so `(1, 1)` at 7×7 is `(2, 2)` at 14×14,
//!   and every frequency becomes DC when the DCT size is below 7;
//! * an input whose spatial size differs from `(dct_h, dct_w)` is first adaptive-average-pooled
//!   to it (the official code does this for detection/segmentation inputs);
//! * the DCT filter `[C, dct_h, dct_w]` is a fixed buffer (official key `dct_layer.weight`).
//!   Here it is **computed at init** and is not a parameter: loaders must ignore
//!   `dct_layer.weight` ([`key_map`] does), and [`FcaAttention::dct_filter`]
//!   exposes it for checks;
//! * `fc` is `Linear(C, C/r, bias=False) → ReLU → Linear(C/r, C, bias=False) → Sigmoid`; the
//!   official keys `fc.0.weight` / `fc.2.weight` are our `fc1` / `fc2` (see [`key_map`]).

use crate::cpu_kernels::sigmoid;
use crate::linear::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;
use burn::tensor::module::adaptive_avg_pool2d;

/// Frequencies ranked best first ("top"), in zig-zag order ("low") and worst first ("bot"),
/// as `(u, v)` in the 7×7 DCT space; official `get_freq_indices`.
#[rustfmt::skip]
const TOP: [(usize, usize); 32] = [
    (0, 0), (0, 1), (6, 0), (0, 5), (0, 2), (1, 0), (1, 2), (4, 0),
    (5, 0), (1, 6), (3, 0), (0, 4), (0, 6), (0, 3), (3, 5), (2, 2),
    (4, 6), (6, 3), (3, 3), (5, 3), (5, 5), (2, 1), (6, 1), (5, 2),
    (5, 4), (3, 2), (3, 1), (4, 1), (2, 3), (2, 0), (6, 5), (1, 3),
];
#[rustfmt::skip]
const LOW: [(usize, usize); 32] = [
    (0, 0), (0, 1), (1, 0), (1, 1), (0, 2), (2, 0), (2, 1), (1, 2),
    (2, 2), (0, 3), (3, 0), (4, 0), (0, 4), (1, 3), (3, 1), (0, 5),
    (1, 4), (2, 3), (3, 2), (4, 1), (5, 0), (0, 6), (1, 5), (2, 4),
    (3, 3), (4, 2), (5, 1), (6, 0), (1, 6), (2, 5), (3, 4), (4, 3),
];
#[rustfmt::skip]
const BOT: [(usize, usize); 32] = [
    (6, 6), (1, 4), (3, 4), (3, 6), (2, 6), (4, 3), (1, 1), (2, 4),
    (4, 4), (4, 5), (5, 6), (1, 5), (4, 2), (6, 2), (2, 5), (5, 1),
    (6, 4), (1, 3), (6, 5), (2, 0), (2, 3), (4, 1), (3, 1), (3, 2),
    (5, 4), (5, 2), (6, 1), (2, 1), (5, 5), (5, 3), (3, 3), (6, 3),
];

/// Which list the frequencies are taken from (official `freq_sel_method` prefix).
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum FrequencySelection {
    /// `top{n}`: the `n` frequencies that scored best alone on ImageNet (the paper's choice).
    Top,
    /// `low{n}`: the `n` lowest frequencies in zig-zag order.
    Low,
    /// `bot{n}`: the `n` frequencies that scored worst alone.
    Bot,
}

impl FrequencySelection {
    /// Parses an official method name such as `"top16"` into the list and the count.
    pub fn parse(method: &str) -> Option<(Self, usize)> {
        let (kind, n) = method.split_at_checked(3)?;
        let kind = match kind {
            "top" => Self::Top,
            "low" => Self::Low,
            "bot" => Self::Bot,
            _ => return None,
        };
        let n: usize = n.parse().ok()?;
        (1..=32).contains(&n).then_some((kind, n))
    }

    /// The first `n` `(u, v)` pairs of the list, in the 7×7 frequency space.
    pub fn indices(self, n: usize) -> &'static [(usize, usize)] {
        let all = match self {
            Self::Top => &TOP,
            Self::Low => &LOW,
            Self::Bot => &BOT,
        };
        &all[..n]
    }
}

/// Configuration of [`FcaAttention`] (official `MultiSpectralAttentionLayer(channel, dct_h,
/// dct_w, reduction, freq_sel_method)`).
#[derive(Config, Debug)]
pub struct FcaConfig {
    /// Channels of the input and output; must be divisible by `num_freq`.
    pub channels: usize,
    /// Height of the DCT (and of the pooled map). Official FcaNet-ResNet uses 56, 28, 14, 7 for
    /// 64, 128, 256, 512 `planes`.
    #[config(default = 7)]
    pub dct_h: usize,
    /// Width of the DCT.
    #[config(default = 7)]
    pub dct_w: usize,
    /// The hidden size of the excitation MLP is `channels / reduction` (must be ≥ 1).
    #[config(default = 16)]
    pub reduction: usize,
    /// The frequency list.
    #[config(default = "FrequencySelection::Top")]
    pub freq_sel: FrequencySelection,
    /// How many frequencies (1..=32; the official names use 1, 2, 4, 8, 16, 32).
    #[config(default = 16)]
    pub num_freq: usize,
}

/// FcaNet multi-spectral channel attention. Parameters `fc1.weight`, `fc2.weight` (official
/// `fc.0.weight`, `fc.2.weight`); the DCT filter is a constant, not a parameter.
#[derive(Module, Debug)]
pub struct FcaAttention {
    /// `Linear(C, C/r)` without bias.
    pub fc1: Linear,
    /// `Linear(C/r, C)` without bias.
    pub fc2: Linear,
    /// The fixed DCT filter `[C, dct_h, dct_w]` (official buffer `dct_layer.weight`).
    dct_filter: Tensor<3>,
    dct_h: usize,
    dct_w: usize,
}

impl FcaConfig {
    /// Config from an official method name such as `"top16"`, `"low8"`, `"bot32"`.
    ///
    /// # Panics
    /// If the name is not `top`/`low`/`bot` followed by a count in 1..=32.
    pub fn with_method(self, method: &str) -> Self {
        let (kind, n) = FrequencySelection::parse(method)
            .unwrap_or_else(|| panic!("unknown FcaNet frequency selection method '{method}'"));
        self.with_freq_sel(kind).with_num_freq(n)
    }

    /// Builds the block with randomly initialised weights and the DCT filter computed.
    ///
    /// # Panics
    /// If `channels` is not divisible by `num_freq`, if `channels / reduction` is 0, or if
    /// `num_freq` is not in 1..=32.
    pub fn init(&self, device: &Device) -> FcaAttention {
        let hidden = self.channels / self.reduction;
        assert!(
            hidden >= 1,
            "FcaNet: channels / reduction must be at least 1"
        );
        FcaAttention {
            fc1: LinearConfig::new(self.channels, hidden)
                .with_bias(false)
                .init(device),
            fc2: LinearConfig::new(hidden, self.channels)
                .with_bias(false)
                .init(device),
            dct_filter: Tensor::from_data(
                TensorData::new(self.dct_filter(), [self.channels, self.dct_h, self.dct_w]),
                device,
            ),
            dct_h: self.dct_h,
            dct_w: self.dct_w,
        }
    }

    /// The DCT filter `[channels, dct_h, dct_w]`, row-major (official `get_dct_filter`):
    /// channel group `i` (of `channels / num_freq` channels) holds basis `(uᵢ·(dct_h/7),
    /// vᵢ·(dct_w/7))`. Computed in f64, rounded once to f32.
    pub fn dct_filter(&self) -> Vec<f32> {
        assert!(
            (1..=32).contains(&self.num_freq),
            "FcaNet: num_freq must be in 1..=32"
        );
        assert!(
            self.channels % self.num_freq == 0,
            "FcaNet: channels ({}) must be divisible by num_freq ({})",
            self.channels,
            self.num_freq
        );
        let (h, w) = (self.dct_h, self.dct_w);
        let part = self.channels / self.num_freq;
        let mut filter = Vec::with_capacity(self.channels * h * w);
        for &(u, v) in self.freq_sel.indices(self.num_freq) {
            let (u, v) = (u * (h / 7), v * (w / 7));
            let mut tile = Vec::with_capacity(h * w);
            for th in 0..h {
                for tw in 0..w {
                    tile.push((dct_basis(th, u, h) * dct_basis(tw, v, w)) as f32);
                }
            }
            for _ in 0..part {
                filter.extend_from_slice(&tile);
            }
        }
        filter
    }
}

/// Orthonormal DCT-II basis value (official `build_filter`).
fn dct_basis(pos: usize, freq: usize, size: usize) -> f64 {
    let v = (std::f64::consts::PI * freq as f64 * (pos as f64 + 0.5) / size as f64).cos()
        / (size as f64).sqrt();
    if freq == 0 {
        v
    } else {
        v * std::f64::consts::SQRT_2
    }
}

impl FcaAttention {
    /// `[N, C, H, W] → [N, C, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let att = self.attention(x.clone());
        x * att
    }

    /// The channel weights `σ(fc₂(ReLU(fc₁(DCT(x)))))` as `[N, C, 1, 1]`.
    pub fn attention(&self, x: Tensor<4>) -> Tensor<4> {
        let [n, c, h, w] = x.dims();
        let pooled = if h != self.dct_h || w != self.dct_w {
            adaptive_avg_pool2d(x, [self.dct_h, self.dct_w])
        } else {
            x
        };
        // Σ_{h,w} x · B  →  [N, C]
        let freq: Tensor<2> = (pooled * self.dct_filter.clone().unsqueeze::<4>())
            .sum_dim(3)
            .sum_dim(2)
            .reshape([n, c]);
        let att = sigmoid(self.fc2.forward(relu(self.fc1.forward(freq))));
        att.reshape([n, c, 1, 1])
    }

    /// The fixed DCT filter `[C, dct_h, dct_w]` (official buffer `dct_layer.weight`).
    pub fn dct_filter(&self) -> Tensor<3> {
        self.dct_filter.clone()
    }
}

/// The official names (`fc.0`, `fc.2`); the DCT filter buffer is recomputed, not loaded.
pub fn key_map() -> gaze_weights::KeyMap {
    gaze_weights::KeyMap::new(&[("fc.0", "fc1"), ("fc.2", "fc2")])
        .ignoring(&[r"(^|\.)dct_layer\.weight$"])
}
