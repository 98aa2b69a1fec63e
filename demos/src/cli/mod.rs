//! The verbs of the `gaze` binary, one module each. Every verb returns an error (printed as
//! one line by `main`, exit status 1) instead of panicking on bad input.

pub mod bench;
pub mod bench_attn;
pub mod bench_tokens;
pub mod classify;
pub mod convert;
pub mod degrade;
pub mod eval;
pub mod infer;
pub mod list;
pub mod preprocess;
pub mod seg_eval;
pub mod segment;
pub mod sr_eval;
pub mod train;
pub mod upscale;

use std::path::Path;

use gaze::backbones::{create_model_with, Model, ModelOptions};
use gaze::burn::prelude::*;

use gaze::DeviceChoice;

/// The error type of the verbs: a message for the user.
pub type CliResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// The model options every running verb takes.
#[derive(Debug, Clone, clap::Args)]
pub struct ModelArgs {
    /// Registered model (see `gaze list`).
    #[arg(long)]
    pub model: String,
    /// Checkpoint: official (.pth, .safetensors, …), saved by gaze, or a `gaze train` run
    /// directory (its last complete epoch).
    #[arg(long)]
    pub weights: Option<std::path::PathBuf>,
    /// cpu or wgpu.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
    /// Classes of the checkpoint's head, when not the registered model's (e.g. a model
    /// fine-tuned with `gaze train --num-classes`).
    #[arg(long)]
    pub num_classes: Option<usize>,
    /// Input channels of the checkpoint's stem, when not the registered model's.
    #[arg(long)]
    pub in_chans: Option<usize>,
    /// Attention in every decoder block of a `unet_<encoder>` model (a `gaze bench-attn`
    /// kind: scse as smp, or se, cbam, eca, …), as the checkpoint was trained.
    #[arg(long)]
    pub decoder_attention: Option<gaze::blocks::attention::AttentionKind>,
}

impl ModelArgs {
    /// timm's `create_model` options these arguments give.
    pub fn options(&self) -> ModelOptions {
        let mut options = ModelOptions::new();
        if let Some(n) = self.num_classes {
            options = options.num_classes(n);
        }
        if let Some(c) = self.in_chans {
            options = options.in_chans(c);
        }
        if let Some(k) = self.decoder_attention {
            options = options.decoder_attention(k);
        }
        options
    }

    /// The model with its weights, on its device.
    pub fn load(&self) -> CliResult<(Model, Device)> {
        load_model(
            &self.model,
            self.weights.as_deref(),
            self.device,
            &self.options(),
        )
    }
}

/// The model options of the super-resolution verbs: a registered model with its checkpoint,
/// or nothing for gaze's embedded default.
#[derive(Debug, Clone, clap::Args)]
pub struct SrModelArgs {
    /// Registered super-resolution model (see `gaze list`); default: gaze's embedded pan_x4,
    /// trained by gaze itself (see `trained/sr_default/model_card.json`).
    #[arg(long)]
    pub model: Option<String>,
    /// Checkpoint of --model: official (.pth, .safetensors, …), saved by gaze, or a
    /// `gaze train` run directory (its last complete epoch).
    #[arg(long, requires = "model")]
    pub weights: Option<std::path::PathBuf>,
    /// cpu or wgpu.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
}

impl SrModelArgs {
    /// Checks the model name before any file is read.
    pub fn check_name(&self) -> CliResult {
        if let Some(name) = &self.model {
            gaze::model_info(name)?;
        }
        Ok(())
    }

    /// The named model with its weights, or the embedded default; on its device.
    pub fn load(&self) -> CliResult<(Model, Device)> {
        match &self.model {
            Some(name) => load_model(
                name,
                self.weights.as_deref(),
                self.device,
                &ModelOptions::new(),
            )
            .map_err(|e| {
                if self.weights.is_none() {
                    format!(
                        "{e}; or leave out --model to run gaze's embedded {}",
                        gaze::sr::DEFAULT_MODEL
                    )
                    .into()
                } else {
                    e
                }
            }),
            None => {
                let device = self.device.open()?;
                Ok((gaze::sr::default_model(&device)?, device))
            }
        }
    }
}

/// Builds a registered model on a device and loads its weights. Without weights this is an
/// error that says where the official checkpoint is published: the CLI never runs random
/// weights.
pub fn load_model(
    name: &str,
    weights: Option<&Path>,
    device: DeviceChoice,
    options: &ModelOptions,
) -> CliResult<(Model, Device)> {
    let info = gaze::backbones::model_info(name)?;
    let weights = weights.ok_or_else(|| {
        format!(
            "--weights is required: '{}' would otherwise run with random weights; the official checkpoint is published at {}",
            info.name, info.weights
        )
    })?;
    if weights.is_dir() {
        // A training run, possibly still going: the model of its last complete epoch.
        let device = device.open()?;
        let model = gaze::train::load_run_model(weights, &device)?;
        if model.info().name != info.name {
            return Err(format!(
                "the run in '{}' trains {}, not {}",
                weights.display(),
                model.info().name,
                info.name
            )
            .into());
        }
        return Ok((model, device));
    }
    if !weights.is_file() {
        return Err(format!("weights file '{}' does not exist", weights.display()).into());
    }
    let device = device.open()?;
    let model = create_model_with(info.name, options, &device)?.load_weights(weights)?;
    Ok((model, device))
}

/// The eval-transform option of the classifying verbs.
#[derive(Debug, Clone, clap::Args)]
pub struct TransformArgs {
    /// Eval transform as timm's data-config JSON (default: the model's; `gaze train` writes
    /// its run's `data_config.json`).
    #[arg(long)]
    pub data_config: Option<std::path::PathBuf>,
}

impl TransformArgs {
    /// The model's classifier, with the data-config file's transform when one is given
    /// (checked against the model's input channels).
    pub fn classifier<'a>(&self, model: &'a Model) -> CliResult<gaze::Classifier<'a>> {
        let classifier = gaze::Classifier::new(model)?;
        let Some(path) = &self.data_config else {
            return Ok(classifier);
        };
        let t = gaze::preprocess::Transform::from_json_file(path)?;
        if t.channels != model.in_chans() {
            return Err(format!(
                "data config '{}' makes {}-channel inputs; the model takes {} (pass --in-chans)",
                path.display(),
                t.channels,
                model.in_chans()
            )
            .into());
        }
        Ok(classifier.with_transform(t))
    }
}
