//! IMDN: "Lightweight Image Super-Resolution with Information Multi-distillation Network" (Hui,
//! Gao, Yang, Wang; ACM MM 2019). Official code: github.com/Zheng222/IMDN
//! (`model/architecture.py` `IMDN`, `model/block.py`).
//!
//! `fea_conv` (3×3) → `num_modules` [`ImdModule`]s in a chain → `c` (1×1 over the
//! concatenation of every block's output, LeakyReLU 0.05) → `LR_conv` (3×3) + the `fea_conv`
//! output → [`PixelShuffleBlock`] (`upsampler`: 3×3 conv to `out_nc·s²` channels, pixel
//! shuffle). There is no global (image) skip. Input and output are RGB in [0, 1] (the official
//! test script divides by 255); the output is not clamped.
//!
//! Field names mirror the official parameter names; [`key_map`] maps the rest (`IMDB<k>` →
//! `imdb.<k−1>`, `c.0` → `c`, `LR_conv` → `lr_conv`, `upsampler.0` → `upsampler.conv`,
//! `cca.conv_du.{0,2}` → `cca.conv_{down,up}`). The official checkpoints are DataParallel
//! state dicts (`module.` prefixes, which the loader strips).

use crate::family::Family;
use crate::registry::{DataConfig, ModelInfo, Task};
use crate::variant;
use burn::prelude::*;
use gaze_blocks::conv::Conv2d;
use gaze_blocks::imdb::{imdn_lrelu, ImdModule, ImdModuleConfig};
use gaze_blocks::layers::conv_same;
use gaze_heads::{PixelShuffleBlock, PixelShuffleBlockConfig};
use gaze_weights::KeyMap;

/// Configuration of [`Imdn`]; the defaults are the published model's.
///
/// ```
/// use burn::prelude::*;
/// use gaze_backbones::imdn::ImdnConfig;
///
/// let device = Device::flex();
/// let net = ImdnConfig::new(2).with_nf(8).with_cca_reduction(4).init(&device);
/// let y = net.forward(Tensor::<4>::zeros([1, 3, 5, 7], &device));
/// assert_eq!(y.dims(), [1, 3, 10, 14]);
/// ```
#[derive(Config, Debug)]
pub struct ImdnConfig {
    /// Upsampling factor (2, 3 and 4 are published; any integer ≥ 1 builds).
    pub scale: usize,
    /// Image channels in.
    #[config(default = 3)]
    pub in_nc: usize,
    /// Trunk width; a multiple of 4 (each block distils a quarter per step).
    #[config(default = 64)]
    pub nf: usize,
    /// Number of information multi-distillation blocks. The official `IMDN` always builds and
    /// runs six (`IMDB1`…`IMDB6`; its `num_modules` only sizes `c`), so 6 is the only value
    /// its checkpoints and code know; others generalise the chain and `c`'s input.
    #[config(default = 6)]
    pub num_modules: usize,
    /// Image channels out.
    #[config(default = 3)]
    pub out_nc: usize,
    /// Bottleneck reduction of every block's contrast-aware channel attention. The official
    /// code hard-codes `CCALayer`'s default 16 (4 channels at `nf` 64); narrow test networks
    /// need a smaller one (`nf / 16` would be 0).
    #[config(default = 16)]
    pub cca_reduction: usize,
}

/// The IMDN network.
#[derive(Module, Debug)]
pub struct Imdn {
    /// 3×3 stem `in_nc → nf`.
    pub fea_conv: Conv2d,
    /// The distillation blocks (official `IMDB1`…`IMDB6`).
    pub imdb: Vec<ImdModule>,
    /// 1×1 fusion `nf·num_modules → nf`, followed by LeakyReLU 0.05 (official `c.0`, `c.1`).
    pub c: Conv2d,
    /// 3×3 convolution before the long skip (official `LR_conv`).
    pub lr_conv: Conv2d,
    /// Sub-pixel reconstruction (official `upsampler.0` + `PixelShuffle`).
    pub upsampler: PixelShuffleBlock,
}

impl ImdnConfig {
    /// Builds IMDN with random weights.
    ///
    /// # Panics
    /// If `nf` is not a positive multiple of 4 or `nf / cca_reduction` is 0.
    pub fn init(&self, device: &Device) -> Imdn {
        let nf = self.nf;
        Imdn {
            fea_conv: conv_same(self.in_nc, nf, 3, true, device),
            imdb: (0..self.num_modules)
                .map(|_| {
                    ImdModuleConfig::new(nf)
                        .with_cca_reduction(self.cca_reduction)
                        .init(device)
                })
                .collect(),
            c: conv_same(nf * self.num_modules, nf, 1, true, device),
            lr_conv: conv_same(nf, nf, 3, true, device),
            upsampler: PixelShuffleBlockConfig::new(nf, self.out_nc, self.scale).init(device),
        }
    }
}

impl Imdn {
    /// Low-resolution features `[N, nf, h, w]`: `LR_conv(c(cat[IMDB₁…IMDB₆ outputs])) +
    /// fea_conv(x)`, the official `out_lr` (the upsampler's input).
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
        let fea = self.fea_conv.forward(x);
        let mut outs = Vec::with_capacity(self.imdb.len());
        let mut h = fea.clone();
        for block in &self.imdb {
            h = block.forward(h);
            outs.push(h.clone());
        }
        let fused = imdn_lrelu(self.c.forward(Tensor::cat(outs, 1)));
        self.lr_conv.forward(fused) + fea
    }

    /// Reconstruction from the features (IMDN has no skip from the input image).
    pub fn forward_head(&self, features: Tensor<4>) -> Tensor<4> {
        self.upsampler.forward(features)
    }

    /// `[N, in_nc, h, w]` in [0, 1] → `[N, out_nc, h·s, w·s]` (not clamped).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_head(self.forward_features(x))
    }
}

const IMDN_PAPER: &str = "Lightweight Image Super-Resolution with Information Multi-distillation \
     Network (Hui et al., ACM MM 2019)";
const IMDN_WEIGHTS: &str = "https://github.com/Zheng222/IMDN/tree/master/checkpoints";

static VARIANTS: &[ModelInfo] = &[
    variant!(
        "imdn_x2",
        "imdn",
        Task::SuperResolution { scale: 2 },
        IMDN_PAPER,
        694_404,
        DataConfig::UnitRange,
        IMDN_WEIGHTS,
        ImdnConfig::new(2)
    ),
    variant!(
        "imdn_x3",
        "imdn",
        Task::SuperResolution { scale: 3 },
        IMDN_PAPER,
        703_059,
        DataConfig::UnitRange,
        IMDN_WEIGHTS,
        ImdnConfig::new(3)
    ),
    variant!(
        "imdn_x4",
        "imdn",
        Task::SuperResolution { scale: 4 },
        IMDN_PAPER,
        715_176,
        DataConfig::UnitRange,
        IMDN_WEIGHTS,
        ImdnConfig::new(4)
    ),
];

/// The official names for a network of `num_modules` blocks (`IMDB1`…, `c.0`, `LR_conv`,
/// `upsampler.0`, `cca.conv_du.{0,2}`).
pub fn key_map(num_modules: usize) -> KeyMap {
    let mut rules: Vec<(String, String)> = (1..=num_modules)
        .map(|k| (format!("^IMDB{k}"), format!("^imdb.{}", k - 1)))
        .collect();
    rules.push(("^c.0".into(), "^c".into()));
    rules.push(("^LR_conv".into(), "^lr_conv".into()));
    rules.extend(PixelShuffleBlock::key_rules("upsampler", "upsampler"));
    KeyMap::new(&rules).then(gaze_blocks::imdb::key_map())
}

impl Family for ImdnConfig {
    type Net = Imdn;

    fn variants() -> &'static [ModelInfo] {
        VARIANTS
    }

    fn init(&self, device: &Device) -> Imdn {
        ImdnConfig::init(self, device)
    }

    fn key_map(&self) -> KeyMap {
        key_map(self.num_modules)
    }

    // `receptive_radius` stays `None`: every block's contrast-aware channel attention pools
    // over the whole image, so tiles are blended rather than exact.

    fn in_chans(&self) -> usize {
        self.in_nc
    }

    /// Image channels in and out (an SR network maps an image to an image of its kind).
    fn set_in_chans(&mut self, in_chans: usize) {
        self.in_nc = in_chans;
        self.out_nc = in_chans;
    }
}

crate::sr_net!(Imdn);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_map_round_trips_the_official_names() {
        let keys = key_map(6);
        for (official, ours) in [
            ("fea_conv.weight", "fea_conv.weight"),
            ("IMDB1.c1.weight", "imdb.0.c1.weight"),
            ("IMDB6.cca.conv_du.0.bias", "imdb.5.cca.conv_down.bias"),
            ("IMDB3.cca.conv_du.2.weight", "imdb.2.cca.conv_up.weight"),
            ("c.0.weight", "c.weight"),
            ("LR_conv.bias", "lr_conv.bias"),
            ("upsampler.0.weight", "upsampler.conv.weight"),
        ] {
            assert_eq!(keys.map(official), ours);
            assert_eq!(keys.unmap(ours), official);
        }
    }
}
