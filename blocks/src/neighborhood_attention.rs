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
//!   copies; vectorised across queries, as fast as window attention), and on WGPU without
//!   autodiff one CubeCL kernel does (a thread per query and head);
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
pub(crate) struct AxisTables {
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

/// The fused kernel vectorised across queries (x86-64 with AVX2 + FMA; AVX-512 where present).
///
/// The scalar kernel above runs one query at a time: each of its k² logits is a `hd`-long dot
/// product ending in a horizontal sum, and ran at ~17 GFLOP/s. Here a vector holds `L`
/// queries of one map row (8 in AVX2, 16 in AVX-512) and the loops run over channels, so every
/// instruction is a full-width FMA: for a tile of consecutive interior queries `j … j+L−1`,
/// the key at window offset `(a, b)` of each lies at column `start(j) + b·d + lane`, one
/// unaligned load from a channel row of the keys. `qkv` therefore comes as channel rows, in
/// blocks of map rows (`[B·H / G, 3, m, hd, G·W]`, the projection computed transposed per
/// block, [`Linear::forward_planes`]). Tiles whose windows do not shift with their queries
/// (the clamped borders, maps narrower than a tile) read every key from two vectors through a
/// permute; only dilated borders too wide for two vectors gather lane by lane.
///
/// Per tile and head: logits `[k², L]` (scale, relative position bias), their softmax lane by
/// lane, then the weighted sum of the values, 8 channels at a time, stored as channel rows in
/// the same blocks, which `proj` reads as they are ([`Linear::forward_from_planes`]). In
/// AVX-512 two query rows of a dilation group share each pass (their windows share k − 1 rows).
#[cfg(target_arch = "x86_64")]
pub(crate) mod simd {
    use super::{window_start, AxisTables, NeighborhoodShape};
    use crate::cpu_kernels::lanes::{self, InVectors, Lanes};
    use crate::cpu_kernels::SendPtr;
    use rayon::prelude::*;

    /// The widest vector's lanes (AVX-512).
    const MAX_LANES: usize = 16;

    /// Whether the CPU runs the kernel (AVX2 + FMA).
    pub(crate) fn available() -> bool {
        pulp::x86::V3::try_new().is_some()
    }

    /// How a tile reads its keys and values.
    const CONTIGUOUS: u8 = 0;
    const WINDOW: u8 = 1;
    const GATHER: u8 = 2;

    /// Up to `L` consecutive queries of a map row processed together.
    #[derive(Clone, Copy, Debug)]
    struct Tile {
        /// First query's column.
        first: usize,
        /// Queries in the tile (`L` unless the row's last).
        len: usize,
        /// Column of each query's first key (unused lanes repeat the last query's).
        starts: [i32; MAX_LANES],
        /// `rpb` column of each query's first key.
        pb: [usize; MAX_LANES],
        /// [`CONTIGUOUS`]: lane `l`'s keys at `starts[0] + l` (interior queries: one vector
        /// load); [`WINDOW`]: every key inside the `2·L` columns from `base` (two loads and a
        /// permute per key vector: the clamped borders); [`GATHER`] otherwise (large
        /// dilations at the borders).
        kind: u8,
        /// First column of a window tile's keys.
        base: usize,
        /// Place in the row's tiles.
        index: usize,
    }

    /// The relative position bias of every lane of every tile, head, `rpb` row and window
    /// column, `[tiles, m, 2k − 1, k, MAX_LANES]`. The lanes of window and gather tiles look
    /// up different `rpb` columns: one load from here per logit vector instead of the lanes
    /// written one by one and read back as a vector (a store-forwarding stall each time: the
    /// kernel took 7% longer at 56² and 112², one thread) or a gather (as fast on this CPU,
    /// slow on others). Contiguous tiles' entries stay zero: their lanes share one column.
    fn lane_bias(rpb: &[f32], tiles: &[Tile], heads: usize, k: usize, lanes: usize) -> Vec<f32> {
        let side = 2 * k - 1;
        let mut table = vec![0f32; tiles.len() * heads * side * k * MAX_LANES];
        for (t, tile) in tiles.iter().enumerate() {
            if tile.kind == CONTIGUOUS {
                continue;
            }
            for head in 0..heads {
                for pr in 0..side {
                    for b in 0..k {
                        let row = ((t * heads + head) * side + pr) * k + b;
                        let bias = &rpb[(head * side + pr) * side + b..];
                        for l in 0..lanes {
                            table[row * MAX_LANES + l] = bias[tile.pb[l]];
                        }
                    }
                }
            }
        }
        table
    }

    /// How each tile of a row reads (tests).
    #[cfg(test)]
    pub(super) fn tile_kinds(
        width: usize,
        cols: &AxisTables,
        k: usize,
        d: usize,
        lanes: usize,
    ) -> Vec<u8> {
        tiles(width, cols, k, d, lanes)
            .iter()
            .map(|t| t.kind)
            .collect()
    }

    /// A row's tiles (the same for every row): `L` queries at a time from column 0.
    fn tiles(width: usize, cols: &AxisTables, k: usize, d: usize, lanes: usize) -> Vec<Tile> {
        (0..width)
            .step_by(lanes)
            .map(|first| {
                let len = lanes.min(width - first);
                let query = |l: usize| first + l.min(len - 1);
                let starts: [i32; MAX_LANES] =
                    core::array::from_fn(|l| window_start(query(l), width, k, d) as i32);
                // (With dilation the starts are not monotonic.)
                let lo = starts[..len].iter().min().copied().unwrap_or(0) as usize;
                let hi = starts[..len].iter().max().copied().unwrap_or(0) as usize;
                let span = hi + (k - 1) * d + 1 - lo;
                let kind = if len == lanes && (0..len).all(|l| starts[l] as usize == lo + l) {
                    CONTIGUOUS
                } else if span <= 2 * lanes {
                    WINDOW
                } else {
                    GATHER
                };
                Tile {
                    first,
                    len,
                    starts,
                    pb: core::array::from_fn(|l| cols.pb[query(l) * k] as usize),
                    kind,
                    base: lo,
                    index: first / lanes,
                }
            })
            .collect()
    }

    /// Neighborhood attention of every query from `planes` into channel rows. The map's rows
    /// come in blocks of `block_rows = G` (dividing H): `planes` is `[B·H / G, 3, m, hd, G·W]`
    /// (q|k|v, each head's channels; a channel of a block holds its G map rows one after the
    /// other), the output `[B·H / G, m·hd, G·W]`, as [`Linear::forward_planes`] writes and
    /// [`Linear::forward_from_planes`] reads with `group = G·W`. `avx512: false` keeps to AVX2
    /// (the tests run both).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn attention(
        planes: &[f32],
        shape: NeighborhoodShape,
        dilation: usize,
        scale: f32,
        rpb: Option<&[f32]>,
        rows: &AxisTables,
        cols: &AxisTables,
        block_rows: usize,
        avx512: bool,
    ) -> Vec<f32> {
        let NeighborhoodShape {
            batch,
            height,
            width,
            heads,
            head_dim,
            kernel_size: k,
        } = shape;
        let c = heads * head_dim;
        let tokens = batch * height * width;
        assert_eq!(planes.len(), 3 * c * tokens, "qkv planes size");
        assert!(
            block_rows > 0 && height % block_rows == 0,
            "{block_rows} rows per block of a map of {height}"
        );
        assert!(
            tokens < i32::MAX as usize,
            "map too large for 32-bit gather offsets"
        );
        let lanes = lanes::lanes_of_run(avx512);
        let tiles = tiles(width, cols, k, dilation, lanes);
        let lane_bias = rpb.map(|rpb| lane_bias(rpb, &tiles, heads, k, lanes));
        // Every value is written: each row task stores every tile's queries, every head.
        let mut out = crate::cpu_kernels::unwritten(tokens * c);
        let out_ptr = SendPtr(out.as_mut_ptr().cast());
        // Query rows in pairs `(i, i + d)` of one dilation group: their windows overlap.
        let mut tasks = Vec::new();
        for image in 0..batch {
            for group in 0..dilation.min(height) {
                let members: Vec<usize> = (group..height).step_by(dilation).collect();
                for pair in members.chunks(2) {
                    tasks.push((image, [pair[0], pair[pair.len() - 1]], pair.len()));
                }
            }
        }
        tasks
            .into_par_iter()
            .for_each(|(image, query_rows, count)| {
                let task = RowTask {
                    planes,
                    shape,
                    dilation,
                    scale,
                    rpb,
                    rows,
                    tiles: &tiles,
                    lane_bias: lane_bias.as_deref(),
                    image,
                    query_rows,
                    count,
                    block_rows,
                    out: out_ptr,
                };
                lanes::run_vectorised(task, avx512);
            });
        // SAFETY: the tasks cover every image's rows; each wrote its rows' queries (the tiles
        // cover a row) for every head and channel.
        unsafe { crate::cpu_kernels::assume_init(out) }
    }

    /// One or two query rows of one image, every head.
    struct RowTask<'a> {
        planes: &'a [f32],
        shape: NeighborhoodShape,
        dilation: usize,
        scale: f32,
        rpb: Option<&'a [f32]>,
        rows: &'a AxisTables,
        tiles: &'a [Tile],
        /// Per tile, head, `rpb` row and window column, the bias of each lane: `[tiles, m,
        /// 2k − 1, k, L]` (see [`lane_bias`]).
        lane_bias: Option<&'a [f32]>,
        /// The image `b` and its query rows (`count` of them: 1 or 2).
        image: usize,
        query_rows: [usize; 2],
        count: usize,
        /// Map rows per block of the planes (see [`attention`]).
        block_rows: usize,
        /// `[B·H / G, m·hd, G·W]`; this task writes its query rows only.
        out: SendPtr,
    }

    impl InVectors for RowTask<'_> {
        #[inline(always)]
        fn run<V: Lanes>(self) {
            match self.shape.kernel_size {
                3 => self.rows::<V, 3>(),
                5 => self.rows::<V, 5>(),
                7 => self.rows::<V, 7>(),
                9 => self.rows::<V, 9>(),
                11 => self.rows::<V, 11>(),
                13 => self.rows::<V, 13>(),
                k => unreachable!("kernel size {k} has no vector kernel (see `supports`)"),
            }
        }
    }

    /// One channel of the keys or values on one map row, as a tile reads it: the row, and for a
    /// window tile the two vectors holding every key of the tile.
    #[derive(Clone, Copy)]
    struct KeyRow<V> {
        row: *const f32,
        lo: V,
        hi: V,
    }

    /// Reads of one tile and head from the planes (`KIND`: [`CONTIGUOUS`], [`WINDOW`],
    /// [`GATHER`]).
    struct TileView<'a, V: Lanes, const K: usize, const KIND: u8> {
        planes: &'a [f32],
        /// First map row of the tile's image (`b·H`).
        image_row: usize,
        /// Channel 0 of this head within a part.
        head_channel: usize,
        width: usize,
        /// Map rows per block; a block's channel rows are `stride = block_rows · W` apart.
        block_rows: usize,
        stride: usize,
        /// Channels per part (`m·hd`).
        channels: usize,
        first: usize,
        len: usize,
        /// First key column (contiguous), first column of the window (window).
        start: usize,
        dilation: usize,
        /// Window tiles: lanes of the two window vectors inside the row.
        lo_len: usize,
        hi_len: usize,
        /// Per lane, key column `b` of the window: from `start` (window), from the row's start
        /// (gather).
        keys: [V::Index; K],
        /// Per lane, the query's column (gather).
        queries: V::Index,
    }

    impl<'a, V: Lanes, const K: usize, const KIND: u8> TileView<'a, V, K, KIND> {
        #[inline(always)]
        fn new(task: &RowTask<'a>, tile: &Tile, head: usize) -> Self {
            let NeighborhoodShape {
                height,
                width,
                heads,
                head_dim,
                ..
            } = task.shape;
            let d = task.dilation;
            let start = if KIND == WINDOW {
                tile.base
            } else {
                tile.starts[0] as usize
            };
            // (Plain loops and direct intrinsic calls: a closure would not be compiled for the
            // instruction set.)
            let query_cols: [i32; MAX_LANES] =
                core::array::from_fn(|l| (tile.first + l.min(tile.len - 1)) as i32);
            // SAFETY: the arrays hold MAX_LANES ≥ LANES values.
            let queries = unsafe { V::load_index(query_cols.as_ptr()) };
            let mut keys = [queries; K];
            let from = if KIND == WINDOW { start as i32 } else { 0 };
            for (b, key) in keys.iter_mut().enumerate() {
                let mut cols = tile.starts;
                for col in cols.iter_mut() {
                    *col += (b * d) as i32 - from;
                }
                // SAFETY: as above.
                *key = unsafe { V::load_index(cols.as_ptr()) };
            }
            let lo_len = V::LANES.min(width - start);
            Self {
                planes: task.planes,
                image_row: task.image * height,
                head_channel: head * head_dim,
                width,
                block_rows: task.block_rows,
                stride: task.block_rows * width,
                channels: heads * head_dim,
                first: tile.first,
                len: tile.len,
                start,
                dilation: d,
                lo_len,
                hi_len: V::LANES.min(width - start - lo_len),
                keys,
                queries,
            }
        }

        /// Map row `r` of channel `ch` of `part` (0 q, 1 k, 2 v).
        #[inline(always)]
        fn row(&self, part: usize, ch: usize, r: usize) -> *const f32 {
            let map_row = self.image_row + r;
            let (block, within) = (map_row / self.block_rows, map_row % self.block_rows);
            let channel = block * 3 * self.channels + part * self.channels + self.head_channel + ch;
            let offset = channel * self.stride + within * self.width;
            debug_assert!(offset + self.width <= self.planes.len());
            // SAFETY: `r` < H and `ch` < hd: a row inside the planes.
            unsafe { self.planes.as_ptr().add(offset) }
        }

        /// The tile's queries from `row` (a channel row of q).
        #[inline(always)]
        fn query(&self, row: *const f32) -> V {
            // SAFETY: the queries are columns `first .. first + len` of the row; a full vector
            // only for a contiguous tile (`len = L`).
            unsafe {
                match KIND {
                    CONTIGUOUS => V::load(row.add(self.first)),
                    WINDOW => V::load_first(row.add(self.first), self.len),
                    _ => V::gather(row, self.queries),
                }
            }
        }

        /// A channel row of the keys or values.
        #[inline(always)]
        fn key_row(&self, row: *const f32) -> KeyRow<V> {
            // SAFETY: the window's columns `start .. start + lo_len + hi_len` lie in the row.
            unsafe {
                if KIND == WINDOW {
                    let lo = row.add(self.start);
                    KeyRow {
                        row,
                        lo: V::load_first(lo, self.lo_len),
                        hi: V::load_first(lo.add(V::LANES), self.hi_len),
                    }
                } else {
                    KeyRow {
                        row,
                        lo: V::zero(),
                        hi: V::zero(),
                    }
                }
            }
        }

        /// Column `b` of each lane's window from `keys`.
        #[inline(always)]
        fn key(&self, keys: &KeyRow<V>, b: usize) -> V {
            // SAFETY: window columns of the row (contiguous tiles: `L` consecutive ones;
            // window tiles: permute indices < 2·L inside the loaded window).
            unsafe {
                match KIND {
                    CONTIGUOUS => V::load(keys.row.add(self.start + b * self.dilation)),
                    WINDOW => V::permute2(keys.lo, keys.hi, self.keys[b]),
                    _ => V::gather(keys.row, self.keys[b]),
                }
            }
        }
    }

    /// Map rows per block of the planes for a `[B, H, W]` map: blocks of at most 256 tokens
    /// (the projections run one `gemm` per block: per-row blocks of 56 tokens made the `qkv`
    /// product 10% slower than one whole-map `gemm`, blocks of 224 as fast), at least four
    /// blocks per batch for the thread pool.
    pub(crate) fn block_rows(batch: usize, height: usize, width: usize) -> usize {
        (1..=height)
            .filter(|&g| {
                height % g == 0 && (g == 1 || (g * width <= 256 && batch * height / g >= 4))
            })
            .max()
            .unwrap_or(1)
    }

    /// Kernel sizes the vector kernel is compiled for.
    pub(crate) fn supports(kernel_size: usize) -> bool {
        matches!(kernel_size, 3 | 5 | 7 | 9 | 11 | 13)
    }

    impl RowTask<'_> {
        /// The task's query rows, kernel size `K`.
        #[inline(always)]
        fn rows<V: Lanes, const K: usize>(&self) {
            // Two query rows per pass where the 32 AVX-512 registers hold both rows'
            // accumulators (their windows share k − 1 key rows: each key and value vector
            // loaded serves both); AVX2 runs them one at a time.
            if V::LANES == 16 && self.count == 2 && K <= 7 {
                self.rows_pass::<V, K, 2>(self.query_rows);
            } else {
                for &i in &self.query_rows[..self.count] {
                    self.rows_pass::<V, K, 1>([i]);
                }
            }
        }

        /// Every tile and head of query rows `rows` (same image).
        #[inline(always)]
        fn rows_pass<V: Lanes, const K: usize, const R: usize>(&self, rows: [usize; R]) {
            // Per query row, the logits then weights `[k + 1, k, L]` of one tile: row `a` of
            // the window, column `b`, lane; row `k` zero (the weights of a key row outside
            // that query row's window).
            let mut weights = vec![0f32; R * (K + 1) * K * V::LANES];
            let weights = &mut weights;
            for head in 0..self.shape.heads {
                for tile in self.tiles {
                    match tile.kind {
                        CONTIGUOUS => {
                            self.tile::<V, K, CONTIGUOUS, R, 8>(tile, head, rows, weights)
                        }
                        WINDOW if R == 1 => {
                            self.tile::<V, K, WINDOW, R, 8>(tile, head, rows, weights)
                        }
                        // (Fewer channels per pass: each holds two window vectors.)
                        WINDOW => self.tile::<V, K, WINDOW, R, 4>(tile, head, rows, weights),
                        _ => self.tile::<V, K, GATHER, R, 4>(tile, head, rows, weights),
                    }
                }
            }
        }

        /// One tile of query rows `rows`, one head, read as `KIND` says; `C` channels per pass
        /// of the value sum.
        #[inline(always)]
        fn tile<V: Lanes, const K: usize, const KIND: u8, const R: usize, const C: usize>(
            &self,
            tile: &Tile,
            head: usize,
            rows: [usize; R],
            weights: &mut [f32],
        ) {
            let NeighborhoodShape {
                width,
                heads,
                head_dim: hd,
                ..
            } = self.shape;
            let lanes = V::LANES;
            let view = TileView::<V, K, KIND>::new(self, tile, head);
            let side = 2 * K - 1;
            // The key rows of the R windows (sorted, as the windows are), and where each lies
            // in each query row's window (`K`: outside it).
            let windows: [&[i64]; R] =
                core::array::from_fn(|rr| &self.rows.keys[rows[rr] * K..][..K]);
            let mut key_rows = [0usize; 2 * 13];
            let mut n_keys = 0;
            for window in windows {
                for &r in window {
                    if !key_rows[..n_keys].contains(&(r as usize)) {
                        key_rows[n_keys] = r as usize;
                        n_keys += 1;
                    }
                }
            }
            let key_rows = &key_rows[..n_keys];
            let position = |rr: usize, r: usize| {
                windows[rr]
                    .iter()
                    .position(|&w| w as usize == r)
                    .unwrap_or(K)
            };
            // Row `a`, column `b` of query row `rr`'s weights.
            let at = |rr: usize, a: usize, b: usize| ((rr * (K + 1) + a) * K + b) * lanes;
            // SAFETY (of the blocks below): register values, and loads and stores of whole
            // vectors inside `weights` (`at` < R·(K+1)·K·L) and the output rows of this task.
            let scale = unsafe { V::splat(self.scale) };
            let mut max = unsafe { [V::splat(f32::NEG_INFINITY); R] };
            // Logits `scale·q·k + rpb`: key rows outer, channels, then the row's k keys (R·k
            // accumulators; one key vector serves R query vectors).
            for &r in key_rows {
                unsafe {
                    let mut acc = [[V::zero(); K]; R];
                    // Channel rows are `width` apart.
                    let mut q_rows: [*const f32; R] = [view.row(0, 0, rows[0]); R];
                    for rr in 1..R {
                        q_rows[rr] = view.row(0, 0, rows[rr]);
                    }
                    let mut k_row = view.row(1, 0, r);
                    for _ in 0..hd {
                        let keys = view.key_row(k_row);
                        let mut q = [V::zero(); R];
                        for rr in 0..R {
                            q[rr] = view.query(q_rows[rr]);
                            q_rows[rr] = q_rows[rr].add(view.stride);
                        }
                        for b in 0..K {
                            let key = view.key(&keys, b);
                            for rr in 0..R {
                                acc[rr][b] = V::mul_add(q[rr], key, acc[rr][b]);
                            }
                        }
                        k_row = k_row.add(view.stride);
                    }
                    for rr in 0..R {
                        let a = position(rr, r);
                        if a == K {
                            continue;
                        }
                        let pr = self.rows.pb[rows[rr] * K + a] as usize;
                        for b in 0..K {
                            let bias = match self.rpb {
                                Some(rpb) => {
                                    let bias = &rpb[(head * side + pr) * side + b..];
                                    if KIND == CONTIGUOUS {
                                        V::splat(bias[tile.pb[0]])
                                    } else {
                                        let lanes = self.lane_bias.expect("built with rpb");
                                        let row = ((tile.index * heads + head) * side + pr) * K + b;
                                        V::load(lanes[row * MAX_LANES..].as_ptr())
                                    }
                                }
                                None => V::zero(),
                            };
                            let logit = V::mul_add(acc[rr][b], scale, bias);
                            max[rr] = V::max(max[rr], logit);
                            logit.store(weights[at(rr, a, b)..].as_mut_ptr());
                        }
                    }
                }
            }
            // Softmax per lane: e^(logit − max) here, the division by the sum on the output.
            let mut inv = unsafe { [V::zero(); R] };
            for rr in 0..R {
                let mut sum = unsafe { V::zero() };
                for logit in weights[at(rr, 0, 0)..at(rr, K, 0)].chunks_exact_mut(lanes) {
                    unsafe {
                        let e = lanes::exp_nonpositive(V::sub(V::load(logit.as_ptr()), max[rr]));
                        sum = V::add(sum, e);
                        e.store(logit.as_mut_ptr());
                    }
                }
                inv[rr] = unsafe { V::div(V::splat(1.0), sum) };
            }
            // Σ p · v, C channels at a time (the last pass repeats the last channel).
            let mut ch0 = 0;
            while ch0 < hd {
                let n = C.min(hd - ch0);
                let chs: [usize; C] = core::array::from_fn(|t| ch0 + t.min(n - 1));
                unsafe {
                    let mut acc = [[V::zero(); C]; R];
                    for &r in key_rows {
                        let mut a = [K; R];
                        for rr in 0..R {
                            a[rr] = position(rr, r);
                        }
                        // (Loops, not `map`: a closure is not compiled for the instruction set.)
                        let v_row = view.row(2, 0, r);
                        let mut values = [view.key_row(v_row.add(chs[0] * view.stride)); C];
                        for t in 1..C {
                            values[t] = view.key_row(v_row.add(chs[t] * view.stride));
                        }
                        for b in 0..K {
                            let mut p = [V::zero(); R];
                            for rr in 0..R {
                                p[rr] = V::load(weights[at(rr, a[rr], b)..].as_ptr());
                            }
                            for t in 0..C {
                                let value = view.key(&values[t], b);
                                for rr in 0..R {
                                    acc[rr][t] = V::mul_add(p[rr], value, acc[rr][t]);
                                }
                            }
                        }
                    }
                    // Channel rows of the output `[B·H / G, m·hd, G·W]`: the tile's columns.
                    for rr in 0..R {
                        let map_row = self.image * self.shape.height + rows[rr];
                        let (block, within) =
                            (map_row / view.block_rows, map_row % view.block_rows);
                        for t in 0..n {
                            let channel = (block * heads + head) * hd + ch0 + t;
                            let dst = self
                                .out
                                .get()
                                .add(channel * view.stride + within * width + tile.first);
                            let y = V::mul(acc[rr][t], inv[rr]);
                            if KIND == CONTIGUOUS {
                                y.store(dst);
                            } else {
                                y.store_first(dst, tile.len);
                            }
                        }
                    }
                }
                ch0 += C;
            }
        }
    }
}

/// Other architectures run the scalar kernel.
#[cfg(not(target_arch = "x86_64"))]
pub(crate) mod simd {
    use super::{AxisTables, NeighborhoodShape};

    pub(crate) fn available() -> bool {
        false
    }

    pub(crate) fn supports(_: usize) -> bool {
        false
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn attention(
        _: &[f32],
        _: NeighborhoodShape,
        _: usize,
        _: f32,
        _: Option<&[f32]>,
        _: &AxisTables,
        _: &AxisTables,
        _: usize,
        _: bool,
    ) -> Vec<f32> {
        unreachable!("available() is false")
    }

    pub(crate) fn block_rows(_: usize, _: usize, _: usize) -> usize {
        1
    }
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
    /// `qkv` output, nothing gathered: vectorised across the queries of a map row where the CPU
    /// has AVX2 (`simd`, the projections reading and writing channel rows), else one query
    /// at a time (`fused_neighborhood_attention`); on WGPU without autodiff as one CubeCL
    /// kernel (`cube`); elsewhere (training, other devices) as tensor ops that gather every
    /// query's window.
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
            let rpb = self.rpb.as_ref().map(|p| {
                p.val()
                    .into_data()
                    .try_into_vec::<f32>()
                    .expect("float tensors on flex are f32")
            });
            let shape = NeighborhoodShape {
                batch: b,
                height: h,
                width: w,
                heads: self.num_heads,
                head_dim: self.head_dim,
                kernel_size: k,
            };
            let scale = self.scale as f32;
            let [_, h0, w0, _] = plan.input;
            let crop = |out: Tensor<4>| {
                if (h, w) != (h0, w0) {
                    out.slice([0..b, 0..h0, 0..w0, 0..c])
                } else {
                    out
                }
            };
            if simd::available() && simd::supports(k) {
                // Channel rows in and out of the kernel; both projections read and write them
                // without transposing copies.
                let block_rows = simd::block_rows(b, h, w);
                let group = block_rows * w;
                let planes = self.qkv.forward_planes(x, group).expect("on plain flex");
                let out = simd::attention(
                    &planes,
                    shape,
                    d,
                    scale,
                    rpb.as_deref(),
                    &rows,
                    &cols,
                    block_rows,
                    true,
                );
                // (The projection's buffer goes before the output projection allocates its own.)
                drop(planes);
                let out = self
                    .proj
                    .forward_from_planes(&out, b * h * w, group, &device);
                return crop(out.reshape([b, h, w, c]));
            }
            let qkv = self
                .qkv
                .forward(x)
                .into_data()
                .try_into_vec::<f32>()
                .expect("float tensors on flex are f32");
            let out =
                fused_neighborhood_attention(&qkv, shape, scale, rpb.as_deref(), &rows, &cols);
            let out = Tensor::<4>::from_data(TensorData::new(out, [b, h, w, c]), &device);
            return self.proj.forward(crop(out));
        }
        if cube::applies(self, &x) {
            // WGPU without autodiff: one kernel over the `qkv` projection.
            let [b, h0, w0, c] = plan.input;
            let out = cube::attention(self, self.qkv.forward(x), &plan);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu_kernels::{max_abs_diff, to_planes};

    fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// The vector kernel (AVX2 and AVX-512) equals the scalar one on maps with interior and
    /// border tiles, narrow maps (gather tiles only), dilation, head sizes not a multiple of 8,
    /// batches and no bias.
    #[test]
    fn vector_kernel_equals_scalar_kernel() {
        if !simd::available() {
            eprintln!("skipped: no AVX2 on this CPU (the scalar kernel runs)");
            return;
        }
        // (batch, height, width, heads, head_dim, k, dilation, bias)
        let cases = [
            (1, 9, 56, 3, 32, 7, 1, true),
            (2, 8, 23, 2, 12, 3, 2, true),
            (1, 7, 7, 4, 16, 7, 1, true),
            (1, 16, 40, 2, 8, 5, 3, false),
            (1, 13, 19, 1, 20, 13, 1, true),
            (2, 10, 37, 3, 4, 9, 1, true),
            (1, 35, 70, 2, 8, 7, 5, true),
        ];
        // Every way a tile reads (CONTIGUOUS, WINDOW, GATHER) at both vector widths.
        for lanes in [8, 16] {
            let mut kinds: Vec<u8> = cases
                .iter()
                .flat_map(|&(_, _, width, _, _, k, d, _)| {
                    simd::tile_kinds(width, &axis_tables(width, k, d), k, d, lanes)
                })
                .collect();
            kinds.sort();
            kinds.dedup();
            assert_eq!(kinds, [0, 1, 2], "tile kinds at {lanes} lanes");
        }
        for (seed, &(batch, height, width, heads, head_dim, k, d, bias)) in cases.iter().enumerate()
        {
            let shape = NeighborhoodShape {
                batch,
                height,
                width,
                heads,
                head_dim,
                kernel_size: k,
            };
            let c = heads * head_dim;
            let tokens = batch * height * width;
            let qkv = random(tokens * 3 * c, seed as u64 + 1);
            // The kernel's planes (`[B·H / G, 3·m·hd, G·W]`) from token-major values, in
            // blocks of one map row and of the most rows that divide H (up to 4).
            let g = (1..=4).rev().find(|g| height % g == 0).unwrap();
            let side = 2 * k - 1;
            let rpb = bias.then(|| random(heads * side * side, 99 + seed as u64));
            let rows = axis_tables(height, k, d);
            let cols = axis_tables(width, k, d);
            let scale = (head_dim as f32).powf(-0.5);
            let tokens_out =
                fused_neighborhood_attention(&qkv, shape, scale, rpb.as_deref(), &rows, &cols);
            for (block_rows, avx512) in [(1, false), (1, true), (g, false), (g, true)] {
                let planes = to_planes(&qkv, 3 * c, block_rows * width);
                let want = to_planes(&tokens_out, c, block_rows * width);
                let got = simd::attention(
                    &planes,
                    shape,
                    d,
                    scale,
                    rpb.as_deref(),
                    &rows,
                    &cols,
                    block_rows,
                    avx512,
                );
                let diff = max_abs_diff(&got, &want);
                assert!(
                    diff <= 1e-5,
                    "case {seed} (avx512 {avx512}, {block_rows} rows per block): max abs diff {diff}"
                );
            }
        }
    }
}

/// Neighborhood attention as one CubeCL kernel on Burn's WGPU backend (inference: a tensor
/// without autodiff). The tensor-op path gathers k² copies of the keys and values and runs
/// about ten kernels; here one thread per query and head reads its k × k keys and values in
/// place from the `qkv` projection: logits `scale·q·k + rpb`, softmax, weighted values, as
/// the CPU kernels.
pub(crate) mod cube {
    use super::{NeighborhoodAttention, NeighborhoodPlan};
    use burn::backend::wgpu::CubeTensor;
    use burn::backend::Wgpu;
    use cubecl::prelude::*;
    use cubecl::{calculate_cube_count_elemwise, CubeDim};

    type BurnTensor<const D: usize> = burn::tensor::Tensor<D>;

    /// First key of query `index`'s window along an axis of `length` (NATTEN
    /// `get_window_start`; as [`super::window_start`], in unsigned arithmetic).
    #[cube]
    fn window_start(index: usize, length: usize, kernel_size: usize, dilation: usize) -> usize {
        let ns = kernel_size / 2;
        let group = index % dilation;
        let index_g = index / dilation;
        let mut length_g = length.div_ceil(dilation);
        if group + (length_g * dilation - length) >= dilation {
            length_g -= 1;
        }
        let mut start = 0usize;
        if index_g >= ns {
            start = index_g - ns;
        }
        if index_g + ns >= length_g {
            // start + length_g − index_g − ns − 1 ≥ 0 (length_g ≥ k).
            start = start + length_g - (index_g + ns + 1);
        }
        start * dilation + group
    }

    /// `rpb` row (column) of query `index`'s first key (NATTEN `get_pb_start`, as
    /// [`super::pb_start`]).
    #[cube]
    fn pb_start(index: usize, length: usize, kernel_size: usize, dilation: usize) -> usize {
        let ns = kernel_size / 2;
        let mut pb = ns;
        if index < ns * dilation {
            pb = kernel_size - 1 - index / dilation;
        } else if index + ns * dilation >= length {
            pb = (length - index - 1) / dilation;
        }
        pb
    }

    /// One thread per (token, head): `qkv` `[B, H, W, 3·m·hd]` (any strides), `rpb`
    /// `[m, 2k−1, 2k−1]`, `out` `[B, H, W, m·hd]` contiguous. `k` and `d` come twice: as
    /// compile-time sizes of the loops and arrays, and as run-time values for the index
    /// arithmetic.
    #[cube(launch, address_type = "dynamic")]
    #[allow(clippy::too_many_arguments)]
    fn neighborhood_kernel<E: Float>(
        qkv: &Tensor<E>,
        rpb: &Tensor<E>,
        out: &mut Tensor<E>,
        scale: f32,
        k: usize,
        d: usize,
        #[comptime] heads: usize,
        #[comptime] head_dim: usize,
        #[comptime] kernel_size: usize,
        #[comptime] dilation: usize,
        #[comptime] has_bias: bool,
        #[define(E)] _dtype: ElemType,
    ) {
        let height = qkv.shape(1);
        let width = qkv.shape(2);
        let batch = qkv.shape(0);
        if ABSOLUTE_POS >= batch * height * width * heads {
            terminate!();
        }
        let head = ABSOLUTE_POS % heads;
        let token = ABSOLUTE_POS / heads;
        let j = token % width;
        let i = (token / width) % height;
        let b = token / (width * height);
        let channels = heads * head_dim;
        let scale_e = E::cast_from(scale);
        let (s0, s1, s2, step) = (qkv.stride(0), qkv.stride(1), qkv.stride(2), qkv.stride(3));
        let image = b * s0;
        let head_offset = head * head_dim * step;

        let row0 = window_start(i, height, k, d);
        let col0 = window_start(j, width, k, d);
        let pb_row = pb_start(i, height, k, d);
        let pb_col = pb_start(j, width, k, d);
        let query = image + i * s1 + j * s2 + head_offset;
        let key_part = channels * step;

        let mut logits = Array::new(kernel_size * kernel_size);
        let mut max = E::new(-3.4e38_f32);
        for a in 0..kernel_size {
            for c in 0..kernel_size {
                let token = image + (row0 + a * dilation) * s1 + (col0 + c * dilation) * s2;
                let key = token + key_part + head_offset;
                let mut dot = E::new(0.0_f32);
                for t in 0..head_dim {
                    dot += qkv[query + t * step] * qkv[key + t * step];
                }
                let mut logit = dot * scale_e;
                if has_bias {
                    logit += rpb[head * rpb.stride(0)
                        + (pb_row + a) * rpb.stride(1)
                        + (pb_col + c) * rpb.stride(2)];
                }
                logits[a * kernel_size + c] = logit;
                max = max.max(logit);
            }
        }
        let mut sum = E::new(0.0_f32);
        for n in 0..kernel_size * kernel_size {
            let e = (logits[n] - max).exp();
            logits[n] = e;
            sum += e;
        }
        let mut acc = Array::new(head_dim);
        for t in 0..head_dim {
            acc[t] = E::new(0.0_f32);
        }
        for a in 0..kernel_size {
            for c in 0..kernel_size {
                let token = image + (row0 + a * dilation) * s1 + (col0 + c * dilation) * s2;
                let value = token + 2 * key_part + head_offset;
                let p = logits[a * kernel_size + c];
                for t in 0..head_dim {
                    acc[t] += p * qkv[value + t * step];
                }
            }
        }
        let base = token * channels + head * head_dim;
        for t in 0..head_dim {
            out[base + t] = acc[t] / sum;
        }
    }

    /// Whether the kernel runs `block` on `x`: an f32 WGPU tensor without autodiff, and the
    /// relative position bias likewise (elsewhere the caller's tensor ops).
    pub(crate) fn applies(block: &NeighborhoodAttention, x: &BurnTensor<4>) -> bool {
        f32_on_wgpu(x.clone()) && block.rpb.as_ref().is_none_or(|rpb| f32_on_wgpu(rpb.val()))
    }

    fn f32_on_wgpu<const D: usize>(t: BurnTensor<D>) -> bool {
        t.try_into_primitive::<Wgpu>()
            .is_ok_and(|t| t.dtype == burn::tensor::DType::F32)
    }

    /// The attention of the heads `[B, H, W, m·hd]` from the `qkv` projection `[B, H, W, 3·C]`
    /// on the WGPU device ([`applies`] holds).
    pub(crate) fn attention(
        block: &NeighborhoodAttention,
        qkv: BurnTensor<4>,
        plan: &NeighborhoodPlan,
    ) -> BurnTensor<4> {
        let on_wgpu = "checked by `applies`";
        let qkv = qkv.try_into_primitive::<Wgpu>().expect(on_wgpu);
        let rpb = block
            .rpb
            .as_ref()
            .map(|rpb| rpb.val().try_into_primitive::<Wgpu>().expect(on_wgpu));
        let [b, h, w, _, m, hd] = plan.qkv;
        let shape = [b, h, w, m * hd];
        let elements = shape.iter().product::<usize>();
        let client = qkv.client.clone();
        let handle = client.empty(elements * core::mem::size_of::<f32>());
        let out = CubeTensor::new_contiguous(
            client.clone(),
            qkv.device.clone(),
            burn::tensor::Shape::new(shape),
            handle,
            burn::tensor::DType::F32,
        );
        let threads = b * h * w * m;
        let cube_dim = CubeDim::new(&client, threads);
        let cube_count = calculate_cube_count_elemwise(&client, threads, cube_dim);
        let dtype = f32::elem_type_native();
        let has_bias = rpb.is_some();
        // Without a bias the kernel never reads `rpb`; any tensor fills the slot.
        let rpb = rpb.unwrap_or_else(|| qkv.clone());
        let (qkv, rpb, out_arg) = (qkv.binding(), rpb.binding(), out.clone().binding());
        let address_type = qkv
            .required_address_type(dtype.size())
            .max(rpb.required_address_type(dtype.size()))
            .max(out_arg.required_address_type(dtype.size()));
        neighborhood_kernel::launch(
            &client,
            cube_count,
            cube_dim,
            address_type,
            qkv.into_tensor_arg(),
            rpb.into_tensor_arg(),
            out_arg.into_tensor_arg(),
            block.scale as f32,
            block.kernel_size,
            block.dilation,
            m,
            hd,
            block.kernel_size,
            block.dilation,
            has_bias,
            dtype,
        );
        BurnTensor::from_primitive::<Wgpu>(out)
    }
}
