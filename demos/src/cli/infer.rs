//! `gaze infer --model M --weights FILE --input X.npy --output Y.npy [--features-dir DIR]`:
//! raw NCHW float32 tensors in and out, for NumPy pipelines and verification.

use std::path::PathBuf;

use gaze::burn::prelude::*;
use gaze::Output;

use super::{CliResult, ModelArgs};
use gaze::npy::{read_npy_f32, write_npy_f32};

/// Arguments of `gaze infer`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Input tensor, float32 (or float64) .npy of shape [N, C, H, W].
    #[arg(long)]
    pub input: PathBuf,
    /// Output tensor (.npy, float32).
    #[arg(long)]
    pub output: PathBuf,
    /// Also write each multi-scale feature map as DIR/level{i}.npy.
    #[arg(long)]
    pub features_dir: Option<PathBuf>,
}

/// Runs `gaze infer`.
pub fn run(args: &Args) -> CliResult {
    // The model name first: a typo should not cost reading a large tensor.
    let info = gaze::model_info(&args.model.model)?;
    let (shape, data) = read_npy_f32(&args.input)?;
    let [n, c, h, w] = <[usize; 4]>::try_from(shape.as_slice()).map_err(|_| {
        format!(
            "'{}' has shape {:?}; gaze infer expects an NCHW tensor [N, C, H, W]",
            args.input.display(),
            shape
        )
    })?;
    let in_chans = args.model.in_chans.unwrap_or(info.in_channels);
    if c != in_chans || n == 0 || h == 0 || w == 0 {
        return Err(format!(
            "'{}' has shape {:?}; {} expects [N, {}, H, W] with N, H, W > 0",
            args.input.display(),
            shape,
            info.name,
            in_chans
        )
        .into());
    }
    info.config()
        .input_size()
        .check(h, w)
        .map_err(|e| format!("{}: {e}", info.name))?;
    let (model, device) = args.model.load()?;
    if args.features_dir.is_some() && model.feature_info().is_empty() {
        return Err(format!(
            "{} has no multi-scale feature maps; drop --features-dir",
            info.name
        )
        .into());
    }
    let x = Tensor::<4>::from_data(TensorData::new(data, [n, c, h, w]), &device);
    if let Some(dir) = &args.features_dir {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create '{}': {e}", dir.display()))?;
        for (i, level) in model
            .forward_intermediates(x.clone())?
            .into_iter()
            .enumerate()
        {
            write_tensor(&dir.join(format!("level{i}.npy")), Output::Image(level))?;
        }
    }
    write_tensor(&args.output, model.forward(x)?)
}

fn write_tensor(path: &std::path::Path, t: Output) -> CliResult {
    let shape = t.dims();
    let data = t
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .map_err(|e| format!("{e:?}"))?;
    write_npy_f32(path, &shape, &data)?;
    Ok(())
}
