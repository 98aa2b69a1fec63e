//! Super-resolution reconstruction head with pixel attention (PAN's tail).
//!
//! `out = conv_last(U-PA_k(… U-PA_1(features))) + bilinear↑s(lr)`: the network only learns
//! the residual over a bilinear upsampling of its low-resolution input (PyTorch's
//! `F.interpolate(lr, scale_factor=s, mode="bilinear", align_corners=False)`).

use burn::prelude::*;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use gaze_blocks::conv::Conv2d;
use gaze_blocks::layers::conv_same;
use gaze_blocks::{Upa, UpaConfig};

/// Upsampling factors of the successive stages for a total `scale`: ×3 in one stage, powers of
/// two as ×2 stages (PAN's convention: ×4 = two ×2 stages). `None` for other scales.
pub fn upsampling_factors(scale: usize) -> Option<Vec<usize>> {
    match scale {
        3 => Some(vec![3]),
        s if s >= 2 && s.is_power_of_two() => Some(vec![2; s.trailing_zeros() as usize]),
        _ => None,
    }
}

/// Configuration of [`SrHead`].
#[derive(Config, Debug)]
pub struct SrHeadConfig {
    /// Channels of the incoming low-resolution features (`nf`).
    pub in_channels: usize,
    /// Channels inside the upsampling stages (`unf`).
    pub mid_channels: usize,
    /// Channels of the image produced (3 for RGB).
    pub out_channels: usize,
    /// Total upsampling factor: 2, 3 or a larger power of two.
    pub scale: usize,
}

/// The reconstruction head. Keys: `stages.{i}` ([`Upa`]), `conv_last`.
#[derive(Module, Debug)]
pub struct SrHead {
    /// Upsampling stages, applied in order.
    pub stages: Vec<Upa>,
    /// Final 3×3 convolution to image channels.
    pub conv_last: Conv2d,
    /// Total upsampling factor.
    pub scale: usize,
}

impl SrHeadConfig {
    /// Builds the head with random weights.
    ///
    /// # Panics
    /// If `scale` is not 2, 3 or a power of two (see [`upsampling_factors`]); model
    /// registries validate the scale before building.
    pub fn init(&self, device: &Device) -> SrHead {
        let factors = upsampling_factors(self.scale)
            .unwrap_or_else(|| panic!("unsupported SR scale {}: use 2, 3, 4, 8…", self.scale));
        let stages = factors
            .iter()
            .enumerate()
            .map(|(i, &f)| {
                let cin = if i == 0 {
                    self.in_channels
                } else {
                    self.mid_channels
                };
                UpaConfig::new(cin, self.mid_channels, f).init(device)
            })
            .collect();
        SrHead {
            stages,
            conv_last: conv_same(self.mid_channels, self.out_channels, 3, true, device),
            scale: self.scale,
        }
    }
}

impl SrHead {
    /// `features: [N, C, h, w]`, `lr: [N, out_channels, h, w]` → `[N, out_channels, h·s, w·s]`.
    pub fn forward(&self, features: Tensor<4>, lr: Tensor<4>) -> Tensor<4> {
        let x = self
            .stages
            .iter()
            .fold(features, |x, stage| stage.forward(x));
        self.conv_last.forward(x) + upsample_bilinear(lr, self.scale)
    }
}

/// Bilinear upsampling by an integer factor with half-pixel centres (`align_corners=False`).
pub fn upsample_bilinear(x: Tensor<4>, scale: usize) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    interpolate(
        x,
        InterpolateOptions::new(InterpolateMode::Bilinear)
            .with_align_corners(false)
            .with_output_size([h * scale, w * scale]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factors() {
        assert_eq!(upsampling_factors(2), Some(vec![2]));
        assert_eq!(upsampling_factors(3), Some(vec![3]));
        assert_eq!(upsampling_factors(4), Some(vec![2, 2]));
        assert_eq!(upsampling_factors(8), Some(vec![2, 2, 2]));
        assert_eq!(upsampling_factors(5), None);
        assert_eq!(upsampling_factors(1), None);
    }
}
