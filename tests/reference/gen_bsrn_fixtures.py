"""Generate the BSRN fixtures into tests/fixtures/bsrn/ (run from the repo root).

    tests/reference/export_sr_official.sh                 # once: the pinned official files
    /work/venv/bin/python tests/reference/gen_bsrn_fixtures.py [OFFICIAL_DIR]

The reference is the OFFICIAL code of github.com/xiaom233/BSRN @ 2d63d523 (blob-checked below),
imported from OFFICIAL_DIR (default /tmp/official) under stub `basicsr` packages (so the repo's
`basicsr/__init__.py` and its dependencies never run), in eval mode:
* `basicsr/archs/BSRN_arch.py`: `BSRN` (the x2/x3/x4 checkpoints), `ESDB`, `ESA`, `CCALayer`,
  `BSConvU`, `BSConvS`, `DepthWiseConv`;
* `basicsr/archs/rfdnfinalB5_arch.py`: `RFDNFINALB5`, the network of BSRN-S (the test config
  `options/test/benchmark_BSRN-S_x4.yml` builds `type: RFDNFINALB5, num_feat: 48,
  num_block: 5, upscale: 4, conv: BSConvU`), with its blocks `RFDB` and its `ESA`, built from
  `basicsr/archs/Blocks.py`'s `BSConvU` (pointwise `nn.Linear` with bias);
* `basicsr/archs/Upsamplers.py` (`PixelShuffleDirect`), `basicsr/utils/registry.py`.

ESA's stride-2 3x3 convolution (no padding) followed by `MaxPool2d(7, stride 3)` needs at least
15x15 pixels (ceil((7 - 1) * 2 + 3) = 15; below that PyTorch's max pool fails), so every
fixture that runs an ESA is at least 15 pixels on each side: 15x23 pools to 1x2 (the minimum
height; the bilinear upsampling then broadcasts along H), 21x21 to 2x2.

Block fixtures (state dict under the official names + `input` + `output`, the layout of
tests/suite/common.rs `load_fixture`; weights `fixture_utils.scale_weights` (random, then
calibrated on the input), output computed in float64 from the float32 weights and stored as
float32; random-normal inputs, batch 1):
* `bsconvu`        BSRN_arch `BSConvU(8, 12)` (1x1 without bias, then depthwise 3x3), [1, 8, 7, 9]
* `bsconvu_s2`     `BSConvU(6, 6, 3, 2, 0)` (ESA's `conv2`: stride 2, no padding), [1, 6, 15, 16]
* `bsconvs`        `BSConvS(16, 12)` (1x1 16->4, 1x1 4->12, depthwise), [1, 16, 7, 9]
* `dwconv`         `DepthWiseConv(8, 12)` (depthwise, then 1x1 without bias), [1, 8, 7, 9]
* `bsconvu_linear` Blocks.py `BSConvU(8, 12)` (nn.Linear 8->12 with bias, then depthwise), [1, 8, 7, 9]
* `cca`            BSRN_arch `CCALayer(16)` (reduction 16: a 1-channel bottleneck), [1, 16, 7, 9],
                   per-channel mean N(0, 1) and spread U(0.2, 2), so that both the std and the
                   mean term matter
* `esa`            BSRN_arch `ESA(8, BSConvU)` (f = 2), [1, 8, 21, 24] (pooled 2x2)
* `esa_min`        the same module class at the minimum size, [1, 8, 15, 15] (pooled 1x1)
* `esa_s`          rfdnfinalB5 `ESA(8, Blocks.BSConvU)`, [1, 8, 21, 22] (pooled 2x2)
* `esdb`           BSRN_arch `ESDB(16, 16, BSConvU)` unchanged, [1, 16, 15, 15]
* `esdb_bsconvs`   `ESDB(8, 8, BSConvS)` with its `cca` replaced by `CCALayer(8, reduction=4)`
                   (the official 8 // 16 = 0 channels), [1, 8, 16, 18]
* `esdb_dwconv`    `ESDB(8, 8, DepthWiseConv)`, same CCA replacement, [1, 8, 16, 18]
* `rfdb`           rfdnfinalB5 `RFDB(8, 8, conv=Blocks.BSConvU)` (`cw` ~ N(1, 0.2) as the
                   official init), [1, 8, 17, 19]

Whole-network fixtures (backbone layout of fixture_utils.py: weights, .pth copy,
constants.json; batch 2; `output_<HxW>` and, for bsrn_x2 and bsrn_s_x2, `feature0_<HxW>`, the
low-resolution features gaze's `Bsrn::forward_features` returns, the official
`out_lr = c2(GELU(c1(cat[B1..Bn]))) + fea_conv(x)`, the upsampler's input):
* `bsrn_x2`, `bsrn_x3`, `bsrn_x4`: the official `BSRN(num_feat=8, num_block=8, upscale=s)`
  with every `B<k>.cca` replaced by `CCALayer(8, reduction=4)` (gaze's
  `BsrnConfig::cca_reduction`: the official code hard-codes CCALayer's reduction 16, which
  leaves no bottleneck channel at 8 features). Eight blocks because the official
  `BSRN.forward` always runs B1..B8 (`num_block` only sizes `c1`). x2 at 21x21 and 15x23,
  x3 at 15x23, x4 at the minimum 15x15 (fixture size).
* `bsrn_s_x2`: the official `RFDNFINALB5(num_feat=8, num_block=5, upscale=2)` (five blocks,
  hard-coded likewise; the upsampler is the same `PixelShuffleDirect` at every scale), at 15x23.

`param_counts.json`: the parameter counts of the registered full-size models, from the
official classes built with the test configs: `bsrn_x{2,3,4}` = `BSRN(num_feat=64,
num_block=8, upscale=s, conv='BSConvU')`, `bsrn_s_x4` = `RFDNFINALB5(num_feat=48, num_block=5,
upscale=4, conv='BSConvU')`. When /work/shared/weights/sr/bsrn is present, the published
checkpoints (`params`, the key the test configs load) load into them with strict=True.
"""
import contextlib
import importlib
import io
import os
import sys
import warnings

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import crosscheck_cnn_official as cc  # noqa: E402
import fixture_utils as fu  # noqa: E402

torch.set_num_threads(1)

OUT = os.path.join(HERE, "..", "fixtures", "bsrn")
REPO = "xiaom233+BSRN"
COMMIT = "2d63d5239c9fa9810b9c1aea93e98d42ece09efc"
FILES = {
    "basicsr/archs/BSRN_arch.py": "9db528d1317045d0e6bac71bfa91ff80b1b1c83c",
    "basicsr/archs/Upsamplers.py": "b9b40f52bb478246947c2002a4f21323582a9dc4",
    "basicsr/archs/Blocks.py": "d0d2663d66010fcebbfcce7797ba54844d56363a",
    "basicsr/archs/rfdnfinalB5_arch.py": "534f0475f21e80f4e4e5b72555cb31494d500d59",
    "basicsr/utils/registry.py": "655753b3b9cbd0cfe73fe93a77cf1fcc3db6d827",
}
NF, CCA_REDUCTION = 8, 4
SHARED_WEIGHTS = os.path.join(HERE, "..", "..", "..", "shared", "weights", "sr", "bsrn")
REGISTERED = {
    "bsrn_x2": ("BSRN", dict(num_feat=64, num_block=8, upscale=2), "net_g_BSRN_x2.pth"),
    "bsrn_x3": ("BSRN", dict(num_feat=64, num_block=8, upscale=3), "net_g_BSRN_x3.pth"),
    "bsrn_x4": ("BSRN", dict(num_feat=64, num_block=8, upscale=4), "net_g_BSRN_x4.pth"),
    "bsrn_s_x4": ("RFDNFINALB5", dict(num_feat=48, num_block=5, upscale=4), "net_g_BSRN-S.pth"),
}


def load_official(official_dir):
    d = fu.verify_official(official_dir, REPO, COMMIT, FILES)
    b = os.path.join(d, "basicsr")
    with cc.stub_packages({"basicsr": b, "basicsr.archs": os.path.join(b, "archs"),
                           "basicsr.utils": os.path.join(b, "utils")}):
        bsrn = importlib.import_module("basicsr.archs.BSRN_arch")
        rfdn = importlib.import_module("basicsr.archs.rfdnfinalB5_arch")
        blocks = importlib.import_module("basicsr.archs.Blocks")
    return bsrn, rfdn, blocks


def quiet(fn, *args, **kw):
    """The official constructors print their `conv` argument."""
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args, **kw)


CW = [(r"(^|\.)cw$", lambda p, g: 1.0 + 0.2 * torch.randn(p.shape, generator=g))]


def dump(name, m, x, seed):
    """Block fixture (`fu.dump_block`, `cw` ~ N(1, 0.2)), input and output shapes printed."""
    fu.dump_block(OUT, name, m, x, seed, overrides=CW, shapes=True)


def nhwc_linear(layer, x):
    return layer(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def features(m, x):
    """The official forward up to the upsampler's input (`out_lr`), for BSRN and RFDNFINALB5."""
    out_fea = m.fea_conv(torch.cat([x, x, x, x], dim=1))
    outs, h = [], out_fea
    k = 1
    while hasattr(m, f"B{k}"):
        h = getattr(m, f"B{k}")(h)
        outs.append(h)
        k += 1
    trunk = torch.cat(outs, dim=1)
    fused = nhwc_linear(m.c1, trunk) if isinstance(m.c1, torch.nn.Linear) else m.c1(trunk)
    return m.c2(m.GELU(fused)) + out_fea


def run(m, size, x):
    y = m(x)
    f = features(m, x)
    # The features are exactly what the upsampler reads.
    assert torch.equal(m.upsampler(f), y)
    return y, [f]


def narrow_bsrn(bsrn, scale):
    m = quiet(bsrn.BSRN, num_in_ch=3, num_feat=NF, num_block=8, num_out_ch=3, upscale=scale, conv="BSConvU")
    for k in range(1, 9):
        getattr(m, f"B{k}").cca = bsrn.CCALayer(NF, reduction=CCA_REDUCTION)
    return m


def registered_model(bsrn, rfdn, cls, kw):
    module = bsrn if cls == "BSRN" else rfdn
    return quiet(getattr(module, cls), num_in_ch=3, num_out_ch=3, conv="BSConvU", **kw).eval()


def main():
    bsrn, rfdn, blocks = load_official(fu.official_dir_arg())
    os.makedirs(OUT, exist_ok=True)

    def rand(seed, *shape):
        torch.manual_seed(seed)
        return torch.randn(*shape)

    dump("bsconvu", bsrn.BSConvU(8, 12), rand(1, 1, 8, 7, 9), seed=1)
    dump("bsconvu_s2", bsrn.BSConvU(6, 6, 3, 2, 0), rand(2, 1, 6, 15, 16), seed=2)
    dump("bsconvs", bsrn.BSConvS(16, 12), rand(3, 1, 16, 7, 9), seed=3)
    dump("dwconv", bsrn.DepthWiseConv(8, 12), rand(4, 1, 8, 7, 9), seed=4)
    dump("bsconvu_linear", blocks.BSConvU(8, 12), rand(5, 1, 8, 7, 9), seed=5)

    torch.manual_seed(6)
    mean = torch.randn(1, 16, 1, 1)
    spread = 0.2 + 1.8 * torch.rand(1, 16, 1, 1)
    dump("cca", bsrn.CCALayer(16), mean + spread * torch.randn(1, 16, 7, 9), seed=6)

    dump("esa", bsrn.ESA(8, bsrn.BSConvU), rand(7, 1, 8, 21, 24), seed=7)
    dump("esa_min", bsrn.ESA(8, bsrn.BSConvU), rand(8, 1, 8, 15, 15), seed=8)
    dump("esa_s", rfdn.ESA(8, blocks.BSConvU), rand(9, 1, 8, 21, 22), seed=9)

    dump("esdb", bsrn.ESDB(16, 16, conv=bsrn.BSConvU), rand(10, 1, 16, 15, 15), seed=10)
    for name, conv, seed in (("esdb_bsconvs", bsrn.BSConvS, 11), ("esdb_dwconv", bsrn.DepthWiseConv, 12)):
        with warnings.catch_warnings():  # the replaced default CCALayer(8) has 0-channel convs
            warnings.filterwarnings("ignore", "Initializing zero-element tensors")
            m = bsrn.ESDB(NF, NF, conv=conv)
        m.cca = bsrn.CCALayer(NF, reduction=CCA_REDUCTION)
        dump(name, m, rand(seed, 1, NF, 16, 18), seed=seed)
    dump("rfdb", rfdn.RFDB(NF, NF, conv=blocks.BSConvU), rand(13, 1, NF, 17, 19), seed=13)

    constants = {}
    whole = {  # name: (build, sizes, sizes with feature0)
        "bsrn_x2": (lambda: narrow_bsrn(bsrn, 2), [(21, 21), (15, 23)], None),
        "bsrn_x3": (lambda: narrow_bsrn(bsrn, 3), [(15, 23)], []),
        "bsrn_x4": (lambda: narrow_bsrn(bsrn, 4), [(15, 15)], []),
        "bsrn_s_x2": (lambda: quiet(rfdn.RFDNFINALB5, num_in_ch=3, num_feat=NF, num_block=5, num_out_ch=3,
                                    upscale=2, conv="BSConvU"), [(15, 23)], None),
    }
    for seed, (name, (build, sizes, feature_sizes)) in enumerate(whole.items(), start=20):
        torch.manual_seed(seed)
        with warnings.catch_warnings():  # the replaced default CCALayer(8) has 0-channel convs
            warnings.filterwarnings("ignore", "Initializing zero-element tensors")
            m = build()
        _, constants[name] = fu.make_fixture(OUT, name, m, seed, sizes, output_key="output", run=run,
                                             feature_sizes=feature_sizes, overrides=CW)

    registered, counts = {}, {}
    for name, (cls, kw, ckpt) in REGISTERED.items():
        m = registered_model(bsrn, rfdn, cls, kw)
        counts[name] = sum(p.numel() for p in m.parameters())
        registered[name] = fu.model_constants(m, fu.batch_input((16, 16)))
        path = os.path.join(SHARED_WEIGHTS, ckpt)
        if os.path.exists(path):
            sd = torch.load(path, map_location="cpu", weights_only=True)
            assert list(sd) == ["params"], (ckpt, list(sd))
            m.load_state_dict(sd["params"], strict=True)
            n = sum(v.numel() for v in sd["params"].values())
            assert n == counts[name], (ckpt, n, counts[name])
            print(f"# bsrn/{ckpt}: {len(sd['params'])} tensors load strictly into {cls}({kw}), {n} values")
        else:
            print(f"# {path} not found: checkpoint load not checked")
    print(f"# full-size parameter counts: {counts}")
    fu.write_param_counts(OUT, counts)
    print("wrote", fu.write_constants(OUT, constants, registered))


if __name__ == "__main__":
    main()
