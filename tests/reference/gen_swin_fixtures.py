"""Generate Swin Transformer fixtures into tests/fixtures/swin/ (run from the repo root).

    /work/venv/bin/python tests/reference/gen_swin_fixtures.py

The reference is timm's own `SwinTransformer` class (timm 1.0.31), built tiny:
img_size 64, patch 4, embed_dim 6, depths (2, 2, 2, 2), heads (1, 2, 2, 4), window 4,
10 classes, with `strict_img_size=False` so that the attention masks are built from the
runtime size (timm's `dynamic_mask`; identical to the static mask at 64x64).
Stage resolutions at 64x64 are 16, 8, 4, 2: stages 0-1 shift their odd blocks, stage 2 is a
single 4x4 window (shift 0), stage 3 clips its window to the 2x2 input (shift 0).

Layout, weights, inputs (batch 2) and constants.json: see fixture_utils.py. Tensors in
tiny.safetensors besides the state dict:
* `logits_64x64`, `feature{0..3}_64x64`: 64x64 input;
* `logits_96x56`, `feature{0..3}_96x56`: non-square 96x56 input (patch grid 24x14: window
  padding in stages 0-1, odd-width PatchMerging padding at 12x7, and 3x2 in stage 3 padded to
  the 2x2 window);
* `logits_66x50`: a size that is not a multiple of the patch. timm's SwinTransformer builds its
  PatchEmbed without `dynamic_img_pad`, so it rejects such sizes; this output is computed with
  `model.patch_embed.dynamic_img_pad = True` (zero-pad bottom/right to a multiple of 4, the
  behaviour gaze implements). Logits only.
The features are `forward_intermediates(x, intermediates_only=True)` (NCHW stage outputs
without the final norm).

`param_counts.json` holds timm's parameter counts of the full-size registered models.
"""
import json
import os
import sys

import timm
import torch
from timm.models.swin_transformer import SwinTransformer

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fixture_utils as fu  # noqa: E402

OUT = os.path.join(HERE, "..", "fixtures", "swin")
FULL = ["swin_tiny_patch4_window7_224", "swin_small_patch4_window7_224"]
TINY = dict(img_size=64, patch_size=4, embed_dim=6, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4),
            window_size=4, num_classes=10, strict_img_size=False)


SIZES = [(64, 64), (96, 56)]
PADDED = (66, 50)


def padded_logits(model):
    model.patch_embed.dynamic_img_pad = True
    try:
        return {f"logits_{fu.tag(PADDED)}": model(fu.batch_input(PADDED).to(fu.dtype_of(model)))}
    finally:
        model.patch_embed.dynamic_img_pad = False


def main():
    os.makedirs(OUT, exist_ok=True)
    counts = {}
    for name in FULL:
        m = timm.create_model(name, pretrained=False)
        counts[name] = sum(p.numel() for p in m.parameters())
    with open(os.path.join(OUT, "param_counts.json"), "w") as f:
        json.dump(counts, f, indent=1, sort_keys=True)
    print(counts)

    torch.manual_seed(0)
    model = SwinTransformer(**TINY)
    _, constants = fu.make_fixture(OUT, "tiny", model, 0, SIZES, head=["head.fc"], extra=padded_logits)
    registered = {n: fu.model_constants(timm.create_model(n, pretrained=False)) for n in FULL}
    print("wrote", fu.write_constants(OUT, {"tiny": constants}, registered))


if __name__ == "__main__":
    main()
