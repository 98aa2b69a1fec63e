//! Neighborhood attention (2-D) from "Neighborhood Attention Transformer" (Hassani, Walton, Li,
//! Li, Shi, CVPR 2023) and its dilated form from "Dilated Neighborhood Attention Transformer"
//! (Hassani, Shi, 2022), following the official github.com/SHI-Labs/Neighborhood-Attention-Transformer
//! (`classification/nat.py`, `dinat.py`: `NATLayer` builds `natten.NeighborhoodAttention2D` with a
//! relative position bias) and NATTEN's semantics (github.com/SHI-Labs/NATTEN, v0.17.5:
//! `src/natten/na2d.py`, the naive CPU kernels `csrc/include/natten/cpu/naive/*` with
//! `get_window_start` / `get_pb_start`, and the size check `CheckArgsAgainstDim`). NATTEN runs
//! only as CUDA/C++ kernels; this block is plain tensor code and runs on every Burn backend.
//!
//! Every query attends to exactly `k × k` keys. Along each axis of length `L` the positions split
//! into `d` interleaved dilation groups (equal `i mod d`); inside its group the query takes the
//! `k` members centred on it, the window being **shifted (clamped) at the borders** rather than
//! truncated, so border queries see the same number of keys as interior ones:
//!
//! `logit[q, (a, b)] = scale · q · k[rᵢ + a·d, rⱼ + b·d] + rpb[h, pᵢ + a, pⱼ + b]`,
//! `y = proj(Σ softmax(logit) · v)`,
//!
//! with `rᵢ` the window start (NATTEN `get_window_start`) and `pᵢ + a = (keyᵢ − qᵢ)/d + k − 1`
//! the relative offset (NATTEN `get_pb_start`); `scale = head_dim^-0.5` unless `qk_scale`.
//!
//! Two paths compute the same thing:
//! * [`NeighborhoodAttention::forward`], O(N·k²): per-axis index tables of the window rows and
//!   columns gather the `k × k` keys and values of every query (two `select`s, no N × N
//!   tensor); [`NeighborhoodAttention::plan`] lists the shapes it builds. On the flex CPU device
//!   without autodiff one fused kernel reads the keys and values in place instead (no gathered
//!   copies; as fast as window attention);
//! * [`NeighborhoodAttention::forward_naive`], O(N²): full `N × N` logits, the rpb looked up
//!   by relative offset and the non-neighbours set to −∞. Kept as the test oracle; its
//!   neighbourhood is defined independently (clamped window inside the dilation group).
//!
//! Layout `[B, H, W, C]` in and out, as NATTEN. Both axes must be at least `k · d` (NATTEN ≥ 0.15
//! rejects smaller maps); with `legacy_pad` smaller maps are zero-padded on the right/bottom to
//! `k · d` **before** `qkv` (so the padded tokens, whose keys are the qkv bias, take part as keys)
//! and the output is cropped, as NATTEN ≤ 0.14's module did.
//!
//! Official keys: `qkv.{weight,bias}`, `rpb` `[heads, 2k−1, 2k−1]`, `proj.{weight,bias}`; they
//! load as they are (`KeyMap::identity()`; in NAT/DiNAT checkpoints they sit under
//! `levels.{i}.blocks.{j}.attn.`).

use crate::linear::{Linear, LinearConfig};
use burn::module::Param;
use burn::prelude::*;
use burn::tensor::activation::softmax;
use burn::tensor::ops::PadMode;
use burn::tensor::Distribution;

/// Configuration of [`NeighborhoodAttention`] (official `NeighborhoodAttention2D(dim, num_heads,
/// kernel_size, dilation, rel_pos_bias=True, qkv_bias, qk_scale)`).
#[derive(Config, Debug)]
pub struct NeighborhoodAttentionConfig {
    /// Channels `C` of the input and output; divisible by `num_heads`.
    pub dim: usize,
    /// Number of heads.
    pub num_heads: usize,
    /// Window size `k` per axis (odd, > 1; NAT uses 7).
    #[config(default = 7)]
    pub kernel_size: usize,
    /// Dilation `d` (DiNAT); 1 is NAT.
    #[config(default = 1)]
    pub dilation: usize,
    /// Bias in the `qkv` Linear.
    #[config(default = true)]
    pub qkv_bias: bool,
    /// Learnable relative position bias `rpb` (NAT/DiNAT always use it).
    #[config(default = true)]
    pub rel_pos_bias: bool,
    /// Overrides `head_dim^-0.5`.
    #[config(default = "None")]
    pub qk_scale: Option<f64>,
    /// Zero-pad maps smaller than `k · d` (NATTEN ≤ 0.14) instead of panicking.
    #[config(default = false)]
    pub legacy_pad: bool,
}

/// Neighborhood attention 2-D (NAT / DiNAT). Parameters `qkv`, `rpb`, `proj`.
#[derive(Module, Debug)]
pub struct NeighborhoodAttention {
    /// `Linear(C, 3C)`; output channels ordered `(q|k|v, head, head_dim)`.
    pub qkv: Linear,
    /// Relative position bias `[heads, 2k−1, 2k−1]`.
    pub rpb: Option<Param<Tensor<3>>>,
    /// Output projection `Linear(C, C)`.
    pub proj: Linear,
    num_heads: usize,
    head_dim: usize,
    kernel_size: usize,
    dilation: usize,
    scale: f64,
    legacy_pad: bool,
}

impl NeighborhoodAttentionConfig {
    /// Builds the block with randomly initialised weights (`rpb` ~ N(0, 0.02), as NATTEN's
    /// truncated normal).
    ///
    /// # Panics
    /// If `kernel_size` is even or < 3, `dilation` is 0, or `dim` is not divisible by
    /// `num_heads`.
    pub fn init(&self, device: &Device) -> NeighborhoodAttention {
        let k = self.kernel_size;
        assert!(
            k > 1 && k % 2 == 1,
            "neighborhood attention: kernel_size must be odd and > 1, got {k}"
        );
        assert!(
            self.dilation >= 1,
            "neighborhood attention: dilation must be >= 1"
        );
        assert!(
            self.num_heads > 0 && self.dim % self.num_heads == 0,
            "neighborhood attention: dim ({}) must be divisible by num_heads ({})",
            self.dim,
            self.num_heads
        );
        let head_dim = self.dim / self.num_heads;
        NeighborhoodAttention {
            qkv: LinearConfig::new(self.dim, 3 * self.dim)
                .with_bias(self.qkv_bias)
                .init(device),
            rpb: self.rel_pos_bias.then(|| {
                Param::from_tensor(Tensor::random(
                    [self.num_heads, 2 * k - 1, 2 * k - 1],
                    Distribution::Normal(0.0, 0.02),
                    device,
                ))
            }),
            proj: LinearConfig::new(self.dim, self.dim).init(device),
            num_heads: self.num_heads,
            head_dim,
            kernel_size: k,
            dilation: self.dilation,
            scale: self.qk_scale.unwrap_or((head_dim as f64).powf(-0.5)),
            legacy_pad: self.legacy_pad,
        }
    }
}

/// First key of a query's window along one axis (NATTEN `get_window_start`, non-causal): the
/// window is centred on the query inside its dilation group and clamped to the group's ends.
pub fn window_start(index: usize, length: usize, kernel_size: usize, dilation: usize) -> usize {
    let ns = (kernel_size / 2) as i64;
    let (index, length, dilation) = (index as i64, length as i64, dilation as i64);
    let group = index % dilation;
    let index_g = index / dilation;
    let mut length_g = (length + dilation - 1) / dilation;
    // The last groups are one shorter when the dilation does not divide the length.
    if group >= dilation - (length_g * dilation - length) {
        length_g -= 1;
    }
    let mut start = (index_g - ns).max(0);
    if index_g + ns >= length_g {
        start += length_g - index_g - ns - 1;
    }
    (start * dilation + group) as usize
}

/// Row (column) of `rpb` for the first key of the query's window (NATTEN `get_pb_start`): the
/// relative offset `(key − query)/d + k − 1` of that key.
pub fn pb_start(index: usize, length: usize, kernel_size: usize, dilation: usize) -> usize {
    let ns = kernel_size / 2;
    if dilation <= 1 {
        if index < ns {
            return kernel_size - 1 - index;
        }
        if index + ns >= length {
            return length - index - 1;
        }
        return ns;
    }
    if index < ns * dilation {
        return kernel_size - 1 - index / dilation;
    }
    if index + ns * dilation >= length {
        return (length - index - 1) / dilation;
    }
    ns
}

/// Where the bias of every (query, key) pair of an `[h, w]` map comes from in the table:
/// `rpb[head].flatten()[index]` is the bias of query `(i, j)` and its key `(a, b)` of the
/// window, laid out `[h, w, k, k]` as the forward adds it (an exporter that folds the lookup
/// into one constant stores the table that way).
pub fn rpb_index(map: [usize; 2], kernel_size: usize, dilation: usize) -> Vec<i64> {
    let [h, w] = map;
    let rows = axis_tables(h, kernel_size, dilation).pb;
    let cols = axis_tables(w, kernel_size, dilation).pb;
    let side = (2 * kernel_size - 1) as i64;
    let k = kernel_size;
    let mut index = Vec::with_capacity(h * w * k * k);
    for i in 0..h {
        for j in 0..w {
            for a in 0..k {
                for b in 0..k {
                    index.push(rows[i * k + a] * side + cols[j * k + b]);
                }
            }
        }
    }
    index
}

/// The shapes the efficient [`NeighborhoodAttention::forward`] builds for one input (it reshapes
/// with these very arrays). `H`, `W` are the (possibly padded) map, `m` the heads, `k²` the
/// window, `hd` the head dimension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighborhoodPlan {
    /// The input `[B, H₀, W₀, C]`.
    pub input: [usize; 4],
    /// The map attended over, `[H, W]` (`legacy_pad` may enlarge `[H₀, W₀]`).
    pub padded: [usize; 2],
    /// `qkv(x)` split into `[B, H, W, 3, m, hd]`.
    pub qkv: [usize; 6],
    /// One of q, k, v per head, `[B, m, H, W, hd]`.
    pub heads: [usize; 5],
    /// Keys (values) after gathering the window rows, `[B, m, H·k, W, hd]`.
    pub rows_gathered: [usize; 5],
    /// Keys (values) after gathering the columns too, `[B, m, H, k, W, k, hd]`.
    pub gathered: [usize; 7],
    /// The same reordered per query, `[B, m, H, W, k², hd]` (also the size of `q ⊙ keys` and
    /// `attn ⊙ values`).
    pub window: [usize; 6],
    /// Logits and attention weights, `[B, m, H, W, k²]`.
    pub logits: [usize; 5],
    /// The gathered relative position bias, `[1, m, H, W, k²]`.
    pub bias: [usize; 5],
}

impl NeighborhoodPlan {
    /// `(name, elements)` of every intermediate tensor of the efficient path.
    pub fn intermediates(&self) -> Vec<(&'static str, usize)> {
        let n = |s: &[usize]| s.iter().product::<usize>();
        vec![
            ("qkv", n(&self.qkv)),
            ("heads", n(&self.heads)),
            ("rows_gathered", n(&self.rows_gathered)),
            ("gathered", n(&self.gathered)),
            ("window", n(&self.window)),
            ("logits", n(&self.logits)),
            ("bias", n(&self.bias)),
        ]
    }

    /// The largest intermediate, in elements: `B·H·W·k²·C` (the gathered keys or values).
    pub fn largest_intermediate_elems(&self) -> usize {
        self.intermediates()
            .into_iter()
            .map(|(_, e)| e)
            .max()
            .unwrap_or(0)
    }
}

/// Per-axis index tables (key positions and rpb positions, `k` per query), flattened.
struct AxisTables {
    keys: Vec<i64>,
    pb: Vec<i64>,
}

fn axis_tables(length: usize, kernel_size: usize, dilation: usize) -> AxisTables {
    let mut keys = Vec::with_capacity(length * kernel_size);
    let mut pb = Vec::with_capacity(length * kernel_size);
    for i in 0..length {
        let start = window_start(i, length, kernel_size, dilation);
        let p = pb_start(i, length, kernel_size, dilation);
        for t in 0..kernel_size {
            keys.push((start + t * dilation) as i64);
            pb.push((p + t) as i64);
        }
    }
    AxisTables { keys, pb }
}

/// The sizes [`fused_neighborhood_attention`] works on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NeighborhoodShape {
    /// Batch `B`.
    pub(crate) batch: usize,
    /// Map height `H` (after any padding).
    pub(crate) height: usize,
    /// Map width `W`.
    pub(crate) width: usize,
    /// Heads `m`.
    pub(crate) heads: usize,
    /// Channels per head.
    pub(crate) head_dim: usize,
    /// Window side `k`.
    pub(crate) kernel_size: usize,
}

/// The attention of every query over its k × k neighbourhood, straight from the `qkv`
/// projection `[B, H, W, 3, m, hd]` (row-major, as `Linear` leaves it) to the heads' outputs
/// `[B, H, W, m·hd]`: per query and head, the logits `(scale·q)·k + rpb` of its k² keys, their
/// softmax and the weighted sum of the values, without gathering any window into memory. Rows
/// of the map run in parallel; the inner loops are compiled per instruction set (`pulp`).
/// `rows` / `cols` are the per-axis key and rpb positions (`k` per query).
fn fused_neighborhood_attention(
    qkv: &[f32],
    shape: NeighborhoodShape,
    scale: f32,
    rpb: Option<&[f32]>,
    rows: &AxisTables,
    cols: &AxisTables,
) -> Vec<f32> {
    use rayon::prelude::*;
    let c = shape.heads * shape.head_dim;
    let tokens = shape.batch * shape.height * shape.width;
    assert_eq!(qkv.len(), tokens * 3 * c, "qkv size");
    let mut out = vec![0f32; tokens * c];
    out.par_chunks_mut(shape.width * c)
        .enumerate()
        .for_each(|(row, out_row)| {
            pulp::Arch::new().dispatch(Row {
                qkv,
                shape,
                scale,
                rpb,
                rows,
                cols,
                row,
                out_row,
            })
        });
    out
}

/// One row of the map as a `pulp` operation: its `with_simd` and [`attend_row`] are forced
/// inline into pulp's function compiled for the CPU's instruction set (a closure is not, and
/// `mul_add` outside it becomes a libm call).
struct Row<'a> {
    qkv: &'a [f32],
    shape: NeighborhoodShape,
    scale: f32,
    rpb: Option<&'a [f32]>,
    rows: &'a AxisTables,
    cols: &'a AxisTables,
    row: usize,
    out_row: &'a mut [f32],
}

impl pulp::WithSimd for Row<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        attend_row(self)
    }
}

/// One row `(b, i)` of [`fused_neighborhood_attention`]: `out_row` is `[W, m·hd]`.
#[inline(always)]
fn attend_row(task: Row<'_>) {
    let Row {
        qkv,
        shape,
        scale,
        rpb,
        rows,
        cols,
        row,
        out_row,
    } = task;
    let NeighborhoodShape {
        height,
        width,
        heads,
        head_dim: hd,
        kernel_size: k,
        ..
    } = shape;
    let c = heads * hd;
    let (kk, side) = (k * k, 2 * k - 1);
    let (b, i) = (row / height, row % height);
    // The qkv offset of token (b, i, j).
    let token = |i: i64, j: i64| ((b * height + i as usize) * width + j as usize) * 3 * c;
    let mut q = vec![0f32; c];
    // Per head, the k² logits, then the attention weights.
    let mut weights = vec![0f32; heads * kk];
    let row_keys = &rows.keys[i * k..][..k];
    let row_pb = &rows.pb[i * k..][..k];
    for j in 0..width {
        let col_keys = &cols.keys[j * k..][..k];
        let col_pb = &cols.pb[j * k..][..k];
        let query = token(i as i64, j as i64);
        for (qs, &v) in q.iter_mut().zip(&qkv[query..][..c]) {
            *qs = v * scale;
        }
        // Keys outer, heads inner: a key token's k of every head is one contiguous run.
        for (a, &key_row) in row_keys.iter().enumerate() {
            for (bb, &key_col) in col_keys.iter().enumerate() {
                let key = &qkv[token(key_row, key_col) + c..][..c];
                for (head, (q, key)) in q.chunks_exact(hd).zip(key.chunks_exact(hd)).enumerate() {
                    weights[head * kk + a * k + bb] = dot(q, key);
                }
            }
        }
        for (head, logits) in weights.chunks_exact_mut(kk).enumerate() {
            if let Some(rpb) = rpb {
                for (logits, &pb_row) in logits.chunks_exact_mut(k).zip(row_pb) {
                    let bias = &rpb[(head * side + pb_row as usize) * side..][..side];
                    for (logit, &pb_col) in logits.iter_mut().zip(col_pb) {
                        *logit += bias[pb_col as usize];
                    }
                }
            }
            let max = logits.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            // The exponentials in a loop of their own (a running sum beside them would keep
            // the compiler from vectorising it).
            for l in logits.iter_mut() {
                *l = crate::cpu_kernels::exp_nonpositive(*l - max);
            }
            let inv = 1.0 / logits.iter().sum::<f32>();
            for l in logits.iter_mut() {
                *l *= inv;
            }
        }
        let out = &mut out_row[j * c..][..c];
        for (a, &key_row) in row_keys.iter().enumerate() {
            for (bb, &key_col) in col_keys.iter().enumerate() {
                let value = &qkv[token(key_row, key_col) + 2 * c..][..c];
                for (head, (out, value)) in out
                    .chunks_exact_mut(hd)
                    .zip(value.chunks_exact(hd))
                    .enumerate()
                {
                    let p = weights[head * kk + a * k + bb];
                    for (o, &v) in out.iter_mut().zip(value) {
                        *o = p.mul_add(v, *o);
                    }
                }
            }
        }
    }
}

/// `a · b` with eight partial sums held in one vector register.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let (a8, a_rest) = a.as_chunks::<8>();
    let (b8, b_rest) = b.as_chunks::<8>();
    let mut acc = [0f32; 8];
    for (x, y) in a8.iter().zip(b8) {
        for l in 0..8 {
            acc[l] = x[l].mul_add(y[l], acc[l]);
        }
    }
    // A pairwise sum: three dependent adds, not seven.
    let quad = [
        acc[0] + acc[4],
        acc[1] + acc[5],
        acc[2] + acc[6],
        acc[3] + acc[7],
    ];
    let mut total = (quad[0] + quad[2]) + (quad[1] + quad[3]);
    for (x, y) in a_rest.iter().zip(b_rest) {
        total = x.mul_add(*y, total);
    }
    total
}

fn int_tensor(values: Vec<i64>, device: &Device) -> Tensor<1, Int> {
    let n = values.len();
    Tensor::from_data(TensorData::new(values, [n]), device)
}

impl NeighborhoodAttention {
    /// Kernel size `k`.
    pub fn kernel_size(&self) -> usize {
        self.kernel_size
    }

    /// Dilation `d`.
    pub fn dilation(&self) -> usize {
        self.dilation
    }

    /// Number of heads.
    pub fn num_heads(&self) -> usize {
        self.num_heads
    }

    /// The map size attended over for an `[h, w]` input (padded with `legacy_pad`).
    ///
    /// # Panics
    /// If a side is below `k · d` and `legacy_pad` is off (NATTEN rejects such maps).
    fn attended_size(&self, h: usize, w: usize) -> [usize; 2] {
        let window = self.kernel_size * self.dilation;
        if h >= window && w >= window {
            return [h, w];
        }
        assert!(
            self.legacy_pad,
            "neighborhood attention: the map ({h}×{w}) must be at least kernel_size × dilation = \
             {window} on both sides (NATTEN's requirement); pad the input or enable legacy_pad"
        );
        [h.max(window), w.max(window)]
    }

    /// The shapes of the efficient forward for a `[B, H, W, C]` input.
    ///
    /// # Panics
    /// As [`forward`](Self::forward).
    pub fn plan(&self, input: [usize; 4]) -> NeighborhoodPlan {
        let [b, h0, w0, c] = input;
        assert_eq!(
            c,
            self.num_heads * self.head_dim,
            "neighborhood attention: expected {} channels, got {c}",
            self.num_heads * self.head_dim
        );
        let [h, w] = self.attended_size(h0, w0);
        let (m, hd, k) = (self.num_heads, self.head_dim, self.kernel_size);
        NeighborhoodPlan {
            input,
            padded: [h, w],
            qkv: [b, h, w, 3, m, hd],
            heads: [b, m, h, w, hd],
            rows_gathered: [b, m, h * k, w, hd],
            gathered: [b, m, h, k, w, k, hd],
            window: [b, m, h, w, k * k, hd],
            logits: [b, m, h, w, k * k],
            bias: [1, m, h, w, k * k],
        }
    }

    /// Elements of the largest tensor the efficient forward builds for a `[b, h, w, C]` input:
    /// `b·H·W·k²·C`, linear in the number of tokens.
    pub fn largest_intermediate_elems(&self, b: usize, h: usize, w: usize) -> usize {
        self.plan([b, h, w, self.num_heads * self.head_dim])
            .largest_intermediate_elems()
    }

    /// Zero-pads the map to `plan.padded` (right and bottom).
    fn pad(&self, x: Tensor<4>, plan: &NeighborhoodPlan) -> Tensor<4> {
        let [_, h0, w0, _] = plan.input;
        let [h, w] = plan.padded;
        if (h, w) == (h0, w0) {
            return x;
        }
        x.pad([(0, h - h0), (0, w - w0), (0, 0)], PadMode::Constant(0.0))
    }

    /// q (scaled), k, v as `[B, m, H, W, hd]`.
    fn project(&self, x: Tensor<4>, plan: &NeighborhoodPlan) -> [Tensor<5>; 3] {
        let qkv = self.qkv.forward(x).reshape(plan.qkv);
        let [b, h, w, _, m, hd] = plan.qkv;
        let part = |i: usize| {
            qkv.clone()
                .narrow(3, i, 1)
                .reshape([b, h, w, m, hd])
                .permute([0, 3, 1, 2, 4])
        };
        [part(0).mul_scalar(self.scale), part(1), part(2)]
    }

    /// `[B, m, H, W, hd]` → the per-query windows `[B, m, H, W, k², hd]`.
    fn gather_windows(
        t: Tensor<5>,
        rows: Tensor<1, Int>,
        cols: Tensor<1, Int>,
        plan: &NeighborhoodPlan,
    ) -> Tensor<6> {
        let t = t.select(2, rows);
        debug_assert_eq!(t.dims(), plan.rows_gathered);
        t.select(3, cols)
            .reshape(plan.gathered)
            .permute([0, 1, 2, 4, 3, 5, 6])
            .reshape(plan.window)
    }

    /// `[B, m, H, W, hd]` → `[B, H₀, W₀, C]` through the crop and `proj`.
    fn merge_heads(&self, out: Tensor<5>, plan: &NeighborhoodPlan) -> Tensor<4> {
        let [b, h0, w0, c] = plan.input;
        let [h, w] = plan.padded;
        let out = out.permute([0, 2, 3, 1, 4]).reshape([b, h, w, c]);
        let out = if (h, w) != (h0, w0) {
            out.slice([0..b, 0..h0, 0..w0, 0..c])
        } else {
            out
        };
        self.proj.forward(out)
    }

    /// `[B, H, W, C] → [B, H, W, C]`, O(H·W·k²) time and memory.
    ///
    /// On the flex CPU device without autodiff the attention runs as one fused kernel over the
    /// `qkv` output ([`fused_neighborhood_attention`]: each query's k² logits, softmax and
    /// weighted values in registers, nothing gathered); elsewhere (training, GPUs) as tensor
    /// ops that gather every query's window.
    ///
    /// # Panics
    /// If `C` is not the configured `dim`, or `H` or `W` is below `k · d` without `legacy_pad`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let plan = self.plan(x.dims());
        let device = x.device();
        let fused = crate::cpu_kernels::on_plain_flex(&x);
        let x = self.pad(x, &plan);
        let [h, w] = plan.padded;
        let (k, d) = (self.kernel_size, self.dilation);
        let rows = axis_tables(h, k, d);
        let cols = axis_tables(w, k, d);
        if fused {
            let [b, _, _, c] = plan.input;
            let qkv = self
                .qkv
                .forward(x)
                .into_data()
                .try_into_vec::<f32>()
                .expect("float tensors on flex are f32");
            let rpb = self.rpb.as_ref().map(|p| {
                p.val()
                    .into_data()
                    .try_into_vec::<f32>()
                    .expect("float tensors on flex are f32")
            });
            let out = fused_neighborhood_attention(
                &qkv,
                NeighborhoodShape {
                    batch: b,
                    height: h,
                    width: w,
                    heads: self.num_heads,
                    head_dim: self.head_dim,
                    kernel_size: k,
                },
                self.scale as f32,
                rpb.as_deref(),
                &rows,
                &cols,
            );
            let out = Tensor::<4>::from_data(TensorData::new(out, [b, h, w, c]), &device);
            let [_, h0, w0, _] = plan.input;
            let out = if (h, w) != (h0, w0) {
                out.slice([0..b, 0..h0, 0..w0, 0..c])
            } else {
                out
            };
            return self.proj.forward(out);
        }
        let row_keys = int_tensor(rows.keys, &device);
        let col_keys = int_tensor(cols.keys, &device);

        let [q, key, value] = self.project(x, &plan);
        let keys = Self::gather_windows(key, row_keys.clone(), col_keys.clone(), &plan);
        let mut logits: Tensor<5> = (q.unsqueeze_dim::<6>(4) * keys)
            .sum_dim(5)
            .reshape(plan.logits);
        if let Some(rpb) = &self.rpb {
            let [_, m, _, _, kk] = plan.bias;
            let bias = rpb
                .val()
                .select(1, int_tensor(rows.pb, &device))
                .select(2, int_tensor(cols.pb, &device))
                .reshape([m, h, k, w, k])
                .permute([0, 1, 3, 2, 4])
                .reshape([1, m, h, w, kk]);
            logits = logits + bias;
        }
        let attn = softmax(logits, 4);
        let values = Self::gather_windows(value, row_keys, col_keys, &plan);
        let out: Tensor<5> = (attn.unsqueeze_dim::<6>(5) * values)
            .sum_dim(4)
            .reshape(plan.heads);
        self.merge_heads(out, &plan)
    }

    /// The same result through full `N × N` logits (N = H·W) with −∞ outside each query's
    /// neighbourhood: O(N²) memory, for tests.
    pub fn forward_naive(&self, x: Tensor<4>) -> Tensor<4> {
        let plan = self.plan(x.dims());
        let device = x.device();
        let x = self.pad(x, &plan);
        let [h, w] = plan.padded;
        let [b, m, _, _, hd] = plan.heads;
        let n = h * w;
        let (k, d) = (self.kernel_size, self.dilation);
        let span = 2 * k - 1;

        // Neighbourhood, defined directly: the k members of the query's dilation group nearest
        // to it, the window clamped to the group's ends; rpb at the relative offset.
        let near = |q: usize, len: usize| -> Vec<usize> {
            let group: Vec<usize> = (q % d..len).step_by(d).collect();
            let pos = q / d;
            let start = pos.saturating_sub(k / 2).min(group.len() - k);
            group[start..start + k].to_vec()
        };
        let mut allowed = vec![false; n * n];
        let mut rel = vec![0i64; n * n];
        for qi in 0..h {
            let rows = near(qi, h);
            for qj in 0..w {
                let cols = near(qj, w);
                let q = qi * w + qj;
                for &ki in &rows {
                    for &kj in &cols {
                        let di = (ki as i64 - qi as i64) / d as i64 + k as i64 - 1;
                        let dj = (kj as i64 - qj as i64) / d as i64 + k as i64 - 1;
                        allowed[q * n + ki * w + kj] = true;
                        rel[q * n + ki * w + kj] = di * span as i64 + dj;
                    }
                }
            }
        }

        let [q, key, value] = self.project(x, &plan);
        let flat = |t: Tensor<5>| t.reshape([b, m, n, hd]);
        let mut logits = flat(q).matmul(flat(key).swap_dims(2, 3));
        if let Some(rpb) = &self.rpb {
            let bias = rpb
                .val()
                .reshape([m, span * span])
                .select(1, int_tensor(rel, &device))
                .reshape([1, m, n, n]);
            logits = logits + bias;
        }
        let blocked: Tensor<4, Bool> =
            Tensor::<2, Bool>::from_data(TensorData::new(allowed, [n, n]), &device)
                .bool_not()
                .reshape([1, 1, n, n])
                .expand([b, m, n, n]);
        let attn = softmax(logits.mask_fill(blocked, f32::NEG_INFINITY), 3);
        let out = attn.matmul(flat(value)).reshape(plan.heads);
        self.merge_heads(out, &plan)
    }
}
