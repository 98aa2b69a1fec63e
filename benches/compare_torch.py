"""gaze vs PyTorch eager on the same CPU, in one run: the README's performance table.

    /work/venv/bin/python benches/compare_torch.py [--models a,b,...] [--threads 2] [--batch 8]
        [--size H W] [--gaze PATH] [--out FILE.md]

For each model, `gaze bench --csv` (random weights, fp32) runs first, then the PyTorch model
of the same architecture (timm for classifiers; segmentation_models_pytorch's `Unet` on a timm
encoder for `unet_<encoder>`; the official PAN / SR code through the repo's reference builders) on an input of the same size, measured the same way: median batch-1
latency over 7 runs after 2 warm-up runs, throughput at `--batch` (median of 3), and the
resident-set growth of the first forward pass and of a pass after the warm-ups (glibc
`malloc_trim(0)`, then Linux `/proc/self/clear_refs` + `VmHWM`, as gaze measures it). Each
PyTorch model runs in a Python process of its own, as each gaze model does: a first pass pays
one-time costs (code paged in, MKL/oneDNN scratch, thread arenas) only in a fresh process. FLOPs are counted by `torch.utils.flop_counter.FlopCounterMode` on the
PyTorch model at that size (multiply-adds × 2). Ratios are PyTorch time / gaze time (above 1:
gaze faster); the last rows are their geometric means. Optional, not run by CI (needs torch).
"""
import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "reference"))

DEFAULT = ["levit_128s", "vit_tiny_patch16_224", "deit_small_patch16_224", "resnet50", "seresnet50",
           "resnest14d", "swin_tiny_patch4_window7_224", "halonet26t", "pan_x4"]
GAZE = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/gaze-target")),
                    "release", "gaze")


def torch_model(name):
    """The PyTorch model gaze's `name` reproduces."""
    if name.startswith("pan_x"):
        from pan_reference import PAN
        return PAN(in_nc=3, out_nc=3, nf=40, unf=24, nb=16, scale=int(name[len("pan_x"):]))
    if name.startswith(("nat_", "biformer_")):
        # The official networks: NAT's classification/nat.py on natten 0.17.5's CPU extension,
        # BiFormer's models/biformer.py (pinned sources and the natten build:
        # tests/reference/export_token_official.sh). Before timm's registry: loading them
        # registers their names there.
        import crosscheck_token_official as official
        o = official.load_official(os.environ.get("OFFICIAL_DIR", "/tmp/official"))
        return getattr(o.nat if name.startswith("nat_") else o.bif, name)()
    import timm
    if timm.is_model(name):
        return timm.create_model(name, pretrained=False)
    if name.startswith("unet_") and timm.is_model(name[len("unet_"):]):
        # gaze's encoder U-Nets are segmentation_models_pytorch's `Unet("tu-<encoder>")` with
        # its defaults (decoder 256…16, one class).
        import segmentation_models_pytorch as smp
        return smp.Unet("tu-" + name[len("unet_"):], encoder_weights=None, classes=1)
    if "_x" not in name:
        return None
    from check_onnx_convert_full import official_sr
    return official_sr(name)


def status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return None


def peak_growth_mib(fn):
    # As gaze does: free heap memory back to the system first (glibc), so that memory freed while
    # building the model is not silently reused by the measured pass.
    import ctypes
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    before = status_kib("VmRSS:")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    fn()
    return (status_kib("VmHWM:") - before) / 1024.0


def median_ms(fn, runs):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def bench_torch(name, h, w, batch, runs=7, batch_runs=3, warmup=2):
    torch.manual_seed(0)
    model = torch_model(name).eval()
    x1 = torch.rand(1, 3, h, w)
    xb = torch.rand(batch, 3, h, w)
    with torch.inference_mode():
        peak = peak_growth_mib(lambda: model(x1))
        for _ in range(warmup):
            model(x1)
        steady = peak_growth_mib(lambda: model(x1))
        latency = median_ms(lambda: model(x1), runs)
        model(xb)
        throughput = batch * 1e3 / median_ms(lambda: model(xb), batch_runs)
        from torch.utils.flop_counter import FlopCounterMode
        counter = FlopCounterMode(display=False)
        with counter:
            model(x1)
    params = sum(p.numel() for p in model.parameters())
    return dict(latency=latency, throughput=throughput, peak=peak, steady=steady,
                flops=counter.get_total_flops(), params=params)


def train_step_torch(name, h, w, batch, runs=3, warmup=2):
    """One training step as `gaze bench --train` times it: forward in train mode, the mean of
    the output, backward (no optimiser)."""
    torch.manual_seed(0)
    model = torch_model(name).train()
    x = torch.rand(batch, 3, h, w)

    def step():
        model.zero_grad(set_to_none=True)
        model(x).mean().backward()
    for _ in range(warmup):
        step()
    return median_ms(step, runs)


def bench_gaze(gaze, name, threads, batch, train, size=None):
    out = subprocess.run([gaze, "bench", "--csv", "--models", name, "--threads", str(threads), "--batch", str(batch)]
                         + (["--size", str(size[0]), str(size[1])] if size else [])
                         + (["--train"] if train else []), capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"gaze bench {name}: {out.stderr.strip()}")
    header, row = out.stdout.strip().splitlines()[-2:]
    r = dict(zip(header.split(","), row.split(",")))
    mib = lambda key: float(r[key]) if r.get(key) else float("nan")  # noqa: E731
    return dict(h=int(r["height"]), w=int(r["width"]), latency=float(r["latency_ms"]),
                throughput=float(r["images_per_s"]), peak=mib("peak_mib"), steady=mib("steady_mib"),
                params=int(r["params"]), train=float(r["train_ms"]) if r.get("train_ms") else None)


def bench_torch_in_child(name, h, w, batch, threads, train):
    """`bench_torch` (and `train_step_torch`) in a fresh Python process, as gaze runs each model."""
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--one", name, str(h), str(w),
                          "--batch", str(batch), "--threads", str(threads), "--train", name if train else ""],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"PyTorch {name}: {out.stderr.strip()}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=",".join(DEFAULT))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--gaze", default=GAZE)
    ap.add_argument("--out")
    ap.add_argument("--size", nargs=2, type=int, metavar=("H", "W"),
                    help="input size for every model (default: each model's own, as gaze bench picks it)")
    ap.add_argument("--train", default="resnet50,vit_tiny_patch16_224",
                    help="models whose training step (forward + backward at --batch) is timed too ('' for none)")
    ap.add_argument("--one", nargs=3, metavar=("MODEL", "H", "W"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    train = [m for m in args.train.split(",") if m]
    torch.set_num_threads(args.threads)
    if args.one:
        name, h, w = args.one[0], int(args.one[1]), int(args.one[2])
        t = bench_torch(name, h, w, args.batch)
        if name in train:
            t["train"] = train_step_torch(name, h, w, args.batch)
        print(json.dumps(t))
        return
    rows = []
    for name in args.models.split(","):
        if torch_model(name) is None:
            # gaze's own compositions (cbam_resnet50, …) have no timm or official counterpart.
            print(f"{name}: no PyTorch model of this architecture (not in timm, not an official SR "
                  "network), skipped", file=sys.stderr, flush=True)
            continue
        g = bench_gaze(args.gaze, name, args.threads, args.batch, name in train, args.size)
        t = bench_torch_in_child(name, g["h"], g["w"], args.batch, args.threads, name in train)
        assert g["params"] == t["params"], f"{name}: gaze has {g['params']} parameters, PyTorch {t['params']}"
        rows.append((name, g, t))
        print(f"{name}: gaze {g['latency']:.1f} ms, PyTorch {t['latency']:.1f} ms", file=sys.stderr, flush=True)
    lines = [
        f"{time.strftime('%Y-%m-%d')}, {cpu_name()}, {os.cpu_count()} cores, {args.threads} threads, fp32, "
        f"torch {torch.__version__}; latency batch 1 (median of 7), throughput batch {args.batch} (median of 3)",
        "",
        "| model | input | GFLOPs | gaze ms | PyTorch ms | speed vs PyTorch | gaze img/s | PyTorch img/s "
        "| throughput vs PyTorch | gaze MiB first / later pass | PyTorch MiB first / later pass |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lat, thr = [], []
    for name, g, t in rows:
        lat.append(t["latency"] / g["latency"])
        thr.append(g["throughput"] / t["throughput"])
        lines.append(f"| {name} | {g['h']}×{g['w']} | {t['flops'] / 1e9:.2f} | {g['latency']:.1f} | "
                     f"{t['latency']:.1f} | {lat[-1]:.2f}× | {g['throughput']:.2f} | {t['throughput']:.2f} | "
                     f"{thr[-1]:.2f}× | {g['peak']:.0f} / {g['steady']:.0f} | {t['peak']:.0f} / {t['steady']:.0f} |")
    geo = lambda v: math.exp(sum(map(math.log, v)) / len(v))  # noqa: E731
    lines.append(f"| **geometric mean** | | | | | **{geo(lat):.2f}×** | | | **{geo(thr):.2f}×** | | |")
    trained = [(name, g, t) for name, g, t in rows if g.get("train") is not None and "train" in t]
    if trained:
        lines += ["", f"Training step (forward, mean of the output, backward; train mode) at batch {args.batch}, "
                      "median of 3:", "",
                  "| model | gaze ms | PyTorch ms | speed vs PyTorch |", "|---|---:|---:|---:|"]
        for name, g, t in trained:
            lines.append(f"| {name} | {g['train']:.0f} | {t['train']:.0f} | {t['train'] / g['train']:.2f}× |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
