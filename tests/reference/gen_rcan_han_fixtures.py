"""Generate the RCAN and HAN fixtures into tests/fixtures/rcan/ and tests/fixtures/han/ (run
from the repo root).

    tests/reference/export_sr_official.sh                 # once: the pinned official files
    /work/venv/bin/python tests/reference/gen_rcan_han_fixtures.py [OFFICIAL_DIR]

The references are the OFFICIAL codes, imported from OFFICIAL_DIR (default /tmp/official) and
blob-checked below:
* RCAN: github.com/yulunzhang/RCAN `RCAN_TestCode/code/model/rcan.py` + `common.py` @ f722e5d0
  (class `RCAN`; `args.data_train` 'DIV2K' selects the DIV2K mean of its `MeanShift`s);
* HAN:  github.com/wwlCape/HAN `src/model/han.py` + `common.py` @ 0595e23a (class `HAN`).
Both modules do `from model import common` and take an `args` namespace (`n_resgroups`,
`n_resblocks`, `n_feats`, `reduction`, `scale` (a list), `rgb_range`, `n_colors`,
`res_scale`, RCAN also `data_train`), built here. Both work on pixel values in 0-255
(`rgb_range` 255) while gaze takes [0, 1]: every reference is `UnitRange`, a subclass (so the
state-dict keys stay the official ones) whose forward is the official `forward(x * 255) / 255`.

Whole-network fixtures (backbone layout of fixture_utils.py: official state dict, .pth copy,
constants.json; batch 2 at 12x12 and 11x13, x8 at 6x6 and 5x7), each with `output_<HxW>` ([2, 3, sH, sW], the
[0, 1]-scaled output) and `feature0_<HxW>` (the upsampler's input, i.e. gaze's
`forward_features`, in the official 0-255 scale):
* rcan_x2, rcan_x3, rcan_x4, rcan_x8: `RCAN` with n_feats 8, reduction 2, 2 residual groups of
  2 RCABs (so `body.{g}.body.2` is a group's closing conv and `body.2` the trunk's);
* han_x2, han_x3, han_x4: `HAN` with n_feats 6, reduction 2, 10 residual groups of 1 RCAB: the
  official `last_conv` hard-codes `n_feats * 11` input channels (the 10 group outputs plus the
  trunk conv's, stacked for the layer attention), so HAN needs exactly 10 groups.
Weights: `fixture_utils.scale_weights` (random, then calibrated), the `MeanShift` 1x1 convs
(`sub_mean`, `add_mean`) randomised like every conv (their trained values differ from the
initial shift in the published RCAN checkpoints; here the fixture checks that they are ordinary
convolutions), `add_mean` calibrated to output RMS 255 so that the [0, 1] output is O(1); the
attention scales `la.gamma`, `csa.gamma` U(0.5, 1.5) (never 0, which would hide the modules).
fixture_utils' bound on module outputs (ACTIVATION_MAX) is applied to `add_mean`'s output
divided by 255, the scale its output has in gaze's [0, 1] convention (its 0-255 output is the
official design, not a sign of a badly scaled fixture).

`param_counts.json` (one per folder): the parameter counts of the full-size official models
(10 groups of 20 RCABs, 64 features, reduction 16) at x2, x3, x4, x8; published checkpoints
under /work/shared/weights/sr/{rcan,han}/ are loaded strictly into them when present.
"""
import contextlib
import importlib
import io
import os
import sys
import types

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import crosscheck_cnn_official as cc  # noqa: E402
import fixture_utils as fu  # noqa: E402

torch.set_num_threads(1)

RGB_RANGE = 255
SIZES = [(12, 12), (11, 13)]
# x8 outputs are 64 times the input: smaller inputs keep the fixture small (still one odd).
SIZES_X8 = [(6, 6), (5, 7)]
SHARED_WEIGHTS = os.path.join(HERE, "..", "..", "..", "shared", "weights", "sr")
OFFICIAL = {
    "rcan": ("yulunzhang+RCAN", "f722e5d0e1eff45148bfaefd9bc85c6f0f26ce02", "RCAN_TestCode/code/model", {
        "RCAN_TestCode/code/model/rcan.py": "6c1a276bb52e83fd69f315cad385c39d822aad7b",
        "RCAN_TestCode/code/model/common.py": "ac40e8d19b893175ca0ac344b7a3a7ad00836fb1",
    }),
    "han": ("wwlCape+HAN", "0595e23a992531f72c7e5559f8b519182b41cb9e", "src/model", {
        "src/model/han.py": "a4fd4b1b15f1ba6b38790627db529467854f0658",
        "src/model/common.py": "aeee33512680a5c1437f9ad68be18bc2436fca61",
    }),
}
NARROW = {
    "rcan": dict(n_resgroups=2, n_resblocks=2, n_feats=8, reduction=2),
    "han": dict(n_resgroups=10, n_resblocks=1, n_feats=6, reduction=2),
}
SCALES = {"rcan": (2, 3, 4, 8), "han": (2, 3, 4)}
FULL_SCALES = (2, 3, 4, 8)
# Published checkpoint names (the READMEs' downloads), checked when present.
CHECKPOINTS = {"rcan": "rcan/RCAN_BIX{s}.pt", "han": "han/HAN_BIX{s}.pt"}


def load_official(official_dir, family):
    repo, commit, pkg, files = OFFICIAL[family]
    d = fu.verify_official(official_dir, repo, commit, files)
    with cc.stub_packages({"model": os.path.join(d, pkg)}):
        mod = importlib.import_module(f"model.{family}")
    return getattr(mod, family.upper())


def unit_range(cls):
    """The official class with gaze's [0, 1] convention around its 0-255 forward."""

    class UnitRange(cls):
        def forward(self, x):
            return super().forward(x * RGB_RANGE) / RGB_RANGE

    UnitRange.__name__ = UnitRange.__qualname__ = f"{cls.__name__}UnitRange"
    return UnitRange


def make_args(scale, n_resgroups=10, n_resblocks=20, n_feats=64, reduction=16):
    return types.SimpleNamespace(
        n_resgroups=n_resgroups, n_resblocks=n_resblocks, n_feats=n_feats, reduction=reduction,
        scale=[scale], rgb_range=RGB_RANGE, n_colors=3, res_scale=1, data_train="DIV2K")


def build(cls, scale, **kw):
    with contextlib.redirect_stdout(io.StringIO()):  # RCAN prints which mean it uses
        return cls(make_args(scale, **kw)).eval()


def run(m, size, x):
    """Output and the upsampler's input (`tail`'s input: the official `res`)."""
    got = []
    hook = m.tail.register_forward_pre_hook(lambda mod, args: got.append(args[0].clone()))
    try:
        y = m(x)
    finally:
        hook.remove()
    assert len(got) == 1
    return y, got


def max_activation_unit_range(model, x, forward=None):
    """fixture_utils.max_activation with `add_mean`'s output divided by 255: the one module
    whose output is image values in 0-255 (the model's own output is already divided)."""
    best = [0.0, ""]
    names = {m: n for n, m in model.named_modules()}

    def post(mod, args, out):
        name = names[mod]
        scale = RGB_RANGE if name == "add_mean" else 1
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if torch.is_tensor(t) and t.is_floating_point() and t.numel():
                v = t.abs().max().item() / scale
                if v > best[0]:
                    best[:] = [v, name]

    hooks = [m.register_forward_hook(post) for m in model.modules()]
    try:
        with torch.no_grad():
            (forward or (lambda mm, v: mm(v)))(model, x)
    finally:
        for h in hooks:
            h.remove()
    return tuple(best)


def check_checkpoint(family, m, s):
    rel = CHECKPOINTS[family].format(s=s)
    path = os.path.join(SHARED_WEIGHTS, rel)
    if not os.path.exists(path):
        print(f"#   {rel} not found: strict load not checked")
        return
    sd = torch.load(path, map_location="cpu", weights_only=True)
    # nn.Module's own strict loading: the official classes override load_state_dict with a
    # lenient one.
    torch.nn.Module.load_state_dict(m, sd, strict=True)
    print(f"#   {rel}: {len(sd)} tensors load strictly, {sum(v.numel() for v in sd.values())} values")


def main():
    fu.max_activation = max_activation_unit_range
    for family in ("rcan", "han"):
        cls = unit_range(load_official(fu.official_dir_arg(), family))
        out = os.path.join(HERE, "..", "fixtures", family)
        os.makedirs(out, exist_ok=True)
        constants = {}
        for s in SCALES[family]:
            name = f"{family}_x{s}"
            m = build(cls, s, **NARROW[family])
            _, constants[name] = fu.make_fixture(
                out, name, m, 10 * (family == "han") + 10 + s, SIZES_X8 if s == 8 else SIZES,
                output_key="output", run=run,
                targets=[(r"^add_mean$", float(RGB_RANGE))])
        counts, registered = {}, {}
        for s in FULL_SCALES:
            name = f"{family}_x{s}"
            m = build(cls, s)
            counts[name] = sum(p.numel() for p in m.parameters())
            registered[name] = fu.model_constants(m, fu.batch_input((8, 8)))
            check_checkpoint(family, m, s)
        print(f"# {family} full-size parameter counts:", counts)
        fu.write_param_counts(out, counts)
        print("wrote", fu.write_constants(out, constants, registered))


if __name__ == "__main__":
    main()
