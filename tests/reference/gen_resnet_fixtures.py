"""Generate ResNet-family fixtures into tests/fixtures/resnet/ (run from the repo root).

    /work/venv/bin/python tests/reference/gen_resnet_fixtures.py

The reference is timm's own ResNet class. Each tiny variant (small `channels`, 10 classes)
exercises one code path of the full-size models: plain / deep / tiered stem, strided-conv or
average-pool shortcuts, basic / bottleneck / ResNeSt blocks, and every attention kind plugged in
through timm's `attn_layer`. For the kinds timm lacks, the attention class comes from our
reference re-implementations of the official code (attn_official_reference.py,
attn_sr_reference.py, pan_reference.py).

Layout, weights (residual branches and shortcuts scaled down: `targets`), inputs and
constants.json: see fixture_utils.py. Sizes (batch 2): 56x56 (the
stages run 28, 14, 7, 4, 2: FcaNet's 7x7 DCT meets an exact 7x7 map in layer2, and 7 -> 4 is an
odd downsampling) and the non-square 29x23; logits and the five feature maps (timm
features_only order) at both. 56 rather than 224 keeps the committed feature maps small.
`param_counts.json` holds timm's parameter count of every full-size registered model;
constants.json's "registered" part comes from `timm.create_model(name)` where timm registers
the name, else from the same `ResNet(**kwargs)` as the parameter counts.
"""
import json
import os
import re
import sys

import timm
import torch.nn as nn
from timm.models.resnet import BasicBlock, Bottleneck, ResNet
from timm.models.resnest import ResNestBottleneck

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from attn_official_reference import MultiSpectralAttentionLayer, PSA_p, PSA_s, TripletAttention  # noqa: E402
from attn_sr_reference import CALayer, CSAM_Module  # noqa: E402
from pan_reference import PA  # noqa: E402
import fixture_utils as fu  # noqa: E402

OUT = os.path.join(HERE, "..", "fixtures", "resnet")
SIZES = [(56, 56), (29, 23)]


# The attention kinds by gaze name: the class timm's create_attn builds (as timm's names, or
# as a module class called with the channel count).
def fca(c, **_):
    return MultiSpectralAttentionLayer(c, 7, 7, reduction=16, freq_sel_method="top16")


ATTN = {
    "se": "se",
    "eca": "eca",
    "cbam": "cbam",
    "fca": fca,
    "triplet": lambda c, **_: TripletAttention(c),
    "psa_p": lambda c, **_: PSA_p(c, c),
    "psa_s": lambda c, **_: PSA_s(c, c),
    "ca": lambda c, **_: CALayer(c, 16),
    "pa": lambda c, **_: PA(c),
    "csam": lambda c, **_: CSAM_Module(c),
}

D = dict(stem_type="deep", stem_width=32, avg_down=True)
T = dict(stem_type="deep_tiered", stem_width=32, avg_down=True)
RESNEST = dict(block=ResNestBottleneck, block_args=dict(radix=2, avd=True, avd_first=False), **D)

# Full-size registered models: (name, kwargs).
FULL = {
    "resnet18": dict(block=BasicBlock, layers=(2, 2, 2, 2)),
    "resnet26": dict(block=Bottleneck, layers=(2, 2, 2, 2)),
    "resnet34": dict(block=BasicBlock, layers=(3, 4, 6, 3)),
    "resnet50": dict(block=Bottleneck, layers=(3, 4, 6, 3)),
    "resnet101": dict(block=Bottleneck, layers=(3, 4, 23, 3)),
    "resnet18d": dict(block=BasicBlock, layers=(2, 2, 2, 2), **D),
    "resnet26d": dict(block=Bottleneck, layers=(2, 2, 2, 2), **D),
    "resnet34d": dict(block=BasicBlock, layers=(3, 4, 6, 3), **D),
    "resnet50d": dict(block=Bottleneck, layers=(3, 4, 6, 3), **D),
    "resnet101d": dict(block=Bottleneck, layers=(3, 4, 23, 3), **D),
    "resnet26t": dict(block=Bottleneck, layers=(2, 2, 2, 2), **T),
    "resnet50t": dict(block=Bottleneck, layers=(3, 4, 6, 3), **T),
    "seresnet18": dict(block=BasicBlock, layers=(2, 2, 2, 2), block_args=dict(attn_layer="se")),
    "seresnet34": dict(block=BasicBlock, layers=(3, 4, 6, 3), block_args=dict(attn_layer="se")),
    "seresnet50": dict(block=Bottleneck, layers=(3, 4, 6, 3), block_args=dict(attn_layer="se")),
    "seresnet101": dict(block=Bottleneck, layers=(3, 4, 23, 3), block_args=dict(attn_layer="se")),
    "seresnet50t": dict(block=Bottleneck, layers=(3, 4, 6, 3), block_args=dict(attn_layer="se"), **T),
    "ecaresnet26t": dict(block=Bottleneck, layers=(2, 2, 2, 2), block_args=dict(attn_layer="eca"), **T),
    "ecaresnet50d": dict(block=Bottleneck, layers=(3, 4, 6, 3), block_args=dict(attn_layer="eca"), **D),
    "ecaresnet50t": dict(block=Bottleneck, layers=(3, 4, 6, 3), block_args=dict(attn_layer="eca"), **T),
    "ecaresnet101d": dict(block=Bottleneck, layers=(3, 4, 23, 3), block_args=dict(attn_layer="eca"), **D),
    "cbam_resnet18": dict(block=BasicBlock, layers=(2, 2, 2, 2), block_args=dict(attn_layer="cbam")),
    "cbam_resnet50": dict(block=Bottleneck, layers=(3, 4, 6, 3), block_args=dict(attn_layer="cbam")),
    "triplet_resnet18": dict(block=BasicBlock, layers=(2, 2, 2, 2), block_args=dict(attn_layer=ATTN["triplet"])),
    "triplet_resnet50": dict(block=Bottleneck, layers=(3, 4, 6, 3), block_args=dict(attn_layer=ATTN["triplet"])),
    "fca_resnet18": dict(block=BasicBlock, layers=(2, 2, 2, 2), block_args=dict(attn_layer=fca)),
    "fca_resnet50": dict(block=Bottleneck, layers=(3, 4, 6, 3), block_args=dict(attn_layer=fca)),
    "psa_resnet18": dict(block=BasicBlock, layers=(2, 2, 2, 2), block_args=dict(attn_layer=ATTN["psa_s"])),
    "psa_resnet50": dict(block=Bottleneck, layers=(3, 4, 6, 3), block_args=dict(attn_layer=ATTN["psa_s"])),
    "resnest14d": dict(layers=(1, 1, 1, 1), **RESNEST),
    "resnest26d": dict(layers=(2, 2, 2, 2), **RESNEST),
    "resnest50d": dict(layers=(3, 4, 6, 3), **RESNEST),
    "resnest101e": dict(layers=(3, 4, 23, 3), **dict(RESNEST, stem_width=64)),
}

# Tiny variants: (fixture name, kwargs). FcaNet and RCAN's CA need 16 channels or more.
SMALL = dict(channels=(8, 8, 16, 16), num_classes=10)
SMALL16 = dict(channels=(16, 16, 16, 16), num_classes=10)
TINY = {
    "basic_plain": dict(block=BasicBlock, layers=(2, 1, 1, 1), **SMALL),
    "bottleneck_plain_se": dict(block=Bottleneck, layers=(1, 2, 1, 1), block_args=dict(attn_layer="se"), **SMALL),
    "bottleneck_d_eca": dict(block=Bottleneck, layers=(1, 1, 1, 1), block_args=dict(attn_layer="eca"),
                             **dict(D, stem_width=8), **SMALL),
    "bottleneck_t_cbam": dict(block=Bottleneck, layers=(1, 1, 1, 1), block_args=dict(attn_layer="cbam"),
                              **dict(T, stem_width=8), **SMALL),
    "resnest_d": dict(layers=(1, 2, 1, 1), **dict(RESNEST, stem_width=8), **SMALL),
}
for kind in ["fca", "triplet", "psa_p", "psa_s", "ca", "pa", "csam"]:
    TINY[f"basic_d_{kind}"] = dict(block=BasicBlock, layers=(1, 1, 1, 1), block_args=dict(attn_layer=ATTN[kind]),
                                   **dict(D, stem_width=8), **(SMALL16 if kind in ("fca", "ca") else SMALL))

# Output scales (fixture_utils.calibrate targets): every block adds its branch (closed by its
# last BatchNorm) to an un-normalized residual stream, started by each stage's projection
# shortcut (downsample's BatchNorm); with the random BatchNorm affines the stream reaches ~10
# and the float32 rounding error of the deepest features 6e-5. Smaller branches and
# shortcuts keep the features O(1-5).
BRANCH_RMS = 0.25
SHORTCUT_RMS = 0.5


def targets(model, prefix=""):
    """The calibration targets of the residual blocks named `<prefix>layer<i>.<j>`."""
    out = []
    for name, block in model.named_modules():
        if re.fullmatch(re.escape(prefix) + r"layer\d+\.\d+", name):
            last = [n for n, m in block.named_children() if isinstance(m, nn.BatchNorm2d)][-1]
            out.append((rf"^{re.escape(name)}\.{last}$", BRANCH_RMS))
            if block.downsample is not None:
                bn = [n for n, m in block.downsample.named_children() if isinstance(m, nn.BatchNorm2d)][-1]
                out.append((rf"^{re.escape(name)}\.downsample\.{bn}$", SHORTCUT_RMS))
    return out


def full_model(name):
    return timm.create_model(name, pretrained=False) if timm.is_model(name) else ResNet(**FULL[name])


def main():
    os.makedirs(OUT, exist_ok=True)
    counts = {name: sum(p.numel() for p in ResNet(**kw).parameters()) for name, kw in FULL.items()}
    with open(os.path.join(OUT, "param_counts.json"), "w") as f:
        json.dump(counts, f, indent=1, sort_keys=True)
    constants = {}
    for i, (name, kw) in enumerate(TINY.items()):
        model = ResNet(**kw)
        _, constants[name] = fu.make_fixture(OUT, name, model, 100 + i, SIZES, head=["fc"], targets=targets(model))
    registered = {name: fu.model_constants(full_model(name)) for name in FULL}
    print("wrote", fu.write_constants(OUT, constants, registered))


if __name__ == "__main__":
    main()
