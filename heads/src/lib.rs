//! Task heads: the part of a model after its feature extractor.
//!
//! | head | used by | file |
//! |---|---|---|
//! | [`classifier::classify`], [`ClassifierHead`]: global average pool + linear classifier | CNN and hierarchical transformer backbones | `classifier.rs` |
//! | [`Upsampler`] (EDSR/RCAN/HAT), [`PixelShuffleBlock`] (IMDN/BSRN/VapSR): sub-pixel upsampling | pixel-shuffle SR networks | `pixel_shuffle.rs` |
//! | [`SrHead`]: U-PA upsampling stages + output conv + bilinear global skip | PAN | `sr.rs` |

pub mod classifier;
pub mod pixel_shuffle;
pub mod sr;

pub use classifier::ClassifierHead;
pub use pixel_shuffle::{PixelShuffleBlock, PixelShuffleBlockConfig, Upsampler, UpsamplerConfig};
pub use sr::{upsampling_factors, SrHead, SrHeadConfig};
