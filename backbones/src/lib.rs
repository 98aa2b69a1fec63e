//! Models composed from gaze blocks and heads, and the registry that names them.
//!
//! Every registered model is created by name and loads its official checkpoint as published:
//!
//! ```no_run
//! use burn::prelude::*;
//!
//! let device = Device::flex();
//! let model = gaze_backbones::create_model("pan_x4", &device)?
//!     .load_weights("PANx4_DF2K.pth")?;
//! let lr = Tensor::<4>::zeros([1, 3, 32, 32], &device);
//! let sr = model.forward(lr)?.into_image(); // Some([1, 3, 128, 128])
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod a2n;
pub mod biformer;
pub mod bsrn;
pub mod encoder_unet;
pub mod family;
pub mod features;
pub mod halonet;
pub mod han;
pub mod hat;
pub mod imdn;
pub mod levit;
pub mod model;
pub mod nat;
pub mod pan;
pub mod pos_embed;
pub mod rcan;
pub mod registry;
pub mod residual_attention_net;
pub mod resnet;
pub mod swin;
pub mod swin_unet;
pub mod unet;
pub mod vapsr;
pub mod vit;

pub use a2n::{A2n, A2nConfig};
pub use bsrn::{Bsrn, BsrnConfig};
pub use family::{Family, FamilyNet};
pub use features::FeatureInfo;
pub use han::{Han, HanConfig};
pub use hat::{Hat, HatConfig};
pub use imdn::{Imdn, ImdnConfig};
pub use model::{
    Features, InputSize, LoadSummary, Model, ModelConfig, ModelError, ModelOptions, Net, Output,
};
pub use pan::{Pan, PanConfig};
pub use rcan::{Rcan, RcanConfig, ResidualGroup, ResidualGroupConfig};
pub use registry::{
    create_model, create_model_with, model_info, models, CropMode, DataConfig, ImageConfig,
    Interpolation, LabelSet, ModelInfo, Task, UnknownModel,
};
pub use residual_attention_net::{ResidualAttentionNet, ResidualAttentionNetConfig};
pub use resnet::{ResNet, ResNetConfig};
pub use unet::{SkipGate, UNet, UNetConfig};
pub use vapsr::{Vapsr, VapsrConfig};
