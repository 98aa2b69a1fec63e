//! Vision Transformer and DeiT as timm builds them (`timm/models/vision_transformer.py`,
//! `VisionTransformer` with a class token and `dynamic_img_size=True`): patch embedding, class
//! token, learned absolute position embeddings (resampled for other input sizes), pre-norm
//! transformer blocks ([`VitBlock`]), final norm, linear head on the class token.
//!
//! * Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021.
//! * Touvron et al., "Training data-efficient image transformers (DeiT)", ICML 2021 (the
//!   non-distilled DeiT models are this architecture with DeiT's weights).

#[allow(unused_imports)]
use crate::registry::{DataConfig, ModelInfo, Task, IMAGENET, TIMM_WEIGHTS};
use crate::variant;
use burn::module::Param;
use burn::prelude::*;
use gaze_blocks::conv::{Conv2d, Conv2dConfig};
use gaze_blocks::layer_norm::{LayerNorm, LayerNormConfig};
use gaze_blocks::linear::{Linear, LinearConfig};
use gaze_blocks::{VitBlock, VitBlockConfig};
use gaze_weights::KeyMap;

use crate::features::FeatureInfo;
use crate::pos_embed::resample_abs_pos_embed;

/// A ViT variant, with timm's argument names.
#[derive(Config, Debug)]
pub struct VitConfig {
    /// Token width.
    pub embed_dim: usize,
    /// Number of blocks.
    pub depth: usize,
    /// Attention heads.
    pub num_heads: usize,
    /// Training image size (sets the position-embedding grid).
    #[config(default = 224)]
    pub img_size: usize,
    /// Patch side.
    #[config(default = 16)]
    pub patch_size: usize,
    /// Image channels.
    #[config(default = 3)]
    pub in_chans: usize,
    /// Classifier outputs; 0 for no head.
    #[config(default = 1000)]
    pub num_classes: usize,
    /// MLP hidden width over token width.
    #[config(default = 4.0)]
    pub mlp_ratio: f64,
    /// Bias on the qkv projection.
    #[config(default = true)]
    pub qkv_bias: bool,
    /// LayerNorm on queries and keys per head.
    #[config(default = false)]
    pub qk_norm: bool,
    /// LayerScale initial value (None: no LayerScale).
    #[config(default = "None")]
    pub init_values: Option<f64>,
    /// Context broadcasting in every block (Hyeon-Woo et al., ICCV 2023).
    #[config(default = false)]
    pub context_broadcast: bool,
}

impl VitConfig {
    /// `vit_tiny_patch16_224` (also `deit_tiny_patch16_224`).
    pub fn tiny() -> Self {
        Self::new(192, 12, 3)
    }

    /// `vit_small_patch16_224` (also `deit_small_patch16_224`).
    pub fn small() -> Self {
        Self::new(384, 12, 6)
    }

    /// `vit_base_patch16_224`.
    pub fn base() -> Self {
        Self::new(768, 12, 12)
    }

    fn grid(&self) -> usize {
        self.img_size / self.patch_size
    }

    /// Indices of the blocks whose outputs [`VisionTransformer::forward_intermediates`]
    /// returns: four, evenly spaced, ending with the last block.
    pub fn intermediate_blocks(&self) -> Vec<usize> {
        let n = self.depth.min(4);
        (1..=n).map(|i| i * self.depth / n - 1).collect()
    }

    /// The maps of [`VisionTransformer::forward_intermediates`]: all `embed_dim` channels at
    /// the patch stride.
    pub fn feature_info(&self) -> Vec<FeatureInfo> {
        self.intermediate_blocks()
            .into_iter()
            .map(|_| FeatureInfo {
                channels: self.embed_dim,
                reduction: self.patch_size,
                module: "blocks",
            })
            .collect()
    }

    /// Builds the network with random weights.
    pub fn init(&self, device: &Device) -> VisionTransformer {
        let grid = self.grid();
        let d = self.embed_dim;
        let normal = |shape: [usize; 3]| {
            Param::from_tensor(Tensor::random(
                shape,
                burn::tensor::Distribution::Normal(0.0, 0.02),
                device,
            ))
        };
        let block = VitBlockConfig::new(d, self.num_heads)
            .with_mlp_ratio(self.mlp_ratio)
            .with_qkv_bias(self.qkv_bias)
            .with_qk_norm(self.qk_norm)
            .with_init_values(self.init_values)
            .with_context_broadcast(self.context_broadcast);
        VisionTransformer {
            patch_embed: PatchEmbed {
                proj: Conv2dConfig::new([self.in_chans, d], [self.patch_size, self.patch_size])
                    .with_stride([self.patch_size, self.patch_size])
                    .init(device),
            },
            cls_token: normal([1, 1, d]),
            pos_embed: normal([1, 1 + grid * grid, d]),
            blocks: (0..self.depth).map(|_| block.init(device)).collect(),
            norm: LayerNormConfig::new(d).with_epsilon(1e-6).init(device),
            head: (self.num_classes > 0)
                .then(|| LinearConfig::new(d, self.num_classes).init(device)),
            patch_size: self.patch_size,
            grid,
            intermediate_blocks: self.intermediate_blocks(),
        }
    }
}

/// Non-overlapping patch projection (timm `PatchEmbed`, key `patch_embed.proj`).
#[derive(Module, Debug)]
pub struct PatchEmbed {
    /// `patch × patch` convolution with stride `patch`.
    pub proj: Conv2d,
}

/// The Vision Transformer.
#[derive(Module, Debug)]
pub struct VisionTransformer {
    /// Patch embedding.
    pub patch_embed: PatchEmbed,
    /// Class token `[1, 1, D]`.
    pub cls_token: Param<Tensor<3>>,
    /// Position embedding `[1, 1 + grid², D]` (class token first).
    pub pos_embed: Param<Tensor<3>>,
    /// Transformer blocks.
    pub blocks: Vec<VitBlock>,
    /// Final LayerNorm.
    pub norm: LayerNorm,
    /// Classifier on the class token.
    pub head: Option<Linear>,
    /// Patch side.
    pub patch_size: usize,
    /// Side of the training token grid.
    pub grid: usize,
    /// Blocks returned by `forward_intermediates`.
    pub intermediate_blocks: Vec<usize>,
}

impl VisionTransformer {
    /// Patch tokens with the class token and position embedding: `[B, 1 + h·w, D]` and the
    /// grid `(h, w)`. Images that are not a multiple of the patch are zero-padded at the
    /// bottom and right (timm's `dynamic_img_pad`).
    fn embed(&self, x: Tensor<4>) -> (Tensor<3>, [usize; 2]) {
        let [b, c, h, w] = x.dims();
        let p = self.patch_size;
        let (ph, pw) = (h.div_ceil(p) * p, w.div_ceil(p) * p);
        let x = if (ph, pw) != (h, w) {
            Tensor::zeros([b, c, ph, pw], &x.device()).slice_assign([0..b, 0..c, 0..h, 0..w], x)
        } else {
            x
        };
        let x = self.patch_embed.proj.forward(x); // [B, D, gh, gw]
        let [_, d, gh, gw] = x.dims();
        let tokens = x.flatten::<3>(2, 3).swap_dims(1, 2);
        let pos = resample_abs_pos_embed(self.pos_embed.val(), [self.grid, self.grid], [gh, gw], 1);
        let cls = self.cls_token.val().expand([b, 1, d]);
        (Tensor::cat(vec![cls, tokens], 1) + pos, [gh, gw])
    }

    /// All tokens after the final norm, `[B, 1 + h·w, D]` (timm's `forward_features`).
    pub fn forward_tokens(&self, x: Tensor<4>) -> Tensor<3> {
        let (x, _) = self.embed(x);
        self.norm
            .forward(self.blocks.iter().fold(x, |x, b| b.forward(x)))
    }

    /// Patch tokens after the final norm as an NCHW map `[B, D, h, w]`.
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
        let (x, grid) = self.embed(x);
        let x = self
            .norm
            .forward(self.blocks.iter().fold(x, |x, b| b.forward(x)));
        tokens_to_map(x, grid)
    }

    /// The class token through the head: `[B, 1 + N, D] → [B, classes]`.
    pub fn forward_head(&self, tokens: Tensor<3>) -> Tensor<2> {
        let [b, _, d] = tokens.dims();
        let cls = tokens.slice([0..b, 0..1, 0..d]).reshape([b, d]);
        match &self.head {
            Some(head) => head.forward(cls),
            None => cls,
        }
    }

    /// Logits `[B, classes]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_head(self.forward_tokens(x))
    }

    /// The patch tokens after the blocks of [`VitConfig::intermediate_blocks`], as NCHW maps
    /// at the patch stride (timm's `forward_intermediates`, not normed).
    pub fn forward_intermediates(&self, x: Tensor<4>) -> Vec<Tensor<4>> {
        let (mut x, grid) = self.embed(x);
        let mut maps = Vec::with_capacity(self.intermediate_blocks.len());
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.forward(x);
            if self.intermediate_blocks.contains(&i) {
                maps.push(tokens_to_map(x.clone(), grid));
            }
        }
        maps
    }
}

/// `[B, 1 + h·w, D]` (class token first) → `[B, D, h, w]`.
fn tokens_to_map(x: Tensor<3>, [h, w]: [usize; 2]) -> Tensor<4> {
    let [b, n, d] = x.dims();
    x.slice([0..b, 1..n, 0..d])
        .swap_dims(1, 2)
        .reshape([b, d, h, w])
}
const DEIT: &str = "Training data-efficient image transformers & distillation through attention (Touvron et al., ICML 2021)";
const VIT: &str = "An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale (Dosovitskiy et al., ICLR 2021)";

static VARIANTS: &[ModelInfo] = &[
    variant!(
        "vit_tiny_patch16_224",
        "vit",
        IMAGENET,
        VIT,
        5_717_416,
        DataConfig::INCEPTION,
        TIMM_WEIGHTS,
        VitConfig::tiny()
    ),
    variant!(
        "vit_small_patch16_224",
        "vit",
        IMAGENET,
        VIT,
        22_050_664,
        DataConfig::INCEPTION,
        TIMM_WEIGHTS,
        VitConfig::small()
    ),
    variant!(
        "vit_base_patch16_224",
        "vit",
        IMAGENET,
        VIT,
        86_567_656,
        DataConfig::INCEPTION,
        TIMM_WEIGHTS,
        VitConfig::base()
    ),
    variant!(
        "deit_tiny_patch16_224",
        "vit",
        IMAGENET,
        DEIT,
        5_717_416,
        DataConfig::IMAGENET_BICUBIC,
        TIMM_WEIGHTS,
        VitConfig::tiny()
    ),
    variant!(
        "deit_small_patch16_224",
        "vit",
        IMAGENET,
        DEIT,
        22_050_664,
        DataConfig::IMAGENET_BICUBIC,
        TIMM_WEIGHTS,
        VitConfig::small()
    ),
];

/// The official checkpoint's names (and buffers gaze recomputes instead of loading).
pub fn key_map() -> KeyMap {
    KeyMap::identity().with_transform(r"^pos_embed$", resample_pos_embed_table)
}

/// timm's `checkpoint_filter_fn` for `pos_embed`: a checkpoint trained at another image size
/// has a table for another (square) grid; resample it to the model's grid with the same
/// anti-aliased bicubic interpolation the forward pass uses, keeping the class token's entry.
fn resample_pos_embed_table(data: TensorData, target: &[usize]) -> Result<TensorData, String> {
    let shape = data.shape().to_vec();
    let square = |tokens: usize| {
        let g = ((tokens - 1) as f64).sqrt().round() as usize;
        (g * g + 1 == tokens).then_some(g)
    };
    match (shape.as_slice(), target) {
        ([1, n, d], [1, m, e]) if d == e && *n > 1 && *m > 1 => {
            let (Some(from), Some(to)) = (square(*n), square(*m)) else {
                return Err(format!(
                    "position table {shape:?} or {target:?} is not a square grid"
                ));
            };
            let pos = Tensor::<3>::from_data(data.convert::<f32>(), &Device::flex());
            Ok(resample_abs_pos_embed(pos, [from, from], [to, to], 1).into_data())
        }
        _ => Err(format!(
            "cannot resample a {shape:?} position table to {target:?}"
        )),
    }
}

crate::classifier_family!(
    VitConfig => VisionTransformer,
    features: Tokens,
    key_map: |_| key_map(),
);
