//! # gaze — a vision attention-model zoo on Burn
//!
//! One dependency for apps: create a registered model by name (with timm's options), load its
//! official checkpoint exactly as its authors published it, run it on the CPU or any GPU
//! (WGPU), train it as any Burn module, and save it back under the official key names.
//!
//! ```no_run
//! use gaze::prelude::*;
//!
//! let device = Device::flex(); // or Device::wgpu(DeviceKind::DefaultDevice)
//! let model = gaze::create_model("pan_x4", &device)?.load_weights("PANx4_DF2K.pth")?;
//!
//! // Images: read, upscale (tiled when large), write; gray/RGBA/16-bit handled.
//! let lr = gaze::io::read_image("photo.png")?;
//! let sr = gaze::sr::upscale_image(&model, &lr, &device, None)?;
//! gaze::io::write_image("photo_x4.png", &sr)?;
//!
//! // Or raw tensors: [N, 3, h, w] in [0, 1] → [N, 3, 4h, 4w].
//! let out = model.forward(Tensor::<4>::zeros([1, 3, 24, 24], &device))?;
//!
//! // A classifier with a fresh 10-class head on gray images, fine-tuned from timm weights,
//! // then saved so timm loads it.
//! let options = ModelOptions::new().num_classes(10).in_chans(1);
//! let (model, summary) = gaze::create_model_with("resnet50d", &options, &device)?
//!     .load_weights_with_summary("resnet50d.safetensors")?;
//! println!("{summary}"); // which head keys were skipped, which stem was adapted
//! model.save_safetensors("resnet50d_finetuned.safetensors")?;
//! # Ok::<(), gaze::Error>(())
//! ```
//!
//! The crates behind it, re-exported here: [`blocks`] (attention blocks and shared layers),
//! [`heads`] (task heads), [`backbones`] (model families and the registry), [`weights`]
//! (checkpoint reading and writing), plus host-side code: [`io`] (images), [`sr`] (tiled
//! super-resolution and its evaluation), [`degrade`] (MATLAB-exact bicubic downscaling), [`metrics`] (PSNR/SSIM with the papers' protocol),
//! [`npy`] and [`device`]. The `gaze` command-line tool (crate `gaze-demos`) is built on these.

pub mod classify;
pub mod data;
pub mod degrade;
pub mod device;
pub mod io;
pub mod metrics;
pub mod npy;
pub mod preprocess;
pub mod segment;
pub mod sr;
pub mod train;

pub use gaze_backbones as backbones;
pub use gaze_blocks as blocks;
pub use gaze_heads as heads;
pub use gaze_weights as weights;
pub use gaze_weights::atomic_write;

pub use classify::{classify, Classifier, Labels, Prediction};
pub use device::DeviceChoice;
pub use gaze_backbones::{
    create_model, create_model_with, model_info, models, Features, LoadSummary, Model, ModelError,
    ModelInfo, ModelOptions, Output, Task, UnknownModel,
};
pub use gaze_weights::{Checkpoint, LoadError, SaveError};

/// Burn re-exported, so apps use the same version as gaze.
pub use burn;

/// What most programs need: Burn's prelude (`Tensor`, `Device`, `DeviceKind`, …) and the
/// model API.
pub mod prelude {
    pub use crate::{create_model, create_model_with, Model, ModelOptions, Output};
    pub use burn::prelude::*;
}

/// Any error of the library's host-side functions.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No registered model has the name.
    #[error(transparent)]
    UnknownModel(#[from] UnknownModel),
    /// A model option or input was rejected.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A checkpoint could not be loaded.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A model could not be saved.
    #[error(transparent)]
    Save(#[from] SaveError),
    /// An image could not be read or written.
    #[error(transparent)]
    Image(#[from] io::ImageIoError),
    /// A `.npy` file could not be read or written.
    #[error(transparent)]
    Npy(#[from] npy::NpyError),
    /// A file-system error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A model has no classification transform.
    #[error(transparent)]
    Transform(#[from] preprocess::TransformError),
    /// A data set could not be opened.
    #[error(transparent)]
    Data(#[from] data::DataError),
    /// Anything else, as a sentence.
    #[error("{0}")]
    Message(String),
}

impl Error {
    /// An error with this message.
    pub fn msg(message: impl Into<String>) -> Self {
        Error::Message(message.into())
    }
}
