//! Blueprint separable convolutions (BSConv, Haase & Amthor, CVPR 2020) and the other
//! depthwise-separable convolutions BSRN ("Blueprint Separable Residual Network for Efficient
//! Image Super-Resolution", Li et al., CVPRW 2022) builds its blocks from.
//!
//! A `k × k` convolution `C_in → C_out` is factored into a pointwise (1×1) and a depthwise
//! (`k × k`, one filter per channel) convolution. The order is what distinguishes them:
//!
//! * [`BsConvU`] (unconstrained blueprint): pointwise `C_in → C_out` **then** depthwise on
//!   `C_out` channels: `dw(pw(x))`. The convolution of every published BSRN.
//! * [`BsConvS`] (subspace blueprint): two pointwise convolutions through `mid` channels, then
//!   the depthwise one: `dw(pw2(pw1(x)))`, `mid = min(C_in, max(min_mid_channels, ⌈p·C_in⌉))`.
//! * [`DepthWiseConv`] (the classic depthwise-separable convolution, BSRN's "DSConv"
//!   ablation): depthwise on `C_in` channels **then** pointwise `C_in → C_out`.
//!
//! In the official `BSRN_arch.py` (github.com/xiaom233/BSRN) the pointwise convolutions have no
//! bias and the depthwise one has (`bias=True`). BSRN-S, the official `rfdnfinalB5_arch.py`,
//! takes its `BSConvU` from `Blocks.py`, whose pointwise projection is an `nn.Linear` over the
//! channels with a bias: [`SeparableConvConfig::linear_pointwise`] builds that one.
//! Official keys: `pw.*`, `dw.*` (`BSConvU`); `pw1.*`, `pw2.*`, `dw.*` (`BSConvS`); `dw.*`,
//! `pw.*` (`DepthWiseConv`); the module names here are the same, so no key map is needed.

use crate::conv::{Conv2d, Conv2dConfig};
use crate::linear::{Linear, LinearConfig};
use burn::nn::PaddingConfig2d;
use burn::prelude::*;

use crate::layers::conv_same;

/// A 1×1 projection over the channels: a 1×1 convolution (weight `[C_out, C_in, 1, 1]`) or an
/// `nn.Linear` applied channels-last (PyTorch weight `[C_out, C_in]`, always with a bias), as
/// BSRN-S writes its 1×1 layers. Both compute the same map; they differ in the checkpoint
/// layout only. The variant is invisible in the parameter paths (`pw.weight` either way).
///
/// ```
/// use burn::prelude::*;
/// use gaze_blocks::bsconv::Pointwise;
///
/// let device = Device::flex();
/// let x = Tensor::<4>::ones([1, 4, 5, 6], &device);
/// assert_eq!(Pointwise::conv(4, 8, true, &device).forward(x.clone()).dims(), [1, 8, 5, 6]);
/// assert_eq!(Pointwise::linear(4, 8, &device).forward(x).dims(), [1, 8, 5, 6]);
/// ```
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Pointwise {
    /// `nn.Conv2d(C_in, C_out, 1)`.
    Conv(Conv2d),
    /// `nn.Linear(C_in, C_out)` on `[N, H, W, C]`.
    Linear(Linear),
}

impl Pointwise {
    /// A 1×1 convolution, with or without a bias.
    pub fn conv(in_channels: usize, out_channels: usize, bias: bool, device: &Device) -> Self {
        Pointwise::Conv(conv_same(in_channels, out_channels, 1, bias, device))
    }

    /// An `nn.Linear` over the channels (with a bias, PyTorch's default).
    pub fn linear(in_channels: usize, out_channels: usize, device: &Device) -> Self {
        Pointwise::Linear(LinearConfig::new(in_channels, out_channels).init(device))
    }

    /// `[N, C_in, H, W] → [N, C_out, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Pointwise::Conv(conv) => conv.forward(x),
            Pointwise::Linear(linear) => linear.forward_channels(x),
        }
    }
}

/// Which separable convolution (the official `conv` option of BSRN: `'BSConvU'`, `'BSConvS'`,
/// `'DepthWiseConv'`).
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum SeparableConvKind {
    /// [`BsConvU`]: pointwise, then depthwise (the published BSRN and BSRN-S).
    BsConvU,
    /// [`BsConvS`]: two pointwise through a narrow subspace, then depthwise.
    BsConvS,
    /// [`DepthWiseConv`]: depthwise, then pointwise.
    DepthWiseConv,
}

/// Configuration of a [`SeparableConv`] (the official classes' arguments).
///
/// ```
/// use burn::prelude::*;
/// use gaze_blocks::bsconv::{SeparableConvConfig, SeparableConvKind};
///
/// let device = Device::flex();
/// let x = Tensor::<4>::ones([1, 8, 15, 16], &device);
/// // BSConvU(8, 12): 1×1 8 → 12 without bias, then a 3×3 depthwise with bias.
/// let conv = SeparableConvConfig::new(8, 12).init(&device);
/// assert_eq!(conv.forward(x.clone()).dims(), [1, 12, 15, 16]);
/// // ESA's `conv2`: stride 2, no padding.
/// let down = SeparableConvConfig::new(8, 8).with_stride(2).with_padding(0).init(&device);
/// assert_eq!(down.forward(x.clone()).dims(), [1, 8, 7, 7]);
/// let s = SeparableConvConfig::new(8, 12)
///     .with_kind(SeparableConvKind::BsConvS)
///     .init(&device);
/// assert_eq!(s.forward(x).dims(), [1, 12, 15, 16]);
/// ```
#[derive(Config, Debug)]
pub struct SeparableConvConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Which factorisation.
    #[config(default = "SeparableConvKind::BsConvU")]
    pub kind: SeparableConvKind,
    /// Side of the depthwise kernel.
    #[config(default = 3)]
    pub kernel_size: usize,
    /// Stride of the depthwise convolution.
    #[config(default = 1)]
    pub stride: usize,
    /// Zero padding of the depthwise convolution on every side (the official default 1).
    #[config(default = 1)]
    pub padding: usize,
    /// Bias of the depthwise convolution (the official default `True`; the pointwise ones
    /// never have one, except [`SeparableConvConfig::linear_pointwise`]'s Linear).
    #[config(default = true)]
    pub bias: bool,
    /// `BSConvS` only: the subspace is `⌈p · in_channels⌉` channels wide (official `p`).
    #[config(default = 0.25)]
    pub p: f64,
    /// `BSConvS` only: at least this many subspace channels (official `min_mid_channels`).
    #[config(default = 4)]
    pub min_mid_channels: usize,
    /// `BSConvU` only: the pointwise projection is an `nn.Linear` with bias (BSRN-S's
    /// `Blocks.BSConvU`) instead of a bias-free 1×1 convolution.
    #[config(default = false)]
    pub linear_pointwise: bool,
}

/// Any of the separable convolutions of [`SeparableConvKind`], or a plain convolution (BSRN-S's
/// ESA has one `nn.Conv2d` where BSRN has a `BSConvU`). The variant is invisible in the
/// parameter paths.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum SeparableConv {
    /// Pointwise, then depthwise.
    BsConvU(BsConvU),
    /// Two pointwise, then depthwise.
    BsConvS(BsConvS),
    /// Depthwise, then pointwise.
    DepthWiseConv(DepthWiseConv),
    /// A plain `nn.Conv2d` (keys `weight`, `bias`).
    Plain(Conv2d),
}

impl SeparableConv {
    /// `[N, C_in, H, W] → [N, C_out, H', W']`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            SeparableConv::BsConvU(c) => c.forward(x),
            SeparableConv::BsConvS(c) => c.forward(x),
            SeparableConv::DepthWiseConv(c) => c.forward(x),
            SeparableConv::Plain(c) => c.forward(x),
        }
    }
}

/// A `k × k` convolution with `groups` groups, stride and symmetric zero padding.
fn conv_kxk(
    channels: [usize; 2],
    kernel_size: usize,
    stride: usize,
    padding: usize,
    groups: usize,
    bias: bool,
    device: &Device,
) -> Conv2d {
    let (k, s, p) = (kernel_size, stride, padding);
    Conv2dConfig::new(channels, [k, k])
        .with_stride([s, s])
        .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
        .with_groups(groups)
        .with_bias(bias)
        .init(device)
}

impl SeparableConvConfig {
    /// The depthwise convolution on `channels` channels.
    fn depthwise(&self, channels: usize, device: &Device) -> Conv2d {
        conv_kxk(
            [channels, channels],
            self.kernel_size,
            self.stride,
            self.padding,
            channels,
            self.bias,
            device,
        )
    }

    /// Width of `BSConvS`'s subspace: `min(C_in, max(min_mid_channels, ⌈p · C_in⌉))`.
    pub fn mid_channels(&self) -> usize {
        let wanted = (self.p * self.in_channels as f64).ceil() as usize;
        self.in_channels.min(self.min_mid_channels.max(wanted))
    }

    /// A plain `nn.Conv2d` with this geometry (and a bias), as [`SeparableConv::Plain`].
    pub fn init_plain(&self, device: &Device) -> SeparableConv {
        SeparableConv::Plain(conv_kxk(
            [self.in_channels, self.out_channels],
            self.kernel_size,
            self.stride,
            self.padding,
            1,
            true,
            device,
        ))
    }

    /// Builds the convolution with random weights.
    ///
    /// # Panics
    /// If `linear_pointwise` is set for a kind other than `BsConvU` (the official code has no
    /// such layer).
    pub fn init(&self, device: &Device) -> SeparableConv {
        let (cin, cout) = (self.in_channels, self.out_channels);
        assert!(
            !self.linear_pointwise || self.kind == SeparableConvKind::BsConvU,
            "a Linear pointwise projection exists for BSConvU only, not {:?}",
            self.kind
        );
        match self.kind {
            SeparableConvKind::BsConvU => SeparableConv::BsConvU(BsConvU {
                pw: if self.linear_pointwise {
                    Pointwise::linear(cin, cout, device)
                } else {
                    Pointwise::conv(cin, cout, false, device)
                },
                dw: self.depthwise(cout, device),
            }),
            SeparableConvKind::BsConvS => {
                let mid = self.mid_channels();
                SeparableConv::BsConvS(BsConvS {
                    pw1: conv_same(cin, mid, 1, false, device),
                    pw2: conv_same(mid, cout, 1, false, device),
                    dw: self.depthwise(cout, device),
                })
            }
            SeparableConvKind::DepthWiseConv => SeparableConv::DepthWiseConv(DepthWiseConv {
                dw: self.depthwise(cin, device),
                pw: conv_same(cin, cout, 1, false, device),
            }),
        }
    }
}

/// Unconstrained blueprint separable convolution (official `BSConvU`): `dw(pw(x))`.
#[derive(Module, Debug)]
pub struct BsConvU {
    /// Pointwise `C_in → C_out`: a bias-free 1×1 convolution (`BSRN_arch.py`) or a Linear with
    /// bias (`Blocks.py`, BSRN-S).
    pub pw: Pointwise,
    /// Depthwise `k × k` on `C_out` channels, with the stride and padding, with bias.
    pub dw: Conv2d,
}

impl BsConvU {
    /// `[N, C_in, H, W] → [N, C_out, H', W']`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.dw.forward(self.pw.forward(x))
    }
}

/// Subspace blueprint separable convolution (official `BSConvS` of `BSRN_arch.py`, without its
/// training-only orthonormality loss): `dw(pw2(pw1(x)))`.
#[derive(Module, Debug)]
pub struct BsConvS {
    /// 1×1 `C_in → mid`, no bias.
    pub pw1: Conv2d,
    /// 1×1 `mid → C_out`, no bias.
    pub pw2: Conv2d,
    /// Depthwise `k × k` on `C_out` channels, with bias.
    pub dw: Conv2d,
}

impl BsConvS {
    /// `[N, C_in, H, W] → [N, C_out, H', W']`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.dw.forward(self.pw2.forward(self.pw1.forward(x)))
    }
}

/// Depthwise-separable convolution (official `DepthWiseConv` of `BSRN_arch.py`): `pw(dw(x))`.
#[derive(Module, Debug)]
pub struct DepthWiseConv {
    /// Depthwise `k × k` on `C_in` channels, with the stride and padding, with bias.
    pub dw: Conv2d,
    /// 1×1 `C_in → C_out`, no bias.
    pub pw: Conv2d,
}

impl DepthWiseConv {
    /// `[N, C_in, H, W] → [N, C_out, H', W']`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.pw.forward(self.dw.forward(x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_counts_match_the_official_classes() {
        let device = Device::flex();
        // BSConvU(64, 64): 64·64 + 64·9 + 64 = 4736.
        let u = SeparableConvConfig::new(64, 64).init(&device);
        assert_eq!(u.num_params(), 4736);
        // Blocks.BSConvU(48, 48): Linear 48·48 + 48, depthwise 48·9 + 48.
        let l = SeparableConvConfig::new(48, 48)
            .with_linear_pointwise(true)
            .init(&device);
        assert_eq!(l.num_params(), 48 * 48 + 48 + 48 * 9 + 48);
        // BSConvS(16, 12): mid 4: 16·4 + 4·12 + 12·9 + 12.
        let cfg = SeparableConvConfig::new(16, 12).with_kind(SeparableConvKind::BsConvS);
        assert_eq!(cfg.mid_channels(), 4);
        assert_eq!(cfg.init(&device).num_params(), 64 + 48 + 108 + 12);
        // DepthWiseConv(8, 12): 8·9 + 8 + 8·12.
        let d = SeparableConvConfig::new(8, 12)
            .with_kind(SeparableConvKind::DepthWiseConv)
            .init(&device);
        assert_eq!(d.num_params(), 72 + 8 + 96);
    }
}
