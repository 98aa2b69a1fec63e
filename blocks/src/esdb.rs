//! The efficient separable distillation block (ESDB), the trunk block of BSRN ("Blueprint
//! Separable Residual Network for Efficient Image Super-Resolution", Li et al., CVPRW 2022,
//! Fig. 3), and its BSRN-S form.
//!
//! Three distillation steps, each splitting off `C/2` channels with a 1×1 convolution and
//! refining the full width with a residual separable 3×3 convolution, a fourth 3×3 to `C/2`,
//! then a 1×1 fusion, [`Esa`], [`CcaLayer`] and the block's residual (official `ESDB.forward`,
//! github.com/xiaom233/BSRN `BSRN_arch.py`; `act` is GELU):
//!
//! ```text
//! d₁ = act(c1_d(x))    r₁ = act(c1_r(x) + x)
//! d₂ = act(c2_d(r₁))   r₂ = act(c2_r(r₁) + r₁)
//! d₃ = act(c3_d(r₂))   r₃ = act(c3_r(r₂) + r₂)
//! r₄ = act(c4(r₃))
//! ESDB(x) = cca(esa(c5([d₁, d₂, d₃, r₄]))) + x
//! ```
//!
//! `c*_d` and `c5` are 1×1 convolutions with bias, `c*_r` and `c4` separable convolutions of
//! the network's kind ([`SeparableConvKind`]). BSRN-S (`rfdnfinalB5_arch.py`, class `RFDB`,
//! [`BsrnLayout::BsrnS`]) writes every 1×1 as an `nn.Linear` over the channels and ends
//! differently: `conv_out(esa(c5(…)) · cw) + x`, with a learnt per-channel weight `cw`
//! (`[1, C]`) and a Linear `conv_out`, and no CCA.
//!
//! Official keys: `c1_d`, `c1_r.{pw,dw}`, …, `c4`, `c5`, `esa.*`, `cca.conv_du.{0,2}`
//! ([`key_map`] maps CCA's onto [`CcaLayer`]'s fields), BSRN-S's `cw`, `conv_out`.

use crate::cpu_kernels::gelu;
use burn::module::Param;
use burn::prelude::*;

use crate::bsconv::{Pointwise, SeparableConv, SeparableConvConfig, SeparableConvKind};
use crate::cca::{CcaLayer, CcaLayerConfig};
use crate::esa::{BsrnLayout, Esa, EsaConfig};

/// Configuration of [`Esdb`].
///
/// ```
/// use burn::prelude::*;
/// use gaze_blocks::esdb::EsdbConfig;
///
/// let device = Device::flex();
/// let block = EsdbConfig::new(16).init(&device); // BSRN's ESDB, CCA bottleneck 16 / 16 = 1
/// let x = Tensor::<4>::ones([1, 16, 15, 17], &device); // ESA needs ≥ 15 pixels per side
/// assert_eq!(block.forward(x).dims(), [1, 16, 15, 17]);
/// ```
#[derive(Config, Debug)]
pub struct EsdbConfig {
    /// Channels in and out (official `in_channels`; `out_channels` must equal it); even.
    pub in_channels: usize,
    /// The separable 3×3 convolutions' kind (official `conv`).
    #[config(default = "SeparableConvKind::BsConvU")]
    pub conv: SeparableConvKind,
    /// `BSConvS`'s subspace ratio in `c*_r` and `c4` (official `p`; the block's ESA keeps the
    /// default 0.25, as the official code builds it).
    #[config(default = 0.25)]
    pub p: f64,
    /// Bottleneck reduction of the CCA (the official block hard-codes `CCALayer`'s default
    /// 16; narrow test networks need less).
    #[config(default = 16)]
    pub cca_reduction: usize,
    /// BSRN's ESDB or BSRN-S's block.
    #[config(default = "BsrnLayout::Bsrn")]
    pub layout: BsrnLayout,
}

/// The ESDB (official `ESDB`; with [`BsrnLayout::BsrnS`] the official `RFDB` of
/// `rfdnfinalB5_arch.py`).
#[derive(Module, Debug)]
pub struct Esdb {
    /// 1×1 `C → C/2`, first distillation.
    pub c1_d: Pointwise,
    /// Separable 3×3 `C → C`, first refinement.
    pub c1_r: SeparableConv,
    /// 1×1 `C → C/2`.
    pub c2_d: Pointwise,
    /// Separable 3×3 `C → C`.
    pub c2_r: SeparableConv,
    /// 1×1 `C → C/2`.
    pub c3_d: Pointwise,
    /// Separable 3×3 `C → C`.
    pub c3_r: SeparableConv,
    /// Separable 3×3 `C → C/2`.
    pub c4: SeparableConv,
    /// 1×1 fusion `2C → C`.
    pub c5: Pointwise,
    /// Enhanced spatial attention.
    pub esa: Esa,
    /// Contrast-aware channel attention (BSRN; absent in BSRN-S).
    pub cca: Option<CcaLayer>,
    /// Per-channel weight `[1, C]` after ESA (BSRN-S only).
    pub cw: Option<Param<Tensor<2>>>,
    /// Linear `C → C` after `cw` (BSRN-S only).
    pub conv_out: Option<Pointwise>,
}

impl EsdbConfig {
    /// Builds the block with random weights (`cw` starts at 1).
    ///
    /// # Panics
    /// If `in_channels` is odd or below 4, if `in_channels / cca_reduction` is 0 (BSRN), or for
    /// the BSRN-S layout with a kind other than `BsConvU`.
    pub fn init(&self, device: &Device) -> Esdb {
        let c = self.in_channels;
        assert!(
            c >= 4 && c.is_multiple_of(2),
            "ESDB needs an even width ≥ 4, got {c}"
        );
        let dc = c / 2;
        let bsrn_s = self.layout == BsrnLayout::BsrnS;
        let one = |cin, cout| {
            if bsrn_s {
                Pointwise::linear(cin, cout, device)
            } else {
                Pointwise::conv(cin, cout, true, device)
            }
        };
        let three = |cin, cout| {
            SeparableConvConfig::new(cin, cout)
                .with_kind(self.conv)
                .with_p(self.p)
                .with_linear_pointwise(bsrn_s)
                .init(device)
        };
        Esdb {
            c1_d: one(c, dc),
            c1_r: three(c, c),
            c2_d: one(c, dc),
            c2_r: three(c, c),
            c3_d: one(c, dc),
            c3_r: three(c, c),
            c4: three(c, dc),
            c5: one(4 * dc, c),
            esa: EsaConfig::new(c)
                .with_conv(self.conv)
                .with_layout(self.layout)
                .init(device),
            cca: (!bsrn_s).then(|| {
                CcaLayerConfig::new(c)
                    .with_reduction(self.cca_reduction)
                    .init(device)
            }),
            cw: bsrn_s.then(|| Param::from_tensor(Tensor::ones([1, c], device))),
            conv_out: bsrn_s.then(|| one(c, c)),
        }
    }
}

impl Esdb {
    /// `[N, C, H, W] → [N, C, H, W]`.
    ///
    /// # Panics
    /// If `H` or `W` is below [`crate::esa::ESA_MIN_INPUT`] (15).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let d1 = gelu(self.c1_d.forward(x.clone()));
        let r1 = gelu(self.c1_r.forward(x.clone()) + x.clone());
        let d2 = gelu(self.c2_d.forward(r1.clone()));
        let r2 = gelu(self.c2_r.forward(r1.clone()) + r1);
        let d3 = gelu(self.c3_d.forward(r2.clone()));
        let r3 = gelu(self.c3_r.forward(r2.clone()) + r2);
        let r4 = gelu(self.c4.forward(r3));
        let out = self.c5.forward(Tensor::cat(vec![d1, d2, d3, r4], 1));
        let fused = self.esa.forward(out);
        let fused = match &self.cca {
            Some(cca) => cca.forward(fused),
            None => fused,
        };
        let fused = match &self.cw {
            Some(cw) => {
                let c = fused.dims()[1];
                fused * cw.val().reshape([1, c, 1, 1])
            }
            None => fused,
        };
        let fused = match &self.conv_out {
            Some(conv_out) => conv_out.forward(fused),
            None => fused,
        };
        fused + x
    }
}

/// The official names of an [`Esdb`] (`cca.conv_du.{0,2}` → `cca.conv_{down,up}`; the other
/// fields carry the official names), at any depth.
pub fn key_map() -> gaze_weights::KeyMap {
    crate::cca::key_map()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_counts_match_the_official_blocks() {
        let device = Device::flex();
        // BSRN's full-size block (official ESDB(64, 64, BSConvU)).
        let esdb = EsdbConfig::new(64).init(&device);
        assert_eq!(esdb.num_params(), 35_716);
        // RFDB(8, 8) and RFDB(48, 48) of rfdnfinalB5_arch.py (the fixture's, BSRN-S's).
        let rfdb = EsdbConfig::new(8)
            .with_layout(BsrnLayout::BsrnS)
            .init(&device);
        assert_eq!(rfdb.num_params(), 1020);
        let rfdb = EsdbConfig::new(48)
            .with_layout(BsrnLayout::BsrnS)
            .init(&device);
        assert_eq!(rfdb.num_params(), 24_000);
    }
}
