//! The attention module of the Residual Attention Network, "Residual Attention Network for
//! Image Classification" (Wang et al., CVPR 2017).
//!
//! A trunk branch `T(x)` (two residual units) is modulated by a soft mask `M(x) ∈ (0, 1)` from
//! a bottom-up / top-down hourglass, with attention residual learning (paper eq. 3):
//!
//! `H(x) = (1 + M(x)) ⊙ T(x)`
//!
//! The official code is Caffe; semantics and checkpoint names follow the widely used PyTorch
//! port github.com/tengshaofeng/ResidualAttentionNetwork-pytorch
//! (`Residual-Attention-Network/model/attention_module.py`, `AttentionModule_stage1/2/3`;
//! units are [`PreActBottleneck`], its `ResidualBlock`). For a module of depth `d`
//! (stage 1: 3, stage 2: 2, stage 3: 1; the port's 112×112 `AttentionModule_stage0` is 4):
//!
//! ```text
//! x  = first_residual_blocks(x);  T = trunk_branches(x)            (2 units)
//! s₀ = x
//! for i = 1..d-1:  sᵢ = softmax{i}_blocks(maxpool(sᵢ₋₁));  kᵢ = skip{i}_connection_residual_block(sᵢ)
//! u  = softmax{d}_blocks(maxpool(s_{d-1}))                         (2 units)
//! for i = d-1..1:  u = softmax{2d-i}_blocks(up(u → size(sᵢ)) + sᵢ + kᵢ)
//! M  = softmax{2d}_blocks(up(u → size(T)) + T)     BN-ReLU-conv1×1-BN-ReLU-conv1×1-sigmoid
//! out = last_blocks((1 + M) ⊙ T)
//! ```
//!
//! Depth 0 is the port's CIFAR `AttentionModule_stage3_cifar`, whose mask branch does not pool
//! and does not add the trunk: `M = mask_head(softmax_bottom(x))`, with `softmax_bottom` its
//! `middle_2r_blocks` (2 units). The port's other CIFAR modules
//! (`AttentionModule_stage{1,2}_cifar`) compute depths 2 and 1 under other names
//! (`down_residual_blocks1`, `middle_2r_blocks`, `up_residual_blocks1`, `conv1_1_blocks`;
//! [`cifar_key_map`] maps them).
//!
//! `maxpool` is 3×3, stride 2, padding 1; `up` is `nn.UpsamplingBilinear2d`, i.e. bilinear with
//! **`align_corners = true`**. The port fixes the upsampling targets (`size1/2/3`) to the
//! feature sizes of a 224×224 input (56/28/14 for stage 1); here the target is always the size
//! of the tensor the upsampled map is added to, which is the same thing for those inputs and
//! makes the module work for any input size.
//!
//! The port's names are kept in checkpoints; [`key_map`]
//! maps them onto the uniform fields here (`softmax{i}_blocks` → `softmax_down.{i-1}` /
//! `softmax_bottom` / `softmax_up.{j}`, `skip{i}_connection_residual_block` →
//! `skip_connections.{i-1}`, `softmax{2d}_blocks.{0,2,3,5}` → `mask_head.{bn1,conv1,bn2,conv2}`).

use crate::conv::{Conv2d, Conv2dConfig};
use crate::cpu_kernels::batch_norm;
use crate::cpu_kernels::max_pool2d;
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions, MaxPoolOptions};

use crate::cpu_kernels::sigmoid;
use crate::preact_bottleneck::{PreActBottleneck, PreActBottleneckConfig};

/// Configuration of [`ResidualAttention`].
#[derive(Config, Debug)]
pub struct ResidualAttentionConfig {
    /// Channels of the input and output (the port's `in_channels == out_channels`).
    pub channels: usize,
    /// Number of max-pooling levels of the soft-mask branch: 3 for stage 1, 2 for stage 2,
    /// 1 for stage 3 (and 4 for the port's `AttentionModule_stage0`, 0 for its
    /// `AttentionModule_stage3_cifar`: no pooling and no trunk added before the mask head).
    pub depth: usize,
}

impl ResidualAttentionConfig {
    /// `AttentionModule_stage1` (56×56 maps in the ImageNet network; 3 pooling levels).
    pub fn stage1(channels: usize) -> Self {
        Self::new(channels, 3)
    }

    /// `AttentionModule_stage2` (28×28 maps; 2 pooling levels).
    pub fn stage2(channels: usize) -> Self {
        Self::new(channels, 2)
    }

    /// `AttentionModule_stage3` (14×14 maps; 1 pooling level).
    pub fn stage3(channels: usize) -> Self {
        Self::new(channels, 1)
    }

    /// Builds the module with randomly initialised weights.
    pub fn init(&self, device: &Device) -> ResidualAttention {
        let c = self.channels;
        let levels = self.depth.saturating_sub(1);
        let unit = || PreActBottleneckConfig::new(c, c).init(device);
        let units = |n: usize| (0..n).map(|_| unit()).collect::<Vec<_>>();
        let conv = || {
            Conv2dConfig::new([c, c], [1, 1])
                .with_bias(false)
                .init(device)
        };
        ResidualAttention {
            first_residual_blocks: unit(),
            trunk_branches: units(2),
            softmax_down: units(levels),
            skip_connections: units(levels),
            softmax_bottom: units(2),
            softmax_up: units(levels),
            mask_head: MaskHead {
                bn1: BatchNormConfig::new(c).init(device),
                conv1: conv(),
                bn2: BatchNormConfig::new(c).init(device),
                conv2: conv(),
            },
            last_blocks: unit(),
            pool: self.depth > 0,
        }
    }
}

/// The mask head `σ(conv2(relu(bn2(conv1(relu(bn1(x)))))))` (1×1 bias-free convolutions); the
/// port's `nn.Sequential` indices `0, 2, 3, 5` are `bn1, conv1, bn2, conv2`.
#[derive(Module, Debug)]
pub struct MaskHead {
    /// First BatchNorm.
    pub bn1: BatchNorm,
    /// First 1×1 convolution.
    pub conv1: Conv2d,
    /// Second BatchNorm.
    pub bn2: BatchNorm,
    /// Second 1×1 convolution.
    pub conv2: Conv2d,
}

impl MaskHead {
    /// `[N, C, H, W] → [N, C, H, W]` in `(0, 1)`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = self.conv1.forward(relu(batch_norm(&self.bn1, x)));
        sigmoid(self.conv2.forward(relu(batch_norm(&self.bn2, y))))
    }
}

/// Residual Attention Network attention module (`AttentionModule_stage{1,2,3}`), size-agnostic.
#[derive(Module, Debug)]
pub struct ResidualAttention {
    /// The unit before the split into trunk and mask (`first_residual_blocks`).
    pub first_residual_blocks: PreActBottleneck,
    /// The trunk branch, 2 units (`trunk_branches.{0,1}`).
    pub trunk_branches: Vec<PreActBottleneck>,
    /// One unit after each of the first `depth - 1` max-pools (`softmax{i}_blocks`, i < depth).
    pub softmax_down: Vec<PreActBottleneck>,
    /// Skip-connection units of the first `depth - 1` levels
    /// (`skip{i}_connection_residual_block`).
    pub skip_connections: Vec<PreActBottleneck>,
    /// The 2 units at the lowest resolution (`softmax{depth}_blocks.{0,1}`).
    pub softmax_bottom: Vec<PreActBottleneck>,
    /// One unit after each but the last upsampling, in order of application
    /// (`softmax{depth+1}_blocks`, …, `softmax{2·depth-1}_blocks`).
    pub softmax_up: Vec<PreActBottleneck>,
    /// The mask head (`softmax{2·depth}_blocks`).
    pub mask_head: MaskHead,
    /// The unit after the attention product (`last_blocks`).
    pub last_blocks: PreActBottleneck,
    /// Whether the mask branch pools (false only for depth 0).
    pub pool: bool,
}

fn run(units: &[PreActBottleneck], x: Tensor<4>) -> Tensor<4> {
    units.iter().fold(x, |x, u| u.forward(x))
}

fn maxpool(x: Tensor<4>) -> Tensor<4> {
    max_pool2d(
        x,
        MaxPoolOptions::new([3, 3])
            .with_stride([2, 2])
            .with_padding([1, 1]),
    )
}

/// `nn.UpsamplingBilinear2d(size = like's size)`: bilinear, `align_corners = true`.
fn upsample_like(x: Tensor<4>, like: &Tensor<4>) -> Tensor<4> {
    let [_, _, h, w] = like.dims();
    interpolate(
        x,
        InterpolateOptions::new(InterpolateMode::Bilinear)
            .with_align_corners(true)
            .with_output_size([h, w]),
    )
}

impl ResidualAttention {
    /// Number of max-pooling levels of the soft-mask branch.
    pub fn depth(&self) -> usize {
        if self.pool {
            self.softmax_down.len() + 1
        } else {
            0
        }
    }

    /// `[N, C, H, W] → [N, C, H, W]` for any `H, W`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let (trunk, mask) = self.trunk_and_mask(x);
        self.last_blocks.forward(mask.add_scalar(1.0) * trunk)
    }

    /// The soft mask `M(x)` (after `first_residual_blocks`), for visualisation.
    pub fn attention_map(&self, x: Tensor<4>) -> Tensor<4> {
        self.trunk_and_mask(x).1
    }

    fn trunk_and_mask(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let x = self.first_residual_blocks.forward(x);
        let trunk = run(&self.trunk_branches, x.clone());
        if !self.pool {
            // Depth 0 (`AttentionModule_stage3_cifar`): no pooling, no trunk in the mask input.
            let mask = self.mask_head.forward(run(&self.softmax_bottom, x));
            return (trunk, mask);
        }

        // Bottom-up: (sᵢ, kᵢ) for levels 1..depth-1.
        let mut levels = Vec::with_capacity(self.softmax_down.len());
        let mut s = x;
        for (down, skip) in self.softmax_down.iter().zip(&self.skip_connections) {
            s = down.forward(maxpool(s));
            levels.push((s.clone(), skip.forward(s.clone())));
        }
        let mut u = run(&self.softmax_bottom, maxpool(s));

        // Top-down: the port adds the level's features first, then its skip connection.
        for ((s, k), up) in levels.iter().rev().zip(&self.softmax_up) {
            u = up.forward(upsample_like(u, s) + s.clone() + k.clone());
        }
        let mask = self
            .mask_head
            .forward(upsample_like(u, &trunk) + trunk.clone());
        (trunk, mask)
    }
}

/// The port's names of an ImageNet-style `AttentionModule` of `depth` (see the module docs).
pub fn key_map(depth: usize) -> gaze_weights::KeyMap {
    gaze_weights::KeyMap::new(imagenet_rules("", depth).as_slice())
}

/// The port's names of a CIFAR-style `AttentionModule` of `depth`.
pub fn cifar_key_map(depth: usize) -> gaze_weights::KeyMap {
    gaze_weights::KeyMap::new(cifar_rules("", depth).as_slice())
}

/// Renaming rules of an ImageNet-style module whose keys start with the fragment `prefix`
/// (`""`, or e.g. `"attention1.{j:d}."` inside a network).
pub fn imagenet_rules(prefix: &str, depth: usize) -> Vec<(String, String)> {
    let mut rules = Vec::new();
    let mut rule = |from: String, to: String| {
        rules.push((format!("^{prefix}{from}"), format!("^{prefix}{to}")))
    };
    for i in 1..depth {
        rule(
            format!("softmax{i}_blocks"),
            format!("softmax_down.{}", i - 1),
        );
        rule(
            format!("skip{i}_connection_residual_block"),
            format!("skip_connections.{}", i - 1),
        );
        rule(
            format!("softmax{}_blocks", depth + i),
            format!("softmax_up.{}", i - 1),
        );
    }
    if depth > 0 {
        rule(format!("softmax{depth}_blocks"), "softmax_bottom".into());
        for (index, field) in [(0, "bn1"), (2, "conv1"), (3, "bn2"), (5, "conv2")] {
            rule(
                format!("softmax{}_blocks.{index}", 2 * depth),
                format!("mask_head.{field}"),
            );
        }
    }
    rules
}

/// Renaming rules of a CIFAR-style module (see [`imagenet_rules`]).
pub fn cifar_rules(prefix: &str, depth: usize) -> Vec<(String, String)> {
    let mut rules = Vec::new();
    let mut rule = |from: String, to: String| {
        rules.push((format!("^{prefix}{from}"), format!("^{prefix}{to}")))
    };
    for i in 1..depth {
        rule(
            format!("down_residual_blocks{i}"),
            format!("softmax_down.{}", i - 1),
        );
        rule(
            format!("skip{i}_connection_residual_block"),
            format!("skip_connections.{}", i - 1),
        );
        rule(
            format!("up_residual_blocks{i}"),
            format!("softmax_up.{}", i - 1),
        );
    }
    rule("middle_2r_blocks".into(), "softmax_bottom".into());
    for (index, field) in [(0, "bn1"), (2, "conv1"), (3, "bn2"), (5, "conv2")] {
        rule(
            format!("conv1_1_blocks.{index}"),
            format!("mask_head.{field}"),
        );
    }
    rules
}
