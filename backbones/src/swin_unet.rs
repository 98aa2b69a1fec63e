//! Swin-UNet and Att-SwinU-Net: pure-transformer U-Nets.
//!
//! * Cao et al., "Swin-Unet: Unet-like Pure Transformer for Medical Image Segmentation",
//!   ECCV Workshops 2022; the official `SwinTransformerSys` of github.com/HuCaoFighting/Swin-Unet
//!   (`networks/swin_transformer_unet_skip_expand_decoder_sys.py`, commit `f48f623e`), with its
//!   parameter names, so its state dicts load through [`SwinUNetConfig::key_map`].
//! * Aghdam et al., "Attention Swin U-Net: Cross-Contextual Attention Mechanism for Skin Lesion
//!   Segmentation", ISBI 2023; the official `SwinAttentionUnet` of github.com/NITR098/AttSwinUNet
//!   (commit `4b14f377`, mode `cross_contextual_attention`): Swin-UNet with Swin-T depths in the
//!   encoder and the (mirrored) decoder and, before each skip fusion, a CrossViT cross-attention
//!   between the decoder's and the skip's tokens ([`gaze_blocks::CrossTransformer`]:
//!   their mean tokens attend to each other's tokens and are written over token 0 of each).
//!   Its checkpoints name the halves `encoder.` / `decoder.` and the skip attention
//!   `decoder.Crossvit_layer.{k}`; two modules the official code builds but never runs (a
//!   top-level `patch_embed` with 4 input channels and `decoder.norm`) are ignored when loading
//!   and not saved. Its `skip_num` is [`SwinUNetConfig::cross_attention_levels`]; the spatial
//!   attention flag of the official decoder adds attention maps to a value it then discards,
//!   so it has no effect on the output and is not reproduced.
//!
//! Layout (official keys in brackets), channels-last `[B, H, W, C]` inside:
//!
//! 1. patch embedding [`patch_embed`]: `p × p` stride-`p` conv + LayerNorm (stride 4, `C`).
//! 2. encoder [`layers.{i}`], the Microsoft Swin layout: `depths[i]` Swin blocks at width
//!    `C·2^i`, then patch merging [`layers.{i}.downsample`] at the **end** of every stage but
//!    the last. The skip of level `i` is the stage's *input* (the official `x_downsample` is
//!    appended before each layer runs): the patch embedding, then the freshly merged maps.
//! 3. bottleneck norm [`norm`].
//! 4. decoder [`layers_up.{i}`]: `layers_up.0` is a bare [`PatchExpand`] (`7² × 8C → 14² × 4C`);
//!    level `i ≥ 1` concatenates the decoder map and skip `3 − i` (decoder first), reduces
//!    `2d → d` with [`concat_back_dim.{i}`], runs `depths[3 − i]` Swin blocks (the official
//!    code ignores its `depths_decoder`) and, except the last, a [`PatchExpand`]
//!    [`layers_up.{i}.upsample`].
//! 5. [`norm_up`], the final ×4 patch expansion [`up`] to full resolution, and a bias-free
//!    1×1 convolution [`output`] to the class logits.
//!
//! Patch expanding (the paper's eq. for `PatchExpand`): a bias-free Linear `d → s²·d'`, then
//! each token's channels are unfolded into an `s × s` patch of `d'` channels, row offset
//! outermost (`rearrange('b h w (p1 p2 c) -> b (h p1) (w p2) c')`), then LayerNorm over `d'`.
//!
//! Windows and shifts follow the official clipping at the **configured** `img_size`: a stage
//! whose resolution is at most the window (7² at 224) uses one window of its size, unshifted.
//! The official model takes exactly `img_size`; here any size works: the image is zero-padded
//! evenly to a multiple of `p · 2^(stages−1)` (32) and the logits cropped back, and the blocks
//! pad to their window and mask shifted windows at the runtime size (timm's dynamic masks), so
//! at `img_size` the result is the official one.
//!
//! The encoder loads from a Swin-T ImageNet checkpoint as the official `load_from` does
//! ([`SwinUNetConfig::encoder_checkpoint_keys`]): the encoder keys as they are and each encoder
//! stage's blocks mirrored into decoder level `3 − i` (`layers.X.blocks` → `layers_up.(3−X)`),
//! from the Microsoft layout or timm's (patch merging at the start of the next stage).

use burn::nn::PaddingConfig2d;
use burn::prelude::*;
use burn::tensor::ops::PadMode;
use gaze_blocks::conv::{Conv2d, Conv2dConfig};
use gaze_blocks::layer_norm::{LayerNorm, LayerNormConfig};
use gaze_blocks::linear::{Linear, LinearConfig};
use gaze_blocks::{CrossTransformer, CrossTransformerConfig, SwinBlock, SwinBlockConfig};
use gaze_weights::KeyMap;

use crate::features::FeatureInfo;
use crate::registry::{DataConfig, ModelInfo, Task};
use crate::swin::{PatchMerging, SwinPatchEmbed};
use crate::unet::even_padding;
use crate::variant;

/// The official `nn.LayerNorm` epsilon.
const LN_EPS: f64 = 1e-5;

/// Configuration of [`SwinUNet`]; the defaults are the official Swin-T based model
/// (`configs/swin_tiny_patch4_window7_224_lite.yaml`) with one output channel.
#[derive(Config, Debug)]
pub struct SwinUNetConfig {
    /// The input side the model is configured for (it fixes each stage's window clipping).
    #[config(default = 224)]
    pub img_size: usize,
    /// Patch size of the embedding.
    #[config(default = 4)]
    pub patch_size: usize,
    /// Image channels.
    #[config(default = 3)]
    pub in_chans: usize,
    /// Output channels: 1 for a binary mask (sigmoid), K for K classes (9 for Synapse).
    #[config(default = 1)]
    pub num_classes: usize,
    /// Width of the first stage (doubled at each later stage).
    #[config(default = 96)]
    pub embed_dim: usize,
    /// Blocks per encoder stage; decoder level `i` has `depths[3 − i]`.
    #[config(default = "vec![2, 2, 2, 2]")]
    pub depths: Vec<usize>,
    /// Heads per stage.
    #[config(default = "vec![3, 6, 12, 24]")]
    pub num_heads: Vec<usize>,
    /// Window side.
    #[config(default = 7)]
    pub window_size: usize,
    /// MLP hidden width ratio.
    #[config(default = 4.0)]
    pub mlp_ratio: f64,
    /// Whether the attention `qkv` projections have a bias.
    #[config(default = true)]
    pub qkv_bias: bool,
    /// Decoder levels, from the bottleneck, whose skip passes Att-SwinU-Net's cross-contextual
    /// attention before the fusion (its `skip_num`; 0: Swin-UNet). With any, the model uses
    /// Att-SwinU-Net's checkpoint names.
    #[config(default = 0)]
    pub cross_attention_levels: usize,
    /// Layers of each cross-contextual attention (Att-SwinU-Net: 2).
    #[config(default = 2)]
    pub cross_depth: usize,
    /// Heads of the cross-contextual attention (8).
    #[config(default = 8)]
    pub cross_heads: usize,
    /// Channels per head of the cross-contextual attention (64).
    #[config(default = 64)]
    pub cross_dim_head: usize,
}

/// `PatchExpand` (`dim_scale` 2, key `layers_up.*`) and `FinalPatchExpand_X4` (`up`): a
/// bias-free Linear to `s²·d'` channels unfolded into `s × s` patches of `d'` channels, then
/// LayerNorm over `d'`. Keys `expand.weight`, `norm.*`.
#[derive(Module, Debug)]
pub struct PatchExpand {
    /// `d → s²·d'`, no bias.
    pub expand: Linear,
    /// LayerNorm over the `d'` output channels.
    pub norm: LayerNorm,
    /// The upsampling factor `s`.
    pub scale: usize,
}

impl PatchExpand {
    fn new(dim: usize, out: usize, scale: usize, device: &Device) -> Self {
        PatchExpand {
            expand: LinearConfig::new(dim, scale * scale * out)
                .with_bias(false)
                .init(device),
            norm: LayerNormConfig::new(out).with_epsilon(LN_EPS).init(device),
            scale,
        }
    }

    /// `[B, H, W, d] → [B, sH, sW, d']`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, h, w, _] = x.dims();
        let s = self.scale;
        let x = self.expand.forward(x);
        let out = x.dims()[3] / (s * s);
        let x: Tensor<6> = x.reshape([b, h, w, s, s, out]);
        let x = x
            .permute([0, 1, 3, 2, 4, 5])
            .reshape([b, h * s, w * s, out]);
        self.norm.forward(x)
    }
}

/// An encoder stage in the Microsoft layout (`BasicLayer`): the blocks, then patch merging.
/// Keys `blocks.{j}.*`, `downsample.*`.
#[derive(Module, Debug)]
pub struct SwinUNetLayer {
    /// Swin blocks, alternately unshifted and shifted.
    pub blocks: Vec<SwinBlock>,
    /// Patch merging at the end (absent in the last stage).
    pub downsample: Option<PatchMerging>,
}

impl SwinUNetLayer {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.blocks.iter().fold(x, |x, b| b.forward(x));
        match &self.downsample {
            Some(d) => d.forward(x),
            None => x,
        }
    }
}

/// A decoder stage (`BasicLayer_up`): the blocks, then patch expanding. Keys `blocks.{j}.*`,
/// `upsample.*`.
#[derive(Module, Debug)]
pub struct SwinUNetUpLayer {
    /// Swin blocks, alternately unshifted and shifted.
    pub blocks: Vec<SwinBlock>,
    /// Patch expanding at the end (absent in the last level).
    pub upsample: Option<PatchExpand>,
}

/// One entry of `layers_up`: the official list starts with a bare `PatchExpand`.
#[derive(Module, Debug)]
pub enum UpLayer {
    /// `layers_up.0`: patch expanding of the bottleneck.
    Expand(PatchExpand),
    /// `layers_up.{1,2,3}`: blocks then patch expanding.
    Stage(SwinUNetUpLayer),
}

impl UpLayer {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            UpLayer::Expand(e) => e.forward(x),
            UpLayer::Stage(s) => {
                let x = s.blocks.iter().fold(x, |x, b| b.forward(x));
                match &s.upsample {
                    Some(u) => u.forward(x),
                    None => x,
                }
            }
        }
    }
}

/// The Swin-UNet (`SwinTransformerSys`).
#[derive(Module, Debug)]
pub struct SwinUNet {
    /// Patch embedding (stride `p`).
    pub patch_embed: SwinPatchEmbed,
    /// Encoder stages (`layers.{i}`).
    pub layers: Vec<SwinUNetLayer>,
    /// Bottleneck LayerNorm (`norm`).
    pub norm: LayerNorm,
    /// Decoder levels (`layers_up.{i}`).
    pub layers_up: Vec<UpLayer>,
    /// Skip fusion `2d → d` per decoder level (`concat_back_dim.{i}`; none at level 0).
    pub concat_back_dim: Vec<Option<Linear>>,
    /// Att-SwinU-Net's cross-contextual attention per encoder stage `k` (`Crossvit_layer.{k}`,
    /// used by decoder level `stages − 1 − k`; empty for Swin-UNet).
    pub crossvit_layer: Vec<CrossTransformer>,
    /// Decoder levels (from the bottleneck) that use `crossvit_layer`.
    pub cross_attention_levels: usize,
    /// LayerNorm before the final expansion (`norm_up`).
    pub norm_up: LayerNorm,
    /// Final ×`p` patch expansion (`up`, `FinalPatchExpand_X4`).
    pub up: PatchExpand,
    /// 1×1 bias-free convolution to the logits (`output`).
    pub output: Conv2d,
}

impl SwinUNetConfig {
    /// Width of stage `i`.
    pub fn stage_dim(&self, i: usize) -> usize {
        self.embed_dim << i
    }

    fn stages(&self) -> usize {
        self.depths.len()
    }

    /// The configured resolution of stage `i` (the official `input_resolution`).
    pub fn stage_resolution(&self, i: usize) -> [usize; 2] {
        [(self.img_size / self.patch_size) >> i; 2]
    }

    /// The multiple every input side is padded to.
    pub fn multiple(&self) -> usize {
        self.patch_size << (self.stages() - 1)
    }

    fn blocks(&self, stage: usize, device: &Device) -> Vec<SwinBlock> {
        let dim = self.stage_dim(stage);
        (0..self.depths[stage])
            .map(|j| {
                let shift = if j % 2 == 0 { 0 } else { self.window_size / 2 };
                SwinBlockConfig::new(dim, self.stage_resolution(stage))
                    .with_num_heads(self.num_heads[stage])
                    .with_window_size([self.window_size; 2])
                    .with_shift_size([shift; 2])
                    .with_mlp_ratio(self.mlp_ratio)
                    .with_qkv_bias(self.qkv_bias)
                    .with_norm_eps(LN_EPS)
                    .init(device)
            })
            .collect()
    }

    /// Builds the network with random weights.
    ///
    /// # Panics
    /// Unless `depths` and `num_heads` have the same length, at least two.
    pub fn init(&self, device: &Device) -> SwinUNet {
        let n = self.stages();
        assert!(
            n >= 2 && self.num_heads.len() == n,
            "Swin-UNet needs as many head counts as stages, and two stages or more"
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
        let layers = (0..n)
            .map(|i| {
                let dim = self.stage_dim(i);
                SwinUNetLayer {
                    blocks: self.blocks(i, device),
                    downsample: (i + 1 < n).then(|| PatchMerging {
                        norm: ln(4 * dim),
                        reduction: LinearConfig::new(4 * dim, 2 * dim)
                            .with_bias(false)
                            .init(device),
                    }),
                }
            })
            .collect();
        let mut layers_up = Vec::with_capacity(n);
        let mut concat_back_dim = Vec::with_capacity(n);
        for i in 0..n {
            let stage = n - 1 - i;
            let dim = self.stage_dim(stage);
            if i == 0 {
                layers_up.push(UpLayer::Expand(PatchExpand::new(dim, dim / 2, 2, device)));
                concat_back_dim.push(None);
            } else {
                layers_up.push(UpLayer::Stage(SwinUNetUpLayer {
                    blocks: self.blocks(stage, device),
                    upsample: (stage > 0).then(|| PatchExpand::new(dim, dim / 2, 2, device)),
                }));
                concat_back_dim.push(Some(LinearConfig::new(2 * dim, dim).init(device)));
            }
        }
        let crossvit_layer = if self.cross_attention_levels > 0 {
            (0..n - 1)
                .map(|k| {
                    CrossTransformerConfig::new(self.stage_dim(k))
                        .with_depth(self.cross_depth)
                        .with_heads(self.cross_heads)
                        .with_dim_head(self.cross_dim_head)
                        .with_norm_eps(LN_EPS)
                        .init(device)
                })
                .collect()
        } else {
            Vec::new()
        };
        SwinUNet {
            patch_embed,
            layers,
            norm: ln(self.stage_dim(n - 1)),
            layers_up,
            concat_back_dim,
            crossvit_layer,
            cross_attention_levels: self.cross_attention_levels.min(n - 1),
            norm_up: ln(self.embed_dim),
            up: PatchExpand::new(self.embed_dim, self.embed_dim, p, device),
            output: Conv2dConfig::new([self.embed_dim, self.num_classes], [1, 1])
                .with_padding(PaddingConfig2d::Valid)
                .with_bias(false)
                .init(device),
        }
    }

    /// The official names (its `relative_position_index` and `attn_mask` buffers are
    /// recomputed, not loaded). Checkpoints saved by the official trainer carry the wrapper's
    /// `swin_unet.` prefix (`module.swin_unet.` after `DataParallel`); both load.
    pub fn key_map(&self) -> KeyMap {
        if self.cross_attention_levels == 0 {
            return crate::swin::key_map().with_aliases(&[
                ("^module.swin_unet.{m}", "^{m}"),
                ("^swin_unet.{m}", "^{m}"),
            ]);
        }
        // Att-SwinU-Net: the encoder and decoder halves, lucidrains' names inside the skip
        // attention; the two modules it builds and never runs are not read.
        let mut map = KeyMap::new(&[
            ("^encoder.patch_embed", "^patch_embed"),
            ("^encoder.layers", "^layers"),
            ("^encoder.norm", "^norm"),
            ("^decoder.layers_up", "^layers_up"),
            ("^decoder.concat_back_dim", "^concat_back_dim"),
            ("^decoder.norm_up", "^norm_up"),
            ("^decoder.up", "^up"),
            ("^decoder.output", "^output"),
            ("^decoder.Crossvit_layer", "^crossvit_layer"),
        ])
        .ignoring(&[r"^patch_embed\.", r"^decoder\.norm\."]);
        for k in 0..self.stages() - 1 {
            map = map.then(
                gaze_blocks::cross_attention::key_map().under(&format!("crossvit_layer.{k}")),
            );
        }
        map.then(crate::swin::key_map())
    }

    /// Where the keys of a Swin classification checkpoint (`keys`, Microsoft's or timm's
    /// layout) go in this model, as Swin-UNet's official `load_from` places them:
    /// `(checkpoint key, official key of this model)` pairs, a key mirrored into the decoder
    /// appearing twice. The classifier head and stages' blocks beyond this model's depth map
    /// nowhere. (Att-SwinU-Net publishes no loader: its encoder and decoder take the same
    /// placement.)
    pub fn encoder_checkpoint_keys(&self, keys: &[String]) -> Vec<(String, String)> {
        // timm (1.x) keeps patch merging at the start of the next stage and names the head
        // `head.fc`; Microsoft's layout (the official code's) has it at the end of the stage.
        let timm = keys.iter().any(|k| {
            k.starts_with("head.fc.")
                || k.starts_with(&format!("layers.{}.downsample.", self.stages() - 1))
        });
        let n = self.stages();
        let mut pairs = Vec::new();
        for key in keys {
            let mut parts = key.splitn(3, '.');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("layers"), Some(stage), Some(rest)) => {
                    let Ok(stage) = stage.parse::<usize>() else {
                        continue;
                    };
                    if let Some(merge) = rest.strip_prefix("downsample.") {
                        // The merge after stage `s` (Microsoft) = before stage `s + 1` (timm).
                        let after = if timm {
                            stage.checked_sub(1)
                        } else {
                            Some(stage)
                        };
                        if let Some(s) = after.filter(|&s| s + 1 < n) {
                            pairs.push((key.clone(), format!("layers.{s}.downsample.{merge}")));
                        }
                    } else if stage < n {
                        pairs.push((key.clone(), format!("layers.{stage}.{rest}")));
                        // The official mirror `layers.X → layers_up.(3 − X)`; level 0 of the
                        // decoder is a bare patch expansion, without blocks.
                        if stage + 1 < n && rest.starts_with("blocks.") {
                            pairs
                                .push((key.clone(), format!("layers_up.{}.{rest}", n - 1 - stage)));
                        }
                    }
                }
                (Some("patch_embed" | "norm"), _, _) => pairs.push((key.clone(), key.clone())),
                _ => {}
            }
        }
        if self.cross_attention_levels > 0 {
            // Swin-UNet's names are the module paths; Att-SwinU-Net's official names differ.
            let att = self.key_map();
            for (_, dst) in &mut pairs {
                *dst = att.unmap(dst);
            }
        }
        pairs
    }

    /// The skips' and bottleneck's channels and strides.
    pub fn feature_info(&self) -> Vec<FeatureInfo> {
        const MODULES: [&str; 4] = ["patch_embed", "layers.0", "layers.1", "layers.2"];
        let n = self.stages();
        (0..n)
            .map(|i| FeatureInfo {
                channels: self.stage_dim(i),
                reduction: self.patch_size << i,
                module: if i + 1 == n {
                    "norm"
                } else {
                    MODULES.get(i).copied().unwrap_or("layers")
                },
            })
            .collect()
    }
}

fn nhwc_to_nchw(x: Tensor<4>) -> Tensor<4> {
    x.permute([0, 3, 1, 2])
}

impl SwinUNet {
    fn multiple(&self) -> usize {
        self.patch_embed.patch_size << (self.layers.len() - 1)
    }

    /// The skips (stage inputs, finest first) and the normalised bottleneck, channels-last,
    /// of an input already padded to [`SwinUNetConfig::multiple`].
    fn encode(&self, x: Tensor<4>) -> (Vec<Tensor<4>>, Tensor<4>) {
        let mut x = self.patch_embed.forward(x);
        let mut skips = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            skips.push(x.clone());
            x = layer.forward(x);
        }
        (skips, self.norm.forward(x))
    }

    fn pad(&self, x: Tensor<4>) -> (Tensor<4>, [usize; 4]) {
        let [_, _, h, w] = x.dims();
        let (top, bottom, left, right) = even_padding(h, w, self.multiple());
        if top + bottom + left + right == 0 {
            return (x, [0; 4]);
        }
        (
            x.pad((left, right, top, bottom), PadMode::Constant(0.0)),
            [top, bottom, left, right],
        )
    }

    /// The full-resolution decoder map `[N, embed_dim, H, W]` (after `norm_up` and the final
    /// expansion) at the input's size.
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, h, w] = x.dims();
        let (x, [top, _, left, _]) = self.pad(x);
        let (skips, mut d) = self.encode(x);
        let n = self.layers.len();
        for (i, layer) in self.layers_up.iter().enumerate() {
            if let Some(fuse) = &self.concat_back_dim[i] {
                let mut skip = skips[n - 1 - i].clone();
                if i <= self.cross_attention_levels {
                    let [b, h, w, c] = d.dims();
                    let (a, s) = self.crossvit_layer[n - 1 - i]
                        .forward(d.reshape([b, h * w, c]), skip.reshape([b, h * w, c]));
                    d = a.reshape([b, h, w, c]);
                    skip = s.reshape([b, h, w, c]);
                }
                d = fuse.forward(Tensor::cat(vec![d, skip], 3));
            }
            d = layer.forward(d);
        }
        let d = nhwc_to_nchw(self.up.forward(self.norm_up.forward(d)));
        let [b, c, _, _] = d.dims();
        d.slice([0..b, 0..c, top..top + h, left..left + w])
    }

    /// Per-pixel logits `[N, num_classes, H, W]` from [`SwinUNet::forward_features`].
    pub fn forward_head(&self, features: Tensor<4>) -> Tensor<4> {
        self.output.forward(features)
    }

    /// Per-pixel logits `[N, num_classes, H, W]` for any `[N, in_chans, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_head(self.forward_features(x))
    }

    /// The skips of the decoder (the patch embedding and the merged maps, strides 4, 8, 16)
    /// and the normalised bottleneck (stride 32), NCHW, of the zero-padded input.
    pub fn forward_intermediates(&self, x: Tensor<4>) -> Vec<Tensor<4>> {
        let (x, _) = self.pad(x);
        let (mut skips, bottleneck) = self.encode(x);
        skips.pop();
        skips.push(bottleneck);
        skips.into_iter().map(nhwc_to_nchw).collect()
    }
}

const PAPER: &str =
    "Swin-Unet: Unet-like Pure Transformer for Medical Image Segmentation (Cao et al., ECCV Workshops 2022)";
const WEIGHTS: &str = "no trained weights published (HuCaoFighting/Swin-Unet); its encoder loads from Swin-T ImageNet weights (Microsoft's or timm's swin_tiny_patch4_window7_224) as the official load_from does";
/// The official Synapse pipeline feeds `[0, 1]` intensities, unnormalised.
const UNIT: DataConfig = DataConfig::Dense {
    mean: [0.0; 3],
    std: [1.0; 3],
};

const ATT_PAPER: &str = "Attention Swin U-Net: Cross-Contextual Attention Mechanism for Skin Lesion Segmentation (Aghdam et al., ISBI 2023)";
const ATT_WEIGHTS: &str = "no trained weights published (NITR098/AttSwinUNet); its encoder loads from Swin-T ImageNet weights";
const BINARY: Task = Task::Segmentation { num_classes: 1 };

static VARIANTS: &[ModelInfo] = &[
    variant!(
        "swin_unet",
        "swin_unet",
        BINARY,
        PAPER,
        27_168_132,
        UNIT,
        WEIGHTS,
        SwinUNetConfig::new()
    ),
    // The official code min-max scales each image to [0, 255] (its loader.py); [0, 1] here,
    // as Swin-UNet, since no trained weights fix the scale.
    variant!(
        "att_swin_unet",
        "swin_unet",
        BINARY,
        ATT_PAPER,
        46_893_156,
        UNIT,
        ATT_WEIGHTS,
        SwinUNetConfig::new()
            .with_depths(vec![2, 2, 6, 2])
            .with_cross_attention_levels(3)
    ),
];

crate::segmentation_family!(
    SwinUNetConfig => SwinUNet,
    fn encoder_checkpoint_keys(&self, keys: &[String]) -> Option<Vec<(String, String)>> {
        Some(SwinUNetConfig::encoder_checkpoint_keys(self, keys))
    }
);
