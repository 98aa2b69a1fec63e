//! `gaze`: run the zoo's models from the command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gaze_demos::cli;

/// glibc's malloc for small blocks and mimalloc for large ones ([`gaze_demos::allocator`]).
#[global_allocator]
static ALLOCATOR: gaze_demos::allocator::GazeAllocator = gaze_demos::allocator::GazeAllocator;

/// A vision attention-model zoo on Burn.
#[derive(Debug, Parser)]
#[command(name = "gaze", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// On a checkpoint that does not fit, list every missing, unexpected and mismatched key.
    #[arg(long, global = true)]
    verbose: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the registered models.
    List(cli::list::Args),
    /// Super-resolve an image.
    Upscale(cli::upscale::Args),
    /// Evaluate an SR model on a benchmark set (PSNR/SSIM, Y and RGB).
    SrEval(cli::sr_eval::Args),
    /// Make LR images from HR ones with MATLAB's bicubic imresize, bit-exact.
    Degrade(cli::degrade::Args),
    /// Classify images (top-k classes).
    Classify(cli::classify::Args),
    /// Top-1/top-5 accuracy of a classifier on a labelled image folder.
    Eval(cli::eval::Args),
    /// Write the tensor a classifier sees for an image (timm's eval transform) as .npy.
    Preprocess(cli::preprocess::Args),
    /// Segment images (probability and mask PNGs, optional overlay).
    Segment(cli::segment::Args),
    /// Evaluate a segmentation model (DRIVE protocol: F1, AUC, accuracy, sensitivity, specificity).
    SegEval(cli::seg_eval::Args),
    /// Train or fine-tune a classifier or segmentation model (resumable).
    Train(cli::train::Args),
    /// Convert a checkpoint (pth, safetensors, ONNX) to safetensors under the official names, or burnpack.
    Convert(cli::convert::Args),
    /// Run a model on an NCHW .npy tensor.
    Infer(cli::infer::Args),
    /// Benchmark registered models: latency, throughput, peak memory, parameters.
    Bench(cli::bench::Args),
    /// Compare every attention block: parameters, FLOPs, latency.
    BenchAttn(cli::bench_attn::Args),
}

fn main() -> ExitCode {
    gaze_demos::allocator::keep_freed_memory();
    let args = Cli::parse();
    let result = match &args.command {
        Command::List(a) => cli::list::run(a),
        Command::Upscale(a) => cli::upscale::run(a),
        Command::SrEval(a) => cli::sr_eval::run(a),
        Command::Degrade(a) => cli::degrade::run(a),
        Command::Classify(a) => cli::classify::run(a),
        Command::Eval(a) => cli::eval::run(a),
        Command::Preprocess(a) => cli::preprocess::run(a),
        Command::Segment(a) => cli::segment::run(a),
        Command::SegEval(a) => cli::seg_eval::run(a),
        Command::Train(a) => cli::train::run(a),
        Command::Convert(a) => cli::convert::run(a),
        Command::Infer(a) => cli::infer::run(a),
        Command::Bench(a) => cli::bench::run(a),
        Command::BenchAttn(a) => cli::bench_attn::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            match e.downcast_ref::<gaze::LoadError>() {
                Some(gaze::LoadError::Mismatch { path, report, hint }) if args.verbose => {
                    eprintln!(
                        "error: checkpoint '{path}' does not match the model: {}",
                        report.verbose()
                    );
                    if let Some(hint) = hint {
                        eprintln!("  {hint}");
                    }
                }
                Some(gaze::LoadError::Mismatch { .. }) => {
                    eprintln!("error: {e}\n  (--verbose lists every key)")
                }
                _ => eprintln!("error: {e}"),
            }
            ExitCode::FAILURE
        }
    }
}
