//! LeViT attention from "LeViT: a Vision Transformer in ConvNet's Clothing for Faster Inference"
//! (Graham et al., ICCV 2021), exactly timm 1.0.31's `timm.models.levit` building blocks in the
//! linear (token, `use_conv=False`) mode every default LeViT uses: tokens are `[B, N, C]` with
//! `N = H·W` in row-major order of a `resolution` map.
//!
//! * [`LinearNorm`] / [`ConvNorm`]: a bias-free `nn.Linear` / `nn.Conv2d` followed by a
//!   BatchNorm (timm attributes `linear` and `bn`; the official repository's `Linear_BN` calls
//!   the first one `c`). `LinearNorm` normalises the `[B·N, C]` flattening with `BatchNorm1d`.
//! * [`LevitAttention`] (timm `Attention`): `qkv` → per head `[q (key_dim), k (key_dim),
//!   v (val_dim)]` (grouped per head), `softmax(q kᵀ · key_dim⁻½ + B) v`, then `proj` =
//!   activation + `LinearNorm`. The attention bias `B[h, i, j] = attention_biases[h,
//!   |yᵢ - yⱼ| · W + |xᵢ - xⱼ|]` — in timm 1.0.31 the table has `N = H·W` columns (one per
//!   `(|dy|, |dx|)` pair), not the official repository's list of distinct offsets.
//! * [`LevitAttentionDownsample`] (timm `AttentionDownsample`, the paper's and the official
//!   repository's `AttentionSubsample`, alias [`LevitAttentionSubsample`]): keys/values from all
//!   `H·W` tokens (`kv`), queries from the tokens subsampled with `stride` (`q` = `Downsample` +
//!   `LinearNorm`), so the output has `⌈H/s⌉·⌈W/s⌉` tokens of `out_dim` channels; biases over
//!   `(|yq - yk|, |xq - xk|)` with query positions `0, s, 2s, …`.
//!
//! `attention_bias_idxs` is a buffer computed at init (non-persistent in timm 1.0.31, saved by
//! older timm checkpoints): gaze computes it too, and `gaze_weights::keymaps::levit()` ignores
//! the key.

use crate::conv::{Conv2d, Conv2dConfig};
use crate::cpu_kernels;
use crate::linear::{Linear, LinearConfig};
use burn::module::Param;
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::prelude::*;

use crate::cpu_kernels::avg_pool2d;
use crate::layers::{index_buffer, merge_heads, Activation};
use burn::tensor::ops::AvgPoolOptions;

fn batch_norm(channels: usize, weight_init: f64, device: &Device) -> BatchNorm {
    let mut bn = BatchNormConfig::new(channels).init(device);
    if weight_init != 1.0 {
        bn.gamma = Param::from_tensor(Tensor::full([channels], weight_init, device));
    }
    bn
}

/// Configuration of [`LinearNorm`] (timm's `LinearNorm`).
#[derive(Config, Debug)]
pub struct LinearNormConfig {
    /// Input features.
    pub in_features: usize,
    /// Output features.
    pub out_features: usize,
    /// Initial BatchNorm weight (timm sets 0 for the last layer of a residual branch).
    #[config(default = 1.0)]
    pub bn_weight_init: f64,
}

impl LinearNormConfig {
    /// Builds the layer.
    pub fn init(&self, device: &Device) -> LinearNorm {
        LinearNorm {
            linear: LinearConfig::new(self.in_features, self.out_features)
                .with_bias(false)
                .init(device),
            bn: batch_norm(self.out_features, self.bn_weight_init, device),
        }
    }
}

/// Bias-free linear layer + BatchNorm1d over tokens. timm keys: `linear.weight`, `bn.*`.
#[derive(Module, Debug)]
pub struct LinearNorm {
    /// `nn.Linear(in, out, bias=False)`.
    pub linear: Linear,
    /// `nn.BatchNorm1d(out)` applied to the `[B·N, out]` flattening.
    pub bn: BatchNorm,
}

impl LinearNorm {
    /// `[B, N, in] → [B, N, out]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let x = self.linear.forward(x);
        let [b, n, c] = x.dims();
        cpu_kernels::batch_norm(&self.bn, x.reshape([b * n, c])).reshape([b, n, c])
    }
}

/// Configuration of [`ConvNorm`] (timm's `ConvNorm`, same defaults).
#[derive(Config, Debug)]
pub struct ConvNormConfig {
    /// Input channels.
    pub in_chs: usize,
    /// Output channels.
    pub out_chs: usize,
    /// Kernel size.
    #[config(default = 1)]
    pub kernel_size: usize,
    /// Stride.
    #[config(default = 1)]
    pub stride: usize,
    /// Zero padding.
    #[config(default = 0)]
    pub padding: usize,
    /// Dilation.
    #[config(default = 1)]
    pub dilation: usize,
    /// Groups.
    #[config(default = 1)]
    pub groups: usize,
    /// Initial BatchNorm weight.
    #[config(default = 1.0)]
    pub bn_weight_init: f64,
}

impl ConvNormConfig {
    /// Builds the layer.
    pub fn init(&self, device: &Device) -> ConvNorm {
        let (k, s, p, d) = (self.kernel_size, self.stride, self.padding, self.dilation);
        ConvNorm {
            linear: Conv2dConfig::new([self.in_chs, self.out_chs], [k, k])
                .with_stride([s, s])
                .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
                .with_dilation([d, d])
                .with_groups(self.groups)
                .with_bias(false)
                .init(device),
            bn: batch_norm(self.out_chs, self.bn_weight_init, device),
        }
    }
}

/// Bias-free convolution + BatchNorm2d (LeViT's stem and conv mode). timm keys:
/// `linear.weight`, `bn.*`.
#[derive(Module, Debug)]
pub struct ConvNorm {
    /// `nn.Conv2d(…, bias=False)` (timm names it `linear`).
    pub linear: Conv2d,
    /// `nn.BatchNorm2d(out)`.
    pub bn: BatchNorm,
}

impl ConvNorm {
    /// `[N, in, H, W] → [N, out, H', W']`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.linear.forward_bn(x, &self.bn, false)
    }
}

/// timm's `proj = nn.Sequential(act, ln)`. timm keys: `ln.linear.weight`, `ln.bn.*`.
#[derive(Module, Debug)]
pub struct LevitProj {
    /// The activation (timm's `proj.act`, no parameters).
    #[module(skip)]
    pub act: Activation,
    /// `LinearNorm(val_attn_dim, out)`.
    pub ln: LinearNorm,
}

impl LevitProj {
    /// `ln(act(x))`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.ln.forward(self.act.apply(x))
    }
}

/// `attention_bias_idxs[i, j] = |yq_i - yk_j| · W + |xq_i - xk_j|` for queries on a grid with
/// step `stride` and keys on the full `H × W` grid (timm's `_compute_attention_bias_idxs`),
/// row-major `[N_q · N_k]`.
pub fn attention_bias_idxs(resolution: [usize; 2], stride: usize) -> Vec<i64> {
    let [h, w] = resolution;
    let mut idxs = Vec::new();
    for qy in (0..h).step_by(stride) {
        for qx in (0..w).step_by(stride) {
            for ky in 0..h {
                for kx in 0..w {
                    idxs.push((qy.abs_diff(ky) * w + qx.abs_diff(kx)) as i64);
                }
            }
        }
    }
    idxs
}

/// `attention_biases[:, idxs]` as `[1, heads, N_q, N_k]`.
fn gather_biases(
    table: Tensor<2>,
    idxs: &Param<Tensor<1, Int>>,
    n_q: usize,
    n_k: usize,
) -> Tensor<4> {
    let [heads, _] = table.dims();
    table.select(1, idxs.val()).reshape([1, heads, n_q, n_k])
}

/// Configuration of [`LevitAttention`] (the arguments of timm's `levit.Attention`; every default
/// is timm's except `act_layer`, which is the `Levit` models' hard-swish — the bare class
/// defaults to SiLU).
#[derive(Config, Debug)]
pub struct LevitAttentionConfig {
    /// Channels of the tokens (in and out).
    pub dim: usize,
    /// Query/key width per head.
    pub key_dim: usize,
    /// Attention heads.
    #[config(default = 8)]
    pub num_heads: usize,
    /// Value width per head is `int(attn_ratio · key_dim)`.
    #[config(default = 4.0)]
    pub attn_ratio: f64,
    /// Token map `[H, W]` (`N = H·W`).
    #[config(default = "[14, 14]")]
    pub resolution: [usize; 2],
    /// Activation in `proj`.
    #[config(default = "Activation::HardSwish")]
    pub act_layer: Activation,
}

impl LevitAttentionConfig {
    /// timm's `val_dim = int(attn_ratio · key_dim)`.
    pub fn val_dim(&self) -> usize {
        (self.attn_ratio * self.key_dim as f64) as usize
    }

    /// Builds the block with timm's initialisation (zero attention biases, `proj`'s BatchNorm
    /// weight 0).
    pub fn init(&self, device: &Device) -> LevitAttention {
        let (heads, kd, vd) = (self.num_heads, self.key_dim, self.val_dim());
        let n = self.resolution[0] * self.resolution[1];
        LevitAttention {
            qkv: LinearNormConfig::new(self.dim, heads * (2 * kd + vd)).init(device),
            proj: LevitProj {
                act: self.act_layer,
                ln: LinearNormConfig::new(heads * vd, self.dim)
                    .with_bn_weight_init(0.0)
                    .init(device),
            },
            attention_biases: Param::from_tensor(Tensor::zeros([heads, n], device)),
            num_heads: heads,
            key_dim: kd,
            val_dim: vd,
            resolution: self.resolution,
            attention_bias_idxs: index_buffer(attention_bias_idxs(self.resolution, 1), device),
        }
    }
}

/// LeViT multi-head attention with attention biases. timm keys: `qkv.{linear,bn}.*`,
/// `proj.ln.{linear,bn}.*`, `attention_biases` (`attention_bias_idxs` when present is ignored).
#[derive(Module, Debug)]
pub struct LevitAttention {
    /// `LinearNorm(dim, heads · (2 · key_dim + val_dim))`.
    pub qkv: LinearNorm,
    /// Activation + `LinearNorm(heads · val_dim, dim)`.
    pub proj: LevitProj,
    /// `[heads, H·W]` bias table.
    pub attention_biases: Param<Tensor<2>>,
    /// Attention heads.
    pub num_heads: usize,
    /// Query/key width per head.
    pub key_dim: usize,
    /// Value width per head.
    pub val_dim: usize,
    /// Token map `[H, W]`.
    #[module(skip)]
    pub resolution: [usize; 2],
    /// `[N · N]` indices into the bias table (timm's buffer, built once at init).
    pub attention_bias_idxs: Param<Tensor<1, Int>>,
}

impl LevitAttention {
    /// The attention bias `[1, heads, N, N]`.
    pub fn attention_bias(&self) -> Tensor<4> {
        let n = self.resolution[0] * self.resolution[1];
        gather_biases(self.attention_biases.val(), &self.attention_bias_idxs, n, n)
    }

    /// `[B, N, dim] → [B, N, dim]` (`N = H·W` of `resolution`).
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, n, _] = x.dims();
        let [rh, rw] = self.resolution;
        assert_eq!(
            n,
            rh * rw,
            "LevitAttention: {n} tokens for a {rh}×{rw} resolution"
        );
        let (heads, kd, vd) = (self.num_heads, self.key_dim, self.val_dim);
        let qkv = self.qkv.forward(x).reshape([b, n, heads, 2 * kd + vd]);
        let q = qkv
            .clone()
            .slice(s![.., .., .., 0..kd])
            .permute([0, 2, 1, 3]);
        let k = qkv
            .clone()
            .slice(s![.., .., .., kd..2 * kd])
            .permute([0, 2, 1, 3]);
        let v = qkv.slice(s![.., .., .., 2 * kd..]).permute([0, 2, 1, 3]);

        let scale = (kd as f64).powf(-0.5);
        let attn = cpu_kernels::attention(q, k, v, Some(self.attention_bias()), scale);
        let x = merge_heads(attn);
        self.proj.forward(x)
    }
}

/// timm's `levit.Downsample` (the official `Subsample`): keep every `stride`-th token of the
/// `resolution` map in both directions, or with `use_pool` a 3×3 average pool (stride `stride`,
/// padding 1, `count_include_pad=False`). No parameters.
#[derive(Module, Debug)]
pub struct LevitSubsample {
    /// Subsampling step.
    pub stride: usize,
    /// Token map `[H, W]` of the input.
    #[module(skip)]
    pub resolution: [usize; 2],
    /// Average pool instead of plain subsampling.
    pub use_pool: bool,
}

impl LevitSubsample {
    /// `[B, H·W, C] → [B, ⌈H/s⌉·⌈W/s⌉, C]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, _, c] = x.dims();
        let [h, w] = self.resolution;
        let s = self.stride;
        let x = x.reshape([b, h, w, c]);
        let x = if self.use_pool {
            let pooled = avg_pool2d(
                x.permute([0, 3, 1, 2]),
                AvgPoolOptions::new([3, 3])
                    .with_stride([s, s])
                    .with_padding([1, 1])
                    .with_count_include_pad(false),
            );
            pooled.permute([0, 2, 3, 1])
        } else {
            let device = x.device();
            let rows = |len: usize| {
                let idx: Vec<i64> = (0..len).step_by(s).map(|i| i as i64).collect();
                let n = idx.len();
                Tensor::<1, Int>::from_data(TensorData::new(idx, [n]), &device)
            };
            x.select(1, rows(h)).select(2, rows(w))
        };
        let [_, ho, wo, _] = x.dims();
        x.reshape([b, ho * wo, c])
    }
}

/// timm's `q = nn.Sequential(down, ln)` of `AttentionDownsample`. timm keys: `ln.*`.
#[derive(Module, Debug)]
pub struct LevitSubsampleQuery {
    /// Token subsampling (no parameters).
    pub down: LevitSubsample,
    /// `LinearNorm(in_dim, heads · key_dim)`.
    pub ln: LinearNorm,
}

impl LevitSubsampleQuery {
    /// `[B, H·W, in] → [B, N_q, heads · key_dim]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.ln.forward(self.down.forward(x))
    }
}

/// Configuration of [`LevitAttentionDownsample`] (the arguments of timm's
/// `levit.AttentionDownsample`; every default is timm's except `act_layer`, hard-swish as in the
/// `Levit` models).
#[derive(Config, Debug)]
pub struct LevitAttentionDownsampleConfig {
    /// Channels of the input tokens.
    pub in_dim: usize,
    /// Channels of the output tokens.
    pub out_dim: usize,
    /// Query/key width per head.
    pub key_dim: usize,
    /// Attention heads (`Levit` uses `in_dim // key_dim`).
    #[config(default = 8)]
    pub num_heads: usize,
    /// Value width per head is `int(attn_ratio · key_dim)` (`Levit` passes 4).
    #[config(default = 2.0)]
    pub attn_ratio: f64,
    /// Query subsampling step.
    #[config(default = 2)]
    pub stride: usize,
    /// Input token map `[H, W]`.
    #[config(default = "[14, 14]")]
    pub resolution: [usize; 2],
    /// Subsample queries with a 3×3 average pool instead of taking every `stride`-th token.
    #[config(default = false)]
    pub use_pool: bool,
    /// Activation in `proj`.
    #[config(default = "Activation::HardSwish")]
    pub act_layer: Activation,
}

impl LevitAttentionDownsampleConfig {
    /// timm's `val_dim = int(attn_ratio · key_dim)`.
    pub fn val_dim(&self) -> usize {
        (self.attn_ratio * self.key_dim as f64) as usize
    }

    /// The output token map `[⌈H/s⌉, ⌈W/s⌉]` (timm's `resolution_out`).
    pub fn resolution_out(&self) -> [usize; 2] {
        self.resolution.map(|r| (r - 1) / self.stride + 1)
    }

    /// Builds the block with timm's initialisation (zero attention biases).
    pub fn init(&self, device: &Device) -> LevitAttentionDownsample {
        let (heads, kd, vd) = (self.num_heads, self.key_dim, self.val_dim());
        let n_k = self.resolution[0] * self.resolution[1];
        LevitAttentionDownsample {
            kv: LinearNormConfig::new(self.in_dim, heads * (kd + vd)).init(device),
            q: LevitSubsampleQuery {
                down: LevitSubsample {
                    stride: self.stride,
                    resolution: self.resolution,
                    use_pool: self.use_pool,
                },
                ln: LinearNormConfig::new(self.in_dim, heads * kd).init(device),
            },
            proj: LevitProj {
                act: self.act_layer,
                ln: LinearNormConfig::new(heads * vd, self.out_dim).init(device),
            },
            attention_biases: Param::from_tensor(Tensor::zeros([heads, n_k], device)),
            num_heads: heads,
            key_dim: kd,
            val_dim: vd,
            stride: self.stride,
            resolution: self.resolution,
            resolution_out: self.resolution_out(),
            attention_bias_idxs: index_buffer(
                attention_bias_idxs(self.resolution, self.stride),
                device,
            ),
        }
    }
}

/// LeViT's shrinking attention. timm keys: `kv.{linear,bn}.*`, `q.ln.{linear,bn}.*`,
/// `proj.ln.{linear,bn}.*`, `attention_biases` (`attention_bias_idxs` when present is ignored).
#[derive(Module, Debug)]
pub struct LevitAttentionDownsample {
    /// `LinearNorm(in_dim, heads · (key_dim + val_dim))`, per head `[k, v]`.
    pub kv: LinearNorm,
    /// Subsample + `LinearNorm(in_dim, heads · key_dim)`.
    pub q: LevitSubsampleQuery,
    /// Activation + `LinearNorm(heads · val_dim, out_dim)`.
    pub proj: LevitProj,
    /// `[heads, H·W]` bias table.
    pub attention_biases: Param<Tensor<2>>,
    /// Attention heads.
    pub num_heads: usize,
    /// Query/key width per head.
    pub key_dim: usize,
    /// Value width per head.
    pub val_dim: usize,
    /// Query subsampling step.
    pub stride: usize,
    /// Input token map `[H, W]`.
    #[module(skip)]
    pub resolution: [usize; 2],
    /// Output token map `[⌈H/s⌉, ⌈W/s⌉]`.
    #[module(skip)]
    pub resolution_out: [usize; 2],
    /// `[N_q · N_k]` indices into the bias table (timm's buffer, built once at init).
    pub attention_bias_idxs: Param<Tensor<1, Int>>,
}

/// The paper's / official repository's name for [`LevitAttentionDownsample`].
pub type LevitAttentionSubsample = LevitAttentionDownsample;
/// The paper's / official repository's name for [`LevitAttentionDownsampleConfig`].
pub type LevitAttentionSubsampleConfig = LevitAttentionDownsampleConfig;

impl LevitAttentionDownsample {
    /// The attention bias `[1, heads, N_q, N_k]`.
    pub fn attention_bias(&self) -> Tensor<4> {
        let n_q = self.resolution_out[0] * self.resolution_out[1];
        let n_k = self.resolution[0] * self.resolution[1];
        gather_biases(
            self.attention_biases.val(),
            &self.attention_bias_idxs,
            n_q,
            n_k,
        )
    }

    /// `[B, H·W, in_dim] → [B, ⌈H/s⌉·⌈W/s⌉, out_dim]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, n, _] = x.dims();
        let [rh, rw] = self.resolution;
        assert_eq!(
            n,
            rh * rw,
            "LevitAttentionDownsample: {n} tokens for {rh}×{rw}"
        );
        let (heads, kd, vd) = (self.num_heads, self.key_dim, self.val_dim);
        let kv = self.kv.forward(x.clone()).reshape([b, n, heads, kd + vd]);
        let k = kv
            .clone()
            .slice(s![.., .., .., 0..kd])
            .permute([0, 2, 1, 3]);
        let v = kv.slice(s![.., .., .., kd..]).permute([0, 2, 1, 3]);
        let q = self.q.forward(x);
        let n_q = q.dims()[1];
        let q = q.reshape([b, n_q, heads, kd]).permute([0, 2, 1, 3]);

        let scale = (kd as f64).powf(-0.5);
        let attn = cpu_kernels::attention(q, k, v, Some(self.attention_bias()), scale);
        let x = merge_heads(attn);
        self.proj.forward(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bias_idxs_follow_timm() {
        // timm: Attention(.., resolution=2).attention_bias_idxs
        // = [[0,1,2,3],[1,0,3,2],[2,3,0,1],[3,2,1,0]].
        assert_eq!(
            attention_bias_idxs([2, 2], 1),
            vec![0, 1, 2, 3, 1, 0, 3, 2, 2, 3, 0, 1, 3, 2, 1, 0]
        );
        // AttentionDownsample(.., stride=2, resolution=3): queries at (0,0),(0,2),(2,0),(2,2).
        let idx = attention_bias_idxs([3, 3], 2);
        assert_eq!(idx.len(), 4 * 9);
        assert_eq!(&idx[9..18], &[2, 1, 0, 5, 4, 3, 8, 7, 6]);
    }

    #[test]
    fn shapes() {
        let device = Device::flex();
        let attn = LevitAttentionConfig::new(32, 8)
            .with_num_heads(2)
            .with_attn_ratio(2.0)
            .with_resolution([5, 5])
            .init(&device);
        assert_eq!(
            attn.forward(Tensor::<3>::ones([2, 25, 32], &device)).dims(),
            [2, 25, 32]
        );
        for use_pool in [false, true] {
            let down = LevitAttentionDownsampleConfig::new(16, 24, 4)
                .with_num_heads(2)
                .with_resolution([5, 7])
                .with_use_pool(use_pool)
                .init(&device);
            assert_eq!(down.resolution_out, [3, 4]);
            let y = down.forward(Tensor::<3>::ones([2, 35, 16], &device));
            assert_eq!(y.dims(), [2, 12, 24]);
        }
    }
}
