//! Fuzzing the checkpoint readers: truncated, bit-flipped, spliced and length-corrupted
//! versions of real files of every format (PyTorch legacy pickle, PyTorch zip, safetensors,
//! ONNX with external data, Burn's burnpack) must give an error or a checkpoint, never a panic, an
//! abort or an unbounded allocation. A stable-Rust harness with a corpus (the committed
//! fixtures) and a seeded mutator, so every failure replays.
//!
//! `cargo test --release --test fuzz` runs a short deterministic budget (CI);
//! `scripts/fuzz-checkpoints.sh SECONDS` runs each target for a fixed time with fresh seeds.
//! Environment: `GAZE_FUZZ_SECONDS` (per target; default: 150 inputs per target instead),
//! `GAZE_FUZZ_SEED`, `GAZE_FUZZ_OUT` (where a failing input is kept, default the temp dir).
//!
//! A binary of its own: its global allocator refuses any single allocation above 1 GiB (no
//! checkpoint of these sizes may ask for that) by aborting after printing the input.

#[path = "../suite/common.rs"]
#[allow(dead_code)]
mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use burn::prelude::*;
use gaze::backbones::vit::VitConfig;
use gaze::backbones::Family;
use gaze::weights::{recover_onnx, Checkpoint};
use rand::{Rng, SeedableRng};

const MAX_ALLOCATION: usize = 1 << 30;

/// The input being read, printed if an allocation is refused.
static CURRENT_INPUT: Mutex<Option<PathBuf>> = Mutex::new(None);

struct Bounded;

unsafe impl GlobalAlloc for Bounded {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > MAX_ALLOCATION {
            let input = CURRENT_INPUT.try_lock().ok().and_then(|g| g.clone());
            // eprintln allocates little; the process ends here anyway.
            eprintln!(
                "unbounded allocation of {} bytes while reading {input:?}",
                layout.size()
            );
            std::process::abort();
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Bounded = Bounded;

/// One fuzz target: seed files and how to read a mutated one.
struct Target {
    name: &'static str,
    seeds: Vec<PathBuf>,
    /// Files that travel with the seed (ONNX external data), copied beside each input.
    companions: Vec<(PathBuf, &'static str)>,
    read: fn(&Path),
}

fn open(path: &Path) {
    let _ = Checkpoint::open(path);
}

fn open_and_recover(path: &Path) {
    let _ = Checkpoint::open(path);
    let device = Device::flex();
    let config = VitConfig::new(32, 4, 2)
        .with_img_size(64)
        .with_num_classes(10);
    let _ = recover_onnx(path, &config.init(&device), &config.key_map(), "vit");
}

/// A burnpack of a tiny ViT, written by Burn (no committed fixture needed).
fn burnpack_seed(dir: &Path) -> PathBuf {
    use burn::store::{BurnpackStore, ModuleSnapshot};
    let config = VitConfig::new(32, 4, 2)
        .with_img_size(64)
        .with_num_classes(10);
    let mut store = BurnpackStore::from_bytes(None);
    config
        .init(&Device::flex())
        .save_into(&mut store)
        .expect("burnpack written");
    let path = dir.join("vit.bpk");
    std::fs::write(&path, &store.get_bytes().unwrap()[..]).unwrap();
    path
}

/// The targets; seeds written at run time live in `scratch`.
fn targets(scratch: &Path) -> Vec<Target> {
    let f = |p: &str| common::fixture(p);
    vec![
        Target {
            name: "burnpack",
            seeds: vec![burnpack_seed(scratch)],
            companions: vec![],
            read: open,
        },
        Target {
            name: "pytorch-legacy",
            seeds: vec![f("loader/tiny_basicsr_legacy.pth")],
            companions: vec![],
            read: open,
        },
        Target {
            name: "pytorch-zip",
            seeds: vec![f("loader/tiny_wrapped_zip.pth"), f("vit/tiny.pth")],
            companions: vec![],
            read: open,
        },
        Target {
            name: "safetensors",
            seeds: vec![f("loader/tiny_io.safetensors"), f("vit/tiny.safetensors")],
            companions: vec![],
            read: open,
        },
        Target {
            name: "onnx",
            seeds: vec![
                f("onnx/vit__torchscript_op17.onnx"),
                f("onnx/vit__dynamo_op18.onnx"),
                f("loader/tiny.onnx"),
            ],
            companions: vec![(
                f("onnx/vit__dynamo_op18.onnx.data"),
                "vit__dynamo_op18.onnx.data",
            )],
            read: open_and_recover,
        },
    ]
}

/// A mutated copy of `seed`.
fn mutate(seed: &[u8], rng: &mut impl Rng) -> Vec<u8> {
    let mut data = seed.to_vec();
    let rounds = rng.random_range(1..=4);
    for _ in 0..rounds {
        if data.is_empty() {
            data.push(rng.random());
        }
        let at = rng.random_range(0..data.len());
        match rng.random_range(0..7) {
            // Truncation.
            0 => data.truncate(at),
            // Flipped bits.
            1 => {
                for _ in 0..rng.random_range(1..16) {
                    let i = rng.random_range(0..data.len());
                    data[i] ^= 1 << rng.random_range(0..8);
                }
            }
            // A length or offset field set to an extreme (little-endian u32 / u64, varint).
            2 => {
                let extremes: [u64; 6] = [0, 1, 0x7fff_ffff, 0xffff_ffff, 1 << 40, u64::MAX];
                let v = extremes[rng.random_range(0..extremes.len())];
                let width = if rng.random() { 4 } else { 8 };
                for (k, b) in v.to_le_bytes()[..width].iter().enumerate() {
                    if at + k < data.len() {
                        data[at + k] = *b;
                    }
                }
            }
            // A protobuf varint made huge.
            3 => {
                let end = (at + 9).min(data.len());
                for b in &mut data[at..end] {
                    *b |= 0x80;
                }
            }
            // A chunk removed.
            4 => {
                let end = (at + rng.random_range(1..256)).min(data.len());
                data.drain(at..end);
            }
            // A chunk repeated (splice).
            5 => {
                let end = (at + rng.random_range(1..256)).min(data.len());
                let chunk = data[at..end].to_vec();
                let to = rng.random_range(0..=data.len());
                data.splice(to..to, chunk);
            }
            // Random bytes.
            _ => {
                for _ in 0..rng.random_range(1..64) {
                    let i = rng.random_range(0..data.len());
                    data[i] = rng.random();
                }
            }
        }
    }
    data
}

fn run_target(target: &Target, seed: u64, budget: Budget, out: &Path) -> usize {
    let dir = common::tmp_dir(&format!("fuzz-{}", target.name));
    for (src, name) in &target.companions {
        std::fs::copy(src, dir.join(name)).unwrap();
    }
    let seeds: Vec<Vec<u8>> = target
        .seeds
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let start = Instant::now();
    let mut runs = 0;
    let mut failures = 0;
    while budget.more(runs, start) {
        let k = rng.random_range(0..seeds.len());
        let data = mutate(&seeds[k], &mut rng);
        // The name the external data points at, so that it is found beside the input.
        let input = dir.join(
            target.seeds[k]
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string(),
        );
        std::fs::write(&input, &data).unwrap();
        *CURRENT_INPUT.lock().unwrap() = Some(input.clone());
        let read = target.read;
        let outcome = std::panic::catch_unwind(|| read(&input));
        if outcome.is_err() {
            failures += 1;
            let kept = out.join(format!("{}-{seed}-{runs}.bin", target.name));
            std::fs::write(&kept, &data).unwrap();
            eprintln!(
                "{}: input {runs} (seed {seed}) panicked; kept as {}",
                target.name,
                kept.display()
            );
        }
        runs += 1;
    }
    *CURRENT_INPUT.lock().unwrap() = None;
    eprintln!(
        "{}: {runs} inputs in {:.1} s, {failures} panics",
        target.name,
        start.elapsed().as_secs_f64()
    );
    failures
}

#[derive(Clone, Copy)]
enum Budget {
    Inputs(usize),
    Time(Duration),
}

impl Budget {
    fn more(self, runs: usize, start: Instant) -> bool {
        match self {
            Budget::Inputs(n) => runs < n,
            Budget::Time(d) => start.elapsed() < d,
        }
    }
}

#[test]
fn mutated_checkpoints_never_panic() {
    let budget = match std::env::var("GAZE_FUZZ_SECONDS") {
        Ok(s) => Budget::Time(Duration::from_secs_f64(s.parse().expect("seconds"))),
        Err(_) => Budget::Inputs(150),
    };
    let seed: u64 = std::env::var("GAZE_FUZZ_SEED")
        .map(|s| s.parse().expect("a number"))
        .unwrap_or(20261206);
    let out = std::env::var("GAZE_FUZZ_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir());
    std::fs::create_dir_all(&out).unwrap();
    // Panics are counted, not printed one by one.
    std::panic::set_hook(Box::new(|_| {}));
    let scratch = common::tmp_dir("fuzz-seeds");
    let failures: usize = targets(&scratch)
        .iter()
        .map(|t| run_target(t, seed, budget, &out))
        .sum();
    let _ = std::panic::take_hook();
    assert_eq!(
        failures,
        0,
        "{failures} inputs panicked (kept in {})",
        out.display()
    );
}

#[test]
fn pickles_that_would_call_anything_are_refused() {
    // Protocol 2: `os.system("echo pwned")` through GLOBAL + REDUCE, as a malicious .pth does.
    let dir = common::tmp_dir("fuzz-pickle");
    let evil = dir.join("evil.pth");
    let mut bytes =
        b"\x80\x02cposix\nsystem\nq\x00X\n\x00\x00\x00echo pwnedq\x01\x85q\x02Rq\x03.".to_vec();
    std::fs::write(&evil, &bytes).unwrap();
    let err = Checkpoint::open(&evil).expect_err("refused");
    eprintln!("{err}");
    assert!(err.to_string().contains("posix.system"), "{err}");
    // The same call hidden inside a state dict.
    bytes = b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01cbuiltins\neval\nq\x02X\x04\x00\x00\x001+1q\x03\x85q\x04Rq\x05s.".to_vec();
    std::fs::write(&evil, &bytes).unwrap();
    let err = Checkpoint::open(&evil).expect_err("refused");
    eprintln!("{err}");
    assert!(err.to_string().contains("builtins.eval"), "{err}");
}
