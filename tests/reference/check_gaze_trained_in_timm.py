"""Weights trained by `gaze train` load into timm strictly and give gaze's logits.

    gaze train --model seresnet18 --data /usr/share/datasets/fashion-mnist --out RUN --max-steps 20 …
    gaze preprocess --model seresnet18 --in-chans 1 IMG... -o RUN/x.npy   (or any [N, C, H, W] .npy)
    gaze infer --model seresnet18 --weights RUN/model.safetensors --input RUN/x.npy --output RUN/logits.npy
    python tests/reference/check_gaze_trained_in_timm.py RUN

Reads RUN/model_card.json (model, num_classes, in_chans), builds
`timm.create_model(model, num_classes=…, in_chans=…)`, loads RUN/model.safetensors with
`strict=True`, and asserts timm's logits on RUN/x.npy equal gaze's RUN/logits.npy (max abs diff
<= 1e-4) and rank the classes in the same order.
"""
import json
import os
import sys

import numpy as np
import timm
import torch
from safetensors.torch import load_file


def main():
    run = sys.argv[1]
    card = json.load(open(os.path.join(run, "model_card.json")))
    print(f"timm {timm.__version__}, torch {torch.__version__}; run of {card['model']}: "
          f"{card['num_classes']} classes, {card['in_chans']} input channels, {card['steps']} steps, "
          f"data {card['data']['layout']}")
    model = timm.create_model(card["model"], pretrained=False, num_classes=card["num_classes"],
                              in_chans=card["in_chans"]).eval()
    state = load_file(os.path.join(run, "model.safetensors"))
    result = model.load_state_dict(state, strict=True)
    x = torch.from_numpy(np.load(os.path.join(run, "x.npy")))
    with torch.no_grad():
        logits = model(x).numpy()
    ours = np.load(os.path.join(run, "logits.npy"))
    diff = float(np.abs(logits - ours).max())
    same_rank = bool((np.argsort(-logits, 1) == np.argsort(-ours, 1)).all())
    print(f"{len(state)} tensors, strict load {result}, input {tuple(x.shape)}, "
          f"max|logit| {np.abs(logits).max():.3f}, max abs diff vs gaze {diff:.2e}, same ranking {same_rank}")
    assert diff <= 1e-4, diff
    assert same_rank
    print("the weights trained by gaze load into timm with gaze's logits")


if __name__ == "__main__":
    main()
