"""Generate the U-Net / Attention U-Net fixtures into tests/fixtures/unet/ (from the repo root).

    tests/reference/export_official.sh                      # once: the pinned official files
    /work/venv/bin/python tests/reference/gen_unet_fixtures.py [OFFICIAL_DIR]

The reference is built from the OFFICIAL modules of github.com/LeeJunHyun/Image_Segmentation
(`network.py` @ 5e9da93: `conv_block`, `up_conv`, `Attention_block`) and of
github.com/ozan-oktay/Attention-Gated-Networks (`GridAttentionBlock2D` @ eee4881), loaded from
the pinned, blob-checked export of crosscheck_cnn_official.py. Only the wiring is ours
(`RefUNet`): the official `U_Net` / `AttU_Net` hard-code 64…1024 channels and 5 levels, while
gaze's U-Net takes a base width and a depth. Before anything is written, the script ASSERTS that
`RefUNet` with the official widths equals the official `U_Net` and `AttU_Net` exactly (same
state-dict keys and shapes, strict load, max |diff| = 0 on a batch of 2 at 32x48 and 64x64).

Any input size: gaze zero-pads the image evenly to a multiple of 2^(depth-1) (the extra pixel
of an odd amount at the bottom / right) and crops the output back; `RefUNet` does the same with
`F.pad`, so odd sizes are compared too (the official classes accept multiples of 16 only).

Fixtures (layout, weights, inputs: fixture_utils.py), each with `output_<HxW>` ([2, classes, H,
W] logits) and `feature<i>_<HxW>` (the encoder maps Conv1…Conv{depth} of the padded input):

* unet_w4_d5:          base width 4, depth 5, plain skips, 1 class;  32x48 and 37x29
* attention_unet_w4_d5: base width 4, depth 5, LeeJunHyun gates, 2 classes; 32x48 and 37x29
* attention_unet_grid_w4_d4: base width 4, depth 4, Oktay grid gates, 1 class; 24x40 and 29x21
* unet_w4_d3_gray:     base width 4, depth 3, 1 input channel, 3 classes; 16x16 and 13x11

`param_counts.json`: the parameter count of every registered full-size model.
"""
import json
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import crosscheck_cnn_official as cc  # noqa: E402
import fixture_utils as fu  # noqa: E402

OUT = os.path.join(HERE, "..", "fixtures", "unet")


class RefUNet(nn.Module):
    """LeeJunHyun's U_Net / AttU_Net wiring for any base width and depth, from the official
    modules; `gate` is "none", "additive" (Attention_block) or "grid" (GridAttentionBlock2D gated
    by the coarser decoder map). Official parameter names: Conv{i}, Up{i}, Att{i}, Up_conv{i},
    Conv_1x1."""

    def __init__(self, O, img_ch=3, output_ch=1, base=64, depth=5, gate="none"):
        super().__init__()
        self.depth, self.gate = depth, gate
        widths = [base << i for i in range(depth)]
        self.Maxpool = nn.MaxPool2d(kernel_size=2, stride=2)
        cin = img_ch
        for i, w in enumerate(widths, start=1):
            setattr(self, f"Conv{i}", O.lee.conv_block(ch_in=cin, ch_out=w))
            cin = w
        for level in range(depth, 1, -1):
            coarse, fine = widths[level - 1], widths[level - 2]
            setattr(self, f"Up{level}", O.lee.up_conv(ch_in=coarse, ch_out=fine))
            if gate == "additive":
                setattr(self, f"Att{level}", O.lee.Attention_block(F_g=fine, F_l=fine, F_int=fine // 2))
            elif gate == "grid":
                setattr(self, f"Att{level}", O.agn.GridAttentionBlock2D(
                    in_channels=fine, gating_channels=coarse, inter_channels=max(fine // 2, 1),
                    sub_sample_factor=(2, 2), mode="concatenation"))
            setattr(self, f"Up_conv{level}", O.lee.conv_block(ch_in=2 * fine, ch_out=fine))
        self.Conv_1x1 = nn.Conv2d(widths[0], output_ch, kernel_size=1, stride=1, padding=0)

    def padding(self, h, w):
        m = 1 << (self.depth - 1)
        ph, pw = -h % m, -w % m
        return ph // 2, ph - ph // 2, pw // 2, pw - pw // 2

    def encode(self, x):
        maps = []
        for i in range(1, self.depth + 1):
            maps.append(getattr(self, f"Conv{i}")(x if i == 1 else self.Maxpool(maps[-1])))
        return maps

    def forward_intermediates(self, x):
        top, bottom, left, right = self.padding(*x.shape[2:])
        return self.encode(F.pad(x, (left, right, top, bottom)))

    def forward(self, x):
        h, w = x.shape[2:]
        top, bottom, left, right = self.padding(h, w)
        skips = self.encode(F.pad(x, (left, right, top, bottom)))
        d = skips.pop()
        for level in range(self.depth, 1, -1):
            skip = skips.pop()
            coarse = d
            d = getattr(self, f"Up{level}")(coarse)
            if self.gate == "additive":
                skip = getattr(self, f"Att{level}")(g=d, x=skip)
            elif self.gate == "grid":
                skip = getattr(self, f"Att{level}")(skip, coarse)[0]
            d = getattr(self, f"Up_conv{level}")(torch.cat((skip, d), dim=1))
        return self.Conv_1x1(d)[:, :, top:top + h, left:left + w]


def crosscheck(O):
    """RefUNet at the official widths == the official U_Net / AttU_Net (asserted)."""
    for official_cls, gate in ((O.lee.U_Net, "none"), (O.lee.AttU_Net, "additive")):
        torch.manual_seed(0)
        official = official_cls(img_ch=3, output_ch=1)
        fu.randomize(official, 1)
        official.eval()
        ours = RefUNet(O, gate=gate).eval()
        a = {k: tuple(v.shape) for k, v in official.state_dict().items()}
        b = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
        assert a == b, f"{official_cls.__name__}: state-dict keys/shapes differ"
        ours.load_state_dict(official.state_dict(), strict=True)
        for size in ((32, 48), (64, 64)):
            x = torch.randn(2, 3, *size)
            with torch.no_grad():
                diff = (official(x) - ours(x)).abs().max().item()
            assert diff == 0.0, f"{official_cls.__name__} {size}: max diff {diff}"
            print(f"crosscheck {official_cls.__name__} vs RefUNet(gate={gate}) at {size}: "
                  f"{len(a)} tensors, {sum(p.numel() for p in official.parameters())} params, max |diff| {diff}")


# name: (RefUNet kwargs, main size, odd size, output RMS). The output RMS is small because the
# float32 rounding error grows along the ~20 convolutions + BatchNorms from input to output (and
# the attention maps' outputs are spiky): it keeps the float32 run within fixture_utils'
# FP32_ERROR_MAX of the float64 reference.
FIXTURES = {
    "unet_w4_d5": (dict(base=4, depth=5), (32, 48), (37, 29), 0.3),
    "attention_unet_w4_d5": (dict(base=4, depth=5, gate="additive", output_ch=2), (32, 48), (37, 29), 0.1),
    "attention_unet_grid_w4_d4": (dict(base=4, depth=4, gate="grid"), (24, 40), (29, 21), 0.3),
    "unet_w4_d3_gray": (dict(base=4, depth=3, img_ch=1, output_ch=3), (16, 16), (13, 11), 0.3),
}

REGISTERED = {
    "unet": dict(),
    "unet_small": dict(base=16),
    "attention_unet": dict(gate="additive"),
    "attention_unet_small": dict(base=16, gate="additive"),
    "attention_unet_grid": dict(gate="grid"),
}


def main():
    official_dir = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("OFFICIAL_DIR", "/tmp/official")
    cc.verify_checkouts(official_dir)
    O = cc.load_official(official_dir)
    torch.set_num_threads(1)
    crosscheck(O)
    os.makedirs(OUT, exist_ok=True)
    counts = {name: sum(p.numel() for p in RefUNet(O, **kw).parameters()) for name, kw in REGISTERED.items()}
    with open(os.path.join(OUT, "param_counts.json"), "w") as f:
        json.dump(counts, f, indent=1, sort_keys=True)
        f.write("\n")
    print("full-size parameter counts:", counts)
    constants = {}
    for i, (name, (kw, main_size, odd_size, head_rms)) in enumerate(FIXTURES.items()):
        torch.manual_seed(300 + i)
        model = RefUNet(O, **kw)
        channels = kw.get("img_ch", 3)

        def run(model, size, x):
            return model(x), model.forward_intermediates(x)

        # Every input of fixture_utils (calibration, outputs, ranges) with this model's channels.
        batch_input, fu.batch_input = fu.batch_input, lambda size, c=channels: batch_input(size, c)
        try:
            _, constants[name] = fu.make_fixture(OUT, name, model, 300 + i, [main_size, odd_size], run=run,
                                                 head=["Conv_1x1"], head_rms=head_rms, output_key="output")
        finally:
            fu.batch_input = batch_input
    registered = {name: fu.model_constants(RefUNet(O, **kw)) for name, kw in REGISTERED.items()}
    print("wrote", fu.write_constants(OUT, constants, registered))


if __name__ == "__main__":
    main()
