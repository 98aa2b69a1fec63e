//! A2N: "Attention in Attention Network for Image Super-Resolution" (Haoyu Chen, Jinjin Gu,
//! Zhi Zhang; arXiv 2104.09497, 2021). Official code: github.com/haoyuc/A2N
//! (`code/model/aan.py`, class `AAN`).
//!
//! `conv_first` → 16 attention-in-attention blocks ([`Aab`]) → `trunk_conv` (+ long skip) →
//! [`SrHead`]: the same reconstruction as PAN (nearest-neighbour U-PA stages, ×4 as two ×2
//! stages, LeakyReLU(0.2), `conv_last`, bilinear global skip from the input), with `nf` 40 and
//! `unf` 24. Field names mirror the official parameter names, so the official checkpoints load
//! through [`key_map`].
//!
//! The official model works on pixel values in 0–255 with no mean shift (the EDSR framework's
//! `rgb_range` 255). gaze's forward takes RGB in [0, 1] like every SR model here: it multiplies
//! the input by `rgb_range` and divides the output by it, so that `forward(x)` equals the
//! official `AAN(x · 255) / 255` (the bilinear skip included, which is linear in the input).
//! The features of [`A2n::forward_features`] are the official ones, in the 0–255 scale.

use crate::family::Family;
#[allow(unused_imports)]
use crate::registry::{DataConfig, ModelInfo, Task, IMAGENET, TIMM_WEIGHTS};
use crate::variant;
use burn::prelude::*;
use gaze_blocks::aab::{Aab, AabConfig};
use gaze_blocks::conv::Conv2d;
use gaze_blocks::layers::conv_same;
use gaze_heads::{SrHead, SrHeadConfig};
use gaze_weights::KeyMap;

/// Configuration of [`A2n`]; the defaults are the published model's (the constants of the
/// official `AAN.__init__` and `AAB`'s defaults).
#[derive(Config, Debug)]
pub struct A2nConfig {
    /// Upsampling factor: 2, 3 or 4 (the official code's scales).
    pub scale: usize,
    /// Image channels in (official `in_nc`).
    #[config(default = 3)]
    pub in_channels: usize,
    /// Image channels out (official `out_nc`).
    #[config(default = 3)]
    pub out_channels: usize,
    /// Trunk width (`nf`).
    #[config(default = 40)]
    pub nf: usize,
    /// Width of the upsampling stages (`unf`).
    #[config(default = 24)]
    pub unf: usize,
    /// Number of attention-in-attention blocks (`nb`).
    #[config(default = 16)]
    pub num_blocks: usize,
    /// The ADM's reduction (`AAB`'s `reduction`).
    #[config(default = 4)]
    pub reduction: usize,
    /// Softmax temperature of the ADM (`AAB`'s `t`).
    #[config(default = 30.0)]
    pub temperature: f64,
    /// Kernel of each block's non-attention branch: 3 (A2N) or 1 (A2N-M).
    #[config(default = 3)]
    pub non_attention_kernel: usize,
    /// The pixel range the official network works in (`rgb_range`): the [0, 1] input is
    /// multiplied by it and the output divided by it.
    #[config(default = 255.0)]
    pub rgb_range: f64,
}

/// The A2N network.
#[derive(Module, Debug)]
pub struct A2n {
    /// 3×3 stem (with bias).
    pub conv_first: Conv2d,
    /// The AAB trunk (official `AAB_trunk`).
    pub aab_trunk: Vec<Aab>,
    /// 3×3 convolution closing the trunk before the long skip (with bias).
    pub trunk_conv: Conv2d,
    /// Reconstruction head (official `upconv*`, `att*`, `HRconv*`, `conv_last`).
    pub head: SrHead,
    /// Pixel range of the official network (255).
    pub rgb_range: f64,
}

impl A2nConfig {
    /// Builds A2N with random weights.
    pub fn init(&self, device: &Device) -> A2n {
        let block = AabConfig::new(self.nf)
            .with_reduction(self.reduction)
            .with_temperature(self.temperature)
            .with_non_attention_kernel(self.non_attention_kernel);
        A2n {
            conv_first: conv_same(self.in_channels, self.nf, 3, true, device),
            aab_trunk: (0..self.num_blocks).map(|_| block.init(device)).collect(),
            trunk_conv: conv_same(self.nf, self.nf, 3, true, device),
            head: SrHeadConfig::new(self.nf, self.unf, self.out_channels, self.scale).init(device),
            rgb_range: self.rgb_range,
        }
    }
}

impl A2n {
    /// Low-resolution features `[N, nf, h, w]` of an input in [0, 1]: stem plus the trunk's
    /// residual, as the official network computes them on `x · rgb_range`.
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
        let fea = self.conv_first.forward(x.mul_scalar(self.rgb_range));
        let trunk = self
            .aab_trunk
            .iter()
            .fold(fea.clone(), |y, block| block.forward(y));
        fea + self.trunk_conv.forward(trunk)
    }

    /// Reconstruction from the features, with the bilinear skip from the input `lr` (in
    /// [0, 1]); the output is in [0, 1] units.
    pub fn forward_head(&self, features: Tensor<4>, lr: Tensor<4>) -> Tensor<4> {
        self.head
            .forward(features, lr.mul_scalar(self.rgb_range))
            .div_scalar(self.rgb_range)
    }

    /// `[N, 3, h, w]` in [0, 1] → `[N, 3, h·s, w·s]` (not clamped).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let features = self.forward_features(x.clone());
        self.forward_head(features, x)
    }
}

const A2N_PAPER: &str =
    "Attention in Attention Network for Image Super-Resolution (Chen et al., arXiv 2021)";
const A2N_WEIGHTS: &str = "https://github.com/haoyuc/A2N/tree/main/code/experiment/model";

static VARIANTS: &[ModelInfo] = &[
    variant!(
        "a2n_x2",
        "a2n",
        Task::SuperResolution { scale: 2 },
        A2N_PAPER,
        1_036_443,
        DataConfig::UnitRange,
        A2N_WEIGHTS,
        A2nConfig::new(2)
    ),
    variant!(
        "a2n_x3",
        "a2n",
        Task::SuperResolution { scale: 3 },
        A2N_PAPER,
        1_036_443,
        DataConfig::UnitRange,
        A2N_WEIGHTS,
        A2nConfig::new(3)
    ),
    variant!(
        "a2n_x4",
        "a2n",
        Task::SuperResolution { scale: 4 },
        A2N_PAPER,
        1_047_459,
        DataConfig::UnitRange,
        A2N_WEIGHTS,
        A2nConfig::new(4)
    ),
];

/// The official names: `AAB_trunk`, each block's `ADM.0` / `ADM.2`, and the reconstruction's
/// `upconv{i}`, `att{i}`, `HRconv{i}`, `conv_last` (top-level only: every AAB has its own
/// `conv_first` / `conv_last`, which keep their names).
pub fn key_map() -> KeyMap {
    let rules: Vec<(&str, &str)> = [
        &[("^AAB_trunk", "aab_trunk")][..],
        &gaze_blocks::aab::KEY_RULES[..],
        &[
            ("^upconv1", "head.stages.0.upconv"),
            ("^att1", "head.stages.0.att"),
            ("^HRconv1", "head.stages.0.hr_conv"),
            ("^upconv2", "head.stages.1.upconv"),
            ("^att2", "head.stages.1.att"),
            ("^HRconv2", "head.stages.1.hr_conv"),
            ("^conv_last", "head.conv_last"),
        ][..],
    ]
    .concat();
    KeyMap::new(&rules)
}

impl Family for A2nConfig {
    type Net = A2n;

    fn variants() -> &'static [ModelInfo] {
        VARIANTS
    }

    fn init(&self, device: &Device) -> A2n {
        A2nConfig::init(self, device)
    }

    fn key_map(&self) -> KeyMap {
        key_map()
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

crate::sr_net!(A2n, with_input);
