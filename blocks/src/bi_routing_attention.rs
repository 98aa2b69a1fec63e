//! Bi-level routing attention (BRA) from "BiFormer: Vision Transformer with Bi-Level Routing
//! Attention" (Zhu, Wang, Ke, Zhang, Lau, CVPR 2023), following the official
//! github.com/rayleizhu/BiFormer `ops/bra_legacy.py` (`TopkRouting`, `KVGather`, `QKVLinear`,
//! `BiLevelRoutingAttention`), the class that `models/biformer.py`'s `Block` instantiates.
//!
//! The `[B, H, W, C]` map is cut into `n_win × n_win` regions (windows of `H/n × W/n` tokens):
//!
//! 1. one Linear gives `q` (`qk_dim`), `k` (`qk_dim`) and `v` (`C`) per token;
//! 2. **region-level routing**: the region means `q̄ᵣ`, `k̄ᵣ` (over the full-resolution tokens)
//!    give the affinity `A = (q̄ · scale) k̄ᵀ` (`n² × n²`); each region keeps its `topk` most
//!    affine regions (`r_idx`) and, with `soft_routing`, the softmax of their logits as weights;
//! 3. **token-level attention**: every query of region `r` attends, per head, to all key/value
//!    tokens of its `topk` routed regions (keys and values optionally pooled per region by
//!    `kv_downsample_mode`, and multiplied by the routing weight with `soft_routing`);
//! 4. the local context enhancement `lepe`, a depthwise `side_dwconv × side_dwconv` convolution
//!    of `v` over the whole map, is added, then the output Linear `wo`.
//!
//! Semantics reproduced from the official code:
//! * **the scale is `qk_dim^-0.5` for the routing *and* for the per-head attention** (not the
//!   head dimension), unless `qk_scale` is given;
//! * the routing is not differentiable (`detach`) unless `diff_routing`; `param_routing` adds a
//!   Linear `router.emb` on both region means (only allowed with `diff_routing`); `diff_routing`
//!   without `soft_routing` is "hard differentiable routing", which the official code leaves
//!   unimplemented (`NotImplementedError`), so the config rejects it;
//! * `kv_downsample_mode` `identity` (BiFormer-T/S/B), `ada_avgpool` / `ada_maxpool` (adaptive
//!   pooling of every window to `kv_per_win × kv_per_win`; the BiFormer class default),
//!   `avgpool` / `maxpool` (kernel = stride = `kv_downsample_ratio`, identity when 1); routing
//!   means always use the unpooled tokens, `lepe` the unpooled `v`;
//! * `auto_pad` zero-pads the right/bottom up to multiples of `n_win` **before** `qkv` (padded
//!   tokens then carry the qkv bias, enter the region means, the attention as keys and `lepe`)
//!   and crops the output; without it the map must be divisible by `n_win`;
//! * `param_attention`: `qkvo` has the output Linear `wo`, `qkv` has none.
//!
//! Official keys: `qkv.qkv.{weight,bias}` (Linear `C → 2·qk_dim + C`, channels `q | k | v`),
//! `wo.{weight,bias}`, `lepe.{weight,bias}` (`[C, 1, s, s]`), and with `param_routing`
//! `router.emb.{weight,bias}`. They load as they are (`KeyMap::identity()`; in BiFormer
//! checkpoints they sit under `stages.{i}.{j}.attn.`).

use crate::conv::{Conv2d, Conv2dConfig};
use crate::cpu_kernels::{avg_pool2d, max_pool2d};
use crate::linear::{Linear, LinearConfig};
use burn::nn::PaddingConfig2d;
use burn::prelude::*;
use burn::tensor::activation::softmax;
use burn::tensor::module::adaptive_avg_pool2d;
use burn::tensor::ops::{AvgPoolOptions, MaxPoolOptions, PadMode};

use crate::layers::{window_partition, window_reverse};

/// How the keys/values of each region are reduced (official `kv_downsample_mode`).
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum KvDownsampleMode {
    /// `identity`: every token of a routed region is a key (BiFormer-T/S/B).
    Identity,
    /// `ada_avgpool`: adaptive average pooling of each window to `kv_per_win²` tokens.
    AdaAvgPool,
    /// `ada_maxpool`: adaptive max pooling of each window to `kv_per_win²` tokens.
    AdaMaxPool,
    /// `avgpool`: average pooling, kernel = stride = `kv_downsample_ratio`.
    AvgPool,
    /// `maxpool`: max pooling, kernel = stride = `kv_downsample_ratio`.
    MaxPool,
}

/// Official `param_attention`.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum ParamAttention {
    /// `qkvo`: `qkv` and the output Linear `wo`.
    Qkvo,
    /// `qkv`: no output Linear.
    Qkv,
}

/// Configuration of [`BiLevelRoutingAttention`]; defaults are those of the official class
/// (`models/biformer.py`'s `biformer_tiny` passes `n_win = 7`, `topk` 1/4/16 per stage,
/// `qk_dim = dim`, `side_dwconv = 5`, `kv_downsample_mode = identity`, heads = dim / 32).
#[derive(Config, Debug)]
pub struct BiLevelRoutingAttentionConfig {
    /// Channels `C` of the input, the values and the output.
    pub dim: usize,
    /// Number of heads; divides `dim` and `qk_dim`.
    #[config(default = 8)]
    pub num_heads: usize,
    /// Regions per side.
    #[config(default = 7)]
    pub n_win: usize,
    /// Channels of queries and keys (`dim` when `None`).
    #[config(default = "None")]
    pub qk_dim: Option<usize>,
    /// Overrides `qk_dim^-0.5`.
    #[config(default = "None")]
    pub qk_scale: Option<f64>,
    /// Output side of the adaptive pooling modes.
    #[config(default = 4)]
    pub kv_per_win: usize,
    /// Kernel and stride of the `avgpool` / `maxpool` modes.
    #[config(default = 4)]
    pub kv_downsample_ratio: usize,
    /// Key/value reduction per region.
    #[config(default = "KvDownsampleMode::Identity")]
    pub kv_downsample_mode: KvDownsampleMode,
    /// Routed regions per region.
    #[config(default = 4)]
    pub topk: usize,
    /// With or without the output Linear `wo`.
    #[config(default = "ParamAttention::Qkvo")]
    pub param_attention: ParamAttention,
    /// Linear `router.emb` on the region means (requires `diff_routing`).
    #[config(default = false)]
    pub param_routing: bool,
    /// Differentiable routing (requires `soft_routing`, as officially).
    #[config(default = false)]
    pub diff_routing: bool,
    /// Multiply the routed keys/values by the softmax of their routing logits.
    #[config(default = false)]
    pub soft_routing: bool,
    /// Kernel of the depthwise `lepe` convolution; 0 disables it.
    #[config(default = 3)]
    pub side_dwconv: usize,
    /// Zero-pad maps not divisible by `n_win` (and crop the output).
    #[config(default = false)]
    pub auto_pad: bool,
}

/// Official `QKVLinear`: one Linear `C → qk_dim + qk_dim + C`.
#[derive(Module, Debug)]
pub struct QkvLinear {
    /// The projection (official `qkv.qkv`).
    pub qkv: Linear,
}

/// Official `TopkRouting`: `topk` of `(emb(q̄) · scale) emb(k̄)ᵀ` and the softmax of those
/// logits.
#[derive(Module, Debug)]
pub struct TopkRouting {
    /// `Linear(qk_dim, qk_dim)` with `param_routing`, identity otherwise.
    pub emb: Option<Linear>,
    topk: usize,
    scale: f64,
}

impl TopkRouting {
    /// `[B, R, qk]` region queries and keys → routing weights `[B, R, topk]` (softmax over the
    /// kept logits) and region indices `[B, R, topk]`, most affine first.
    pub fn forward(&self, query: Tensor<3>, key: Tensor<3>) -> (Tensor<3>, Tensor<3, Int>) {
        let (query, key) = match &self.emb {
            Some(emb) => (emb.forward(query), emb.forward(key)),
            None => (query, key),
        };
        let logits = query.mul_scalar(self.scale).matmul(key.swap_dims(1, 2));
        let (top, index) = logits.topk_with_indices(self.topk, 2);
        (softmax(top, 2), index)
    }
}

/// BiFormer's bi-level routing attention. Parameters `qkv.qkv`, `wo`, `lepe`, `router.emb`
/// (the last three optional).
#[derive(Module, Debug)]
pub struct BiLevelRoutingAttention {
    /// q/k/v projection.
    pub qkv: QkvLinear,
    /// Output Linear (`param_attention = qkvo`).
    pub wo: Option<Linear>,
    /// Depthwise convolution of `v` (local context enhancement), "same" padding, with bias.
    pub lepe: Option<Conv2d>,
    /// Region router.
    pub router: TopkRouting,
    dim: usize,
    qk_dim: usize,
    num_heads: usize,
    n_win: usize,
    topk: usize,
    scale: f64,
    #[module(skip)]
    kv_downsample_mode: KvDownsampleMode,
    kv_per_win: usize,
    kv_downsample_ratio: usize,
    soft_routing: bool,
    auto_pad: bool,
}

impl BiLevelRoutingAttentionConfig {
    /// Builds the block with randomly initialised weights.
    ///
    /// # Panics
    /// If `dim` or `qk_dim` is not divisible by `num_heads`, `topk` is 0 or above `n_win²`,
    /// `param_routing` is set without `diff_routing`, `diff_routing` without `soft_routing`,
    /// `side_dwconv` is even, or a pooling size is 0.
    pub fn init(&self, device: &Device) -> BiLevelRoutingAttention {
        let qk_dim = self.qk_dim.unwrap_or(self.dim);
        assert!(
            self.num_heads > 0 && self.dim % self.num_heads == 0 && qk_dim % self.num_heads == 0,
            "BRA: qk_dim ({qk_dim}) and dim ({}) must be divisible by num_heads ({})",
            self.dim,
            self.num_heads
        );
        assert!(
            self.topk >= 1 && self.topk <= self.n_win * self.n_win,
            "BRA: topk ({}) must be in 1..=n_win² ({})",
            self.topk,
            self.n_win * self.n_win
        );
        assert!(
            !(self.param_routing && !self.diff_routing),
            "BRA: param_routing requires diff_routing"
        );
        assert!(
            !(self.diff_routing && !self.soft_routing),
            "BRA: hard differentiable routing (diff_routing without soft_routing) is not \
             implemented officially"
        );
        assert!(
            self.side_dwconv == 0 || self.side_dwconv % 2 == 1,
            "BRA: side_dwconv must be odd (or 0)"
        );
        match self.kv_downsample_mode {
            KvDownsampleMode::AdaAvgPool | KvDownsampleMode::AdaMaxPool => {
                assert!(self.kv_per_win >= 1, "BRA: kv_per_win must be >= 1")
            }
            KvDownsampleMode::AvgPool | KvDownsampleMode::MaxPool => assert!(
                self.kv_downsample_ratio >= 1,
                "BRA: kv_downsample_ratio must be >= 1"
            ),
            KvDownsampleMode::Identity => {}
        }
        let scale = self.qk_scale.unwrap_or((qk_dim as f64).powf(-0.5));
        let s = self.side_dwconv;
        BiLevelRoutingAttention {
            qkv: QkvLinear {
                qkv: LinearConfig::new(self.dim, 2 * qk_dim + self.dim).init(device),
            },
            wo: (self.param_attention == ParamAttention::Qkvo)
                .then(|| LinearConfig::new(self.dim, self.dim).init(device)),
            lepe: (s > 0).then(|| {
                Conv2dConfig::new([self.dim, self.dim], [s, s])
                    .with_groups(self.dim)
                    .with_padding(PaddingConfig2d::Explicit(s / 2, s / 2, s / 2, s / 2))
                    .init(device)
            }),
            router: TopkRouting {
                emb: self
                    .param_routing
                    .then(|| LinearConfig::new(qk_dim, qk_dim).init(device)),
                topk: self.topk,
                scale,
            },
            dim: self.dim,
            qk_dim,
            num_heads: self.num_heads,
            n_win: self.n_win,
            topk: self.topk,
            scale,
            kv_downsample_mode: self.kv_downsample_mode,
            kv_per_win: self.kv_per_win,
            kv_downsample_ratio: self.kv_downsample_ratio,
            soft_routing: self.soft_routing,
            auto_pad: self.auto_pad,
        }
    }
}

/// PyTorch's `AdaptiveMaxPool2d`: output cell `i` pools rows `⌊i·H/o⌋ .. ⌈(i+1)·H/o⌉`.
fn adaptive_max_pool2d(x: Tensor<4>, out: [usize; 2]) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    let bins = |len: usize, o: usize| -> Vec<(usize, usize)> {
        (0..o)
            .map(|i| (i * len / o, ((i + 1) * len).div_ceil(o)))
            .collect()
    };
    let rows: Vec<Tensor<4>> = bins(h, out[0])
        .into_iter()
        .map(|(r0, r1)| {
            let cells: Vec<Tensor<4>> = bins(w, out[1])
                .into_iter()
                .map(|(c0, c1)| {
                    x.clone()
                        .slice([0..b, 0..c, r0..r1, c0..c1])
                        .max_dim(2)
                        .max_dim(3)
                })
                .collect();
            Tensor::cat(cells, 3)
        })
        .collect();
    Tensor::cat(rows, 2)
}

/// Channels `channels` of `t` (`[…, ch]` holding `rows × len` tokens) split into `heads` →
/// `[rows, heads, len, channels.len() / heads]`. Where the range and `ch` are whole heads, a
/// view of the contiguous `t` (flex copies a narrowed tensor on reshape); otherwise narrowed
/// and copied.
fn head_views<const D: usize>(
    t: Tensor<D>,
    [rows, len]: [usize; 2],
    channels: std::ops::Range<usize>,
    heads: usize,
) -> Tensor<4> {
    let ch = t.dims()[D - 1];
    let d = channels.len() / heads;
    if d > 0 && ch % d == 0 && channels.start % d == 0 {
        t.reshape([rows, len, ch / d, d])
            .narrow(2, channels.start / d, heads)
            .swap_dims(1, 2)
    } else {
        t.narrow(D - 1, channels.start, channels.len())
            .reshape([rows, len, heads, d])
            .swap_dims(1, 2)
    }
}

impl BiLevelRoutingAttention {
    /// The padded map size for an `[h, w]` input.
    ///
    /// # Panics
    /// If the map is not divisible by `n_win` and `auto_pad` is off, or is smaller than `n_win`.
    fn padded_size(&self, h: usize, w: usize) -> [usize; 2] {
        let p = self.n_win;
        if self.auto_pad {
            [h.div_ceil(p) * p, w.div_ceil(p) * p]
        } else {
            assert!(
                h % p == 0 && w % p == 0 && h > 0 && w > 0,
                "BRA: the map ({h}×{w}) must be divisible by n_win ({p}); enable auto_pad"
            );
            [h, w]
        }
    }

    /// Per-window key/value pooling: `[B, R, wh·ww, ckv]` → `[B, R, w2, ckv]`.
    fn downsample(&self, kv: Tensor<4>, wh: usize, ww: usize) -> Tensor<4> {
        let [b, r, _, ckv] = kv.dims();
        let grid = || {
            kv.clone()
                .reshape([b * r, wh, ww, ckv])
                .permute([0, 3, 1, 2])
        };
        let pooled = match self.kv_downsample_mode {
            KvDownsampleMode::Identity => return kv,
            KvDownsampleMode::AdaAvgPool => {
                adaptive_avg_pool2d(grid(), [self.kv_per_win, self.kv_per_win])
            }
            KvDownsampleMode::AdaMaxPool => {
                adaptive_max_pool2d(grid(), [self.kv_per_win, self.kv_per_win])
            }
            KvDownsampleMode::AvgPool | KvDownsampleMode::MaxPool
                if self.kv_downsample_ratio == 1 =>
            {
                return kv
            }
            KvDownsampleMode::AvgPool => {
                let s = self.kv_downsample_ratio;
                avg_pool2d(grid(), AvgPoolOptions::new([s, s]))
            }
            KvDownsampleMode::MaxPool => {
                let s = self.kv_downsample_ratio;
                max_pool2d(grid(), MaxPoolOptions::new([s, s]))
            }
        };
        let [_, _, hk, wk] = pooled.dims();
        pooled.permute([0, 2, 3, 1]).reshape([b, r, hk * wk, ckv])
    }

    /// `[B, H, W, C] → [B, H, W, C]`.
    ///
    /// # Panics
    /// If `C` is not `dim`, or the map is not divisible by `n_win` without `auto_pad`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_with_routing(x).0
    }

    /// [`forward`](Self::forward) plus the routing: weights and region indices
    /// `[B, n_win², topk]` (regions numbered row-major over the padded map).
    pub fn forward_with_routing(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<3>, Tensor<3, Int>) {
        let [b, h_in, w_in, c] = x.dims();
        assert_eq!(c, self.dim, "BRA: expected {} channels, got {c}", self.dim);
        let device = x.device();
        let [h, w] = self.padded_size(h_in, w_in);
        let x = if (h, w) != (h_in, w_in) {
            x.pad(
                [(0, h - h_in), (0, w - w_in), (0, 0)],
                PadMode::Constant(0.0),
            )
        } else {
            x
        };
        let (p, qk, m, topk) = (self.n_win, self.qk_dim, self.num_heads, self.topk);
        let (r, wh, ww) = (p * p, h / p, w / p);
        let ckv = qk + c;

        let qkv = self.qkv.qkv.forward(x); // [B, H, W, 2qk + C]
                                           // [B, H, W, 2qk + C] → [B, R, wh·ww, 2qk + C], regions row-major: one copy for q, k
                                           // and v together (each on its own was a copy of a narrowed view, then another).
        let windows = window_partition(qkv.clone(), [wh, ww]).reshape([b, r, wh * ww, qk + ckv]);
        let q_pix = windows.clone().narrow(3, 0, qk);
        let kv_win = windows.clone().narrow(3, qk, ckv);

        // Region-level routing on the means of the full-resolution q and k.
        let q_region: Tensor<3> = q_pix.mean_dim(2).reshape([b, r, qk]);
        let k_region: Tensor<3> = kv_win
            .clone()
            .narrow(3, 0, qk)
            .mean_dim(2)
            .reshape([b, r, qk]);
        let (r_weight, r_idx) = self.router.forward(q_region, k_region);

        // Gather the routed regions' (pooled) key/value tokens: [B, R, topk, w2, ckv].
        let kv_pix = self.downsample(kv_win, wh, ww);
        let w2 = kv_pix.dims()[2];
        let offsets = Tensor::<1, Int>::arange(0..b as i64, &device)
            .mul_scalar(r as i64)
            .reshape([b, 1, 1]);
        let global = (r_idx.clone() + offsets).reshape([b * r * topk]);
        let mut selected: Tensor<5> = kv_pix
            .reshape([b * r, w2 * ckv])
            .select(0, global)
            .reshape([b, r, topk, w2, ckv]);
        if self.soft_routing {
            selected = selected * r_weight.clone().reshape([b, r, topk, 1, 1]);
        }

        // Token-level attention of each region's queries over its routed tokens, per head
        // (`cpu_kernels::attention`: q·kᵀ, softmax and ·v per head on strided views).
        let queries = head_views(windows, [b * r, wh * ww], 0..qk, m);
        let keys = head_views(selected.clone(), [b * r, topk * w2], 0..qk, m);
        let values = head_views(selected, [b * r, topk * w2], qk..ckv, m);
        let out = crate::cpu_kernels::attention(queries, keys, values, None, self.scale)
            .swap_dims(1, 2) // [B·R, wh·ww, m, C/m]
            .reshape([b * r, wh, ww, c]);
        let out = window_reverse(out, [wh, ww], h, w);

        // Local context enhancement on the full-resolution v.
        let out = match &self.lepe {
            Some(conv) => {
                let v = qkv.narrow(3, 2 * qk, c).permute([0, 3, 1, 2]);
                out + conv.forward(v).permute([0, 2, 3, 1])
            }
            None => out,
        };
        let out = match &self.wo {
            Some(wo) => wo.forward(out),
            None => out,
        };
        let out = if (h, w) != (h_in, w_in) {
            out.slice([0..b, 0..h_in, 0..w_in, 0..c])
        } else {
            out
        };
        (out, r_weight, r_idx)
    }
}
