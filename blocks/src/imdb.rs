//! The information multi-distillation block (IMDB) of IMDN, "Lightweight Image Super-Resolution
//! with Information Multi-distillation Network" (Hui, Gao, Yang, Wang; ACM MM 2019, Fig. 2).
//!
//! Three 3×3 convolutions each split their output into a *distilled* quarter, kept, and the
//! *remaining* three quarters, refined further; a fourth convolution turns the last remainder
//! into one more quarter. The four quarters are concatenated, reweighted by [`CcaLayer`] and
//! fused back to the input by a 1×1 convolution (paper Sec. 3.1, progressive refinement module):
//!
//! ```text
//! F¹_d, F¹_r = split(δ(CL₁ ∗ F_in))
//! F²_d, F²_r = split(δ(CL₂ ∗ F¹_r))
//! F³_d, F³_r = split(δ(CL₃ ∗ F²_r))
//! F⁴_d       = CL₄ ∗ F³_r                      (no activation)
//! F_out      = F_in + CL₅ ∗ CCA([F¹_d, F²_d, F³_d, F⁴_d])
//! ```
//!
//! with δ the LeakyReLU of slope [`IMDN_LRELU_SLOPE`] (0.05), `split` into the first `C/4`
//! channels (distilled) and the other `C − C/4` (remaining), every convolution with bias and
//! `same` padding. Names follow the official `IMDModule` (`model/block.py`,
//! github.com/Zheng222/IMDN): `c1`…`c5`, `cca.conv_du.{0,2}` ([`key_map`]). Its
//! `distillation_rate` is fixed at 1/4: the official `c5` takes all `C` channels, which only
//! the four quarters of a `C` divisible by 4 fill.

use crate::conv::Conv2d;
use burn::prelude::*;

use crate::cca::{CcaLayer, CcaLayerConfig};
use crate::layers::conv_same;

/// The LeakyReLU slope of IMDN (`activation('lrelu', neg_slope=0.05)`), in the block and after
/// the network's fusion convolution `c`.
pub const IMDN_LRELU_SLOPE: f64 = 0.05;

/// IMDN's LeakyReLU, slope [`IMDN_LRELU_SLOPE`].
pub fn imdn_lrelu(x: Tensor<4>) -> Tensor<4> {
    crate::cpu_kernels::leaky_relu(x, IMDN_LRELU_SLOPE)
}

/// Configuration of [`ImdModule`].
///
/// ```
/// use burn::prelude::*;
/// use gaze_blocks::imdb::ImdModuleConfig;
///
/// let device = Device::flex();
/// let block = ImdModuleConfig::new(64).init(&device); // IMDN's block: 16 + 48 channels
/// assert_eq!(block.distilled, 16);
/// let x = Tensor::<4>::ones([1, 64, 6, 5], &device);
/// assert_eq!(block.forward(x).dims(), [1, 64, 6, 5]);
/// ```
#[derive(Config, Debug)]
pub struct ImdModuleConfig {
    /// Channels of the input and output (`in_channels`, IMDN's `nf`); a multiple of 4.
    pub channels: usize,
    /// Reduction of the [`CcaLayer`] bottleneck (the official block always uses `CCALayer`'s
    /// default, 16).
    #[config(default = 16)]
    pub cca_reduction: usize,
}

/// The information multi-distillation block (official `IMDModule`).
#[derive(Module, Debug)]
pub struct ImdModule {
    /// 3×3 convolution `C → C`.
    pub c1: Conv2d,
    /// 3×3 convolution `C − C/4 → C`.
    pub c2: Conv2d,
    /// 3×3 convolution `C − C/4 → C`.
    pub c3: Conv2d,
    /// 3×3 convolution `C − C/4 → C/4`.
    pub c4: Conv2d,
    /// 1×1 fusion convolution `C → C`.
    pub c5: Conv2d,
    /// Contrast-aware channel attention on the concatenated distilled features.
    pub cca: CcaLayer,
    /// Distilled channels per step, `C / 4` (the official `distilled_channels`).
    pub distilled: usize,
}

impl ImdModuleConfig {
    /// Builds the block with randomly initialised weights.
    ///
    /// # Panics
    /// If `channels` is not a positive multiple of 4 (the official block cannot run then).
    pub fn init(&self, device: &Device) -> ImdModule {
        let c = self.channels;
        assert!(
            c > 0 && c % 4 == 0,
            "IMDModule needs a positive multiple of 4 channels, got {c}"
        );
        let distilled = c / 4;
        let remaining = c - distilled;
        ImdModule {
            c1: conv_same(c, c, 3, true, device),
            c2: conv_same(remaining, c, 3, true, device),
            c3: conv_same(remaining, c, 3, true, device),
            c4: conv_same(remaining, distilled, 3, true, device),
            c5: conv_same(c, c, 1, true, device),
            cca: CcaLayerConfig::new(4 * distilled)
                .with_reduction(self.cca_reduction)
                .init(device),
            distilled,
        }
    }
}

impl ImdModule {
    /// `[N, C, H, W] → [N, C, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let d = self.distilled;
        let (d1, r1) = self.split(imdn_lrelu(self.c1.forward(x.clone())));
        let (d2, r2) = self.split(imdn_lrelu(self.c2.forward(r1)));
        let (d3, r3) = self.split(imdn_lrelu(self.c3.forward(r2)));
        let d4 = self.c4.forward(r3);
        debug_assert_eq!(d4.dims()[1], d);
        let distilled = Tensor::cat(vec![d1, d2, d3, d4], 1);
        self.c5.forward(self.cca.forward(distilled)) + x
    }

    /// `[N, C, H, W]` → (the first `C/4` channels, the other `C − C/4`).
    fn split(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let c = x.dims()[1];
        let d = self.distilled;
        (x.clone().narrow(1, 0, d), x.narrow(1, d, c - d))
    }
}

/// The official names of an [`ImdModule`] (`c1`…`c5` as they are, `cca.conv_du.{0,2}`).
pub fn key_map() -> gaze_weights::KeyMap {
    crate::cca::key_map()
}
