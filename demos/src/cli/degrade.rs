//! `gaze degrade --scale S HR... -o DIR`: the benchmarks' bicubic LR images (MATLAB
//! `imresize(modcrop(hr, s), 1/s, 'bicubic')`, bit-exact), so any HR folder becomes a benchmark set.

use std::path::PathBuf;

use gaze::degrade::degrade;
use gaze::io::{read_image, write_image};
use gaze::sr::image_files;
use kdam::{tqdm, BarExt};

use super::CliResult;

/// Arguments of `gaze degrade`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Downscaling factor (2, 3, 4, 8…).
    #[arg(long)]
    pub scale: usize,
    /// HR images, or folders of them.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Output folder (created); `NAME.png` becomes `NAMEx<S>.png`, as in the benchmarks'
    /// `LR_bicubic/X<S>` folders.
    #[arg(short, long)]
    pub output: PathBuf,
}

/// Runs `gaze degrade`.
pub fn run(args: &Args) -> CliResult {
    if args.scale < 2 {
        return Err(format!("--scale must be at least 2, got {}", args.scale).into());
    }
    let mut files = Vec::new();
    for input in &args.inputs {
        if input.is_dir() {
            files.extend(image_files(input)?);
        } else if input.is_file() {
            files.push(input.clone());
        } else {
            return Err(format!("no such file or folder: '{}'", input.display()).into());
        }
    }
    std::fs::create_dir_all(&args.output).map_err(|e| {
        format!(
            "cannot create output folder '{}': {e}",
            args.output.display()
        )
    })?;
    let mut bar = tqdm!(total = files.len(), desc = "degrade", force_refresh = true);
    for file in &files {
        let hr = read_image(file)?;
        let lr = degrade(&hr, args.scale).map_err(|e| format!("'{}': {e}", file.display()))?;
        let stem = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        write_image(args.output.join(format!("{stem}x{}.png", args.scale)), &lr)?;
        let _ = bar.update(1);
    }
    eprintln!();
    eprintln!(
        "{} image(s) degraded ×{} into {}",
        files.len(),
        args.scale,
        args.output.display()
    );
    Ok(())
}
