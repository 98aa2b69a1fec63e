"""Generate the smp U-Net fixtures into tests/fixtures/encoder_unet/ (from the repo root).

    /work/venv/bin/pip install segmentation-models-pytorch==0.6.0   # (with timm 1.0.31)
    /work/venv/bin/python tests/reference/gen_encoder_unet_fixtures.py

The reference is segmentation_models_pytorch's own `smp.Unet` with a timm encoder
(`encoder_name="tu-<model>"`: `TimmUniversalEncoder`), narrowed through timm's ResNet keyword
arguments (`channels`, `stem_width`) and small `decoder_channels` so the files stay small:

* resnet18_plain:   tu-resnet18, channels (8, 8, 16, 16), decoder (16, 16, 8, 8, 4), 1 class;
* seresnet18_scse:  tu-seresnet18, same encoder widths, decoder (16, 16, 16, 16, 16) (scSE needs
                    16 channels or more: smp's `C // 16` hidden width is 0 below that),
                    decoder_attention_type="scse", 2 classes;
* resnet26d_deep:   tu-resnet26d (deep stem, average-pool shortcuts), channels (8, 8, 16, 16),
                    stem_width 8, decoder (16, 16, 8, 8, 4), 1 class.

smp accepts only sizes divisible by 32; gaze pads any size evenly with zeros to a multiple of
32 and crops the logits back, so the reference does the same (`F.pad`, smp, crop) and each
fixture is compared at 64x96 and at 45x71. Files (layout, weights, inputs: fixture_utils.py):
`output_<HxW>` ([2, classes, H, W] logits) and `feature<i>_<HxW>` (the encoder's five maps,
strides 2…32, of the padded input). `param_counts.json`: the parameter count of smp's
`Unet("tu-<encoder>", classes=1)` for every encoder gaze registers a `unet_<encoder>` for (the
attention ResNets timm lacks: timm's ResNet with that block, see `encoder_kwargs`).
"""
import json
import os
import sys

import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fixture_utils as fu  # noqa: E402
from gen_resnet_fixtures import FULL, targets  # noqa: E402

OUT = os.path.join(HERE, "..", "fixtures", "encoder_unet")
assert smp.__version__ == "0.6.0", smp.__version__

TINY = dict(channels=(8, 8, 16, 16))
DECODER = (16, 16, 8, 8, 4)
FIXTURES = {
    "resnet18_plain": dict(encoder_name="tu-resnet18", classes=1, **TINY),
    "seresnet18_scse": dict(encoder_name="tu-seresnet18", classes=2, decoder_attention_type="scse",
                            decoder_channels=(16, 16, 16, 16, 16), **TINY),
    "resnet26d_deep": dict(encoder_name="tu-resnet26d", classes=1, stem_width=8, **TINY),
}
SIZES = [(64, 96), (45, 71)]

# Every ResNet-family classifier gaze registers (unet_<name>): timm's model, or for the attention
# kinds timm lacks (CBAM, triplet, FcaNet, PSA) timm's ResNet with that block, as
# gen_resnet_fixtures.py builds them (its FULL table), passed to the timm encoder as kwargs.
PREFIXED = ("cbam_", "triplet_", "fca_", "psa_")


def encoder_kwargs(name):
    if name.startswith(PREFIXED):
        kw = dict(FULL[name])
        return name.split("_", 1)[1], {"block_args": kw["block_args"]}
    return name, {}


def padding(h, w, m=32):
    ph, pw = -h % m, -w % m
    return ph // 2, ph - ph // 2, pw // 2, pw - pw // 2


def padded(size):
    """The odd size's input as the model sees it (smp itself refuses it unpadded)."""
    top, bottom, left, right = padding(*size)
    return F.pad(fu.batch_input(size), (left, right, top, bottom))


def run(model, size, x):
    h, w = x.shape[2:]
    top, bottom, left, right = padding(h, w)
    xp = F.pad(x, (left, right, top, bottom))
    feats = model.encoder(xp)[1:]
    return model(xp)[:, :, top:top + h, left:left + w], feats


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    counts = {}
    for name in FULL:
        base, kw = encoder_kwargs(name)
        with torch.device("meta"):
            m = smp.Unet(f"tu-{base}", encoder_weights=None, classes=1, **kw)
        counts[f"unet_{name}"] = sum(p.numel() for p in m.parameters())
    with open(os.path.join(OUT, "param_counts.json"), "w") as f:
        json.dump(counts, f, indent=1, sort_keys=True)
        f.write("\n")
    print("full-size parameter counts:", counts)
    constants = {}
    for i, (name, kw) in enumerate(FIXTURES.items()):
        torch.manual_seed(400 + i)
        model = smp.Unet(encoder_weights=None, **{"decoder_channels": DECODER, **kw})
        _, constants[name] = fu.make_fixture(OUT, name, model, 400 + i, SIZES, run=run, head=["segmentation_head.0"],
                                             head_rms=0.5, output_key="output", calib_sizes=[SIZES[0]],
                                             targets=targets(model, prefix="encoder.model."), calib_extra=[padded(SIZES[1])])
    print("wrote", fu.write_constants(OUT, constants, {}))


if __name__ == "__main__":
    main()
