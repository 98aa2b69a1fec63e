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
                    stem_width 8, decoder (16, 16, 8, 8, 4), 1 class;
* swin_transformer: tu-swin_tiny_patch4_window7_224 narrowed (img_size 64, embed_dim 8, depths
                    2-2-2-2, heads 1-2-2-4, window 4, strict_img_size False: timm's dynamic
                    masks), smp's "transformer style" (strides 4…32, an empty stride-2 level),
                    decoder (16, 16, 8, 8, 4), 1 class.

smp accepts only sizes divisible by 32; gaze pads any size evenly with zeros to a multiple of
32 and crops the logits back, so the reference does the same (`F.pad`, smp, crop) and each
fixture is compared at 64x96 and at 45x71. Files (layout, weights, inputs: fixture_utils.py):
`output_<HxW>` ([2, classes, H, W] logits) and `feature<i>_<HxW>` (the encoder's five maps,
strides 2…32, of the padded input). `param_counts.json`: the parameter count of smp's
`Unet("tu-<encoder>", classes=1)` for every encoder gaze registers a `unet_<encoder>` for that
timm has (the attention ResNets timm lacks: timm's ResNet with that block, see
`encoder_kwargs`; Swin and HaloNet too). `smp_keys.json`: the state-dict keys and shapes of the
full-size `Unet("tu-swin_tiny_patch4_window7_224")` and `Unet("tu-halonet26t")` (timm's
`features_only` models flatten their sequential containers: `layers_1`, `stem_conv1`, and drop
Swin's final norm), which gaze must name the same.
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
    "swin_transformer": dict(encoder_name="tu-swin_tiny_patch4_window7_224", classes=1, img_size=64, embed_dim=8,
                             depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4), window_size=4, strict_img_size=False),
}
# timm models gaze registers a unet_<name> for, beyond the ResNets of gen_resnet_fixtures.
OTHER_TIMM = ["swin_tiny_patch4_window7_224", "swin_small_patch4_window7_224", "halonet26t", "halonet50ts"]
KEYED = ["swin_tiny_patch4_window7_224", "halonet26t"]
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
    # The empty stride-2 level of a transformer-style encoder has no channels.
    feats = [f for f in model.encoder(xp)[1:] if f.shape[1] > 0]
    return model(xp)[:, :, top:top + h, left:left + w], feats


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    counts = {}
    for name in list(FULL) + OTHER_TIMM:
        base, kw = encoder_kwargs(name)
        with torch.device("meta"):
            m = smp.Unet(f"tu-{base}", encoder_weights=None, classes=1, **kw)
        counts[f"unet_{name}"] = sum(p.numel() for p in m.parameters())
    with open(os.path.join(OUT, "param_counts.json"), "w") as f:
        json.dump(counts, f, indent=1, sort_keys=True)
        f.write("\n")
    print("full-size parameter counts:", counts)
    keys = {}
    for name in KEYED:
        with torch.device("meta"):
            m = smp.Unet(f"tu-{name}", encoder_weights=None, classes=1)
        keys[f"unet_{name}"] = {k: list(v.shape) for k, v in m.state_dict().items()
                                if not k.endswith("num_batches_tracked")}
    with open(os.path.join(OUT, "smp_keys.json"), "w") as f:
        json.dump(keys, f, indent=0, sort_keys=True)
        f.write("\n")
    constants = {}
    for i, (name, kw) in enumerate(FIXTURES.items()):
        torch.manual_seed(400 + i)
        model = smp.Unet(encoder_weights=None, **{"decoder_channels": DECODER, **kw})
        _, constants[name] = fu.make_fixture(OUT, name, model, 400 + i, SIZES, run=run, head=["segmentation_head.0"],
                                             head_rms=0.5, output_key="output", calib_sizes=[SIZES[0]],
                                             targets=targets(model, prefix="encoder.model.") if "resnet" in name else (),
                                             calib_extra=[padded(SIZES[1])])
    print("wrote", fu.write_constants(OUT, constants, {}))


if __name__ == "__main__":
    main()
