//! `gaze seg-eval --model M --weights W --data DRIVE/test [--json]`: the DRIVE protocol —
//! only field-of-view pixels count, pooled over the test set, threshold 0.5: F1 (= Dice), AUC,
//! accuracy, sensitivity, specificity (plus precision and IoU), and the same per image.
//! Probabilities are quantised to the 16-bit levels `gaze segment` writes, so the figures are
//! exactly those recomputed from its PNGs.

use std::path::PathBuf;

use gaze::data::SegmentationSet;
use gaze::segment::{probabilities, LevelHistogram, SegMetrics};
use kdam::{tqdm, BarExt};

use super::{CliResult, ModelArgs};

/// Arguments of `gaze seg-eval`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Test folder: images/, 1st_manual/ (or masks/), optional mask/ (field of view); the DRIVE
    /// root selects its test/.
    #[arg(long)]
    pub data: PathBuf,
    /// Foreground threshold.
    #[arg(long, default_value_t = 0.5)]
    pub threshold: f64,
    /// Tile side for large images (0: whole images; default: whole up to 1024×1024).
    #[arg(long)]
    pub tile: Option<usize>,
    /// Overlap of neighbouring tiles.
    #[arg(long, default_value_t = 64)]
    pub overlap: usize,
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(serde::Serialize)]
struct Report {
    model: String,
    data: String,
    threshold: f64,
    pooled: SegMetrics,
    images: Vec<(String, SegMetrics)>,
}

/// Runs `gaze seg-eval`.
pub fn run(args: &Args) -> CliResult {
    let info = super::segment::segmentation_model(&args.model.model)?;
    let tiling = super::segment::tiling(args.tile, args.overlap)?;
    let root = if args.data.join("test").join("images").is_dir() {
        args.data.join("test")
    } else {
        args.data.clone()
    };
    let set = SegmentationSet::open(&root, true)?;
    for p in set.missing_fov() {
        eprintln!(
            "warning: no field-of-view mask for '{}': every pixel counts",
            p.display()
        );
    }
    let (model, _device) = args.model.load()?;
    let mut bar = tqdm!(
        total = set.samples.len(),
        desc = "seg-eval",
        force_refresh = true
    );
    let mut pooled = LevelHistogram::new();
    let mut images = Vec::new();
    for sample in &set.samples {
        let pixels = sample.read()?;
        let probs = probabilities(&model, &pixels.image, tiling)?;
        let mut one = LevelHistogram::new();
        let truth = pixels.truth.as_deref().expect("opened with ground truth");
        one.add(&probs.foreground_levels(), truth, Some(&pixels.fov));
        pooled.merge(&one);
        images.push((
            sample.image.display().to_string(),
            one.metrics(args.threshold),
        ));
        let _ = bar.update(1);
    }
    eprintln!();
    let report = Report {
        model: info.name.to_string(),
        data: root.display().to_string(),
        threshold: args.threshold,
        pooled: pooled.metrics(args.threshold),
        images,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "{:<40} {:>7} {:>7} {:>7} {:>7} {:>7}",
        "image", "F1", "AUC", "Acc", "Sens", "Spec"
    );
    let row = |name: &str, m: &SegMetrics| {
        println!(
            "{:<40} {:>7.4} {:>7.4} {:>7.4} {:>7.4} {:>7.4}",
            name, m.f1, m.auc, m.accuracy, m.sensitivity, m.specificity
        )
    };
    for (name, m) in &report.images {
        let short = std::path::Path::new(name)
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        row(&short, m);
    }
    row("pooled (DRIVE protocol)", &report.pooled);
    Ok(())
}
