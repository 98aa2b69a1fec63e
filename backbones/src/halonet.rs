//! HaloNet as timm 1.0.31 builds it: `halonet26t` and `halonet50ts` of
//! `timm/models/byoanet.py`, i.e. timm's "bring-your-own-blocks" `ByobNet`
//! (`timm/models/byobnet.py`) with a tiered 3×3 stem, ResNet-like `bottle` blocks and
//! `self_attn` blocks whose spatial mixing is [`HaloAttn`].
//!
//! * Vaswani et al., "Scaling Local Self-Attention for Parameter Efficient Visual Backbones",
//!   CVPR 2021.
//!
//! Only what these two cfgs use is built (no grouped convolutions, no channel attention, no
//! `final_conv`, the `conv1x1` shortcut, the classifier head). The architecture is data: a
//! [`HaloNetConfig`] lists the stages and their blocks as timm's `ByoBlockCfg`s expand them
//! (`interleave_blocks` is [`interleave_blocks`] here), so parameter names are timm's state-dict
//! keys (`stem.conv1.conv.weight`, `stages.2.1.self_attn.q.weight`,
//! `stages.2.1.post_attn.weight`, `stages.0.0.shortcut.bn.running_var`, `head.fc.weight`, …)
//! and timm checkpoints load with an empty key map.
//!
//! Input sizes: timm's `HaloAttn` asserts that its input map is a multiple of `block_size`, so
//! timm's halonets only accept sizes that are multiples of [`HaloNetConfig::input_multiple`]
//! (256 for both full-size models: the last attention runs on the stride-32 map with 8×8
//! blocks; timm's default and minimum input is 256×256). [`HaloNet::forward`],
//! [`HaloNet::forward_features`] and [`HaloNet::forward_intermediates`] accept any size: they
//! zero-pad the image at the bottom and right to the next multiple (a no-op for the sizes timm
//! accepts), so their outputs are timm's outputs on that padded image.

use crate::model::InputSize;
#[allow(unused_imports)]
use crate::registry::{DataConfig, ModelInfo, Task, IMAGENET, TIMM_WEIGHTS};
use crate::variant;

use burn::nn::{BatchNorm, BatchNormConfig};
use burn::prelude::*;
use burn::tensor::ops::PadMode;
use gaze_blocks::layers::{
    make_divisible, max_pool_3x3_s2, Activation, ConvNormAct, ConvNormActConfig,
};
use gaze_blocks::{HaloAttn, HaloAttnConfig};
use gaze_weights::KeyMap;

use crate::features::FeatureInfo;

/// timm's `make_divisible(v)` with its defaults (divisor 8, round limit 0.9).
fn divisible(v: f64) -> usize {
    make_divisible(v, 8, None, 0.9)
}

/// The two block types of timm's block registry these models use.
#[derive(Config, Debug, PartialEq, Eq, Copy)]
pub enum ByoBlockType {
    /// `bottle`: timm's `BottleneckBlock`, 1×1 → 3×3 (strided) → 1×1.
    Bottle,
    /// `self_attn`: timm's `SelfAttnBlock`, 1×1 → halo attention (strided) → BN-act → 1×1.
    SelfAttn,
}

/// timm's `self_attn_kwargs` for `self_attn_layer='halo'` (the [`HaloAttnConfig`] arguments
/// the cfgs set; the others keep timm's defaults).
#[derive(Config, Debug, PartialEq, Eq, Copy)]
pub struct HaloKwargs {
    /// Side of the query blocks.
    #[config(default = 8)]
    pub block_size: usize,
    /// Halo around each block.
    #[config(default = 3)]
    pub halo_size: usize,
    /// Attention heads.
    #[config(default = 8)]
    pub num_heads: usize,
}

/// One block (timm's `ByoBlockCfg` with `d = 1`, as `expand_blocks_cfg` leaves it).
#[derive(Config, Debug)]
pub struct ByoBlockConfig {
    /// Block type.
    pub block_type: ByoBlockType,
    /// Output channels (`c`).
    pub c: usize,
    /// Bottleneck ratio (`br`): the middle width is `make_divisible(c · br)`.
    #[config(default = 0.25)]
    pub br: f64,
    /// Block-level `self_attn_kwargs`, replacing (not merged with) the model's when set.
    pub self_attn_kwargs: Option<HaloKwargs>,
}

/// One stage: its blocks and the stride of the first one (`s`).
#[derive(Config, Debug)]
pub struct ByoStageConfig {
    /// The blocks, in order (timm `stages.{i}.{j}`).
    pub blocks: Vec<ByoBlockConfig>,
    /// Stride of the stage's first block.
    #[config(default = 2)]
    pub stride: usize,
}

impl ByoStageConfig {
    /// `d` blocks of one type (timm `ByoBlockCfg(type, d, c, s, br=0.25)`).
    pub fn repeat(block_type: ByoBlockType, d: usize, c: usize, stride: usize) -> Self {
        ByoStageConfig::new((0..d).map(|_| ByoBlockConfig::new(block_type, c)).collect())
            .with_stride(stride)
    }

    /// Sets every block's `self_attn_kwargs` (timm's block-level override).
    pub fn with_self_attn_kwargs(mut self, kwargs: HaloKwargs) -> Self {
        for b in &mut self.blocks {
            b.self_attn_kwargs = Some(kwargs);
        }
        self
    }
}

/// timm's `interleave_blocks(types, d, every, first)` with an integer `every` (`every=None`
/// for the default 1): block `i` is `types[1]` if `i` is in `range(0 if first else every, d,
/// every + 1)` (or `i == d - 1` when that range is empty), else `types[0]`.
pub fn interleave_blocks(
    types: [ByoBlockType; 2],
    d: usize,
    every: usize,
    first: bool,
    c: usize,
    stride: usize,
) -> ByoStageConfig {
    let start = if first { 0 } else { every };
    let mut at: Vec<usize> = (start..d).step_by(every + 1).collect();
    if at.is_empty() {
        at = vec![d - 1];
    }
    let blocks = (0..d)
        .map(|i| ByoBlockConfig::new(if at.contains(&i) { types[1] } else { types[0] }, c))
        .collect();
    ByoStageConfig::new(blocks).with_stride(stride)
}

/// A HaloNet (timm `ByobNet` with a tiered stem, max pool and halo self-attention), with timm's
/// cfg names.
#[derive(Config, Debug)]
pub struct HaloNetConfig {
    /// The stages (timm's `blocks`).
    pub stages: Vec<ByoStageConfig>,
    /// Stem output channels; the tiered stem is `3·c/8, c/2, c` (timm `stem_chs`).
    #[config(default = 64)]
    pub stem_chs: usize,
    /// Activation (timm `act_layer`).
    #[config(default = "Activation::Relu")]
    pub act_layer: Activation,
    /// Model-level halo attention arguments (timm `self_attn_kwargs`).
    #[config(default = "HaloKwargs::new()")]
    pub self_attn_kwargs: HaloKwargs,
    /// Classifier outputs; 0 for a backbone without head.
    #[config(default = 1000)]
    pub num_classes: usize,
    /// Image channels.
    #[config(default = 3)]
    pub in_chans: usize,
}

/// The resolved shape of one block.
#[derive(Debug, Clone, Copy)]
struct BlockPlan {
    block_type: ByoBlockType,
    in_chs: usize,
    out_chs: usize,
    mid_chs: usize,
    stride: usize,
    /// Stride of the block's input relative to the image.
    in_reduction: usize,
    halo: HaloKwargs,
}

impl HaloNetConfig {
    /// timm `halonet26t` (12.48 M parameters; 256×256 input).
    pub fn halonet26t() -> Self {
        use ByoBlockType::*;
        HaloNetConfig::new(vec![
            ByoStageConfig::repeat(Bottle, 2, 256, 1),
            ByoStageConfig::repeat(Bottle, 2, 512, 2),
            interleave_blocks([Bottle, SelfAttn], 2, 1, false, 1024, 2),
            ByoStageConfig::repeat(SelfAttn, 2, 2048, 2),
        ])
        .with_self_attn_kwargs(HaloKwargs::new().with_block_size(8).with_halo_size(2))
    }

    /// timm `halonet50ts` (22.73 M parameters; 256×256 input).
    pub fn halonet50ts() -> Self {
        use ByoBlockType::*;
        HaloNetConfig::new(vec![
            ByoStageConfig::repeat(Bottle, 3, 256, 1),
            interleave_blocks([Bottle, SelfAttn], 4, 4, false, 512, 2).with_self_attn_kwargs(
                HaloKwargs::new()
                    .with_block_size(8)
                    .with_halo_size(3)
                    .with_num_heads(4),
            ),
            interleave_blocks([Bottle, SelfAttn], 6, 1, false, 1024, 2),
            interleave_blocks([Bottle, SelfAttn], 3, 1, false, 2048, 2),
        ])
        .with_act_layer(Activation::Silu)
        .with_self_attn_kwargs(HaloKwargs::new().with_block_size(8).with_halo_size(3))
    }

    /// The tiered stem's three widths (timm `(3 * c // 8, c // 2, c)`).
    pub fn stem_widths(&self) -> [usize; 3] {
        [3 * self.stem_chs / 8, self.stem_chs / 2, self.stem_chs]
    }

    fn plan(&self) -> Vec<Vec<BlockPlan>> {
        let mut prev = self.stem_chs;
        let mut reduction = 4;
        self.stages
            .iter()
            .map(|stage| {
                stage
                    .blocks
                    .iter()
                    .enumerate()
                    .map(|(j, b)| {
                        let stride = if j == 0 { stage.stride } else { 1 };
                        let out = divisible(b.c as f64);
                        let p = BlockPlan {
                            block_type: b.block_type,
                            in_chs: prev,
                            out_chs: out,
                            mid_chs: divisible(out as f64 * b.br),
                            stride,
                            in_reduction: reduction,
                            halo: b.self_attn_kwargs.unwrap_or(self.self_attn_kwargs),
                        };
                        prev = out;
                        reduction *= stride;
                        p
                    })
                    .collect()
            })
            .collect()
    }

    /// Image sizes must be multiples of this for every halo attention to see whole blocks (the
    /// largest `input stride × block_size` over the `self_attn` blocks, at least 32): 256 for
    /// halonet26t and halonet50ts. Other sizes are zero-padded up to it by the forward passes.
    pub fn input_multiple(&self) -> usize {
        self.plan()
            .iter()
            .flatten()
            .filter(|p| p.block_type == ByoBlockType::SelfAttn)
            .map(|p| p.in_reduction * p.halo.block_size)
            .fold(32, usize::max)
    }

    /// Channels entering the classifier (the last stage's width; these cfgs have no
    /// `final_conv`).
    pub fn num_features(&self) -> usize {
        self.plan()
            .last()
            .and_then(|s| s.last())
            .map_or(self.stem_chs, |p| p.out_chs)
    }

    /// timm's `feature_info`: the stem's last convolution (`stem.conv3`, stride 2, before the
    /// max pool), then `stages.0` … `stages.{n-2}` and the last stage as `final_conv`.
    pub fn feature_info(&self) -> Vec<FeatureInfo> {
        const STAGES: [&str; 8] = [
            "stages.0", "stages.1", "stages.2", "stages.3", "stages.4", "stages.5", "stages.6",
            "stages.7",
        ];
        let mut info = vec![FeatureInfo {
            channels: self.stem_chs,
            reduction: 2,
            module: "stem.conv3",
        }];
        let plan = self.plan();
        let n = plan.len();
        let mut reduction = 4;
        for (i, stage) in plan.iter().enumerate() {
            reduction *= self.stages[i].stride;
            info.push(FeatureInfo {
                channels: stage.last().map_or(self.stem_chs, |p| p.out_chs),
                reduction,
                module: if i + 1 == n { "final_conv" } else { STAGES[i] },
            });
        }
        info
    }

    /// Builds the network with random weights.
    ///
    /// # Panics
    /// If a `self_attn` block's width is not a multiple of its heads (timm asserts it).
    pub fn init(&self, device: &Device) -> HaloNet {
        let act = self.act_layer;
        let [c1, c2, c3] = self.stem_widths();
        let stem = Stem {
            conv1: conv_norm_act(self.in_chans, c1, 3, 2, Some(act), device),
            conv2: conv_norm_act(c1, c2, 3, 1, Some(act), device),
            conv3: conv_norm_act(c2, c3, 3, 1, Some(act), device),
        };
        let stages = self
            .plan()
            .into_iter()
            .map(|stage| {
                stage
                    .into_iter()
                    .map(|p| ByoBlock::new(&p, act, device))
                    .collect()
            })
            .collect();
        HaloNet {
            stem,
            stages,
            head: gaze_heads::ClassifierHead::new(self.num_features(), self.num_classes, device),
            input_multiple: self.input_multiple(),
        }
    }
}

/// The tiered stem (timm `Stem`: `conv1` 3×3 stride 2, `conv2`, `conv3`, then a 3×3 stride-2
/// max pool without parameters).
#[derive(Module, Debug)]
pub struct Stem {
    /// 3×3 stride 2, `3·c/8` channels.
    pub conv1: ConvNormAct,
    /// 3×3, `c/2` channels.
    pub conv2: ConvNormAct,
    /// 3×3, `c` channels (timm's stride-2 feature `stem.conv3`).
    pub conv3: ConvNormAct,
}

/// timm `BottleneckBlock` as these cfgs build it:
/// `act(conv3_1x1(conv2_kxk(conv1_1x1(x))) + shortcut(x))`.
#[derive(Module, Debug)]
pub struct BottleneckBlock {
    /// 1×1 projection shortcut without activation (when the stride or width changes).
    pub shortcut: Option<ConvNormAct>,
    /// 1×1 reduction to the middle width.
    pub conv1_1x1: ConvNormAct,
    /// 3×3, strided.
    pub conv2_kxk: ConvNormAct,
    /// 1×1 expansion, no activation.
    pub conv3_1x1: ConvNormAct,
    /// Activation after the residual sum.
    #[module(skip)]
    pub act: Activation,
}

/// timm `SelfAttnBlock`:
/// `act(conv3_1x1(act(post_attn(self_attn(conv1_1x1(x))))) + shortcut(x))`, the halo
/// attention carrying the block's stride.
#[derive(Module, Debug)]
pub struct SelfAttnBlock {
    /// 1×1 projection shortcut without activation (when the stride or width changes).
    pub shortcut: Option<ConvNormAct>,
    /// 1×1 reduction to the middle width.
    pub conv1_1x1: ConvNormAct,
    /// Halo attention (middle width in and out).
    pub self_attn: HaloAttn,
    /// Batch norm followed by the activation (timm `BatchNormAct2d`, keys `post_attn.*`).
    pub post_attn: BatchNorm,
    /// 1×1 expansion, no activation.
    pub conv3_1x1: ConvNormAct,
    /// Activation.
    #[module(skip)]
    pub act: Activation,
}

/// A block of a stage.
#[derive(Module, Debug)]
pub enum ByoBlock {
    /// `bottle`.
    Bottle(BottleneckBlock),
    /// `self_attn`.
    SelfAttn(SelfAttnBlock),
}

fn shortcut(s: &Option<ConvNormAct>, x: Tensor<4>) -> Tensor<4> {
    match s {
        Some(c) => c.forward(x),
        None => x,
    }
}

impl ByoBlock {
    fn new(p: &BlockPlan, act: Activation, device: &Device) -> Self {
        let shortcut = (p.in_chs != p.out_chs || p.stride != 1)
            .then(|| conv_norm_act(p.in_chs, p.out_chs, 1, p.stride, None, device));
        let conv1_1x1 = conv_norm_act(p.in_chs, p.mid_chs, 1, 1, Some(act), device);
        let conv3_1x1 = conv_norm_act(p.mid_chs, p.out_chs, 1, 1, None, device);
        match p.block_type {
            ByoBlockType::Bottle => ByoBlock::Bottle(BottleneckBlock {
                shortcut,
                conv1_1x1,
                conv2_kxk: conv_norm_act(p.mid_chs, p.mid_chs, 3, p.stride, Some(act), device),
                conv3_1x1,
                act,
            }),
            ByoBlockType::SelfAttn => ByoBlock::SelfAttn(SelfAttnBlock {
                shortcut,
                conv1_1x1,
                self_attn: HaloAttnConfig::new(p.mid_chs)
                    .with_stride(p.stride)
                    .with_num_heads(p.halo.num_heads)
                    .with_block_size(p.halo.block_size)
                    .with_halo_size(p.halo.halo_size)
                    .init(device),
                post_attn: BatchNormConfig::new(p.mid_chs).init(device),
                conv3_1x1,
                act,
            }),
        }
    }

    /// `[N, in, H, W] → [N, out, H / stride, W / stride]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            ByoBlock::Bottle(b) => {
                let y = b.conv1_1x1.forward(x.clone());
                let y = b.conv3_1x1.forward(b.conv2_kxk.forward(y));
                b.act.apply(y + shortcut(&b.shortcut, x))
            }
            ByoBlock::SelfAttn(b) => {
                let y = b.self_attn.forward(b.conv1_1x1.forward(x.clone()));
                let y = b.conv3_1x1.forward(b.act.apply(b.post_attn.forward(y)));
                b.act.apply(y + shortcut(&b.shortcut, x))
            }
        }
    }
}

/// A HaloNet: tiered stem + max pool, the stages, global average pool, `head.fc`.
#[derive(Module, Debug)]
pub struct HaloNet {
    /// Stem convolutions.
    pub stem: Stem,
    /// Stages of blocks (timm `stages.{i}.{j}`).
    pub stages: Vec<Vec<ByoBlock>>,
    /// Classifier head.
    pub head: gaze_heads::ClassifierHead,
    /// Image sizes are zero-padded to multiples of this ([`HaloNetConfig::input_multiple`]).
    pub input_multiple: usize,
}

impl HaloNet {
    /// Zero-pads the image at the bottom and right to multiples of the input multiple.
    pub fn pad_input(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, h, w] = x.dims();
        let m = self.input_multiple;
        let (ph, pw) = (h.next_multiple_of(m) - h, w.next_multiple_of(m) - w);
        if ph == 0 && pw == 0 {
            x
        } else {
            x.pad((0, pw, 0, ph), PadMode::Constant(0.0))
        }
    }

    fn stem_conv(&self, x: Tensor<4>) -> Tensor<4> {
        let s = &self.stem;
        s.conv3
            .forward(s.conv2.forward(s.conv1.forward(self.pad_input(x))))
    }

    /// timm's `forward_intermediates(x, intermediates_only=True)`, one map per
    /// [`HaloNetConfig::feature_info`] entry: `stem.conv3` (stride 2), then every stage's output
    /// (strides 4, 8, 16, 32), of the padded image.
    pub fn forward_intermediates(&self, x: Tensor<4>) -> Vec<Tensor<4>> {
        let stem = self.stem_conv(x);
        let mut out = vec![stem.clone()];
        let mut x = max_pool_3x3_s2(stem);
        for stage in &self.stages {
            x = stage.iter().fold(x, |x, b| b.forward(x));
            out.push(x.clone());
        }
        out
    }

    /// The last stage's feature map `[N, C, H'/32, W'/32]` of the padded `H' × W'` image.
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
        let x = max_pool_3x3_s2(self.stem_conv(x));
        self.stages.iter().flatten().fold(x, |x, b| b.forward(x))
    }

    /// Global average pool and classifier: `[N, C, h, w] → [N, classes]` (the pooled
    /// features when the model has no classifier).
    pub fn forward_head(&self, features: Tensor<4>) -> Tensor<2> {
        self.head.forward(features)
    }

    /// Logits `[N, classes]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_head(self.forward_features(x))
    }
}
const HALONET: &str = "Scaling Local Self-Attention for Parameter Efficient Visual Backbones (Vaswani et al., CVPR 2021)";

static VARIANTS: &[ModelInfo] = &[
    variant!(
        "halonet26t",
        "halonet",
        IMAGENET,
        HALONET,
        12_480_288,
        DataConfig::IMAGENET_BICUBIC.with_size(256, 0.95),
        TIMM_WEIGHTS,
        HaloNetConfig::halonet26t()
    ),
    variant!(
        "halonet50ts",
        "halonet",
        IMAGENET,
        HALONET,
        22_733_280,
        DataConfig::IMAGENET_BICUBIC.with_size(256, 0.94),
        TIMM_WEIGHTS,
        HaloNetConfig::halonet50ts()
    ),
];

/// The official checkpoint's names (and buffers gaze recomputes instead of loading).
pub fn key_map() -> KeyMap {
    KeyMap::identity()
}

crate::classifier_family!(
    HaloNetConfig => HaloNet,
    features: Map,
    key_map: |_| key_map(),
    input_size: |c| InputSize::PaddedTo(c.input_multiple()),
);

/// timm's `ConvNormAct` as the byob cfgs build it: bias-free, `k / 2` padding.
fn conv_norm_act(
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    act: Option<Activation>,
    device: &Device,
) -> ConvNormAct {
    ConvNormActConfig::new(cin, cout, k)
        .with_stride(stride)
        .with_act(act)
        .init(device)
}
