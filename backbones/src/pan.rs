//! PAN: "Efficient Image Super-Resolution Using Pixel Attention" (Zhao, Kong, He, Qiao, Dong;
//! ECCV 2020 AIM workshop). Official code: github.com/zhaohengyuan1/PAN (`PAN_arch.py`).
//!
//! `conv_first` → 16 [`Scpa`] blocks → `trunk_conv` (+ long skip) → [`SrHead`] (U-PA stages,
//! `conv_last`, bilinear global skip). Field names mirror the official parameter names, so
//! the official checkpoints load through [`key_map`].

use crate::family::Family;
#[allow(unused_imports)]
use crate::registry::{DataConfig, ModelInfo, Task, IMAGENET, TIMM_WEIGHTS};
use crate::variant;
use burn::prelude::*;
use gaze_blocks::conv::Conv2d;
use gaze_blocks::layers::conv_same;
use gaze_blocks::{Scpa, ScpaConfig};
use gaze_heads::{SrHead, SrHeadConfig};
use gaze_weights::KeyMap;

/// Configuration of [`Pan`]; the defaults are the published model's.
#[derive(Config, Debug)]
pub struct PanConfig {
    /// Upsampling factor: 2, 3 or 4.
    pub scale: usize,
    /// Image channels in.
    #[config(default = 3)]
    pub in_channels: usize,
    /// Image channels out.
    #[config(default = 3)]
    pub out_channels: usize,
    /// Trunk width (`nf`).
    #[config(default = 40)]
    pub nf: usize,
    /// Width of the upsampling stages (`unf`).
    #[config(default = 24)]
    pub unf: usize,
    /// Number of SC-PA blocks (`nb`).
    #[config(default = 16)]
    pub num_blocks: usize,
}

/// The PAN network.
#[derive(Module, Debug)]
pub struct Pan {
    /// 3×3 stem.
    pub conv_first: Conv2d,
    /// The SC-PA trunk (official `SCPA_trunk`).
    pub scpa_trunk: Vec<Scpa>,
    /// 3×3 convolution closing the trunk before the long skip.
    pub trunk_conv: Conv2d,
    /// Reconstruction head (official `upconv*`, `att*`, `HRconv*`, `conv_last`).
    pub head: SrHead,
}

impl PanConfig {
    /// Builds PAN with random weights.
    pub fn init(&self, device: &Device) -> Pan {
        Pan {
            conv_first: conv_same(self.in_channels, self.nf, 3, true, device),
            scpa_trunk: (0..self.num_blocks)
                .map(|_| ScpaConfig::new(self.nf).init(device))
                .collect(),
            trunk_conv: conv_same(self.nf, self.nf, 3, true, device),
            head: SrHeadConfig::new(self.nf, self.unf, self.out_channels, self.scale).init(device),
        }
    }
}

impl Pan {
    /// Low-resolution features `[N, nf, h, w]`: stem plus the trunk's residual.
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
        let fea = self.conv_first.forward(x);
        let trunk = self
            .scpa_trunk
            .iter()
            .fold(fea.clone(), |y, block| block.forward(y));
        fea + self.trunk_conv.forward(trunk)
    }

    /// Reconstruction from the features, with the bilinear skip from the input `lr`.
    pub fn forward_head(&self, features: Tensor<4>, lr: Tensor<4>) -> Tensor<4> {
        self.head.forward(features, lr)
    }

    /// `[N, 3, h, w]` in [0, 1] → `[N, 3, h·s, w·s]` (not clamped).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let features = self.forward_features(x.clone());
        self.forward_head(features, x)
    }
}
const PAN_PAPER: &str =
    "Efficient Image Super-Resolution Using Pixel Attention (Zhao et al., ECCVW 2020)";
const PAN_WEIGHTS: &str =
    "https://github.com/zhaohengyuan1/PAN/tree/master/experiments/pretrained_models";

static VARIANTS: &[ModelInfo] = &[
    variant!(
        "pan_x2",
        "pan",
        Task::SuperResolution { scale: 2 },
        PAN_PAPER,
        261_403,
        DataConfig::UnitRange,
        PAN_WEIGHTS,
        PanConfig::new(2)
    ),
    variant!(
        "pan_x3",
        "pan",
        Task::SuperResolution { scale: 3 },
        PAN_PAPER,
        261_403,
        DataConfig::UnitRange,
        PAN_WEIGHTS,
        PanConfig::new(3)
    ),
    variant!(
        "pan_x4",
        "pan",
        Task::SuperResolution { scale: 4 },
        PAN_PAPER,
        272_419,
        DataConfig::UnitRange,
        PAN_WEIGHTS,
        PanConfig::new(4)
    ),
];

/// The official names (`SCPA_trunk`, `PAConv`, `k1.0`, `upconv1`, `att1`, `HRconv1`…).
pub fn key_map() -> KeyMap {
    KeyMap::new(&[
        ("^SCPA_trunk", "scpa_trunk"),
        ("PAConv", "pa_conv"),
        ("k1.0", "k1"),
        ("^upconv1", "head.stages.0.upconv"),
        ("^att1", "head.stages.0.att"),
        ("^HRconv1", "head.stages.0.hr_conv"),
        ("^upconv2", "head.stages.1.upconv"),
        ("^att2", "head.stages.1.att"),
        ("^HRconv2", "head.stages.1.hr_conv"),
        ("^conv_last", "head.conv_last"),
    ])
}

impl Family for PanConfig {
    type Net = Pan;

    fn variants() -> &'static [ModelInfo] {
        VARIANTS
    }

    fn init(&self, device: &Device) -> Pan {
        PanConfig::init(self, device)
    }

    fn key_map(&self) -> KeyMap {
        key_map()
    }

    /// Every layer is a local convolution (PAN's pixel attention has no pooling). In input
    /// pixels: `conv_first` 1, each SC-PA block 2 (the PA branch's two 3×3), `trunk_conv` 1,
    /// each upsampling stage at most 2 (nearest ×f, then two 3×3 at the finer scale),
    /// `conv_last` 1 and the bilinear skip 1: an upper bound (38 at ×2/×3, 40 at ×4), checked
    /// with the official weights by `tests/suite/pan_real_weights.rs`.
    fn receptive_radius(&self) -> Option<usize> {
        let stages = gaze_heads::upsampling_factors(self.scale).map_or(0, |f| f.len());
        Some(1 + 2 * self.num_blocks + 1 + 2 * stages + 1 + 1)
    }

    fn in_chans(&self) -> usize {
        self.in_channels
    }

    /// Image channels in and out (the global skip adds the upsampled input to the output).
    fn set_in_chans(&mut self, in_chans: usize) {
        self.in_channels = in_chans;
        self.out_channels = in_chans;
    }
}

crate::sr_net!(Pan, with_input);
