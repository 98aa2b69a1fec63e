"""Models saved by gaze load into timm strictly and give gaze's logits.

    GAZE_EXPORT_DIR=/tmp/gaze-export cargo test --release -p gaze --test suite a_model_trains
    python tests/reference/check_gaze_saved_in_timm.py /tmp/gaze-export

The Rust test fine-tunes resnet18 with a fresh 3-class head for a few SGD steps and saves it
with `Model::save_safetensors`; it also saves random-weight vit_tiny_patch16_224,
swin_tiny_patch4_window7_224 and levit_128s. Each file must load with
`load_state_dict(strict=True)` into `timm.create_model(name, num_classes=…)`, and timm's logits on
the same deterministic input must equal gaze's (max abs diff <= 1e-4, asserted).
"""
import os
import sys

import numpy as np
import timm
import torch
from safetensors.torch import load_file

CASES = [
    ("resnet18_finetuned_3", "resnet18", 3, (2, 3, 40, 36)),
    ("vit_tiny_patch16_224", "vit_tiny_patch16_224", 1000, (1, 3, 224, 224)),
    ("swin_tiny_patch4_window7_224", "swin_tiny_patch4_window7_224", 1000, (1, 3, 224, 224)),
    ("levit_128s", "levit_128s", 1000, (1, 3, 224, 224)),
]


def deterministic_input(n, c, h, w):
    """x[n,c,h,w] = sin(0.05 (h+1)(c+1) + 0.07 w + 0.3 n), as tests/suite/common.rs computes it."""
    ni, ci, hi, wi = torch.meshgrid(*(torch.arange(s, dtype=torch.float64) for s in (n, c, h, w)), indexing="ij")
    return torch.sin(0.05 * (hi + 1) * (ci + 1) + 0.07 * wi + 0.3 * ni).float()


def main():
    export = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("GAZE_EXPORT_DIR", "/tmp/gaze-export")
    print(f"timm {timm.__version__}, torch {torch.__version__}")
    for file, name, classes, shape in CASES:
        model = timm.create_model(name, pretrained=False, num_classes=classes).eval()
        state = load_file(os.path.join(export, f"{file}.safetensors"))
        result = model.load_state_dict(state, strict=True)
        with torch.no_grad():
            logits = model(deterministic_input(*shape)).numpy()
        ours = np.load(os.path.join(export, f"{file}_logits.npy"))
        diff = float(np.abs(logits - ours).max())
        print(f"{file}: {len(state)} tensors, strict load {result}, logits {logits.shape}, "
              f"max|logit| {np.abs(logits).max():.3f}, max abs diff vs gaze {diff:.2e}")
        assert diff <= 1e-4, f"{file}: {diff}"
    print("all gaze-saved models load into timm with gaze's logits")


if __name__ == "__main__":
    main()
