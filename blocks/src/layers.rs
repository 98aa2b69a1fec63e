//! Layers shared by every block and family: the activation enum, conv + norm + activation,
//! "same"-padded convolutions, LeakyReLU, integer nearest-neighbour upsampling, timm's
//! channel rounding.

use crate::conv::{Conv2d, Conv2dConfig};
use burn::module::Param;
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::{hard_sigmoid, relu};

use crate::cpu_kernels::{gelu, hard_swish, sigmoid, silu};

/// Every activation a configuration can name (timm's `act_layer` / `gate_layer` names).
#[derive(Config, Debug, PartialEq, Eq, Copy)]
pub enum Activation {
    /// `nn.ReLU`.
    Relu,
    /// `nn.SiLU` (swish).
    Silu,
    /// `nn.GELU` (exact, erf-based).
    Gelu,
    /// `nn.Hardswish`: `x · relu6(x + 3) / 6`.
    HardSwish,
    /// `nn.Sigmoid`: `1 / (1 + e⁻ˣ)`.
    Sigmoid,
    /// `nn.Hardsigmoid`: `clamp(x / 6 + 1/2, 0, 1)`.
    HardSigmoid,
}

impl Activation {
    /// Applies the activation.
    pub fn apply<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Activation::Relu => relu(x),
            Activation::Silu => silu(x),
            Activation::Gelu => gelu(x),
            Activation::HardSwish => hard_swish(x),
            Activation::Sigmoid => sigmoid(x),
            Activation::HardSigmoid => hard_sigmoid(x, 1.0 / 6.0, 0.5),
        }
    }
}

/// `x` with its values laid out in row-major order of its shape: a copy when `x` is a
/// permuted view (flex keeps `swap_dims`/`permute` as strided views), free otherwise.
///
/// Why: flex's element-wise ops write in place into the layout of their left operand, so a
/// token map that leaves a patch embedding as `flatten(2).transpose(1, 2)` keeps its
/// transposed layout through every residual add of the network, and every add and linear
/// layer after it reads it with strides (LeViT-128S spent 9% of its time in such strided adds).
/// Flattening a view whose order is not row-major cannot be a view, so flex copies it.
pub fn contiguous<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let shape = x.shape();
    let n = shape.num_elements();
    x.reshape([n]).reshape(shape)
}

/// Configuration of [`ConvNormAct`]: a convolution with `k / 2` zero padding (odd kernels keep
/// the size at stride 1), BatchNorm and an optional activation.
#[derive(Config, Debug)]
pub struct ConvNormActConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Square kernel side.
    pub kernel_size: usize,
    /// Stride.
    #[config(default = 1)]
    pub stride: usize,
    /// Bias on the convolution (timm: none; `nn.Sequential(conv, bn)` ports often have one).
    #[config(default = false)]
    pub bias: bool,
    /// BatchNorm epsilon.
    #[config(default = 1e-5)]
    pub eps: f64,
    /// BatchNorm momentum (PyTorch's convention: weight of the new batch statistics).
    #[config(default = 0.1)]
    pub momentum: f64,
    /// Activation after the norm (`None`: timm's `apply_act=False`).
    #[config(default = "None")]
    pub act: Option<Activation>,
}

impl ConvNormActConfig {
    /// Builds the layer with random weights.
    pub fn init(&self, device: &Device) -> ConvNormAct {
        let k = self.kernel_size;
        let p = k / 2;
        ConvNormAct {
            conv: Conv2dConfig::new([self.in_channels, self.out_channels], [k, k])
                .with_stride([self.stride, self.stride])
                .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
                .with_bias(self.bias)
                .init(device),
            bn: BatchNormConfig::new(self.out_channels)
                .with_epsilon(self.eps)
                .with_momentum(self.momentum)
                .init(device),
            act: self.act,
        }
    }
}

/// Convolution, BatchNorm, optional activation: timm's `ConvNormAct` and the official
/// `nn.Sequential(conv, bn[, act])` / `BasicConv` of many attention papers. Keys `conv.*`,
/// `bn.*` (families whose checkpoints number the sequential map `.0`/`.1` to them).
#[derive(Module, Debug)]
pub struct ConvNormAct {
    /// The convolution.
    pub conv: Conv2d,
    /// The BatchNorm.
    pub bn: BatchNorm,
    /// The activation after the norm, if any.
    #[module(skip)]
    pub act: Option<Activation>,
}

impl ConvNormAct {
    /// `act(bn(conv(x)))`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self.act {
            Some(Activation::Relu) => self.conv.forward_bn(x, &self.bn, true),
            Some(act) => act.apply(self.conv.forward_bn(x, &self.bn, false)),
            None => self.conv.forward_bn(x, &self.bn, false),
        }
    }
}

/// A stride-1 convolution with `(k - 1) / 2 · dilation` zero padding, so odd kernels keep the
/// spatial size (PyTorch's `nn.Conv2d(cin, cout, k, padding=(k-1)//2)`).
pub fn conv_same(
    in_channels: usize,
    out_channels: usize,
    kernel_size: usize,
    bias: bool,
    device: &Device,
) -> Conv2d {
    conv_same_dilated(in_channels, out_channels, kernel_size, 1, bias, device)
}

/// [`conv_same`] with a dilation: padding `dilation · (k - 1) / 2`.
pub fn conv_same_dilated(
    in_channels: usize,
    out_channels: usize,
    kernel_size: usize,
    dilation: usize,
    bias: bool,
    device: &Device,
) -> Conv2d {
    let pad = dilation * (kernel_size - 1) / 2;
    Conv2dConfig::new([in_channels, out_channels], [kernel_size, kernel_size])
        .with_dilation([dilation, dilation])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(bias)
        .init(device)
}

/// The 3×3, stride-2, padding-1 max pool of ResNet-style stems (`nn.MaxPool2d(3, 2, 1)`).
pub fn max_pool_3x3_s2(x: Tensor<4>) -> Tensor<4> {
    crate::cpu_kernels::max_pool2d(
        x,
        burn::tensor::ops::MaxPoolOptions {
            kernel_size: [3, 3],
            stride: [2, 2],
            padding: [(1, 1), (1, 1)],
            dilation: [1, 1],
            ceil_mode: false,
        },
    )
}

/// The 2×2, stride-2 max pool of U-Nets (`nn.MaxPool2d(2)`; odd sides lose their last row or
/// column).
pub fn max_pool_2x2(x: Tensor<4>) -> Tensor<4> {
    crate::cpu_kernels::max_pool2d(
        x,
        burn::tensor::ops::MaxPoolOptions {
            kernel_size: [2, 2],
            stride: [2, 2],
            padding: [(0, 0), (0, 0)],
            dilation: [1, 1],
            ceil_mode: false,
        },
    )
}

/// Splits a fused projection `[B, N, 3·H·d]` (timm's `qkv(x).reshape(B, N, 3, H, d)`) into
/// `q, k, v`, each `[B, H, N, d]`: strided views of the projection, no copy (narrowing a
/// `[B, N, 3, H, d]` reshape and reshaping it again copies every part).
pub fn split_qkv(qkv: Tensor<3>, heads: usize, head_dim: usize) -> [Tensor<4>; 3] {
    let [b, n, _] = qkv.dims();
    let qkv: Tensor<4> = qkv.reshape([b, n, 3 * heads, head_dim]);
    core::array::from_fn(|i| qkv.clone().narrow(2, i * heads, heads).swap_dims(1, 2))
}

/// Merges attention heads `[B, H, N, d] → [B, N, H·d]` (free for the output of
/// [`crate::cpu_kernels::attention`], which is stored token-major).
pub fn merge_heads(y: Tensor<4>) -> Tensor<3> {
    let [b, h, n, d] = y.dims();
    y.swap_dims(1, 2).reshape([b, n, h * d])
}

/// `[B, H, W, C] → [B · nW, Wh, Ww, C]` (timm's `window_partition`; `H`, `W` multiples of the
/// window; windows ordered batch-major, then row-major).
pub fn window_partition(x: Tensor<4>, window: [usize; 2]) -> Tensor<4> {
    let [b, h, w, c] = x.dims();
    let [wh, ww] = window;
    let x: Tensor<6> = x.reshape([b, h / wh, wh, w / ww, ww, c]);
    x.permute([0, 1, 3, 2, 4, 5])
        .reshape([b * (h / wh) * (w / ww), wh, ww, c])
}

/// The inverse of [`window_partition`]: `[B · nW, Wh, Ww, C] → [B, H, W, C]` (timm's
/// `window_reverse`).
pub fn window_reverse(windows: Tensor<4>, window: [usize; 2], h: usize, w: usize) -> Tensor<4> {
    let [bn, wh, ww, c] = windows.dims();
    assert_eq!([wh, ww], window, "window shape");
    let b = bn / ((h / wh) * (w / ww));
    let x: Tensor<6> = windows.reshape([b, h / wh, w / ww, wh, ww, c]);
    x.permute([0, 1, 3, 2, 4, 5]).reshape([b, h, w, c])
}

/// An index buffer computed at init (timm's `relative_position_index`, LeViT's
/// `attention_bias_idxs`): an integer parameter, so it is uploaded once and moves with the
/// module to any device. It is not trainable, and the family's key map ignores its name, so it
/// is neither required from nor written to checkpoints.
pub fn index_buffer(values: Vec<i64>, device: &Device) -> Param<Tensor<1, Int>> {
    let n = values.len();
    Param::initialized(
        burn::module::ParamId::new(),
        Tensor::from_data(TensorData::new(values, [n]), device),
    )
}

/// The negative slope of ESRGAN-lineage SR networks' LeakyReLU (PAN, RCAN heads, …).
pub const LRELU_SLOPE: f64 = 0.2;

/// LeakyReLU with [`LRELU_SLOPE`].
pub fn lrelu(x: Tensor<4>) -> Tensor<4> {
    crate::cpu_kernels::leaky_relu(x, LRELU_SLOPE)
}

/// Nearest-neighbour upsampling by an integer factor, exactly PyTorch's
/// `F.interpolate(x, scale_factor=s, mode="nearest")` for integer `s`: every pixel is repeated
/// into an `s × s` block. Done with a broadcast so the result is bit-exact on every backend.
/// On the flex CPU device one pass per plane writes each output row once and copies it
/// `s − 1` times (flex's copy of the broadcast view ran a scalar strided iterator: 10% of a
/// U-Net's decoder).
pub fn upsample_nearest(x: Tensor<4>, factor: usize) -> Tensor<4> {
    if factor == 1 {
        return x;
    }
    if crate::cpu_kernels::on_plain_flex(&x) {
        return upsample_nearest_planes(x, factor);
    }
    let [n, c, h, w] = x.dims();
    x.reshape([n, c, h, 1, w, 1])
        .expand([n, c, h, factor, w, factor])
        .reshape([n, c, h * factor, w * factor])
}

/// [`upsample_nearest`] on flex's buffers, planes in parallel.
fn upsample_nearest_planes(x: Tensor<4>, s: usize) -> Tensor<4> {
    use crate::cpu_kernels::{assume_init, unwritten, HostView};
    use rayon::prelude::*;
    use std::mem::MaybeUninit;
    let device = x.device();
    let [n, c, h, w] = x.dims();
    let (oh, ow) = (h * s, w * s);
    let input = HostView::new(x).expect("flex f32 (checked by the caller)");
    let mut out = unwritten(n * c * oh * ow);
    if ow > 0 {
        out.par_chunks_mut((oh * ow).max(1))
            .zip(input.values().par_chunks((h * w).max(1)))
            .for_each(|(plane, src)| {
                for (block, row) in plane.chunks_mut(s * ow).zip(src.chunks(w)) {
                    let (first, rest) = block.split_at_mut(ow);
                    for (out, &v) in first.chunks_mut(s).zip(row) {
                        out.fill(MaybeUninit::new(v));
                    }
                    for copy in rest.chunks_mut(ow) {
                        copy.copy_from_slice(first);
                    }
                }
            });
    }
    // SAFETY: every output row is written: the first of each block of `s` rows pixel by pixel
    // (`s` values per input pixel), the others copied from it.
    let values = unsafe { assume_init(out) };
    Tensor::from_data(TensorData::new(values, [n, c, oh, ow]), &device)
}

/// timm's `make_divisible(v, divisor, min_value, round_limit)` (`timm.layers.helpers`), which
/// sizes the reduced channels of SE, CBAM, split attention, …: round `v` to the nearest multiple
/// of `divisor` (halves round up), at least `min_value` (default `divisor`), and add one more
/// `divisor` if rounding lost more than `1 - round_limit` of `v` (timm's default limit is 0.9;
/// SE and CBAM pass 0, which disables the correction).
///
/// `max(min_value, ⌊v + divisor/2⌋ // divisor · divisor)`, `+ divisor` if that is `< round_limit · v`.
pub fn make_divisible(v: f64, divisor: usize, min_value: Option<usize>, round_limit: f64) -> usize {
    let min_value = match min_value {
        Some(m) if m > 0 => m,
        _ => divisor,
    };
    let rounded = (v + divisor as f64 / 2.0).floor() as usize / divisor * divisor;
    let mut new_v = min_value.max(rounded);
    if (new_v as f64) < round_limit * v {
        new_v += divisor;
    }
    new_v
}

/// The bottleneck width of a channel-attention MLP as timm computes it: `rd_channels` when
/// given (and non-zero), else `make_divisible(channels · rd_ratio, rd_divisor)` with no
/// round-down limit (timm's SE and CBAM).
pub fn reduced_channels(
    channels: usize,
    rd_ratio: f64,
    rd_channels: Option<usize>,
    rd_divisor: usize,
) -> usize {
    match rd_channels {
        Some(rd) if rd > 0 => rd,
        _ => make_divisible(channels as f64 * rd_ratio, rd_divisor, None, 0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_repeats_each_pixel() {
        let device = Device::flex();
        let x = Tensor::<4>::from_data(
            TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0], [1, 1, 2, 2]),
            &device,
        );
        let y = upsample_nearest(x, 2)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(
            y,
            vec![1., 1., 2., 2., 1., 1., 2., 2., 3., 3., 4., 4., 3., 3., 4., 4.]
        );
    }

    /// The CPU kernel equals the broadcast form (the fallback off plain flex) for factors 2–4,
    /// non-square maps and a batch.
    #[test]
    fn nearest_kernel_equals_the_broadcast() {
        let device = Device::flex();
        for (shape, factor) in [([2, 3, 5, 7], 2), ([1, 4, 3, 2], 3), ([1, 2, 6, 9], 4)] {
            let x = crate::conv::tests::random(shape, 17, &device);
            let [n, c, h, w] = shape;
            let want = x
                .clone()
                .reshape([n, c, h, 1, w, 1])
                .expand([n, c, h, factor, w, factor])
                .reshape([n, c, h * factor, w * factor]);
            let got = upsample_nearest(x, factor);
            assert_eq!(got.dims(), want.dims());
            let d = (got - want).abs().max().into_scalar::<f32>();
            assert_eq!(d, 0.0, "{shape:?} × {factor}");
        }
    }

    #[test]
    fn make_divisible_matches_timm() {
        // Values printed by timm.layers.helpers.make_divisible.
        assert_eq!(make_divisible(24.0 / 16.0, 8, None, 0.0), 8);
        assert_eq!(make_divisible(64.0 * 0.25, 8, None, 0.0), 16);
        assert_eq!(make_divisible(24.0 / 16.0, 1, None, 0.0), 2);
        assert_eq!(make_divisible(256.0 / 16.0, 1, None, 0.0), 16);
        assert_eq!(make_divisible(12.0, 8, Some(32), 0.9), 32);
        assert_eq!(make_divisible(128.0 * 2.0 * 0.25, 8, Some(32), 0.9), 64);
        assert_eq!(make_divisible(10.0, 8, None, 0.9), 16);
        assert_eq!(make_divisible(12.0, 8, None, 0.9), 16);
        assert_eq!(make_divisible(8.8, 8, None, 0.9), 8);
    }

    #[test]
    fn same_conv_keeps_size() {
        let device = Device::flex();
        let conv = conv_same_dilated(2, 3, 3, 2, false, &device);
        let y = conv.forward(Tensor::<4>::zeros([1, 2, 7, 5], &device));
        assert_eq!(y.dims(), [1, 3, 7, 5]);
    }
}
