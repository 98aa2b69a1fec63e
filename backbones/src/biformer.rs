//! BiFormer (Zhu, Wang, Ke, Zhang, Lau, "BiFormer: Vision Transformer with Bi-Level Routing
//! Attention", CVPR 2023), as the official github.com/rayleizhu/BiFormer `models/biformer.py`
//! builds it (`BiFormer`, `Block`; registrations `biformer_tiny` / `biformer_small`), with
//! `ops/bra_legacy.py`'s `BiLevelRoutingAttention` and `models/_common.py`'s `AttentionLePE` /
//! `Attention`.
//!
//! * `downsample_layers.0` (stem): 3×3 stride-2 convolution to `embed_dim[0] / 2`, BatchNorm,
//!   GELU, 3×3 stride-2 convolution to `embed_dim[0]`, BatchNorm (stride 4);
//!   `downsample_layers.{1,2,3}`: 3×3 stride-2 convolution and BatchNorm. All convolutions have
//!   padding 1 and a bias.
//! * `stages.{i}.{j}` (`Block`, NCHW in and out):
//!   `x += pos_embed(x)` (depthwise `before_attn_dwconv` convolution with bias, **padding 1**
//!   whatever its kernel, as officially), then on NHWC tokens (pre-norm)
//!   `x += γ₁ ⊙ attn(norm1(x))`, `x += γ₂ ⊙ mlp(norm2(x))`, LayerNorms with ε = 1e-6, MLP
//!   `Linear → GELU → Linear` of width `⌊mlp_ratio · dim⌋` (official `mlp.0` / `mlp.3`), layer
//!   scales only when `layer_scale_init_value > 0`. The attention by `topks[i]`:
//!   * `> 0`: [`BiLevelRoutingAttention`] with `num_heads = qk_dims[i] / head_dim`,
//!     `n_win`, `qk_dim`, the kv downsampling, `side_dwconv`, `auto_pad`;
//!   * `-2`: [`AttentionLePE`] (global attention plus a depthwise `side_dwconv` convolution of
//!     the attention's **input**; built as `AttentionLePE(dim, side_dwconv)`, so always 8
//!     heads and no `qkv` bias) — the last stage of BiFormer-T/S;
//!   * `-1`: the same without `lepe` (official `Attention(dim)`);
//!   * 0 (the official pseudo-attention convolutions) is not supported.
//! * `norm` (BatchNorm2d), global average pool, `head`.
//!
//! **Input size.** Without `auto_pad` (the registered models), BRA needs every routed stage's
//! map divisible by `n_win` (official assertion): with `n_win = 7`, the maps at strides 4, 8
//! and 16 must be multiples of 7, e.g. inputs that are multiples of 112 (224 being the trained
//! size). The last stage (global attention) takes any size.
//!
//! Official checkpoints (`{"model": state_dict}`) load with
//! [`gaze_weights::keymaps::biformer`] (`nn.Sequential` indices of the stem, the downsamplers
//! and the MLP become field names).

#[allow(unused_imports)]
use crate::registry::{DataConfig, ModelInfo, Task, IMAGENET, TIMM_WEIGHTS};
use crate::variant;
use burn::module::Param;
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::softmax;
use gaze_blocks::bi_routing_attention::{
    BiLevelRoutingAttention, BiLevelRoutingAttentionConfig, KvDownsampleMode,
};
use gaze_blocks::conv::{Conv2d, Conv2dConfig};
use gaze_blocks::cpu_kernels::gelu;
use gaze_blocks::layer_norm::{LayerNorm, LayerNormConfig};
use gaze_blocks::layers::{ConvNormAct, ConvNormActConfig};
use gaze_blocks::linear::{Linear, LinearConfig};
use gaze_blocks::vit_attention::{TokenMlp, TokenMlpConfig};
use gaze_weights::KeyMap;

use crate::features::FeatureInfo;

/// A BiFormer variant, with the official argument names.
#[derive(Config, Debug)]
pub struct BiFormerConfig {
    /// Blocks per stage.
    pub depth: Vec<usize>,
    /// Channels per stage.
    pub embed_dim: Vec<usize>,
    /// MLP width over channels, per stage.
    pub mlp_ratios: Vec<f64>,
    /// Query/key channels of the routing attention, per stage (heads = `qk_dims / head_dim`).
    pub qk_dims: Vec<usize>,
    /// Routed regions per region, per stage; -1 vanilla attention, -2 attention with LePE.
    #[config(default = "vec![1, 4, 16, -2]")]
    pub topks: Vec<i64>,
    /// Head dimension of the routing attention.
    #[config(default = 32)]
    pub head_dim: usize,
    /// Regions per side of the routing attention.
    #[config(default = 7)]
    pub n_win: usize,
    /// Key/value reduction per region (BRA).
    #[config(default = "KvDownsampleMode::Identity")]
    pub kv_downsample_mode: KvDownsampleMode,
    /// Output side of the adaptive pooling modes, per stage.
    #[config(default = "vec![2, 2, 1, 1]")]
    pub kv_per_wins: Vec<usize>,
    /// Kernel and stride of the `avgpool` / `maxpool` modes, per stage.
    #[config(default = "vec![4, 2, 1, 1]")]
    pub kv_downsample_ratios: Vec<usize>,
    /// Kernel of the depthwise LePE convolutions (0: none).
    #[config(default = 5)]
    pub side_dwconv: usize,
    /// Kernel of the depthwise `pos_embed` convolution (0: none).
    #[config(default = 3)]
    pub before_attn_dwconv: usize,
    /// Initial value of the layer scales (none when `None`; officially `-1`).
    #[config(default = "None")]
    pub layer_scale_init_value: Option<f64>,
    /// Overrides `qk_dim^-0.5` in BRA and `head_dim^-0.5` in the global attentions.
    #[config(default = "None")]
    pub qk_scale: Option<f64>,
    /// BRA `param_routing`.
    #[config(default = false)]
    pub param_routing: bool,
    /// BRA `diff_routing`.
    #[config(default = false)]
    pub diff_routing: bool,
    /// BRA `soft_routing`.
    #[config(default = false)]
    pub soft_routing: bool,
    /// Pre-norm blocks (officially `True`); post-norm otherwise.
    #[config(default = true)]
    pub pre_norm: bool,
    /// Zero-pad maps not divisible by `n_win` inside BRA.
    #[config(default = false)]
    pub auto_pad: bool,
    /// Classifier outputs; 0 for a backbone without head.
    #[config(default = 1000)]
    pub num_classes: usize,
    /// Image channels.
    #[config(default = 3)]
    pub in_chans: usize,
}

impl BiFormerConfig {
    /// `biformer_tiny`: depths 2-2-8-2, channels 64-128-256-512 (13.1 M).
    pub fn biformer_tiny() -> Self {
        Self::new(
            vec![2, 2, 8, 2],
            vec![64, 128, 256, 512],
            vec![3.0; 4],
            vec![64, 128, 256, 512],
        )
    }

    /// `biformer_small`: depths 4-4-18-4, channels 64-128-256-512 (25.5 M).
    pub fn biformer_small() -> Self {
        Self::new(
            vec![4, 4, 18, 4],
            vec![64, 128, 256, 512],
            vec![3.0; 4],
            vec![64, 128, 256, 512],
        )
    }

    /// Channels entering the classifier.
    pub fn num_features(&self) -> usize {
        self.embed_dim[3]
    }

    /// Channels and strides of the stage outputs ([`BiFormer::forward_intermediates`]).
    pub fn feature_info(&self) -> Vec<FeatureInfo> {
        ["stages.0", "stages.1", "stages.2", "stages.3"]
            .into_iter()
            .enumerate()
            .map(|(i, module)| FeatureInfo {
                channels: self.embed_dim[i],
                reduction: 4 << i,
                module,
            })
            .collect()
    }

    /// Builds the network with random weights.
    ///
    /// # Panics
    /// Unless every per-stage list has four entries; if a `topks` entry is 0 or below -2; or as
    /// the attention configurations do (channels not divisible by the heads, `topk > n_win²`).
    pub fn init(&self, device: &Device) -> BiFormer {
        for (name, len) in [
            ("depth", self.depth.len()),
            ("embed_dim", self.embed_dim.len()),
            ("mlp_ratios", self.mlp_ratios.len()),
            ("qk_dims", self.qk_dims.len()),
            ("topks", self.topks.len()),
            ("kv_per_wins", self.kv_per_wins.len()),
            ("kv_downsample_ratios", self.kv_downsample_ratios.len()),
        ] {
            assert_eq!(len, 4, "BiFormer: {name} needs four entries");
        }
        let e = &self.embed_dim;
        let conv = |cin: usize, cout: usize| {
            Conv2dConfig::new([cin, cout], [3, 3])
                .with_stride([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device)
        };
        let bn = |c: usize| BatchNormConfig::new(c).init(device);
        let mut downsample_layers = vec![DownsampleLayer::Stem(BiFormerStem {
            conv1: conv(self.in_chans, e[0] / 2),
            bn1: bn(e[0] / 2),
            conv2: conv(e[0] / 2, e[0]),
            bn2: bn(e[0]),
        })];
        for i in 0..3 {
            downsample_layers.push(DownsampleLayer::Conv(
                ConvNormActConfig::new(e[i], e[i + 1], 3)
                    .with_stride(2)
                    .with_bias(true)
                    .init(device),
            ));
        }
        let stages = (0..4)
            .map(|i| (0..self.depth[i]).map(|_| self.block(i, device)).collect())
            .collect();
        BiFormer {
            downsample_layers,
            stages,
            norm: bn(self.num_features()),
            head: (self.num_classes > 0)
                .then(|| LinearConfig::new(self.num_features(), self.num_classes).init(device)),
        }
    }

    fn block(&self, i: usize, device: &Device) -> BiFormerBlock {
        let dim = self.embed_dim[i];
        let attn = match self.topks[i] {
            k if k > 0 => BlockAttention::Routing(
                BiLevelRoutingAttentionConfig::new(dim)
                    .with_num_heads(self.qk_dims[i] / self.head_dim)
                    .with_n_win(self.n_win)
                    .with_qk_dim(Some(self.qk_dims[i]))
                    .with_qk_scale(self.qk_scale)
                    .with_kv_per_win(self.kv_per_wins[i])
                    .with_kv_downsample_ratio(self.kv_downsample_ratios[i])
                    .with_kv_downsample_mode(self.kv_downsample_mode)
                    .with_topk(k as usize)
                    .with_param_routing(self.param_routing)
                    .with_diff_routing(self.diff_routing)
                    .with_soft_routing(self.soft_routing)
                    .with_side_dwconv(self.side_dwconv)
                    .with_auto_pad(self.auto_pad)
                    .init(device),
            ),
            -1 => BlockAttention::Global(AttentionLePE::new(dim, 8, 0, self.qk_scale, device)),
            -2 => BlockAttention::Global(AttentionLePE::new(
                dim,
                8,
                self.side_dwconv,
                self.qk_scale,
                device,
            )),
            k => panic!("BiFormer: topk {k} is not supported (> 0, -1 or -2)"),
        };
        let k = self.before_attn_dwconv;
        let layer_scale = self.layer_scale_init_value.filter(|&v| v > 0.0);
        let gamma = || layer_scale.map(|v| Param::from_tensor(Tensor::full([dim], v, device)));
        BiFormerBlock {
            pos_embed: (k > 0).then(|| {
                Conv2dConfig::new([dim, dim], [k, k])
                    .with_groups(dim)
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                    .init(device)
            }),
            norm1: LayerNormConfig::new(dim).with_epsilon(1e-6).init(device),
            attn,
            norm2: LayerNormConfig::new(dim).with_epsilon(1e-6).init(device),
            mlp: TokenMlpConfig::new(dim, (self.mlp_ratios[i] * dim as f64) as usize).init(device),
            gamma1: gamma(),
            gamma2: gamma(),
            pre_norm: self.pre_norm,
        }
    }
}

/// Official `AttentionLePE` (and, without `lepe`, `Attention`) of `models/_common.py`: global
/// multi-head self-attention over all tokens plus a depthwise convolution of the input.
/// Parameters `qkv` (no bias), `proj`, `lepe`.
#[derive(Module, Debug)]
pub struct AttentionLePE {
    /// `Linear(C, 3C)` without bias; outputs ordered `(q|k|v, head, head_dim)`.
    pub qkv: Linear,
    /// Output projection.
    pub proj: Linear,
    /// Depthwise `side_dwconv` convolution ("same" padding, with bias) of the input.
    pub lepe: Option<Conv2d>,
    num_heads: usize,
    scale: f64,
}

impl AttentionLePE {
    /// `AttentionLePE(dim, num_heads, qkv_bias=False, qk_scale, side_dwconv)`.
    ///
    /// # Panics
    /// If `dim` is not divisible by `num_heads` or `side_dwconv` is even (and not 0).
    pub fn new(
        dim: usize,
        num_heads: usize,
        side_dwconv: usize,
        qk_scale: Option<f64>,
        device: &Device,
    ) -> Self {
        assert!(
            num_heads > 0 && dim.is_multiple_of(num_heads),
            "AttentionLePE: dim ({dim}) must be divisible by num_heads ({num_heads})"
        );
        assert!(
            side_dwconv == 0 || side_dwconv % 2 == 1,
            "AttentionLePE: side_dwconv must be odd (or 0)"
        );
        let s = side_dwconv;
        AttentionLePE {
            qkv: LinearConfig::new(dim, 3 * dim)
                .with_bias(false)
                .init(device),
            proj: LinearConfig::new(dim, dim).init(device),
            lepe: (s > 0).then(|| {
                Conv2dConfig::new([dim, dim], [s, s])
                    .with_groups(dim)
                    .with_padding(PaddingConfig2d::Explicit(s / 2, s / 2, s / 2, s / 2))
                    .init(device)
            }),
            num_heads,
            scale: qk_scale.unwrap_or(((dim / num_heads) as f64).powf(-0.5)),
        }
    }

    /// `[B, H, W, C] → [B, H, W, C]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, h, w, c] = x.dims();
        let (m, n) = (self.num_heads, h * w);
        let qkv = self
            .qkv
            .forward(x.clone().reshape([b, n, c]))
            .reshape([b, n, 3, m, c / m])
            .permute([2, 0, 3, 1, 4]);
        let part =
            |i: usize| -> Tensor<4> { qkv.clone().narrow(0, i, 1).reshape([b, m, n, c / m]) };
        let attn = softmax(
            part(0)
                .matmul(part(1).swap_dims(2, 3))
                .mul_scalar(self.scale),
            3,
        );
        let mut out: Tensor<3> = attn.matmul(part(2)).swap_dims(1, 2).reshape([b, n, c]);
        if let Some(lepe) = &self.lepe {
            let l = lepe.forward(x.permute([0, 3, 1, 2]));
            out = out + l.reshape([b, c, n]).swap_dims(1, 2);
        }
        self.proj.forward(out).reshape([b, h, w, c])
    }
}

/// The attention of a [`BiFormerBlock`].
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum BlockAttention {
    /// Bi-level routing attention (`topk > 0`).
    Routing(BiLevelRoutingAttention),
    /// Global attention, with (`topk = -2`) or without (`-1`) LePE.
    Global(AttentionLePE),
}

impl BlockAttention {
    /// `[B, H, W, C] → [B, H, W, C]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            BlockAttention::Routing(a) => a.forward(x),
            BlockAttention::Global(a) => a.forward(x),
        }
    }
}

/// Official `Block` (NCHW in and out).
#[derive(Module, Debug)]
pub struct BiFormerBlock {
    /// Depthwise convolutional position embedding (padding 1), added to the input.
    pub pos_embed: Option<Conv2d>,
    /// LayerNorm (ε 1e-6) before the attention.
    pub norm1: LayerNorm,
    /// Routing or global attention.
    pub attn: BlockAttention,
    /// LayerNorm (ε 1e-6) before the MLP.
    pub norm2: LayerNorm,
    /// `Linear → GELU → Linear` (official `mlp.0`, `mlp.3`).
    pub mlp: TokenMlp,
    /// Layer scale of the attention branch.
    pub gamma1: Option<Param<Tensor<1>>>,
    /// Layer scale of the MLP branch.
    pub gamma2: Option<Param<Tensor<1>>>,
    pre_norm: bool,
}

fn scaled(gamma: &Option<Param<Tensor<1>>>, x: Tensor<4>) -> Tensor<4> {
    match gamma {
        Some(g) => x * g.val().unsqueeze::<4>(),
        None => x,
    }
}

impl BiFormerBlock {
    /// `[B, C, H, W] → [B, C, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = match &self.pos_embed {
            Some(conv) => x.clone() + conv.forward(x),
            None => x,
        };
        let x = x.permute([0, 2, 3, 1]);
        let x = if self.pre_norm {
            let x = x.clone() + scaled(&self.gamma1, self.attn.forward(self.norm1.forward(x)));
            x.clone() + scaled(&self.gamma2, self.mlp.forward(self.norm2.forward(x)))
        } else {
            let x = self
                .norm1
                .forward(x.clone() + scaled(&self.gamma1, self.attn.forward(x)));
            self.norm2
                .forward(x.clone() + scaled(&self.gamma2, self.mlp.forward(x)))
        };
        x.permute([0, 3, 1, 2])
    }
}

/// The stem (official `downsample_layers.0`: indices 0, 1, 3, 4; GELU at 2).
#[derive(Module, Debug)]
pub struct BiFormerStem {
    /// 3×3 stride 2 to `embed_dim[0] / 2`.
    pub conv1: Conv2d,
    /// BatchNorm.
    pub bn1: BatchNorm,
    /// 3×3 stride 2 to `embed_dim[0]`.
    pub conv2: Conv2d,
    /// BatchNorm.
    pub bn2: BatchNorm,
}

/// One entry of `downsample_layers`.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum DownsampleLayer {
    /// The stem (stride 4).
    Stem(BiFormerStem),
    /// Convolution and BatchNorm (stride 2; official `downsample_layers.{i}.0` / `.1`).
    Conv(ConvNormAct),
}

impl DownsampleLayer {
    /// NCHW in and out.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            DownsampleLayer::Stem(s) => {
                let x = gelu(s.conv1.forward_bn(x, &s.bn1, false));
                s.conv2.forward_bn(x, &s.bn2, false)
            }
            DownsampleLayer::Conv(d) => d.forward(x),
        }
    }
}

/// BiFormer (official `BiFormer`).
#[derive(Module, Debug)]
pub struct BiFormer {
    /// Stem and the three downsamplers.
    pub downsample_layers: Vec<DownsampleLayer>,
    /// The four stages of blocks (strides 4, 8, 16, 32).
    pub stages: Vec<Vec<BiFormerBlock>>,
    /// Final BatchNorm.
    pub norm: BatchNorm,
    /// Classifier (absent when `num_classes` is 0).
    pub head: Option<Linear>,
}

impl BiFormer {
    fn stage(&self, i: usize, x: Tensor<4>) -> Tensor<4> {
        let x = self.downsample_layers[i].forward(x);
        self.stages[i].iter().fold(x, |x, b| b.forward(x))
    }

    /// Each stage's output, NCHW (strides 4, 8, 16, 32; the last one before `norm`).
    pub fn forward_intermediates(&self, x: Tensor<4>) -> Vec<Tensor<4>> {
        let mut out: Vec<Tensor<4>> = Vec::with_capacity(4);
        let mut x = x;
        for i in 0..self.stages.len() {
            x = self.stage(i, x);
            out.push(x.clone());
        }
        out
    }

    /// The normalised last-stage map `[B, C, H/32, W/32]` (official `forward_features`).
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
        let x = (0..self.stages.len()).fold(x, |x, i| self.stage(i, x));
        self.norm.forward(x)
    }

    /// Global average pool and classifier: `[B, C, h, w] → [B, classes]` (the pooled features
    /// without a classifier).
    pub fn forward_head(&self, features: Tensor<4>) -> Tensor<2> {
        gaze_heads::classifier::classify(features, self.head.as_ref())
    }

    /// Logits `[B, classes]`.
    ///
    /// # Panics
    /// If a routed stage's map is not divisible by `n_win` and the model was built without
    /// `auto_pad`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_head(self.forward_features(x))
    }
}
const BIFORMER: &str =
    "BiFormer: Vision Transformer with Bi-Level Routing Attention (Zhu et al., CVPR 2023)";
const BIFORMER_WEIGHTS: &str = "https://github.com/rayleizhu/BiFormer";

static VARIANTS: &[ModelInfo] = &[
    variant!(
        "biformer_tiny",
        "biformer",
        IMAGENET,
        BIFORMER,
        13_142_760,
        DataConfig::IMAGENET_BICUBIC.with_size(224, 0.875),
        BIFORMER_WEIGHTS,
        BiFormerConfig::biformer_tiny().with_auto_pad(true)
    ),
    variant!(
        "biformer_small",
        "biformer",
        IMAGENET,
        BIFORMER,
        25_536_232,
        DataConfig::IMAGENET_BICUBIC.with_size(224, 0.875),
        BIFORMER_WEIGHTS,
        BiFormerConfig::biformer_small().with_auto_pad(true)
    ),
];

/// The official checkpoint's names (and buffers gaze recomputes instead of loading).
pub fn key_map() -> KeyMap {
    KeyMap::new(&[
        ("^downsample_layers.0.0", "downsample_layers.0.conv1"),
        ("^downsample_layers.0.1", "downsample_layers.0.bn1"),
        ("^downsample_layers.0.3", "downsample_layers.0.conv2"),
        ("^downsample_layers.0.4", "downsample_layers.0.bn2"),
        ("^downsample_layers.{i:d}.0", "downsample_layers.{i:d}.conv"),
        ("^downsample_layers.{i:d}.1", "downsample_layers.{i:d}.bn"),
        ("mlp.0", "mlp.fc1"),
        ("mlp.3", "mlp.fc2"),
    ])
}

crate::classifier_family!(
    BiFormerConfig => BiFormer,
    features: Map,
    key_map: |_| key_map(),
);
