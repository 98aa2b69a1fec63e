"""Generate PAN test fixtures into tests/fixtures/pan/ (run from the repo root).

    /work/venv/bin/python tests/reference/gen_pan_fixtures.py

The reference is tests/reference/pan_reference.py (official PAN_arch.py semantics and key
names).

Block fixtures (`pa`, `scpa`, `upa`, `upa_x3`): the module's state_dict plus `input` and
`output` tensors (the layout of every block fixture, tests/common `load_fixture`); all
parameters N(0, 0.2), random-normal inputs, fixed torch.manual_seed per fixture, float32.

Whole-network fixtures (`pan_x2`, `pan_x3`, `pan_x4`: nf 8, unf 6, 2 SC-PA blocks): the backbone
layout of fixture_utils.py (weights, inputs, .pth, constants.json) with SR outputs: sizes 12x12
and 11x13 (batch 2), `output_<HxW>` (`[2, 3, sH, sW]`) and `feature0_<HxW>` (the
low-resolution trunk features `conv_first(x) + trunk_conv(SCPA_trunk(conv_first(x)))`, gaze's
`Pan::forward_features`). constants.json's "registered" part is the full-size PAN (nf 40,
unf 24, 16 blocks) of each scale, with the functional LeakyReLU slopes seen in a forward.
"""
import os
import sys

import torch
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fixture_utils as fu  # noqa: E402
from pan_reference import PA, PAN, SCPA, UPA  # noqa: E402

OUT_DIR = os.path.join(HERE, "..", "fixtures", "pan")
SIZES = [(12, 12), (11, 13)]


def reinit(m, std=0.2):
    # Default init is too small to exercise the nonlinearities; use N(0, std) for everything.
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0.0, std)


def dump(name, m, x):
    m.eval()
    with torch.no_grad():
        y = m(x)
    assert torch.isfinite(y).all()
    t = {k: v.detach().float().contiguous() for k, v in m.state_dict().items()}
    t["input"] = x.float().contiguous()
    t["output"] = y.float().contiguous()
    path = os.path.join(OUT_DIR, f"{name}.safetensors")
    if os.path.exists(path):
        # Thread counts change the last bits; keep the committed file when it is that close.
        old = load_file(path)
        if old.keys() == t.keys() and all(old[k].shape == t[k].shape for k in t) and \
                max((old[k] - t[k]).abs().max().item() for k in t) <= 1e-5:
            print(f"== {name}.safetensors unchanged (within 1e-5)")
            return
    save_file(t, path)
    os.chmod(path, 0o644)
    print(f"== {name}.safetensors ({os.path.getsize(path)} bytes) max|output| = {y.abs().max().item():.6f}")


def features(m, x):
    fea = m.conv_first(x)
    return fea + m.trunk_conv(m.SCPA_trunk(fea))


def main():
    os.makedirs(OUT_DIR, exist_ok=True)

    torch.manual_seed(1)
    m = PA(6)
    reinit(m)
    dump("pa", m, torch.randn(2, 6, 13, 17))

    torch.manual_seed(2)
    m = SCPA(8, reduction=2)
    reinit(m)
    dump("scpa", m, torch.randn(2, 8, 13, 17))

    torch.manual_seed(3)
    m = UPA(8, 6, scale=2)
    reinit(m)
    dump("upa", m, torch.randn(2, 8, 7, 9))

    torch.manual_seed(4)
    m = UPA(8, 6, scale=3)
    reinit(m)
    dump("upa_x3", m, torch.randn(2, 8, 7, 9))

    constants = {}
    for s in (2, 3, 4):
        torch.manual_seed(10 + s)
        m = PAN(in_nc=3, out_nc=3, nf=8, unf=6, nb=2, scale=s)
        _, constants[f"pan_x{s}"] = fu.make_fixture(
            OUT_DIR, f"pan_x{s}", m, 10 + s, SIZES, output_key="output",
            run=lambda model, size, x: (model(x), [features(model, x)]))
    registered = {f"pan_x{s}": fu.model_constants(PAN(scale=s), fu.batch_input((8, 8))) for s in (2, 3, 4)}
    print("wrote", fu.write_constants(OUT_DIR, constants, registered))


if __name__ == "__main__":
    main()
