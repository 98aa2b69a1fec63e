//! Enhanced spatial attention (ESA), as BSRN ("Blueprint Separable Residual Network for
//! Efficient Image Super-Resolution", Li et al., CVPRW 2022) uses it. ESA comes from RFANet
//! (Liu et al., CVPR 2020) by way of RFDN; BSRN builds its 3×3 convolutions as blueprint
//! separable convolutions ([`crate::bsconv`]) and activates with GELU.
//!
//! With `f = num_feat / 4` (official `ESA.forward`, github.com/xiaom233/BSRN `BSRN_arch.py`):
//!
//! ```text
//! c1_ = conv1(x)                          1×1, num_feat → f
//! c1  = conv2(c1_)                        3×3, stride 2, no padding
//! v   = maxpool₇ₓ₇, stride 3(c1)          no padding
//! v   = GELU(conv_max(v))                 3×3
//! c3  = conv3_(GELU(conv3(v)))            3×3, 3×3
//! c3  = bilinear(c3, size of x)           align_corners = False
//! m   = σ(conv4(c3 + conv_f(c1_)))        conv_f 1×1 f → f, conv4 1×1 f → num_feat
//! ESA(x) = x ⊙ m
//! ```
//!
//! The strided convolution and the pool need inputs of at least [`ESA_MIN_INPUT`] = 15 pixels
//! per side (`⌊(15 − 3)/2⌋ + 1 = 7`, the pool's window).
//!
//! [`BsrnLayout::BsrnS`] is the ESA of BSRN-S (`rfdnfinalB5_arch.py`): `conv1`, `conv_f`
//! and `conv4` are `nn.Linear`s over the channels, `conv2` a plain `nn.Conv2d`, and the other
//! three are `Blocks.BSConvU` (Linear pointwise with bias). Field names are the official
//! parameter names (`conv3_` included), so no key map is needed.

use burn::prelude::*;

use crate::cpu_kernels::max_pool2d;
use crate::cpu_kernels::{gelu, sigmoid};
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions, MaxPoolOptions};

use crate::bsconv::{Pointwise, SeparableConv, SeparableConvConfig, SeparableConvKind};

/// The smallest input side ESA takes: its stride-2 3×3 convolution must leave the 7×7 max
/// pool a full window (`⌊(s − 3)/2⌋ + 1 ≥ 7`).
pub const ESA_MIN_INPUT: usize = 15;

/// Which official source a BSRN block follows.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum BsrnLayout {
    /// `BSRN_arch.py` (classes `BSRN`, `ESDB`, `ESA`): 1×1 convolutions; the published
    /// BSRN ×2/×3/×4.
    Bsrn,
    /// `rfdnfinalB5_arch.py` (classes `RFDNFINALB5`, `RFDB`, `ESA`): the 1×1 layers are
    /// `nn.Linear`s over the channels, ESA's strided convolution is a plain 3×3, and each block
    /// ends with a per-channel weight `cw` and a Linear `conv_out` instead of CCA; BSRN-S.
    BsrnS,
}

/// Configuration of [`Esa`].
///
/// ```
/// use burn::prelude::*;
/// use gaze_blocks::esa::{EsaConfig, ESA_MIN_INPUT};
///
/// let device = Device::flex();
/// let esa = EsaConfig::new(16).init(&device); // f = 4, BSConvU
/// let x = Tensor::<4>::ones([1, 16, ESA_MIN_INPUT, 20], &device);
/// assert_eq!(esa.forward(x).dims(), [1, 16, 15, 20]);
/// ```
#[derive(Config, Debug)]
pub struct EsaConfig {
    /// Channels in and out (official `num_feat`); the attention works on `num_feat / 4`.
    pub num_feat: usize,
    /// The 3×3 convolutions' kind (official `conv`).
    #[config(default = "SeparableConvKind::BsConvU")]
    pub conv: SeparableConvKind,
    /// `BSConvS`'s subspace ratio for `conv_max`, `conv3`, `conv3_` (official `p`; `conv2`
    /// always gets BSConvS's default 0.25, as in the official code).
    #[config(default = 0.25)]
    pub p: f64,
    /// BSRN (`BSRN_arch.py`) or BSRN-S (`rfdnfinalB5_arch.py`, BSConvU only).
    #[config(default = "BsrnLayout::Bsrn")]
    pub layout: BsrnLayout,
}

/// Enhanced spatial attention (official `ESA`): `x ⊙ σ(conv4(up(conv3_(…)) + conv_f(conv1(x))))`.
#[derive(Module, Debug)]
pub struct Esa {
    // Fields in forward order (conv1, conv2, conv_max, conv3, conv3_, conv_f, conv4), not the
    // official __init__'s: an ONNX export without names is matched by that order.
    /// 1×1 `num_feat → f`.
    pub conv1: Pointwise,
    /// 3×3, stride 2, no padding.
    pub conv2: SeparableConv,
    /// 3×3 after the max pool.
    pub conv_max: SeparableConv,
    /// 3×3.
    pub conv3: SeparableConv,
    /// 3×3 (the official name ends with an underscore).
    pub conv3_: SeparableConv,
    /// 1×1 `f → f` on `conv1`'s output (the full-resolution branch).
    pub conv_f: Pointwise,
    /// 1×1 `f → num_feat`.
    pub conv4: Pointwise,
}

impl EsaConfig {
    /// Builds the block with random weights.
    ///
    /// # Panics
    /// If `num_feat < 4`, or for the BSRN-S layout with a kind other than `BsConvU` (its
    /// `Blocks.py` versions of the others are different layers).
    pub fn init(&self, device: &Device) -> Esa {
        let f = self.num_feat / 4;
        assert!(
            f > 0,
            "ESA on {} channels has no attention channel",
            self.num_feat
        );
        let linear = self.layout == BsrnLayout::BsrnS;
        assert!(
            !linear || self.conv == SeparableConvKind::BsConvU,
            "the BSRN-S layout is defined for BSConvU only, not {:?}",
            self.conv
        );
        let one = |cin, cout| {
            if linear {
                Pointwise::linear(cin, cout, device)
            } else {
                Pointwise::conv(cin, cout, true, device)
            }
        };
        let three = || {
            SeparableConvConfig::new(f, f)
                .with_kind(self.conv)
                .with_p(self.p)
                .with_linear_pointwise(linear)
                .init(device)
        };
        let down = SeparableConvConfig::new(f, f)
            .with_kind(self.conv)
            .with_stride(2)
            .with_padding(0);
        Esa {
            conv1: one(self.num_feat, f),
            conv_f: one(f, f),
            conv_max: three(),
            conv2: if linear {
                down.init_plain(device)
            } else {
                down.init(device)
            },
            conv3: three(),
            conv3_: three(),
            conv4: one(f, self.num_feat),
        }
    }
}

impl Esa {
    /// `[N, C, H, W] → [N, C, H, W]`.
    ///
    /// # Panics
    /// If `H` or `W` is below [`ESA_MIN_INPUT`].
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let m = self.attention_map(x.clone());
        x * m
    }

    /// The spatial gate `σ(…) ∈ [N, C, H, W]` itself.
    ///
    /// # Panics
    /// If `H` or `W` is below [`ESA_MIN_INPUT`].
    pub fn attention_map(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, h, w] = x.dims();
        assert!(
            h >= ESA_MIN_INPUT && w >= ESA_MIN_INPUT,
            "ESA needs at least {ESA_MIN_INPUT}×{ESA_MIN_INPUT} inputs (a stride-2 3×3 \
             convolution, then a 7×7 max pool), got {h}×{w}"
        );
        let c1_ = self.conv1.forward(x);
        let c1 = self.conv2.forward(c1_.clone());
        let v_max = max_pool2d(
            c1,
            MaxPoolOptions {
                kernel_size: [7, 7],
                stride: [3, 3],
                padding: [(0, 0), (0, 0)],
                dilation: [1, 1],
                ceil_mode: false,
            },
        );
        let v_range = gelu(self.conv_max.forward(v_max));
        let c3 = gelu(self.conv3.forward(v_range));
        let c3 = self.conv3_.forward(c3);
        let c3 = interpolate(
            c3,
            InterpolateOptions::new(InterpolateMode::Bilinear)
                .with_align_corners(false)
                .with_output_size([h, w]),
        );
        let cf = self.conv_f.forward(c1_);
        sigmoid(self.conv4.forward(c3 + cf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_counts_match_the_official_classes() {
        let device = Device::flex();
        // BSRN_arch ESA(64, BSConvU), f = 16: conv1 1040, conv_f 272, four BSConvU(16, 16)
        // of 416, conv4 1088.
        assert_eq!(
            EsaConfig::new(64).init(&device).num_params(),
            1040 + 272 + 4 * 416 + 1088
        );
        // rfdnfinalB5 ESA(48, Blocks.BSConvU), f = 12: Linear 588 and 156, three BSConvU of
        // 12·12 + 12 + 12·9 + 12 = 276, plain conv2 12·12·9 + 12 = 1308, Linear 624.
        assert_eq!(
            EsaConfig::new(48)
                .with_layout(BsrnLayout::BsrnS)
                .init(&device)
                .num_params(),
            588 + 156 + 3 * 276 + 1308 + 624
        );
    }

    #[test]
    fn minimum_input_runs() {
        let device = Device::flex();
        let esa = EsaConfig::new(8).init(&device);
        let y = esa.forward(Tensor::<4>::ones([1, 8, 15, 15], &device));
        assert_eq!(y.dims(), [1, 8, 15, 15]);
    }

    #[test]
    #[should_panic(expected = "ESA needs at least 15×15")]
    fn smaller_inputs_are_refused() {
        let device = Device::flex();
        let esa = EsaConfig::new(8).init(&device);
        let _ = esa.forward(Tensor::<4>::ones([1, 8, 14, 20], &device));
    }
}
