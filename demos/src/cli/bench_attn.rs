//! `gaze bench-attn`: every attention block side by side at the same input: parameters,
//! analytic FLOPs and measured latency. A benchmark, not a test.

use std::time::Instant;

use gaze::blocks::attention::{create_attn, Attention, AttentionKind};
use gaze::burn::prelude::*;

use super::CliResult;
use gaze::DeviceChoice;

/// Arguments of `gaze bench-attn`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Channels of the feature map.
    #[arg(long, default_value_t = 64)]
    pub channels: usize,
    /// Height and width of the feature map.
    #[arg(long, num_args = 2, value_names = ["H", "W"], default_values_t = [56, 56])]
    pub size: Vec<usize>,
    /// Batch size.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Timed runs per block (the median is reported).
    #[arg(long, default_value_t = 20)]
    pub runs: usize,
    /// Untimed warm-up runs per block (kernel compilation on GPUs).
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Only these kinds (comma-separated names); default: all.
    #[arg(long, value_delimiter = ',')]
    pub kinds: Vec<AttentionKind>,
    /// Print CSV instead of the table.
    #[arg(long)]
    pub csv: bool,
    /// Compare the token mixers instead (global MHSA, Swin windows, neighborhood, halo,
    /// bi-level routing) at `--dim` channels on the `--size` grid, window/kernel `--window`.
    #[arg(long)]
    pub tokens: bool,
    /// Token width of the token-mixer comparison.
    #[arg(long, default_value_t = 96)]
    pub dim: usize,
    /// Heads of the token-mixer comparison.
    #[arg(long, default_value_t = 3)]
    pub heads: usize,
    /// Window side / neighborhood kernel of the token-mixer comparison.
    #[arg(long, default_value_t = 7)]
    pub window: usize,
    /// cpu or wgpu.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
}

/// One row of the table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchRow {
    /// Block name.
    pub kind: String,
    /// Parameters.
    pub params: usize,
    /// Floating-point operations of one forward pass (multiply-add = 2).
    pub flops: u64,
    /// Median latency in milliseconds.
    pub median_ms: f64,
}

fn dims4(t: &gaze::burn::module::Param<Tensor<4>>) -> [usize; 4] {
    t.val().dims()
}

/// Analytic FLOPs of one forward pass on `[n, c, h, w]`: 2 per multiply-add of every
/// convolution and matrix product, 1 per element of pooling, normalisation, activation, gate
/// and residual operations. Hidden widths are read from the block's own weights.
pub fn attention_flops(attn: &Attention, [n, c, h, w]: [usize; 4]) -> u64 {
    let (c, p) = (c as u64, (h * w) as u64);
    let map = c * p; // one pass over the feature map
    let conv = |d: [usize; 4], positions: u64| {
        2 * d.iter().map(|&v| v as u64).product::<u64>() * positions
    };
    let per_item = match attn {
        Attention::Se(m) => {
            let rd = dims4(&m.fc1.weight)[0] as u64;
            map + conv(dims4(&m.fc1.weight), 1) + conv(dims4(&m.fc2.weight), 1) + rd + c + map
        }
        Attention::Eca(m) => {
            let k = m.conv.weight.val().dims()[2] as u64;
            map + 2 * c * k + c + map
        }
        Attention::Fca(m) => {
            let [hidden, _] = m.fc1.weight.val().dims();
            let hidden = hidden as u64;
            // DCT-weighted pooling over the (pooled) map, then the MLP.
            2 * map + 2 * (2 * c * hidden) + hidden + c + map
        }
        Attention::Cbam(m) => {
            let rd = dims4(&m.channel.fc1.weight)[0] as u64;
            let k = dims4(&m.spatial.conv.conv.weight)[2] as u64;
            let channel = 2 * map
                + 2 * (conv(dims4(&m.channel.fc1.weight), 1)
                    + conv(dims4(&m.channel.fc2.weight), 1)
                    + rd)
                + 2 * c
                + map;
            let spatial = 2 * map + 2 * 2 * k * k * p + 3 * p + map;
            channel + spatial
        }
        Attention::Triplet(m) => {
            let branches = 2 + u64::from(m.spatial_gate.is_some());
            let k = dims4(&m.channel_gate_h.spatial.conv.weight)[2] as u64;
            branches * (2 * map + 2 * 2 * k * k * p + 3 * p + map) + branches * map
        }
        Attention::Psa(m) => {
            let half = c / 2;
            let q_right = conv(dims4(&m.conv_q_right.weight), p);
            let v_right = conv(dims4(&m.conv_v_right.weight), p);
            let up = match (&m.conv_up, &m.conv_up_seq) {
                (Some(u), _) => conv(dims4(&u.weight), 1),
                (_, Some(s)) => {
                    conv(dims4(&s.reduce.weight), 1) + conv(dims4(&s.expand.weight), 1) + 4 * c
                }
                _ => 0,
            };
            let channel = q_right + v_right + 3 * p + 2 * half * p + up + c + map;
            let q_left = conv(dims4(&m.conv_q_left.weight), p);
            let v_left = conv(dims4(&m.conv_v_left.weight), p);
            let spatial = q_left + v_left + half * p + 3 * half + 2 * half * p + p + map;
            channel + spatial + map
        }
        Attention::Ca(m) => {
            map + conv(dims4(&m.conv_down.weight), 1) + conv(dims4(&m.conv_up.weight), 1) + c + map
        }
        Attention::Pa(m) => conv(dims4(&m.conv.weight), p) + 2 * map,
        Attention::Csam(_) => 2 * 27 * map + 4 * map,
        Attention::Scse(m) => {
            let rd = dims4(&m.cse.fc1.weight)[0] as u64;
            // Channel branch: pool, MLP, sigmoid; spatial branch: 1×1 conv, sigmoid; two
            // products and their sum.
            map + conv(dims4(&m.cse.fc1.weight), 1)
                + conv(dims4(&m.cse.fc2.weight), 1)
                + rd
                + c
                + conv(dims4(&m.sse.weight), p)
                + p
                + 3 * map
        }
    };
    per_item * n as u64
}

/// The median of `v`.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// Benchmarks the blocks; rows in table order.
pub fn bench(args: &Args, device: &Device) -> Vec<BenchRow> {
    let [h, w] = [args.size[0], args.size[1]];
    let shape = [args.batch, args.channels, h, w];
    let kinds = if args.kinds.is_empty() {
        AttentionKind::ALL.to_vec()
    } else {
        args.kinds.clone()
    };
    let x = Tensor::<4>::random(
        shape,
        gaze::burn::tensor::Distribution::Normal(0.0, 1.0),
        device,
    );
    kinds
        .into_iter()
        .map(|kind| {
            let attn = create_attn(kind, args.channels, device);
            // Reducing to one value forces the computation without timing a large transfer.
            let run = || attn.forward(x.clone()).sum().into_scalar::<f32>();
            for _ in 0..args.warmup {
                run();
            }
            let times = (0..args.runs.max(1))
                .map(|_| {
                    let t = Instant::now();
                    run();
                    t.elapsed().as_secs_f64() * 1e3
                })
                .collect();
            BenchRow {
                kind: kind.name().into(),
                params: gaze::weights::count_parameters(&attn),
                flops: attention_flops(&attn, shape),
                median_ms: median(times),
            }
        })
        .collect()
}

/// Runs `gaze bench-attn`.
pub fn run(args: &Args) -> CliResult {
    if args.tokens {
        return crate::cli::bench_tokens::run(args);
    }
    if args.channels < 16 || args.channels % 16 != 0 {
        return Err("--channels must be a positive multiple of 16 (FcaNet splits channels into 16 frequency groups)".into());
    }
    if args.size.len() != 2 || args.size.contains(&0) || args.batch == 0 {
        return Err("--size needs two positive numbers (H W) and --batch must be positive".into());
    }
    let device = args.device.open()?;
    let rows = bench(args, &device);
    if args.csv {
        println!("kind,params,flops,median_ms");
        for r in &rows {
            println!("{},{},{},{:.4}", r.kind, r.params, r.flops, r.median_ms);
        }
    } else {
        println!(
            "attention blocks at [{}, {}, {}, {}] on {} (median of {} runs after {} warm-up)",
            args.batch,
            args.channels,
            args.size[0],
            args.size[1],
            args.device,
            args.runs,
            args.warmup
        );
        println!(
            "{:<8} {:>10} {:>12} {:>11}  description",
            "kind", "params", "MFLOPs", "median ms"
        );
        for r in &rows {
            let kind: AttentionKind = r.kind.parse().expect("table kinds parse");
            println!(
                "{:<8} {:>10} {:>12.2} {:>11.3}  {}",
                r.kind,
                r.params,
                r.flops as f64 / 1e6,
                r.median_ms,
                kind.description()
            );
        }
    }
    Ok(())
}
