//! `gaze upscale [--model M --weights FILE] INPUT -o OUTPUT`: super-resolve one image; without
//! a model, with gaze's embedded default (PAN ×4 trained by gaze, nothing to download).

use std::path::PathBuf;

use super::{CliResult, SrModelArgs};
use gaze::io::{read_image, write_image};
use gaze::sr::{upscale_image_to_png, upscale_image_with, SrOptions, Tiling};
use kdam::{tqdm, BarExt};

/// Arguments of `gaze upscale`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub model: SrModelArgs,
    /// Input image (png, jpeg, tiff, bmp, gif; gray, RGB, RGBA, 8 or 16 bits).
    pub input: PathBuf,
    /// Output image; the format follows the extension.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Tile side in input pixels for large images (0 = never tile; default: tile inputs over
    /// 512×512 in 256 px tiles).
    #[arg(long)]
    pub tile: Option<usize>,
    /// Average the outputs of the 8 flips/transpositions of the input (the papers' "+"
    /// results; 8× slower).
    #[arg(long)]
    pub self_ensemble: bool,
}

/// Runs `gaze upscale`.
pub fn run(args: &Args) -> CliResult {
    // The model name first, then the input: neither a typo nor a bad image should cost a
    // model load.
    args.model.check_name()?;
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
    let options = SrOptions {
        tiling,
        self_ensemble: args.self_ensemble,
        blend: None,
    };
    let (sw, sh) = (
        image.width * scale_of(&model)?,
        image.height * scale_of(&model)?,
    );
    let is_png = args
        .output
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if is_png {
        // Band by band straight into the encoder: memory stays bounded for any size. The bar
        // appears only for tiled images (several bands), and ends its line before any error.
        let mut bar: Option<kdam::Bar> = None;
        let result = upscale_image_to_png(
            &model,
            &image,
            &device,
            options,
            &args.output,
            |done, total| {
                if total > 1 {
                    let bar = bar.get_or_insert_with(|| {
                        tqdm!(
                            total = total,
                            desc = "upscale",
                            unit = " bands",
                            force_refresh = true
                        )
                    });
                    let _ = bar.update_to(done);
                }
            },
        );
        if bar.is_some() {
            eprintln!();
        }
        result?;
    } else {
        let output = upscale_image_with(&model, &image, &device, options)?;
        write_image(&args.output, &output)?;
    }
    eprintln!(
        "{}: {}×{} → {sw}×{sh} written to {}",
        model.info().name,
        image.width,
        image.height,
        args.output.display()
    );
    Ok(())
}

fn scale_of(model: &gaze::Model) -> CliResult<usize> {
    model
        .scale()
        .ok_or_else(|| format!("{} is not a super-resolution model", model.info().name).into())
}
