//! `gaze preprocess --model M IMAGE... -o X.npy`: the exact NCHW float32 tensor the model sees
//! (timm's eval transform), for debugging pipelines and for verification.

use std::path::PathBuf;

use gaze::npy::write_npy_f32;
use gaze::preprocess::{open_rgb, Transform};

use super::CliResult;

/// Arguments of `gaze preprocess`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Registered classifier (see `gaze list`); its default tag's transform is used.
    #[arg(long)]
    pub model: String,
    /// Images (one batch entry each, in order).
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// Output .npy (float32, [N, C, H, W]).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Channels the model takes (1 applies PIL's gray conversion).
    #[arg(long, default_value_t = 3)]
    pub in_chans: usize,
}

/// Runs `gaze preprocess`.
pub fn run(args: &Args) -> CliResult {
    let info = gaze::model_info(&args.model)?;
    let mut transform = Transform::from_config(&info.data).ok_or_else(|| {
        format!(
            "'{}' is not a classifier; it takes whole images in [0, 1]",
            info.name
        )
    })?;
    if !matches!(args.in_chans, 1 | 3) {
        return Err(format!("--in-chans must be 1 or 3, not {}", args.in_chans).into());
    }
    transform.channels = args.in_chans;
    let mut values = Vec::new();
    for path in &args.images {
        values.extend(transform.apply(&open_rgb(path)?));
    }
    let [h, w] = transform.size;
    write_npy_f32(
        &args.output,
        &[args.images.len(), transform.channels, h, w],
        &values,
    )?;
    Ok(())
}
