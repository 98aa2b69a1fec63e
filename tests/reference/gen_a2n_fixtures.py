"""Generate the A2N fixtures into tests/fixtures/a2n/ (run from the repo root).

    tests/reference/export_sr_official.sh                 # once: the pinned official files
    /work/venv/bin/python tests/reference/gen_a2n_fixtures.py [OFFICIAL_DIR]

The reference is the OFFICIAL code of github.com/haoyuc/A2N (`code/model/aan.py`: AAN, AAB,
AttentionBranch, PA @ 210b38cb, blob-checked below; it imports the unused sibling
`code/model/common.py`, exported and checked too), imported from OFFICIAL_DIR (default
/tmp/official), in eval mode.

Input convention. The official network works on pixel values in 0-255 (the EDSR framework's
rgb_range 255, no mean shift); gaze's `A2n::forward` takes [0, 1] and returns [0, 1] units.
Every whole-network output stored here is therefore the official forward on x * 255, divided
by 255 (`UnitRange`, a subclass of the official class, so the state-dict keys stay the
official ones): `output_<HxW>` = AAN(x * 255) / 255 for the fixture input x in gaze's
convention. `feature0_<HxW>` is the official low-resolution trunk output on that input,
`conv_first(x * 255) + trunk_conv(AAB_trunk(conv_first(x * 255)))` (0-255 scale, exactly what
the official forward feeds to the upsampling; gaze's `A2n::forward_features`), checked below
to be the tensor the official `upconv1` receives (after its nearest upsampling).

Block fixtures (state dict under the official names + `input` + `output`, the layout of
tests/suite/common.rs `load_fixture`; weights `fixture_utils.scale_weights` (random, then
calibrated on the input), output computed in float64 from the float32 weights and stored as
float32); input [2, 8, 13, 17] random normal around a random N(0, 1) mean per image and
channel:
* `aab`:   the official `AAB(8)` (reduction 4: a 2-wide ADM; K 2; t 30);
* `aab_m`: the same with the A2N-M non-attention branch, the 1x1 `nn.Conv2d(nf, nf, 1,
           bias=False)` of the official code's commented-out line, set after construction.
The ADM's first Linear (`ADM.0`) gets non-negative random weights (|N(0, 1)| / sqrt(fan_in)):
it reads means of LeakyReLU outputs, mostly positive, so its ReLU passes, whereas with signed
weights a 2-unit ADM can output exactly 0 for every image (branch weights 1/2, 1/2). Its last
Linear (`ADM.2`) is calibrated to output RMS 30 (not 1), so that y / t is O(1): the branch
weights softmax(y / 30) lie well away from 1/2 and differ between the two images (asserted;
logged).

Whole-network fixtures (`a2n_x2`, `a2n_x3`, `a2n_x4`): the official `AAN` with its hard-coded
widths narrowed, nf 40 -> 8, unf 24 -> 6, nb 16 -> 2: the three assignments of
`AAN.__init__` are replaced in the official source text (each asserted to occur exactly once)
and the patched source is executed as a sibling module; every other line is the official one.
Backbone layout of fixture_utils.py (weights, .pth copy, constants.json) at 12x12 and 11x13,
batch 2, `output_<HxW>` ([2, 3, sH, sW]) and `feature0_<HxW>` as above. Weights as in the
block fixtures (`ADM.0` non-negative, every `ADM.2` RMS 30; every AAB's branch weights are
asserted to leave 1/2 by more than 0.05 and logged). Calibration targets:
the top-level `conv_last` RMS 64 (in 0-255 units, so that the learned residual, 64 / 255 =
0.25 RMS in [0, 1] units, is comparable to the bilinear skip in the comparison) and every
`ADM.2` RMS 30; since those module outputs exceed fixture_utils' ACTIVATION_MAX
(50), it is raised to 255 (one full 0-255 pixel range) for this script.

`param_counts.json`: the parameter counts of the full-size official AAN at x2, x3, x4 (the
published checkpoints /work/shared/weights/sr/a2n/aan_x{2,3}.pt, legacy-format pickles of a
plain dict state dict, load into it with strict=True; checked here when present).
"""
import importlib
import os
import sys
import types

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import crosscheck_cnn_official as cc  # noqa: E402
import fixture_utils as fu  # noqa: E402

torch.set_num_threads(1)

OUT = os.path.join(HERE, "..", "fixtures", "a2n")
REPO = "haoyuc+A2N"
COMMIT = "210b38cbe721f0283aa5ad20c98373c5822f917a"
FILES = {
    "code/model/aan.py": "888dcc946195c2cf1bd1169c327fc5d87cdc1f6a",
    "code/model/common.py": "785cf72a4d63b1b597a2c983cafb3324cb9a6019",
}
SIZES = [(12, 12), (11, 13)]
NARROW = {"nf  = 40": "nf  = 8", "unf = 24": "unf = 6", "nb  = 16": "nb  = 2"}
RGB_RANGE = 255.0
ADM_RMS = 30.0
CONV_LAST_RMS = 64.0
SHARED_WEIGHTS = os.path.join(HERE, "..", "..", "..", "shared", "weights", "sr", "a2n")

# conv_last works in 0-255 pixel units, the ADM logits at the scale of t = 30 (see above).
fu.ACTIVATION_MAX = 255.0


def load_official(official_dir):
    """(official aan module, the same source with NARROW applied as module `model.aan_narrow`)."""
    d = os.path.join(fu.verify_official(official_dir, REPO, COMMIT, FILES), "code", "model")
    with cc.stub_packages({"model": d}):
        aan = importlib.import_module("model.aan")
        path = os.path.join(d, "aan.py")
        src = open(path).read()
        for old, new in NARROW.items():
            assert src.count(old) == 1, f"aan.py: '{old}' occurs {src.count(old)} times"
            src = src.replace(old, new)
        narrow = types.ModuleType("model.aan_narrow")
        narrow.__file__ = path
        sys.modules["model.aan_narrow"] = narrow
        exec(compile(src, path, "exec"), narrow.__dict__)
    return aan, narrow


def unit_range(cls):
    """The official class with gaze's [0, 1] convention: forward(x) = official(x * 255) / 255."""

    class UnitRange(cls):
        def forward(self, x):
            return super().forward(x * RGB_RANGE) / RGB_RANGE

    UnitRange.__name__ = f"UnitRange{cls.__name__}"
    return UnitRange


def build(module, scale):
    return unit_range(module.AAN)(types.SimpleNamespace(scale=[scale]))


# ADM.0 (C -> C / 4, then ReLU) gets non-negative random weights: the pooled features it reads
# (means of LeakyReLU outputs) are mostly positive, so its ReLU passes; with signed weights a
# narrow ADM (2 hidden units) can output exactly 0 for every image (weights 1/2, 1/2).
ADM_OVERRIDES = [(r"ADM\.0\.weight$", lambda p, g: torch.randn(p.shape, generator=g).abs() / p.shape[1] ** 0.5)]


def branch_weights(m, x):
    """softmax(ADM(GAP(x1)) / t) of every AAB of `m` in a forward of x (captured by hooks)."""
    found = []
    blocks = [mod for mod in m.modules() if type(mod).__name__ == "AAB"]
    hooks = [b.ADM.register_forward_hook(
        lambda mod, args, out, b=b: found.append(F.softmax(out / b.t, dim=1))) for b in blocks]
    try:
        with torch.no_grad():
            m(x)
    finally:
        for h in hooks:
            h.remove()
    assert len(found) == len(blocks)
    return found


def dump(name, m, x, seed):
    """Block fixture (`fu.dump_block`) with the ADM overrides and target; the branch weights
    are asserted to leave 1/2 and to differ between the two images, and printed."""

    def note(m, x, y):
        (w,) = branch_weights(m, x)
        assert (w - 0.5).abs().max() > 0.1 and (w[0] - w[1]).abs().max() > 0.02, w
        return f"branch weights {[[round(v, 4) for v in row] for row in w.tolist()]}"

    fu.dump_block(OUT, name, m, x, seed, targets=[(r"^ADM\.2$", ADM_RMS)], overrides=ADM_OVERRIDES, note=note)


def block_input():
    """[2, 8, 13, 17] random normal around a random mean per image and channel (N(0, 1)), so
    that the two images' pooled features, hence their branch weights, differ."""
    return torch.randn(2, 8, 1, 1) + torch.randn(2, 8, 13, 17)


def features(m, x):
    """The official forward up to the upsampling (`fea = fea + trunk`), on x * 255."""
    fea = m.conv_first(x * RGB_RANGE)
    return fea + m.trunk_conv(m.AAB_trunk(fea))


def run(m, size, x):
    seen = []
    hook = m.upconv1.register_forward_pre_hook(lambda mod, args: seen.append(args[0]))
    try:
        y = m(x)
    finally:
        hook.remove()
    f = features(m, x)
    # The features are exactly what the official upsampling reads.
    first = 3 if m.scale == 3 else 2
    assert torch.equal(seen[0], F.interpolate(f, scale_factor=first, mode="nearest"))
    return y, [f]


def main():
    aan, narrow = load_official(fu.official_dir_arg())
    os.makedirs(OUT, exist_ok=True)

    torch.manual_seed(1)
    dump("aab", aan.AAB(8), block_input(), seed=1)

    torch.manual_seed(2)
    block = aan.AAB(8)
    block.non_attention = nn.Conv2d(8, 8, kernel_size=1, bias=False)  # the official A2N-M line
    dump("aab_m", block, block_input(), seed=2)

    constants = {}
    targets = [(r"^conv_last$", CONV_LAST_RMS), (r"\.ADM\.2$", ADM_RMS)]
    for s in (2, 3, 4):
        m = build(narrow, s)
        _, constants[f"a2n_x{s}"] = fu.make_fixture(
            OUT, f"a2n_x{s}", m, 10 + s, SIZES, output_key="output", run=run, targets=targets,
            overrides=ADM_OVERRIDES)
        ws = branch_weights(m, fu.batch_input(SIZES[0]))
        print(f"   a2n_x{s} attention-branch weights per AAB (12x12, per image): "
              f"{[[round(v, 3) for v in w[:, 0].tolist()] for w in ws]}")
        assert all((w - 0.5).abs().max() > 0.05 for w in ws), ws

    counts, registered = {}, {}
    for s in (2, 3, 4):
        m = build(aan, s).eval()
        counts[f"a2n_x{s}"] = sum(p.numel() for p in m.parameters())
        registered[f"a2n_x{s}"] = fu.model_constants(m, fu.batch_input((8, 8)))
        ckpt = os.path.join(SHARED_WEIGHTS, f"aan_x{s}.pt")
        if os.path.exists(ckpt):
            sd = torch.load(ckpt, map_location="cpu", weights_only=True)
            assert type(sd) is dict, type(sd)
            m.load_state_dict(sd, strict=True)
            print(f"# a2n/aan_x{s}.pt: a plain dict of {len(sd)} tensors, loads strictly, "
                  f"{sum(v.numel() for v in sd.values())} values")
        else:
            print(f"# a2n/aan_x{s}.pt not in the shared weights: strict load not checked")
    print("# full-size parameter counts:", counts)
    fu.write_param_counts(OUT, counts)
    print("wrote", fu.write_constants(OUT, constants, registered))


if __name__ == "__main__":
    main()
