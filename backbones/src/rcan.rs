//! RCAN: "Image Super-Resolution Using Very Deep Residual Channel Attention Networks" (Zhang,
//! Li, Li, Wang, Zhong, Fu; ECCV 2018). Official code: github.com/yulunzhang/RCAN
//! (`RCAN_TestCode/code/model/rcan.py`, `common.py`).
//!
//! `sub_mean` (1×1) → `head` (3×3) → residual in residual: `n_resgroups` [`ResidualGroup`]s of
//! `n_resblocks` [`Rcab`]s each, a 3×3 `body_conv` and the long skip → [`Upsampler`] → 3×3
//! `tail_conv` → `add_mean` (1×1).
//!
//! The official network works on pixel values in 0–`rgb_range` (255). gaze's forward takes RGB
//! in [0, 1] like every SR model here: it multiplies the input by `rgb_range` and divides the
//! output by it, so `forward(x)` equals the official `RCAN(x · 255) / 255`. The features of
//! [`Rcan::forward_features`] are the official ones (the upsampler's input), in that scale.
//!
//! `sub_mean` and `add_mean` are the official `MeanShift` 1×1 convolutions. They start as the
//! fixed shift by the DIV2K mean (identity weight, bias `∓rgb_range · mean`), but the official
//! RCAN never froze them (it sets `requires_grad` on the module, not on its parameters), so the
//! published checkpoints hold trained values: they are ordinary convolutions here, loaded from
//! the checkpoint like every other weight.
//!
//! Names follow the official state dict through [`key_map`]: `head.0` → `head`,
//! `body.{g}.body.{b}.body.{0,2,3}` → `body.{g}.body.{b}.{conv1,conv2,ca}` (RCAB, see
//! [`gaze_blocks::rcan_ca::rcab_key_map`]), `body.{g}.body.{n_resblocks}` → `body.{g}.conv`,
//! `body.{n_resgroups}` → `body_conv`, `tail.0.{2i}` → `upsampler.convs.{i}`, `tail.1` →
//! `tail_conv`. HAN ([`crate::han`]) is this network plus its two attention modules.

use crate::family::Family;
#[allow(unused_imports)]
use crate::registry::{DataConfig, ModelInfo, Task, IMAGENET, TIMM_WEIGHTS};
use crate::variant;
use burn::module::Param;
use burn::prelude::*;
use gaze_blocks::conv::Conv2d;
use gaze_blocks::layers::conv_same;
use gaze_blocks::{Rcab, RcabConfig};
use gaze_heads::{Upsampler, UpsamplerConfig};
use gaze_weights::KeyMap;

/// The RGB mean of DIV2K 1–800 (of [0, 1] values) that the official `MeanShift`s start from.
pub const DIV2K_RGB_MEAN: [f64; 3] = [0.4488, 0.4371, 0.4040];

/// Configuration of [`Rcan`]; the defaults are the published model's (`--n_resgroups 10
/// --n_resblocks 20 --n_feats 64`, `reduction` 16, `rgb_range` 255).
#[derive(Config, Debug)]
pub struct RcanConfig {
    /// Upsampling factor: 2, 3, 4 or 8 (3 or a power of two).
    pub scale: usize,
    /// Residual groups (`n_resgroups`).
    #[config(default = 10)]
    pub n_resgroups: usize,
    /// RCABs per residual group (`n_resblocks`).
    #[config(default = 20)]
    pub n_resblocks: usize,
    /// Trunk width (`n_feats`).
    #[config(default = 64)]
    pub n_feats: usize,
    /// Channel-attention reduction (`reduction`).
    #[config(default = 16)]
    pub reduction: usize,
    /// The pixel range the official network works in (`rgb_range`): the [0, 1] input is
    /// multiplied by it and the output divided by it.
    #[config(default = 255.0)]
    pub rgb_range: f64,
    /// Image channels in and out (`n_colors`).
    #[config(default = 3)]
    pub n_colors: usize,
}

/// Configuration of [`ResidualGroup`].
#[derive(Config, Debug)]
pub struct ResidualGroupConfig {
    /// Channels in and out (`n_feat`).
    pub channels: usize,
    /// RCABs in the group (`n_resblocks`).
    pub n_resblocks: usize,
    /// Channel-attention reduction of every RCAB.
    #[config(default = 16)]
    pub reduction: usize,
}

/// RCAN's residual group (official `ResidualGroup`): `x + conv(RCABₙ(… RCAB₁(x)))`.
/// Official keys: `body.{b}` (the RCABs) and `body.{n_resblocks}` (the closing 3×3 conv),
/// ours `body.{b}` and `conv`.
#[derive(Module, Debug)]
pub struct ResidualGroup {
    /// The RCABs (official `body.0` … `body.{n-1}`).
    pub body: Vec<Rcab>,
    /// The 3×3 convolution closing the group (official `body.{n}`).
    pub conv: Conv2d,
}

impl ResidualGroupConfig {
    /// Builds the group with random weights.
    pub fn init(&self, device: &Device) -> ResidualGroup {
        ResidualGroup {
            body: (0..self.n_resblocks)
                .map(|_| {
                    RcabConfig::new(self.channels)
                        .with_reduction(self.reduction)
                        .init(device)
                })
                .collect(),
            conv: conv_same(self.channels, self.channels, 3, true, device),
        }
    }
}

impl ResidualGroup {
    /// `[N, C, h, w] → [N, C, h, w]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let res = self
            .body
            .iter()
            .fold(x.clone(), |y, block| block.forward(y));
        self.conv.forward(res) + x
    }
}

/// The official `MeanShift(rgb_range, mean, std=1, sign)` as a `channels × channels` 1×1
/// convolution: identity weight, bias `sign · rgb_range · mean` (sign −1: `sub_mean`, +1:
/// `add_mean`). With 3 channels the mean is [`DIV2K_RGB_MEAN`]; other channel counts (which
/// the official code does not support) get its average on every channel.
pub fn mean_shift(channels: usize, rgb_range: f64, sign: f64, device: &Device) -> Conv2d {
    let mut conv = conv_same(channels, channels, 1, true, device);
    let grey = DIV2K_RGB_MEAN.iter().sum::<f64>() / 3.0;
    let mean = |c: usize| {
        if channels == 3 {
            DIV2K_RGB_MEAN[c]
        } else {
            grey
        }
    };
    let eye: Vec<f32> = (0..channels * channels)
        .map(|i| {
            if i / channels == i % channels {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    let bias: Vec<f32> = (0..channels)
        .map(|c| (sign * rgb_range * mean(c)) as f32)
        .collect();
    conv.weight = Param::from_tensor(Tensor::from_data(
        TensorData::new(eye, [channels, channels, 1, 1]),
        device,
    ));
    conv.bias = Some(Param::from_tensor(Tensor::from_data(
        TensorData::new(bias, [channels]),
        device,
    )));
    conv
}

/// The RCAN network.
#[derive(Module, Debug)]
pub struct Rcan {
    /// Mean subtraction, a trained 1×1 convolution (official `sub_mean`).
    pub sub_mean: Conv2d,
    /// 3×3 stem (official `head.0`).
    pub head: Conv2d,
    /// The residual groups (official `body.0` … `body.{n_resgroups-1}`).
    pub body: Vec<ResidualGroup>,
    /// 3×3 convolution closing the trunk before the long skip (official `body.{n_resgroups}`).
    pub body_conv: Conv2d,
    /// Sub-pixel upsampler (official `tail.0`).
    pub upsampler: Upsampler,
    /// 3×3 convolution to image channels (official `tail.1`).
    pub tail_conv: Conv2d,
    /// Mean addition, a trained 1×1 convolution (official `add_mean`).
    pub add_mean: Conv2d,
    /// Pixel range of the official network (255).
    pub rgb_range: f64,
}

impl RcanConfig {
    /// Builds RCAN with random weights (the mean shifts at their official initial values).
    pub fn init(&self, device: &Device) -> Rcan {
        let (c, n) = (self.n_colors, self.n_feats);
        Rcan {
            sub_mean: mean_shift(c, self.rgb_range, -1.0, device),
            head: conv_same(c, n, 3, true, device),
            body: (0..self.n_resgroups)
                .map(|_| {
                    ResidualGroupConfig::new(n, self.n_resblocks)
                        .with_reduction(self.reduction)
                        .init(device)
                })
                .collect(),
            body_conv: conv_same(n, n, 3, true, device),
            upsampler: UpsamplerConfig::new(n, self.scale).init(device),
            tail_conv: conv_same(n, c, 3, true, device),
            add_mean: mean_shift(c, self.rgb_range, 1.0, device),
            rgb_range: self.rgb_range,
        }
    }
}

impl Rcan {
    /// The shallow features: `head(sub_mean(x · rgb_range))` for `x` in [0, 1] (the official
    /// forward's first two steps; the long skip's source).
    pub fn shallow_features(&self, x: Tensor<4>) -> Tensor<4> {
        self.head
            .forward(self.sub_mean.forward(x.mul_scalar(self.rgb_range)))
    }

    /// Low-resolution features `[N, n_feats, h, w]`: the shallow features plus the trunk's
    /// residual (the official `body(x) + x`, the upsampler's input), in the 0–255 scale.
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
        let shallow = self.shallow_features(x);
        let trunk = self
            .body
            .iter()
            .fold(shallow.clone(), |y, group| group.forward(y));
        self.body_conv.forward(trunk) + shallow
    }

    /// Reconstruction: `add_mean(tail_conv(upsampler(features))) / rgb_range`.
    pub fn forward_head(&self, features: Tensor<4>) -> Tensor<4> {
        self.add_mean
            .forward(self.tail_conv.forward(self.upsampler.forward(features)))
            .div_scalar(self.rgb_range)
    }

    /// `[N, 3, h, w]` in [0, 1] → `[N, 3, h·s, w·s]` (not clamped).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_head(self.forward_features(x))
    }
}

const RCAN_PAPER: &str =
    "Image Super-Resolution Using Very Deep Residual Channel Attention Networks (Zhang et al., ECCV 2018)";
/// The official README's download (models_ECCV2018RCAN.zip: RCAN_BIX2/3/4/8.pt, RCAN_BDX3.pt).
const RCAN_WEIGHTS: &str = "https://www.dropbox.com/s/qm9vc0p0w9i4s0n/models_ECCV2018RCAN.zip?dl=0";

static VARIANTS: &[ModelInfo] = &[
    variant!(
        "rcan_x2",
        "rcan",
        Task::SuperResolution { scale: 2 },
        RCAN_PAPER,
        15_444_667,
        DataConfig::UnitRange,
        RCAN_WEIGHTS,
        RcanConfig::new(2)
    ),
    variant!(
        "rcan_x3",
        "rcan",
        Task::SuperResolution { scale: 3 },
        RCAN_PAPER,
        15_629_307,
        DataConfig::UnitRange,
        RCAN_WEIGHTS,
        RcanConfig::new(3)
    ),
    variant!(
        "rcan_x4",
        "rcan",
        Task::SuperResolution { scale: 4 },
        RCAN_PAPER,
        15_592_379,
        DataConfig::UnitRange,
        RCAN_WEIGHTS,
        RcanConfig::new(4)
    ),
    variant!(
        "rcan_x8",
        "rcan",
        Task::SuperResolution { scale: 8 },
        RCAN_PAPER,
        15_740_091,
        DataConfig::UnitRange,
        RCAN_WEIGHTS,
        RcanConfig::new(8)
    ),
];

/// The rules between the official RCAN names and [`Rcan`]'s fields (before the RCAB rules):
/// `head.0`, `body.{n_resgroups}`, `body.{g}.body.{n_resblocks}`, `tail.0.*`, `tail.1`.
/// The group-closing and trunk-closing convolutions are renamed first, so that the RCAB rules
/// (`body.0` / `body.2` at the end of a key) never see them.
pub fn key_rules(config: &RcanConfig) -> Vec<(String, String)> {
    let mut rules = vec![
        ("^head.0".to_string(), "^head".to_string()),
        (
            format!("^body.{}", config.n_resgroups),
            "^body_conv".to_string(),
        ),
        (
            format!("^body.{{g:d}}.body.{}", config.n_resblocks),
            "^body.{g}.conv".to_string(),
        ),
    ];
    rules.extend(Upsampler::key_rules("tail.0", "upsampler", config.scale));
    rules.push(("^tail.1".to_string(), "^tail_conv".to_string()));
    rules
}

/// The official names (`sub_mean`, `head.0`, `body.{g}.body.{b}.body.{0,2}`,
/// `body.{g}.body.{b}.body.3.conv_du.{0,2}`, `body.{g}.body.{n}`, `body.{G}`, `tail.0.{2i}`,
/// `tail.1`, `add_mean`).
pub fn key_map(config: &RcanConfig) -> KeyMap {
    KeyMap::new(&key_rules(config)).then(gaze_blocks::rcan_ca::rcab_key_map())
}

impl Family for RcanConfig {
    type Net = Rcan;

    fn variants() -> &'static [ModelInfo] {
        VARIANTS
    }

    fn init(&self, device: &Device) -> Rcan {
        RcanConfig::init(self, device)
    }

    fn key_map(&self) -> KeyMap {
        key_map(self)
    }

    fn in_chans(&self) -> usize {
        self.n_colors
    }

    /// Image channels in and out (`n_colors`: the mean shifts and the output follow).
    fn set_in_chans(&mut self, in_chans: usize) {
        self.n_colors = in_chans;
    }
}

crate::sr_net!(Rcan);
