//! Reusable attention blocks for vision models.
//!
//! Every block follows Burn's convention: a `…Config` (serialisable hyper-parameters) whose
//! `init(&device)` builds the `Module`, whose `forward` maps NCHW tensors to NCHW tensors.
//! Parameter names follow the reference implementation (timm or the official repository), so
//! published checkpoints map onto these modules one-to-one.
//!
//! | block | paper | file |
//! |---|---|---|
//! | [`SeModule`] squeeze-excitation | Hu et al., CVPR 2018 | `se.rs` |
//! | [`EcaModule`] efficient channel attention | Wang et al., CVPR 2020 | `eca.rs` |
//! | [`FcaAttention`] multi-spectral (DCT) channel attention | FcaNet, Qin et al., ICCV 2021 | `fca.rs` |
//! | [`CbamModule`] channel + spatial attention | Woo et al., ECCV 2018 | `cbam.rs` |
//! | [`TripletAttention`] | Misra et al., WACV 2021 | `triplet.rs` |
//! | [`PolarizedSelfAttention`] (parallel / sequential) | Liu et al., 2021 | `polarized.rs` |
//! | [`RcanChannelAttention`], [`Rcab`] | RCAN, Zhang et al., ECCV 2018 | `rcan_ca.rs` |
//! | [`SplitAttn`] split attention | ResNeSt, Zhang et al., 2020 | `split_attn.rs` |
//! | [`LayerAttention`], [`ChannelSpatialAttention`] | HAN, Niu et al., ECCV 2020 | `han.rs` |
//! | [`ResidualAttention`] soft-mask attention module | Wang et al., CVPR 2017 | `residual_attention.rs` |
//! | [`GridAttentionGate`], [`AttentionUNetGate`] | Attention U-Net, Oktay et al., 2018 | `attention_gate.rs` |
//! | [`PixelAttention`], [`PixelAttentionConv`] | PAN, Zhao et al. 2020 | `pixel_attention.rs` |
//! | [`Scpa`] (self-calibrated convolution with pixel attention) | PAN | `scpa.rs` |
//! | [`Upa`] (upsampling with pixel attention) | PAN | `upa.rs` |
//! | [`Aab`] attention in attention (attention + non-attention branches, dynamic branch weights) | A2N, Chen et al. 2021 | `aab.rs` |
//! | [`Vab`], [`VastAttention`] (vast-receptive-field attention) | VapSR, Zhou et al., ECCVW 2022 | `vab.rs` |
//! | [`Hab`], [`Cab`] hybrid attention block (window self-attention + channel attention) | HAT, Chen et al., CVPR 2023 | `hab.rs` |
//! | [`Ocab`] overlapping cross-attention block | HAT | `ocab.rs` |
//! | [`BsConvU`], [`BsConvS`] blueprint separable convolutions | BSRN, Li et al., CVPRW 2022 | `bsconv.rs` |
//! | [`Esa`] enhanced spatial attention | BSRN (after RFDN) | `esa.rs` |
//! | [`Esdb`] efficient separable distillation block | BSRN | `esdb.rs` |
//! | [`CcaLayer`] contrast-aware channel attention | IMDN, Hui et al., ACM MM 2019 | `cca.rs` |
//! | [`ImdModule`] information multi-distillation block | IMDN | `imdb.rs` |
//!
//! [`attention::create_attn`] builds any shape-preserving block by name (`"se"`, `"cbam"`, …),
//! as timm's `attn_layer` does, so backbones take any of them.
//!
//! ```
//! use burn::prelude::*;
//! use gaze_blocks::PixelAttentionConfig;
//!
//! let device = Device::flex();
//! let pa = PixelAttentionConfig::new(16).init(&device);
//! let x = Tensor::<4>::ones([1, 16, 8, 8], &device);
//! assert_eq!(pa.forward(x).dims(), [1, 16, 8, 8]);
//! ```

pub mod aab;
pub mod attention;
pub mod attention_gate;
pub mod bi_routing_attention;
pub mod bsconv;
pub mod cbam;
pub mod cca;
pub mod conv;
pub mod cpu_kernels;
pub mod cross_attention;
pub mod eca;
pub mod esa;
pub mod esdb;
pub mod fca;
pub mod hab;
pub mod halo_attention;
pub mod han;
pub mod imdb;
pub mod layer_norm;
pub mod layers;
pub mod levit_attention;
pub mod linear;
pub mod neighborhood_attention;
pub mod ocab;
pub mod pixel_attention;
pub mod polarized;
pub mod preact_bottleneck;
pub mod rcan_ca;
pub mod residual_attention;
pub mod scpa;
pub mod scse;
pub mod se;
pub mod split_attn;
mod train;
pub mod triplet;
pub mod upa;
pub mod vab;
pub mod vit_attention;
pub mod window_attention;

pub use aab::{Aab, AabConfig, AttentionBranch, AttentionBranchConfig, AttentionDropout};
pub use attention_gate::{
    AttentionUNetGate, AttentionUNetGateConfig, GridAttentionGate, GridAttentionGateConfig,
};
pub use bi_routing_attention::{
    BiLevelRoutingAttention, BiLevelRoutingAttentionConfig, KvDownsampleMode, ParamAttention,
    QkvLinear, TopkRouting,
};
pub use bsconv::{
    BsConvS, BsConvU, DepthWiseConv, Pointwise, SeparableConv, SeparableConvConfig,
    SeparableConvKind,
};
pub use cbam::{CbamConfig, CbamModule, ChannelAttn, SpatialAttn};
pub use cca::{CcaLayer, CcaLayerConfig};
pub use cross_attention::{
    CrossAttention, CrossTransformer, CrossTransformerConfig, PreNormCrossAttention,
};
pub use eca::{EcaConfig, EcaModule};
pub use esa::{BsrnLayout, Esa, EsaConfig, ESA_MIN_INPUT};
pub use esdb::{Esdb, EsdbConfig};
pub use fca::{FcaAttention, FcaConfig, FrequencySelection};
pub use hab::{Cab, CabConfig, Hab, HabConfig};
pub use halo_attention::{HaloAttn, HaloAttnConfig, HaloStats, PosEmbedRel};
pub use han::{
    ChannelSpatialAttention, ChannelSpatialAttentionConfig, LayerAttention, LayerAttentionConfig,
};
pub use imdb::{ImdModule, ImdModuleConfig};
pub use layers::{Activation, ConvNormAct, ConvNormActConfig};
pub use levit_attention::{
    ConvNorm, ConvNormConfig, LevitAttention, LevitAttentionConfig, LevitAttentionDownsample,
    LevitAttentionDownsampleConfig, LevitAttentionSubsample, LevitAttentionSubsampleConfig,
    LevitProj, LevitSubsample, LevitSubsampleQuery, LinearNorm, LinearNormConfig,
};
pub use neighborhood_attention::{
    NeighborhoodAttention, NeighborhoodAttentionConfig, NeighborhoodPlan,
};
pub use ocab::{Ocab, OcabConfig};
pub use pixel_attention::{
    PixelAttention, PixelAttentionConfig, PixelAttentionConv, PixelAttentionConvConfig,
};
pub use polarized::{
    ContextLayerNorm, ConvUpBottleneck, PolarizedConfig, PolarizedMode, PolarizedSelfAttention,
};
pub use preact_bottleneck::{PreActBottleneck, PreActBottleneckConfig};
pub use rcan_ca::{Rcab, RcabConfig, RcanChannelAttention, RcanChannelAttentionConfig};
pub use residual_attention::{ResidualAttention, ResidualAttentionConfig};
pub use scpa::{Scpa, ScpaConfig};
pub use se::{SeConfig, SeModule};
pub use split_attn::{SplitAttn, SplitAttnConfig};
pub use triplet::{TripletAttention, TripletAttentionConfig, ZPoolGate};
pub use upa::{Upa, UpaConfig};
pub use vab::{pixel_norm, Vab, VabConfig, VastAttention, VastAttentionConfig};
pub use vit_attention::{
    LayerScale, TokenMlp, TokenMlpConfig, VitAttention, VitAttentionConfig, VitBlock,
    VitBlockConfig,
};
pub use window_attention::{SwinBlock, SwinBlockConfig, WindowAttention, WindowAttentionConfig};
