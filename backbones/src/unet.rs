//! U-Net and Attention U-Net for segmentation.
//!
//! * U-Net: "U-Net: Convolutional Networks for Biomedical Image Segmentation" (Ronneberger,
//!   Fischer, Brox; MICCAI 2015), as `U_Net` of github.com/LeeJunHyun/Image_Segmentation
//!   (`network.py`): double 3×3 conv + BN + ReLU blocks (`conv_block`), 2×2 max pools, nearest
//!   ×2 upsampling followed by a 3×3 conv + BN + ReLU (`up_conv`), skip concatenation, and a
//!   1×1 output convolution.
//! * Attention U-Net: "Attention U-Net: Learning Where to Look for the Pancreas" (Oktay et al.,
//!   MIDL 2018), as `AttU_Net` of the same repository: each skip is filtered by an additive
//!   attention gate driven by the upsampled decoder features before the concatenation
//!   ([`gaze_blocks::AttentionUNetGate`]). [`SkipGate::Grid`] selects the official Oktay gate
//!   instead ([`gaze_blocks::GridAttentionGate`]: a strided `theta` on the skip, gated by the
//!   coarser decoder features before upsampling, followed by its output transform).
//!
//! Widths double per level from `base_width` (64: the reference's 64…1024), `depth` levels.
//! Any input size works: the image is zero-padded evenly to a multiple of `2^(depth-1)` (what
//! the pools need) and the output cropped back, so 565×584 DRIVE photos go in as they are.
//! Parameter names follow the reference (`Conv1.conv.0`, `Up5.up.1`, `Att5.W_g.0`,
//! `Up_conv5.conv.0`, `Conv_1x1`), so its state dicts load through [`UNetConfig::key_map`].

use burn::nn::PaddingConfig2d;
use burn::prelude::*;
use burn::tensor::ops::PadMode;
use gaze_blocks::conv::Conv2d;
use gaze_blocks::layers::{
    max_pool_2x2, upsample_nearest, Activation, ConvNormAct, ConvNormActConfig,
};
use gaze_blocks::{
    AttentionUNetGate, AttentionUNetGateConfig, GridAttentionGate, GridAttentionGateConfig,
};
use gaze_weights::KeyMap;

use crate::features::FeatureInfo;
use crate::registry::{DataConfig, ModelInfo, Task};
use crate::variant;

/// How a U-Net filters its skip connections.
#[derive(Config, Debug, PartialEq, Eq, Copy)]
pub enum SkipGate {
    /// Plain concatenation (U-Net).
    None,
    /// The additive gate of LeeJunHyun's `AttU_Net` (`Attention_block`), gated by the
    /// upsampled decoder features.
    Additive,
    /// Oktay's official grid attention gate (`GridAttentionBlock2D`, concatenation mode):
    /// `theta` sub-samples the skip by 2, gated by the coarser decoder features.
    Grid,
}

/// Configuration of [`UNet`]; the defaults are LeeJunHyun's `U_Net(img_ch=3, output_ch=1)`.
#[derive(Config, Debug)]
pub struct UNetConfig {
    /// Image channels in (`img_ch`).
    #[config(default = 3)]
    pub in_chans: usize,
    /// Output channels (`output_ch`): 1 for a binary mask (sigmoid), K for K classes.
    #[config(default = 1)]
    pub num_classes: usize,
    /// Channels of the first level; each deeper level doubles them.
    #[config(default = 64)]
    pub base_width: usize,
    /// Levels, the bottleneck included (5 in the reference: 64…1024 channels, 4 pools).
    #[config(default = 5)]
    pub depth: usize,
    /// The skip filter.
    #[config(default = "SkipGate::None")]
    pub gate: SkipGate,
}

/// Two 3×3 conv + BN + ReLU (the reference's `conv_block`).
#[derive(Module, Debug)]
pub struct DoubleConv {
    /// First convolution (`conv.0`, `conv.1`).
    pub conv1: ConvNormAct,
    /// Second convolution (`conv.3`, `conv.4`).
    pub conv2: ConvNormAct,
}

impl DoubleConv {
    fn new(cin: usize, cout: usize, device: &Device) -> Self {
        DoubleConv {
            conv1: conv_bn_relu(cin, cout, device),
            conv2: conv_bn_relu(cout, cout, device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.conv2.forward(self.conv1.forward(x))
    }
}

/// The U-Net: encoder levels, decoder levels (coarsest first), optional skip gates, output
/// convolution.
#[derive(Module, Debug)]
pub struct UNet {
    /// Encoder blocks, finest first (`Conv1` … `Conv{depth}`).
    pub encoder: Vec<DoubleConv>,
    /// Upsampling convolutions, coarsest first (`Up{depth}` … `Up2`).
    pub up: Vec<ConvNormAct>,
    /// Additive skip gates, coarsest first (`Att{depth}` … `Att2`; empty unless
    /// [`SkipGate::Additive`]).
    pub att: Vec<AttentionUNetGate>,
    /// Grid skip gates, coarsest first (empty unless [`SkipGate::Grid`]).
    pub grid_att: Vec<GridAttentionGate>,
    /// Decoder blocks after each concatenation, coarsest first (`Up_conv{depth}` … `Up_conv2`).
    pub up_conv: Vec<DoubleConv>,
    /// 1×1 output convolution (`Conv_1x1`).
    pub conv_1x1: Conv2d,
}

fn conv_bn_relu(cin: usize, cout: usize, device: &Device) -> ConvNormAct {
    ConvNormActConfig::new(cin, cout, 3)
        .with_bias(true)
        .with_act(Some(Activation::Relu))
        .init(device)
}

impl UNetConfig {
    /// Channels of each level, finest first.
    pub fn widths(&self) -> Vec<usize> {
        (0..self.depth).map(|i| self.base_width << i).collect()
    }

    /// Builds the network with random weights.
    pub fn init(&self, device: &Device) -> UNet {
        assert!(self.depth >= 2, "a U-Net needs at least 2 levels");
        let widths = self.widths();
        let mut encoder = Vec::new();
        let mut cin = self.in_chans;
        for &w in &widths {
            encoder.push(DoubleConv::new(cin, w, device));
            cin = w;
        }
        let (mut up, mut att, mut grid_att, mut up_conv) = (vec![], vec![], vec![], vec![]);
        for level in (1..self.depth).rev() {
            let (coarse, fine) = (widths[level], widths[level - 1]);
            up.push(conv_bn_relu(coarse, fine, device));
            match self.gate {
                SkipGate::None => {}
                SkipGate::Additive => {
                    att.push(AttentionUNetGateConfig::new(fine, fine, fine / 2).init(device))
                }
                SkipGate::Grid => grid_att.push(
                    GridAttentionGateConfig::new(fine, coarse)
                        .with_sub_sample(2)
                        .init(device),
                ),
            }
            up_conv.push(DoubleConv::new(2 * fine, fine, device));
        }
        let conv_1x1 = gaze_blocks::conv::Conv2dConfig::new([widths[0], self.num_classes], [1, 1])
            .with_padding(PaddingConfig2d::Valid)
            .init(device);
        UNet {
            encoder,
            up,
            att,
            grid_att,
            up_conv,
            conv_1x1,
        }
    }

    /// The reference's names for this configuration.
    pub fn key_map(&self) -> KeyMap {
        let mut rules: Vec<(String, String)> = Vec::new();
        let block = |rules: &mut Vec<(String, String)>, official: String, ours: String| {
            rules.push((format!("^{official}.conv.0"), format!("^{ours}.conv1.conv")));
            rules.push((format!("^{official}.conv.1"), format!("^{ours}.conv1.bn")));
            rules.push((format!("^{official}.conv.3"), format!("^{ours}.conv2.conv")));
            rules.push((format!("^{official}.conv.4"), format!("^{ours}.conv2.bn")));
        };
        for level in 1..=self.depth {
            block(
                &mut rules,
                format!("Conv{level}"),
                format!("encoder.{}", level - 1),
            );
        }
        for level in (2..=self.depth).rev() {
            let k = self.depth - level;
            rules.push((format!("^Up{level}.up.1"), format!("^up.{k}.conv")));
            rules.push((format!("^Up{level}.up.2"), format!("^up.{k}.bn")));
            block(
                &mut rules,
                format!("Up_conv{level}"),
                format!("up_conv.{k}"),
            );
            let gates = match self.gate {
                SkipGate::Grid => "grid_att",
                _ => "att",
            };
            rules.push((format!("^Att{level}"), format!("^{gates}.{k}")));
        }
        rules.push(("^Conv_1x1".into(), "^conv_1x1".into()));
        KeyMap::new(&rules).then(gaze_blocks::attention_gate::key_map())
    }

    /// The encoder levels' channels and strides (`Conv1` … `Conv{depth}`).
    pub fn feature_info(&self) -> Vec<FeatureInfo> {
        const MODULES: [&str; 8] = [
            "Conv1", "Conv2", "Conv3", "Conv4", "Conv5", "Conv6", "Conv7", "Conv8",
        ];
        self.widths()
            .into_iter()
            .enumerate()
            .map(|(i, channels)| FeatureInfo {
                channels,
                reduction: 1 << i,
                module: MODULES.get(i).copied().unwrap_or("encoder"),
            })
            .collect()
    }
}

/// Zero padding `(top, bottom, left, right)` that brings `[h, w]` to multiples of `multiple`,
/// split evenly (the extra pixel of an odd amount at the bottom / right).
pub fn even_padding(h: usize, w: usize, multiple: usize) -> (usize, usize, usize, usize) {
    let ph = h.next_multiple_of(multiple) - h;
    let pw = w.next_multiple_of(multiple) - w;
    (ph / 2, ph - ph / 2, pw / 2, pw - pw / 2)
}

impl UNet {
    fn multiple(&self) -> usize {
        1 << (self.encoder.len() - 1)
    }

    /// The encoder's maps, finest first, on the padded input.
    fn encode(&self, x: Tensor<4>) -> Vec<Tensor<4>> {
        let mut maps: Vec<Tensor<4>> = Vec::with_capacity(self.encoder.len());
        for (i, block) in self.encoder.iter().enumerate() {
            let input = match maps.last() {
                Some(prev) if i > 0 => max_pool_2x2(prev.clone()),
                _ => x.clone(),
            };
            maps.push(block.forward(input));
        }
        maps
    }

    /// The last decoder map `[N, base_width, H, W]` at the input's size.
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, h, w] = x.dims();
        let (top, bottom, left, right) = even_padding(h, w, self.multiple());
        let padded = if top + bottom + left + right > 0 {
            x.pad((left, right, top, bottom), PadMode::Constant(0.0))
        } else {
            x
        };
        let mut skips = self.encode(padded);
        let mut d = skips.pop().expect("at least two levels");
        for (k, skip) in skips.into_iter().rev().enumerate() {
            let coarse = d;
            d = self.up[k].forward(upsample_nearest(coarse.clone(), 2));
            let skip = if let Some(gate) = self.att.get(k) {
                gate.forward(skip, d.clone())
            } else if let Some(gate) = self.grid_att.get(k) {
                gate.forward(skip, coarse)
            } else {
                skip
            };
            d = self.up_conv[k].forward(Tensor::cat(vec![skip, d], 1));
        }
        if top + bottom + left + right > 0 {
            let [n, c, _, _] = d.dims();
            d.slice([0..n, 0..c, top..top + h, left..left + w])
        } else {
            d
        }
    }

    /// Per-pixel logits `[N, num_classes, H, W]` from [`UNet::forward_features`].
    pub fn forward_head(&self, features: Tensor<4>) -> Tensor<4> {
        self.conv_1x1.forward(features)
    }

    /// Per-pixel logits `[N, num_classes, H, W]` for any `[N, in_chans, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_head(self.forward_features(x))
    }

    /// The encoder's maps at strides 1, 2, 4, … (of the zero-padded input; see
    /// [`even_padding`]).
    pub fn forward_intermediates(&self, x: Tensor<4>) -> Vec<Tensor<4>> {
        let [_, _, h, w] = x.dims();
        let (top, bottom, left, right) = even_padding(h, w, self.multiple());
        self.encode(x.pad((left, right, top, bottom), PadMode::Constant(0.0)))
    }
}

const UNET_PAPER: &str =
    "U-Net: Convolutional Networks for Biomedical Image Segmentation (Ronneberger et al., MICCAI 2015)";
const ATT_UNET_PAPER: &str =
    "Attention U-Net: Learning Where to Look for the Pancreas (Oktay et al., MIDL 2018)";
const NO_WEIGHTS: &str =
    "no official weights (LeeJunHyun/Image_Segmentation publishes code only): train with `gaze train --task segment`";
/// LeeJunHyun's transform: `ToTensor()` then `Normalize((0.5,)*3, (0.5,)*3)`.
const HALF: DataConfig = DataConfig::Dense {
    mean: [0.5; 3],
    std: [0.5; 3],
};
const BINARY: Task = Task::Segmentation { num_classes: 1 };

static VARIANTS: &[ModelInfo] = &[
    variant!(
        "unet",
        "unet",
        BINARY,
        UNET_PAPER,
        34_527_041,
        HALF,
        NO_WEIGHTS,
        UNetConfig::new()
    ),
    variant!(
        "unet_small",
        "unet",
        BINARY,
        UNET_PAPER,
        2_162_129,
        HALF,
        NO_WEIGHTS,
        UNetConfig::new().with_base_width(16)
    ),
    variant!(
        "attention_unet",
        "unet",
        BINARY,
        ATT_UNET_PAPER,
        34_878_573,
        HALF,
        NO_WEIGHTS,
        UNetConfig::new().with_gate(SkipGate::Additive)
    ),
    variant!(
        "attention_unet_small",
        "unet",
        BINARY,
        ATT_UNET_PAPER,
        2_184_741,
        HALF,
        NO_WEIGHTS,
        UNetConfig::new()
            .with_base_width(16)
            .with_gate(SkipGate::Additive)
    ),
    variant!(
        "attention_unet_grid",
        "unet",
        BINARY,
        ATT_UNET_PAPER,
        35_923_525,
        HALF,
        NO_WEIGHTS,
        UNetConfig::new().with_gate(SkipGate::Grid)
    ),
];

crate::segmentation_family!(UNetConfig => UNet);
