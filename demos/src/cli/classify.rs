//! `gaze classify --model M --weights W IMAGE... [--topk 5] [--json]`: the top-k classes of each
//! image, with the model's eval transform and class names.

use std::path::PathBuf;

use gaze::classify::{Labels, Prediction};
use gaze::preprocess::open_rgb;
use kdam::{tqdm, BarExt};

use super::{CliResult, ModelArgs, TransformArgs};

/// Arguments of `gaze classify`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub transform: TransformArgs,
    /// Images to classify.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// How many classes to show per image.
    #[arg(long, default_value_t = 5)]
    pub topk: usize,
    /// Class names, one per line (default: the model's label set, e.g. ImageNet-1k).
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Images per forward pass.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Print one JSON array on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(serde::Serialize)]
struct ImageResult {
    image: String,
    predictions: Vec<Prediction>,
}

/// Runs `gaze classify`.
pub fn run(args: &Args) -> CliResult {
    gaze::model_info(&args.model.model)?;
    if args.topk == 0 {
        return Err("--topk must be at least 1".into());
    }
    let labels = args.labels.as_deref().map(Labels::from_file).transpose()?;
    let (model, _device) = args.model.load()?;
    let mut classifier = args.transform.classifier(&model)?;
    if let Some(labels) = labels {
        classifier = classifier.with_labels(labels);
    }
    let mut bar = (args.images.len() > args.batch.max(1)).then(|| {
        tqdm!(
            total = args.images.len(),
            desc = "classify",
            force_refresh = true
        )
    });
    let mut results = Vec::new();
    let mut failed = Vec::new();
    for chunk in args.images.chunks(args.batch.max(1)) {
        let mut names = Vec::new();
        let mut images = Vec::new();
        for path in chunk {
            match open_rgb(path) {
                Ok(img) => {
                    names.push(path.display().to_string());
                    images.push(img);
                }
                Err(e) => failed.push(e.to_string()),
            }
        }
        if !images.is_empty() {
            for (image, predictions) in names
                .into_iter()
                .zip(classifier.classify(&images, args.topk)?)
            {
                if !args.json {
                    print_block(&image, &predictions, bar.is_some());
                }
                results.push(ImageResult { image, predictions });
            }
        }
        if let Some(bar) = bar.as_mut() {
            let _ = bar.update(chunk.len());
        }
    }
    if bar.is_some() {
        eprintln!();
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    }
    for f in &failed {
        eprintln!("warning: {f}");
    }
    if !failed.is_empty() {
        return Err(format!(
            "{} of {} images could not be read",
            failed.len(),
            args.images.len()
        )
        .into());
    }
    Ok(())
}

fn print_block(image: &str, predictions: &[Prediction], above_bar: bool) {
    let mut text = format!("{image}\n");
    for p in predictions {
        text += &format!(
            "  {:>7.3}%  {} ({})\n",
            100.0 * p.probability,
            p.label,
            p.class
        );
    }
    if above_bar {
        // Keep the progress bar on its own line.
        eprint!("\r\x1b[2K");
    }
    print!("{text}");
}
