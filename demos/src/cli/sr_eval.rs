//! `gaze sr-eval`: PSNR/SSIM of an SR model on a benchmark set, with the papers' protocol.

use std::path::PathBuf;

use gaze::sr::{evaluate_with, pair_images};
use kdam::{tqdm, BarExt};

use super::{CliResult, SrModelArgs};

/// Arguments of `gaze sr-eval`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub model: SrModelArgs,
    /// Directory of high-resolution ground-truth images.
    #[arg(long)]
    pub hr: PathBuf,
    /// Directory of low-resolution inputs (`NAME.png` or `NAMEx4.png` for HR `NAME.png`).
    #[arg(long)]
    pub lr: PathBuf,
    /// Upscaling factor; also the border cropped before measuring.
    #[arg(long)]
    pub scale: usize,
    /// Average the outputs of the 8 flips/transpositions of each input (the papers' "+"
    /// rows; 8× slower).
    #[arg(long)]
    pub self_ensemble: bool,
    /// Print one JSON object on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `gaze sr-eval`.
pub fn run(args: &Args) -> CliResult {
    // The model name first: a typo should not cost reading two image folders.
    args.model.check_name()?;
    let pairs = pair_images(&args.hr, &args.lr, args.scale)?;
    let (model, device) = args.model.load()?;
    if model.scale() != Some(args.scale) {
        return Err(format!(
            "{} is not a x{} model ({})",
            model.info().name,
            args.scale,
            model.info().task
        )
        .into());
    }
    let mut bar = tqdm!(total = pairs.len(), desc = "sr-eval", force_refresh = true);
    let report = evaluate_with(&model, &device, &pairs, args.self_ensemble, |_| {
        let _ = bar.update(1);
    })?;
    eprintln!();
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "{:<16} {:>9} {:>8} {:>9} {:>8}",
            "image", "PSNR_Y", "SSIM_Y", "PSNR_RGB", "SSIM_RGB"
        );
        for s in &report.images {
            println!(
                "{:<16} {:>9.4} {:>8.4} {:>9.4} {:>8.4}",
                s.name, s.psnr_y, s.ssim_y, s.psnr_rgb, s.ssim_rgb
            );
        }
        println!(
            "{:<16} {:>9.4} {:>8.4} {:>9.4} {:>8.4}",
            "average", report.psnr_y, report.ssim_y, report.psnr_rgb, report.ssim_rgb
        );
    }
    Ok(())
}
