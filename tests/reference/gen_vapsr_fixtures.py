"""Generate the VapSR fixtures into tests/fixtures/vapsr/ (run from the repo root).

    tests/reference/export_sr_official.sh                  # once: the pinned official files
    /work/venv/bin/python tests/reference/gen_vapsr_fixtures.py [OFFICIAL_DIR]

The reference is the OFFICIAL code of github.com/zhoumumu/VapSR (`code/vapsr.py`: `Attention`,
`VAB`, `pixelshuffle`, `pixelshuffle_single`, `vapsr` @ 404c584e, blob-checked below), imported
from OFFICIAL_DIR (default /tmp/official), in eval mode. The file imports two BasicSR helpers
only to register the class and initialise weights; BasicSR is not installed here, so the
import sees two stub modules: `ARCH_REGISTRY.register()` returns the class unchanged, and
`default_init_weights` does nothing (BasicSR's own leaves the only module VapSR passes it, a
LayerNorm, untouched: it initialises Conv2d, Linear and BatchNorm only; the fixtures' weights
are random anyway).

Block fixtures (state dict under the official names + `input` + `output`, the layout of
tests/suite/common.rs `load_fixture`; weights `fixture_utils.scale_weights` (random, LayerNorm
γ ~ U(0.5, 1.5), β ~ N(0, 0.1), then calibrated on the input), output computed in float64 from
the float32 weights and stored as float32):
* `vab_attention`: `Attention(12)` (pointwise, 5x5 depthwise, 5x5 depthwise with dilation 3),
                   input [2, 12, 7, 9] random normal: smaller than the 17x17 window;
* `vab`:           `VAB(d_model=8, d_atten=12)`, input [2, 8, 13, 17] random normal.

Whole-network fixtures: the official `vapsr(3, 3, scale, num_feat=8, num_block=2, d_atten=12)`
(`vapsr_x2`, `vapsr_x3`, `vapsr_x4`) and VapSR-S's structure, `conv_groups=2`, at x4
(`vapsr_s_x4`). The upsamplers keep their official fixed widths (64 at x4, 56 otherwise).
Backbone layout of fixture_utils.py (weights, .pth copy, constants.json) at 12x12 and 11x13,
batch 2: `output_<HxW>` ([2, 3, sH, sW]) and `feature0_<HxW>`, the low-resolution features
gaze's `Vapsr::forward_features` returns: `conv_first(x) + conv_body(body(conv_first(x)))`
(the upsampler's input).

`param_counts.json`: the parameter counts of the four published models, built by the official
code with the options of the repository's yml files (x2, x3: num_feat 48, d_atten 64,
num_block 20; x4: 48, 64, 21 (options/test/VapSR_X4.yml); VapSR-S: x4, 32, 64, 11,
conv_groups 2 (options/train/VapSR-S.yml)); each published checkpoint
(shared/weights/sr/vapsr/*.pth, its `params_ema`, as the official test option
`param_key_g: params_ema` loads) loads into it with strict=True (checked here when present).
"""
import os
import sys
import types

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import crosscheck_cnn_official as cc  # noqa: E402
import fixture_utils as fu  # noqa: E402

torch.set_num_threads(1)

OUT = os.path.join(HERE, "..", "fixtures", "vapsr")
REPO = "zhoumumu+VapSR"
COMMIT = "404c584e21ed92b3c9ddc3da8272d366c978148f"
FILES = {"code/vapsr.py": "b4e6f4bbe783107889971e8204c4241e580bf169"}
SIZES = [(12, 12), (11, 13)]
NARROW = dict(num_feat=8, num_block=2, d_atten=12)
SHARED_WEIGHTS = os.environ.get("GAZE_SHARED", os.path.join(HERE, "..", "..", "..", "shared"))
SHARED_WEIGHTS = os.path.join(SHARED_WEIGHTS, "weights", "sr", "vapsr")
# name -> (official vapsr kwargs, checkpoint file)
REGISTERED = {
    "vapsr_x2": (dict(scale=2, num_feat=48, d_atten=64, num_block=20), "VapSR_X2.pth"),
    "vapsr_x3": (dict(scale=3, num_feat=48, d_atten=64, num_block=20), "VapSR_X3.pth"),
    "vapsr_x4": (dict(scale=4, num_feat=48, d_atten=64, num_block=21), "VapSR_X4.pth"),
    "vapsr_s_x4": (dict(scale=4, num_feat=32, d_atten=64, num_block=11, conv_groups=2), "VapSR-S.pth"),
}


def load_official(official_dir):
    """The official `code/vapsr.py` as a module, its two BasicSR imports stubbed (docstring)."""
    d = fu.verify_official(official_dir, REPO, COMMIT, FILES)

    class Registry:
        def register(self):
            return lambda cls: cls

    def default_init_weights(module_list, scale=1, bias_fill=0, **kwargs):
        for m in module_list if isinstance(module_list, list) else [module_list]:
            assert isinstance(m, torch.nn.LayerNorm), type(m)  # BasicSR leaves LayerNorms as they are

    stubs = {name: types.ModuleType(name) for name in
             ("basicsr", "basicsr.utils", "basicsr.utils.registry", "basicsr.archs", "basicsr.archs.arch_util")}
    stubs["basicsr.utils.registry"].ARCH_REGISTRY = Registry()
    stubs["basicsr.archs.arch_util"].default_init_weights = default_init_weights
    with fu.stub_modules(stubs):
        return cc.load_file(os.path.join(d, "code", "vapsr.py"), "vapsr_official")


def features(m, x):
    """The official forward up to the upsampler's input."""
    feat = m.conv_first(x)
    return feat + m.conv_body(m.body(feat))


def run(m, size, x):
    y = m(x)
    f = features(m, x)
    # The features are exactly what the upsampler reads.
    assert torch.equal(m.upsampler(f), y)
    return y, [f]


def main():
    v = load_official(fu.official_dir_arg())
    os.makedirs(OUT, exist_ok=True)

    torch.manual_seed(1)
    fu.dump_block(OUT, "vab_attention", v.Attention(12), torch.randn(2, 12, 7, 9), seed=1)
    torch.manual_seed(2)
    fu.dump_block(OUT, "vab", v.VAB(8, 12), torch.randn(2, 8, 13, 17), seed=2)

    constants = {}
    narrow = {f"vapsr_x{s}": dict(scale=s) for s in (2, 3, 4)}
    narrow["vapsr_s_x4"] = dict(scale=4, conv_groups=2)
    for i, (name, kw) in enumerate(narrow.items()):
        m = v.vapsr(3, 3, **NARROW, **kw)
        _, constants[name] = fu.make_fixture(OUT, name, m, 10 + i, SIZES, output_key="output", run=run)

    counts, registered = {}, {}
    for name, (kw, file) in REGISTERED.items():
        m = v.vapsr(3, 3, **kw).eval()
        counts[name] = sum(p.numel() for p in m.parameters())
        registered[name] = fu.model_constants(m, fu.batch_input((8, 8)))
        ckpt = os.path.join(SHARED_WEIGHTS, file)
        if os.path.exists(ckpt):
            state = torch.load(ckpt, map_location="cpu", weights_only=True)
            sd = state["params_ema"]
            m.load_state_dict(sd, strict=True)
            assert list(state["params"]) == list(sd)
            print(f"# vapsr/{file} params_ema: {len(sd)} tensors load strictly, "
                  f"{sum(t.numel() for t in sd.values())} values")
        else:
            print(f"# {ckpt} not found: strict load not checked")
    print("# full-size parameter counts:", counts)
    fu.write_param_counts(OUT, counts)
    print("wrote", fu.write_constants(OUT, constants, registered))


if __name__ == "__main__":
    main()
