"""Generate HaloNet fixtures into tests/fixtures/halonet/ (run from the repo root).

    /work/venv/bin/python tests/reference/gen_halonet_fixtures.py

The reference is timm 1.0.31's own `ByobNet` (timm/models/byobnet.py) built from reduced copies
of the `halonet26t` / `halonet50ts` model cfgs of timm/models/byoanet.py:

* `tiny26t` (ReLU, like halonet26t): tiered stem 8 (3, 4, 8) + max pool; stages
  bottle c8 s1 | bottle c32 s2 | interleave(bottle, self_attn) d2 c64 s2 | self_attn c128 s2,
  bottle ratio 0.25, model `self_attn_kwargs = dict(block_size=4, halo_size=1, num_heads=2)`.
  The last stage's attention is strided (query subsampling, block_stride 2).
* `tiny50ts` (SiLU, like halonet50ts): same stem; stages bottle c8 s1 |
  interleave d2 c32 s2 with a block-level `self_attn_kwargs = dict(block_size=4, halo_size=2,
  num_heads=4)` override | interleave d2 c64 s2 | interleave d2 c128 s2, model kwargs
  `dict(block_size=2, halo_size=1, num_heads=2)`.

Both need H, W multiples of 64 (attention stage input stride x block size). 10 classes.
Layout, weights, inputs (batch 2) and constants.json: see fixture_utils.py; the relative
position tables are N(0, dim_head^-0.5) (timm's init: their logits q . rel are O(1)); the
residual branches and shortcuts are scaled down (`targets`).

Tensors in tiny26t.safetensors / tiny50ts.safetensors besides the state dict:
* `logits_64x64`, `feature{0..4}_64x64`: 64x64 input;
* `logits_128x64`, `feature{0..4}_128x64`: non-square 128x64 input;
* `logits_70x50`: a size timm rejects (HaloAttn asserts); computed by timm on the input
  zero-padded bottom/right to 128x64, which is what gaze's `forward` does. Logits only.
The features are `forward_intermediates(x, intermediates_only=True)` (timm's feature_info:
stem.conv3 at stride 2, stages.0..2, final_conv (identity) at stride 32).

`param_counts.json` holds timm's parameter counts of the full-size halonet26t and halonet50ts.
"""
import json
import os
import sys

import timm
import torch
import torch.nn.functional as F
from timm.models.byobnet import ByobNet, ByoBlockCfg, ByoModelCfg, interleave_blocks

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fixture_utils as fu  # noqa: E402

OUT = os.path.join(HERE, "..", "fixtures", "halonet")
FULL = ["halonet26t", "halonet50ts"]

TINY = dict(
    tiny26t=ByoModelCfg(
        blocks=(
            ByoBlockCfg(type='bottle', d=1, c=8, s=1, gs=0, br=0.25),
            ByoBlockCfg(type='bottle', d=1, c=32, s=2, gs=0, br=0.25),
            interleave_blocks(types=('bottle', 'self_attn'), d=2, c=64, s=2, gs=0, br=0.25),
            ByoBlockCfg(type='self_attn', d=1, c=128, s=2, gs=0, br=0.25),
        ),
        stem_chs=8,
        stem_type='tiered',
        stem_pool='maxpool',
        self_attn_layer='halo',
        self_attn_kwargs=dict(block_size=4, halo_size=1, num_heads=2),
    ),
    tiny50ts=ByoModelCfg(
        blocks=(
            ByoBlockCfg(type='bottle', d=1, c=8, s=1, gs=0, br=0.25),
            interleave_blocks(
                types=('bottle', 'self_attn'), every=1, d=2, c=32, s=2, gs=0, br=0.25,
                self_attn_layer='halo', self_attn_kwargs=dict(block_size=4, halo_size=2, num_heads=4)),
            interleave_blocks(types=('bottle', 'self_attn'), d=2, c=64, s=2, gs=0, br=0.25),
            interleave_blocks(types=('bottle', 'self_attn'), d=2, c=128, s=2, gs=0, br=0.25),
        ),
        stem_chs=8,
        stem_type='tiered',
        stem_pool='maxpool',
        act_layer='silu',
        self_attn_layer='halo',
        self_attn_kwargs=dict(block_size=2, halo_size=1, num_heads=2),
    ),
)


SIZES = [(64, 64), (128, 64)]
PADDED, PADDED_TO = (70, 50), (128, 64)
REL_TABLES = [(r"pos_embed\.(height|width)_rel$", lambda p, g: torch.randn(p.shape, generator=g) * p.shape[-1] ** -0.5)]

# Output scales (fixture_utils.calibrate targets): every block adds its branch (closed by
# conv3_1x1's BatchNorm) to an un-normalized residual stream, started by each stage's
# projection shortcut (its BatchNorm); with the random BatchNorm affines the stream reaches
# ~15 and the float32 rounding error 1e-4. Smaller branches and shortcuts keep the
# features O(1-5), the logits at HEAD_RMS.
BRANCH_RMS = 0.25
SHORTCUT_RMS = 0.5
HEAD_RMS = 1.0


def targets():
    return [(r"conv3_1x1\.bn$", BRANCH_RMS), (r"shortcut\.bn$", SHORTCUT_RMS)]


def padded_input():
    (h, w), (ph, pw) = PADDED, PADDED_TO
    return F.pad(fu.batch_input(PADDED), (0, pw - w, 0, ph - h))


def padded_logits(model):
    return {f"logits_{fu.tag(PADDED)}": model(padded_input().to(fu.dtype_of(model)))}


def main():
    os.makedirs(OUT, exist_ok=True)
    counts = {}
    for name in FULL:
        m = timm.create_model(name, pretrained=False)
        counts[name] = sum(p.numel() for p in m.parameters())
    with open(os.path.join(OUT, "param_counts.json"), "w") as f:
        json.dump(counts, f, indent=1, sort_keys=True)
    print(counts)

    constants = {}
    for seed, (tag, cfg) in enumerate(TINY.items()):
        torch.manual_seed(seed)
        model = ByobNet(cfg, num_classes=10)
        _, constants[tag] = fu.make_fixture(OUT, tag, model, seed, SIZES, head=["head.fc"], overrides=REL_TABLES,
                                            targets=targets(), head_rms=HEAD_RMS,
                                            extra=padded_logits, calib_extra=[padded_input()])
        print(model.feature_info)
    registered = {n: fu.model_constants(timm.create_model(n, pretrained=False)) for n in FULL}
    print("wrote", fu.write_constants(OUT, constants, registered))


if __name__ == "__main__":
    main()
