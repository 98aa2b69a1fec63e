//! NAT, the Neighborhood Attention Transformer (Hassani, Walton, Li, Li, Shi, "Neighborhood
//! Attention Transformer", CVPR 2023), as the official
//! github.com/SHI-Labs/Neighborhood-Attention-Transformer `classification/nat.py` builds it
//! (`NAT`, `ConvTokenizer`, `NATBlock`, `NATLayer`, `ConvDownsampler`, `Mlp`; registrations
//! `nat_mini` / `nat_tiny` / `nat_small` / `nat_base`).
//!
//! * `patch_embed` (`ConvTokenizer`): two 3×3 stride-2 convolutions (padding 1, with bias, no
//!   activation between them) to `embed_dim / 2` then `embed_dim` channels, then a LayerNorm:
//!   stride 4.
//! * `levels.{i}` (`NATBlock`, `dim = embed_dim · 2^i`): `blocks.{j}` (`NATLayer`,
//!   pre-norm) `x += γ₁ ⊙ attn(norm1(x))`, `x += γ₂ ⊙ mlp(norm2(x))` with
//!   [`NeighborhoodAttention`] (`qkv`, `rpb`, `proj`; NATTEN's clamped `k × k` windows), the
//!   MLP `fc1 → GELU → fc2` of width `⌊dim · mlp_ratio⌋`, and the layer scales `gamma1` /
//!   `gamma2` only with `layer_scale` (nat_small / nat_base); then, on every level but the
//!   last, `downsample` (`ConvDownsampler`): 3×3 stride-2 convolution `reduction` (no bias) to
//!   `2 · dim` and a LayerNorm `norm`.
//! * `norm` (LayerNorm), the global average pool and `head`.
//!
//! Layout: the tokens are `[B, H, W, C]` inside (as the official code); the public API takes
//! and returns NCHW maps.
//!
//! **Input size.** NATTEN ≥ 0.15 (which the current official code imports) rejects maps smaller
//! than the kernel, so every level's map must be at least `kernel_size` on both sides. Each
//! stride-2 convolution maps `L → ⌈L/2⌉`, so the last level is `⌈H/32⌉`: the input must be at
//! least [`NatConfig::min_input_size`] = `32·(k − 1) + 1` (193 for `k = 7`; 224 is the
//! trained size). With [`NatConfig::legacy_pad`] smaller maps are zero-padded to `k` inside
//! each attention, as NATTEN ≤ 0.14 did (see [`NeighborhoodAttention`]).
//!
//! Official checkpoints (`nat_*.pth`, a bare state dict) load with
//! [`gaze_weights::keymaps::nat`] (the identity: `patch_embed.proj` is a `Vec`, so
//! `proj.0` / `proj.1` are our paths too).

use crate::model::InputSize;
#[allow(unused_imports)]
use crate::registry::{DataConfig, ModelInfo, Task, IMAGENET, TIMM_WEIGHTS};
use crate::variant;
use burn::module::Param;
use burn::nn::PaddingConfig2d;
use burn::prelude::*;
use gaze_blocks::conv::{Conv2d, Conv2dConfig};
use gaze_blocks::layer_norm::{LayerNorm, LayerNormConfig};
use gaze_blocks::linear::{Linear, LinearConfig};
use gaze_blocks::neighborhood_attention::{
    rpb_index, NeighborhoodAttention, NeighborhoodAttentionConfig,
};
use gaze_blocks::vit_attention::{TokenMlp, TokenMlpConfig};
use gaze_weights::KeyMap;

use crate::features::FeatureInfo;

/// A NAT variant, with the official argument names.
#[derive(Config, Debug)]
pub struct NatConfig {
    /// Channels of the first level (doubled at every level).
    pub embed_dim: usize,
    /// MLP width over channels.
    pub mlp_ratio: f64,
    /// NAT layers per level.
    pub depths: Vec<usize>,
    /// Heads per level.
    pub num_heads: Vec<usize>,
    /// Neighbourhood size `k`.
    #[config(default = 7)]
    pub kernel_size: usize,
    /// Classifier outputs; 0 for a backbone without head.
    #[config(default = 1000)]
    pub num_classes: usize,
    /// Image channels.
    #[config(default = 3)]
    pub in_chans: usize,
    /// Bias in the attention's `qkv`.
    #[config(default = true)]
    pub qkv_bias: bool,
    /// Overrides `head_dim^-0.5`.
    #[config(default = "None")]
    pub qk_scale: Option<f64>,
    /// Initial value of the layer scales `gamma1` / `gamma2` (none when `None`).
    #[config(default = "None")]
    pub layer_scale: Option<f64>,
    /// Zero-pad maps smaller than the kernel inside the attention (NATTEN ≤ 0.14) instead of
    /// panicking (NATTEN ≥ 0.15).
    #[config(default = false)]
    pub legacy_pad: bool,
}

impl NatConfig {
    /// `nat_mini`: depths 3-4-6-5, heads 2-4-8-16, embed 64, MLP ratio 3, k = 7 (20.0 M).
    pub fn nat_mini() -> Self {
        Self::new(64, 3.0, vec![3, 4, 6, 5], vec![2, 4, 8, 16])
    }

    /// `nat_tiny`: depths 3-4-18-5, heads 2-4-8-16, embed 64, MLP ratio 3, k = 7 (27.9 M).
    pub fn nat_tiny() -> Self {
        Self::new(64, 3.0, vec![3, 4, 18, 5], vec![2, 4, 8, 16])
    }

    /// `nat_small`: depths 3-4-18-5, heads 3-6-12-24, embed 96, MLP ratio 2, layer scale
    /// 1e-5, k = 7 (50.7 M).
    pub fn nat_small() -> Self {
        Self::new(96, 2.0, vec![3, 4, 18, 5], vec![3, 6, 12, 24]).with_layer_scale(Some(1e-5))
    }

    /// `nat_base`: depths 3-4-18-5, heads 4-8-16-32, embed 128, MLP ratio 2, layer scale
    /// 1e-5, k = 7 (89.8 M).
    pub fn nat_base() -> Self {
        Self::new(128, 2.0, vec![3, 4, 18, 5], vec![4, 8, 16, 32]).with_layer_scale(Some(1e-5))
    }

    /// Channels of level `i`.
    pub fn level_dim(&self, i: usize) -> usize {
        self.embed_dim << i
    }

    /// Channels entering the classifier (`embed_dim · 2^(levels − 1)`).
    pub fn num_features(&self) -> usize {
        self.level_dim(self.depths.len() - 1)
    }

    /// The smallest input side for which every level's map is at least `kernel_size`
    /// (`2^(levels + 1) · (k − 1) + 1`; 193 for the registered models). Below it the forward
    /// panics unless `legacy_pad`.
    pub fn min_input_size(&self) -> usize {
        (1 << (self.depths.len() + 1)) * (self.kernel_size - 1) + 1
    }

    /// The relative-position-bias lookups of every block for an `[h, w]` input
    /// ([`rpb_index`] at each level's map: the stem and every downsampler halve it, rounding
    /// up), under the official keys `levels.{i}.blocks.{j}.attn.rpb`. Empty for inputs the
    /// forward rejects.
    pub fn gathered_tables(&self, input: [usize; 2]) -> Vec<(String, Vec<i64>)> {
        let half = |n: usize| n.div_ceil(2);
        let mut map = input.map(|n| half(half(n)));
        let mut out = Vec::new();
        for (i, &depth) in self.depths.iter().enumerate() {
            let k = self.kernel_size;
            let attended = map.map(|n| if self.legacy_pad { n.max(k) } else { n });
            if attended.iter().any(|&n| n < k) {
                return Vec::new();
            }
            let index = rpb_index(attended, k, 1);
            out.extend(
                (0..depth).map(|j| (format!("levels.{i}.blocks.{j}.attn.rpb"), index.clone())),
            );
            map = map.map(half);
        }
        out
    }

    /// Channels and strides of the level outputs ([`Nat::forward_intermediates`]).
    pub fn feature_info(&self) -> Vec<FeatureInfo> {
        const MODULES: [&str; 8] = [
            "levels.0", "levels.1", "levels.2", "levels.3", "levels.4", "levels.5", "levels.6",
            "levels.7",
        ];
        (0..self.depths.len())
            .map(|i| FeatureInfo {
                channels: self.level_dim(i),
                reduction: 4 << i,
                module: MODULES[i],
            })
            .collect()
    }

    /// Builds the network with random weights.
    ///
    /// # Panics
    /// If `depths` and `num_heads` differ in length or are empty (or longer than 8), or a
    /// level's channels are not divisible by its heads, or the kernel is even.
    pub fn init(&self, device: &Device) -> Nat {
        let levels = self.depths.len();
        assert!(
            levels > 0 && levels <= 8 && levels == self.num_heads.len(),
            "NAT: depths and num_heads must have the same length (1..=8)"
        );
        let e = self.embed_dim;
        let conv = |cin: usize, cout: usize, bias: bool| {
            Conv2dConfig::new([cin, cout], [3, 3])
                .with_stride([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .with_bias(bias)
                .init(device)
        };
        let patch_embed = ConvTokenizer {
            proj: vec![conv(self.in_chans, e / 2, true), conv(e / 2, e, true)],
            norm: LayerNormConfig::new(e).init(device),
        };
        let levels = (0..levels)
            .map(|i| {
                let dim = self.level_dim(i);
                let blocks = (0..self.depths[i])
                    .map(|_| NatLayer {
                        norm1: LayerNormConfig::new(dim).init(device),
                        attn: NeighborhoodAttentionConfig::new(dim, self.num_heads[i])
                            .with_kernel_size(self.kernel_size)
                            .with_qkv_bias(self.qkv_bias)
                            .with_qk_scale(self.qk_scale)
                            .with_legacy_pad(self.legacy_pad)
                            .init(device),
                        norm2: LayerNormConfig::new(dim).init(device),
                        mlp: TokenMlpConfig::new(dim, (dim as f64 * self.mlp_ratio) as usize)
                            .init(device),
                        gamma1: self
                            .layer_scale
                            .map(|v| Param::from_tensor(Tensor::full([dim], v, device))),
                        gamma2: self
                            .layer_scale
                            .map(|v| Param::from_tensor(Tensor::full([dim], v, device))),
                    })
                    .collect();
                let downsample = (i + 1 < levels).then(|| ConvDownsampler {
                    reduction: conv(dim, 2 * dim, false),
                    norm: LayerNormConfig::new(2 * dim).init(device),
                });
                NatBlock { blocks, downsample }
            })
            .collect();
        Nat {
            patch_embed,
            levels,
            norm: LayerNormConfig::new(self.num_features()).init(device),
            head: (self.num_classes > 0)
                .then(|| LinearConfig::new(self.num_features(), self.num_classes).init(device)),
        }
    }
}

/// Official `ConvTokenizer`: `proj.0`, `proj.1` (3×3 stride 2 each), `norm`.
#[derive(Module, Debug)]
pub struct ConvTokenizer {
    /// The two convolutions (official `nn.Sequential` indices 0 and 1).
    pub proj: Vec<Conv2d>,
    /// LayerNorm over channels.
    pub norm: LayerNorm,
}

impl ConvTokenizer {
    /// `[B, C, H, W] → [B, ⌈⌈H/2⌉/2⌉, ⌈⌈W/2⌉/2⌉, embed]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.proj.iter().fold(x, |x, conv| conv.forward(x));
        self.norm.forward(x.permute([0, 2, 3, 1]))
    }
}

/// Official `ConvDownsampler`: `reduction` (3×3 stride 2, no bias) and `norm`, on NHWC tokens.
#[derive(Module, Debug)]
pub struct ConvDownsampler {
    /// `dim → 2·dim`.
    pub reduction: Conv2d,
    /// LayerNorm over the `2·dim` channels.
    pub norm: LayerNorm,
}

impl ConvDownsampler {
    /// `[B, H, W, C] → [B, ⌈H/2⌉, ⌈W/2⌉, 2C]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.reduction.forward(x.permute([0, 3, 1, 2]));
        self.norm.forward(x.permute([0, 2, 3, 1]))
    }
}

/// Official `NATLayer` (pre-norm transformer layer with neighborhood attention).
#[derive(Module, Debug)]
pub struct NatLayer {
    /// Norm before the attention.
    pub norm1: LayerNorm,
    /// Neighborhood attention (`qkv`, `rpb`, `proj`).
    pub attn: NeighborhoodAttention,
    /// Norm before the MLP.
    pub norm2: LayerNorm,
    /// `fc1 → GELU → fc2`.
    pub mlp: TokenMlp,
    /// Layer scale of the attention branch.
    pub gamma1: Option<Param<Tensor<1>>>,
    /// Layer scale of the MLP branch.
    pub gamma2: Option<Param<Tensor<1>>>,
}

fn scaled(gamma: &Option<Param<Tensor<1>>>, x: Tensor<4>) -> Tensor<4> {
    match gamma {
        Some(g) => x * g.val().unsqueeze::<4>(),
        None => x,
    }
}

impl NatLayer {
    /// `[B, H, W, C] → [B, H, W, C]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = x.clone() + scaled(&self.gamma1, self.attn.forward(self.norm1.forward(x)));
        x.clone() + scaled(&self.gamma2, self.mlp.forward(self.norm2.forward(x)))
    }
}

/// Official `NATBlock`: one level (`blocks`, then `downsample` except on the last level).
#[derive(Module, Debug)]
pub struct NatBlock {
    /// The level's layers.
    pub blocks: Vec<NatLayer>,
    /// Downsampler to the next level.
    pub downsample: Option<ConvDownsampler>,
}

impl NatBlock {
    /// The layers' output (before the downsampler), `[B, H, W, C]`.
    pub fn forward_blocks(&self, x: Tensor<4>) -> Tensor<4> {
        self.blocks.iter().fold(x, |x, b| b.forward(x))
    }

    /// Layers then downsampler.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.forward_blocks(x);
        match &self.downsample {
            Some(d) => d.forward(x),
            None => x,
        }
    }
}

/// The Neighborhood Attention Transformer (official `NAT`).
#[derive(Module, Debug)]
pub struct Nat {
    /// Convolutional tokenizer (stride 4).
    pub patch_embed: ConvTokenizer,
    /// The levels (strides 4, 8, 16, 32).
    pub levels: Vec<NatBlock>,
    /// Final LayerNorm.
    pub norm: LayerNorm,
    /// Classifier (absent when `num_classes` is 0).
    pub head: Option<Linear>,
}

impl Nat {
    /// Each level's output before its downsampler, NCHW (strides 4, 8, 16, 32; the last one
    /// before the final `norm`).
    pub fn forward_intermediates(&self, x: Tensor<4>) -> Vec<Tensor<4>> {
        let mut x = self.patch_embed.forward(x);
        let mut out = Vec::with_capacity(self.levels.len());
        for level in &self.levels {
            let y = level.forward_blocks(x);
            out.push(y.clone().permute([0, 3, 1, 2]));
            x = match &level.downsample {
                Some(d) => d.forward(y),
                None => y,
            };
        }
        out
    }

    /// The normalised last-level map `[B, C, H/32, W/32]` (official `forward_features` before
    /// its pooling).
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self
            .levels
            .iter()
            .fold(self.patch_embed.forward(x), |x, l| l.forward(x));
        self.norm.forward(x).permute([0, 3, 1, 2])
    }

    /// Global average pool and classifier: `[B, C, h, w] → [B, classes]` (the pooled features
    /// without a classifier).
    pub fn forward_head(&self, features: Tensor<4>) -> Tensor<2> {
        gaze_heads::classifier::classify(features, self.head.as_ref())
    }

    /// Logits `[B, classes]`.
    ///
    /// # Panics
    /// If a level's map is smaller than the kernel (input below
    /// [`NatConfig::min_input_size`]) and the model was built without `legacy_pad`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_head(self.forward_features(x))
    }
}
const NAT: &str = "Neighborhood Attention Transformer (Hassani et al., CVPR 2023)";
const NAT_WEIGHTS: &str =
    "https://github.com/SHI-Labs/Neighborhood-Attention-Transformer/tree/main/classification";

static VARIANTS: &[ModelInfo] = &[
    variant!(
        "nat_mini",
        "nat",
        IMAGENET,
        NAT,
        19_984_174,
        DataConfig::IMAGENET_BICUBIC.with_size(224, 0.875),
        NAT_WEIGHTS,
        NatConfig::nat_mini()
    ),
    variant!(
        "nat_tiny",
        "nat",
        IMAGENET,
        NAT,
        27_901_582,
        DataConfig::IMAGENET_BICUBIC.with_size(224, 0.875),
        NAT_WEIGHTS,
        NatConfig::nat_tiny()
    ),
    variant!(
        "nat_small",
        "nat",
        IMAGENET,
        NAT,
        50_743_297,
        DataConfig::IMAGENET_BICUBIC.with_size(224, 0.875),
        NAT_WEIGHTS,
        NatConfig::nat_small()
    ),
    variant!(
        "nat_base",
        "nat",
        IMAGENET,
        NAT,
        89_769_652,
        DataConfig::IMAGENET_BICUBIC.with_size(224, 0.875),
        NAT_WEIGHTS,
        NatConfig::nat_base()
    ),
];

/// The official checkpoint's names (and buffers gaze recomputes instead of loading).
pub fn key_map() -> KeyMap {
    KeyMap::identity()
}

crate::classifier_family!(
    NatConfig => Nat,
    features: Map,
    key_map: |_| key_map(),
    input_size: |c| InputSize::AtLeast([c.min_input_size(); 2]),
    gathered_tables: NatConfig::gathered_tables,
);
