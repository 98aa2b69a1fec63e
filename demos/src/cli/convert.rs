//! `gaze convert --model M IN OUT`: any checkpoint gaze reads (PyTorch legacy or zip pickle,
//! safetensors, ONNX as either exporter writes it) to safetensors under the official key names
//! (what timm or the official code loads) or to Burn's burnpack. Strict: the input must fit the
//! model; the output is written atomically.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gaze::backbones::create_model_with;
use gaze::burn::prelude::*;
use kdam::{tqdm, Bar, BarExt};

use super::CliResult;

/// What `gaze convert` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// safetensors under the official key names, PyTorch layout.
    Safetensors,
    /// Burn's burnpack (module paths, Burn layout).
    Burnpack,
}

/// Arguments of `gaze convert`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Registered model the checkpoint belongs to (see `gaze list`).
    #[arg(long)]
    pub model: String,
    /// Checkpoint to read: .pth/.pt (legacy or zip), .safetensors, .onnx (with its .data).
    pub input: PathBuf,
    /// File to write.
    pub output: PathBuf,
    /// Output format (default: from OUT's extension, .bpk → burnpack, else safetensors).
    #[arg(long)]
    pub to: Option<OutputFormat>,
    /// Classes of the checkpoint's head, when not the registered model's.
    #[arg(long)]
    pub num_classes: Option<usize>,
    /// Input channels of the checkpoint's stem, when not the registered model's.
    #[arg(long)]
    pub in_chans: Option<usize>,
}

/// Runs `gaze convert`.
pub fn run(args: &Args) -> CliResult {
    let info = gaze::model_info(&args.model)?;
    if !args.input.is_file() {
        return Err(format!("checkpoint '{}' does not exist", args.input.display()).into());
    }
    if args.input.canonicalize().ok() == args.output.canonicalize().ok() {
        return Err("the output would overwrite the input".into());
    }
    let format =
        args.to
            .unwrap_or_else(|| match args.output.extension().and_then(|e| e.to_str()) {
                Some("bpk" | "burnpack") => OutputFormat::Burnpack,
                _ => OutputFormat::Safetensors,
            });
    let mut options = gaze::backbones::ModelOptions::new();
    if let Some(n) = args.num_classes {
        options = options.num_classes(n);
    }
    if let Some(c) = args.in_chans {
        options = options.in_chans(c);
    }
    let device = Device::flex();
    let size = std::fs::metadata(&args.input)?.len();
    // Stages (build, read and match, write) on a bar that keeps its clock running; shown for
    // files large enough to take a while.
    let progress = (size > 50_000_000).then(|| {
        StageBar::start(
            3,
            format!(
                "convert {:.0} MB: building {}",
                size as f64 / 1e6,
                info.name
            ),
        )
    });
    let model = create_model_with(info.name, &options, &device)?;
    if let Some(p) = &progress {
        p.next(format!("reading {}", args.input.display()));
    }
    let (model, summary) = model.load_weights_with_summary(&args.input)?;
    if let Some(p) = &progress {
        p.next(format!("writing {}", args.output.display()));
    }
    match format {
        OutputFormat::Safetensors => model.save_safetensors(&args.output)?,
        OutputFormat::Burnpack => model.save_burnpack(&args.output)?,
    }
    if let Some(p) = progress {
        p.finish();
    }
    let how = summary.to_string();
    if !how.is_empty() {
        eprintln!("{how}");
    }
    eprintln!(
        "wrote {} ({} parameters of {}, {})",
        args.output.display(),
        model.num_params(),
        info.name,
        match format {
            OutputFormat::Safetensors => "safetensors, official key names",
            OutputFormat::Burnpack => "burnpack",
        }
    );
    Ok(())
}

/// A bar over a few long stages whose elapsed time keeps counting while a stage runs (a
/// background thread redraws it), so a large conversion never looks stalled.
struct StageBar {
    bar: Arc<Mutex<Bar>>,
    done: Arc<AtomicBool>,
    ticker: Option<std::thread::JoinHandle<()>>,
}

impl StageBar {
    fn start(stages: usize, desc: String) -> Self {
        let bar = Arc::new(Mutex::new(tqdm!(
            total = stages,
            desc = desc,
            unit = " stages",
            force_refresh = true
        )));
        let done = Arc::new(AtomicBool::new(false));
        let ticker = {
            let (bar, done) = (bar.clone(), done.clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(250));
                    if let Ok(mut bar) = bar.lock() {
                        let _ = bar.refresh();
                    }
                }
            })
        };
        StageBar {
            bar,
            done,
            ticker: Some(ticker),
        }
    }

    /// Ends the current stage and names the next.
    fn next(&self, desc: String) {
        if let Ok(mut bar) = self.bar.lock() {
            bar.set_description(desc);
            let _ = bar.update(1);
        }
    }

    fn finish(self) {
        if let Ok(mut bar) = self.bar.lock() {
            let _ = bar.update(1);
        }
    }
}

impl Drop for StageBar {
    /// Stops the clock and ends the bar's line (also when a stage fails, before its error).
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(ticker) = self.ticker.take() {
            let _ = ticker.join();
        }
        eprintln!();
    }
}
