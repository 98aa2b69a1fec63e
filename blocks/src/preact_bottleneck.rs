//! The pre-activation bottleneck residual unit (He et al., "Identity Mappings in Deep Residual
//! Networks", ECCV 2016) as used by the Residual Attention Network PyTorch port
//! (github.com/tengshaofeng/ResidualAttentionNetwork-pytorch, `model/basic_layers.py`
//! `ResidualBlock`):
//!
//! `a = relu(bn1(x))`,
//! `y = conv3(relu(bn3(conv2(relu(bn2(conv1(a)))))))` with `conv1` 1×1 `C_in → C_out/4`,
//! `conv2` 3×3 (stride s, padding 1), `conv3` 1×1 `C_out/4 → C_out`, all bias-free;
//! `out = y + (conv4(a) if C_in ≠ C_out or s ≠ 1 else x)`.
//!
//! The shortcut projection `conv4` (1×1, stride s, bias-free) is always created, as in the
//! reference, so its weights are in every checkpoint even where the forward never uses them.
//! Keys: `bn{1,2,3}.{weight,bias,running_mean,running_var}`, `conv{1,2,3,4}.weight`.

use crate::conv::{Conv2d, Conv2dConfig};
use crate::cpu_kernels::batch_norm;
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;

/// Configuration of [`PreActBottleneck`].
#[derive(Config, Debug)]
pub struct PreActBottleneckConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels; the bottleneck width is `out_channels / 4`.
    pub out_channels: usize,
    /// Stride of the 3×3 convolution and of the shortcut projection.
    #[config(default = 1)]
    pub stride: usize,
}

/// Pre-activation bottleneck residual unit (reference `ResidualBlock`).
#[derive(Module, Debug)]
pub struct PreActBottleneck {
    /// Pre-activation BatchNorm of the input.
    pub bn1: BatchNorm,
    /// 1×1 reduction `C_in → C_out/4`.
    pub conv1: Conv2d,
    /// BatchNorm after `conv1`.
    pub bn2: BatchNorm,
    /// 3×3 convolution (strided).
    pub conv2: Conv2d,
    /// BatchNorm after `conv2`.
    pub bn3: BatchNorm,
    /// 1×1 expansion `C_out/4 → C_out`.
    pub conv3: Conv2d,
    /// 1×1 shortcut projection of the pre-activated input (used only when the shape changes).
    pub conv4: Conv2d,
    /// Whether the shortcut goes through `conv4`.
    pub project: bool,
}

fn conv1x1(cin: usize, cout: usize, stride: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([cin, cout], [1, 1])
        .with_stride([stride, stride])
        .with_bias(false)
        .init(device)
}

impl PreActBottleneckConfig {
    /// Builds the unit with randomly initialised weights.
    pub fn init(&self, device: &Device) -> PreActBottleneck {
        let (cin, cout, s) = (self.in_channels, self.out_channels, self.stride);
        let mid = cout / 4;
        PreActBottleneck {
            bn1: BatchNormConfig::new(cin).init(device),
            conv1: conv1x1(cin, mid, 1, device),
            bn2: BatchNormConfig::new(mid).init(device),
            conv2: Conv2dConfig::new([mid, mid], [3, 3])
                .with_stride([s, s])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .with_bias(false)
                .init(device),
            bn3: BatchNormConfig::new(mid).init(device),
            conv3: conv1x1(mid, cout, 1, device),
            conv4: conv1x1(cin, cout, s, device),
            project: cin != cout || s != 1,
        }
    }
}

impl PreActBottleneck {
    /// `[N, C_in, H, W] → [N, C_out, ⌈H/s⌉, ⌈W/s⌉]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let pre = relu(batch_norm(&self.bn1, x.clone()));
        let y = self.conv1.forward(pre.clone());
        let y = self.conv2.forward(relu(batch_norm(&self.bn2, y)));
        let y = self.conv3.forward(relu(batch_norm(&self.bn3, y)));
        let shortcut = if self.project {
            self.conv4.forward(pre)
        } else {
            x
        };
        y + shortcut
    }
}
