//! The Residual Attention Network (Wang et al., "Residual Attention Network for Image
//! Classification", CVPR 2017): Attention-56 and Attention-92.
//!
//! The official code is Caffe; architecture, semantics and parameter names follow the widely
//! used PyTorch port github.com/tengshaofeng/ResidualAttentionNetwork-pytorch
//! (`Residual-Attention-Network/model/residual_attention_network.py`), so its checkpoints load
//! through [`gaze_weights::keymaps::residual_attention_net`]:
//!
//! * ImageNet layout (`ResidualAttentionModel_56`, `ResidualAttentionModel_92`, 224×224 input):
//!   `conv1` = 7×7/2 convolution + BN + ReLU, `mpool1` = 3×3/2 max pool, then four stages.
//!   Stage `s` (1–3) is `residual_block{s}` (stride 2 for `s > 1`) followed by the
//!   `attention_module{s}`, `attention_module{s}_2`, … ([`ResidualAttention`] of 3, 2, 1
//!   pooling levels); Attention-56 has one module per stage, Attention-92 has 1, 2, 3.
//!   Stage 4 is `residual_block4` (stride 2), `residual_block5`, `residual_block6`. The head
//!   `mpool2` is BN + ReLU + 7×7 average pool, then `fc`.
//! * CIFAR layout (`ResidualAttentionModel_92_32input_update`, 32×32 input; the port has no
//!   CIFAR Attention-56): `conv1` = 3×3/1 convolution + BN + ReLU, no max pool, the
//!   `AttentionModule_stage{1,2,3}_cifar` modules (2, 1 and 0 pooling levels; the last one
//!   computes its mask from `middle_2r_blocks(x)` alone), `residual_block4` not strided, and an
//!   8×8 average pool.
//!
//! Units are pre-activation bottlenecks ([`PreActBottleneck`], the port's `ResidualBlock`). The
//! port builds 64 → 256/512/1024/2048 channels (ImageNet) and 32 → 128/256/512/1024 (CIFAR),
//! and hard-codes 10 classes even for its ImageNet models; here widths and classes are
//! configurable (the registered ImageNet models have 1000 classes).
//!
//! Input sizes: the port fixes the attention modules' upsampling targets and the final pool's
//! kernel for its input size. Here upsampling goes to the size of the map it is added to and
//! the final pool is global, which is the same computation at 224×224 (32×32) and works for any
//! input size.
//!
//! Feature maps ([`ResidualAttentionNet::forward_intermediates`]): the output of each stage,
//! the last one after `mpool2`'s BN + ReLU (the pre-activation network's final activation, as
//! timm's pre-activation ResNetV2 normalises its last feature map). Strides are 4/8/16/32 for
//! the ImageNet layout and 1/2/4/4 for the CIFAR layout (no stem downsampling, and the fourth
//! stage keeps the third's resolution).

#[allow(unused_imports)]
use crate::registry::{DataConfig, LabelSet, ModelInfo, Task, IMAGENET, TIMM_WEIGHTS};
use crate::variant;
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;
use burn::tensor::ops::MaxPoolOptions;
use gaze_blocks::conv::{Conv2d, Conv2dConfig};
use gaze_blocks::cpu_kernels::max_pool2d;
use gaze_blocks::linear::{Linear, LinearConfig};
use gaze_blocks::preact_bottleneck::{PreActBottleneck, PreActBottleneckConfig};
use gaze_blocks::residual_attention::{ResidualAttention, ResidualAttentionConfig};
use gaze_weights::KeyMap;

use crate::features::FeatureInfo;

/// Stem and layout of a Residual Attention Network.
#[derive(Config, Debug, PartialEq, Eq, Copy)]
pub enum RanLayout {
    /// 224×224 input: 7×7/2 convolution and 3×3/2 max pool, attention modules of 3/2/1
    /// pooling levels, strided `residual_block4` (feature strides 4/8/16/32).
    ImageNet,
    /// 32×32 input: 3×3/1 convolution without pooling, the CIFAR attention modules of 2/1/0
    /// pooling levels, `residual_block4` not strided (feature strides 1/2/4/4).
    Cifar,
}

impl RanLayout {
    /// Pooling levels of the attention modules of stages 1, 2, 3.
    pub fn mask_depths(self) -> [usize; 3] {
        match self {
            RanLayout::ImageNet => [3, 2, 1],
            RanLayout::Cifar => [2, 1, 0],
        }
    }

    /// Strides of the four stage outputs.
    pub fn reductions(self) -> [usize; 4] {
        match self {
            RanLayout::ImageNet => [4, 8, 16, 32],
            RanLayout::Cifar => [1, 2, 4, 4],
        }
    }
}

/// A Residual Attention Network variant.
#[derive(Config, Debug)]
pub struct ResidualAttentionNetConfig {
    /// 56 (one attention module per stage) or 92 (1, 2 and 3).
    pub depth: usize,
    /// Stem and layout.
    #[config(default = "RanLayout::ImageNet")]
    pub layout: RanLayout,
    /// Output channels of the stem convolution (the port: 64, CIFAR 32).
    #[config(default = 64)]
    pub stem_channels: usize,
    /// Output channels of the four stages (the port: 256, 512, 1024, 2048; CIFAR half that).
    #[config(default = "vec![256, 512, 1024, 2048]")]
    pub channels: Vec<usize>,
    /// Classifier outputs; 0 for a backbone without classifier.
    #[config(default = 1000)]
    pub num_classes: usize,
    /// Image channels.
    #[config(default = 3)]
    pub in_chans: usize,
}

impl ResidualAttentionNetConfig {
    /// The port's ImageNet model (`ResidualAttentionModel_56` / `_92`) with 1000 classes.
    pub fn imagenet(depth: usize) -> Self {
        Self::new(depth)
    }

    /// The port's CIFAR model (`ResidualAttentionModel_92_32input_update` for depth 92), 10
    /// classes.
    pub fn cifar(depth: usize) -> Self {
        Self::new(depth)
            .with_layout(RanLayout::Cifar)
            .with_num_classes(10)
            .with_base_width(32)
    }

    /// Sets the stem to `base` channels and the stages to `4, 8, 16, 32 × base` (the port's
    /// widths are base 64 for ImageNet, 32 for CIFAR).
    pub fn with_base_width(self, base: usize) -> Self {
        self.with_stem_channels(base)
            .with_channels(vec![4 * base, 8 * base, 16 * base, 32 * base])
    }

    /// Attention modules in stages 1, 2, 3.
    ///
    /// # Panics
    /// Unless `depth` is 56 or 92.
    pub fn modules_per_stage(&self) -> [usize; 3] {
        match self.depth {
            56 => [1, 1, 1],
            92 => [1, 2, 3],
            d => panic!("Residual Attention Network depth must be 56 or 92, not {d}"),
        }
    }

    /// Channels, stride and port module name of the four stage outputs.
    pub fn feature_info(&self) -> Vec<FeatureInfo> {
        let [_, n2, n3] = self.modules_per_stage();
        let modules = [
            "attention_module1",
            if n2 == 1 {
                "attention_module2"
            } else {
                "attention_module2_2"
            },
            if n3 == 1 {
                "attention_module3"
            } else {
                "attention_module3_3"
            },
            "mpool2.1",
        ];
        self.channels
            .iter()
            .zip(self.layout.reductions())
            .zip(modules)
            .map(|((&channels, reduction), module)| FeatureInfo {
                channels,
                reduction,
                module,
            })
            .collect()
    }

    /// Channels entering the classifier.
    pub fn num_features(&self) -> usize {
        self.channels[3]
    }

    /// Builds the network with random weights.
    ///
    /// # Panics
    /// Unless `depth` is 56 or 92 and `channels` has four entries.
    pub fn init(&self, device: &Device) -> ResidualAttentionNet {
        assert_eq!(
            self.channels.len(),
            4,
            "Residual Attention Network has four stages"
        );
        let counts = self.modules_per_stage();
        let depths = self.layout.mask_depths();
        let [c1, c2, c3, c4] = [
            self.channels[0],
            self.channels[1],
            self.channels[2],
            self.channels[3],
        ];
        let unit = |cin: usize, cout: usize, stride: usize| {
            PreActBottleneckConfig::new(cin, cout)
                .with_stride(stride)
                .init(device)
        };
        let modules = |stage: usize, c: usize| {
            (0..counts[stage])
                .map(|_| ResidualAttentionConfig::new(c, depths[stage]).init(device))
                .collect::<Vec<_>>()
        };
        let (k, stride, pad) = match self.layout {
            RanLayout::ImageNet => (7, 2, 3),
            RanLayout::Cifar => (3, 1, 1),
        };
        ResidualAttentionNet {
            conv1: RanStem {
                conv: Conv2dConfig::new([self.in_chans, self.stem_channels], [k, k])
                    .with_stride([stride, stride])
                    .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
                    .with_bias(false)
                    .init(device),
                bn: BatchNormConfig::new(self.stem_channels).init(device),
            },
            max_pool: self.layout == RanLayout::ImageNet,
            residual_block1: unit(self.stem_channels, c1, 1),
            attention1: modules(0, c1),
            residual_block2: unit(c1, c2, 2),
            attention2: modules(1, c2),
            residual_block3: unit(c2, c3, 2),
            attention3: modules(2, c3),
            residual_block4: unit(
                c3,
                c4,
                if self.layout == RanLayout::Cifar {
                    1
                } else {
                    2
                },
            ),
            residual_block5: unit(c4, c4, 1),
            residual_block6: unit(c4, c4, 1),
            norm: BatchNormConfig::new(c4).init(device),
            fc: (self.num_classes > 0)
                .then(|| LinearConfig::new(c4, self.num_classes).init(device)),
        }
    }
}

/// The stem: the port's `conv1` `nn.Sequential` (`conv1.0` convolution, `conv1.1` BN, ReLU).
#[derive(Module, Debug)]
pub struct RanStem {
    /// 7×7/2 (ImageNet) or 3×3/1 (CIFAR) convolution, bias-free.
    pub conv: Conv2d,
    /// BatchNorm.
    pub bn: BatchNorm,
}

/// A Residual Attention Network (Attention-56 / Attention-92).
#[derive(Module, Debug)]
pub struct ResidualAttentionNet {
    /// Stem convolution and BN (`conv1.0`, `conv1.1`).
    pub conv1: RanStem,
    /// Whether the stem ends with the 3×3/2 max pool (`mpool1`, ImageNet layout).
    pub max_pool: bool,
    /// First unit of stage 1 (stem channels → `channels[0]`).
    pub residual_block1: PreActBottleneck,
    /// Stage 1 attention modules (`attention_module1`).
    pub attention1: Vec<ResidualAttention>,
    /// First unit of stage 2, stride 2.
    pub residual_block2: PreActBottleneck,
    /// Stage 2 attention modules (`attention_module2`, `attention_module2_2`).
    pub attention2: Vec<ResidualAttention>,
    /// First unit of stage 3, stride 2.
    pub residual_block3: PreActBottleneck,
    /// Stage 3 attention modules (`attention_module3`, `_2`, `_3`).
    pub attention3: Vec<ResidualAttention>,
    /// First unit of stage 4 (stride 2 in the ImageNet layout).
    pub residual_block4: PreActBottleneck,
    /// Second unit of stage 4.
    pub residual_block5: PreActBottleneck,
    /// Third unit of stage 4.
    pub residual_block6: PreActBottleneck,
    /// The final pre-activation BN (`mpool2.0`), followed by ReLU.
    pub norm: BatchNorm,
    /// Classifier (absent when `num_classes` is 0).
    pub fc: Option<Linear>,
}

fn run(modules: &[ResidualAttention], x: Tensor<4>) -> Tensor<4> {
    modules.iter().fold(x, |x, m| m.forward(x))
}

impl ResidualAttentionNet {
    /// Stem: convolution, BN, ReLU and (ImageNet layout) the 3×3/2 max pool.
    pub fn forward_stem(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.conv1.conv.forward_bn(x, &self.conv1.bn, true);
        if self.max_pool {
            max_pool2d(
                x,
                MaxPoolOptions::new([3, 3])
                    .with_stride([2, 2])
                    .with_padding([1, 1]),
            )
        } else {
            x
        }
    }

    fn stage1(&self, x: Tensor<4>) -> Tensor<4> {
        run(&self.attention1, self.residual_block1.forward(x))
    }

    fn stage2(&self, x: Tensor<4>) -> Tensor<4> {
        run(&self.attention2, self.residual_block2.forward(x))
    }

    fn stage3(&self, x: Tensor<4>) -> Tensor<4> {
        run(&self.attention3, self.residual_block3.forward(x))
    }

    /// Stage 4 and the final BN + ReLU.
    fn stage4(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.residual_block4.forward(x);
        let x = self
            .residual_block6
            .forward(self.residual_block5.forward(x));
        relu(self.norm.forward(x))
    }

    /// The four stage outputs (finest first; see the module documentation for the strides),
    /// the last one after the final BN + ReLU.
    pub fn forward_intermediates(&self, x: Tensor<4>) -> Vec<Tensor<4>> {
        let s1 = self.stage1(self.forward_stem(x));
        let s2 = self.stage2(s1.clone());
        let s3 = self.stage3(s2.clone());
        let s4 = self.stage4(s3.clone());
        vec![s1, s2, s3, s4]
    }

    /// The last stage's map after the final BN + ReLU, `[N, C, H/32, W/32]` (ImageNet layout)
    /// or `[N, C, H/4, W/4]` (CIFAR layout).
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.stage3(self.stage2(self.stage1(self.forward_stem(x))));
        self.stage4(x)
    }

    /// Global average pool and classifier: `[N, C, h, w] → [N, classes]` (the pooled features
    /// when the model has no classifier).
    pub fn forward_head(&self, features: Tensor<4>) -> Tensor<2> {
        gaze_heads::classifier::classify(features, self.fc.as_ref())
    }

    /// Logits `[N, classes]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_head(self.forward_features(x))
    }
}
const RAN: &str = "Residual Attention Network for Image Classification (Wang et al., CVPR 2017)";
const RAN_CIFAR: &str =
    "https://github.com/tengshaofeng/ResidualAttentionNetwork-pytorch/blob/master/\
     Residual-Attention-Network/model_92_sgd.pkl (state_dict, CIFAR-10 top-1 95.4%)";
const RAN_NONE: &str = "none published (the PyTorch port whose names gaze keeps releases only a CIFAR-10 Attention-92)";

/// CIFAR-10 classification.
const CIFAR10: Task = Task::Classification { num_classes: 10 };

static VARIANTS: &[ModelInfo] = &[
    variant!(
        "attention56",
        "residual_attention",
        IMAGENET,
        RAN,
        49_636_520,
        DataConfig::IMAGENET,
        RAN_NONE,
        ResidualAttentionNetConfig::imagenet(56)
    ),
    variant!(
        "attention92",
        "residual_attention",
        IMAGENET,
        RAN,
        85_234_344,
        DataConfig::IMAGENET,
        RAN_NONE,
        ResidualAttentionNetConfig::imagenet(92)
    ),
    variant!(
        "attention92_cifar",
        "residual_attention",
        CIFAR10,
        RAN,
        19_920_362,
        DataConfig::IMAGENET
            .with_size(32, 1.0)
            .with_labels(LabelSet::Cifar10),
        RAN_CIFAR,
        ResidualAttentionNetConfig::cifar(92)
    ),
];

/// The port's names for a network of this layout: stem, stages, and each attention module's
/// soft-mask branch (`softmax{i}_blocks` in the ImageNet modules, `down_residual_blocks{i}` …
/// in the CIFAR ones).
pub fn key_map(layout: RanLayout) -> KeyMap {
    let mut rules: Vec<(String, String)> = vec![
        ("^conv1.0".into(), "conv1.conv".into()),
        ("^conv1.1".into(), "conv1.bn".into()),
        ("^mpool2.0".into(), "norm".into()),
        ("^attention_module{s:d}".into(), "^attention{s:d}.0".into()),
    ];
    for k in 2..10 {
        rules.push((
            format!("^attention_module{{s:d}}_{k}"),
            format!("^attention{{s:d}}.{}", k - 1),
        ));
    }
    for stage in 1..=3 {
        let prefix = format!("attention{stage}.{{j:d}}.");
        rules.extend(match layout {
            RanLayout::ImageNet => {
                gaze_blocks::residual_attention::imagenet_rules(&prefix, 4 - stage)
            }
            RanLayout::Cifar => gaze_blocks::residual_attention::cifar_rules(&prefix, 3 - stage),
        });
    }
    KeyMap::new(rules.as_slice())
}

crate::classifier_family!(
    ResidualAttentionNetConfig => ResidualAttentionNet,
    features: Map,
    key_map: |c| key_map(c.layout),
);
