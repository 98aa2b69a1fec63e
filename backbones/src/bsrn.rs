//! BSRN: "Blueprint Separable Residual Network for Efficient Image Super-Resolution" (Li, Liu,
//! Chen, Cai, Gu, Qiao, Dong; CVPR 2022 workshops, NTIRE 2022 efficient SR challenge). Official
//! code: github.com/xiaom233/BSRN (`basicsr/archs/BSRN_arch.py` class `BSRN`; BSRN-S is
//! `basicsr/archs/rfdnfinalB5_arch.py` class `RFDNFINALB5`, as its test config
//! `options/test/benchmark_BSRN-S_x4.yml` builds it).
//!
//! The input image is repeated four times along the channels (`cat[x, x, x, x]`), then
//! `fea_conv` (separable 3×3, `4·num_in_ch → num_feat`) → `num_block` [`Esdb`]s in a chain →
//! `c1` (1×1 over the concatenation of every block's output) → GELU → `c2` (separable 3×3) +
//! the `fea_conv` output → `upsampler` (the official `PixelShuffleDirect`: one 3×3 convolution
//! to `num_out_ch·s²` channels and a pixel shuffle, [`PixelShuffleBlock`]). There is no global
//! (image) skip. Input and output are RGB in [0, 1] (BasicSR's `SRModel` feeds images / 255);
//! the output is not clamped.
//!
//! Every [`Esdb`] runs an [`gaze_blocks::esa::Esa`], whose strided convolution and 7×7 max pool
//! need inputs of at least [`ESA_MIN_INPUT`] = 15 pixels per side ([`Family::input_size`]).
//!
//! Field names mirror the official parameter names; [`key_map`] maps the rest (`B<k>` →
//! `b.<k−1>`, `upsampler.upsampleOneStep.0` → `upsampler.conv`, `cca.conv_du.{0,2}` →
//! `cca.conv_{down,up}`). The published checkpoints are BasicSR files (`params`, which the
//! loader unwraps).
//!
//! BSRN-S ([`BsrnLayout::BsrnS`]) is the same network with `nn.Linear`s for every 1×1 layer
//! (with bias, the separable convolutions' pointwise ones included), a plain 3×3 as ESA's
//! strided convolution, and blocks that end with a per-channel weight `cw` and a Linear
//! `conv_out` instead of CCA; 48 features, 5 blocks.
//!
//! Only the `'pixelshuffledirect'` upsampler of the official code (the one every published
//! model uses) is implemented.

use crate::family::Family;
use crate::model::InputSize;
use crate::registry::{DataConfig, ModelInfo, Task};
use crate::variant;
use burn::prelude::*;
use gaze_blocks::bsconv::{Pointwise, SeparableConv, SeparableConvConfig, SeparableConvKind};
use gaze_blocks::cpu_kernels::gelu;
use gaze_blocks::esa::{BsrnLayout, ESA_MIN_INPUT};
use gaze_blocks::esdb::{Esdb, EsdbConfig};
use gaze_heads::{PixelShuffleBlock, PixelShuffleBlockConfig};
use gaze_weights::KeyMap;

/// Configuration of [`Bsrn`]; the defaults are the published BSRN's (`BSRN_arch.py`
/// `BSRN(num_in_ch=3, num_feat=64, num_block=8, num_out_ch=3, upscale, conv='BSConvU',
/// upsampler='pixelshuffledirect')`).
///
/// ```
/// use burn::prelude::*;
/// use gaze_backbones::bsrn::BsrnConfig;
///
/// let device = Device::flex();
/// let net = BsrnConfig::new(2)
///     .with_num_feat(8)
///     .with_num_block(2)
///     .with_cca_reduction(4)
///     .init(&device);
/// let y = net.forward(Tensor::<4>::zeros([1, 3, 15, 17], &device)); // ≥ 15 pixels per side
/// assert_eq!(y.dims(), [1, 3, 30, 34]);
/// ```
#[derive(Config, Debug)]
pub struct BsrnConfig {
    /// Upsampling factor (2, 3 and 4 are published; any integer ≥ 1 builds).
    pub upscale: usize,
    /// Image channels in.
    #[config(default = 3)]
    pub num_in_ch: usize,
    /// Trunk width; even, and at least 4 (ESA works on `num_feat / 4` channels).
    #[config(default = 64)]
    pub num_feat: usize,
    /// Number of blocks. The official `BSRN` always builds and runs eight (`B1`…`B8`) and
    /// `RFDNFINALB5` five (`B1`…`B5`); their `num_block` only sizes `c1`. So 8 (BSRN) and 5
    /// (BSRN-S) are the only values their code and checkpoints know; others generalise the
    /// chain and `c1`'s input.
    #[config(default = 8)]
    pub num_block: usize,
    /// Image channels out.
    #[config(default = 3)]
    pub num_out_ch: usize,
    /// The separable convolutions' kind (official `conv`: `'BSConvU'`, `'BSConvS'`,
    /// `'DepthWiseConv'`; BSRN-S: `BSConvU` only).
    #[config(default = "SeparableConvKind::BsConvU")]
    pub conv: SeparableConvKind,
    /// `BSConvS`'s subspace ratio (official `p`).
    #[config(default = 0.25)]
    pub p: f64,
    /// Bottleneck reduction of every block's contrast-aware channel attention. The official
    /// code hard-codes `CCALayer`'s default 16 (4 channels at 64 features); narrow test
    /// networks need a smaller one (`num_feat / 16` would be 0). Unused by BSRN-S.
    #[config(default = 16)]
    pub cca_reduction: usize,
    /// BSRN (`BSRN_arch.py`) or BSRN-S (`rfdnfinalB5_arch.py`).
    #[config(default = "BsrnLayout::Bsrn")]
    pub layout: BsrnLayout,
}

/// The BSRN network (and BSRN-S).
#[derive(Module, Debug)]
pub struct Bsrn {
    /// Separable 3×3 stem `4·num_in_ch → num_feat` on the fourfold input.
    pub fea_conv: SeparableConv,
    /// The blocks (official `B1`…`B8`).
    pub b: Vec<Esdb>,
    /// 1×1 fusion `num_feat·num_block → num_feat`, followed by GELU.
    pub c1: Pointwise,
    /// Separable 3×3 before the long skip.
    pub c2: SeparableConv,
    /// Sub-pixel reconstruction (official `upsampler.upsampleOneStep.0` + `PixelShuffle`).
    pub upsampler: PixelShuffleBlock,
}

impl BsrnConfig {
    /// Builds BSRN with random weights.
    ///
    /// # Panics
    /// If `num_feat` is odd or below 4, if `num_feat / cca_reduction` is 0 (BSRN), or for
    /// BSRN-S with a convolution kind other than `BsConvU`.
    pub fn init(&self, device: &Device) -> Bsrn {
        let nf = self.num_feat;
        let bsrn_s = self.layout == BsrnLayout::BsrnS;
        let separable = |cin, cout| {
            SeparableConvConfig::new(cin, cout)
                .with_kind(self.conv)
                .with_p(self.p)
                .with_linear_pointwise(bsrn_s)
                .init(device)
        };
        Bsrn {
            fea_conv: separable(4 * self.num_in_ch, nf),
            b: (0..self.num_block)
                .map(|_| {
                    EsdbConfig::new(nf)
                        .with_conv(self.conv)
                        .with_p(self.p)
                        .with_cca_reduction(self.cca_reduction)
                        .with_layout(self.layout)
                        .init(device)
                })
                .collect(),
            c1: if bsrn_s {
                Pointwise::linear(nf * self.num_block, nf, device)
            } else {
                Pointwise::conv(nf * self.num_block, nf, true, device)
            },
            c2: separable(nf, nf),
            upsampler: PixelShuffleBlockConfig::new(nf, self.num_out_ch, self.upscale).init(device),
        }
    }
}

impl Bsrn {
    /// Low-resolution features `[N, num_feat, h, w]`: `c2(GELU(c1(cat[B₁…Bₙ outputs]))) +
    /// fea_conv(cat[x, x, x, x])`, the official `out_lr` (the upsampler's input).
    ///
    /// # Panics
    /// If `h` or `w` is below [`ESA_MIN_INPUT`] (15).
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
        let x = Tensor::cat(vec![x.clone(), x.clone(), x.clone(), x], 1);
        let fea = self.fea_conv.forward(x);
        let mut outs = Vec::with_capacity(self.b.len());
        let mut h = fea.clone();
        for block in &self.b {
            h = block.forward(h);
            outs.push(h.clone());
        }
        let fused = gelu(self.c1.forward(Tensor::cat(outs, 1)));
        self.c2.forward(fused) + fea
    }

    /// Reconstruction from the features (BSRN has no skip from the input image).
    pub fn forward_head(&self, features: Tensor<4>) -> Tensor<4> {
        self.upsampler.forward(features)
    }

    /// `[N, num_in_ch, h, w]` in [0, 1] → `[N, num_out_ch, h·s, w·s]` (not clamped).
    ///
    /// # Panics
    /// If `h` or `w` is below [`ESA_MIN_INPUT`] (15).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_head(self.forward_features(x))
    }
}

const BSRN_PAPER: &str =
    "Blueprint Separable Residual Network for Efficient Image Super-Resolution (Li et al., CVPRW 2022)";
const BSRN_WEIGHTS: &str =
    "https://github.com/xiaom233/BSRN/tree/main/experiments/pretrained_models";

static VARIANTS: &[ModelInfo] = &[
    variant!(
        "bsrn_x2",
        "bsrn",
        Task::SuperResolution { scale: 2 },
        BSRN_PAPER,
        331_628,
        DataConfig::UnitRange,
        BSRN_WEIGHTS,
        BsrnConfig::new(2)
    ),
    variant!(
        "bsrn_x3",
        "bsrn",
        Task::SuperResolution { scale: 3 },
        BSRN_PAPER,
        340_283,
        DataConfig::UnitRange,
        BSRN_WEIGHTS,
        BsrnConfig::new(3)
    ),
    variant!(
        "bsrn_x4",
        "bsrn",
        Task::SuperResolution { scale: 4 },
        BSRN_PAPER,
        352_400,
        DataConfig::UnitRange,
        BSRN_WEIGHTS,
        BsrnConfig::new(4)
    ),
    variant!(
        "bsrn_s_x4",
        "bsrn",
        Task::SuperResolution { scale: 4 },
        BSRN_PAPER,
        156_288,
        DataConfig::UnitRange,
        BSRN_WEIGHTS,
        BsrnConfig::new(4)
            .with_num_feat(48)
            .with_num_block(5)
            .with_layout(BsrnLayout::BsrnS)
    ),
];

/// The official names for a network of `num_block` blocks (`B1`…,
/// `upsampler.upsampleOneStep.0`, `cca.conv_du.{0,2}`).
pub fn key_map(num_block: usize) -> KeyMap {
    let mut rules: Vec<(String, String)> = (1..=num_block)
        .map(|k| (format!("^B{k}"), format!("^b.{}", k - 1)))
        .collect();
    rules.extend(PixelShuffleBlock::key_rules(
        "upsampler.upsampleOneStep",
        "upsampler",
    ));
    KeyMap::new(&rules).then(gaze_blocks::esdb::key_map())
}

impl Family for BsrnConfig {
    type Net = Bsrn;

    fn variants() -> &'static [ModelInfo] {
        VARIANTS
    }

    fn init(&self, device: &Device) -> Bsrn {
        BsrnConfig::init(self, device)
    }

    fn key_map(&self) -> KeyMap {
        key_map(self.num_block)
    }

    // `receptive_radius` stays `None`: every block's contrast-aware channel attention pools
    // over the whole image, and every ESA pools on a stride-6 grid anchored at the input's
    // corner (BSRN-S too), so no tile context reproduces the untiled output: tiles are blended.

    /// At least 15×15: every block's ESA pools a stride-2 map with a 7×7 window.
    fn input_size(&self) -> InputSize {
        InputSize::AtLeast([ESA_MIN_INPUT; 2])
    }

    fn in_chans(&self) -> usize {
        self.num_in_ch
    }

    /// Image channels in and out (an SR network maps an image to an image of its kind).
    fn set_in_chans(&mut self, in_chans: usize) {
        self.num_in_ch = in_chans;
        self.num_out_ch = in_chans;
    }
}

crate::sr_net!(Bsrn);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_map_round_trips_the_official_names() {
        let keys = key_map(8);
        for (official, ours) in [
            ("fea_conv.pw.weight", "fea_conv.pw.weight"),
            ("B1.c1_d.weight", "b.0.c1_d.weight"),
            ("B8.c1_r.dw.bias", "b.7.c1_r.dw.bias"),
            ("B3.esa.conv3_.pw.weight", "b.2.esa.conv3_.pw.weight"),
            ("B6.cca.conv_du.0.bias", "b.5.cca.conv_down.bias"),
            ("B2.cca.conv_du.2.weight", "b.1.cca.conv_up.weight"),
            ("B5.cw", "b.4.cw"),
            ("B5.conv_out.weight", "b.4.conv_out.weight"),
            ("c1.weight", "c1.weight"),
            ("c2.dw.weight", "c2.dw.weight"),
            (
                "upsampler.upsampleOneStep.0.weight",
                "upsampler.conv.weight",
            ),
        ] {
            assert_eq!(keys.map(official), ours);
            assert_eq!(keys.unmap(ours), official);
        }
    }
}
