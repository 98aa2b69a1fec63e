"""Generate LeViT fixtures into tests/fixtures/levit/ (run from the repo root).

    /work/venv/bin/python tests/reference/gen_levit_fixtures.py

The reference is timm 1.0.31's own `Levit` / `LevitDistilled` (timm/models/levit.py), linear
mode. Tiny variants with random weights, eval mode:

* `tiny_distilled`: `LevitDistilled`, s16 stem, hard-swish, img_size 64 (token maps 4x4, 2x2,
  1x1); sizes 64x64 and 61x57;
* `tiny_rect_s8`: `Levit` (one head), s8 stem, SiLU, img_size (80, 48) (maps 10x6, 5x3, 3x2),
  per-stage attn/mlp ratios, depth (1, 2, 1); sizes 80x48 and 77x47.
LeViT's resolution is fixed, but like timm any input the stem maps onto the configured token
map is accepted: the second size of each is such an input. Logits and the three stage maps at
both sizes, batch 2. Layout, weights (output scales: `targets`), inputs and constants.json: see
fixture_utils.py.
`param_counts.json` holds `timm.create_model(name)`'s parameter count of every registered LeViT.
"""
import json
import os
import re
import sys

import timm
import torch
from timm.models.levit import Levit, LevitDistilled

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fixture_utils as fu  # noqa: E402

OUT = os.path.join(HERE, "..", "fixtures", "levit")
FULL = ["levit_128s", "levit_128", "levit_192", "levit_256", "levit_384"]

TINY = {
    "tiny_distilled": (
        LevitDistilled,
        dict(img_size=64, num_classes=10, embed_dim=(16, 24, 32), key_dim=8, num_heads=(2, 2, 2),
             depth=(1, 1, 1)),
        [(64, 64), (61, 57)],
        ["head.linear", "head_dist.linear"],
    ),
    "tiny_rect_s8": (
        Levit,
        dict(img_size=(80, 48), num_classes=10, embed_dim=(16, 24, 32), key_dim=8, num_heads=(2, 3, 2),
             depth=(1, 2, 1), attn_ratio=(2.0, 1.5, 2.0), mlp_ratio=(2.0, 3.0, 2.0), stem_type="s8",
             act_layer="silu"),
        [(80, 48), (77, 47)],
        ["head.linear"],
    ),
}

# Output scales (fixture_utils.calibrate targets). LeViT is a long chain of linear + BatchNorm
# layers whose float32 rounding error grows along it (relative ~1e-5 at the last stage), so
# the residual stream is kept O(1): its start (the stem's last BatchNorm, each stage's
# attention-downsample output) at RMS STREAM_RMS, every residual branch's closing BatchNorm
# at BRANCH_RMS, the q / k / v BatchNorms at QKV_RMS (softer attention), logits at HEAD_RMS.
STREAM_RMS = 0.35
BRANCH_RMS = 0.15
QKV_RMS = 0.5
HEAD_RMS = 1.0


def targets(model):
    stem_out = [n for n, m in model.stem.named_modules() if isinstance(m, torch.nn.BatchNorm2d)][-1]
    return [(rf"^stem\.{re.escape(stem_out)}$", STREAM_RMS), (r"attn_downsample\.proj\.ln\.bn$", STREAM_RMS),
            (r"(attn\.proj\.ln|mlp\.ln2)\.bn$", BRANCH_RMS), (r"(qkv|kv|q\.ln)\.bn$", QKV_RMS)]


def main():
    os.makedirs(OUT, exist_ok=True)
    counts = {}
    for name in FULL:
        m = timm.create_model(name)
        counts[name] = sum(p.numel() for p in m.parameters())
    with open(os.path.join(OUT, "param_counts.json"), "w") as f:
        json.dump(counts, f, indent=1, sort_keys=True)
    print(counts)
    constants = {}
    for i, (name, (cls, kw, sizes, head)) in enumerate(TINY.items()):
        torch.manual_seed(200 + i)
        model = cls(**kw)
        _, constants[name] = fu.make_fixture(OUT, name, model, 200 + i, sizes, head=head, targets=targets(model),
                                             head_rms=HEAD_RMS)
    registered = {n: fu.model_constants(timm.create_model(n, pretrained=False)) for n in FULL}
    print("wrote", fu.write_constants(OUT, constants, registered))


if __name__ == "__main__":
    main()
