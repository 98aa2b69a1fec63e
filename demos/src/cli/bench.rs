//! `gaze bench`: registered models with random weights, one row each: batch-1 latency (median),
//! throughput at `--batch`, host peak memory of the first and of a later forward pass,
//! parameters, and with `--train`
//! the time of a training step (forward and backward) at `--batch`. A benchmark, not
//! a test; `benches/compare_torch.py` runs PyTorch on the same models in the same run.

use std::time::Instant;

use gaze::backbones::{create_model, models, InputSize, Model, Task};
use gaze::burn::module::{ModuleVisitor, Param};
use gaze::burn::prelude::*;
use gaze::DeviceChoice;

use super::bench_attn::median;
use super::bench_tokens::peak_growth_mib;
use super::CliResult;

/// The models of the performance table (the speed issue's set).
pub const DEFAULT_MODELS: [&str; 9] = [
    "levit_128s",
    "vit_tiny_patch16_224",
    "deit_small_patch16_224",
    "resnet50",
    "seresnet50",
    "resnest14d",
    "swin_tiny_patch4_window7_224",
    "halonet26t",
    "pan_x4",
];

/// Arguments of `gaze bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Models to run (comma-separated); default: the performance table's nine.
    #[arg(long, value_delimiter = ',', conflicts_with = "all")]
    pub models: Vec<String>,
    /// Every registered model.
    #[arg(long)]
    pub all: bool,
    /// Batch of the throughput measurement (latency is always at batch 1).
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// CPU threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Timed batch-1 runs per model (the median is reported).
    #[arg(long, default_value_t = 7)]
    pub runs: usize,
    /// Timed runs at `--batch` (the median is reported; 0 skips the throughput).
    #[arg(long, default_value_t = 3)]
    pub batch_runs: usize,
    /// Untimed warm-up runs (kernel compilation on GPUs, first-touch allocation).
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Input height and width for every model (default: the model's own: a classifier's
    /// pretrained size, 128×128 for super-resolution, 256×256 for segmentation).
    #[arg(long, num_args = 2, value_names = ["H", "W"])]
    pub size: Option<Vec<usize>>,
    /// cpu or wgpu.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
    /// Print CSV instead of the table.
    #[arg(long)]
    pub csv: bool,
    /// Also time a training step at `--batch`: forward and backward of the output's mean on
    /// the autodiff device (normalisation layers in training mode), median of `--batch-runs`.
    #[arg(long)]
    pub train: bool,
}

/// One model's measurements.
#[derive(Debug, Clone)]
pub struct BenchRow {
    /// Registered name.
    pub model: String,
    /// Input `[H, W]`.
    pub size: [usize; 2],
    /// Parameters (PyTorch's count).
    pub params: usize,
    /// Median batch-1 latency, ms.
    pub latency_ms: f64,
    /// Images per second at `--batch` (median run), if measured.
    pub throughput: Option<f64>,
    /// Host peak-RSS growth during the first batch-1 forward pass, MiB (CPU, Linux): what the
    /// pass needs plus one-time costs (code paged in, per-thread scratch, allocator arenas).
    pub peak_mib: Option<f64>,
    /// Host peak-RSS growth during a batch-1 pass after the warm-up runs, MiB (CPU, Linux):
    /// what every pass needs beyond the memory already held.
    pub steady_mib: Option<f64>,
    /// Median forward + backward time at `--batch`, ms (with `--train`).
    pub train_ms: Option<f64>,
}

impl BenchRow {
    /// The columns of `gaze bench --csv` (`benches/compare_torch.py` reads them by name).
    pub const CSV_HEADER: &str =
        "model,height,width,params,latency_ms,batch,images_per_s,peak_mib,steady_mib,train_ms";

    /// The row as a line of [`BenchRow::CSV_HEADER`]'s columns (`batch`: `--batch`).
    pub fn to_csv(&self, batch: usize) -> String {
        let optional =
            |v: Option<f64>, digits: usize| v.map_or(String::new(), |v| format!("{v:.digits$}"));
        format!(
            "{},{},{},{},{:.3},{batch},{},{},{},{}",
            self.model,
            self.size[0],
            self.size[1],
            self.params,
            self.latency_ms,
            optional(self.throughput, 2),
            optional(self.peak_mib, 1),
            optional(self.steady_mib, 1),
            optional(self.train_ms, 1)
        )
    }

    /// A line written by [`BenchRow::to_csv`] (the batch column is not kept).
    pub fn from_csv(line: &str) -> Option<Self> {
        let fields: Vec<&str> = line.split(',').collect();
        let [model, height, width, params, latency, _batch, throughput, peak, steady, train] =
            fields[..]
        else {
            return None;
        };
        let optional = |s: &str| -> Option<Option<f64>> {
            if s.is_empty() {
                Some(None)
            } else {
                s.parse().ok().map(Some)
            }
        };
        Some(Self {
            model: model.to_string(),
            size: [height.parse().ok()?, width.parse().ok()?],
            params: params.parse().ok()?,
            latency_ms: latency.parse().ok()?,
            throughput: optional(throughput)?,
            peak_mib: optional(peak)?,
            steady_mib: optional(steady)?,
            train_ms: optional(train)?,
        })
    }
}

/// The input side a model is benchmarked at by default.
pub fn default_size(model: &Model) -> [usize; 2] {
    if let Some(image) = model.info().data.image() {
        return [image.input_size[1], image.input_size[2]];
    }
    let side = match model.task() {
        Task::SuperResolution { .. } => 128,
        _ => 256,
    };
    match model.input_size() {
        InputSize::Fixed(size) => size,
        InputSize::AtLeast([h, w]) => [h.max(side), w.max(side)],
        InputSize::PaddedTo(_) | InputSize::Any => [side, side],
    }
}

/// The input `[H, W]` of `model` in this run, checked.
fn input_size(model: &Model, args: &Args) -> CliResult<[usize; 2]> {
    let size = match &args.size {
        Some(s) => [s[0], s[1]],
        None => default_size(model),
    };
    model.check_input([1, model.in_chans(), size[0], size[1]])?;
    Ok(size)
}

fn time_ms(f: &dyn Fn()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64() * 1e3
}

/// Touches every parameter: Burn initialises parameters lazily, on first use, so without this
/// the first forward pass would also allocate the weights (a loaded model has them already,
/// and so has the PyTorch model it is compared with).
struct Materialize;

impl ModuleVisitor for Materialize {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let _ = param.val();
    }
}

/// Measures one model.
pub fn bench_model(name: &str, args: &Args, device: &Device) -> CliResult<BenchRow> {
    let model = create_model(name, device)?;
    model.net().visit(&mut Materialize);
    let size = input_size(&model, args)?;
    let input = |batch: usize| {
        Tensor::<4>::random(
            [batch, model.in_chans(), size[0], size[1]],
            gaze::burn::tensor::Distribution::Uniform(0.0, 1.0),
            device,
        )
    };
    // Reducing to one value forces the computation (and a GPU sync) without timing a large
    // transfer.
    let run = |x: &Tensor<4>| {
        let y = model.forward(x.clone()).expect("input checked");
        reduce(y, Reduction::Sum).into_scalar::<f32>();
    };
    let one = input(1);
    // The first pass pays what a process pays once (code paged in, the pool threads' scratch
    // and arenas) on top of what the pass itself needs; a pass after the warm-ups needs only
    // the latter. Both are measured after free heap memory went back to the system.
    let on_cpu = args.device == DeviceChoice::Cpu;
    let peak_mib = if on_cpu {
        peak_growth_mib(|| run(&one))
    } else {
        run(&one);
        None
    };
    for _ in 0..args.warmup {
        run(&one);
    }
    let steady_mib = on_cpu.then(|| peak_growth_mib(|| run(&one))).flatten();
    let latency_ms = median(
        (0..args.runs.max(1))
            .map(|_| time_ms(&|| run(&one)))
            .collect(),
    );
    let throughput = if args.batch_runs > 0 {
        let many = input(args.batch);
        run(&many);
        let ms = median(
            (0..args.batch_runs)
                .map(|_| time_ms(&|| run(&many)))
                .collect(),
        );
        Some(args.batch as f64 * 1e3 / ms)
    } else {
        None
    };
    let train_ms = args
        .train
        .then(|| train_step_ms(name, size, args, device))
        .transpose()?;
    Ok(BenchRow {
        model: name.to_string(),
        size,
        params: gaze::weights::count_parameters(model.net()),
        latency_ms,
        throughput,
        peak_mib,
        steady_mib,
        train_ms,
    })
}

#[derive(Clone, Copy)]
enum Reduction {
    Sum,
    Mean,
}

/// A model's output reduced to one value (the sum over feature levels).
fn reduce(output: gaze::Output, how: Reduction) -> Tensor<1> {
    fn one<const D: usize>(t: Tensor<D>, how: Reduction) -> Tensor<1> {
        match how {
            Reduction::Sum => t.sum(),
            Reduction::Mean => t.mean(),
        }
    }
    match output {
        gaze::Output::Logits(t) => one(t, how),
        gaze::Output::Image(t) | gaze::Output::Mask(t) => one(t, how),
        gaze::Output::Features(maps) => maps
            .into_iter()
            .map(|t| one(t, how))
            .reduce(|a, b| a + b)
            .expect("at least one level"),
    }
}

/// Median time of one training step (forward, mean of the output, backward) at `--batch` on
/// the autodiff device, after `--warmup` untimed steps.
fn train_step_ms(name: &str, size: [usize; 2], args: &Args, device: &Device) -> CliResult<f64> {
    let device = device.clone().autodiff();
    let model = create_model(name, &device)?;
    model.net().visit(&mut Materialize);
    let x = Tensor::<4>::random(
        [args.batch, model.in_chans(), size[0], size[1]],
        gaze::burn::tensor::Distribution::Uniform(0.0, 1.0),
        &device,
    );
    let step = || {
        let y = model.forward(x.clone()).expect("input checked");
        drop(reduce(y, Reduction::Mean).backward());
    };
    for _ in 0..args.warmup.max(1) {
        step();
    }
    Ok(median(
        (0..args.batch_runs.max(1))
            .map(|_| time_ms(&step))
            .collect(),
    ))
}

/// Measures one model in a child `gaze bench --csv` process with the same options.
fn bench_in_child(name: &str, args: &Args) -> CliResult<BenchRow> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the gaze binary: {e}"))?;
    let mut command = std::process::Command::new(exe);
    command.args(["bench", "--csv", "--device", "cpu", "--models", name]);
    for (flag, value) in [
        ("--batch", args.batch),
        ("--runs", args.runs),
        ("--batch-runs", args.batch_runs),
        ("--warmup", args.warmup),
    ] {
        command.args([flag.to_string(), value.to_string()]);
    }
    if let Some(threads) = args.threads {
        command.args(["--threads".to_string(), threads.to_string()]);
    }
    if let Some(size) = &args.size {
        command.args([
            "--size".to_string(),
            size[0].to_string(),
            size[1].to_string(),
        ]);
    }
    if args.train {
        command.arg("--train");
    }
    let output = command
        .output()
        .map_err(|e| format!("{name}: cannot run the benchmark process: {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!("{name}: {}", stderr.trim()).into());
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    BenchRow::from_csv(line)
        .ok_or_else(|| format!("{name}: unreadable benchmark output {line:?}").into())
}

/// Runs `gaze bench`.
pub fn run(args: &Args) -> CliResult {
    if args.batch == 0 || args.runs == 0 {
        return Err("--batch and --runs must be positive".into());
    }
    if let Some(s) = &args.size {
        if s.len() != 2 || s.contains(&0) {
            return Err("--size needs two positive numbers (H W)".into());
        }
    }
    if let Some(threads) = args.threads {
        if threads == 0 {
            return Err("--threads must be positive".into());
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()
            .map_err(|e| format!("cannot set {threads} threads: {e}"))?;
    }
    let names: Vec<String> = if args.all {
        models().iter().map(|m| m.name.to_string()).collect()
    } else if args.models.is_empty() {
        DEFAULT_MODELS.iter().map(|s| s.to_string()).collect()
    } else {
        args.models.clone()
    };
    // Unknown names and sizes a model does not take fail before anything runs.
    for name in &names {
        input_size(&create_model(name, &Device::flex())?, args)?;
    }
    let device = args.device.open()?;
    let threads = rayon::current_num_threads();
    if args.csv {
        println!("{}", BenchRow::CSV_HEADER);
    } else {
        println!(
            "gaze {} on {} ({threads} CPU threads), fp32, random weights; latency: median of {} batch-1 runs; throughput: batch {}, median of {} runs",
            env!("CARGO_PKG_VERSION"),
            args.device,
            args.runs,
            args.batch,
            args.batch_runs
        );
        println!(
            "{:<32} {:>9} {:>11} {:>11} {:>10} {:>14} {:>15} {:>14}",
            "model",
            "input",
            "params (M)",
            "latency ms",
            "images/s",
            "first pass MiB",
            "later pass MiB",
            "train step ms"
        );
    }
    // Several models on the CPU: each in a process of its own, so that its first pass is
    // measured on a fresh heap (the pool threads' allocator arenas keep memory that earlier
    // models freed, and glibc's `malloc_trim` does not return it: later peaks read too low).
    let isolate = names.len() > 1 && args.device == DeviceChoice::Cpu;
    for name in &names {
        let row = if isolate {
            bench_in_child(name, args)?
        } else {
            bench_model(name, args, &device)?
        };
        if args.csv {
            println!("{}", row.to_csv(args.batch));
        } else {
            let throughput = row.throughput.map_or(String::new(), |t| format!("{t:.2}"));
            let mib = |m: Option<f64>| m.map_or(String::new(), |m| format!("{m:.1}"));
            let train = row.train_ms.map_or(String::new(), |t| format!("{t:.1}"));
            println!(
                "{:<32} {:>9} {:>11.2} {:>11.2} {:>10} {:>14} {:>15} {:>14}",
                row.model,
                format!("{}×{}", row.size[0], row.size[1]),
                row.params as f64 / 1e6,
                row.latency_ms,
                throughput,
                mib(row.peak_mib),
                mib(row.steady_mib),
                train
            );
        }
    }
    Ok(())
}
