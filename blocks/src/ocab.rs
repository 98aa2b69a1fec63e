//! The overlapping cross-attention block (OCAB) of HAT, "Activating More Pixels in Image
//! Super-Resolution Transformer" (Chen, Wang, Zhou, Qiao, Dong; CVPR 2023), exactly the official
//! `OCAB` of `hat/archs/hat_arch.py` (github.com/XPixelGroup/HAT), with its parameter names.
//!
//! On a channels-last `[B, H, W, C]` map whose sides are multiples of the window `M`, with the
//! overlapping window `M_o = ⌊γ·M⌋ + M` (γ = `overlap_ratio`, 0.5 in HAT) and `p = (M_o − M)/2`:
//!
//! 1. `x̂ = LN₁(x)`, `[Q, K, V] = x̂ W_qkv + b_qkv` (one `C → 3C` linear, `qkv`);
//! 2. queries: `Q` split into the non-overlapping `M × M` windows (`N_q = M²` tokens each);
//!    keys and values: `K`, `V` zero-padded by `p` on every side and cut into the `M_o × M_o`
//!    windows centred on the query windows, with stride `M` (the official `nn.Unfold(M_o,
//!    stride=M, padding=p)`; `N_k = M_o²` tokens each; the padded zeros are keys and values
//!    like any other, not masked);
//! 3. per window and head (`d = C / heads`):
//!    `A = softmax(Q Kᵀ · d^-½ + B)`, `y = A V`, with `B[h, i, j] = T[idx(i, j), h]`
//!    (`relative_position_bias_table` `T`, `[(M + M_o − 1)², heads]`);
//! 4. windows merged back, `x ← x + y W_proj + b_proj`, then `x ← x + MLP(LN₂(x))` (`fc1`,
//!    exact GELU, `fc2`, hidden `⌊C · mlp_ratio⌋`).
//!
//! The index (the official `HAT.calculate_rpi_oca`): for query `i` at `(y_i, x_i)` in its
//! `M × M` window and key `j` at `(y_j, x_j)` in its `M_o × M_o` window,
//! `idx = (y_j − y_i + M − M_o + 1)(M + M_o − 1) + (x_j − x_i + M − M_o + 1)`. Its offsets range
//! over `[2 − M_o, M]`, so it has **negative entries**, which PyTorch's indexing wraps around
//! (`T[−k] = T[rows − k]`); [`ocab_relative_position_index`] gives the official values and the
//! block reads the table at `idx mod rows`, which is what the official code reads.
//!
//! Official keys (under `layers.{i}.residual_group.overlap_attn.`): `norm1.*`, `qkv.*`,
//! `relative_position_bias_table`, `proj.*`, `norm2.*`, `mlp.fc1.*`, `mlp.fc2.*`. The index is
//! built here (the official model keeps it as its `relative_position_index_OCA` buffer).
//!
//! ```
//! use burn::prelude::*;
//! use gaze_blocks::ocab::OcabConfig;
//!
//! let device = Device::flex();
//! // Window 4, overlapping key/value windows of 6 × 6.
//! let ocab = OcabConfig::new(12, 2, 4).init(&device);
//! assert_eq!(ocab.overlap_win_size, 6);
//! let x = Tensor::<4>::ones([1, 8, 12, 12], &device);
//! assert_eq!(ocab.forward(x).dims(), [1, 8, 12, 12]);
//! ```

use crate::layer_norm::{LayerNorm, LayerNormConfig};
use crate::linear::{Linear, LinearConfig};
use burn::module::Param;
use burn::prelude::*;
use burn::tensor::module::attention;
use burn::tensor::ops::{AttentionModuleOptions, PadMode};
use burn::tensor::Distribution;

use crate::layers::{index_buffer, window_partition, window_reverse};
use crate::vit_attention::{TokenMlp, TokenMlpConfig};

/// The official `HAT.calculate_rpi_oca` for window `window` and overlapping window
/// `overlap_window`, flattened row-major: entry `i · M_o² + j` for query `i` (row-major in the
/// `M × M` window) and key `j` (row-major in the `M_o × M_o` window). Values as the official
/// buffer holds them, negative ones included (see the module docs).
pub fn ocab_relative_position_index(window: usize, overlap_window: usize) -> Vec<i64> {
    let (m, mo) = (window as i64, overlap_window as i64);
    let offset = m - mo + 1;
    let side = m + mo - 1;
    let mut index = Vec::with_capacity((m * m * mo * mo) as usize);
    for i in 0..m * m {
        let (yi, xi) = (i / m, i % m);
        for j in 0..mo * mo {
            let (yj, xj) = (j / mo, j % mo);
            index.push((yj - yi + offset) * side + (xj - xi + offset));
        }
    }
    index
}

/// Configuration of [`Ocab`] (the arguments of the official `OCAB`, same defaults).
#[derive(Config, Debug)]
pub struct OcabConfig {
    /// Token width `C`.
    pub dim: usize,
    /// Number of heads.
    pub num_heads: usize,
    /// Query window side `M`.
    pub window_size: usize,
    /// Overlap ratio γ: key/value windows are `⌊γ·M⌋ + M` wide.
    #[config(default = 0.5)]
    pub overlap_ratio: f64,
    /// MLP hidden width ratio: hidden = `⌊dim · mlp_ratio⌋`.
    #[config(default = 2.0)]
    pub mlp_ratio: f64,
    /// Whether `qkv` has a bias.
    #[config(default = true)]
    pub qkv_bias: bool,
    /// Epsilon of the LayerNorms (`nn.LayerNorm`: 1e-5).
    #[config(default = 1e-5)]
    pub norm_eps: f64,
}

impl OcabConfig {
    /// The key/value window side `M_o = ⌊γ·M⌋ + M`.
    pub fn overlap_win_size(&self) -> usize {
        (self.window_size as f64 * self.overlap_ratio) as usize + self.window_size
    }

    /// Builds the block with random weights (the bias table ~ N(0, 0.02²)).
    ///
    /// # Panics
    /// If `M_o − M` is odd: the official unfold then yields fewer key windows than query
    /// windows (every HAT configuration has an even difference).
    pub fn init(&self, device: &Device) -> Ocab {
        let (m, mo) = (self.window_size, self.overlap_win_size());
        assert!(
            (mo - m).is_multiple_of(2),
            "OCAB: overlapping window {mo} − window {m} must be even"
        );
        let rows = (m + mo - 1) * (m + mo - 1);
        let index = ocab_relative_position_index(m, mo)
            .into_iter()
            .map(|i| i.rem_euclid(rows as i64))
            .collect();
        let norm = || {
            LayerNormConfig::new(self.dim)
                .with_epsilon(self.norm_eps)
                .init(device)
        };
        Ocab {
            norm1: norm(),
            qkv: LinearConfig::new(self.dim, 3 * self.dim)
                .with_bias(self.qkv_bias)
                .init(device),
            relative_position_bias_table: Param::from_tensor(Tensor::random(
                [rows, self.num_heads],
                Distribution::Normal(0.0, 0.02),
                device,
            )),
            proj: LinearConfig::new(self.dim, self.dim).init(device),
            norm2: norm(),
            mlp: TokenMlpConfig::new(self.dim, (self.dim as f64 * self.mlp_ratio) as usize)
                .init(device),
            relative_position_index: index_buffer(index, device),
            window_size: m,
            overlap_win_size: mo,
            num_heads: self.num_heads,
            head_dim: self.dim / self.num_heads,
        }
    }
}

/// The overlapping cross-attention block on `[B, H, W, C]` (see the module docs).
#[derive(Module, Debug)]
pub struct Ocab {
    /// LayerNorm before the attention.
    pub norm1: LayerNorm,
    /// Fused projection `C → 3C` (queries, keys, values).
    pub qkv: Linear,
    /// Learned bias per relative offset and head, `[(M + M_o − 1)², heads]`.
    pub relative_position_bias_table: Param<Tensor<2>>,
    /// Output projection `C → C`.
    pub proj: Linear,
    /// LayerNorm before the MLP.
    pub norm2: LayerNorm,
    /// The MLP.
    pub mlp: TokenMlp,
    /// The official index modulo the table's rows (`M² · M_o²` entries), built at init and
    /// never loaded (the key maps ignore it).
    pub relative_position_index: Param<Tensor<1, Int>>,
    /// Query window side `M`.
    pub window_size: usize,
    /// Key/value window side `M_o`.
    pub overlap_win_size: usize,
    /// Number of heads.
    pub num_heads: usize,
    /// Width per head `d`.
    pub head_dim: usize,
}

impl Ocab {
    /// The relative position bias `B`, `[1, heads, M², M_o²]`.
    pub fn relative_position_bias(&self) -> Tensor<4> {
        let (nq, nk) = (
            self.window_size * self.window_size,
            self.overlap_win_size * self.overlap_win_size,
        );
        let bias: Tensor<3> = self
            .relative_position_bias_table
            .val()
            .select(0, self.relative_position_index.val())
            .reshape([nq, nk, self.num_heads]);
        bias.permute([2, 0, 1]).unsqueeze()
    }

    /// `[B, H, W, C] → [B, H, W, C]`; `H`, `W` multiples of the window.
    ///
    /// # Panics
    /// If a side is not a multiple of the window.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, h, w, c] = x.dims();
        let (m, mo) = (self.window_size, self.overlap_win_size);
        assert!(
            h.is_multiple_of(m) && w.is_multiple_of(m),
            "OCAB: {h}×{w} map is not a multiple of the window {m}"
        );
        let (heads, d) = (self.num_heads, self.head_dim);
        let (nq, nk) = (m * m, mo * mo);
        let nwin = b * (h / m) * (w / m);

        let qkv = self.qkv.forward(self.norm1.forward(x.clone()));
        let q = qkv.clone().narrow(3, 0, c);
        let kv = qkv.narrow(3, c, 2 * c);

        // Query windows [B·nW, M², C], windows batch-major then row-major.
        let q = window_partition(q, [m, m]).reshape([nwin, nq, c]);
        // Key/value windows: zero padding p, then M_o × M_o windows with stride M (the
        // official unfold), in the same window order: [B·nW, M_o², 2C].
        let p = (mo - m) / 2;
        let kv = kv.pad([(p, p), (p, p), (0, 0)], PadMode::Constant(0.0));
        let kv: Tensor<5> = kv.unfold(1, mo, m); // [B, H/M, W + 2p, 2C, M_o]
        let kv: Tensor<6> = kv.unfold(2, mo, m); // [B, H/M, W/M, 2C, M_o, M_o]
        let kv = kv.permute([0, 1, 2, 4, 5, 3]).reshape([nwin, nk, 2 * c]);

        let split = |t: Tensor<3>, n: usize| t.reshape([nwin, n, heads, d]).swap_dims(1, 2);
        let k = split(kv.clone().narrow(2, 0, c), nk);
        let v = split(kv.narrow(2, c, c), nk);
        let q = split(q, nq);

        let bias = self.relative_position_bias().expand([nwin, heads, nq, nk]);
        let options = AttentionModuleOptions {
            scale: Some((d as f64).powf(-0.5)),
            softcap: None,
            is_causal: false,
        };
        let y = attention(q, k, v, None, Some(bias), options)
            .swap_dims(1, 2)
            .reshape([nwin, m, m, c]);
        let y = window_reverse(y, [m, m], h, w);

        let x = x + self.proj.forward(y);
        x.clone() + self.mlp.forward(self.norm2.forward(x))
    }
}

/// The official names of an [`Ocab`] are its field names; its `relative_position_index`
/// (built at init) is ignored.
pub fn key_map() -> gaze_weights::KeyMap {
    gaze_weights::KeyMap::identity().ignoring(&[r"(^|\.)relative_position_index$"])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_matches_the_official_calculate_rpi_oca() {
        // HAT.calculate_rpi_oca() with window_size 2, overlap_ratio 0.5 (window 3).
        assert_eq!(
            ocab_relative_position_index(2, 3),
            vec![
                0, 1, 2, 4, 5, 6, 8, 9, 10, -1, 0, 1, 3, 4, 5, 7, 8, 9, -4, -3, -2, 0, 1, 2, 4, 5,
                6, -5, -4, -3, -1, 0, 1, 3, 4, 5
            ]
        );
        // HAT's window 16 (overlap 24): [256, 576] entries in [-880, 640], every one of the
        // 39² table rows read once modulo 1521.
        let idx = ocab_relative_position_index(16, 24);
        assert_eq!(idx.len(), 256 * 576);
        assert_eq!(*idx.iter().min().unwrap(), -880);
        assert_eq!(*idx.iter().max().unwrap(), 640);
        let mut rows: Vec<i64> = idx.iter().map(|i| i.rem_euclid(1521)).collect();
        rows.sort_unstable();
        rows.dedup();
        assert_eq!(rows.len(), 1521);
    }

    #[test]
    fn shapes() {
        let device = Device::flex();
        let ocab = OcabConfig::new(8, 2, 4).init(&device);
        assert_eq!(ocab.overlap_win_size, 6);
        assert_eq!(ocab.relative_position_bias().dims(), [1, 2, 16, 36]);
        let x = Tensor::<4>::random([2, 4, 8, 8], Distribution::Default, &device);
        assert_eq!(ocab.forward(x).dims(), [2, 4, 8, 8]);
    }
}
