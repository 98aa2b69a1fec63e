//! VapSR: "Efficient Image Super-Resolution using Vast-Receptive-Field Attention" (Zhou, Cai,
//! Gu, Li, Liu, Chen, Qiao, Dong; ECCV 2022 AIM workshop). Official code:
//! github.com/zhoumumu/VapSR (`code/vapsr.py`, class `vapsr`, BasicSR).
//!
//! `conv_first` (3×3) → `num_block` [`Vab`] blocks → `conv_body` (3×3, `conv_groups` groups)
//! + long skip → [`VapsrUpsampler`]. There is no global (image) skip and no normalisation of
//! the input: the network takes RGB in [0, 1] and its output is not clamped.
//!
//! The upsampler depends on the scale, as in the official code:
//! * ×4 (official `pixelshuffle`): `conv3×3(C → 64)` → `PixelShuffle(2)` (16 channels) →
//!   LeakyReLU(0.1) → `conv3×3(16 → 4·out)` → `PixelShuffle(2)`;
//! * any other scale `s` (official `pixelshuffle_single`, ×2 and ×3):
//!   `conv3×3(C → 56)` → LeakyReLU(0.1) → `conv3×3(56 → s²·out)` → `PixelShuffle(s)`.
//!
//! The widths 64 and 56 are fixed in the official code whatever `num_feat` is. Both tails are
//! `nn.Sequential`s whose convolutions are `upsampler.0` and `upsampler.3` (×4) or
//! `upsampler.2` (other scales); [`key_map`] maps them to ours.

use crate::family::Family;
use crate::registry::{DataConfig, ModelInfo, Task};
use crate::variant;
use burn::nn::{PaddingConfig2d, PixelShuffle, PixelShuffleConfig};
use burn::prelude::*;
use gaze_blocks::conv::{Conv2d, Conv2dConfig};
use gaze_blocks::layers::conv_same;
use gaze_blocks::vab::{Vab, VabConfig};
use gaze_weights::KeyMap;

/// Negative slope of the upsampler's LeakyReLU (`nn.LeakyReLU(negative_slope=0.1)`).
pub const VAPSR_LRELU_SLOPE: f64 = 0.1;

/// Width of the ×4 upsampler's first convolution (official `pixelshuffle`: 64, shuffled by 2
/// to 16 channels).
pub const X4_TAIL_CHANNELS: usize = 64;

/// Width of the other scales' upsampler (official `pixelshuffle_single`: 56).
pub const SINGLE_TAIL_CHANNELS: usize = 56;

/// Configuration of [`Vapsr`]; the defaults are the published VapSR (×4: 48 features, 21
/// blocks; the ×2 and ×3 models have 20 blocks, VapSR-S 32 features, 11 blocks and a grouped
/// `conv_body`).
#[derive(Config, Debug)]
pub struct VapsrConfig {
    /// Upsampling factor (2, 3, 4; 4 selects the two-stage tail).
    pub scale: usize,
    /// Image channels in (`num_in_ch`).
    #[config(default = 3)]
    pub in_channels: usize,
    /// Image channels out (`num_out_ch`).
    #[config(default = 3)]
    pub out_channels: usize,
    /// Trunk width (`num_feat`).
    #[config(default = 48)]
    pub num_feat: usize,
    /// Width of every block's attention branch (`d_atten`).
    #[config(default = 64)]
    pub d_atten: usize,
    /// Number of VAB blocks (`num_block`).
    #[config(default = 21)]
    pub num_block: usize,
    /// Groups of `conv_body` (`conv_groups`: 1, VapSR-S 2).
    #[config(default = 1)]
    pub conv_groups: usize,
}

/// LeakyReLU with [`VAPSR_LRELU_SLOPE`].
fn lrelu(x: Tensor<4>) -> Tensor<4> {
    gaze_blocks::cpu_kernels::leaky_relu(x, VAPSR_LRELU_SLOPE)
}

/// The reconstruction tail (official `upsampler`, an `nn.Sequential`): see the module docs.
/// Keys `upconv1` (official `upsampler.0`) and `upconv2` (`upsampler.3` at ×4, else
/// `upsampler.2`).
#[derive(Module, Debug)]
pub struct VapsrUpsampler {
    /// 3×3 `num_feat → 64` (×4) or `num_feat → 56`, with bias.
    pub upconv1: Conv2d,
    /// 3×3 `16 → 4·out` (×4) or `56 → s²·out`, with bias.
    pub upconv2: Conv2d,
    /// `PixelShuffle(2)` (×4, applied twice) or `PixelShuffle(s)`.
    pub shuffle: PixelShuffle,
    /// The ×4 tail (shuffle after each convolution) rather than the single-shuffle one.
    #[module(skip)]
    pub two_stage: bool,
}

impl VapsrUpsampler {
    /// Builds the tail of the official code for `scale`, with random weights.
    pub fn new(num_feat: usize, out_channels: usize, scale: usize, device: &Device) -> Self {
        if scale == 4 {
            VapsrUpsampler {
                upconv1: conv_same(num_feat, X4_TAIL_CHANNELS, 3, true, device),
                upconv2: conv_same(X4_TAIL_CHANNELS / 4, out_channels * 4, 3, true, device),
                shuffle: PixelShuffleConfig::new(2).init(),
                two_stage: true,
            }
        } else {
            VapsrUpsampler {
                upconv1: conv_same(num_feat, SINGLE_TAIL_CHANNELS, 3, true, device),
                upconv2: conv_same(
                    SINGLE_TAIL_CHANNELS,
                    out_channels * scale * scale,
                    3,
                    true,
                    device,
                ),
                shuffle: PixelShuffleConfig::new(scale).init(),
                two_stage: false,
            }
        }
    }

    /// `[N, num_feat, h, w] → [N, out, h·s, w·s]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.upconv1.forward(x);
        if self.two_stage {
            let x = lrelu(self.shuffle.forward(x));
            self.shuffle.forward(self.upconv2.forward(x))
        } else {
            self.shuffle.forward(self.upconv2.forward(lrelu(x)))
        }
    }
}

/// The VapSR network. Field names are the official parameter names (`conv_first`,
/// `body.{i}`, `conv_body`, `upsampler`).
#[derive(Module, Debug)]
pub struct Vapsr {
    /// 3×3 stem `in → num_feat`.
    pub conv_first: Conv2d,
    /// The VAB trunk.
    pub body: Vec<Vab>,
    /// 3×3 convolution closing the trunk before the long skip (`conv_groups` groups).
    pub conv_body: Conv2d,
    /// The reconstruction tail.
    pub upsampler: VapsrUpsampler,
}

impl VapsrConfig {
    /// Builds VapSR with random weights.
    ///
    /// # Panics
    /// If `num_feat` is not a multiple of `conv_groups`.
    pub fn init(&self, device: &Device) -> Vapsr {
        let c = self.num_feat;
        assert!(
            self.conv_groups >= 1 && c % self.conv_groups == 0,
            "VapSR: num_feat {c} is not a multiple of conv_groups {}",
            self.conv_groups
        );
        Vapsr {
            conv_first: conv_same(self.in_channels, c, 3, true, device),
            body: (0..self.num_block)
                .map(|_| VabConfig::new(c, self.d_atten).init(device))
                .collect(),
            conv_body: Conv2dConfig::new([c, c], [3, 3])
                .with_groups(self.conv_groups)
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .with_bias(true)
                .init(device),
            upsampler: VapsrUpsampler::new(c, self.out_channels, self.scale, device),
        }
    }
}

impl Vapsr {
    /// Low-resolution features `[N, num_feat, h, w]`: the stem plus the trunk's residual,
    /// `f + conv_body(body(f))` with `f = conv_first(x)`.
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
        let feat = self.conv_first.forward(x);
        let body = self
            .body
            .iter()
            .fold(feat.clone(), |y, block| block.forward(y));
        feat + self.conv_body.forward(body)
    }

    /// The upsampler on the features (VapSR has no skip from the input image).
    pub fn forward_head(&self, features: Tensor<4>) -> Tensor<4> {
        self.upsampler.forward(features)
    }

    /// `[N, 3, h, w]` in [0, 1] → `[N, 3, h·s, w·s]` (not clamped).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_head(self.forward_features(x))
    }
}

const VAPSR_PAPER: &str =
    "Efficient Image Super-Resolution using Vast-Receptive-Field Attention (Zhou et al., ECCVW 2022)";
const VAPSR_WEIGHTS: &str = "https://github.com/zhoumumu/VapSR";

static VARIANTS: &[ModelInfo] = &[
    variant!(
        "vapsr_x2",
        "vapsr",
        Task::SuperResolution { scale: 2 },
        VAPSR_PAPER,
        329_236,
        DataConfig::UnitRange,
        VAPSR_WEIGHTS,
        VapsrConfig::new(2).with_num_block(20)
    ),
    variant!(
        "vapsr_x3",
        "vapsr",
        Task::SuperResolution { scale: 3 },
        VAPSR_PAPER,
        336_811,
        DataConfig::UnitRange,
        VAPSR_WEIGHTS,
        VapsrConfig::new(3).with_num_block(20)
    ),
    variant!(
        "vapsr_x4",
        "vapsr",
        Task::SuperResolution { scale: 4 },
        VAPSR_PAPER,
        342_220,
        DataConfig::UnitRange,
        VAPSR_WEIGHTS,
        VapsrConfig::new(4)
    ),
    variant!(
        "vapsr_s_x4",
        "vapsr",
        Task::SuperResolution { scale: 4 },
        VAPSR_PAPER,
        154_956,
        DataConfig::UnitRange,
        VAPSR_WEIGHTS,
        VapsrConfig::new(4)
            .with_num_feat(32)
            .with_num_block(11)
            .with_conv_groups(2)
    ),
];

/// The official names: every key is ours except the upsampler's `nn.Sequential` indices
/// (`upsampler.0` → `upsampler.upconv1`; `upsampler.3` at ×4, else `upsampler.2`, →
/// `upsampler.upconv2`). BasicSR's `params_ema` wrapper is stripped by the loader.
pub fn key_map(scale: usize) -> KeyMap {
    let upconv2 = if scale == 4 {
        "^upsampler.3"
    } else {
        "^upsampler.2"
    };
    KeyMap::new(&[
        ("^upsampler.0", "^upsampler.upconv1"),
        (upconv2, "^upsampler.upconv2"),
    ])
}

impl Family for VapsrConfig {
    type Net = Vapsr;

    fn variants() -> &'static [ModelInfo] {
        VARIANTS
    }

    fn init(&self, device: &Device) -> Vapsr {
        VapsrConfig::init(self, device)
    }

    fn key_map(&self) -> KeyMap {
        key_map(self.scale)
    }

    /// Every layer is local (the pixel norm normalises each pixel on its own, nothing pools):
    /// `conv_first` (1) + per block the 5×5 depthwise (2) and the 5×5, dilation-3 one (6) +
    /// `conv_body` (1) + `upconv1` (1) + `upconv2` (1 low-resolution pixel: 3×3 on the LR grid,
    /// or on the ×2 grid at ×4, which still reaches one LR pixel to one side), in input
    /// pixels: `8 · num_block + 4` (172 for VapSR ×4, 164 at ×2/×3, 92 for VapSR-S).
    fn receptive_radius(&self) -> Option<usize> {
        Some(8 * self.num_block + 4)
    }

    fn in_chans(&self) -> usize {
        self.in_channels
    }

    /// Image channels in and out (an SR model restores the image it is given).
    fn set_in_chans(&mut self, in_chans: usize) {
        self.in_channels = in_chans;
        self.out_channels = in_chans;
    }
}

crate::sr_net!(Vapsr);

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Module;

    #[test]
    fn shapes_and_published_sizes() {
        let device = Device::flex();
        for (config, params) in [
            (VapsrConfig::new(2).with_num_block(20), 329_236),
            (VapsrConfig::new(3).with_num_block(20), 336_811),
            (VapsrConfig::new(4), 342_220),
            (
                VapsrConfig::new(4)
                    .with_num_feat(32)
                    .with_num_block(11)
                    .with_conv_groups(2),
                154_956,
            ),
        ] {
            assert_eq!(config.init(&device).num_params(), params, "{config:?}");
            let small = config.clone().with_num_block(1).init(&device);
            let s = config.scale;
            let y = small.forward(Tensor::<4>::zeros([1, 3, 5, 7], &device));
            assert_eq!(y.dims(), [1, 3, 5 * s, 7 * s]);
        }
    }

    #[test]
    fn upsampler_keys_follow_the_scale() {
        assert_eq!(
            key_map(4).map("upsampler.3.weight"),
            "upsampler.upconv2.weight"
        );
        assert_eq!(key_map(2).map("upsampler.2.bias"), "upsampler.upconv2.bias");
        assert_eq!(
            key_map(3).unmap("upsampler.upconv1.weight"),
            "upsampler.0.weight"
        );
        assert_eq!(
            key_map(4).map("body.20.atten_branch.depthwise_dilated.weight"),
            "body.20.atten_branch.depthwise_dilated.weight"
        );
    }
}
