"""The x8 self-ensemble reference (tests/fixtures/pan/self_ensemble_x2.safetensors), from the repo root:

    /work/venv/bin/python tests/reference/gen_self_ensemble_fixture.py

EDSR's `forward_x8` (github.com/sanghyun-son/EDSR-PyTorch, src/model/__init__.py; RCAN's and
HAN's test code and BasicSR's `test_selfensemble` do the same): the input, its W-flip ('v' in
EDSR's naming: `v[:, :, :, ::-1]`), H-flip ('h') and transposition ('t'), composed into 8 inputs
in EDSR's order; each output transformed back ('t' for i > 3, 'h' for i % 4 > 1, 'v' for odd
i % 4); the mean. Written out independently of gaze's loop (gaze enumerates the 8 transforms
in another order and undoes them in reverse), so the test checks the group, the inverses and
the mean.

The model is the tiny PAN x2 of tests/fixtures/pan/pan_x2.safetensors (its weights, loaded
here), run in float64 on `deterministic_input(2, 3, 11, 13)`; stored: the weights (official
PAN names), `input`, `output`.
"""
import os
import sys

import torch
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fixture_utils as fu  # noqa: E402
from pan_reference import PAN  # noqa: E402

OUT = os.path.join(HERE, "..", "fixtures", "pan", "self_ensemble_x2.safetensors")


def transform(v, op):
    if op == "v":
        return v.flip(3)
    if op == "h":
        return v.flip(2)
    return v.transpose(2, 3)


def forward_x8(x, forward):
    lr_list = [x]
    for tf in ("v", "h", "t"):
        lr_list.extend([transform(t, tf) for t in lr_list])
    sr_list = [forward(aug) for aug in lr_list]
    for i in range(len(sr_list)):
        if i > 3:
            sr_list[i] = transform(sr_list[i], "t")
        if i % 4 > 1:
            sr_list[i] = transform(sr_list[i], "h")
        if (i % 4) % 2 == 1:
            sr_list[i] = transform(sr_list[i], "v")
    return torch.stack(sr_list).mean(dim=0)


def main():
    weights = load_file(os.path.join(HERE, "..", "fixtures", "pan", "pan_x2.safetensors"))
    m = PAN(in_nc=3, out_nc=3, nf=8, unf=6, nb=2, scale=2)
    state = {k: v for k, v in weights.items() if k in m.state_dict()}
    m.load_state_dict(state, strict=True)
    m = m.double().eval()
    x = fu.deterministic_input(2, 3, 11, 13)
    with torch.no_grad():
        y = forward_x8(x.double(), m)
        plain = m(x.double())
    # The ensemble must differ from a plain forward, or the test could not fail.
    gap = (y - plain).abs().max().item()
    assert gap > 1e-3, gap
    tensors = {k: v.float().contiguous() for k, v in state.items()}
    tensors.update({"input": x.float().contiguous(), "output": y.float().contiguous()})
    save_file(tensors, OUT)
    print(f"wrote {OUT}: max|output| {y.abs().max().item():.4f}, max|ensemble - plain| {gap:.4f}")


if __name__ == "__main__":
    main()
