//! HAN: "Single Image Super-Resolution via a Holistic Attention Network" (Niu, Wen, Ren, Zhang,
//! Yang, Wang, Zhang, Cao, Shen; ECCV 2020). Official code: github.com/wwlCape/HAN
//! (`src/model/han.py`, `common.py`).
//!
//! HAN is RCAN ([`crate::rcan`]) with the same mean shifts, stem, residual groups, trunk conv,
//! upsampler and output conv, plus two attention modules between the trunk and the long skip:
//!
//! * the outputs of the `n_resgroups + 1` trunk stages (every residual group and the closing
//!   `body_conv`, *not* the shallow features) are stacked newest first — the official loop
//!   prepends each output (`torch.cat([res.unsqueeze(1), res1], 1)`), so group 0's is last —
//!   into `[B, n_resgroups + 1, C, h, w]`, run through the layer attention `la`
//!   ([`LayerAttention`], official `LAM_Module`) and fused by the 3×3 `last_conv`
//!   (`(n_resgroups + 1)·C → C`; the official code writes `n_feats * 11`, i.e. its 10 groups);
//! * the last stage's output (`body_conv`'s) goes through the channel-spatial attention `csa`
//!   ([`ChannelSpatialAttention`], official `CSAM_Module`);
//! * both are concatenated (`[csa, last_conv]`), fused by the 3×3 `last` (`2C → C`), and the
//!   shallow features are added (the long skip) before the RCAN tail.
//!
//! Like RCAN, the official network works in 0–255 and gaze's forward takes [0, 1]: the input
//! is multiplied by `rgb_range` and the output divided by it.
//!
//! Names: the RCAN part is the field `rcan` ([`Rcan`]), so the official RCAN-named keys
//! (`sub_mean`, `head.0`, `body.*`, `tail.*`, `add_mean`) map through [`crate::rcan::key_map`]
//! and then under `rcan.`; `csa.*`, `la.gamma`, `last_conv.*`, `last.*` keep their names.

use crate::family::Family;
use crate::rcan::{Rcan, RcanConfig};
#[allow(unused_imports)]
use crate::registry::{DataConfig, ModelInfo, Task, IMAGENET, TIMM_WEIGHTS};
use crate::variant;
use burn::prelude::*;
use gaze_blocks::conv::Conv2d;
use gaze_blocks::layers::conv_same;
use gaze_blocks::{
    ChannelSpatialAttention, ChannelSpatialAttentionConfig, LayerAttention, LayerAttentionConfig,
};
use gaze_weights::KeyMap;

/// Configuration of [`Han`]: RCAN's hyper-parameters (the published HAN's are RCAN's
/// defaults: `--template HAN` sets 10 groups of 20 RCABs, 64 features; reduction 16,
/// `rgb_range` 255).
#[derive(Config, Debug)]
pub struct HanConfig {
    /// The RCAN trunk and tail.
    pub rcan: RcanConfig,
}

/// The HAN network.
#[derive(Module, Debug)]
pub struct Han {
    /// Mean shifts, stem, residual groups, trunk conv, upsampler, output conv (the official
    /// RCAN-named modules).
    pub rcan: Rcan,
    /// Channel-spatial attention on the trunk's output (official `csa`).
    pub csa: ChannelSpatialAttention,
    /// Layer attention over the stacked stage outputs (official `la`).
    pub la: LayerAttention,
    /// 3×3 fusion of the layer-attended stages, `(n_resgroups + 1)·C → C` (official
    /// `last_conv`).
    pub last_conv: Conv2d,
    /// 3×3 fusion of both attention branches, `2C → C` (official `last`).
    pub last: Conv2d,
}

impl HanConfig {
    /// HAN at `scale` with the published hyper-parameters.
    pub fn published(scale: usize) -> Self {
        HanConfig::new(RcanConfig::new(scale))
    }

    /// Builds HAN with random weights (the attention scales γ at 0, as the official code).
    pub fn init(&self, device: &Device) -> Han {
        let n = self.rcan.n_feats;
        Han {
            rcan: self.rcan.init(device),
            csa: ChannelSpatialAttentionConfig::new(n).init(device),
            la: LayerAttentionConfig::new(n).init(device),
            last_conv: conv_same((self.rcan.n_resgroups + 1) * n, n, 3, true, device),
            last: conv_same(2 * n, n, 3, true, device),
        }
    }
}

impl Han {
    /// Low-resolution features `[N, n_feats, h, w]` (the upsampler's input, in the 0–255
    /// scale): `last(cat[csa(trunk), last_conv(la(stages))]) + shallow`.
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
        let shallow = self.rcan.shallow_features(x);
        let mut stages = Vec::with_capacity(self.rcan.body.len() + 1);
        let mut res = shallow.clone();
        for group in &self.rcan.body {
            res = group.forward(res);
            stages.push(res.clone());
        }
        let trunk = self.rcan.body_conv.forward(res);
        stages.push(trunk.clone());
        // Newest first, as the official loop's `cat([res, res1])` stacks them.
        stages.reverse();
        let stacked: Tensor<5> = Tensor::stack::<5>(stages, 1);
        let layers = self.last_conv.forward(self.la.forward(stacked));
        let channel_spatial = self.csa.forward(trunk);
        self.last
            .forward(Tensor::cat(vec![channel_spatial, layers], 1))
            + shallow
    }

    /// Reconstruction (RCAN's tail): `add_mean(tail_conv(upsampler(features))) / rgb_range`.
    pub fn forward_head(&self, features: Tensor<4>) -> Tensor<4> {
        self.rcan.forward_head(features)
    }

    /// `[N, 3, h, w]` in [0, 1] → `[N, 3, h·s, w·s]` (not clamped).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_head(self.forward_features(x))
    }
}

const HAN_PAPER: &str =
    "Single Image Super-Resolution via a Holistic Attention Network (Niu et al., ECCV 2020)";
/// The official README's download (BIX2/3/4/8 and BDX3 models).
const HAN_WEIGHTS: &str =
    "https://drive.google.com/drive/folders/17cLcPCDLuBV5_5-ngd0vXIDp6rebIMG1";

static VARIANTS: &[ModelInfo] = &[
    variant!(
        "han_x2",
        "han",
        Task::SuperResolution { scale: 2 },
        HAN_PAPER,
        15_924_057,
        DataConfig::UnitRange,
        HAN_WEIGHTS,
        HanConfig::published(2)
    ),
    variant!(
        "han_x3",
        "han",
        Task::SuperResolution { scale: 3 },
        HAN_PAPER,
        16_108_697,
        DataConfig::UnitRange,
        HAN_WEIGHTS,
        HanConfig::published(3)
    ),
    variant!(
        "han_x4",
        "han",
        Task::SuperResolution { scale: 4 },
        HAN_PAPER,
        16_071_769,
        DataConfig::UnitRange,
        HAN_WEIGHTS,
        HanConfig::published(4)
    ),
    variant!(
        "han_x8",
        "han",
        Task::SuperResolution { scale: 8 },
        HAN_PAPER,
        16_219_481,
        DataConfig::UnitRange,
        HAN_WEIGHTS,
        HanConfig::published(8)
    ),
];

/// The top-level fields of [`Rcan`], which HAN keeps under `rcan.`.
const RCAN_FIELDS: [&str; 7] = [
    "sub_mean",
    "head",
    "body",
    "body_conv",
    "upsampler",
    "tail_conv",
    "add_mean",
];

/// The official names: RCAN's ([`crate::rcan::key_map`]) moved under `rcan.`, plus `csa.*`,
/// `la.gamma`, `last_conv.*` and `last.*` as they are.
pub fn key_map(config: &HanConfig) -> KeyMap {
    let under_rcan: Vec<(String, String)> = RCAN_FIELDS
        .iter()
        .map(|f| (format!("^{f}"), format!("^rcan.{f}")))
        .collect();
    crate::rcan::key_map(&config.rcan).then(KeyMap::new(&under_rcan))
}

impl Family for HanConfig {
    type Net = Han;

    fn variants() -> &'static [ModelInfo] {
        VARIANTS
    }

    fn init(&self, device: &Device) -> Han {
        HanConfig::init(self, device)
    }

    fn key_map(&self) -> KeyMap {
        key_map(self)
    }

    fn in_chans(&self) -> usize {
        self.rcan.n_colors
    }

    /// Image channels in and out (`n_colors`).
    fn set_in_chans(&mut self, in_chans: usize) {
        self.rcan.n_colors = in_chans;
    }
}

crate::sr_net!(Han);
