//! The Swin Transformer backbone exactly as timm 1.0.31 builds it
//! (`timm/models/swin_transformer.py`, `SwinTransformer`), with timm's parameter names, so timm
//! checkpoints load through [`key_map`] without conversion (their `relative_position_index` and
//! `attn_mask` buffers are ignored: gaze recomputes them). The original Microsoft checkpoints
//! use another layout (each stage's `downsample` at its end, in `layers.i` where timm has
//! `layers.i+1`; `head.weight` for timm's `head.fc.weight`), which timm converts in its
//! `checkpoint_filter_fn`: load timm's release of those weights.
//!
//! * Liu et al., "Swin Transformer: Hierarchical Vision Transformer using Shifted Windows",
//!   ICCV 2021.
//!
//! Layout (timm keys in brackets), channels-last `[B, H, W, C]` inside:
//!
//! 1. patch embedding [`patch_embed.proj`, `patch_embed.norm`]: `p × p` stride-`p` convolution,
//!    then LayerNorm over channels. An image whose sides are not multiples of `p` is zero-padded
//!    bottom/right first (timm's `PatchEmbed(dynamic_img_pad=True)`; timm's `SwinTransformer`
//!    itself rejects such sizes).
//! 2. four stages [`layers.{i}`]: stage `i > 0` starts with patch merging
//!    [`layers.{i}.downsample.{norm,reduction}`]: an odd `H` or `W` is zero-padded bottom/right
//!    to even, each 2×2 neighbourhood is gathered into `4C` channels in timm's order
//!    `(h0,w0), (h1,w0), (h0,w1), (h1,w1)` (the original `x0, x1, x2, x3`), LayerNorm over
//!    `4C`, then a bias-free Linear `4C → 2C`. Then `depths[i]` [`SwinBlock`]s
//!    [`layers.{i}.blocks.{j}`], unshifted for even `j` and shifted by `window / 2` for odd `j`.
//! 3. final LayerNorm [`norm`] and the classifier [`head.fc`] on the global average over
//!    `H, W`.
//!
//! Window and shift per stage are timm's `_calc_window_shift` at the **configured**
//! resolution (`img_size / p / 2^i`, rounded up): a window larger than that resolution shrinks
//! to it and is then not shifted. They stay fixed for other input sizes, as in timm with
//! `strict_img_size=False`: the blocks pad to the window and build the shifted-window mask
//! from the runtime size (timm's `dynamic_mask`). All LayerNorms use eps 1e-5
//! (`nn.LayerNorm`); the MLPs use the exact GELU.

#[allow(unused_imports)]
use crate::registry::{DataConfig, ModelInfo, Task, IMAGENET, TIMM_WEIGHTS};
use crate::variant;
use burn::prelude::*;
use burn::tensor::ops::PadMode;
use gaze_blocks::conv::{Conv2d, Conv2dConfig};
use gaze_blocks::layer_norm::{LayerNorm, LayerNormConfig};
use gaze_blocks::linear::{Linear, LinearConfig};
use gaze_blocks::{SwinBlock, SwinBlockConfig};
use gaze_weights::KeyMap;

use crate::features::FeatureInfo;

/// timm's `nn.LayerNorm` epsilon.
const LN_EPS: f64 = 1e-5;

/// Stage module names (timm's `feature_info` `module` entries).
const STAGE_MODULES: [&str; 4] = ["layers.0", "layers.1", "layers.2", "layers.3"];

/// A Swin Transformer variant, with timm's argument names and defaults.
#[derive(Config, Debug)]
pub struct SwinConfig {
    /// The input size `[H, W]` the model is built for (it fixes each stage's window clipping).
    #[config(default = "[224, 224]")]
    pub img_size: [usize; 2],
    /// Patch size of the embedding.
    #[config(default = 4)]
    pub patch_size: usize,
    /// Image channels.
    #[config(default = 3)]
    pub in_chans: usize,
    /// Classifier outputs; 0 for a backbone without head.
    #[config(default = 1000)]
    pub num_classes: usize,
    /// Width of the first stage (doubled at each later stage).
    #[config(default = 96)]
    pub embed_dim: usize,
    /// Blocks per stage.
    #[config(default = "vec![2, 2, 6, 2]")]
    pub depths: Vec<usize>,
    /// Heads per stage.
    #[config(default = "vec![3, 6, 12, 24]")]
    pub num_heads: Vec<usize>,
    /// Window side (all stages).
    #[config(default = 7)]
    pub window_size: usize,
    /// MLP hidden width ratio.
    #[config(default = 4.0)]
    pub mlp_ratio: f64,
    /// Whether the attention `qkv` projections have a bias.
    #[config(default = true)]
    pub qkv_bias: bool,
    /// Whether the model keeps its final LayerNorm (`norm`); an encoder of stage outputs has
    /// none, as timm's `features_only` model prunes it.
    #[config(default = true)]
    pub final_norm: bool,
}

impl SwinConfig {
    /// timm's `swin_tiny_patch4_window7_224` (28.3 M parameters).
    pub fn swin_tiny_patch4_window7_224() -> Self {
        Self::new()
    }

    /// timm's `swin_small_patch4_window7_224` (49.6 M parameters).
    pub fn swin_small_patch4_window7_224() -> Self {
        Self::new().with_depths(vec![2, 2, 18, 2])
    }

    /// Width of stage `i`.
    pub fn stage_dim(&self, i: usize) -> usize {
        self.embed_dim << i
    }

    /// Channels of the final features (entering the classifier).
    pub fn num_features(&self) -> usize {
        self.stage_dim(self.depths.len() - 1)
    }

    /// The configured resolution of stage `i`'s blocks (timm's `output_resolution`).
    pub fn stage_resolution(&self, i: usize) -> [usize; 2] {
        let mut r = self.img_size.map(|s| s / self.patch_size);
        for _ in 0..i {
            r = r.map(|s| s.div_ceil(2));
        }
        r
    }

    /// Channels and strides of the four stage outputs (timm's `feature_info`).
    pub fn feature_info(&self) -> Vec<FeatureInfo> {
        (0..self.depths.len())
            .map(|i| FeatureInfo {
                channels: self.stage_dim(i),
                reduction: self.patch_size << i,
                module: STAGE_MODULES[i],
            })
            .collect()
    }

    /// Builds the network with random weights.
    ///
    /// # Panics
    /// Unless `depths` and `num_heads` have four entries.
    pub fn init(&self, device: &Device) -> Swin {
        assert!(
            self.depths.len() == 4 && self.num_heads.len() == 4,
            "Swin has four stages"
        );
        let ln = |d: usize| LayerNormConfig::new(d).with_epsilon(LN_EPS).init(device);
        let p = self.patch_size;
        let patch_embed = SwinPatchEmbed {
            proj: Conv2dConfig::new([self.in_chans, self.embed_dim], [p, p])
                .with_stride([p, p])
                .init(device),
            norm: ln(self.embed_dim),
            patch_size: p,
        };
        let window = [self.window_size; 2];
        let shift = [self.window_size / 2; 2];
        let layers = (0..4)
            .map(|i| {
                let dim = self.stage_dim(i);
                let downsample = (i > 0).then(|| PatchMerging {
                    norm: ln(2 * dim),
                    reduction: LinearConfig::new(2 * dim, dim)
                        .with_bias(false)
                        .init(device),
                });
                let blocks = (0..self.depths[i])
                    .map(|j| {
                        SwinBlockConfig::new(dim, self.stage_resolution(i))
                            .with_num_heads(self.num_heads[i])
                            .with_window_size(window)
                            .with_shift_size(if j % 2 == 0 { [0, 0] } else { shift })
                            .with_mlp_ratio(self.mlp_ratio)
                            .with_qkv_bias(self.qkv_bias)
                            .with_norm_eps(LN_EPS)
                            .init(device)
                    })
                    .collect();
                SwinStage { downsample, blocks }
            })
            .collect();
        let nf = self.num_features();
        Swin {
            patch_embed,
            layers,
            norm: self.final_norm.then(|| ln(nf)),
            head: gaze_heads::ClassifierHead::new(nf, self.num_classes, device),
        }
    }
}

/// timm's `PatchEmbed` with `output_fmt='NHWC'` and a LayerNorm: `[B, C_in, H, W]` →
/// `[B, H/p, W/p, C]`. Keys `proj.*`, `norm.*`.
#[derive(Module, Debug)]
pub struct SwinPatchEmbed {
    /// `p × p` stride-`p` projection.
    pub proj: Conv2d,
    /// LayerNorm over channels.
    pub norm: LayerNorm,
    /// Patch size `p`.
    pub patch_size: usize,
}

impl SwinPatchEmbed {
    /// Zero-pads bottom/right to multiples of the patch (timm's `dynamic_img_pad`), projects
    /// and normalises; the output is channels-last.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, h, w] = x.dims();
        let p = self.patch_size;
        let (pad_h, pad_w) = ((p - h % p) % p, (p - w % p) % p);
        let x = if pad_h + pad_w > 0 {
            x.pad((0, pad_w, 0, pad_h), PadMode::Constant(0.0))
        } else {
            x
        };
        self.norm
            .forward(self.proj.forward(x).permute([0, 2, 3, 1]))
    }
}

/// timm's `PatchMerging`: `[B, H, W, C] → [B, ⌈H/2⌉, ⌈W/2⌉, 2C]`. Keys `norm.*` (over `4C`),
/// `reduction.weight` (no bias).
#[derive(Module, Debug)]
pub struct PatchMerging {
    /// LayerNorm over the `4C` gathered channels.
    pub norm: LayerNorm,
    /// `4C → 2C`, no bias.
    pub reduction: Linear,
}

impl PatchMerging {
    /// Pads odd sides to even (zeros, bottom/right), gathers each 2×2 neighbourhood in timm's
    /// order (`reshape(B, H/2, 2, W/2, 2, C).permute(0, 1, 3, 4, 2, 5)`: the column offset
    /// outermost, then the row offset, then the channel), normalises and reduces.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, h, w, c] = x.dims();
        let x = if h % 2 + w % 2 > 0 {
            x.pad([(0, h % 2), (0, w % 2), (0, 0)], PadMode::Constant(0.0))
        } else {
            x
        };
        let (h2, w2) = (h.div_ceil(2), w.div_ceil(2));
        let x: Tensor<6> = x.reshape([b, h2, 2, w2, 2, c]);
        let x = x.permute([0, 1, 3, 4, 2, 5]).reshape([b, h2, w2, 4 * c]);
        self.reduction.forward(self.norm.forward(x))
    }
}

/// timm's `SwinTransformerStage`: optional patch merging, then the blocks. Keys
/// `downsample.*` (stages > 0), `blocks.{j}.*`.
#[derive(Module, Debug)]
pub struct SwinStage {
    /// Patch merging (absent in the first stage, timm's `nn.Identity`).
    pub downsample: Option<PatchMerging>,
    /// The Swin blocks, alternately unshifted and shifted.
    pub blocks: Vec<SwinBlock>,
}

impl SwinStage {
    /// `[B, H, W, C] → [B, H', W', C']` (channels-last).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = match &self.downsample {
            Some(d) => d.forward(x),
            None => x,
        };
        self.blocks.iter().fold(x, |x, b| b.forward(x))
    }
}

/// The Swin Transformer: `patch_embed`, `layers.0..3`, `norm`, `head.fc`.
#[derive(Module, Debug)]
pub struct Swin {
    /// Patch embedding (stride `p`).
    pub patch_embed: SwinPatchEmbed,
    /// The four stages (strides `p`, `2p`, `4p`, `8p`).
    pub layers: Vec<SwinStage>,
    /// Final LayerNorm (absent in an encoder, see [`SwinConfig::final_norm`]).
    pub norm: Option<LayerNorm>,
    /// Classifier head.
    pub head: gaze_heads::ClassifierHead,
}

fn nhwc_to_nchw(x: Tensor<4>) -> Tensor<4> {
    x.permute([0, 3, 1, 2])
}

impl Swin {
    /// The four stage outputs `[B, C_i, H/(p·2^i), W/(p·2^i)]` (NCHW, without the final norm),
    /// as timm's `forward_intermediates(norm=False)` / `features_only=True` return them.
    pub fn forward_intermediates(&self, x: Tensor<4>) -> Vec<Tensor<4>> {
        let mut x = self.patch_embed.forward(x);
        let mut out = Vec::with_capacity(self.layers.len());
        for stage in &self.layers {
            x = stage.forward(x);
            out.push(nhwc_to_nchw(x.clone()));
        }
        out
    }

    /// The last stage after the final norm, `[B, C, H/32, W/32]` (NCHW).
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.patch_embed.forward(x);
        let x = self.layers.iter().fold(x, |x, s| s.forward(x));
        let x = match &self.norm {
            Some(norm) => norm.forward(x),
            None => x,
        };
        nhwc_to_nchw(x)
    }

    /// Global average pool and classifier: `[B, C, h, w] → [B, classes]` (the pooled features
    /// when the model has no classifier).
    pub fn forward_head(&self, features: Tensor<4>) -> Tensor<2> {
        self.head.forward(features)
    }

    /// Logits `[B, classes]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_head(self.forward_features(x))
    }
}
const SWIN: &str = "Swin Transformer: Hierarchical Vision Transformer using Shifted Windows (Liu et al., ICCV 2021)";

static VARIANTS: &[ModelInfo] = &[
    variant!(
        "swin_tiny_patch4_window7_224",
        "swin",
        IMAGENET,
        SWIN,
        28_288_354,
        DataConfig::IMAGENET_BICUBIC,
        TIMM_WEIGHTS,
        SwinConfig::swin_tiny_patch4_window7_224()
    ),
    variant!(
        "swin_small_patch4_window7_224",
        "swin",
        IMAGENET,
        SWIN,
        49_606_258,
        DataConfig::IMAGENET_BICUBIC,
        TIMM_WEIGHTS,
        SwinConfig::swin_small_patch4_window7_224()
    ),
];

/// The official checkpoint's names (and buffers gaze recomputes instead of loading).
pub fn key_map() -> KeyMap {
    KeyMap::identity().ignoring(&[r"(^|\.)relative_position_index$", r"(^|\.)attn_mask$"])
}

crate::classifier_family!(
    SwinConfig => Swin,
    features: Map,
    key_map: |_| key_map(),
);
