//! U-PA: upsampling with pixel attention, PAN's reconstruction stage (Zhao et al. 2020,
//! Fig. 2c): nearest-neighbour upsampling, a 3×3 convolution, pixel attention and a second
//! 3×3 convolution, with LeakyReLU(0.2) after the attention and after the last convolution.

use crate::conv::Conv2d;
use burn::prelude::*;

use crate::layers::{conv_same, lrelu, upsample_nearest};
use crate::pixel_attention::{PixelAttention, PixelAttentionConfig};

/// Configuration of [`Upa`].
#[derive(Config, Debug)]
pub struct UpaConfig {
    /// Channels of the input feature map (`nf`).
    pub in_channels: usize,
    /// Channels after the stage (`unf`).
    pub out_channels: usize,
    /// Integer nearest-neighbour upsampling factor of this stage.
    pub factor: usize,
}

/// The U-PA stage. Official keys (stage `i` of PAN): `upconv{i}`, `att{i}.conv`, `HRconv{i}`.
#[derive(Module, Debug)]
pub struct Upa {
    /// 3×3 convolution right after the upsampling.
    pub upconv: Conv2d,
    /// Pixel attention.
    pub att: PixelAttention,
    /// 3×3 refinement convolution at the high resolution.
    pub hr_conv: Conv2d,
    /// Upsampling factor.
    pub factor: usize,
}

impl UpaConfig {
    /// Builds the stage with randomly initialised weights.
    pub fn init(&self, device: &Device) -> Upa {
        Upa {
            upconv: conv_same(self.in_channels, self.out_channels, 3, true, device),
            att: PixelAttentionConfig::new(self.out_channels).init(device),
            hr_conv: conv_same(self.out_channels, self.out_channels, 3, true, device),
            factor: self.factor,
        }
    }
}

impl Upa {
    /// `[N, C_in, H, W] → [N, C_out, H·f, W·f]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.upconv.forward(upsample_nearest(x, self.factor));
        let x = lrelu(self.att.forward(x));
        lrelu(self.hr_conv.forward(x))
    }
}
