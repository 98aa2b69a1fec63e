//! Halo attention from "Scaling Local Self-Attention for Parameter Efficient Visual Backbones"
//! (Vaswani et al., CVPR 2021, HaloNet), exactly timm 1.0.31's
//! `timm.layers.halo_attn.HaloAttn` with its relative position embedding `PosEmbedRel`.
//!
//! The map is cut into non-overlapping `b × b` query blocks; each block attends to the
//! `(b + 2h) × (b + 2h)` window around it (its "halo", zero-padded at the borders), so the
//! attention logits of one block are `b² × (b + 2h)²` and the whole map needs
//! `heads · (H·W / b²) · b² · (b + 2h)² = heads · H·W · (b + 2h)²` of them: **linear** in the map
//! size. No `HW × HW` matrix is ever built; [`HaloAttn::attention_matrix_elems`] and
//! [`HaloAttn::forward_with_stats`] expose the sizes. Per block and head:
//!
//! `attn = softmax(q kᵀ · d⁻½ + rel(q))`, `out = attn · v`
//!
//! where `rel(q)` are the relative-position logits of the "Attention Augmented Convolutional
//! Networks" `rel_logits_1d` / rel-to-abs trick, once along the width (`width_rel`) and once
//! along the height (`height_rel`).
//!
//! timm specifics kept here:
//! * `q` is a 1×1 convolution with stride `block_stride`, `kv` a 1×1 convolution producing
//!   `heads · (d_qk + d_v)` channels **grouped per head** (`[k_h, v_h]` for head `h`, not all
//!   keys then all values).
//! * `d_qk = dim_head` or `make_divisible(dim_out · qk_ratio, 8) // heads`, `d_v = dim_out //
//!   heads`; the scale is `d_qk⁻½`.
//! * the relative logits use index `j - i + win - 1` of the `2·win - 1` table for query
//!   position `i` in the block and key position `j` in the window (what timm's pad/reshape trick
//!   yields: not centred on the halo, since the table is simply read from the window's corner).
//! * `stride = 2`: if `block_size` is even (and not `avg_down`), queries are subsampled by the
//!   strided `q` convolution (`block_stride = 2`, query blocks `b/2 × b/2`, keys at full
//!   resolution); otherwise attention runs at full resolution and a 2×2 average pool follows.
//! * `scale_pos_embed`: `(q kᵀ + rel) · scale` instead of `q kᵀ · scale + rel`.
//! * `H` and `W` must be multiples of `block_size` (timm asserts it; so does [`HaloAttn::forward`]).

use crate::conv::{Conv2d, Conv2dConfig};
use crate::cpu_kernels;
use crate::cpu_kernels::avg_pool2d;
use burn::module::Param;
use burn::nn::Initializer;
use burn::prelude::*;
use burn::tensor::ops::{AvgPoolOptions, PadMode};

use crate::layers::make_divisible;

/// Configuration of [`HaloAttn`] (the arguments of timm's `HaloAttn`, same defaults).
#[derive(Config, Debug)]
pub struct HaloAttnConfig {
    /// Channels of the input.
    pub dim: usize,
    /// Channels of the output (timm's `dim_out or dim`).
    pub dim_out: Option<usize>,
    /// Output stride, 1 or 2.
    #[config(default = 1)]
    pub stride: usize,
    /// Attention heads.
    #[config(default = 8)]
    pub num_heads: usize,
    /// Query/key width per head; default `make_divisible(dim_out · qk_ratio, 8) // num_heads`.
    pub dim_head: Option<usize>,
    /// Side of the query blocks.
    #[config(default = 8)]
    pub block_size: usize,
    /// Halo added around each block on every side for the keys and values.
    #[config(default = 3)]
    pub halo_size: usize,
    /// Query/key width relative to `dim_out` when `dim_head` is not set.
    #[config(default = 1.0)]
    pub qk_ratio: f64,
    /// Whether `q` and `kv` have biases.
    #[config(default = false)]
    pub qkv_bias: bool,
    /// With `stride = 2`: pool the output (2×2 average) instead of striding the queries.
    #[config(default = false)]
    pub avg_down: bool,
    /// Scale the position logits together with `q kᵀ`.
    #[config(default = false)]
    pub scale_pos_embed: bool,
}

impl HaloAttnConfig {
    /// `dim_out or dim`.
    pub fn resolved_dim_out(&self) -> usize {
        match self.dim_out {
            Some(d) if d > 0 => d,
            _ => self.dim,
        }
    }

    /// timm's `dim_head_qk`.
    pub fn dim_head_qk(&self) -> usize {
        match self.dim_head {
            Some(d) if d > 0 => d,
            _ => {
                make_divisible(self.resolved_dim_out() as f64 * self.qk_ratio, 8, None, 0.9)
                    / self.num_heads
            }
        }
    }

    /// timm's `dim_head_v` (`dim_out // num_heads`).
    pub fn dim_head_v(&self) -> usize {
        self.resolved_dim_out() / self.num_heads
    }

    /// `(block_stride, use_avg_pool)` as timm derives them from `stride`.
    pub fn block_stride(&self) -> (usize, bool) {
        if self.stride > 1 {
            let use_avg_pool = self.avg_down || !self.block_size.is_multiple_of(self.stride);
            (if use_avg_pool { 1 } else { self.stride }, use_avg_pool)
        } else {
            (1, false)
        }
    }

    /// Builds the block with timm's initialisation (normal with std `fan_in⁻½` for `q`/`kv`,
    /// `d_qk⁻½` for the position tables; timm truncates the normals at ±2).
    ///
    /// # Panics
    /// If `dim_out` is not a multiple of `num_heads` or `stride` is not 1 or 2 (timm asserts both).
    pub fn init(&self, device: &Device) -> HaloAttn {
        let dim_out = self.resolved_dim_out();
        assert_eq!(dim_out % self.num_heads, 0, "dim_out % num_heads != 0");
        assert!(
            self.stride == 1 || self.stride == 2,
            "stride must be 1 or 2"
        );
        let dqk = self.dim_head_qk();
        let dv = self.dim_head_v();
        let heads = self.num_heads;
        let (block_stride, use_avg_pool) = self.block_stride();
        let block_size_ds = self.block_size / block_stride;
        let win_size = self.block_size + 2 * self.halo_size;
        let std = (self.dim as f64).powf(-0.5);
        let scale = (dqk as f64).powf(-0.5);
        let conv = |out: usize, stride: usize| {
            Conv2dConfig::new([self.dim, out], [1, 1])
                .with_stride([stride, stride])
                .with_bias(self.qkv_bias)
                .with_initializer(Initializer::Normal { mean: 0.0, std })
                .init(device)
        };
        let table = || {
            Initializer::Normal {
                mean: 0.0,
                std: scale,
            }
            .init([2 * win_size - 1, dqk], device)
        };
        HaloAttn {
            q: conv(heads * dqk, block_stride),
            kv: conv(heads * (dqk + dv), 1),
            pos_embed: PosEmbedRel {
                height_rel: table(),
                width_rel: table(),
                block_size: block_size_ds,
                dim_head: dqk,
            },
            num_heads: heads,
            dim_head_qk: dqk,
            dim_head_v: dv,
            block_size: self.block_size,
            block_size_ds,
            block_stride,
            halo_size: self.halo_size,
            win_size,
            use_avg_pool,
            scale_pos_embed: self.scale_pos_embed,
        }
    }
}

/// timm's `PosEmbedRel`: relative position tables along the height and the width of a window,
/// `[2 · win - 1, d_qk]` each. timm keys: `height_rel`, `width_rel`.
#[derive(Module, Debug)]
pub struct PosEmbedRel {
    // Width first, as the forward uses them: an ONNX export without names is matched in
    // field order.
    /// Relative embeddings along the width.
    pub width_rel: Param<Tensor<2>>,
    /// Relative embeddings along the height.
    pub height_rel: Param<Tensor<2>>,
    /// Side of the (possibly subsampled) query block.
    pub block_size: usize,
    /// Query width per head.
    pub dim_head: usize,
}

impl PosEmbedRel {
    /// `q: [B, blocks, block², d] → [B, blocks, block², win²]`: for query `(y, x)` and key
    /// `(ky, kx)`, `q·height_rel[ky - y + win - 1] + q·width_rel[kx - x + win - 1]`.
    pub fn forward(&self, q: Tensor<4>) -> Tensor<4> {
        let [b, bb, hw, _] = q.dims();
        let bs = self.block_size;
        let q = q.reshape([b * bb, bs, bs, self.dim_head]);
        // relative logits in width dimension.
        let rel_w = rel_logits_1d(q.clone(), self.width_rel.val()).permute([0, 1, 3, 2, 4]);
        // relative logits in height dimension.
        let rel_h =
            rel_logits_1d(q.swap_dims(1, 2), self.height_rel.val()).permute([0, 3, 1, 4, 2]);
        let win = rel_w.dims()[4];
        (rel_h + rel_w).reshape([b, bb, hw, win * win])
    }
}

/// timm's `rel_logits_1d`: `q: [B, H, W, d]`, `rel_k: [2·win - 1, d]` →
/// `[B, H, win, W, win]` (tiled over the third axis), by the pad/flatten/reshape trick that turns
/// relative into absolute indexing: entry `[.., i, j]` of the last two axes is
/// `q_i · rel_k[j - i + win - 1]`. Needs `W ≤ win`.
pub fn rel_logits_1d(q: Tensor<4>, rel_k: Tensor<2>) -> Tensor<5> {
    let [b, h, w, d] = q.dims();
    let [rel_size, _] = rel_k.dims();
    let win = rel_size.div_ceil(2);
    assert!(w <= rel_size, "rel_logits_1d: W {w} > table {rel_size}");
    let x = q
        .reshape([b * h * w, d])
        .matmul(rel_k.transpose())
        .reshape([b * h, w, rel_size]);
    // pad to shift from relative to absolute indexing
    let x = x
        .pad([(0, 1)], PadMode::Constant(0.0))
        .reshape([b * h, w * (rel_size + 1)]);
    let x = x.pad([(0, rel_size - w)], PadMode::Constant(0.0));
    // reshape and slice out the padded elements
    let x = x
        .reshape([b * h, w + 1, rel_size])
        .slice(s![.., 0..w, (win - 1)..]);
    // reshape and tile
    x.reshape([b, h, 1, w, win]).expand([b, h, win, w, win])
}

/// Sizes of the tensors one [`HaloAttn::forward_with_stats`] call built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HaloStats {
    /// Elements of the attention tensor `[B·heads, blocks, block_ds², win²]` (the logits, the
    /// position logits and the softmax all have this size).
    pub attn_elems: usize,
    /// Elements of the largest intermediate tensor built by the block (`q`, the padded and the
    /// unfolded `kv`, the attention, the output).
    pub max_tensor_elems: usize,
}

/// Halo attention. timm keys: `q.weight`, `kv.weight` (`q.bias`, `kv.bias` with `qkv_bias`),
/// `pos_embed.height_rel`, `pos_embed.width_rel`.
#[derive(Module, Debug)]
pub struct HaloAttn {
    /// 1×1 convolution `dim → heads · d_qk`, stride `block_stride`.
    pub q: Conv2d,
    /// 1×1 convolution `dim → heads · (d_qk + d_v)` (per head: keys then values).
    pub kv: Conv2d,
    /// Relative position embedding.
    pub pos_embed: PosEmbedRel,
    /// Attention heads.
    pub num_heads: usize,
    /// Query/key width per head.
    pub dim_head_qk: usize,
    /// Value width per head.
    pub dim_head_v: usize,
    /// Side of a block of the input map.
    pub block_size: usize,
    /// Side of a query block (`block_size / block_stride`).
    pub block_size_ds: usize,
    /// Query subsampling (2 for a strided block without `avg_down`, else 1).
    pub block_stride: usize,
    /// Halo width.
    pub halo_size: usize,
    /// Key window side `block_size + 2 · halo_size`.
    pub win_size: usize,
    /// 2×2 average pool on the output (stride 2 without query subsampling).
    pub use_avg_pool: bool,
    /// `(q kᵀ + rel) · scale` instead of `q kᵀ · scale + rel`.
    pub scale_pos_embed: bool,
}

impl HaloAttn {
    /// `[N, dim, H, W] → [N, dim_out, H / stride, W / stride]`.
    ///
    /// # Panics
    /// If `H` or `W` is not a multiple of `block_size` (timm asserts the same).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_with_stats(x).0
    }

    /// Elements of the attention tensor for one `H × W` image:
    /// `heads · (H/b · W/b) · b_ds² · win²` — the same shapes [`HaloAttn::forward`] builds, linear
    /// in `H·W` (`heads · H·W · win² / block_stride²`).
    pub fn attention_matrix_elems(&self, h: usize, w: usize) -> usize {
        self.check_size(h, w);
        let blocks = (h / self.block_size) * (w / self.block_size);
        self.num_heads * blocks * self.block_size_ds.pow(2) * self.win_size.pow(2)
    }

    fn check_size(&self, h: usize, w: usize) {
        assert!(
            h.is_multiple_of(self.block_size) && w.is_multiple_of(self.block_size),
            "HaloAttn: {h}×{w} map is not a multiple of block_size {}",
            self.block_size
        );
    }

    /// [`HaloAttn::forward`], also returning the sizes of the tensors it built.
    pub fn forward_with_stats(&self, x: Tensor<4>) -> (Tensor<4>, HaloStats) {
        let [b, _, h, w] = x.dims();
        self.check_size(h, w);
        let mut max_elems = 0usize;
        let mut track = |dims: &[usize]| max_elems = max_elems.max(dims.iter().product());

        let (heads, dqk, dv) = (self.num_heads, self.dim_head_qk, self.dim_head_v);
        let (bs, bs_ds, win, halo) = (
            self.block_size,
            self.block_size_ds,
            self.win_size,
            self.halo_size,
        );
        let (nhb, nwb) = (h / bs, w / bs);
        let blocks = nhb * nwb;

        let q = self.q.forward(x.clone());
        track(&q.dims());
        // unfold: [B·heads, d_qk, b_ds, b_ds, nh, nw] → [B·heads, blocks, b_ds², d_qk]
        let q: Tensor<6> = q.reshape([b * heads, dqk, nhb, bs_ds, nwb, bs_ds]);
        let q = q
            .permute([0, 1, 3, 5, 2, 4])
            .reshape([b * heads, dqk, bs_ds * bs_ds, blocks])
            .swap_dims(1, 3);

        let kv = self.kv.forward(x);
        // overlapping (block + 2·halo)² windows with step `block`, from the zero-padded map
        let kv = kv.pad((halo, halo, halo, halo), PadMode::Constant(0.0));
        track(&kv.dims());
        let kv: Tensor<5> = kv.unfold(2, win, bs);
        let kv: Tensor<6> = kv.unfold(3, win, bs);
        track(&kv.dims());
        // [B·heads, d_qk + d_v, blocks, win²] → [B·heads, blocks, win², d_qk + d_v]
        let kv = kv
            .reshape([b * heads, dqk + dv, blocks, win * win])
            .permute([0, 2, 3, 1]);
        let k = kv.clone().slice(s![.., .., .., 0..dqk]);
        let v = kv.slice(s![.., .., .., dqk..]);

        let scale = (dqk as f64).powf(-0.5);
        let logits = q.clone().matmul(k.swap_dims(2, 3));
        let pos = self.pos_embed.forward(q);
        // softmax(scale·(logits + pos)) or softmax(scale·logits + pos), fused on the CPU.
        let (scores, scale, bias) = if self.scale_pos_embed {
            (logits + pos, scale as f32, None)
        } else {
            (logits, scale as f32, Some(pos))
        };
        // [B·heads, blocks, b_ds², win²]
        let attn_dims = scores.dims();
        track(&attn_dims);
        let attn = cpu_kernels::softmax_last(scores, scale, bias);

        // [B·heads, d_v, b_ds², blocks] → fold back to [B, heads · d_v, H / s, W / s]
        let out = attn.matmul(v).swap_dims(1, 3);
        let out: Tensor<5> = out.reshape([b * heads * dv, bs_ds, bs_ds, nhb, nwb]);
        let out = out
            .permute([0, 3, 1, 4, 2])
            .reshape([b, heads * dv, nhb * bs_ds, nwb * bs_ds]);
        track(&out.dims());
        let out = if self.use_avg_pool {
            avg_pool2d(out, AvgPoolOptions::new([2, 2]))
        } else {
            out
        };
        let stats = HaloStats {
            attn_elems: attn_dims.iter().product(),
            max_tensor_elems: max_elems,
        };
        (out, stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dims_follow_timm() {
        // timm: HaloAttn(16, num_heads=2) → dim_head_qk 8; qk_ratio 1.5, dim_out 24 → 20;
        // HaloAttn(256, num_heads=8, dim_head=16) → 16, dim_head_v 32.
        let c = HaloAttnConfig::new(16).with_num_heads(2);
        assert_eq!((c.dim_head_qk(), c.dim_head_v()), (8, 8));
        let c = HaloAttnConfig::new(16)
            .with_dim_out(Some(24))
            .with_num_heads(2)
            .with_qk_ratio(1.5);
        assert_eq!((c.dim_head_qk(), c.dim_head_v()), (20, 12));
        let c = HaloAttnConfig::new(256).with_dim_head(Some(16));
        assert_eq!((c.dim_head_qk(), c.dim_head_v()), (16, 32));
        // stride 2: strided queries for an even block, pooling for an odd one or avg_down.
        let s2 = HaloAttnConfig::new(16).with_stride(2);
        assert_eq!(s2.block_stride(), (2, false));
        assert_eq!(s2.clone().with_block_size(7).block_stride(), (1, true));
        assert_eq!(s2.with_avg_down(true).block_stride(), (1, true));
    }

    #[test]
    fn rel_logits_index_is_j_minus_i_plus_win_minus_1() {
        let device = Device::flex();
        // q one-hot on the batch/row axes: logits = rel_k rows, so the result is an index map.
        let (w, win) = (3usize, 5usize);
        let rel = 2 * win - 1;
        let q = Tensor::<4>::ones([1, 1, w, 1], &device);
        let table: Vec<f32> = (0..rel).map(|r| r as f32).collect();
        let rel_k = Tensor::<2>::from_data(TensorData::new(table, [rel, 1]), &device);
        let out = rel_logits_1d(q, rel_k)
            .to_data()
            .try_to_vec::<f32>()
            .unwrap();
        for i in 0..w {
            for j in 0..win {
                assert_eq!(out[i * win + j], (j + win - 1 - i) as f32, "i={i} j={j}");
            }
        }
    }

    #[test]
    fn shapes_and_stats() {
        let device = Device::flex();
        let halo = HaloAttnConfig::new(8)
            .with_num_heads(2)
            .with_block_size(4)
            .with_halo_size(1)
            .init(&device);
        let (y, stats) = halo.forward_with_stats(Tensor::<4>::ones([1, 8, 8, 12], &device));
        assert_eq!(y.dims(), [1, 8, 8, 12]);
        assert_eq!(stats.attn_elems, halo.attention_matrix_elems(8, 12));
        assert_eq!(stats.attn_elems, 2 * 8 * 12 * 36);
    }

    #[test]
    #[should_panic(expected = "not a multiple of block_size")]
    fn rejects_maps_not_divisible_by_block() {
        let device = Device::flex();
        let halo = HaloAttnConfig::new(8)
            .with_num_heads(2)
            .with_block_size(4)
            .init(&device);
        halo.forward(Tensor::<4>::ones([1, 8, 8, 10], &device));
    }
}
