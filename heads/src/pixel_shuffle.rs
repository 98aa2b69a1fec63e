//! Sub-pixel (pixel-shuffle) upsamplers, the reconstruction tails of most SR networks.
//!
//! Two shapes exist in the literature, both here once:
//! * [`Upsampler`]: EDSR's `Upsampler`, reused by RCAN, HAN and HAT (`Upsample`): ×2ᵏ as k
//!   stages of `conv3×3(C → 4C)` + `PixelShuffle(2)`, ×3 as one `conv3×3(C → 9C)` +
//!   `PixelShuffle(3)`; it keeps the width `C`, a last conv elsewhere makes the image.
//! * [`PixelShuffleBlock`]: IMDN's `pixelshuffle_block` (also BSRN's, VapSR's):
//!   one `conv(C_in → C_out·s²)` + `PixelShuffle(s)` straight to image channels.
//!
//! In the official code both are `nn.Sequential`s whose convolutions sit at the even indices
//! (`0`, `2`, …; the shuffles have no weights): [`Upsampler::key_rules`] and
//! [`PixelShuffleBlock::key_rules`] give the rules between those names and ours.

use burn::nn::{PixelShuffle, PixelShuffleConfig};
use burn::prelude::*;
use gaze_blocks::conv::Conv2d;
use gaze_blocks::layers::conv_same;

/// Configuration of [`Upsampler`].
#[derive(Config, Debug)]
pub struct UpsamplerConfig {
    /// Feature channels in and out (`num_feat`).
    pub channels: usize,
    /// Upsampling factor: 3 or a power of two.
    pub scale: usize,
}

/// EDSR/RCAN/HAT upsampler. Keys: `convs.{i}` (the official `{2i}`).
#[derive(Module, Debug)]
pub struct Upsampler {
    /// One 3×3 convolution per stage, widening by the stage's factor squared.
    pub convs: Vec<Conv2d>,
    /// The shuffle of every stage (2, or 3 for ×3).
    pub shuffle: PixelShuffle,
}

impl UpsamplerConfig {
    /// Builds the upsampler with random weights.
    ///
    /// # Panics
    /// If `scale` is neither 3 nor a power of two ≥ 2 (the registries validate scales).
    pub fn init(&self, device: &Device) -> Upsampler {
        let (factor, stages) = upsampler_stages(self.scale)
            .unwrap_or_else(|| panic!("unsupported SR scale {}: use 2, 3, 4, 8…", self.scale));
        Upsampler {
            convs: (0..stages)
                .map(|_| {
                    conv_same(
                        self.channels,
                        factor * factor * self.channels,
                        3,
                        true,
                        device,
                    )
                })
                .collect(),
            shuffle: PixelShuffleConfig::new(factor).init(),
        }
    }
}

/// `(factor per stage, stages)` of an [`Upsampler`]: ×3 one ×3 stage, ×2ᵏ k ×2 stages.
pub fn upsampler_stages(scale: usize) -> Option<(usize, usize)> {
    match scale {
        3 => Some((3, 1)),
        s if s >= 2 && s.is_power_of_two() => Some((2, s.trailing_zeros() as usize)),
        _ => None,
    }
}

impl Upsampler {
    /// `[N, C, h, w]` → `[N, C, h·s, w·s]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.convs
            .iter()
            .fold(x, |x, conv| self.shuffle.forward(conv.forward(x)))
    }

    /// Key rules between the official `Sequential` (`{official}.0`, `{official}.2`, …) and
    /// ours (`{ours}.convs.0`, `{ours}.convs.1`, …), for a family's key map.
    pub fn key_rules(official: &str, ours: &str, scale: usize) -> Vec<(String, String)> {
        let stages = upsampler_stages(scale).map_or(0, |(_, n)| n);
        (0..stages)
            .map(|i| {
                (
                    format!("^{official}.{}", 2 * i),
                    format!("^{ours}.convs.{i}"),
                )
            })
            .collect()
    }
}

/// Configuration of [`PixelShuffleBlock`].
#[derive(Config, Debug)]
pub struct PixelShuffleBlockConfig {
    /// Feature channels in.
    pub in_channels: usize,
    /// Image channels out.
    pub out_channels: usize,
    /// Upsampling factor (any integer ≥ 1).
    pub scale: usize,
    /// Convolution kernel (3 in IMDN, BSRN and VapSR).
    #[config(default = 3)]
    pub kernel_size: usize,
}

/// IMDN's `pixelshuffle_block`: one convolution to `out·s²` channels, then `PixelShuffle(s)`.
/// Keys: `conv` (the official `0`).
#[derive(Module, Debug)]
pub struct PixelShuffleBlock {
    /// The widening convolution (`same` padding, with bias).
    pub conv: Conv2d,
    /// The shuffle.
    pub shuffle: PixelShuffle,
}

impl PixelShuffleBlockConfig {
    /// Builds the block with random weights.
    pub fn init(&self, device: &Device) -> PixelShuffleBlock {
        PixelShuffleBlock {
            conv: conv_same(
                self.in_channels,
                self.out_channels * self.scale * self.scale,
                self.kernel_size,
                true,
                device,
            ),
            shuffle: PixelShuffleConfig::new(self.scale).init(),
        }
    }
}

impl PixelShuffleBlock {
    /// `[N, C_in, h, w]` → `[N, C_out, h·s, w·s]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.shuffle.forward(self.conv.forward(x))
    }

    /// Key rule between the official `{official}.0` and ours `{ours}.conv`.
    pub fn key_rules(official: &str, ours: &str) -> Vec<(String, String)> {
        vec![(format!("^{official}.0"), format!("^{ours}.conv"))]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_and_shapes() {
        assert_eq!(upsampler_stages(2), Some((2, 1)));
        assert_eq!(upsampler_stages(3), Some((3, 1)));
        assert_eq!(upsampler_stages(8), Some((2, 3)));
        assert_eq!(upsampler_stages(5), None);
        let device = Device::flex();
        for scale in [2, 3, 4] {
            let up = UpsamplerConfig::new(4, scale).init(&device);
            let y = up.forward(Tensor::<4>::ones([1, 4, 3, 5], &device));
            assert_eq!(y.dims(), [1, 4, 3 * scale, 5 * scale]);
            let block = PixelShuffleBlockConfig::new(4, 3, scale).init(&device);
            let y = block.forward(Tensor::<4>::ones([1, 4, 3, 5], &device));
            assert_eq!(y.dims(), [1, 3, 3 * scale, 5 * scale]);
        }
        assert_eq!(
            Upsampler::key_rules("tail.0", "tail.upsampler", 4),
            vec![
                (
                    "^tail.0.0".to_string(),
                    "^tail.upsampler.convs.0".to_string()
                ),
                (
                    "^tail.0.2".to_string(),
                    "^tail.upsampler.convs.1".to_string()
                ),
            ]
        );
    }
}
