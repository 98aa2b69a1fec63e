//! HAT: "Activating More Pixels in Image Super-Resolution Transformer" (Chen, Wang, Zhou, Qiao,
//! Dong; CVPR 2023). Official code: github.com/XPixelGroup/HAT (`hat/archs/hat_arch.py` `HAT`,
//! `hat/models/hat_model.py` `HATModel`), the classical-SR models of `options/test/HAT_SRx*.yml`
//! and `HAT-S_SRx*.yml`.
//!
//! Layout (official names):
//!
//! 1. `x ← (x − mean) · img_range` (mean: DIV2K's `(0.4488, 0.4371, 0.4040)` for RGB, none
//!    otherwise; `img_range` 1), `f = conv_first(x)` (3×3);
//! 2. deep features on channels-last tokens: `patch_embed.norm` (LayerNorm), then the residual
//!    hybrid attention groups `layers.{i}` ([`Rhag`]): `residual_group.blocks.{j}`
//!    ([`Hab`], window `M` = 16, unshifted for even `j`, shifted by `M / 2` for odd `j`),
//!    `residual_group.overlap_attn` ([`Ocab`], overlapping windows of `1.5 M`), and a 3×3
//!    `conv` with the group's skip; then `norm` (LayerNorm);
//! 3. `conv_after_body(deep) + f` — the low-resolution trunk features, [`Hat::forward_features`];
//! 4. reconstruction: `conv_before_upsample` (3×3 to `num_feat` = 64, LeakyReLU slope **0.01**,
//!    `nn.LeakyReLU()`'s default), `upsample` (EDSR [`Upsampler`]), `conv_last` (3×3), then
//!    `/ img_range + mean`.
//!
//! **Any input size.** The windows must tile the map, so the official inference
//! (`HATModel.pre_process` / `post_process`, which `hat/test.py` runs; `HAT.forward` itself does
//! not pad) reflect-pads the LR image at the bottom and right to multiples of `window_size`
//! (`F.pad(lq, (0, pad_w, 0, pad_h), 'reflect')`) and crops the output back to `h·s × w·s`;
//! [`Hat::forward`] does the same internally. PyTorch's reflection needs the padding to be
//! smaller than the side (a side of at least `M / 2 + 1` = 9 pixels); smaller inputs, which the
//! official code rejects, are reflected repeatedly (a 1-pixel side is replicated)
//! ([`reflect_pad_to_multiple`]). The trunk features are those of the padded image.
//!
//! The model-level `relative_position_index_SA` / `relative_position_index_OCA` buffers of the
//! checkpoints are recomputed by every block (identical values, see [`gaze_blocks::ocab`]) and
//! ignored by [`key_map`]; the shifted-window mask is built per forward from the padded size,
//! as the official `calculate_mask(x_size)` does.

use crate::family::Family;
#[allow(unused_imports)]
use crate::registry::{DataConfig, ModelInfo, Task, IMAGENET, TIMM_WEIGHTS};
use crate::variant;
use burn::prelude::*;
use burn::tensor::ops::PadMode;
use gaze_blocks::conv::Conv2d;
use gaze_blocks::hab::{hat_attn_mask, Hab, HabConfig, HAT_LN_EPS};
use gaze_blocks::layer_norm::{LayerNorm, LayerNormConfig};
use gaze_blocks::layers::conv_same;
use gaze_blocks::ocab::{Ocab, OcabConfig};
use gaze_heads::{Upsampler, UpsamplerConfig};
use gaze_weights::KeyMap;

/// The DIV2K RGB mean the official HAT subtracts from (and adds back to) 3-channel images.
pub const HAT_RGB_MEAN: [f32; 3] = [0.4488, 0.4371, 0.4040];

/// The negative slope of `conv_before_upsample`'s `nn.LeakyReLU()` (PyTorch's default).
pub const HAT_LRELU_SLOPE: f64 = 0.01;

/// Configuration of [`Hat`], with the official argument names; the defaults are the published
/// HAT ×4 (`options/test/HAT_SRx4.yml`, 20.77 M parameters).
#[derive(Config, Debug)]
pub struct HatConfig {
    /// Upsampling factor (`upscale`): 2, 3, 4 (any power of two, or 3).
    #[config(default = 4)]
    pub upscale: usize,
    /// Image channels in and out (`in_chans`).
    #[config(default = 3)]
    pub in_chans: usize,
    /// Token width (`embed_dim`).
    #[config(default = 180)]
    pub embed_dim: usize,
    /// HABs per residual hybrid attention group (`depths`).
    #[config(default = "vec![6; 6]")]
    pub depths: Vec<usize>,
    /// Heads per group (`num_heads`).
    #[config(default = "vec![6; 6]")]
    pub num_heads: Vec<usize>,
    /// Window side `M` (`window_size`); inputs are padded to multiples of it.
    #[config(default = 16)]
    pub window_size: usize,
    /// CAB narrowing factor (`compress_ratio`).
    #[config(default = 3)]
    pub compress_ratio: usize,
    /// CAB channel-gate squeeze factor (`squeeze_factor`).
    #[config(default = 30)]
    pub squeeze_factor: usize,
    /// Weight of the CAB branch in each HAB (`conv_scale`).
    #[config(default = 0.01)]
    pub conv_scale: f64,
    /// OCAB overlap ratio (`overlap_ratio`).
    #[config(default = 0.5)]
    pub overlap_ratio: f64,
    /// MLP hidden width ratio of the HABs and OCABs (`mlp_ratio`).
    #[config(default = 2.0)]
    pub mlp_ratio: f64,
    /// Whether the `qkv` projections have a bias (`qkv_bias`).
    #[config(default = true)]
    pub qkv_bias: bool,
    /// The scale the network works at (`img_range`, 1 in every released model).
    #[config(default = 1.0)]
    pub img_range: f64,
    /// Width of the reconstruction tail; the official `HAT` hard-codes 64 (a narrower tail
    /// only serves the small test fixtures).
    #[config(default = 64)]
    pub num_feat: usize,
}

impl HatConfig {
    /// HAT (`options/test/HAT_SRx{scale}.yml`): embed 180, 6 × 6 HABs, 6 heads, window 16,
    /// CAB compress 3 / squeeze 30.
    pub fn hat(scale: usize) -> Self {
        Self::new().with_upscale(scale)
    }

    /// HAT-S (`options/test/HAT-S_SRx{scale}.yml`): embed 144, CAB compress 24 / squeeze 24,
    /// otherwise HAT's.
    pub fn hat_s(scale: usize) -> Self {
        Self::new()
            .with_upscale(scale)
            .with_embed_dim(144)
            .with_compress_ratio(24)
            .with_squeeze_factor(24)
    }

    /// Builds the network with random weights.
    ///
    /// # Panics
    /// If `depths` and `num_heads` differ in length, or the scale is neither 3 nor a power of
    /// two.
    pub fn init(&self, device: &Device) -> Hat {
        assert_eq!(
            self.depths.len(),
            self.num_heads.len(),
            "HAT: one head count per group"
        );
        let (c, m) = (self.embed_dim, self.window_size);
        let ln = || {
            LayerNormConfig::new(c)
                .with_epsilon(HAT_LN_EPS)
                .init(device)
        };
        let layers = self
            .depths
            .iter()
            .zip(&self.num_heads)
            .map(|(&depth, &heads)| Rhag {
                residual_group: AttenBlocks {
                    blocks: (0..depth)
                        .map(|j| {
                            HabConfig::new(c, heads, m)
                                .with_shift_size(if j % 2 == 0 { 0 } else { m / 2 })
                                .with_compress_ratio(self.compress_ratio)
                                .with_squeeze_factor(self.squeeze_factor)
                                .with_conv_scale(self.conv_scale)
                                .with_mlp_ratio(self.mlp_ratio)
                                .with_qkv_bias(self.qkv_bias)
                                .init(device)
                        })
                        .collect(),
                    overlap_attn: OcabConfig::new(c, heads, m)
                        .with_overlap_ratio(self.overlap_ratio)
                        .with_mlp_ratio(self.mlp_ratio)
                        .with_qkv_bias(self.qkv_bias)
                        .with_norm_eps(HAT_LN_EPS)
                        .init(device),
                },
                conv: conv_same(c, c, 3, true, device),
            })
            .collect();
        Hat {
            conv_first: conv_same(self.in_chans, c, 3, true, device),
            patch_embed: HatPatchEmbed { norm: ln() },
            layers,
            norm: ln(),
            conv_after_body: conv_same(c, c, 3, true, device),
            conv_before_upsample: conv_same(c, self.num_feat, 3, true, device),
            upsample: UpsamplerConfig::new(self.num_feat, self.upscale).init(device),
            conv_last: conv_same(self.num_feat, self.in_chans, 3, true, device),
            window_size: m,
            upscale: self.upscale,
            in_chans: self.in_chans,
            img_range: self.img_range,
        }
    }
}

/// The official `PatchEmbed` with `patch_size` 1: a LayerNorm over the channels of the
/// flattened map (here on the channels-last map). Keys `norm.*`.
#[derive(Module, Debug)]
pub struct HatPatchEmbed {
    /// LayerNorm over channels (`patch_norm=True`).
    pub norm: LayerNorm,
}

/// The HABs and the OCAB of one group (official `AttenBlocks`). Keys `blocks.{j}.*`,
/// `overlap_attn.*`.
#[derive(Module, Debug)]
pub struct AttenBlocks {
    /// The hybrid attention blocks, alternately unshifted and shifted.
    pub blocks: Vec<Hab>,
    /// The overlapping cross-attention block closing the group.
    pub overlap_attn: Ocab,
}

/// Residual hybrid attention group (official `RHAG`, `resi_connection='1conv'`):
/// `x + conv(residual_group(x))`. Keys `residual_group.*`, `conv.*`.
#[derive(Module, Debug)]
pub struct Rhag {
    /// HABs then the OCAB.
    pub residual_group: AttenBlocks,
    /// 3×3 convolution before the group's skip.
    pub conv: Conv2d,
}

impl Rhag {
    /// `[B, H, W, C] → [B, H, W, C]`; `mask` is the shifted HABs' attention mask.
    pub fn forward(&self, x: Tensor<4>, mask: &Tensor<3>) -> Tensor<4> {
        let y = self
            .residual_group
            .blocks
            .iter()
            .fold(x.clone(), |y, block| block.forward(y, Some(mask.clone())));
        let y = self.residual_group.overlap_attn.forward(y);
        let y = self
            .conv
            .forward(y.permute([0, 3, 1, 2]))
            .permute([0, 2, 3, 1]);
        y + x
    }
}

/// The HAT network (see the module docs).
#[derive(Module, Debug)]
pub struct Hat {
    /// 3×3 shallow feature convolution.
    pub conv_first: Conv2d,
    /// The LayerNorm on the embedded tokens.
    pub patch_embed: HatPatchEmbed,
    /// The residual hybrid attention groups.
    pub layers: Vec<Rhag>,
    /// LayerNorm after the groups.
    pub norm: LayerNorm,
    /// 3×3 convolution before the long skip.
    pub conv_after_body: Conv2d,
    /// 3×3 convolution to `num_feat` before the LeakyReLU (official `conv_before_upsample.0`).
    pub conv_before_upsample: Conv2d,
    /// Pixel-shuffle upsampler (official `upsample.{2i}`).
    pub upsample: Upsampler,
    /// 3×3 convolution to the image.
    pub conv_last: Conv2d,
    /// Window side `M` (inputs are padded to multiples of it).
    pub window_size: usize,
    /// Upsampling factor.
    pub upscale: usize,
    /// Image channels (the mean is subtracted for 3 only).
    pub in_chans: usize,
    /// `img_range`.
    pub img_range: f64,
}

/// Pads `[N, C, H, W]` at the bottom and right to multiples of `multiple` by reflection
/// (PyTorch's `'reflect'`: the edge pixel is not repeated). Exactly `F.pad(x, (0, pw, 0, ph),
/// 'reflect')` whenever the padding is smaller than the side; otherwise (which PyTorch rejects)
/// it reflects repeatedly, each time by at most the current side − 1, and replicates a
/// 1-pixel side.
pub fn reflect_pad_to_multiple(x: Tensor<4>, multiple: usize) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    let mut x = x;
    let mut cur = h;
    let target = h.div_ceil(multiple) * multiple;
    while cur < target {
        let step = (target - cur).min(cur.saturating_sub(1));
        if step == 0 {
            x = x.pad((0, 0, 0, target - cur), PadMode::Edge);
            cur = target;
        } else {
            x = x.pad((0, 0, 0, step), PadMode::Reflect);
            cur += step;
        }
    }
    let mut cur = w;
    let target = w.div_ceil(multiple) * multiple;
    while cur < target {
        let step = (target - cur).min(cur.saturating_sub(1));
        if step == 0 {
            x = x.pad((0, target - cur, 0, 0), PadMode::Edge);
            cur = target;
        } else {
            x = x.pad((0, step, 0, 0), PadMode::Reflect);
            cur += step;
        }
    }
    x
}

impl Hat {
    /// The mean `[1, 3, 1, 1]` for RGB models, `None` otherwise (the official zero mean).
    fn mean(&self, device: &Device) -> Option<Tensor<4>> {
        (self.in_chans == 3).then(|| {
            Tensor::from_data(TensorData::new(HAT_RGB_MEAN.to_vec(), [1, 3, 1, 1]), device)
        })
    }

    /// The deep feature extractor on `conv_first`'s output `[B, C, H, W]` (sides multiples of
    /// the window): the official `HAT.forward_features` (patch embedding norm, groups, norm).
    pub fn forward_deep(&self, f: Tensor<4>) -> Tensor<4> {
        let [_, _, h, w] = f.dims();
        let device = f.device();
        let m = self.window_size;
        let mask = hat_attn_mask(h, w, m, m / 2, &device);
        let x = self.patch_embed.norm.forward(f.permute([0, 2, 3, 1]));
        let x = self
            .layers
            .iter()
            .fold(x, |x, layer| layer.forward(x, &mask));
        self.norm.forward(x).permute([0, 3, 1, 2])
    }

    /// Low-resolution trunk features `[N, embed_dim, H_p, W_p]` of the input reflect-padded
    /// to multiples of the window: `conv_after_body(deep(f)) + f`, `f = conv_first((x − mean) ·
    /// img_range)`.
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
        let device = x.device();
        let x = reflect_pad_to_multiple(x, self.window_size);
        let x = match self.mean(&device) {
            Some(mean) => x - mean,
            None => x,
        };
        let x = if self.img_range == 1.0 {
            x
        } else {
            x.mul_scalar(self.img_range)
        };
        let f = self.conv_first.forward(x);
        self.conv_after_body.forward(self.forward_deep(f.clone())) + f
    }

    /// Reconstruction from the (padded) trunk features, cropped to `lr`'s size times the scale.
    pub fn forward_head(&self, features: Tensor<4>, lr: Tensor<4>) -> Tensor<4> {
        let [_, _, h, w] = lr.dims();
        let device = features.device();
        let y = gaze_blocks::cpu_kernels::leaky_relu(
            self.conv_before_upsample.forward(features),
            HAT_LRELU_SLOPE,
        );
        let y = self.conv_last.forward(self.upsample.forward(y));
        let y = if self.img_range == 1.0 {
            y
        } else {
            y.div_scalar(self.img_range)
        };
        let y = match self.mean(&device) {
            Some(mean) => y + mean,
            None => y,
        };
        let [n, c, _, _] = y.dims();
        let s = self.upscale;
        y.slice([0..n, 0..c, 0..h * s, 0..w * s])
    }

    /// `[N, C, h, w]` in [0, 1] → `[N, C, h·s, w·s]` (not clamped).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let features = self.forward_features(x.clone());
        self.forward_head(features, x)
    }
}

const HAT_PAPER: &str =
    "Activating More Pixels in Image Super-Resolution Transformer (Chen et al., CVPR 2023)";
/// The official README's download folder (HAT_SRx{2,3,4}.pth, HAT-S_SRx{2,3,4}.pth, …;
/// BasicSR checkpoints under `params_ema`).
const HAT_WEIGHTS: &str =
    "https://drive.google.com/drive/folders/1HpmReFfoUqUbnAOQ7rvOeNU3uf_m69w0";

static VARIANTS: &[ModelInfo] = &[
    variant!(
        "hat_x2",
        "hat",
        Task::SuperResolution { scale: 2 },
        HAT_PAPER,
        20_624_795,
        DataConfig::UnitRange,
        HAT_WEIGHTS,
        HatConfig::hat(2)
    ),
    variant!(
        "hat_x3",
        "hat",
        Task::SuperResolution { scale: 3 },
        HAT_PAPER,
        20_809_435,
        DataConfig::UnitRange,
        HAT_WEIGHTS,
        HatConfig::hat(3)
    ),
    variant!(
        "hat_x4",
        "hat",
        Task::SuperResolution { scale: 4 },
        HAT_PAPER,
        20_772_507,
        DataConfig::UnitRange,
        HAT_WEIGHTS,
        HatConfig::hat(4)
    ),
    variant!(
        "hat_s_x2",
        "hat",
        Task::SuperResolution { scale: 2 },
        HAT_PAPER,
        9_473_471,
        DataConfig::UnitRange,
        HAT_WEIGHTS,
        HatConfig::hat_s(2)
    ),
    variant!(
        "hat_s_x3",
        "hat",
        Task::SuperResolution { scale: 3 },
        HAT_PAPER,
        9_658_111,
        DataConfig::UnitRange,
        HAT_WEIGHTS,
        HatConfig::hat_s(3)
    ),
    variant!(
        "hat_s_x4",
        "hat",
        Task::SuperResolution { scale: 4 },
        HAT_PAPER,
        9_621_183,
        DataConfig::UnitRange,
        HAT_WEIGHTS,
        HatConfig::hat_s(4)
    ),
];

/// The official names: `conv_before_upsample.0` → `conv_before_upsample`, `upsample.{2i}` →
/// `upsample.convs.{i}`, the CABs' `conv_block.cab.*` ([`gaze_blocks::hab::key_map`]); every
/// other name is the official one. The checkpoints' `relative_position_index_SA` /
/// `relative_position_index_OCA` buffers (and any `attn_mask`, `relative_position_index`) are
/// recomputed, so ignored.
pub fn key_map(scale: usize) -> KeyMap {
    let mut rules = vec![(
        "^conv_before_upsample.0".to_string(),
        "^conv_before_upsample".to_string(),
    )];
    rules.extend(Upsampler::key_rules("upsample", "upsample", scale));
    KeyMap::new(&rules)
        .then(gaze_blocks::hab::key_map())
        .ignoring(&[
            r"^relative_position_index_(SA|OCA)$",
            r"(^|\.)relative_position_index$",
            r"(^|\.)attn_mask$",
        ])
}

impl Family for HatConfig {
    type Net = Hat;

    fn variants() -> &'static [ModelInfo] {
        VARIANTS
    }

    fn init(&self, device: &Device) -> Hat {
        HatConfig::init(self, device)
    }

    fn key_map(&self) -> KeyMap {
        key_map(self.upscale)
    }

    fn in_chans(&self) -> usize {
        self.in_chans
    }

    /// Image channels in and out (`num_out_ch = in_chans` in the official model).
    fn set_in_chans(&mut self, in_chans: usize) {
        self.in_chans = in_chans;
    }
}

crate::sr_net!(Hat, with_input);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_padding_is_pytorchs() {
        let device = Device::flex();
        // F.pad(arange(5.).view(1, 1, 1, 5), (0, 3, 0, 0), 'reflect') = [0 1 2 3 4 3 2 1]; the
        // 1-pixel height is replicated to 8 rows.
        let x = Tensor::<4>::from_data(
            TensorData::new(vec![0.0f32, 1., 2., 3., 4.], [1, 1, 1, 5]),
            &device,
        );
        let y = reflect_pad_to_multiple(x, 8);
        assert_eq!(y.dims(), [1, 1, 8, 8]);
        let rows: Vec<f32> = y.into_data().try_to_vec().unwrap();
        for row in rows.chunks(8) {
            assert_eq!(row.to_vec(), vec![0.0f32, 1., 2., 3., 4., 3., 2., 1.]);
        }
        // Beyond PyTorch's limit: a side of 3 to 8 reflects by 2, then by 3.
        let x = Tensor::<4>::from_data(
            TensorData::new(vec![0.0f32, 0., 1., 1., 2., 2.], [1, 1, 3, 2]),
            &device,
        );
        let y = reflect_pad_to_multiple(x, 8);
        assert_eq!(y.dims(), [1, 1, 8, 8]);
        let column: Vec<f32> = y
            .slice([0..1, 0..1, 0..8, 0..1])
            .into_data()
            .try_to_vec()
            .unwrap();
        assert_eq!(column, vec![0., 1., 2., 1., 0., 1., 2., 1.]);
    }

    #[test]
    fn key_map_names() {
        let m = key_map(4);
        assert_eq!(
            m.map("conv_before_upsample.0.weight"),
            "conv_before_upsample.weight"
        );
        assert_eq!(m.map("upsample.2.bias"), "upsample.convs.1.bias");
        assert_eq!(m.unmap("upsample.convs.0.weight"), "upsample.0.weight");
        assert!(m.is_ignored("relative_position_index_SA"));
        assert!(m.is_ignored("relative_position_index_OCA"));
        assert!(m.is_ignored("layers.0.residual_group.overlap_attn.relative_position_index"));
        assert!(!m.is_ignored("layers.0.residual_group.overlap_attn.relative_position_bias_table"));
    }

    #[test]
    fn odd_sizes_come_back_cropped() {
        let device = Device::flex();
        let config = HatConfig::new()
            .with_upscale(3)
            .with_embed_dim(8)
            .with_depths(vec![2])
            .with_num_heads(vec![2])
            .with_window_size(4)
            .with_squeeze_factor(2)
            .with_num_feat(8);
        let net = config.init(&device);
        let x = Tensor::<4>::ones([1, 3, 5, 7], &device).mul_scalar(0.5);
        assert_eq!(net.forward_features(x.clone()).dims(), [1, 8, 8, 8]);
        assert_eq!(net.forward(x).dims(), [1, 3, 15, 21]);
    }
}
