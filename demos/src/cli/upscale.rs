//! `gaze upscale --model M --weights FILE INPUT -o OUTPUT`: super-resolve one image.

use std::path::PathBuf;

use super::{CliResult, ModelArgs};
use gaze::io::{read_image, write_image};
use gaze::sr::{upscale_image, Tiling};

/// Arguments of `gaze upscale`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Input image (png, jpeg, tiff, bmp, gif; gray, RGB, RGBA, 8 or 16 bits).
    pub input: PathBuf,
    /// Output image; the format follows the extension.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Tile side in input pixels for large images (0 = never tile; default: tile inputs over
    /// 512×512 in 256 px tiles).
    #[arg(long)]
    pub tile: Option<usize>,
}

/// Runs `gaze upscale`.
pub fn run(args: &Args) -> CliResult {
    // The model name first, then the input: neither a typo nor a bad image should cost a
    // model load.
    gaze::model_info(&args.model.model)?;
    let image = read_image(&args.input)?;
    let (model, device) = args.model.load()?;
    let tiling = match args.tile {
        Some(0) => None,
        Some(tile) => Some(Tiling {
            tile,
            ..Tiling::DEFAULT
        }),
        None => Tiling::auto(image.height, image.width),
    };
    let output = upscale_image(&model, &image, &device, tiling)?;
    write_image(&args.output, &output)?;
    eprintln!(
        "{}: {}×{} → {}×{} written to {}",
        model.info().name,
        image.width,
        image.height,
        output.width,
        output.height,
        args.output.display()
    );
    Ok(())
}
