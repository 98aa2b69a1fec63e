//! Cross-attention between two token streams through their class tokens, from "CrossViT:
//! Cross-Attention Multi-Scale Vision Transformer for Image Classification" (Chen, Fan, Panda;
//! ICCV 2021), as lucidrains' `CrossTransformer` (vit-pytorch `cross_vit.py`), which Att-SwinU-Net
//! (Aghdam et al., ISBI 2023; NITR098/AttSwinUNet `model/skipconnection/crossvit.py`) uses as its
//! "cross-contextual attention" on the skip connections.
//!
//! Each stream `a`, `b` (`[B, L, C]`) is split into a class token and its patch tokens. In
//! Att-SwinU-Net, which has no class token, the "class token" is the **mean of all `L` tokens**
//! (token 0 included) and the patch tokens are tokens `1..L` (token 0 left out); the
//! updated class token then **replaces token 0** of its stream, every other token is passed
//! through unchanged. Per layer `l` (paper eq. 7-8, CrossViT's cross-attention module):
//!
//! `cls_a ← cls_a + CA_l,0(LN(cls_a), [LN(cls_a); patch_b])`,
//! `cls_b ← cls_b + CA_l,1(LN(cls_b), [LN(cls_b); patch_a])`,
//!
//! where `CA(q, kv) = W_out · softmax(q W_q (kv W_k)ᵀ / √d_h) kv W_v` with `heads × dim_head`
//! inner channels, bias-free `W_q`, `W_kv` (keys first, values second), and `W_out` with bias.
//! The pre-norm normalises the query (and its copy among the keys) only, not the other stream's
//! patches. Both streams have the same width here (lucidrains' `ProjectInOut` is then the
//! identity and has no parameters).
//!
//! Keys (lucidrains' names, see [`key_map`]): `layers.{l}.{j}.fn.norm` (gaze: `…norm`),
//! `layers.{l}.{j}.fn.fn.to_q`, `…fn.fn.to_kv`, `…fn.fn.to_out.0` (gaze: `…attn.to_q`, …)
//! (`j` = 0: `a` attends to `b`, 1: `b` attends to `a`).

use crate::layer_norm::{LayerNorm, LayerNormConfig};
use crate::linear::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use gaze_weights::KeyMap;

/// Configuration of [`CrossTransformer`] (lucidrains' arguments, `sm_dim = lg_dim = dim`).
#[derive(Config, Debug)]
pub struct CrossTransformerConfig {
    /// Token width of both streams.
    pub dim: usize,
    /// Cross-attention layers (each updates both class tokens once).
    #[config(default = 2)]
    pub depth: usize,
    /// Attention heads.
    #[config(default = 8)]
    pub heads: usize,
    /// Channels per head.
    #[config(default = 64)]
    pub dim_head: usize,
    /// LayerNorm epsilon (`nn.LayerNorm`'s 1e-5).
    #[config(default = 1e-5)]
    pub norm_eps: f64,
}

/// Multi-head attention of queries on a context (lucidrains' `Attention` with a context).
#[derive(Module, Debug)]
pub struct CrossAttention {
    /// Query projection, no bias (`to_q`).
    pub to_q: Linear,
    /// Key and value projections, keys first, no bias (`to_kv`).
    pub to_kv: Linear,
    /// Output projection with bias (`to_out.0`).
    pub to_out: Linear,
    /// Attention heads.
    pub heads: usize,
    /// Channels per head (the scores are scaled by `head_dim^-½`).
    pub head_dim: usize,
}

/// A class token's pre-normed cross-attention on `[itself; the other stream's patches]`
/// (lucidrains' `PreNorm(Attention)` called with `kv_include_self=True`).
#[derive(Module, Debug)]
pub struct PreNormCrossAttention {
    /// Pre-norm of the class token (`fn.norm`).
    pub norm: LayerNorm,
    /// The attention (`fn.fn`).
    pub attn: CrossAttention,
}

impl PreNormCrossAttention {
    /// The update of `cls` (`[B, 1, C]`, before the norm) from `patches` (`[B, N, C]`):
    /// `[B, 1, C]`, to be added to `cls`.
    pub fn forward(&self, cls: Tensor<3>, patches: Tensor<3>) -> Tensor<3> {
        let q_in = self.norm.forward(cls);
        let context = Tensor::cat(vec![q_in.clone(), patches], 1);
        self.attn.forward(q_in, context)
    }
}

impl CrossAttention {
    /// Queries `x` (`[B, M, C]`) on `context` (`[B, N, C]`) → `[B, M, C]`.
    pub fn forward(&self, x: Tensor<3>, context: Tensor<3>) -> Tensor<3> {
        let [b, m, _] = x.dims();
        let n = context.dims()[1];
        let (h, d) = (self.heads, self.head_dim);
        let inner = h * d;
        let q = self.to_q.forward(x).reshape([b, m, h, d]).swap_dims(1, 2);
        let kv = self.to_kv.forward(context);
        let k = kv
            .clone()
            .slice([0..b, 0..n, 0..inner])
            .reshape([b, n, h, d])
            .swap_dims(1, 2);
        let v = kv
            .slice([0..b, 0..n, inner..2 * inner])
            .reshape([b, n, h, d])
            .swap_dims(1, 2);
        let options = AttentionModuleOptions {
            scale: Some((d as f64).powf(-0.5)),
            softcap: None,
            is_causal: false,
        };
        let y = attention(q, k, v, None, None, options);
        self.to_out
            .forward(y.swap_dims(1, 2).reshape([b, m, inner]))
    }
}

/// lucidrains' `CrossTransformer` with mean class tokens written over token 0 (see the module
/// docs).
#[derive(Module, Debug)]
pub struct CrossTransformer {
    /// `layers.{l}.{j}`: `j` = 0 updates stream `a` from `b`, 1 stream `b` from `a`.
    pub layers: Vec<Vec<PreNormCrossAttention>>,
}

impl CrossTransformerConfig {
    /// Builds the module with random weights.
    pub fn init(&self, device: &Device) -> CrossTransformer {
        let inner = self.heads * self.dim_head;
        let attn = || PreNormCrossAttention {
            norm: LayerNormConfig::new(self.dim)
                .with_epsilon(self.norm_eps)
                .init(device),
            attn: CrossAttention {
                to_q: LinearConfig::new(self.dim, inner)
                    .with_bias(false)
                    .init(device),
                to_kv: LinearConfig::new(self.dim, 2 * inner)
                    .with_bias(false)
                    .init(device),
                to_out: LinearConfig::new(inner, self.dim).init(device),
                heads: self.heads,
                head_dim: self.dim_head,
            },
        };
        CrossTransformer {
            layers: (0..self.depth).map(|_| vec![attn(), attn()]).collect(),
        }
    }
}

impl CrossTransformer {
    /// `a`, `b`: `[B, L_a, C]`, `[B, L_b, C]` → the same shapes, token 0 of each replaced by its
    /// stream's updated mean token.
    pub fn forward(&self, a: Tensor<3>, b: Tensor<3>) -> (Tensor<3>, Tensor<3>) {
        let split = |t: Tensor<3>| {
            let [n, l, c] = t.dims();
            (t.clone().mean_dim(1), t.slice([0..n, 1..l, 0..c]))
        };
        let (mut a_cls, a_patches) = split(a);
        let (mut b_cls, b_patches) = split(b);
        for layer in &self.layers {
            a_cls = a_cls.clone() + layer[0].forward(a_cls, b_patches.clone());
            b_cls = b_cls.clone() + layer[1].forward(b_cls, a_patches.clone());
        }
        (
            Tensor::cat(vec![a_cls, a_patches], 1),
            Tensor::cat(vec![b_cls, b_patches], 1),
        )
    }
}

/// lucidrains' names (`PreNorm` in `ProjectInOut`: `fn.norm`, `fn.fn.to_q`, …) for a
/// [`CrossTransformer`] at the root; use [`KeyMap::under`] for one inside a model.
pub fn key_map() -> KeyMap {
    KeyMap::new(&[
        ("^layers.{l:d}.{j:d}.fn.norm", "^layers.{l}.{j}.norm"),
        ("^layers.{l:d}.{j:d}.fn.fn", "^layers.{l}.{j}.attn"),
        (
            "^layers.{l:d}.{j:d}.attn.to_out.0",
            "^layers.{l}.{j}.attn.to_out",
        ),
    ])
}
