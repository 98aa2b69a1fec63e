//! Choosing an attention block by name, like timm's `create_attn` / `attn_layer`: every
//! block that maps a feature map `[N, C, H, W]` to the same shape can be plugged after any
//! residual branch of any CNN backbone.
//!
//! ```
//! use burn::prelude::*;
//! use gaze_blocks::attention::{create_attn, AttentionKind};
//!
//! let device = Device::flex();
//! let kind: AttentionKind = "cbam".parse()?;
//! let attn = create_attn(kind, 64, &device);
//! let y = attn.forward(Tensor::<4>::ones([1, 64, 14, 14], &device));
//! assert_eq!(y.dims(), [1, 64, 14, 14]);
//! # Ok::<(), gaze_blocks::attention::UnknownAttention>(())
//! ```

use std::fmt;
use std::str::FromStr;

use burn::prelude::*;

use crate::cbam::{CbamConfig, CbamModule};
use crate::eca::{EcaConfig, EcaModule};
use crate::fca::{FcaAttention, FcaConfig};
use crate::han::{ChannelSpatialAttention, ChannelSpatialAttentionConfig};
use crate::pixel_attention::{PixelAttention, PixelAttentionConfig};
use crate::polarized::{PolarizedConfig, PolarizedMode, PolarizedSelfAttention};
use crate::rcan_ca::{RcanChannelAttention, RcanChannelAttentionConfig};
use crate::scse::{ScseConfig, ScseModule};
use crate::se::{SeConfig, SeModule};
use crate::triplet::{TripletAttention, TripletAttentionConfig};

/// The attention blocks that keep a feature map's shape, by name.
#[derive(Config, Debug, Copy, PartialEq, Eq, Hash)]
pub enum AttentionKind {
    /// Squeeze-and-excitation (timm `SEModule`).
    Se,
    /// Efficient channel attention (timm `EcaModule`).
    Eca,
    /// FcaNet multi-spectral channel attention (DCT pooling, top-16 frequencies).
    Fca,
    /// Convolutional block attention module (timm `CbamModule`).
    Cbam,
    /// Triplet attention (three rotated Z-pool branches).
    Triplet,
    /// Polarized self-attention, channel and spatial branches in parallel.
    PsaP,
    /// Polarized self-attention, channel then spatial branch.
    PsaS,
    /// RCAN channel attention (`CALayer`).
    Ca,
    /// Pixel attention (PAN).
    Pa,
    /// HAN channel-spatial attention (3-D convolution).
    Csam,
    /// Concurrent spatial and channel squeeze & excitation (smp's `SCSEModule`).
    Scse,
}

impl AttentionKind {
    /// The official names of this kind's parameters that differ from gaze's field names.
    pub fn key_map(self) -> gaze_weights::KeyMap {
        match self {
            AttentionKind::Fca => crate::fca::key_map(),
            AttentionKind::Triplet => crate::triplet::key_map(),
            AttentionKind::PsaP | AttentionKind::PsaS => crate::polarized::key_map(),
            AttentionKind::Ca => crate::rcan_ca::key_map(),
            AttentionKind::Scse => crate::scse::key_map(),
            AttentionKind::Se
            | AttentionKind::Eca
            | AttentionKind::Cbam
            | AttentionKind::Pa
            | AttentionKind::Csam => gaze_weights::KeyMap::identity(),
        }
    }

    /// Every kind, in table order.
    pub const ALL: [AttentionKind; 11] = [
        AttentionKind::Se,
        AttentionKind::Eca,
        AttentionKind::Fca,
        AttentionKind::Cbam,
        AttentionKind::Triplet,
        AttentionKind::PsaP,
        AttentionKind::PsaS,
        AttentionKind::Ca,
        AttentionKind::Pa,
        AttentionKind::Csam,
        AttentionKind::Scse,
    ];

    /// The registry name (`"se"`, `"psa_p"`, …).
    pub fn name(self) -> &'static str {
        match self {
            AttentionKind::Se => "se",
            AttentionKind::Eca => "eca",
            AttentionKind::Fca => "fca",
            AttentionKind::Cbam => "cbam",
            AttentionKind::Triplet => "triplet",
            AttentionKind::PsaP => "psa_p",
            AttentionKind::PsaS => "psa_s",
            AttentionKind::Ca => "ca",
            AttentionKind::Pa => "pa",
            AttentionKind::Csam => "csam",
            AttentionKind::Scse => "scse",
        }
    }

    /// One-line description with the paper.
    pub fn description(self) -> &'static str {
        match self {
            AttentionKind::Se => "squeeze-excitation (Hu et al., CVPR 2018)",
            AttentionKind::Eca => "efficient channel attention (Wang et al., CVPR 2020)",
            AttentionKind::Fca => {
                "multi-spectral channel attention, FcaNet (Qin et al., ICCV 2021)"
            }
            AttentionKind::Cbam => "channel + spatial attention, CBAM (Woo et al., ECCV 2018)",
            AttentionKind::Triplet => "triplet attention (Misra et al., WACV 2021)",
            AttentionKind::PsaP => "polarized self-attention, parallel (Liu et al., 2021)",
            AttentionKind::PsaS => "polarized self-attention, sequential (Liu et al., 2021)",
            AttentionKind::Ca => "RCAN channel attention (Zhang et al., ECCV 2018)",
            AttentionKind::Pa => "pixel attention, PAN (Zhao et al., ECCVW 2020)",
            AttentionKind::Csam => "channel-spatial attention, HAN (Niu et al., ECCV 2020)",
            AttentionKind::Scse => "concurrent spatial and channel SE (Roy et al., MICCAI 2018)",
        }
    }
}

/// An attention name that is not in [`AttentionKind::ALL`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownAttention(pub String);

impl fmt::Display for UnknownAttention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let known: Vec<_> = AttentionKind::ALL.iter().map(|k| k.name()).collect();
        write!(
            f,
            "unknown attention kind '{}'; known kinds: {}",
            self.0,
            known.join(", ")
        )
    }
}

impl std::error::Error for UnknownAttention {}

impl FromStr for AttentionKind {
    type Err = UnknownAttention;
    fn from_str(s: &str) -> Result<Self, UnknownAttention> {
        let wanted = s.trim().to_ascii_lowercase().replace('-', "_");
        AttentionKind::ALL
            .into_iter()
            .find(|k| k.name() == wanted)
            .ok_or_else(|| UnknownAttention(s.to_string()))
    }
}

/// Any shape-preserving attention block, as built by [`create_attn`]. Checkpoint paths skip
/// the variant, so `layer1.0.se.fc1.weight` addresses an SE block's `fc1` as in timm.
#[derive(Module, Debug)]
pub enum Attention {
    /// Squeeze-and-excitation.
    Se(SeModule),
    /// Efficient channel attention.
    Eca(EcaModule),
    /// FcaNet.
    Fca(FcaAttention),
    /// CBAM.
    Cbam(CbamModule),
    /// Triplet attention.
    Triplet(TripletAttention),
    /// Polarized self-attention (either composition).
    Psa(PolarizedSelfAttention),
    /// RCAN channel attention.
    Ca(RcanChannelAttention),
    /// Pixel attention.
    Pa(PixelAttention),
    /// HAN channel-spatial attention.
    Csam(ChannelSpatialAttention),
    /// Concurrent spatial and channel squeeze & excitation.
    Scse(ScseModule),
}

impl Attention {
    /// `[N, C, H, W] → [N, C, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Attention::Se(m) => m.forward(x),
            Attention::Eca(m) => m.forward(x),
            Attention::Fca(m) => m.forward(x),
            Attention::Cbam(m) => m.forward(x),
            Attention::Triplet(m) => m.forward(x),
            Attention::Psa(m) => m.forward(x),
            Attention::Ca(m) => m.forward(x),
            Attention::Pa(m) => m.forward(x),
            Attention::Csam(m) => m.forward(x),
            Attention::Scse(m) => m.forward(x),
        }
    }
}

/// Builds the block `kind` for `channels` channels with its reference defaults (timm's for
/// se/eca/cbam, the official repositories' for the others).
pub fn create_attn(kind: AttentionKind, channels: usize, device: &Device) -> Attention {
    match kind {
        AttentionKind::Se => Attention::Se(SeConfig::new(channels).init(device)),
        AttentionKind::Eca => Attention::Eca(EcaConfig::new(channels).init(device)),
        AttentionKind::Fca => Attention::Fca(FcaConfig::new(channels).init(device)),
        AttentionKind::Cbam => Attention::Cbam(CbamConfig::new(channels).init(device)),
        AttentionKind::Triplet => Attention::Triplet(TripletAttentionConfig::new().init(device)),
        AttentionKind::PsaP => Attention::Psa(
            PolarizedConfig::new(channels)
                .with_mode(PolarizedMode::Parallel)
                .init(device),
        ),
        AttentionKind::PsaS => Attention::Psa(
            PolarizedConfig::new(channels)
                .with_mode(PolarizedMode::Sequential)
                .init(device),
        ),
        AttentionKind::Ca => Attention::Ca(RcanChannelAttentionConfig::new(channels).init(device)),
        AttentionKind::Pa => Attention::Pa(PixelAttentionConfig::new(channels).init(device)),
        AttentionKind::Csam => {
            Attention::Csam(ChannelSpatialAttentionConfig::new(channels).init(device))
        }
        AttentionKind::Scse => Attention::Scse(ScseConfig::new(channels).init(device)),
    }
}

/// [`create_attn`] by name; the error lists the known names.
pub fn create_attn_by_name(
    name: &str,
    channels: usize,
    device: &Device,
) -> Result<Attention, UnknownAttention> {
    Ok(create_attn(name.parse()?, channels, device))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Module;

    #[test]
    fn names_round_trip_and_unknown_lists_known() {
        for kind in AttentionKind::ALL {
            assert_eq!(kind.name().parse::<AttentionKind>(), Ok(kind));
        }
        assert_eq!("PSA-P".parse::<AttentionKind>(), Ok(AttentionKind::PsaP));
        let err = "sea".parse::<AttentionKind>().unwrap_err().to_string();
        assert!(
            err.contains("'sea'") && err.contains("se, eca, fca, cbam, triplet"),
            "{err}"
        );
    }

    #[test]
    fn every_kind_keeps_the_shape_of_odd_maps() {
        let device = Device::flex();
        let x = Tensor::<4>::random(
            [2, 32, 13, 17],
            burn::tensor::Distribution::Default,
            &device,
        );
        for kind in AttentionKind::ALL {
            let attn = create_attn(kind, 32, &device);
            assert!(
                attn.num_params() > 0 || kind == AttentionKind::Triplet,
                "{}",
                kind.name()
            );
            assert_eq!(
                attn.forward(x.clone()).dims(),
                [2, 32, 13, 17],
                "{}",
                kind.name()
            );
        }
    }
}
