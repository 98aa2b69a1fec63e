"""Generate the HAT fixtures into tests/fixtures/hat/ (run from the repo root).

    tests/reference/export_sr_official.sh                 # once: the pinned official files
    /work/venv/bin/python tests/reference/gen_hat_fixtures.py [OFFICIAL_DIR]

The reference is the OFFICIAL code of github.com/XPixelGroup/HAT (`hat/archs/hat_arch.py`: HAT,
RHAG, AttenBlocks, HAB, CAB, ChannelAttention, WindowAttention, OCAB, Upsample @ 1638a9a8,
blob-checked below), imported from OFFICIAL_DIR (default /tmp/official), in eval mode. Its three
basicsr imports (`ARCH_REGISTRY`, `to_2tuple`, `trunc_normal_`) come from a stub `basicsr`
package registered in sys.modules here (`basicsr_shim`), so basicsr is not installed; `einops`
(used by OCAB) is the real one.

Official inference (`hat/models/hat_model.py` HATModel.pre_process / process / post_process,
what `hat/test.py` runs): the LR image is reflect-padded at the bottom and right to a multiple of
`window_size` (`F.pad(lq, (0, pad_w, 0, pad_h), 'reflect')`), the network runs on the padded
image (`HAT.forward` itself does not pad: its windows must tile the map), and the output is
cropped back to `[:h·s, :w·s]`. `Padded` below (a subclass, so the keys stay the official ones)
does exactly that around the official forward; gaze's `Hat::forward` does it internally.

Block fixtures (state dict under the official names + `input` + `output`, channels-last
`[B, H, W, C]` maps, the layout of tests/suite/common.rs `load_fixture`; weights
`fixture_utils.scale_weights` (random, calibrated on the input), output computed in float64 from
the float32 weights, stored as float32):
* `ocab`: `OCAB(dim=12, window_size=4, overlap_ratio=0.5, num_heads=2, mlp_ratio=2)` (overlapping
          key/value windows of 6x6 around each 4x4 query window), relative position index from the
          official `HAT.calculate_rpi_oca`; input [2, 8, 12, 12] (2x3 windows);
* `hab`:  `HAB(dim=12, num_heads=2, window_size=4, shift_size=2, compress_ratio=3,
          squeeze_factor=2, conv_scale=1.0, mlp_ratio=2)`: a shifted block with the mask of the
          official `HAT.calculate_mask` and index of `HAT.calculate_rpi_sa`, and conv_scale 1
          (the official default 0.01 would leave the CAB branch barely visible); input
          [2, 8, 12, 12].

Whole-network fixtures (`hat_x2`, `hat_x3`): the official `HAT(upscale=s, img_size=64,
window_size=4, embed_dim=12, depths=[2, 2], num_heads=[2, 2], compress_ratio=3,
squeeze_factor=2, conv_scale=0.01, overlap_ratio=0.5, mlp_ratio=2, upsampler='pixelshuffle',
resi_connection='1conv', img_range=1.)` with its reconstruction tail narrowed from the
hard-coded `num_feat = 64` to 16 (gaze's `HatConfig::num_feat`): `conv_before_upsample`,
`upsample` and `conv_last` are replaced by the same official classes
(`Sequential(Conv2d(12, 16, 3, 1, 1), LeakyReLU(inplace=True))`, `Upsample(s, 16)`,
`Conv2d(16, 3, 3, 1, 1)`), which keeps the fixture files small. Wrapped in `Padded`. Backbone
layout of fixture_utils.py (weights, .pth copy with the int64 `relative_position_index_SA` /
`relative_position_index_OCA` buffers, constants.json) at 16x16 and 13x11 (reflect-padded to
16x12), batch 2: `output_<HxW>` ([2, 3, sH, sW]) and `feature0_<HxW>`: the low-resolution trunk
features of the PADDED image, `conv_after_body(forward_features(f)) + f` with
`f = conv_first((pad(x) - mean) · img_range)` (gaze's `Hat::forward_features`).

`param_counts.json`: the parameter counts (parameters only, no buffers) of the official full-size
models of options/test/HAT_SRx{2,3,4}.yml (embed 180, compress 3, squeeze 30) and
HAT-S_SRx{2,3,4}.yml (embed 144, compress 24, squeeze 24), depths 6x[6], heads 6x[6],
window 16. constants.json's "registered" part records those six models' constants (their
LeakyReLU slope is nn.LeakyReLU's default 0.01).
"""
import importlib
import itertools
import os
import sys
import types
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import crosscheck_cnn_official as cc  # noqa: E402
import fixture_utils as fu  # noqa: E402

torch.set_num_threads(1)
# The official index helpers call torch.meshgrid without `indexing` (its default "ij" is meant).
warnings.filterwarnings("ignore", "torch.meshgrid")

OUT = os.path.join(HERE, "..", "fixtures", "hat")
REPO = "XPixelGroup+HAT"
COMMIT = "1638a9a822581657811867bf670717f8371fc3e5"
FILES = {"hat/archs/hat_arch.py": "9db9e465838825334dcd54aa9ca4489ac0aafced"}
SIZES = [(16, 16), (13, 11)]
TINY = dict(img_size=64, window_size=4, embed_dim=12, depths=[2, 2], num_heads=[2, 2], compress_ratio=3,
            squeeze_factor=2, conv_scale=0.01, overlap_ratio=0.5, mlp_ratio=2, in_chans=3, img_range=1.,
            upsampler="pixelshuffle", resi_connection="1conv")
NUM_FEAT = 16
FULL = {
    "hat": dict(embed_dim=180, compress_ratio=3, squeeze_factor=30),
    "hat_s": dict(embed_dim=144, compress_ratio=24, squeeze_factor=24),
}
FULL_COMMON = dict(in_chans=3, img_size=64, window_size=16, conv_scale=0.01, overlap_ratio=0.5, img_range=1.,
                   depths=[6] * 6, num_heads=[6] * 6, mlp_ratio=2, upsampler="pixelshuffle",
                   resi_connection="1conv")
SHARED_WEIGHTS = os.path.join(HERE, "..", "..", "..", "shared", "weights", "sr", "hat")


def basicsr_shim():
    """Stub modules for the official file's three basicsr imports (basicsr's own semantics:
    a registry whose `register()` returns the class unchanged, `to_2tuple` = `_ntuple(2)`,
    `trunc_normal_` = timm's truncated normal, here torch's identical `nn.init.trunc_normal_`)."""

    class Registry:
        def register(self, obj=None):
            return (lambda o: o) if obj is None else obj

    def to_2tuple(x):
        if isinstance(x, (list, tuple)):
            return tuple(x)
        return tuple(itertools.repeat(x, 2))

    def trunc_normal_(tensor, mean=0., std=1., a=-2., b=2.):
        return nn.init.trunc_normal_(tensor, mean, std, a, b)

    mods = {}
    for name in ("basicsr", "basicsr.utils", "basicsr.utils.registry", "basicsr.archs", "basicsr.archs.arch_util"):
        m = types.ModuleType(name)
        m.__path__ = []
        mods[name] = m
    mods["basicsr.utils.registry"].ARCH_REGISTRY = Registry()
    mods["basicsr.archs.arch_util"].to_2tuple = to_2tuple
    mods["basicsr.archs.arch_util"].trunc_normal_ = trunc_normal_
    return mods


def load_official(official_dir):
    d = fu.verify_official(official_dir, REPO, COMMIT, FILES)
    with fu.stub_modules(basicsr_shim()), \
            cc.stub_packages({"hat": os.path.join(d, "hat"), "hat.archs": os.path.join(d, "hat", "archs")}):
        return importlib.import_module("hat.archs.hat_arch")


def pad_to_window(x, window_size):
    """HATModel.pre_process: reflect padding at the bottom and right to a multiple of the window."""
    _, _, h, w = x.shape
    pad_h = window_size - h % window_size if h % window_size else 0
    pad_w = window_size - w % window_size if w % window_size else 0
    return F.pad(x, (0, pad_w, 0, pad_h), "reflect")


def padded_class(arch):
    class Padded(arch.HAT):
        """The official HAT with the official inference's padding and cropping around it
        (HATModel.pre_process / post_process); state-dict keys unchanged."""

        def forward(self, x):
            h, w = x.shape[-2:]
            y = super().forward(pad_to_window(x, self.window_size))
            return y[:, :, :h * self.upscale, :w * self.upscale]

        def trunk(self, x):
            """The low-resolution trunk features of the padded image (the upsampling tail's input,
            before conv_before_upsample)."""
            xp = pad_to_window(x, self.window_size)
            xm = (xp - self.mean.type_as(xp)) * self.img_range
            f = self.conv_first(xm)
            return self.conv_after_body(self.forward_features(f)) + f

    return Padded


def narrow_tail(arch, m, num_feat, scale):
    """Replaces the hard-coded 64-channel tail by the same official modules at `num_feat`."""
    embed_dim = m.embed_dim
    m.conv_before_upsample = nn.Sequential(nn.Conv2d(embed_dim, num_feat, 3, 1, 1), nn.LeakyReLU(inplace=True))
    m.upsample = arch.Upsample(scale, num_feat)
    m.conv_last = nn.Conv2d(num_feat, 3, 3, 1, 1)
    return m


def run(m, size, x):
    y = m(x)
    f = m.trunk(x)
    # The trunk features are exactly what the official tail reads.
    tail = m.conv_last(m.upsample(m.conv_before_upsample(f))) / m.img_range + m.mean.type_as(f)
    h, w = size
    assert torch.equal(tail[:, :, :h * m.upscale, :w * m.upscale], y)
    return y, [f]


def block_fixtures(arch):
    window, dim, heads = 4, 12, 2
    g = torch.Generator().manual_seed(7)
    x = torch.randn(2, 8, 12, dim, generator=g)

    # OCAB with the official relative position index (negative entries included).
    ns = types.SimpleNamespace(window_size=window, overlap_ratio=0.5)
    rpi_oca = arch.HAT.calculate_rpi_oca(ns)
    print(f"   OCAB rpi: shape {list(rpi_oca.shape)}, range [{rpi_oca.min().item()}, {rpi_oca.max().item()}]"
          f" (table rows {(window + 6 - 1) ** 2}; negative entries wrap around in PyTorch indexing)")
    torch.manual_seed(21)
    ocab = arch.OCAB(dim=dim, input_resolution=(64, 64), window_size=window, overlap_ratio=0.5,
                     num_heads=heads, mlp_ratio=2)

    def ocab_forward(m, v):
        b, h, w, c = v.shape
        return m(v.reshape(b, h * w, c), (h, w), rpi_oca).reshape(b, h, w, c)

    fu.dump_block(OUT, "ocab", ocab, x, 21, forward=ocab_forward)

    # A shifted HAB with the official mask and index.
    ns = types.SimpleNamespace(window_size=window, shift_size=window // 2)
    rpi_sa = arch.HAT.calculate_rpi_sa(ns)
    torch.manual_seed(22)
    hab = arch.HAB(dim=dim, input_resolution=(64, 64), num_heads=heads, window_size=window, shift_size=window // 2,
                   compress_ratio=3, squeeze_factor=2, conv_scale=1.0, mlp_ratio=2)

    def hab_forward(m, v):
        b, h, w, c = v.shape
        mask = arch.HAT.calculate_mask(ns, (h, w)).to(v.dtype)
        return m(v.reshape(b, h * w, c), (h, w), rpi_sa, mask).reshape(b, h, w, c)

    fu.dump_block(OUT, "hab", hab, x.clone(), 22, forward=hab_forward)


def full_model(arch, kind, scale):
    return arch.HAT(upscale=scale, **FULL_COMMON, **FULL[kind]).eval()


def main():
    arch = load_official(fu.official_dir_arg())
    os.makedirs(OUT, exist_ok=True)

    block_fixtures(arch)

    Padded = padded_class(arch)
    constants = {}
    for s in (2, 3):
        torch.manual_seed(30 + s)
        m = narrow_tail(arch, Padded(upscale=s, **TINY), NUM_FEAT, s).eval()
        _, constants[f"hat_x{s}"] = fu.make_fixture(
            OUT, f"hat_x{s}", m, 30 + s, SIZES, output_key="output", run=run)
    rpi = {k: v.tolist() for k, v in m.state_dict().items() if not v.is_floating_point()}
    print(f"   integer buffers of the fixtures (in the .pth, not the .safetensors): {sorted(rpi)}")

    counts, registered = {}, {}
    for kind in ("hat", "hat_s"):
        for s in (2, 3, 4):
            name = f"{kind}_x{s}"
            torch.manual_seed(0)
            m = full_model(arch, kind, s)
            counts[name] = sum(p.numel() for p in m.parameters())
            registered[name] = fu.model_constants(m, fu.batch_input((16, 16)))
            buffers = sorted(k for k, _ in m.named_buffers())
            print(f"# {name}: {counts[name]} parameters; buffers {buffers}")
    for f in sorted(os.listdir(SHARED_WEIGHTS)) if os.path.isdir(SHARED_WEIGHTS) else []:
        print(f"# found shared checkpoint {f} (not checked here)")
    if not os.path.isdir(SHARED_WEIGHTS):
        print(f"# no shared HAT checkpoints under {os.path.normpath(SHARED_WEIGHTS)}")
    path = fu.write_param_counts(OUT, counts, indent=2)
    print(f"# full-size parameter counts: {counts}")
    print("wrote", path)
    print("wrote", fu.write_constants(OUT, constants, registered))


if __name__ == "__main__":
    main()
