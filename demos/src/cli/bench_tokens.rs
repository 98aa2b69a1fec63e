//! `gaze bench-attn --tokens`: the token mixers at equal width and token count — global
//! multi-head self-attention, Swin window attention, neighborhood attention, halo attention and
//! bi-level routing attention — with latency, the size of the attention-weights tensor each
//! builds, and the host memory one forward pass takes. A benchmark, not a test.
//!
//! Every mixer maps the `[1, H, W, C]` map to a map (or tokens to tokens): window attention
//! includes the partition into windows and the merge back, as a Swin block runs it, since the
//! neighborhood, halo and routing mixers do their own layout work inside. The window row
//! without them (windows in, windows out) follows for comparison with earlier tables.

use std::time::Instant;

use gaze::blocks::bi_routing_attention::BiLevelRoutingAttentionConfig;
use gaze::blocks::halo_attention::HaloAttnConfig;
use gaze::blocks::neighborhood_attention::NeighborhoodAttentionConfig;
use gaze::blocks::vit_attention::VitAttentionConfig;
use gaze::blocks::window_attention::{window_partition, window_reverse, WindowAttentionConfig};
use gaze::burn::prelude::*;

use super::bench_attn::{median, Args};
use super::CliResult;

/// One row of the comparison.
#[derive(Debug, Clone)]
pub struct TokenRow {
    /// Mixer name.
    pub name: &'static str,
    /// Elements of the attention-weights tensor(s) one forward builds.
    pub attn_elems: usize,
    /// Median latency in milliseconds; the device's error where the mixer failed (a GPU that
    /// cannot hold global attention's N × N scores at 112², say).
    pub median_ms: Result<f64, String>,
    /// Host peak-RSS growth during one forward pass, MiB (Linux, CPU device).
    pub peak_mib: Option<f64>,
}

fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Returns the allocators' free memory to the system, so that the peak measured next counts
/// every page the measured code needs, not only pages beyond those freed earlier (model
/// construction frees temporaries the forward pass would otherwise reuse unseen): mimalloc's
/// (the `gaze` binary's global allocator) and glibc's (what else allocates).
fn trim_heap() {
    // SAFETY: `mi_collect` frees only memory mimalloc holds unused; it touches no live block.
    unsafe {
        libmimalloc_sys::mi_collect(true);
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> i32;
        }
        // SAFETY: glibc's malloc_trim only releases free memory back to the system; it reads
        // and writes no memory of ours.
        unsafe {
            malloc_trim(0);
        }
    }
}

/// Peak resident memory growth of `f`, by resetting the kernel's high-water mark (Linux only),
/// after returning free heap memory to the system.
pub fn peak_growth_mib(f: impl FnOnce()) -> Option<f64> {
    trim_heap();
    let before = status_kib("VmRSS:")?;
    std::fs::write("/proc/self/clear_refs", "5").ok()?;
    f();
    let peak = status_kib("VmHWM:")?;
    Some(peak.saturating_sub(before) as f64 / 1024.0)
}

type Mixer = Box<dyn Fn() -> Result<f32, String>>;

/// The sum of a mixer's output, forcing the computation; the device's error as its first line.
fn total<const D: usize>(t: Tensor<D>) -> Result<f32, String> {
    t.sum().try_into_scalar::<f32>().map_err(|e| {
        let message = format!("{e:?}");
        message.lines().next().unwrap_or("device error").to_string()
    })
}

/// Builds the mixers on a `[1, H, W, dim]` input; each closure runs one forward pass and
/// reduces it to a number (forcing the computation).
fn mixers(args: &Args, device: &Device) -> Result<Vec<(&'static str, usize, Mixer)>, String> {
    let [h, w] = [args.size[0], args.size[1]];
    let (dim, heads, k) = (args.dim, args.heads, args.window);
    if h % k != 0 || w % k != 0 || h < k || w < k {
        return Err(format!("--size {h} {w} must be multiples of --window {k} (window and routing regions tile the map)"));
    }
    if dim % heads != 0 {
        return Err(format!("--dim {dim} must be divisible by --heads {heads}"));
    }
    let halo_block = if h % 8 == 0 && w % 8 == 0 { 8 } else { k };
    let x = Tensor::<4>::random(
        [1, h, w, dim],
        gaze::burn::tensor::Distribution::Normal(0.0, 1.0),
        device,
    );
    let n = h * w;

    let mhsa = VitAttentionConfig::new(dim)
        .with_num_heads(heads)
        .with_qkv_bias(true)
        .init(device);
    let tokens = x.clone().reshape([1, n, dim]);
    let global: Mixer = Box::new(move || total(mhsa.forward(tokens.clone())));

    let win = WindowAttentionConfig::new(dim, heads)
        .with_window_size([k, k])
        .init(device);
    let core = win.clone();
    let xw = x.clone();
    let window: Mixer = Box::new(move || {
        let windows = window_partition(xw.clone(), [k, k]).reshape([n / (k * k), k * k, dim]);
        let out = win.forward(windows, None).reshape([n / (k * k), k, k, dim]);
        total(window_reverse(out, [k, k], h, w))
    });
    let windows = window_partition(x.clone(), [k, k]).reshape([n / (k * k), k * k, dim]);
    let window_core: Mixer = Box::new(move || total(core.forward(windows.clone(), None)));

    let na = NeighborhoodAttentionConfig::new(dim, heads)
        .with_kernel_size(k)
        .init(device);
    let xn = x.clone();
    let neighborhood: Mixer = Box::new(move || total(na.forward(xn.clone())));

    let halo_cfg = HaloAttnConfig::new(dim)
        .with_num_heads(heads)
        .with_block_size(halo_block)
        .with_halo_size(3);
    let halo = halo_cfg.init(device);
    let halo_elems = halo.attention_matrix_elems(h, w);
    let xc = x.clone().permute([0, 3, 1, 2]);
    let halo_run: Mixer = Box::new(move || total(halo.forward(xc.clone())));

    let topk = 4;
    let bra = BiLevelRoutingAttentionConfig::new(dim)
        .with_num_heads(heads)
        .with_n_win(k)
        .with_topk(topk)
        .init(device);
    let xb = x.clone();
    let routing: Mixer = Box::new(move || total(bra.forward(xb.clone())));
    let region = (h / k) * (w / k);

    Ok(vec![
        ("global MHSA", heads * n * n, global),
        ("window (Swin)", heads * n * k * k, window),
        ("window (windows in/out)", heads * n * k * k, window_core),
        ("neighborhood (NAT)", heads * n * k * k, neighborhood),
        ("halo (HaloNet)", halo_elems, halo_run),
        ("bi-level routing", heads * n * topk * (n / region), routing),
    ])
}

/// Runs the comparison.
pub fn run(args: &Args) -> CliResult {
    if args.size.len() != 2 {
        return Err("--size needs two numbers (H W)".into());
    }
    let device = args.device.open()?;
    let measure_memory = matches!(args.device, gaze::DeviceChoice::Cpu);
    let mut rows = Vec::new();
    for (name, attn_elems, run) in mixers(args, &device)? {
        let mut first = Ok(0.0);
        let peak_mib = if measure_memory {
            peak_growth_mib(|| first = run())
        } else {
            first = run();
            None
        };
        // A mixer the device cannot run is reported as such; the others still are measured.
        let median_ms = first.and_then(|_| {
            for _ in 0..args.warmup {
                run()?;
            }
            let mut times = Vec::new();
            for _ in 0..args.runs.max(1) {
                let t = Instant::now();
                run()?;
                times.push(t.elapsed().as_secs_f64() * 1e3);
            }
            Ok(median(times))
        });
        rows.push(TokenRow {
            name,
            attn_elems,
            median_ms,
            peak_mib,
        });
    }
    let ms = |r: &TokenRow, width: usize| match &r.median_ms {
        Ok(ms) => format!("{ms:>width$.3}"),
        Err(e) => format!("failed: {e}"),
    };
    let mib = |r: &TokenRow| r.peak_mib.map_or("n/a".to_string(), |m| format!("{m:.1}"));
    if args.csv {
        println!("mixer,attn_elems,median_ms,peak_mib");
        for r in &rows {
            let ms = match &r.median_ms {
                Ok(ms) => format!("{ms:.4}"),
                Err(_) => "failed".to_string(),
            };
            println!("{},{},{ms},{}", r.name, r.attn_elems, mib(r));
        }
    } else {
        println!(
            "token mixers on a {}×{} map, dim {}, {} heads, window/kernel {} on {} (median of {} runs)",
            args.size[0], args.size[1], args.dim, args.heads, args.window, args.device, args.runs
        );
        println!(
            "{:<24} {:>14} {:>11} {:>14}",
            "mixer", "attn weights", "median ms", "peak MiB (host)"
        );
        for r in &rows {
            println!(
                "{:<24} {:>14} {} {:>14}",
                r.name,
                r.attn_elems,
                ms(r, 11),
                mib(r)
            );
        }
    }
    Ok(())
}
