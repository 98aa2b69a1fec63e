//! Swin Transformer window attention from "Swin Transformer: Hierarchical Vision Transformer
//! using Shifted Windows" (Liu et al., ICCV 2021), exactly timm 1.0.x's
//! `timm.models.swin_transformer.WindowAttention` and `SwinTransformerBlock`, with timm's
//! parameter names.
//!
//! **W-MSA** ([`WindowAttention`]) is multi-head self-attention inside each non-overlapping
//! `Wh × Ww` window of `N = Wh·Ww` tokens, with a learned relative position bias (paper eq. 4):
//!
//! `A = softmax(q kᵀ · d^-½ + B + M)`, `y = concat_h(A v) W_proj + b_proj`,
//!
//! where `B[h, i, j] = T[idx(i, j), h]` reads the table `T` (`relative_position_bias_table`,
//! `[(2Wh−1)(2Ww−1), H]`) at `idx(i, j) = (Δy + Wh − 1)(2Ww − 1) + (Δx + Ww − 1)` for the
//! offset `(Δy, Δx)` from token `j` to token `i` ([`relative_position_index`]), and `M` is the
//! optional shifted-window mask (`0` or `−100`, one `[N, N]` per window).
//!
//! **The block** ([`SwinBlock`]) on a `[B, H, W, C]` map (timm's current channels-last layout):
//!
//! 1. `x̂ = LN₁(x)`; with a shift `(s_h, s_w)`, cyclic shift `x̂ ← roll(x̂, (−s_h, −s_w))`;
//! 2. zero-pad bottom/right to multiples of the window (after the shift, as timm does; the
//!    padded tokens are zeros *after* the norm and are **not** masked: they take part as keys
//!    and values, exactly as in timm);
//! 3. partition into windows ([`window_partition`]), W-MSA with the mask [`swin_attn_mask`]
//!    when shifted, merge ([`window_reverse`]), crop the padding, roll back by `(s_h, s_w)`;
//! 4. `x ← x + attn`, then `x ← x + MLP(LN₂(x))` (`fc1`, exact GELU, `fc2`).
//!
//! The shifted-window mask labels the padded `Hp × Wp` map with 9 regions, rows split at
//! `Hp − Wh` and `Hp − s_h` and columns at `Wp − Ww` and `Wp − s_w` (timm's slices
//! `(0, −W), (−W, −s), (−s, None)`), and gives `−100` to every pair of tokens of one window that
//! come from different regions.
//!
//! timm specifics kept here: the LayerNorms are `nn.LayerNorm` with eps **1e-5** (not ViT's
//! 1e-6); `qkv` has a bias by default, `proj` always; the window shrinks to the input
//! resolution when the input is smaller, and the shift is then 0 (`_calc_window_shift`, unless
//! `always_partition`). timm builds the mask once from `input_resolution`; here it is built
//! from the runtime size (timm's `dynamic_mask=True` behaviour), identical whenever the input
//! has the configured resolution.
//!
//! Checkpoint loading: timm registers `relative_position_index` and `attn_mask` as
//! non-persistent buffers (not in its `state_dict`), but the original Microsoft checkpoints
//! save them; both are recomputed here, so load with `gaze_weights::keymaps::swin()`, which
//! ignores those keys.

use crate::layer_norm::{LayerNorm, LayerNormConfig};
use crate::layers::{index_buffer, merge_heads, split_qkv};
pub use crate::layers::{window_partition, window_reverse};
use crate::linear::{Linear, LinearConfig};
use burn::module::Param;
use burn::prelude::*;

use crate::cpu_kernels;
use burn::tensor::activation::softmax;
use burn::tensor::Distribution;

use crate::vit_attention::{TokenMlp, TokenMlpConfig};

/// The mask value timm (and the official Swin) puts between tokens of different regions.
pub const SWIN_MASK_VALUE: f32 = -100.0;

/// timm's `get_relative_position_index(win_h, win_w)`, flattened row-major: entry
/// `i · N + j` (`N = win_h · win_w`, tokens in row-major window order) is the row of
/// `relative_position_bias_table` for query `i` and key `j`.
pub fn relative_position_index(win_h: usize, win_w: usize) -> Vec<i64> {
    let n = win_h * win_w;
    let mut index = Vec::with_capacity(n * n);
    for i in 0..n {
        let (yi, xi) = ((i / win_w) as i64, (i % win_w) as i64);
        for j in 0..n {
            let (yj, xj) = ((j / win_w) as i64, (j % win_w) as i64);
            let dy = yi - yj + win_h as i64 - 1;
            let dx = xi - xj + win_w as i64 - 1;
            index.push(dy * (2 * win_w as i64 - 1) + dx);
        }
    }
    index
}

/// The shifted-window attention mask of timm's `SwinTransformerBlock.get_attn_mask` for a
/// padded `hp × wp` map: `[nW · N · N]` values, `0` within a region and
/// [`SWIN_MASK_VALUE`] across regions, windows in [`window_partition`] order.
pub fn swin_attn_mask(hp: usize, wp: usize, window: [usize; 2], shift: [usize; 2]) -> Vec<f32> {
    let [wh, ww] = window;
    // timm paints the slices (0, -ws), (-ws, -shift), (-shift, None) of each axis, rows outer,
    // with labels 0..9 in order; later slices overwrite earlier ones. With a zero shift the
    // last slice is `-0: ` (the whole axis), so that axis ends up with one label; painting the
    // Python slices literally keeps those semantics.
    let slices = |size: usize, ws: usize, s: usize| -> [std::ops::Range<usize>; 3] {
        // Python `a:b` with negative `a`, `b` counted from the end and `-0` being 0.
        let from_end = |k: usize| if k == 0 { 0 } else { size.saturating_sub(k) };
        [
            0..from_end(ws),
            from_end(ws)..from_end(s),
            from_end(s)..size,
        ]
    };
    let mut labels = vec![0usize; hp * wp];
    let mut count = 0;
    for rows in slices(hp, wh, shift[0]) {
        for cols in slices(wp, ww, shift[1]) {
            for y in rows.clone() {
                for x in cols.clone() {
                    labels[y * wp + x] = count;
                }
            }
            count += 1;
        }
    }
    let label = |y: usize, x: usize| labels[y * wp + x];
    let n = wh * ww;
    let mut mask = Vec::with_capacity((hp / wh) * (wp / ww) * n * n);
    for wy in 0..hp / wh {
        for wx in 0..wp / ww {
            let ids: Vec<usize> = (0..n)
                .map(|t| label(wy * wh + t / ww, wx * ww + t % ww))
                .collect();
            for i in 0..n {
                for j in 0..n {
                    mask.push(if ids[i] == ids[j] {
                        0.0
                    } else {
                        SWIN_MASK_VALUE
                    });
                }
            }
        }
    }
    mask
}

/// Configuration of [`WindowAttention`] (the arguments of timm's `WindowAttention`).
#[derive(Config, Debug)]
pub struct WindowAttentionConfig {
    /// Token width `C`.
    pub dim: usize,
    /// Number of heads `H`.
    pub num_heads: usize,
    /// Window `[Wh, Ww]`.
    #[config(default = "[7, 7]")]
    pub window_size: [usize; 2],
    /// Width per head; `dim / num_heads` when unset.
    pub head_dim: Option<usize>,
    /// Whether `qkv` has a bias.
    #[config(default = true)]
    pub qkv_bias: bool,
}

impl WindowAttentionConfig {
    /// Builds the module with randomly initialised weights (the bias table ~ N(0, 0.02²), as
    /// timm's truncated normal before clipping).
    pub fn init(&self, device: &Device) -> WindowAttention {
        let head_dim = match self.head_dim {
            Some(d) if d > 0 => d,
            _ => self.dim / self.num_heads,
        };
        let attn_dim = head_dim * self.num_heads;
        let [wh, ww] = self.window_size;
        let table = Tensor::random(
            [(2 * wh - 1) * (2 * ww - 1), self.num_heads],
            Distribution::Normal(0.0, 0.02),
            device,
        );
        WindowAttention {
            relative_position_bias_table: Param::from_tensor(table),
            qkv: LinearConfig::new(self.dim, 3 * attn_dim)
                .with_bias(self.qkv_bias)
                .init(device),
            proj: LinearConfig::new(attn_dim, self.dim).init(device),
            relative_position_index: index_buffer(relative_position_index(wh, ww), device),
            window_size: self.window_size,
            num_heads: self.num_heads,
            head_dim,
        }
    }
}

/// Window multi-head self-attention with relative position bias. timm keys:
/// `relative_position_bias_table`, `qkv.{weight,bias}`, `proj.{weight,bias}`
/// (`relative_position_index` is recomputed, not loaded).
#[derive(Module, Debug)]
pub struct WindowAttention {
    /// Learned bias per relative offset and head, `[(2Wh−1)(2Ww−1), H]`.
    pub relative_position_bias_table: Param<Tensor<2>>,
    /// Fused projection `C → 3 · H · d`.
    pub qkv: Linear,
    /// Output projection `H · d → C`.
    pub proj: Linear,
    /// timm's `relative_position_index` buffer, flattened (`N · N` rows of the table), built
    /// once at init.
    pub relative_position_index: Param<Tensor<1, Int>>,
    /// Window `[Wh, Ww]`.
    pub window_size: [usize; 2],
    /// Number of heads.
    pub num_heads: usize,
    /// Width per head.
    pub head_dim: usize,
}

impl WindowAttention {
    /// The attention scale `d^-½`.
    pub fn scale(&self) -> f64 {
        (self.head_dim as f64).powf(-0.5)
    }

    /// The relative position bias `B`, `[1, H, N, N]` (timm's `_get_rel_pos_bias`).
    pub fn relative_position_bias(&self) -> Tensor<4> {
        let table = self.relative_position_bias_table.val();
        let n = self.window_size[0] * self.window_size[1];
        let bias: Tensor<3> = table
            .select(0, self.relative_position_index.val())
            .reshape([n, n, self.num_heads]);
        bias.permute([2, 0, 1]).unsqueeze()
    }

    /// The additive pre-softmax term `B (+ M)` for `b_` windows, `[B_, H, N, N]`; `mask` is
    /// `[nW, N, N]` with windows in [`window_partition`] order (`B_` a multiple of `nW`).
    fn attn_bias(&self, b_: usize, n: usize, mask: Option<Tensor<3>>) -> Tensor<4> {
        let h = self.num_heads;
        let bias = self.relative_position_bias();
        match mask {
            None => bias.expand([b_, h, n, n]),
            Some(mask) => {
                let nw = mask.dims()[0];
                assert_eq!(b_ % nw, 0, "windows {b_} not a multiple of the mask's {nw}");
                let mask: Tensor<5> = mask.reshape([1, nw, 1, n, n]);
                let bias: Tensor<5> = bias.unsqueeze_dim(0);
                (bias + mask)
                    .expand([b_ / nw, nw, h, n, n])
                    .reshape([b_, h, n, n])
            }
        }
    }

    fn qkv_heads(&self, x: Tensor<3>) -> [Tensor<4>; 3] {
        split_qkv(self.qkv.forward(x), self.num_heads, self.head_dim)
    }

    fn merge(&self, y: Tensor<4>) -> Tensor<3> {
        self.proj.forward(merge_heads(y))
    }

    /// `[B · nW, N, C] → [B · nW, N, C]`; `mask` (`0` / `−100`, `[nW, N, N]`) for shifted
    /// windows. Uses the fused attention kernel with `B + M` as its additive bias.
    pub fn forward(&self, x: Tensor<3>, mask: Option<Tensor<3>>) -> Tensor<3> {
        let [b_, n, _] = x.dims();
        let bias = self.window_bias(b_, n, mask);
        let qkv = self.qkv.forward(x);
        let y = cpu_kernels::attention_qkv(qkv, self.num_heads, Some(bias), self.scale());
        self.proj.forward(y)
    }

    /// `B + M` once per window, `[nW, H, N, N]` (`[1, H, N, N]` without a mask): the attention
    /// kernel repeats it over the images (`attn_bias` expands it to every window).
    fn window_bias(&self, b_: usize, n: usize, mask: Option<Tensor<3>>) -> Tensor<4> {
        let bias = self.relative_position_bias();
        match mask {
            None => bias,
            Some(mask) => {
                let nw = mask.dims()[0];
                assert_eq!(b_ % nw, 0, "windows {b_} not a multiple of the mask's {nw}");
                bias + mask.reshape([nw, 1, n, n])
            }
        }
    }

    /// Like [`forward`](Self::forward), computing the attention explicitly and also returning
    /// its weights `[B · nW, H, N, N]`.
    pub fn forward_with_attention(
        &self,
        x: Tensor<3>,
        mask: Option<Tensor<3>>,
    ) -> (Tensor<3>, Tensor<4>) {
        let [b_, n, _] = x.dims();
        let [q, k, v] = self.qkv_heads(x);
        let bias = self.attn_bias(b_, n, mask);
        let scores = q.mul_scalar(self.scale()).matmul(k.swap_dims(2, 3)) + bias;
        let attn = softmax(scores, 3);
        (self.merge(attn.clone().matmul(v)), attn)
    }
}

/// Configuration of [`SwinBlock`] (the arguments of timm's `SwinTransformerBlock`, same
/// defaults).
#[derive(Config, Debug)]
pub struct SwinBlockConfig {
    /// Token width `C`.
    pub dim: usize,
    /// The input resolution `[H, W]` the block is built for (it can clip the window).
    pub input_resolution: [usize; 2],
    /// Number of heads.
    #[config(default = 4)]
    pub num_heads: usize,
    /// Width per head; `dim / num_heads` when unset.
    pub head_dim: Option<usize>,
    /// Target window `[Wh, Ww]`.
    #[config(default = "[7, 7]")]
    pub window_size: [usize; 2],
    /// Target cyclic shift `[s_h, s_w]` (`[0, 0]`: W-MSA; Swin alternates with window / 2).
    #[config(default = "[0, 0]")]
    pub shift_size: [usize; 2],
    /// Keep the target window and shift even when the input is smaller than the window.
    #[config(default = false)]
    pub always_partition: bool,
    /// MLP hidden width ratio: hidden = `⌊dim · mlp_ratio⌋`.
    #[config(default = 4.0)]
    pub mlp_ratio: f64,
    /// Whether `attn.qkv` has a bias.
    #[config(default = true)]
    pub qkv_bias: bool,
    /// Epsilon of the LayerNorms (`nn.LayerNorm`: 1e-5).
    #[config(default = 1e-5)]
    pub norm_eps: f64,
}

impl SwinBlockConfig {
    /// The window and shift timm uses (`_calc_window_shift`): a window dimension larger than
    /// the input shrinks to it, and a dimension whose input fits in one window is not shifted.
    pub fn effective_window_shift(&self) -> ([usize; 2], [usize; 2]) {
        if self.always_partition {
            return (self.window_size, self.shift_size);
        }
        let mut window = [0; 2];
        let mut shift = [0; 2];
        for i in 0..2 {
            let r = self.input_resolution[i];
            window[i] = r.min(self.window_size[i]);
            shift[i] = if r <= window[i] {
                0
            } else {
                self.shift_size[i]
            };
        }
        (window, shift)
    }

    /// Builds the block with randomly initialised weights.
    pub fn init(&self, device: &Device) -> SwinBlock {
        let (window, shift) = self.effective_window_shift();
        let norm = || {
            LayerNormConfig::new(self.dim)
                .with_epsilon(self.norm_eps)
                .init(device)
        };
        SwinBlock {
            norm1: norm(),
            attn: WindowAttentionConfig::new(self.dim, self.num_heads)
                .with_window_size(window)
                .with_head_dim(self.head_dim)
                .with_qkv_bias(self.qkv_bias)
                .init(device),
            norm2: norm(),
            mlp: TokenMlpConfig::new(self.dim, (self.dim as f64 * self.mlp_ratio) as usize)
                .init(device),
            window_size: window,
            shift_size: shift,
        }
    }
}

/// Swin Transformer block (W-MSA or SW-MSA, then MLP) on `[B, H, W, C]`. timm keys:
/// `norm1.*`, `attn.relative_position_bias_table`, `attn.qkv.*`, `attn.proj.*`, `norm2.*`,
/// `mlp.fc1.*`, `mlp.fc2.*`.
#[derive(Module, Debug)]
pub struct SwinBlock {
    /// LayerNorm before the attention.
    pub norm1: LayerNorm,
    /// Window attention.
    pub attn: WindowAttention,
    /// LayerNorm before the MLP.
    pub norm2: LayerNorm,
    /// The MLP.
    pub mlp: TokenMlp,
    /// Effective window `[Wh, Ww]`.
    pub window_size: [usize; 2],
    /// Effective cyclic shift `[s_h, s_w]`.
    pub shift_size: [usize; 2],
}

impl SwinBlock {
    /// The shifted-window mask for an `h × w` input, `[nW, N, N]`, or `None` without a shift.
    pub fn attn_mask(&self, h: usize, w: usize, device: &Device) -> Option<Tensor<3>> {
        if self.shift_size == [0, 0] {
            return None;
        }
        let [wh, ww] = self.window_size;
        let (hp, wp) = (h.div_ceil(wh) * wh, w.div_ceil(ww) * ww);
        let n = wh * ww;
        let values = swin_attn_mask(hp, wp, self.window_size, self.shift_size);
        let nw = values.len() / (n * n);
        Some(Tensor::from_data(
            TensorData::new(values, [nw, n, n]),
            device,
        ))
    }

    /// The attention branch on the normalised map (timm's `_attn`).
    fn window_attention(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, h, w, c] = x.dims();
        let device = x.device();
        let [sh, sw] = self.shift_size;
        let [wh, ww] = self.window_size;
        let shifted = self.shift_size != [0, 0];
        let mut x = if shifted {
            x.roll(&[-(sh as i64), -(sw as i64)], &[1usize, 2])
        } else {
            x
        };
        let (pad_h, pad_w) = ((wh - h % wh) % wh, (ww - w % ww) % ww);
        if pad_h > 0 {
            x = Tensor::cat(vec![x, Tensor::zeros([b, pad_h, w, c], &device)], 1);
        }
        if pad_w > 0 {
            x = Tensor::cat(vec![x, Tensor::zeros([b, h + pad_h, pad_w, c], &device)], 2);
        }
        let (hp, wp) = (h + pad_h, w + pad_w);
        let windows =
            window_partition(x, self.window_size).reshape([b * (hp / wh) * (wp / ww), wh * ww, c]);
        let out = self
            .attn
            .forward(windows, self.attn_mask(h, w, &device))
            .reshape([b * (hp / wh) * (wp / ww), wh, ww, c]);
        let x = window_reverse(out, self.window_size, hp, wp).slice([0..b, 0..h, 0..w, 0..c]);
        if shifted {
            x.roll(&[sh as i64, sw as i64], &[1usize, 2])
        } else {
            x
        }
    }

    /// `[B, H, W, C] → [B, H, W, C]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, h, w, c] = x.dims();
        let x = x.clone() + self.window_attention(self.norm1.forward(x));
        let x = x.reshape([b, h * w, c]);
        let x = x.clone() + self.mlp.forward(self.norm2.forward(x));
        x.reshape([b, h, w, c])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_position_index_matches_timm() {
        // timm: get_relative_position_index(2, 2).
        assert_eq!(
            relative_position_index(2, 2),
            vec![4, 3, 1, 0, 5, 4, 2, 1, 7, 6, 4, 3, 8, 7, 5, 4]
        );
        // Non-square: max index (2Wh-1)(2Ww-1) - 1, centre (Wh-1)(2Ww-1) + Ww-1 on the diagonal.
        let idx = relative_position_index(3, 4);
        assert_eq!(*idx.iter().max().unwrap(), 5 * 7 - 1);
        assert!((0..12).all(|i| idx[i * 12 + i] == 2 * 7 + 3));
    }

    #[test]
    fn partition_and_reverse_are_inverse() {
        let device = Device::flex();
        let x = Tensor::<4>::random([2, 6, 8, 3], Distribution::Default, &device);
        let windows = window_partition(x.clone(), [3, 4]);
        assert_eq!(windows.dims(), [2 * 2 * 2, 3, 4, 3]);
        let y = window_reverse(windows, [3, 4], 6, 8);
        assert_eq!((x - y).abs().max().into_scalar::<f32>(), 0.0);
    }

    #[test]
    fn mask_has_timm_region_structure() {
        // 8 x 8, window 4, shift 2: the first window is one region, the last mixes four.
        let mask = swin_attn_mask(8, 8, [4, 4], [2, 2]);
        assert_eq!(mask.len(), 4 * 16 * 16);
        assert!(mask[..256].iter().all(|&v| v == 0.0));
        let last = &mask[3 * 256..];
        let zeros = last.iter().filter(|&&v| v == 0.0).count();
        assert_eq!(zeros, 4 * 4 * 4); // 4 regions of 4 tokens each
    }

    fn zeros_per_window(mask: &[f32], n: usize) -> Vec<usize> {
        mask.chunks(n * n)
            .map(|w| w.iter().filter(|&&v| v == 0.0).count())
            .collect()
    }

    #[test]
    fn mask_matches_timm_counts() {
        // timm SwinTransformerBlock(24, (9, 11), 3, window_size=(3, 4), shift_size=(1, 2))
        // .attn_mask: zero entries per window.
        let mask = swin_attn_mask(9, 12, [3, 4], [1, 2]);
        assert_eq!(
            zeros_per_window(&mask, 12),
            vec![144, 144, 72, 144, 144, 72, 80, 80, 40]
        );
        // (5, 9) with window 7, shift 3: timm clips to window (5, 7), shift (0, 3); the zero
        // row shift paints every row with one label, so only the columns split regions.
        let c = SwinBlockConfig::new(24, [5, 9])
            .with_window_size([7, 7])
            .with_shift_size([3, 3]);
        let (window, shift) = c.effective_window_shift();
        let mask = swin_attn_mask(5, 14, window, shift);
        assert_eq!(zeros_per_window(&mask, 35), vec![1225, 625]);
    }

    /// Training through shifted windows (a mask per window, shared by the images): the
    /// attention op's output and gradients for the tokens and the bias table equal those of
    /// the explicit formulation, and the step runs (Burn's own attention could not broadcast a
    /// per-window bias over the images and panicked).
    #[test]
    fn shifted_window_attention_trains_like_the_explicit_form() {
        let device = Device::flex().autodiff();
        let attn = WindowAttentionConfig::new(16, 2)
            .with_window_size([2, 3])
            .init(&device);
        // A 4 × 6 map: 2 × 2 windows of 6 tokens, shifted by (1, 1); 3 images.
        let mask = swin_attn_mask(4, 6, [2, 3], [1, 1]);
        let mask = Tensor::<3>::from_data(TensorData::new(mask, [4, 6, 6]), &device);
        let x = Tensor::<3>::random([3 * 4, 6, 16], Distribution::Normal(0.0, 1.0), &device);
        let r = Tensor::<3>::random([3 * 4, 6, 16], Distribution::Normal(0.0, 1.0), &device);
        let run = |explicit: bool| {
            let x = x.clone().require_grad();
            let y = if explicit {
                attn.forward_with_attention(x.clone(), Some(mask.clone())).0
            } else {
                attn.forward(x.clone(), Some(mask.clone()))
            };
            let grads = (y.clone() * r.clone()).sum().backward();
            let table = attn
                .relative_position_bias_table
                .grad(&grads)
                .expect("table");
            (y.inner(), x.grad(&grads).expect("x"), table)
        };
        let ((y, dx, dt), (y_ref, dx_ref, dt_ref)) = (run(false), run(true));
        let diff3 = |a: Tensor<3>, b: Tensor<3>| (a - b).abs().max().into_scalar::<f32>();
        assert!(diff3(y, y_ref) < 1e-5, "output");
        assert!(diff3(dx, dx_ref) < 1e-4, "token gradient");
        let dt = (dt - dt_ref).abs().max().into_scalar::<f32>();
        assert!(dt < 1e-4, "bias table gradient differs by {dt}");
    }

    #[test]
    fn window_shrinks_to_small_inputs() {
        let c = SwinBlockConfig::new(24, [5, 9])
            .with_window_size([7, 7])
            .with_shift_size([3, 3]);
        assert_eq!(c.effective_window_shift(), ([5, 7], [0, 3]));
    }
}
