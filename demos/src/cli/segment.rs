//! `gaze segment --model M --weights W IMAGE... -o OUT_DIR [--overlay]`: for each image, the
//! foreground probability as a 16-bit PNG (`<stem>_prob.png`, level = round(p · 65535)) and the
//! mask (`<stem>_mask.png`: 0/255 at the threshold for a binary model, the class index per
//! pixel for K classes), optionally the mask over the image (`<stem>_overlay.png`). Images of
//! any size; large ones run as overlapping tiles blended without seams. Every file is written
//! atomically.

use std::path::{Path, PathBuf};

use gaze::preprocess::open_rgb;
use gaze::segment::{overlay, probabilities, save_png, Tiling};
use kdam::{tqdm, BarExt};

use super::{CliResult, ModelArgs};

/// Arguments of `gaze segment`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Images to segment.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// Output folder (created if needed).
    #[arg(short, long)]
    pub out: PathBuf,
    /// Foreground threshold of the binary mask.
    #[arg(long, default_value_t = 0.5)]
    pub threshold: f64,
    /// Also write the mask over the image.
    #[arg(long)]
    pub overlay: bool,
    /// Tile side for large images (0: always the whole image; default: whole images up to
    /// 1024×1024, else 512² tiles).
    #[arg(long)]
    pub tile: Option<usize>,
    /// Overlap of neighbouring tiles, blended with linear ramps.
    #[arg(long, default_value_t = 64)]
    pub overlap: usize,
}

/// The tiling the options ask for.
pub fn tiling(tile: Option<usize>, overlap: usize) -> CliResult<Tiling> {
    Ok(match tile {
        None => Tiling::Auto,
        Some(0) => Tiling::Whole,
        Some(t) if overlap >= t => {
            return Err(format!("--overlap {overlap} must be smaller than --tile {t}").into())
        }
        Some(t) => Tiling::Tiles { tile: t, overlap },
    })
}

/// The registry entry of a segmentation model (an error for other models).
pub fn segmentation_model(name: &str) -> CliResult<&'static gaze::ModelInfo> {
    let info = gaze::model_info(name)?;
    if !matches!(info.task, gaze::Task::Segmentation { .. }) {
        return Err(format!(
            "{} is a {} model, not a segmentation model",
            info.name, info.task
        )
        .into());
    }
    Ok(info)
}

/// `<out>/<stem><suffix>.png`.
pub fn output_path(out: &Path, image: &Path, suffix: &str) -> PathBuf {
    let stem = image
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into());
    out.join(format!("{stem}{suffix}.png"))
}

/// Runs `gaze segment`.
pub fn run(args: &Args) -> CliResult {
    segmentation_model(&args.model.model)?;
    if !(0.0..=1.0).contains(&args.threshold) {
        return Err("--threshold must lie in [0, 1]".into());
    }
    let tiling = tiling(args.tile, args.overlap)?;
    let (model, _device) = args.model.load()?;
    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("cannot create '{}': {e}", args.out.display()))?;
    let mut bar = (args.images.len() > 1).then(|| {
        tqdm!(
            total = args.images.len(),
            desc = "segment",
            force_refresh = true
        )
    });
    let mut failed = Vec::new();
    for path in &args.images {
        match segment_one(&model, path, args, tiling) {
            Ok(()) => {}
            Err(e) => failed.push(format!("{}: {e}", path.display())),
        }
        if let Some(bar) = bar.as_mut() {
            let _ = bar.update(1);
        }
    }
    if bar.is_some() {
        eprintln!();
    }
    for f in &failed {
        eprintln!("warning: {f}");
    }
    if !failed.is_empty() {
        return Err(format!("{} of {} images failed", failed.len(), args.images.len()).into());
    }
    Ok(())
}

fn segment_one(model: &gaze::Model, path: &Path, args: &Args, tiling: Tiling) -> CliResult {
    let image = open_rgb(path)?;
    let probs = probabilities(model, &image, tiling)?;
    let mask = probs.mask(args.threshold);
    save_png(
        &probs.probability_image(),
        &output_path(&args.out, path, "_prob"),
    )?;
    save_png(&mask, &output_path(&args.out, path, "_mask"))?;
    if args.overlay {
        save_png(
            &overlay(&image, &probs.foreground_mask(args.threshold), [255, 0, 0]),
            &output_path(&args.out, path, "_overlay"),
        )?;
    }
    Ok(())
}
