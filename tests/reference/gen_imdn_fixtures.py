"""Generate the IMDN fixtures into tests/fixtures/imdn/ (run from the repo root).

    tests/reference/export_sr_official.sh                 # once: the pinned official files
    /work/venv/bin/python tests/reference/gen_imdn_fixtures.py [OFFICIAL_DIR]

The reference is the OFFICIAL code of github.com/Zheng222/IMDN (`model/architecture.py` IMDN,
`model/block.py` IMDModule, CCALayer, conv_layer, conv_block, pixelshuffle_block @ 8f158e6a,
blob-checked below), imported from OFFICIAL_DIR (default /tmp/official), in eval mode.

Block fixtures (state dict under the official names + `input` + `output`, the layout of
tests/suite/common.rs `load_fixture`; weights `fixture_utils.scale_weights` (random, then
calibrated on the input), output computed in float64 from the float32 weights and stored as
float32):
* `cca`:  `CCALayer(32)` (the official reduction 16: a 2-channel bottleneck), input
          [2, 32, 7, 9] random normal with a different mean (N(0, 1)) and spread (U(0.2, 2))
          per channel, so that both the contrast (std) and the mean term matter;
* `imdb`: `IMDModule(16)` unchanged (distilled 4, remaining 12, CCA on 16 channels with a
          1-channel bottleneck), input [2, 16, 13, 17] random normal.

Whole-network fixtures (`imdn_x2`, `imdn_x3`, `imdn_x4`): the official `IMDN(in_nc=3, nf=8,
num_modules=6, out_nc=3, upscale=s)` with every `IMDB<k>.cca` replaced by the official
`CCALayer(8, reduction=4)` (gaze's `ImdnConfig::cca_reduction`): the official network hard-codes
CCALayer's default reduction 16, which leaves no channel at all in the bottleneck of a
narrow network (8 // 16 = 0). nf 8 splits into distilled 2 + remaining 6 channels. Six modules,
because the official `IMDN.forward` always runs IMDB1..IMDB6 (its `num_modules` only sizes `c`).
Backbone layout of fixture_utils.py (weights, .pth copy, constants.json) at 12x12 and 11x13,
batch 2: `output_<HxW>` ([2, 3, sH, sW]) and `feature0_<HxW>`, the low-resolution features
gaze's `Imdn::forward_features` returns: `LR_conv(c(cat[IMDB1..IMDB6 outputs])) + fea_conv(x)`
(the official `out_lr`, the upsampler's input).

`param_counts.json`: the parameter counts of the full-size official IMDN at x2, x3, x4 (the
published checkpoints /work/shared/weights/sr/imdn/IMDN_x{2,3,4}.pth load into it with
strict=True after stripping their DataParallel `module.` prefix; checked here when present).
"""
import importlib
import os
import sys
import warnings

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import crosscheck_cnn_official as cc  # noqa: E402
import fixture_utils as fu  # noqa: E402

torch.set_num_threads(1)

OUT = os.path.join(HERE, "..", "fixtures", "imdn")
REPO = "Zheng222+IMDN"
COMMIT = "8f158e6a5ac9db6e5857d9159fd4a6c4214da574"
FILES = {
    "model/architecture.py": "b297f9c39bc4cd8398b18d9da705a693b3519c9c",
    "model/block.py": "86feb771614dacb83966d95989f9cc4c239cf60d",
}
SIZES = [(12, 12), (11, 13)]
NF, CCA_REDUCTION = 8, 4
SHARED_WEIGHTS = os.path.join(HERE, "..", "..", "..", "shared", "weights", "sr", "imdn")


def load_official(official_dir):
    d = fu.verify_official(official_dir, REPO, COMMIT, FILES)
    with cc.stub_packages({"model": os.path.join(d, "model")}):
        arch = importlib.import_module("model.architecture")
        block = importlib.import_module("model.block")
    return arch, block


def features(m, x):
    """The official forward up to the upsampler's input (`out_lr`)."""
    out_fea = m.fea_conv(x)
    outs, h = [], out_fea
    for k in range(1, 7):
        h = getattr(m, f"IMDB{k}")(h)
        outs.append(h)
    return m.LR_conv(m.c(torch.cat(outs, dim=1))) + out_fea


def run(m, size, x):
    y = m(x)
    f = features(m, x)
    # The features are exactly what the upsampler reads.
    assert torch.equal(m.upsampler(f), y)
    return y, [f]


def narrow_imdn(arch, block, scale):
    with warnings.catch_warnings():  # the replaced default CCALayer(8) has 0-channel convs
        warnings.filterwarnings("ignore", "Initializing zero-element tensors")
        m = arch.IMDN(in_nc=3, nf=NF, num_modules=6, out_nc=3, upscale=scale)
    for k in range(1, 7):
        getattr(m, f"IMDB{k}").cca = block.CCALayer(NF, reduction=CCA_REDUCTION)
    return m


def strip_module(sd):
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in sd.items()}


def main():
    arch, block = load_official(fu.official_dir_arg())
    os.makedirs(OUT, exist_ok=True)

    torch.manual_seed(1)
    mean = torch.randn(1, 32, 1, 1)
    spread = 0.2 + 1.8 * torch.rand(1, 32, 1, 1)
    fu.dump_block(OUT, "cca", block.CCALayer(32), mean + spread * torch.randn(2, 32, 7, 9), seed=1)

    torch.manual_seed(2)
    fu.dump_block(OUT, "imdb", block.IMDModule(16), torch.randn(2, 16, 13, 17), seed=2)

    constants = {}
    for s in (2, 3, 4):
        m = narrow_imdn(arch, block, s)
        _, constants[f"imdn_x{s}"] = fu.make_fixture(
            OUT, f"imdn_x{s}", m, 10 + s, SIZES, output_key="output", run=run)

    counts, registered = {}, {}
    for s in (2, 3, 4):
        m = arch.IMDN(upscale=s).eval()
        counts[f"imdn_x{s}"] = sum(p.numel() for p in m.parameters())
        registered[f"imdn_x{s}"] = fu.model_constants(m, fu.batch_input((8, 8)))
        ckpt = os.path.join(SHARED_WEIGHTS, f"IMDN_x{s}.pth")
        if os.path.exists(ckpt):
            sd = strip_module(torch.load(ckpt, map_location="cpu", weights_only=True))
            m.load_state_dict(sd, strict=True)
            print(f"# {os.path.relpath(os.path.realpath(ckpt), os.path.realpath(os.path.join(SHARED_WEIGHTS, '..')))}: "
                  f"{len(sd)} tensors load strictly, {sum(v.numel() for v in sd.values())} values")
        else:
            print(f"# {ckpt} not found: strict load not checked")
    print("# full-size parameter counts:", counts)
    fu.write_param_counts(OUT, counts)
    print("wrote", fu.write_constants(OUT, constants, registered))


if __name__ == "__main__":
    main()
