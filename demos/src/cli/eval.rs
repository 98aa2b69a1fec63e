//! `gaze eval --model M --weights W DIR [--labels TSV]`: top-1/top-5 accuracy on an ImageFolder
//! tree or a flat folder with a labels file, with throughput.

use std::path::PathBuf;

use gaze::classify::evaluate;
use gaze::data::LabeledImages;
use kdam::{tqdm, BarExt};

use super::{CliResult, ModelArgs, TransformArgs};

/// Arguments of `gaze eval`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub transform: TransformArgs,
    /// Class sub-folders of images, or a folder of images with --labels.
    pub dir: PathBuf,
    /// Labels file: `file<TAB>class index` lines (a header line is allowed), files relative to
    /// DIR or DIR/images (the layout of ImageNet validation samples).
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Images per forward pass.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Print one JSON object on stdout.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print one CSV header and row on stdout.
    #[arg(long)]
    pub csv: bool,
}

/// Runs `gaze eval`.
pub fn run(args: &Args) -> CliResult {
    gaze::model_info(&args.model.model)?;
    let data = LabeledImages::open(&args.dir, args.labels.as_deref())?;
    let (model, _device) = args.model.load()?;
    let classes = model.config().num_classes().unwrap_or(0);
    if let Some((path, label)) = data.items.iter().find(|(_, l)| *l >= classes) {
        return Err(format!(
            "'{}' has class {label}, but {} predicts {classes} classes",
            path.display(),
            model.info().name
        )
        .into());
    }
    let classifier = args.transform.classifier(&model)?;
    let mut bar = tqdm!(
        total = data.items.len(),
        desc = "eval",
        unit = "img",
        force_refresh = true
    );
    let report = evaluate(&classifier, &data, args.batch, |done, _| {
        let _ = bar.update_to(done);
    })?;
    eprintln!();
    for (path, why) in &report.skipped {
        eprintln!("warning: skipped '{path}': {why}");
    }
    let name = model.info().name;
    if args.json {
        println!(
            "{}",
            serde_json::json!({ "model": name, "report": serde_json::to_value(&report)? })
        );
    } else if args.csv {
        println!("model,images,skipped,top1,top5,images_per_second");
        println!(
            "{name},{},{},{:.3},{:.3},{:.2}",
            report.images,
            report.skipped.len(),
            report.top1,
            report.top5,
            report.images_per_second
        );
    } else {
        println!(
            "{name}: top-1 {:.2}%  top-5 {:.2}%  on {} images ({} skipped), {:.1} images/s",
            report.top1,
            report.top5,
            report.images,
            report.skipped.len(),
            report.images_per_second
        );
    }
    Ok(())
}
