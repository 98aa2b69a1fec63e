//! The ResNet family as timm builds it (`timm/models/resnet.py`, `resnest.py`), with any
//! gaze attention block pluggable after each residual branch (timm's `attn_layer`).
//!
//! Variants are data: a [`ResNetConfig`] per registered name (depth, block, stem, downsample
//! and attention kind). Parameter names are timm's, so timm checkpoints load through
//! [`gaze_weights::keymaps::resnet`] without conversion.
//!
//! * He et al., "Deep Residual Learning for Image Recognition", CVPR 2016.
//! * He et al., "Bag of Tricks for Image Classification with CNNs", CVPR 2019 (the `d`/`t`
//!   variants: deep stem, average-pool shortcut downsampling).
//! * Zhang et al., "ResNeSt: Split-Attention Networks", 2020.

#[allow(unused_imports)]
use crate::registry::{DataConfig, ModelInfo, Task, IMAGENET, TIMM_WEIGHTS};
use crate::variant;
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;
use burn::tensor::ops::AvgPoolOptions;
use gaze_blocks::attention::{create_attn, Attention, AttentionKind};
use gaze_blocks::conv::{Conv2d, Conv2dConfig};
use gaze_blocks::cpu_kernels::batch_norm;
use gaze_blocks::cpu_kernels::{add_relu, avg_pool2d};
use gaze_blocks::layers::max_pool_3x3_s2;
use gaze_blocks::linear::{Linear, LinearConfig};
use gaze_blocks::{SplitAttn, SplitAttnConfig};
use gaze_weights::KeyMap;

use crate::features::FeatureInfo;

/// The residual block of every stage.
#[derive(Config, Debug, PartialEq, Eq, Copy)]
pub enum BlockType {
    /// Two 3×3 convolutions (ResNet-18/34); expansion 1.
    Basic,
    /// 1×1 → 3×3 (grouped) → 1×1 (ResNet-50+); expansion 4.
    Bottleneck,
    /// ResNeSt bottleneck: the 3×3 convolution is a split-attention convolution.
    ResNest,
}

impl BlockType {
    /// Output channels per `planes`.
    pub fn expansion(self) -> usize {
        match self {
            BlockType::Basic => 1,
            BlockType::Bottleneck | BlockType::ResNest => 4,
        }
    }
}

/// The stem before the first stage.
#[derive(Config, Debug, PartialEq, Eq, Copy)]
pub enum StemType {
    /// One 7×7 stride-2 convolution with 64 channels.
    Plain,
    /// Three 3×3 convolutions, `stem_width, stem_width, 2·stem_width` channels (`d` variants).
    Deep,
    /// Three 3×3 convolutions, `3/4·stem_width, stem_width, 2·stem_width` (`t` variants).
    DeepTiered,
}

/// A ResNet variant, with timm's argument names.
#[derive(Config, Debug)]
pub struct ResNetConfig {
    /// Residual block type.
    pub block: BlockType,
    /// Blocks per stage.
    pub layers: Vec<usize>,
    /// `planes` per stage (output channels are `planes · expansion`).
    #[config(default = "vec![64, 128, 256, 512]")]
    pub channels: Vec<usize>,
    /// Classifier outputs; 0 for a backbone without head.
    #[config(default = 1000)]
    pub num_classes: usize,
    /// Image channels.
    #[config(default = 3)]
    pub in_chans: usize,
    /// Groups of the 3×3 convolution (ResNeXt).
    #[config(default = 1)]
    pub cardinality: usize,
    /// Width per group of the bottleneck.
    #[config(default = 64)]
    pub base_width: usize,
    /// Stem width of the deep stems.
    #[config(default = 64)]
    pub stem_width: usize,
    /// Stem type.
    #[config(default = "StemType::Plain")]
    pub stem_type: StemType,
    /// Average-pool then 1×1 convolution in strided shortcuts (instead of a strided 1×1).
    #[config(default = false)]
    pub avg_down: bool,
    /// Attention block after each residual branch (timm `attn_layer`).
    #[config(default = "None")]
    pub attn_layer: Option<AttentionKind>,
    /// ResNeSt: split-attention radix.
    #[config(default = 2)]
    pub radix: usize,
    /// ResNeSt: downsample with a 3×3 average pool instead of a strided convolution.
    #[config(default = true)]
    pub avd: bool,
    /// ResNeSt: the average pool comes before the split-attention convolution.
    #[config(default = false)]
    pub avd_first: bool,
}

fn conv(
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    groups: usize,
    device: &Device,
) -> Conv2d {
    let p = k / 2;
    Conv2dConfig::new([cin, cout], [k, k])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
        .with_groups(groups)
        .with_bias(false)
        .init(device)
}

fn bn(c: usize, device: &Device) -> BatchNorm {
    BatchNormConfig::new(c).init(device)
}

fn avg_pool(
    x: Tensor<4>,
    k: usize,
    stride: usize,
    pad: usize,
    ceil_mode: bool,
    count_include_pad: bool,
) -> Tensor<4> {
    avg_pool2d(
        x,
        AvgPoolOptions {
            kernel_size: [k, k],
            stride: [stride, stride],
            padding: [(pad, pad), (pad, pad)],
            count_include_pad,
            ceil_mode,
        },
    )
}

/// The deep stem: timm's `conv1` `nn.Sequential` (indices 0, 1, 3, 4, 6).
#[derive(Module, Debug)]
pub struct DeepStem {
    /// `conv1.0`: 3×3 stride 2.
    pub conv_a: Conv2d,
    /// `conv1.1`.
    pub bn_a: BatchNorm,
    /// `conv1.3`.
    pub conv_b: Conv2d,
    /// `conv1.4`.
    pub bn_b: BatchNorm,
    /// `conv1.6`.
    pub conv_c: Conv2d,
}

/// The stem convolution(s).
#[derive(Module, Debug)]
pub enum Stem {
    /// 7×7 stride 2.
    Plain(Conv2d),
    /// Three 3×3.
    Deep(DeepStem),
}

impl Stem {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Stem::Plain(c) => c.forward(x),
            Stem::Deep(s) => {
                let x = s.conv_a.forward_bn(x, &s.bn_a, true);
                let x = s.conv_b.forward_bn(x, &s.bn_b, true);
                s.conv_c.forward(x)
            }
        }
    }
}

/// Projection shortcut (timm `downsample_conv` / `downsample_avg`).
#[derive(Module, Debug)]
pub struct Downsample {
    /// 1×1 convolution (strided unless `avg_pool`).
    pub conv: Conv2d,
    /// Batch norm.
    pub bn: BatchNorm,
    /// Average-pool 2×2 (ceil mode, padding excluded) before the convolution.
    pub avg_pool: bool,
    /// Spatial stride of the shortcut.
    pub stride: usize,
}

impl Downsample {
    fn new(cin: usize, cout: usize, stride: usize, avg_down: bool, device: &Device) -> Self {
        let avg_pool = avg_down && stride > 1;
        Downsample {
            conv: conv(cin, cout, 1, if avg_pool { 1 } else { stride }, 1, device),
            bn: bn(cout, device),
            avg_pool,
            stride,
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = if self.avg_pool {
            avg_pool(x, 2, self.stride, 0, true, false)
        } else {
            x
        };
        self.conv.forward_bn(x, &self.bn, false)
    }
}

fn shortcut(downsample: &Option<Downsample>, x: Tensor<4>) -> Tensor<4> {
    match downsample {
        Some(d) => d.forward(x),
        None => x,
    }
}

fn attend(se: &Option<Attention>, x: Tensor<4>) -> Tensor<4> {
    match se {
        Some(a) => a.forward(x),
        None => x,
    }
}

/// Basic block: `relu(bn2(conv2(relu(bn1(conv1(x))))) ⊙attn + shortcut(x))`.
#[derive(Module, Debug)]
pub struct BasicBlock {
    /// 3×3, strided.
    pub conv1: Conv2d,
    /// Batch norm.
    pub bn1: BatchNorm,
    /// 3×3.
    pub conv2: Conv2d,
    /// Batch norm.
    pub bn2: BatchNorm,
    /// Attention (timm names it `se` whatever its kind).
    pub se: Option<Attention>,
    /// Projection shortcut.
    pub downsample: Option<Downsample>,
}

/// Bottleneck block: 1×1 → 3×3 (strided, grouped) → 1×1, attention, residual.
#[derive(Module, Debug)]
pub struct Bottleneck {
    /// 1×1 reduction.
    pub conv1: Conv2d,
    /// Batch norm.
    pub bn1: BatchNorm,
    /// 3×3, strided, grouped.
    pub conv2: Conv2d,
    /// Batch norm.
    pub bn2: BatchNorm,
    /// 1×1 expansion.
    pub conv3: Conv2d,
    /// Batch norm.
    pub bn3: BatchNorm,
    /// Attention (timm `se`).
    pub se: Option<Attention>,
    /// Projection shortcut.
    pub downsample: Option<Downsample>,
}

/// ResNeSt bottleneck: 1×1 → split-attention 3×3 → (3×3 average pool when strided) → 1×1.
#[derive(Module, Debug)]
pub struct ResNestBottleneck {
    /// 1×1 reduction.
    pub conv1: Conv2d,
    /// Batch norm.
    pub bn1: BatchNorm,
    /// Split-attention convolution (with its own norms and activation).
    pub conv2: SplitAttn,
    /// 1×1 expansion.
    pub conv3: Conv2d,
    /// Batch norm.
    pub bn3: BatchNorm,
    /// Projection shortcut.
    pub downsample: Option<Downsample>,
    /// Stride of the average-pool downsampling (0 = none).
    pub avd_stride: usize,
    /// The pool comes before `conv2`.
    pub avd_first: bool,
}

/// Any residual block.
#[derive(Module, Debug)]
pub enum ResBlock {
    /// Basic block.
    Basic(BasicBlock),
    /// Bottleneck.
    Bottleneck(Bottleneck),
    /// ResNeSt bottleneck.
    ResNest(ResNestBottleneck),
}

impl ResBlock {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            ResBlock::Basic(b) => {
                let y = b.conv1.forward_bn(x.clone(), &b.bn1, true);
                let y = attend(&b.se, b.conv2.forward_bn(y, &b.bn2, false));
                add_relu(y, shortcut(&b.downsample, x))
            }
            ResBlock::Bottleneck(b) => {
                let y = b.conv1.forward_bn(x.clone(), &b.bn1, true);
                let y = b.conv2.forward_bn(y, &b.bn2, true);
                let y = attend(&b.se, b.conv3.forward_bn(y, &b.bn3, false));
                add_relu(y, shortcut(&b.downsample, x))
            }
            ResBlock::ResNest(b) => {
                let avd = |y: Tensor<4>| avg_pool(y, 3, b.avd_stride, 1, false, true);
                let mut y = b.conv1.forward_bn(x.clone(), &b.bn1, true);
                if b.avd_stride > 0 && b.avd_first {
                    y = avd(y);
                }
                y = b.conv2.forward(y);
                if b.avd_stride > 0 && !b.avd_first {
                    y = avd(y);
                }
                let y = b.conv3.forward_bn(y, &b.bn3, false);
                add_relu(y, shortcut(&b.downsample, x))
            }
        }
    }
}

/// A ResNet: stem, four stages (`layer1`…`layer4`), global average pool, `fc`.
#[derive(Module, Debug)]
pub struct ResNet {
    /// Stem convolution(s).
    pub conv1: Stem,
    /// Stem batch norm.
    pub bn1: BatchNorm,
    /// Stage 1 (stride 4).
    pub layer1: Vec<ResBlock>,
    /// Stage 2 (stride 8).
    pub layer2: Vec<ResBlock>,
    /// Stage 3 (stride 16).
    pub layer3: Vec<ResBlock>,
    /// Stage 4 (stride 32).
    pub layer4: Vec<ResBlock>,
    /// Classifier (absent when `num_classes` is 0).
    pub fc: Option<Linear>,
}

impl ResNetConfig {
    /// Channels of the stem output (`inplanes` in timm).
    fn stem_channels(&self) -> usize {
        match self.stem_type {
            StemType::Plain => 64,
            StemType::Deep | StemType::DeepTiered => 2 * self.stem_width,
        }
    }

    /// Channels and strides of the five feature levels (stem, layer1…layer4).
    pub fn feature_info(&self) -> Vec<FeatureInfo> {
        let e = self.block.expansion();
        let mut info = vec![FeatureInfo {
            channels: self.stem_channels(),
            reduction: 2,
            module: "act1",
        }];
        for (i, (&planes, module)) in self
            .channels
            .iter()
            .zip(["layer1", "layer2", "layer3", "layer4"])
            .enumerate()
        {
            info.push(FeatureInfo {
                channels: planes * e,
                reduction: 4 << i,
                module,
            });
        }
        info
    }

    /// Channels entering the classifier.
    pub fn num_features(&self) -> usize {
        self.channels[3] * self.block.expansion()
    }

    /// Builds the network with random weights.
    ///
    /// # Panics
    /// Unless `layers` and `channels` have four entries.
    pub fn init(&self, device: &Device) -> ResNet {
        assert!(
            self.layers.len() == 4 && self.channels.len() == 4,
            "ResNet has four stages"
        );
        let inplanes = self.stem_channels();
        let conv1 = match self.stem_type {
            StemType::Plain => Stem::Plain(
                Conv2dConfig::new([self.in_chans, inplanes], [7, 7])
                    .with_stride([2, 2])
                    .with_padding(PaddingConfig2d::Explicit(3, 3, 3, 3))
                    .with_bias(false)
                    .init(device),
            ),
            StemType::Deep | StemType::DeepTiered => {
                let first = if self.stem_type == StemType::DeepTiered {
                    3 * (self.stem_width / 4)
                } else {
                    self.stem_width
                };
                Stem::Deep(DeepStem {
                    conv_a: conv(self.in_chans, first, 3, 2, 1, device),
                    bn_a: bn(first, device),
                    conv_b: conv(first, self.stem_width, 3, 1, 1, device),
                    bn_b: bn(self.stem_width, device),
                    conv_c: conv(self.stem_width, inplanes, 3, 1, 1, device),
                })
            }
        };
        let mut cin = inplanes;
        let mut stages = Vec::with_capacity(4);
        for (i, (&planes, &depth)) in self.channels.iter().zip(&self.layers).enumerate() {
            let stride = if i == 0 { 1 } else { 2 };
            let cout = planes * self.block.expansion();
            let blocks = (0..depth)
                .map(|j| {
                    let s = if j == 0 { stride } else { 1 };
                    let down = (j == 0 && (s != 1 || cin != cout))
                        .then(|| Downsample::new(cin, cout, s, self.avg_down, device));
                    let block = self.block_init(cin, planes, s, down, device);
                    cin = cout;
                    block
                })
                .collect();
            stages.push(blocks);
        }
        let [layer1, layer2, layer3, layer4] = <[Vec<ResBlock>; 4]>::try_from(stages)
            .ok()
            .expect("four stages");
        ResNet {
            conv1,
            bn1: bn(inplanes, device),
            layer1,
            layer2,
            layer3,
            layer4,
            fc: (self.num_classes > 0)
                .then(|| LinearConfig::new(self.num_features(), self.num_classes).init(device)),
        }
    }

    fn block_init(
        &self,
        cin: usize,
        planes: usize,
        stride: usize,
        downsample: Option<Downsample>,
        device: &Device,
    ) -> ResBlock {
        let cout = planes * self.block.expansion();
        let se = self.attn_layer.map(|kind| create_attn(kind, cout, device));
        match self.block {
            BlockType::Basic => ResBlock::Basic(BasicBlock {
                conv1: conv(cin, planes, 3, stride, 1, device),
                bn1: bn(planes, device),
                conv2: conv(planes, cout, 3, 1, 1, device),
                bn2: bn(cout, device),
                se,
                downsample,
            }),
            BlockType::Bottleneck => {
                let width = planes * self.base_width / 64 * self.cardinality;
                ResBlock::Bottleneck(Bottleneck {
                    conv1: conv(cin, width, 1, 1, 1, device),
                    bn1: bn(width, device),
                    conv2: conv(width, width, 3, stride, self.cardinality, device),
                    bn2: bn(width, device),
                    conv3: conv(width, cout, 1, 1, 1, device),
                    bn3: bn(cout, device),
                    se,
                    downsample,
                })
            }
            BlockType::ResNest => {
                let width = planes * self.base_width / 64 * self.cardinality;
                let avd_stride = if self.avd && stride > 1 { stride } else { 0 };
                let conv_stride = if avd_stride > 0 { 1 } else { stride };
                ResBlock::ResNest(ResNestBottleneck {
                    conv1: conv(cin, width, 1, 1, 1, device),
                    bn1: bn(width, device),
                    conv2: SplitAttnConfig::new(width, width)
                        .with_stride(conv_stride)
                        .with_groups(self.cardinality)
                        .with_radix(self.radix)
                        .init(device),
                    conv3: conv(width, cout, 1, 1, 1, device),
                    bn3: bn(cout, device),
                    downsample,
                    avd_stride,
                    avd_first: self.avd_first,
                })
            }
        }
    }
}

fn run_stage(stage: &[ResBlock], x: Tensor<4>) -> Tensor<4> {
    stage.iter().fold(x, |x, b| b.forward(x))
}

impl ResNet {
    /// Stem output after batch norm and ReLU (stride 2; timm's `act1` feature).
    pub fn forward_stem(&self, x: Tensor<4>) -> Tensor<4> {
        match &self.conv1 {
            Stem::Plain(conv) => conv.forward_bn(x, &self.bn1, true),
            deep => relu(batch_norm(&self.bn1, deep.forward(x))),
        }
    }

    /// The five feature maps: stem (stride 2) and the four stages (strides 4…32), as timm's
    /// `features_only=True` model returns them.
    pub fn forward_intermediates(&self, x: Tensor<4>) -> Vec<Tensor<4>> {
        let stem = self.forward_stem(x);
        let l1 = run_stage(&self.layer1, max_pool_3x3_s2(stem.clone()));
        let l2 = run_stage(&self.layer2, l1.clone());
        let l3 = run_stage(&self.layer3, l2.clone());
        let l4 = run_stage(&self.layer4, l3.clone());
        vec![stem, l1, l2, l3, l4]
    }

    /// The last stage's feature map `[N, C, H/32, W/32]`.
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
        let x = max_pool_3x3_s2(self.forward_stem(x));
        [&self.layer1, &self.layer2, &self.layer3, &self.layer4]
            .into_iter()
            .fold(x, |x, stage| run_stage(stage, x))
    }

    /// Global average pool and classifier: `[N, C, h, w] → [N, classes]` (the pooled
    /// features when the model has no classifier).
    pub fn forward_head(&self, features: Tensor<4>) -> Tensor<2> {
        gaze_heads::classifier::classify(features, self.fc.as_ref())
    }

    /// Logits `[N, classes]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_head(self.forward_features(x))
    }
}

fn resnet(block: BlockType, layers: [usize; 4]) -> ResNetConfig {
    ResNetConfig::new(block, layers.to_vec())
}

/// timm's `d` variants: deep stem of width 32, average-pool shortcuts.
fn d(c: ResNetConfig) -> ResNetConfig {
    c.with_stem_type(StemType::Deep)
        .with_stem_width(32)
        .with_avg_down(true)
}

/// timm's `t` variants: tiered deep stem of width 32, average-pool shortcuts.
fn t(c: ResNetConfig) -> ResNetConfig {
    c.with_stem_type(StemType::DeepTiered)
        .with_stem_width(32)
        .with_avg_down(true)
}

fn attn(c: ResNetConfig, kind: AttentionKind) -> ResNetConfig {
    c.with_attn_layer(Some(kind))
}
const CBAM: &str = "CBAM: Convolutional Block Attention Module (Woo et al., ECCV 2018)";
const ECA: &str = "ECA-Net: Efficient Channel Attention for Deep CNNs (Wang et al., CVPR 2020)";
const FCA: &str = "FcaNet: Frequency Channel Attention Networks (Qin et al., ICCV 2021)";
const NONE: &str = "none published (gaze's own combination; timm key names)";
const PSA: &str =
    "Polarized Self-Attention: Towards High-quality Pixel-wise Regression (Liu et al., 2021)";
const RESNEST: &str = "ResNeSt: Split-Attention Networks (Zhang et al., CVPRW 2022)";
const RESNET: &str = "Deep Residual Learning for Image Recognition (He et al., CVPR 2016)";
const SE: &str = "Squeeze-and-Excitation Networks (Hu et al., CVPR 2018)";
const TRICKS: &str = "Bag of Tricks for Image Classification with CNNs (He et al., CVPR 2019)";
const TRIPLET: &str =
    "Rotate to Attend: Convolutional Triplet Attention Module (Misra et al., WACV 2021)";

static VARIANTS: &[ModelInfo] = &[
    variant!(
        "resnet18",
        "resnet",
        IMAGENET,
        RESNET,
        11_689_512,
        DataConfig::IMAGENET_BICUBIC.with_size(224, 0.95),
        TIMM_WEIGHTS,
        resnet(BlockType::Basic, [2, 2, 2, 2])
    ),
    variant!(
        "resnet26",
        "resnet",
        IMAGENET,
        RESNET,
        15_995_176,
        DataConfig::IMAGENET_BICUBIC.with_size(224, 0.875),
        TIMM_WEIGHTS,
        resnet(BlockType::Bottleneck, [2, 2, 2, 2])
    ),
    variant!(
        "resnet34",
        "resnet",
        IMAGENET,
        RESNET,
        21_797_672,
        DataConfig::IMAGENET_BICUBIC.with_size(224, 0.95),
        TIMM_WEIGHTS,
        resnet(BlockType::Basic, [3, 4, 6, 3])
    ),
    variant!(
        "resnet50",
        "resnet",
        IMAGENET,
        RESNET,
        25_557_032,
        DataConfig::IMAGENET_BICUBIC.with_size(224, 0.95),
        TIMM_WEIGHTS,
        resnet(BlockType::Bottleneck, [3, 4, 6, 3])
    ),
    variant!(
        "resnet101",
        "resnet",
        IMAGENET,
        RESNET,
        44_549_160,
        DataConfig::IMAGENET_BICUBIC.with_size(224, 0.95),
        TIMM_WEIGHTS,
        resnet(BlockType::Bottleneck, [3, 4, 23, 3])
    ),
    variant!(
        "resnet18d",
        "resnet",
        IMAGENET,
        TRICKS,
        11_708_744,
        DataConfig::IMAGENET_BICUBIC.with_size(224, 0.875),
        TIMM_WEIGHTS,
        d(resnet(BlockType::Basic, [2, 2, 2, 2]))
    ),
    variant!(
        "resnet26d",
        "resnet",
        IMAGENET,
        TRICKS,
        16_014_408,
        DataConfig::IMAGENET_BICUBIC.with_size(224, 0.875),
        TIMM_WEIGHTS,
        d(resnet(BlockType::Bottleneck, [2, 2, 2, 2]))
    ),
    variant!(
        "resnet34d",
        "resnet",
        IMAGENET,
        TRICKS,
        21_816_904,
        DataConfig::IMAGENET_BICUBIC.with_size(224, 0.875),
        TIMM_WEIGHTS,
        d(resnet(BlockType::Basic, [3, 4, 6, 3]))
    ),
    variant!(
        "resnet50d",
        "resnet",
        IMAGENET,
        TRICKS,
        25_576_264,
        DataConfig::IMAGENET_BICUBIC.with_size(224, 0.875),
        TIMM_WEIGHTS,
        d(resnet(BlockType::Bottleneck, [3, 4, 6, 3]))
    ),
    variant!(
        "resnet101d",
        "resnet",
        IMAGENET,
        TRICKS,
        44_568_392,
        DataConfig::IMAGENET_BICUBIC.with_size(256, 0.95),
        TIMM_WEIGHTS,
        d(resnet(BlockType::Bottleneck, [3, 4, 23, 3]))
    ),
    variant!(
        "resnet26t",
        "resnet",
        IMAGENET,
        TRICKS,
        16_011_872,
        DataConfig::IMAGENET_BICUBIC.with_size(256, 0.94),
        TIMM_WEIGHTS,
        t(resnet(BlockType::Bottleneck, [2, 2, 2, 2]))
    ),
    variant!(
        "resnet50t",
        "resnet",
        IMAGENET,
        TRICKS,
        25_573_728,
        DataConfig::IMAGENET_BICUBIC.with_size(224, 0.875),
        TIMM_WEIGHTS,
        t(resnet(BlockType::Bottleneck, [3, 4, 6, 3]))
    ),
    variant!(
        "seresnet18",
        "resnet",
        IMAGENET,
        SE,
        11_779_624,
        DataConfig::IMAGENET_BICUBIC.with_size(224, 0.875),
        TIMM_WEIGHTS,
        attn(resnet(BlockType::Basic, [2, 2, 2, 2]), AttentionKind::Se)
    ),
    variant!(
        "seresnet34",
        "resnet",
        IMAGENET,
        SE,
        21_960_416,
        DataConfig::IMAGENET_BICUBIC.with_size(224, 0.875),
        TIMM_WEIGHTS,
        attn(resnet(BlockType::Basic, [3, 4, 6, 3]), AttentionKind::Se)
    ),
    variant!(
        "seresnet50",
        "resnet",
        IMAGENET,
        SE,
        28_088_024,
        DataConfig::IMAGENET_BICUBIC.with_size(224, 0.95),
        TIMM_WEIGHTS,
        attn(
            resnet(BlockType::Bottleneck, [3, 4, 6, 3]),
            AttentionKind::Se
        )
    ),
    variant!(
        "seresnet101",
        "resnet",
        IMAGENET,
        SE,
        49_326_872,
        DataConfig::IMAGENET_BICUBIC.with_size(224, 0.875),
        TIMM_WEIGHTS,
        attn(
            resnet(BlockType::Bottleneck, [3, 4, 23, 3]),
            AttentionKind::Se
        )
    ),
    variant!(
        "seresnet50t",
        "resnet",
        IMAGENET,
        SE,
        28_104_720,
        DataConfig::IMAGENET_BICUBIC.with_size(224, 0.875),
        TIMM_WEIGHTS,
        attn(
            t(resnet(BlockType::Bottleneck, [3, 4, 6, 3])),
            AttentionKind::Se
        )
    ),
    variant!(
        "ecaresnet26t",
        "resnet",
        IMAGENET,
        ECA,
        16_011_916,
        DataConfig::IMAGENET_BICUBIC.with_size(256, 0.875),
        TIMM_WEIGHTS,
        attn(
            t(resnet(BlockType::Bottleneck, [2, 2, 2, 2])),
            AttentionKind::Eca
        )
    ),
    variant!(
        "ecaresnet50d",
        "resnet",
        IMAGENET,
        ECA,
        25_576_350,
        DataConfig::IMAGENET_BICUBIC.with_size(224, 0.875),
        TIMM_WEIGHTS,
        attn(
            d(resnet(BlockType::Bottleneck, [3, 4, 6, 3])),
            AttentionKind::Eca
        )
    ),
    variant!(
        "ecaresnet50t",
        "resnet",
        IMAGENET,
        ECA,
        25_573_814,
        DataConfig::IMAGENET_BICUBIC.with_size(256, 0.875),
        TIMM_WEIGHTS,
        attn(
            t(resnet(BlockType::Bottleneck, [3, 4, 6, 3])),
            AttentionKind::Eca
        )
    ),
    variant!(
        "ecaresnet101d",
        "resnet",
        IMAGENET,
        ECA,
        44_568_563,
        DataConfig::IMAGENET_BICUBIC.with_size(224, 0.875),
        TIMM_WEIGHTS,
        attn(
            d(resnet(BlockType::Bottleneck, [3, 4, 23, 3])),
            AttentionKind::Eca
        )
    ),
    variant!(
        "cbam_resnet18",
        "resnet",
        IMAGENET,
        CBAM,
        11_777_352,
        DataConfig::IMAGENET,
        NONE,
        attn(resnet(BlockType::Basic, [2, 2, 2, 2]), AttentionKind::Cbam)
    ),
    variant!(
        "cbam_resnet50",
        "resnet",
        IMAGENET,
        CBAM,
        28_073_576,
        DataConfig::IMAGENET,
        NONE,
        attn(
            resnet(BlockType::Bottleneck, [3, 4, 6, 3]),
            AttentionKind::Cbam
        )
    ),
    variant!(
        "triplet_resnet18",
        "resnet",
        IMAGENET,
        TRIPLET,
        11_691_912,
        DataConfig::IMAGENET,
        NONE,
        attn(
            resnet(BlockType::Basic, [2, 2, 2, 2]),
            AttentionKind::Triplet
        )
    ),
    variant!(
        "triplet_resnet50",
        "resnet",
        IMAGENET,
        TRIPLET,
        25_561_832,
        DataConfig::IMAGENET,
        NONE,
        attn(
            resnet(BlockType::Bottleneck, [3, 4, 6, 3]),
            AttentionKind::Triplet
        )
    ),
    variant!(
        "fca_resnet18",
        "resnet",
        IMAGENET,
        FCA,
        11_776_552,
        DataConfig::IMAGENET,
        NONE,
        attn(resnet(BlockType::Basic, [2, 2, 2, 2]), AttentionKind::Fca)
    ),
    variant!(
        "fca_resnet50",
        "resnet",
        IMAGENET,
        FCA,
        28_071_976,
        DataConfig::IMAGENET,
        NONE,
        attn(
            resnet(BlockType::Bottleneck, [3, 4, 6, 3]),
            AttentionKind::Fca
        )
    ),
    variant!(
        "psa_resnet18",
        "resnet",
        IMAGENET,
        PSA,
        12_869_112,
        DataConfig::IMAGENET,
        NONE,
        attn(resnet(BlockType::Basic, [2, 2, 2, 2]), AttentionKind::PsaS)
    ),
    variant!(
        "psa_resnet50",
        "resnet",
        IMAGENET,
        PSA,
        59_544_648,
        DataConfig::IMAGENET,
        NONE,
        attn(
            resnet(BlockType::Bottleneck, [3, 4, 6, 3]),
            AttentionKind::PsaS
        )
    ),
    variant!(
        "resnest14d",
        "resnest",
        IMAGENET,
        RESNEST,
        10_611_688,
        DataConfig::IMAGENET,
        TIMM_WEIGHTS,
        d(resnet(BlockType::ResNest, [1, 1, 1, 1]))
    ),
    variant!(
        "resnest26d",
        "resnest",
        IMAGENET,
        RESNEST,
        17_069_448,
        DataConfig::IMAGENET,
        TIMM_WEIGHTS,
        d(resnet(BlockType::ResNest, [2, 2, 2, 2]))
    ),
    variant!(
        "resnest50d",
        "resnest",
        IMAGENET,
        RESNEST,
        27_483_240,
        DataConfig::IMAGENET,
        TIMM_WEIGHTS,
        d(resnet(BlockType::ResNest, [3, 4, 6, 3]))
    ),
    variant!(
        "resnest101e",
        "resnest",
        IMAGENET,
        RESNEST,
        48_275_016,
        DataConfig::IMAGENET.with_size(256, 0.875),
        TIMM_WEIGHTS,
        d(resnet(BlockType::ResNest, [3, 4, 23, 3])).with_stem_width(64)
    ),
];

/// timm's names of the deep stem's sequential and of the shortcut's (`downsample.0/1`, or
/// `downsample.1/2` after the average pool of `avg_down`).
pub fn resnet_key_map(avg_down: bool) -> KeyMap {
    let (conv, bn) = if avg_down {
        ("downsample.1", "downsample.2")
    } else {
        ("downsample.0", "downsample.1")
    };
    KeyMap::new(&[
        ("^conv1.0", "conv1.conv_a"),
        ("^conv1.1", "conv1.bn_a"),
        ("^conv1.3", "conv1.conv_b"),
        ("^conv1.4", "conv1.bn_b"),
        ("^conv1.6", "conv1.conv_c"),
        (conv, "downsample.conv"),
        (bn, "downsample.bn"),
    ])
}

impl ResNetConfig {
    /// timm's names for this configuration: stem, shortcuts and the attention kind's.
    pub fn official_key_map(&self) -> KeyMap {
        let map = resnet_key_map(self.avg_down);
        match self.attn_layer {
            Some(kind) => map.then(kind.key_map()),
            None => map,
        }
    }
}

crate::classifier_family!(
    ResNetConfig => ResNet,
    features: Map,
    key_map: |c| c.official_key_map(),
);
