//! Concurrent spatial and channel squeeze & excitation (scSE): "Concurrent Spatial and Channel
//! 'Squeeze & Excitation' in Fully Convolutional Networks" (Roy, Navab, Wachinger; MICCAI
//! 2018), as `SCSEModule` of segmentation_models_pytorch (`base/modules.py`), the attention of
//! its U-Net decoder (`decoder_attention_type="scse"`):
//!
//! `y = x ⊙ σ(W₂ relu(W₁ avgpool(x) + b₁) + b₂) + x ⊙ σ(w_s ∗ x + b_s)`
//!
//! Official keys `cSE.1.{weight,bias}`, `cSE.3.{weight,bias}` (1×1 convolutions `C → C/r → C`)
//! and `sSE.0.{weight,bias}` (1×1 convolution `C → 1`); the module's fields carry those names.

use crate::conv::Conv2d;
use burn::prelude::*;
use burn::tensor::activation::relu;
use burn::tensor::module::adaptive_avg_pool2d;

use crate::cpu_kernels::sigmoid;
use crate::layers::conv_same;

/// Configuration of [`ScseModule`].
#[derive(Config, Debug)]
pub struct ScseConfig {
    /// Channels in and out.
    pub channels: usize,
    /// Channel reduction of the channel branch (smp: 16).
    #[config(default = 16)]
    pub reduction: usize,
}

/// The channel branch's two 1×1 convolutions (`cSE.1`, `cSE.3`).
#[derive(Module, Debug)]
pub struct ChannelSqueeze {
    /// `C → C/r`.
    pub fc1: Conv2d,
    /// `C/r → C`.
    pub fc2: Conv2d,
}

/// smp's `SCSEModule`.
#[derive(Module, Debug)]
pub struct ScseModule {
    /// Channel squeeze & excitation.
    pub cse: ChannelSqueeze,
    /// Spatial squeeze & excitation (`sSE.0`: 1×1 convolution to one channel).
    pub sse: Conv2d,
}

impl ScseConfig {
    /// Builds the block with random weights.
    pub fn init(&self, device: &Device) -> ScseModule {
        let c = self.channels;
        // smp divides without rounding up; a block narrower than the reduction keeps one channel.
        let hidden = (c / self.reduction).max(1);
        ScseModule {
            cse: ChannelSqueeze {
                fc1: conv_same(c, hidden, 1, true, device),
                fc2: conv_same(hidden, c, 1, true, device),
            },
            sse: conv_same(c, 1, 1, true, device),
        }
    }
}

impl ScseModule {
    /// `[N, C, H, W] → [N, C, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let pooled = adaptive_avg_pool2d(x.clone(), [1, 1]);
        let channel = sigmoid(self.cse.fc2.forward(relu(self.cse.fc1.forward(pooled))));
        let spatial = sigmoid(self.sse.forward(x.clone()));
        x.clone() * channel + x * spatial
    }
}

/// smp's names (`cSE.1`, `cSE.3`, `sSE.0`).
pub fn key_map() -> gaze_weights::KeyMap {
    gaze_weights::KeyMap::new(&[("cSE.1", "cse.fc1"), ("cSE.3", "cse.fc2"), ("sSE.0", "sse")])
}
