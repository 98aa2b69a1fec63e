"""Generate the Residual Attention Network fixtures into tests/fixtures/ran/ (from the repo root).

    /work/venv/bin/python tests/reference/gen_ran_fixtures.py

The reference is our re-implementation of the PyTorch port
tengshaofeng/ResidualAttentionNetwork-pytorch (attn_sr_reference.py: ResidualAttentionModel,
with the port's parameter names). The port fixes its interpolation targets and its final
average-pool kernel for one input size; the reference computes them from `input_size`, so each
input size gets its own reference network, all sharing one state dict.

Two tiny variants (stem 8 channels, stages 16/16/24/32, 10 classes; every stage transition
projects its shortcut as in the full-size models):

* attention56_imagenet: ImageNet layout, Attention-56; sizes 224x224 (the port's) and 29x23;
* attention92_cifar: CIFAR layout (ResidualAttentionModel_92_32input_update), Attention-92;
  sizes 32x32 (the port's) and 19x13.

Layout, weights (calibrated on the first size, with the output scales of `targets`), inputs
(batch 2) and constants.json: see fixture_utils.py. Each file holds `logits_<HxW>` and the four stage feature maps
`feature{0..3}_<HxW>` (the last one after mpool2's BatchNorm + ReLU) at both sizes.
`param_counts.json` holds the parameter count of every full-size registered model.
"""
import json
import os
import re
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from attn_sr_reference import (  # noqa: E402
    ResidualAttentionModel,
    ResidualAttentionModel_56,
    ResidualAttentionModel_92,
    ResidualAttentionModel_92_32input_update,
)
import fixture_utils as fu  # noqa: E402

OUT = os.path.join(HERE, "..", "fixtures", "ran")

FULL = {
    "attention56": ResidualAttentionModel_56,
    "attention92": ResidualAttentionModel_92,
    "attention92_cifar": ResidualAttentionModel_92_32input_update,
}

# Output scales (fixture_utils.calibrate targets). The pre-activation residual stream is never
# normalized (and attention modules multiply it by 1 + mask): small residual branches (conv3)
# and stage-transition projections (conv4) keep it O(1) through Attention-92's depth. The
# float32 rounding error grows along that depth (relative ~1e-5 at the end), so the mask
# heads' last conv (the sigmoid's input), mpool2's BatchNorm (feature3) and the logits are
# kept small too.
BRANCH_RMS = 0.05
SHORTCUT_RMS = 0.2
MASK_RMS = 0.3
FINAL_BN_RMS = 0.3
HEAD_RMS = 1.0


def targets(model):
    """The calibration targets: residual branches, shortcuts, each mask head's conv before its
    sigmoid, mpool2's BatchNorm."""
    masks = [n for n, m in model.named_modules()
             if isinstance(m, torch.nn.Sequential) and len(m) and isinstance(m[-1], torch.nn.Sigmoid)]
    out = [(r"conv3$", BRANCH_RMS), (r"conv4$", SHORTCUT_RMS)]
    out += [(rf"^{re.escape(n)}\.{len(model.get_submodule(n)) - 2}$", MASK_RMS) for n in masks]
    return out + [(r"^mpool2\.0$", FINAL_BN_RMS)]


TINY_WIDTH = dict(stem_channels=8, channels=(16, 16, 24, 32), num_classes=10)
# name: (depth, cifar, main input size, odd input size)
TINY = {
    "attention56_imagenet": (56, False, (224, 224), (29, 23)),
    "attention92_cifar": (92, True, (32, 32), (19, 13)),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    counts = {name: sum(p.numel() for p in make().parameters()) for name, make in FULL.items()}
    with open(os.path.join(OUT, "param_counts.json"), "w") as f:
        json.dump(counts, f, indent=1, sort_keys=True)
    print("full-size parameter counts:", counts)
    constants = {}
    for i, (name, (depth, cifar, main_size, odd_size)) in enumerate(TINY.items()):
        torch.manual_seed(200 + i)
        model = ResidualAttentionModel(depth, cifar, input_size=main_size, **TINY_WIDTH)

        def run(model, size, x, depth=depth, cifar=cifar):
            # The port's modules for this size (interpolation targets, pool kernel), same
            # weights, same dtype (fixture_utils runs a float64 copy too).
            m = ResidualAttentionModel(depth, cifar, input_size=size, **TINY_WIDTH).to(fu.dtype_of(model)).eval()
            m.load_state_dict(model.state_dict())
            return m(x), m.forward_intermediates(x)

        _, constants[name] = fu.make_fixture(OUT, name, model, 200 + i, [main_size, odd_size], head=["fc"], run=run,
                                             targets=targets(model), head_rms=HEAD_RMS, calib_sizes=[main_size])
    registered = {name: fu.model_constants(make()) for name, make in FULL.items()}
    print("wrote", fu.write_constants(OUT, constants, registered))


if __name__ == "__main__":
    main()
