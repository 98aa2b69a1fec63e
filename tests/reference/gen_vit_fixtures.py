"""Generate ViT/DeiT fixtures into tests/fixtures/vit/ (run from the repo root).

    /work/venv/bin/python tests/reference/gen_vit_fixtures.py

The reference is timm's own VisionTransformer with `dynamic_img_size=True` (position
embeddings resampled with anti-aliased bicubic for other input sizes). Tiny variants (patch
16, width 32, depth 4, 2 heads, 10 classes, trained size 64; `tiny_qknorm_ls` adds qk_norm and
layer scale) with random weights. Sizes (batch 2): 64x64 and 80x48 (the grid changes from 4x4
to 5x3: one axis up-, one downsampled); logits and the NCHW maps of every block
(`forward_intermediates(indices=4)`) at both. Layout, weights, inputs and constants.json: see
fixture_utils.py. `param_counts.json` holds timm's count of each registered ViT; constants.json's
"registered" part comes from `timm.create_model(name)`.
"""
import json
import os
import sys

import timm
import torch
from timm.models.vision_transformer import VisionTransformer

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fixture_utils as fu  # noqa: E402

OUT = os.path.join(HERE, "..", "fixtures", "vit")
REGISTERED = ["vit_tiny_patch16_224", "vit_small_patch16_224", "vit_base_patch16_224",
              "deit_tiny_patch16_224", "deit_small_patch16_224"]
SIZES = [(64, 64), (80, 48)]
TINY = {"tiny": dict(), "tiny_qknorm_ls": dict(qk_norm=True, init_values=0.5)}


def main():
    os.makedirs(OUT, exist_ok=True)
    counts = {n: sum(p.numel() for p in timm.create_model(n, pretrained=False).parameters()) for n in REGISTERED}
    with open(os.path.join(OUT, "param_counts.json"), "w") as f:
        json.dump(counts, f, indent=1, sort_keys=True)
    constants = {}
    for i, (name, kw) in enumerate(TINY.items()):
        torch.manual_seed(i)
        model = VisionTransformer(img_size=64, patch_size=16, embed_dim=32, depth=4, num_heads=2, num_classes=10,
                                  dynamic_img_size=True, **kw)
        _, constants[name] = fu.make_fixture(OUT, name, model, i, SIZES, head=["head"],
                                             run=fu.timm_run(indices=4))
    registered = {n: fu.model_constants(timm.create_model(n, pretrained=False)) for n in REGISTERED}
    print("wrote", fu.write_constants(OUT, constants, registered))
    print(counts)


if __name__ == "__main__":
    main()
