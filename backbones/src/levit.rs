//! LeViT exactly as timm 1.0.31 builds it (`timm/models/levit.py`, `Levit` / `LevitDistilled`,
//! linear token mode `use_conv=False`).
//!
//! * Graham et al., "LeViT: a Vision Transformer in ConvNet's Clothing for Faster Inference",
//!   ICCV 2021.
//!
//! Layout (timm's names, so timm checkpoints load through [`gaze_weights::keymaps::levit`]):
//!
//! * `stem`: `Stem16` = four [`ConvNorm`] 3×3 stride 2 (`conv1`…`conv4`, channels
//!   `C/8, C/4, C/2, C`) with the activation between them (`Stem8`: three, `C/4, C/2, C`);
//!   the map is flattened to `[B, H·W, C]` tokens (row-major).
//! * `stages.{i}` ([`LevitStage`]): for `i > 0` a `downsample` ([`LevitDownsample`]: timm's
//!   `AttentionDownsample` with `in_dim // key_dim` heads, `attn_ratio` 4, stride 2, then a
//!   residual [`LevitMlp`] with ratio 2), then `blocks.{j}` ([`LevitBlock`]: residual
//!   [`LevitAttention`], residual [`LevitMlp`]).
//! * mean over the tokens, then `head` (`NormLinear`: BatchNorm1d + Linear) and, for the
//!   distilled models (every registered `levit_*`), `head_dist`; in eval the logits are
//!   `(head(x) + head_dist(x)) / 2` (timm's `LevitDistilled.forward_head` outside distilled
//!   training).
//!
//! **Fixed resolution.** The attention-bias tables have one column per token of the
//! configured map (`img_size / stem stride`, then `⌈r/2⌉` per stage), and timm 1.0.31 neither
//! interpolates them nor recomputes the indices per forward (its default cfgs say
//! `fixed_input_size=True`). So, as in timm, an input is accepted exactly when the stem maps it
//! to the configured token map — e.g. 209…224 pixels per side for `img_size` 224 with the
//! stride-16 stem (each stride-2 3×3 conv with padding 1 gives `⌊(H-1)/2⌋+1`). Any other size
//! panics with a message naming the accepted map (timm fails there with a shape error).

use crate::model::InputSize;
#[allow(unused_imports)]
use crate::registry::{DataConfig, ModelInfo, Task, IMAGENET, TIMM_WEIGHTS};
use crate::variant;
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::prelude::*;
use gaze_blocks::cpu_kernels::batch_norm;
use gaze_blocks::linear::{Linear, LinearConfig};
use gaze_blocks::{
    Activation, ConvNorm, ConvNormConfig, LevitAttention, LevitAttentionConfig,
    LevitAttentionDownsample, LevitAttentionDownsampleConfig, LinearNorm, LinearNormConfig,
};
use gaze_weights::KeyMap;

use crate::features::FeatureInfo;

/// timm's `stem_type`.
#[derive(Config, Debug, PartialEq, Eq, Copy)]
pub enum LevitStemType {
    /// `'s16'`: four stride-2 convolutions (every registered model).
    S16,
    /// `'s8'`: three stride-2 convolutions (timm's `levit_*_s8` experiments).
    S8,
}

impl LevitStemType {
    /// Stride of the stem.
    pub fn stride(self) -> usize {
        match self {
            LevitStemType::S16 => 16,
            LevitStemType::S8 => 8,
        }
    }
}

/// Configuration of [`Levit`]: the arguments of timm's `Levit` (per-stage tuples as vectors;
/// a single value is broadcast like timm's `to_ntuple`), plus `distilled` (`LevitDistilled`,
/// timm's `create_levit(distilled=True)` default).
#[derive(Config, Debug)]
pub struct LevitConfig {
    /// Input size `[H, W]` the attention biases are built for.
    #[config(default = "[224, 224]")]
    pub img_size: [usize; 2],
    /// Input channels.
    #[config(default = 3)]
    pub in_chans: usize,
    /// Classes (0: no head, `forward` returns the pooled features).
    #[config(default = 1000)]
    pub num_classes: usize,
    /// Channels per stage.
    pub embed_dim: Vec<usize>,
    /// Query/key width per head.
    pub key_dim: usize,
    /// Blocks per stage.
    pub depth: Vec<usize>,
    /// Heads per stage (one value: every stage).
    pub num_heads: Vec<usize>,
    /// Value/key width ratio of the blocks' attention per stage (one value: every stage).
    #[config(default = "vec![2.0]")]
    pub attn_ratio: Vec<f64>,
    /// MLP hidden ratio of the blocks per stage (one value: every stage).
    #[config(default = "vec![2.0]")]
    pub mlp_ratio: Vec<f64>,
    /// Stem type.
    #[config(default = "LevitStemType::S16")]
    pub stem_type: LevitStemType,
    /// timm's `down_op`: `"subsample"`, the attention downsample at the start of every stage
    /// after the first (the only value with which timm builds a working multi-stage model).
    #[config(default = "String::from(\"subsample\")")]
    pub down_op: String,
    /// Activation (`act_layer`, default `'hard_swish'`).
    #[config(default = "Activation::HardSwish")]
    pub act_layer: Activation,
    /// Activation in the attention `proj` (`attn_act_layer`; `None`: `act_layer`).
    #[config(default = "None")]
    pub attn_act_layer: Option<Activation>,
    /// `LevitDistilled` (adds `head_dist`, averaged with `head` at inference).
    #[config(default = true)]
    pub distilled: bool,
}

/// timm's `NormLinear`: `BatchNorm1d` then `Linear` (dropout 0). Keys `bn.*`, `linear.*`.
#[derive(Module, Debug)]
pub struct NormLinear {
    /// `nn.BatchNorm1d(in)`.
    pub bn: BatchNorm,
    /// `nn.Linear(in, out)`.
    pub linear: Linear,
}

impl NormLinear {
    /// `[B, in] → [B, out]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.linear.forward(batch_norm(&self.bn, x))
    }
}

/// timm's `Stem16` / `Stem8`: `conv1`…`conv4` (`conv4` absent for `Stem8`), activation between.
#[derive(Module, Debug)]
pub struct LevitStem {
    /// First conv (`in → C/8`, or `C/4` for s8).
    pub conv1: ConvNorm,
    /// Second conv.
    pub conv2: ConvNorm,
    /// Third conv.
    pub conv3: ConvNorm,
    /// Fourth conv (s16 only).
    pub conv4: Option<ConvNorm>,
    /// Activation between the convs.
    #[module(skip)]
    pub act: Activation,
}

impl LevitStem {
    /// `[B, in, H, W] → [B, C, H/s, W/s]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.act.apply(self.conv1.forward(x));
        let x = self.act.apply(self.conv2.forward(x));
        let x = self.conv3.forward(x);
        match &self.conv4 {
            Some(conv4) => conv4.forward(self.act.apply(x)),
            None => x,
        }
    }
}

/// timm's `LevitMlp`: `ln1` → activation → `ln2` (linear mode).
#[derive(Module, Debug)]
pub struct LevitMlp {
    /// `LinearNorm(dim, hidden)`.
    pub ln1: LinearNorm,
    /// `LinearNorm(hidden, dim)` (BatchNorm weight initialised to 0).
    pub ln2: LinearNorm,
    /// Activation.
    #[module(skip)]
    pub act: Activation,
}

impl LevitMlp {
    fn new(dim: usize, hidden: usize, act: Activation, device: &Device) -> Self {
        Self {
            ln1: LinearNormConfig::new(dim, hidden).init(device),
            ln2: LinearNormConfig::new(hidden, dim)
                .with_bn_weight_init(0.0)
                .init(device),
            act,
        }
    }

    /// `[B, N, dim] → [B, N, dim]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.ln2.forward(self.act.apply(self.ln1.forward(x)))
    }
}

/// timm's `LevitDownsample`: `x = attn_downsample(x); x + mlp(x)`.
#[derive(Module, Debug)]
pub struct LevitDownsample {
    /// Shrinking attention (stride 2).
    pub attn_downsample: LevitAttentionDownsample,
    /// Residual MLP (ratio 2).
    pub mlp: LevitMlp,
}

impl LevitDownsample {
    /// `[B, H·W, in] → [B, ⌈H/2⌉·⌈W/2⌉, out]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let x = self.attn_downsample.forward(x);
        x.clone() + self.mlp.forward(x)
    }
}

/// timm's `LevitBlock`: residual attention, residual MLP.
#[derive(Module, Debug)]
pub struct LevitBlock {
    /// Attention with attention biases.
    pub attn: LevitAttention,
    /// MLP.
    pub mlp: LevitMlp,
}

impl LevitBlock {
    /// `[B, N, dim] → [B, N, dim]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let x = x.clone() + self.attn.forward(x);
        x.clone() + self.mlp.forward(x)
    }
}

/// timm's `LevitStage`: optional downsample, then the blocks.
#[derive(Module, Debug)]
pub struct LevitStage {
    /// Attention downsample (stages after the first).
    pub downsample: Option<LevitDownsample>,
    /// Blocks.
    pub blocks: Vec<LevitBlock>,
    /// Output token map `[h, w]`.
    #[module(skip)]
    pub resolution: [usize; 2],
}

impl LevitStage {
    /// Tokens in, tokens out (`resolution` map).
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let x = match &self.downsample {
            Some(d) => d.forward(x),
            None => x,
        };
        self.blocks.iter().fold(x, |x, b| b.forward(x))
    }
}

/// The LeViT network (timm's `Levit`, or `LevitDistilled` when `head_dist` is present).
#[derive(Module, Debug)]
pub struct Levit {
    /// Convolutional stem.
    pub stem: LevitStem,
    /// Stages.
    pub stages: Vec<LevitStage>,
    /// Classifier (absent when `num_classes` is 0).
    pub head: Option<NormLinear>,
    /// Distillation classifier (`LevitDistilled` with classes only).
    pub head_dist: Option<NormLinear>,
    /// Token map after the stem `[h, w]` (`img_size / stem stride`).
    #[module(skip)]
    pub resolution: [usize; 2],
}

fn broadcast<T: Copy>(v: &[T], n: usize, what: &str) -> Vec<T> {
    match v.len() {
        1 => vec![v[0]; n],
        len if len == n => v.to_vec(),
        len => panic!("LevitConfig: {what} has {len} entries for {n} stages"),
    }
}

fn norm_linear(dim: usize, classes: usize, device: &Device) -> NormLinear {
    NormLinear {
        bn: BatchNormConfig::new(dim).init(device),
        linear: LinearConfig::new(dim, classes).init(device),
    }
}

impl LevitConfig {
    fn cfg(
        embed_dim: [usize; 3],
        key_dim: usize,
        num_heads: [usize; 3],
        depth: [usize; 3],
    ) -> Self {
        Self::new(
            embed_dim.to_vec(),
            key_dim,
            depth.to_vec(),
            num_heads.to_vec(),
        )
    }

    /// timm `levit_128s` (7.8 M parameters).
    pub fn levit_128s() -> Self {
        Self::cfg([128, 256, 384], 16, [4, 6, 8], [2, 3, 4])
    }

    /// timm `levit_128` (9.2 M).
    pub fn levit_128() -> Self {
        Self::cfg([128, 256, 384], 16, [4, 8, 12], [4, 4, 4])
    }

    /// timm `levit_192` (11.0 M).
    pub fn levit_192() -> Self {
        Self::cfg([192, 288, 384], 32, [3, 5, 6], [4, 4, 4])
    }

    /// timm `levit_256` (18.9 M).
    pub fn levit_256() -> Self {
        Self::cfg([256, 384, 512], 32, [4, 6, 8], [4, 4, 4])
    }

    /// timm `levit_384` (39.1 M).
    pub fn levit_384() -> Self {
        Self::cfg([384, 512, 768], 32, [6, 9, 12], [4, 4, 4])
    }

    /// Channels entering the classifier.
    pub fn num_features(&self) -> usize {
        *self.embed_dim.last().expect("LeViT has stages")
    }

    /// Token map after the stem (timm's `img_size // stride`).
    pub fn resolution(&self) -> [usize; 2] {
        self.img_size.map(|s| s / self.stem_type.stride())
    }

    /// Channels and strides of the stage outputs (timm's `feature_info`: `stages.{i}`).
    pub fn feature_info(&self) -> Vec<FeatureInfo> {
        const NAMES: [&str; 8] = [
            "stages.0", "stages.1", "stages.2", "stages.3", "stages.4", "stages.5", "stages.6",
            "stages.7",
        ];
        let mut stride = self.stem_type.stride();
        self.embed_dim
            .iter()
            .enumerate()
            .map(|(i, &channels)| {
                if i > 0 {
                    stride *= 2;
                }
                FeatureInfo {
                    channels,
                    reduction: stride,
                    module: NAMES[i],
                }
            })
            .collect()
    }

    /// Builds the network with timm's initialisation of the blocks (zero attention biases,
    /// zero BatchNorm weight at the end of each residual branch).
    pub fn init(&self, device: &Device) -> Levit {
        let n = self.embed_dim.len();
        assert_eq!(
            self.down_op, "subsample",
            "LevitConfig: down_op must be \"subsample\""
        );
        assert!(n > 0 && n <= 8, "LeViT has 1 to 8 stages");
        assert_eq!(self.depth.len(), n, "LevitConfig: depth per stage");
        let num_heads = broadcast(&self.num_heads, n, "num_heads");
        let attn_ratio = broadcast(&self.attn_ratio, n, "attn_ratio");
        let mlp_ratio = broadcast(&self.mlp_ratio, n, "mlp_ratio");
        let act = self.act_layer;
        let attn_act = self.attn_act_layer.unwrap_or(act);
        let c0 = self.embed_dim[0];

        let conv = |cin: usize, cout: usize| {
            ConvNormConfig::new(cin, cout)
                .with_kernel_size(3)
                .with_stride(2)
                .with_padding(1)
                .init(device)
        };
        let stem = match self.stem_type {
            LevitStemType::S16 => LevitStem {
                conv1: conv(self.in_chans, c0 / 8),
                conv2: conv(c0 / 8, c0 / 4),
                conv3: conv(c0 / 4, c0 / 2),
                conv4: Some(conv(c0 / 2, c0)),
                act,
            },
            LevitStemType::S8 => LevitStem {
                conv1: conv(self.in_chans, c0 / 4),
                conv2: conv(c0 / 4, c0 / 2),
                conv3: conv(c0 / 2, c0),
                conv4: None,
                act,
            },
        };

        let mut resolution = self.resolution();
        let mut in_dim = c0;
        let mut stages = Vec::with_capacity(n);
        for i in 0..n {
            let dim = self.embed_dim[i];
            let downsample = if i > 0 {
                let attn = LevitAttentionDownsampleConfig::new(in_dim, dim, self.key_dim)
                    .with_num_heads(in_dim / self.key_dim)
                    .with_attn_ratio(4.0)
                    .with_stride(2)
                    .with_resolution(resolution)
                    .with_act_layer(attn_act);
                resolution = attn.resolution_out();
                Some(LevitDownsample {
                    attn_downsample: attn.init(device),
                    mlp: LevitMlp::new(dim, (dim as f64 * 2.0) as usize, act, device),
                })
            } else {
                None
            };
            let blocks = (0..self.depth[i])
                .map(|_| LevitBlock {
                    attn: LevitAttentionConfig::new(dim, self.key_dim)
                        .with_num_heads(num_heads[i])
                        .with_attn_ratio(attn_ratio[i])
                        .with_resolution(resolution)
                        .with_act_layer(attn_act)
                        .init(device),
                    mlp: LevitMlp::new(dim, (dim as f64 * mlp_ratio[i]) as usize, act, device),
                })
                .collect();
            stages.push(LevitStage {
                downsample,
                blocks,
                resolution,
            });
            in_dim = dim;
        }

        let classes = self.num_classes;
        let head = (classes > 0).then(|| norm_linear(in_dim, classes, device));
        let head_dist =
            (self.distilled && classes > 0).then(|| norm_linear(in_dim, classes, device));
        Levit {
            stem,
            stages,
            head,
            head_dist,
            resolution: self.resolution(),
        }
    }
}

fn tokens_to_nchw(x: Tensor<3>, [h, w]: [usize; 2]) -> Tensor<4> {
    let [b, n, c] = x.dims();
    assert_eq!(n, h * w);
    x.swap_dims(1, 2).reshape([b, c, h, w])
}

impl Levit {
    /// Stem and flatten: `[B, 3, H, W] → [B, h·w, C]`.
    ///
    /// # Panics
    /// When the stem output is not the configured token map (see the module docs).
    fn forward_tokens(&self, x: Tensor<4>) -> Tensor<3> {
        let [_, _, ih, iw] = x.dims();
        let x = self.stem.forward(x);
        let [b, c, h, w] = x.dims();
        let [rh, rw] = self.resolution;
        assert!(
            [h, w] == self.resolution,
            "LeViT is built for a fixed input size: the stem maps this {ih}×{iw} input to \
             {h}×{w} tokens, but the attention biases were built for {rh}×{rw} (img_size / stem \
             stride); timm 1.0.31 does not resize them either"
        );
        gaze_blocks::layers::contiguous(x.reshape([b, c, h * w]).swap_dims(1, 2))
    }

    /// Every stage's output as NCHW (strides 16, 32, 64 for the s16 stem), as timm's
    /// `forward_intermediates(…, intermediates_only=True)`.
    pub fn forward_intermediates(&self, x: Tensor<4>) -> Vec<Tensor<4>> {
        let mut x = self.forward_tokens(x);
        let mut out = Vec::with_capacity(self.stages.len());
        for stage in &self.stages {
            x = stage.forward(x);
            out.push(tokens_to_nchw(x.clone(), stage.resolution));
        }
        out
    }

    /// The last stage's tokens as a map `[B, C, h, w]`.
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self
            .stages
            .iter()
            .fold(self.forward_tokens(x), |x, s| s.forward(x));
        let res = self.stages.last().expect("LeViT has stages").resolution;
        tokens_to_nchw(x, res)
    }

    /// Mean over the tokens, then the head(s): `[B, C, h, w] → [B, classes]` (the pooled
    /// features without a head; `(head + head_dist) / 2` for the distilled models).
    pub fn forward_head(&self, features: Tensor<4>) -> Tensor<2> {
        let pooled = gaze_heads::classifier::global_avg_pool(features);
        match (&self.head, &self.head_dist) {
            (Some(head), Some(dist)) => {
                (head.forward(pooled.clone()) + dist.forward(pooled)).div_scalar(2.0)
            }
            (Some(head), None) => head.forward(pooled),
            _ => pooled,
        }
    }

    /// Logits `[B, classes]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_head(self.forward_features(x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_feature_info() {
        let device = Device::flex();
        let config = LevitConfig::new(vec![16, 24, 32], 8, vec![1, 1, 1], vec![2])
            .with_img_size([64, 48])
            .with_num_classes(5);
        let net = config.init(&device);
        let x = Tensor::<4>::ones([2, 3, 64, 48], &device);
        let feats = net.forward_intermediates(x.clone());
        let info = config.feature_info();
        let dims: Vec<_> = feats.iter().map(|f| f.dims()).collect();
        assert_eq!(dims, vec![[2, 16, 4, 3], [2, 24, 2, 2], [2, 32, 1, 1]]);
        assert_eq!(
            info.iter().map(|i| i.reduction).collect::<Vec<_>>(),
            [16, 32, 64]
        );
        assert_eq!(net.forward(x).dims(), [2, 5]);
    }

    #[test]
    #[should_panic(expected = "fixed input size")]
    fn other_sizes_are_refused() {
        let device = Device::flex();
        let net = LevitConfig::new(vec![16, 24], 8, vec![1, 1], vec![2])
            .with_img_size([64, 64])
            .init(&device);
        net.forward(Tensor::<4>::ones([1, 3, 96, 96], &device));
    }
}
const LEVIT: &str = "LeViT: a Vision Transformer in ConvNet's Clothing for Faster Inference (Graham et al., ICCV 2021)";

static VARIANTS: &[ModelInfo] = &[
    variant!(
        "levit_128s",
        "levit",
        IMAGENET,
        LEVIT,
        7_777_058,
        DataConfig::IMAGENET_BICUBIC,
        TIMM_WEIGHTS,
        LevitConfig::levit_128s()
    ),
    variant!(
        "levit_128",
        "levit",
        IMAGENET,
        LEVIT,
        9_213_936,
        DataConfig::IMAGENET_BICUBIC,
        TIMM_WEIGHTS,
        LevitConfig::levit_128()
    ),
    variant!(
        "levit_192",
        "levit",
        IMAGENET,
        LEVIT,
        10_947_069,
        DataConfig::IMAGENET_BICUBIC,
        TIMM_WEIGHTS,
        LevitConfig::levit_192()
    ),
    variant!(
        "levit_256",
        "levit",
        IMAGENET,
        LEVIT,
        18_893_876,
        DataConfig::IMAGENET_BICUBIC,
        TIMM_WEIGHTS,
        LevitConfig::levit_256()
    ),
    variant!(
        "levit_384",
        "levit",
        IMAGENET,
        LEVIT,
        39_128_836,
        DataConfig::IMAGENET_BICUBIC,
        TIMM_WEIGHTS,
        LevitConfig::levit_384()
    ),
];

/// The official checkpoint's names (and buffers gaze recomputes instead of loading).
pub fn key_map() -> KeyMap {
    KeyMap::identity().ignoring(&[r"(^|\.)attention_bias_idxs$"])
}

crate::classifier_family!(
    LevitConfig => Levit,
    features: Map,
    key_map: |_| key_map(),
    input_size: |c| InputSize::Fixed(c.img_size),
);
