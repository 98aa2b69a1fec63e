"""Cross-check token_official_reference.py (our re-implementations behind the neighborhood
attention / bi-level routing attention / NAT / BiFormer fixtures) against the OFFICIAL code on
the same weights and inputs. Every case asserts max |official - reference| <= 1e-5 (float32;
float64 for the two full-size models, see below), and the full-size registrations' parameter
counts and state-dict keys / shapes must be identical. Negative controls (the official module
with a transposed rpb, a wrong dilation, one routed region fewer) must differ by > 1e-2, to show
that the comparison sees such mistakes.

    tests/reference/export_token_official.sh [GIT_ROOT] [OFFICIAL_DIR]     # once
    /work/venv/bin/python tests/reference/crosscheck_token_official.py [OFFICIAL_DIR] \
        > tests/reference/logs/crosscheck_token_official.log

OFFICIAL_DIR: argument, else $OFFICIAL_DIR, else /tmp/official. What runs (PINS below; the
script checks the COMMIT stamps and the git blob hash of every file it loads):

* github.com/SHI-Labs/Neighborhood-Attention-Transformer @ d334f5bb0bd73cad05e5aeaf7c14cce3876a9650
  classification/nat.py, unmodified (`NAT`, `NATLayer`, ..., `nat_mini` ... `nat_base`).
* github.com/SHI-Labs/NATTEN, the neighborhood-attention ops (C++/CUDA only; no pure-PyTorch
  path exists at any release):
  - natten 0.17.5 = tag v0.17.5 @ 4831f059049d4d0c08f4cc1fd328edd69a97389e, built here from the
    PyPI sdist natten-0.17.5.tar.gz (sha256 adb23ad0905ce8e51ceb597df46383bc51bc1e1be54260ce4f85076d103ae3c5;
    all of its src/ and csrc/ files are byte-identical to the tag) CPU-only, i.e. its naive CPU
    kernels (csrc/include/natten/cpu/naive/*.hpp). Build-time shim, no source edit: torch 2.15's
    headers need C++20 while NATTEN's CMakeLists.txt pins -std=c++17, so the compiler is a
    wrapper that turns -std=c++17 into -std=c++20 (export_token_official.sh). natten 0.14.6 (the
    last release whose module padded small maps) does not compile against torch 2.15 at all
    (its CPU kernels' `at::vec::map2` lambdas take `Vec&`, which the new overloads reject), and
    0.20+ dropped relative position biases, so 0.17.5 is the release that can run here.
    Used: `natten.NeighborhoodAttention2D` (src/natten/na2d.py, unfused path: `na2d_qk` with
    rpb, softmax, `na2d_av`) and `natten.functional.na2d_qk` / `na2d_av`. Import-time shims
    (torch attributes, no natten file touched): `torch.cuda._device_t` (a type alias natten
    imports, gone from torch 2.15) is defined, and torch.cuda.get_device_capability answers
    (0, 0) while natten is imported (natten/utils/testing.py queries it at import time, which
    raises on a machine without a GPU driver).
  - tag v0.14.6 @ 3b54c76185904f3cb59a49fff7bc044e4513d106 src/natten/natten2d.py, unmodified:
    the module that zero-pads maps smaller than kernel_size * dilation (our `legacy_pad`). Its
    `from .functional import natten2dav, natten2dqkrpb` (0.14.6's C++ ops) is served by a shim
    calling 0.17.5's compiled `na2d_av` / `na2d_qk(rpb=...)`: the same operations (the rpb start
    and the dilation-1 window start are the same code in both releases' natten_cpu_commons.h;
    0.17.5 rewrote the dilated window start, whose results coincide with 0.14.6's for every
    kernel size 3..13, dilation 1..8 and length k*d..k*d+30 checked).
* github.com/rayleizhu/BiFormer @ 1697bbbeafb8680524898f1dcaac10defd0604be
  models/biformer.py, models/_common.py, ops/bra_legacy.py (the BRA that models/biformer.py
  imports), unmodified. Shim: `fairscale.nn.checkpoint.checkpoint_wrapper` (imported, used only
  with use_checkpoint_stages, never here) is a stub module.
* Context broadcasting (naver-ai): the official repository (naver-ai/cbvit, naver-ai/cb) is not
  obtainable here, so gen_token_vit_swin_fixtures.py's CbMlp is NOT cross-checked by this script.

Weights: the fixture cases are built by the fixture scripts' own `build`
(gen_token_na_bra_fixtures.build, gen_nat_biformer_fixtures.build: same seeds, same weight
scaling, hence the very weights and configurations of the committed fixtures); the extra block
cases (other sizes, dilations, head counts, padding on both axes, no rpb, qk_scale, ...) use the
blocks' scheme (N(0, 0.2..0.5), rpb N(0, 0.5)), the extra full-size models (nat_mini,
biformer_tiny at 224 x 224) fixture_utils.scale_weights. The reference's state_dict is loaded
into the official module with load_state_dict(strict=True) (the parameter names are the
official ones; no mapping needed). eval() and float32 everywhere, except that the full-size
models are compared in float64 (their float32 difference, ~1e-6 relative rounding through 14-18
blocks, is printed alongside). Inputs: torch.randn for blocks, fixture_utils.batch_input
(deterministic, batch 2) for models. For BRA the smallest gap between the top-k-th routing
logit and the next one is printed and must be > 0 (a tie would make the routed regions depend
on torch.topk's tie-breaking; a gap below the float32 noise between the two implementations'
routing logits could flip a region, which would show as a failure, never as a false pass).
"""
import hashlib
import importlib
import importlib.util
import os
import sys
import types
import typing
import warnings

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

TOL = 1e-5

PINS = {
    "SHI-Labs+Neighborhood-Attention-Transformer": {
        "commit": "d334f5bb0bd73cad05e5aeaf7c14cce3876a9650",
        "files": {"classification/nat.py": "550ce8e7bcc15aa5d04bfc4672be92c0c93589ec"},
    },
    "rayleizhu+BiFormer": {
        "commit": "1697bbbeafb8680524898f1dcaac10defd0604be",
        "files": {
            "models/biformer.py": "cf3f0b55e154b306ba8c3ed5a14ed9e6035dc2a6",
            "models/_common.py": "bef4d2f7f11a7df0947938b62c1e61fe819001cc",
            "ops/bra_legacy.py": "0407fa1cbe62b2527cffd58020dfc0b8a3badde7",
        },
    },
    # v0.14.6
    "SHI-Labs+NATTEN": {
        "commit": "3b54c76185904f3cb59a49fff7bc044e4513d106",
        "files": {"src/natten/natten2d.py": "765b58d4030dc5c620000fc4bf14d6ae022240eb"},
    },
}

# natten 0.17.5 built from the PyPI sdist into OFFICIAL_DIR/natten-0.17.5 (pip --target); blob
# hashes of its Python files at tag v0.17.5 (commit 4831f059049d4d0c08f4cc1fd328edd69a97389e).
NATTEN_BUILD = {
    "version": "0.17.5",
    "commit": "4831f059049d4d0c08f4cc1fd328edd69a97389e",
    "dir": "natten-0.17.5",
    "sdist": "natten-sdist/natten-0.17.5.tar.gz",
    "sdist_sha256": "adb23ad0905ce8e51ceb597df46383bc51bc1e1be54260ce4f85076d103ae3c5",
    "files": {
        "natten/__init__.py": "1fe7f5858f4179763329b4d24b9a5f8fb075bf8b",
        "natten/context.py": "2cfe8ffdbf705fd45d9b7c8f6d885ceae7a5e242",
        "natten/experimental.py": "0a44abf241be63004ed475d64d86afce91ca0b21",
        "natten/flex.py": "e06bff5fed069f450b36978c41a14b4b8eefd987",
        "natten/functional.py": "098afb1bb4a8450bd1da1d6bad820a34055cbfd4",
        "natten/na2d.py": "6a218694e4c3e838ad4a3d57edd457e7191493ad",
        "natten/nested.py": "518fdc2ddc4cd2422723ceb213ff2cd56a2aeabc",
        "natten/ops.py": "2c5ac66a79f2571d1fa5f18c78070fcb0241dcb1",
        "natten/types.py": "291158dad83aec102bcd027232fb9f86180126fc",
        "natten/utils/__init__.py": "7d92dc015bc6360e7d2d06c3665239fc2e698a7a",
        "natten/utils/checks.py": "438420c770d13ac50b8fe4967f699f1428ad3737",
        "natten/utils/log.py": "11b91079546d488354638818f7d0c9c35edcd2db",
        "natten/utils/misc.py": "c5579b3a609215f85071750684f1e168b9539d3b",
        "natten/utils/tensor.py": "95b10d2649e9294fc3da97aaf067d6dd35b75532",
    },
}


def git_blob_sha1(path):
    with open(path, "rb") as f:
        data = f.read()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def check_pins(off):
    for repo, pin in PINS.items():
        with open(os.path.join(off, repo, "COMMIT")) as f:
            stamp = f.read().strip()
        assert stamp == pin["commit"], f"{repo}: exported {stamp}, pinned {pin['commit']}"
        for path, blob in pin["files"].items():
            got = git_blob_sha1(os.path.join(off, repo, path))
            assert got == blob, f"{repo}/{path}: blob {got}, pinned {blob}"
        print(f"pin {repo.replace('+', '/')} @ {pin['commit']}: {', '.join(pin['files'])} (blob hashes match)")
    nb = NATTEN_BUILD
    for path, blob in nb["files"].items():
        got = git_blob_sha1(os.path.join(off, nb["dir"], path))
        assert got == blob, f"{nb['dir']}/{path}: blob {got}, v{nb['version']} has {blob}"
    sdist = os.path.join(off, nb["sdist"])
    if os.path.exists(sdist):
        with open(sdist, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        assert digest == nb["sdist_sha256"], f"{sdist}: sha256 {digest}"
        sdist_note = f"sdist sha256 {digest[:16]}... matches"
    else:
        sdist_note = "sdist not kept"
    print(f"pin SHI-Labs/NATTEN v{nb['version']} @ {nb['commit']}: PyPI sdist built CPU-only in "
          f"{nb['dir']}; {len(nb['files'])} Python files used match the tag's blobs; {sdist_note}")


# ---------------------------------------------------------------------------------------------
# Loading the official code
# ---------------------------------------------------------------------------------------------


def load_file(path, modname, preset=None):
    spec = importlib.util.spec_from_file_location(modname, path)
    mod = importlib.util.module_from_spec(spec)
    if preset:
        mod.__dict__.update(preset)
    sys.modules[modname] = mod
    spec.loader.exec_module(mod)
    return mod


def load_official(off):
    # NATTEN 0.17.5 (compiled CPU extension). Import-time shims (torch side, no natten file
    # touched): natten/context.py and utils/misc.py import the type alias `torch.cuda._device_t`,
    # gone from torch 2.15; natten/utils/testing.py calls torch.cuda.get_device_capability() at
    # import time, which raises without a GPU driver: it answers (0, 0) ("no CUDA device") during
    # the import only.
    if not hasattr(torch.cuda, "_device_t"):
        torch.cuda._device_t = typing.Union[torch.device, str, int, None]
    sys.path.insert(0, os.path.join(off, NATTEN_BUILD["dir"]))
    get_device_capability = torch.cuda.get_device_capability
    if not torch.cuda.is_available():
        torch.cuda.get_device_capability = lambda device=None: (0, 0)
    try:
        import natten  # noqa: E402
        import natten.functional  # noqa: E402
    finally:
        torch.cuda.get_device_capability = get_device_capability

    assert natten.__file__.startswith(os.path.join(off, NATTEN_BUILD["dir"])), natten.__file__
    assert natten.__version__ == NATTEN_BUILD["version"], natten.__version__
    assert not natten.has_cuda()
    libnatten = sys.modules.get("natten.libnatten") or importlib.import_module("natten.libnatten")
    print(f"natten {natten.__version__} from {os.path.dirname(natten.__file__)} "
          f"(compiled {os.path.basename(libnatten.__file__)}, has_cuda={natten.has_cuda()}, "
          f"fused NA enabled={natten.is_fna_enabled()})")

    # NATTEN v0.14.6 natten2d.py as package `natten_v0146`, its `.functional` served by 0.17.5.
    n17f = natten.functional
    pkg = types.ModuleType("natten_v0146")
    pkg.__path__ = []
    functional = types.ModuleType("natten_v0146.functional")
    functional.natten2dqkrpb = lambda q, k, rpb, ks, d: n17f.na2d_qk(q, k, ks, d, rpb=rpb)
    functional.natten2dav = lambda a, v, ks, d: n17f.na2d_av(a, v, ks, d)
    sys.modules.update({"natten_v0146": pkg, "natten_v0146.functional": functional})
    n14 = load_file(os.path.join(off, "SHI-Labs+NATTEN", "src/natten/natten2d.py"), "natten_v0146.natten2d")
    pkg.NeighborhoodAttention2D = n14.NeighborhoodAttention2D  # no `context`: a pre-0.17 natten

    # NAT's classification/nat.py, once against natten 0.17.5 and once against v0.14.6's module.
    nat_py = os.path.join(off, "SHI-Labs+Neighborhood-Attention-Transformer", "classification/nat.py")
    official_nat = load_file(nat_py, "official_nat")
    assert official_nat.is_natten_post_017
    sys.modules["natten"] = pkg
    try:
        official_nat_v0146 = load_file(nat_py, "official_nat_v0146")
    finally:
        sys.modules["natten"] = natten
    assert not official_nat_v0146.is_natten_post_017

    # BiFormer (needs einops, timm; fairscale stubbed).
    fairscale = types.ModuleType("fairscale")
    fairscale.nn = types.ModuleType("fairscale.nn")
    fairscale.nn.checkpoint = types.ModuleType("fairscale.nn.checkpoint")

    def checkpoint_wrapper(m):
        raise NotImplementedError("fairscale stub: activation checkpointing is not used here")

    fairscale.nn.checkpoint.checkpoint_wrapper = checkpoint_wrapper
    sys.modules.update({"fairscale": fairscale, "fairscale.nn": fairscale.nn,
                        "fairscale.nn.checkpoint": fairscale.nn.checkpoint})
    bif_root = os.path.join(off, "rayleizhu+BiFormer")
    sys.path.insert(0, bif_root)
    official_bif = importlib.import_module("models.biformer")
    bra = importlib.import_module("ops.bra_legacy")
    for m in (official_bif, bra, sys.modules["models._common"]):
        assert m.__file__.startswith(bif_root), m.__file__
    assert official_bif.BiLevelRoutingAttention is bra.BiLevelRoutingAttention
    return types.SimpleNamespace(natten=natten, na2d_qk=n17f.na2d_qk, na2d_av=n17f.na2d_av,
                                 na14=n14.NeighborhoodAttention2D, nat=official_nat,
                                 nat14=official_nat_v0146, bif=official_bif, bra=bra)


# ---------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------

RESULTS = []


def report(name, x, ref_out, off_out, extra=""):
    assert ref_out.shape == off_out.shape, (name, ref_out.shape, off_out.shape)
    assert torch.isfinite(ref_out).all() and torch.isfinite(off_out).all(), name
    diff = (ref_out - off_out).abs().max().item()
    scale = ref_out.abs().max().item()
    ok = diff <= TOL
    shape_in = "x".join(map(str, x.shape)) if isinstance(x, torch.Tensor) else str(x)
    print(f"{'OK ' if ok else 'FAIL'} {name:<62} in={shape_in:<14} out={'x'.join(map(str, ref_out.shape)):<14} "
          f"max|out|={scale:9.4f}  max|diff|={diff:.3e}{extra}", flush=True)
    RESULTS.append((name, ok, diff, scale))
    return diff


def n_params(m):
    return sum(p.numel() for p in m.parameters())


# ---------------------------------------------------------------------------------------------
# Neighborhood attention
# ---------------------------------------------------------------------------------------------


def na_reinit(m, std=0.2):
    """gen_token_na_bra_fixtures.reinit's scheme (N(0, std), rpb N(0, 0.5)); the extra cases
    with few channels take a larger std so that their outputs are O(1)."""
    with torch.no_grad():
        for name, p in m.named_parameters():
            p.normal_(0.0, 0.5 if name.endswith("rpb") else std)


# Extra configurations (the fixture ones come from gen_token_na_bra_fixtures.NA):
# name -> (seed, reference kwargs, input shape[, weight std])
NA_EXTRA = {
    "na_k7_d1_h4": (101, dict(dim=32, num_heads=4, kernel_size=7, dilation=1), (2, 9, 15, 32)),
    # 14 = 5 + 5 + 4, 13 = 4 * 3 + 1: uneven dilation groups on both axes.
    "na_k3_d4_uneven": (102, dict(dim=16, num_heads=2, kernel_size=3, dilation=4), (1, 14, 13, 16)),
    "na_k5_d2_h6": (103, dict(dim=36, num_heads=6, kernel_size=5, dilation=2), (2, 10, 23, 36)),
    "na_k9_d1_h1_square": (104, dict(dim=8, num_heads=1, kernel_size=9, dilation=1), (1, 9, 9, 8), 0.4),
    "na_k3_no_rpb": (105, dict(dim=12, num_heads=2, kernel_size=3, dilation=1, rel_pos_bias=False), (1, 6, 7, 12), 0.3),
    "na_k5_qk_scale_no_qkv_bias": (
        106, dict(dim=16, num_heads=4, kernel_size=5, dilation=1, qk_scale=0.3, qkv_bias=False), (1, 8, 11, 16), 0.3),
    # NATTEN <= 0.14 padding: both axes (3 x 4 < 5 x 5), and with dilation (window 3 * 2 = 6 > 5).
    "na_k5_legacy_pad_both": (107, dict(dim=24, num_heads=3, kernel_size=5, dilation=1, legacy_pad=True), (1, 3, 4, 24)),
    "na_k3_d2_legacy_pad": (108, dict(dim=12, num_heads=2, kernel_size=3, dilation=2, legacy_pad=True), (2, 5, 9, 12)),
}


def official_na(o, kw):
    """The official module for reference kwargs `kw`."""
    common = dict(dim=kw["dim"], num_heads=kw["num_heads"], kernel_size=kw["kernel_size"],
                  dilation=kw.get("dilation", 1), qkv_bias=kw.get("qkv_bias", True), qk_scale=kw.get("qk_scale"))
    if kw.get("legacy_pad"):
        return o.na14(bias=kw.get("rel_pos_bias", True), **common), "NATTEN v0.14.6 natten2d (+0.17.5 ops)"
    return o.natten.NeighborhoodAttention2D(rel_pos_bias=kw.get("rel_pos_bias", True), **common), \
        "natten 0.17.5 NeighborhoodAttention2D"


def run_na(o, ref, fx):
    print("\n== Neighborhood attention: reference NeighborhoodAttention2D vs official")
    cases = [(name, *fx.build(name)) for name in fx.NA]
    for name, (seed, kw, shape, *std) in NA_EXTRA.items():
        torch.manual_seed(seed)
        m = ref.NeighborhoodAttention2D(**kw)
        na_reinit(m, *std)
        cases.append((name + " (extra)", m.eval(), torch.randn(*shape), kw))
    for name, m, x, kw in cases:
        om, what = official_na(o, kw)
        om.load_state_dict(m.state_dict(), strict=True)
        om.eval()
        assert n_params(om) == n_params(m)
        with torch.no_grad():
            report(f"{name}", x, m(x), om(x), f"  [{what}, params {n_params(om)}]")
        if kw.get("legacy_pad"):
            # natten >= 0.15 rejects such maps (the reference without legacy_pad does too).
            nm, _ = official_na(o, {**kw, "legacy_pad": False})
            nm.load_state_dict(m.state_dict(), strict=True)
            try:
                with torch.no_grad():
                    nm(x)
                raise AssertionError(f"{name}: natten 0.17.5 accepted a {tuple(x.shape)} map")
            except (RuntimeError, ValueError) as e:
                print(f"     {name}: natten 0.17.5 rejects the unpadded map as expected ({str(e).splitlines()[0][:150]})")
        else:
            # the two ops alone, on random tensors [B, heads, H, W, d]
            b, h, w, _ = x.shape
            heads, ks, d = m.num_heads, m.kernel_size, m.dilation
            g = torch.Generator().manual_seed(7)
            q = torch.randn(b, heads, h, w, m.head_dim, generator=g)
            k = torch.randn(b, heads, h, w, m.head_dim, generator=g)
            v = torch.randn(b, heads, h, w, m.head_dim, generator=g)
            with torch.no_grad():
                report(f"{name} / na2d_qk(rpb)", q, ref.natten2dqkrpb(q, k, m.rpb, ks, d),
                       o.na2d_qk(q, k, ks, d, rpb=m.rpb))
                a = torch.randn(b, heads, h, w, ks * ks, generator=g).softmax(-1)
                report(f"{name} / na2d_av", a, ref.natten2dav(a, v, ks, d), o.na2d_av(a, v, ks, d))

    # Negative controls: the comparison does see a wrong neighbourhood / bias layout.
    name, m, x, kw = cases[1]  # na_k3_d2
    with torch.no_grad():
        for what, tweak in [("rpb transposed", lambda om: om.rpb.copy_(om.rpb.transpose(1, 2).clone())),
                            ("dilation 1 instead of 2", lambda om: setattr(om, "dilation", (1, 1)))]:
            om, _ = official_na(o, kw)
            om.load_state_dict(m.state_dict(), strict=True)
            tweak(om)
            d = (m(x) - om.eval()(x)).abs().max().item()
            assert d > 1e-2, (name, what, d)
            print(f"     control {name}: official with {what} differs from the reference by {d:.3f} (as it must)")


# ---------------------------------------------------------------------------------------------
# Bi-level routing attention
# ---------------------------------------------------------------------------------------------

BRA_EXTRA = {
    # 8 heads, 4 x 4 regions of 4 x 3 tokens, batch 2.
    "bra_nwin4_top5_h8": (111, dict(dim=32, num_heads=8, n_win=4, topk=5, side_dwconv=3), (2, 16, 12, 32)),
    # auto_pad 13 x 17 -> 15 x 18 (no region all padding), qk_dim < dim, adaptive avg pooling.
    "bra_auto_pad_qk8_ada_avgpool": (
        114, dict(dim=16, qk_dim=8, num_heads=2, n_win=3, topk=4, kv_per_win=2, kv_downsample_mode="ada_avgpool",
                  side_dwconv=5, auto_pad=True), (1, 13, 17, 16)),
    # every region routed (topk = n_win^2), qk_scale given.
    "bra_topk_all_qk_scale": (
        113, dict(dim=16, num_heads=4, n_win=2, topk=4, qk_scale=0.2, side_dwconv=3), (1, 8, 10, 16), 0.3),
    # soft routing with router.emb, avg pooled keys (ratio 2), no lepe.
    "bra_soft_param_avgpool": (
        116, dict(dim=12, num_heads=3, n_win=2, topk=3, kv_downsample_ratio=2, kv_downsample_mode="avgpool",
                  param_routing=True, diff_routing=True, soft_routing=True, side_dwconv=0), (2, 8, 12, 12), 0.5),
}


def run_bra(o, ref, fx):
    print("\n== Bi-level routing attention: reference BiLevelRoutingAttention vs official ops/bra_legacy.py")
    cases = [(name, *fx.build(name)) for name in fx.BRA]
    for name, (seed, kw, shape, *std) in BRA_EXTRA.items():
        torch.manual_seed(seed)
        m = ref.BiLevelRoutingAttention(**kw)
        na_reinit(m, *std)
        cases.append((name + " (extra)", m.eval(), torch.randn(*shape), kw))
    for name, m, x, kw in cases:
        om = o.bra.BiLevelRoutingAttention(**kw)
        om.load_state_dict(m.state_dict(), strict=True)
        om.eval()
        assert n_params(om) == n_params(m)
        with torch.no_grad():
            margin = m.routing_margin(x)
            assert margin > 0, f"{name}: routing tie ({margin})"
            report(name, x, m(x), om(x), f"  [params {n_params(om)}, routing margin {margin:.2e}]")

    # Negative control: one routed region fewer is seen.
    name, m, x, kw = cases[0]
    om = o.bra.BiLevelRoutingAttention(**{**kw, "topk": kw["topk"] - 1})
    om.load_state_dict(m.state_dict(), strict=True)
    with torch.no_grad():
        d = (m(x) - om.eval()(x)).abs().max().item()
    assert d > 1e-2, (name, d)
    print(f"     control {name}: official with topk {kw['topk'] - 1} differs from the reference by {d:.3f} (as it must)")


# ---------------------------------------------------------------------------------------------
# NAT and BiFormer models
# ---------------------------------------------------------------------------------------------


def official_features(om, x, is_nat):
    """Per-level outputs before the downsampler (NAT) / per-stage outputs (BiFormer), NCHW."""
    feats = []
    if is_nat:
        mods = [lvl.blocks[-1] for lvl in om.levels]
        hooks = [mm.register_forward_hook(lambda _m, _i, out: feats.append(out.permute(0, 3, 1, 2))) for mm in mods]
    else:
        hooks = [st.register_forward_hook(lambda _m, _i, out: feats.append(out)) for st in om.stages]
    logits = om(x)
    for h in hooks:
        h.remove()
    return logits, feats


def bra_margin(m, x):
    margins = []
    hooks = [mod.register_forward_pre_hook(lambda mod, inp: margins.append(mod.routing_margin(inp[0])))
             for mod in m.modules() if hasattr(mod, "routing_margin")]
    m(x)
    for h in hooks:
        h.remove()
    return min(margins) if margins else float("inf")


def compare_model(name, m, om, sizes, ref, fu, dtype=torch.float32):
    """Logits and the four feature maps of reference `m` and official `om` (same weights) for
    fixture_utils.batch_input(size) (batch 2). In float64 mode the float32 difference of the
    same comparison is printed too (information only)."""
    om.load_state_dict(m.state_dict(), strict=True)
    om.eval()
    is_nat = isinstance(m, ref.NAT)
    assert n_params(om) == n_params(m)
    for size in sizes:
        x = fu.batch_input(size)
        with torch.no_grad():
            extra = ""
            if not is_nat:
                margin = bra_margin(m, x)
                assert margin > 0, f"{name}: routing tie ({margin})"
                extra = f", routing margin {margin:.2e}"
            outs = [(m(x), *official_features(om, x, is_nat), m.forward_intermediates(x))]
            if dtype == torch.float64:
                fp32 = outs[0]
                m.double(), om.double()
                xd = x.double()
                outs = [(m(xd), *official_features(om, xd, is_nat), m.forward_intermediates(xd))]
                m.float(), om.float()
            ref_logits, off_logits, off_feats, ref_feats = outs[0]
            tag = " float64" if dtype == torch.float64 else ""
            names = ["logits"] + [f"feature{i}" for i in range(len(ref_feats))]
            pairs = [(ref_logits, off_logits)] + list(zip(ref_feats, off_feats))
            for i, (k, (a, b)) in enumerate(zip(names, pairs)):
                info = f"  [params {n_params(om)}{extra}]" if i == 0 else ""
                if dtype == torch.float64:
                    r32 = [fp32[0]] + list(fp32[3])
                    o32 = [fp32[1]] + list(fp32[2])
                    d32 = (r32[i] - o32[i]).abs().max().item()
                    info += f"  (float32: max|diff| {d32:.1e}, {d32 / r32[i].abs().max().item():.1e} relative)"
                report(f"{name} {k}{tag}", x, a, b, info)


def run_models(o, ref, mx, fu):
    print("\n== NAT / BiFormer: reference models vs official classification/nat.py and models/biformer.py")
    print("   (fixture variants: gen_nat_biformer_fixtures.build, i.e. the fixtures' own weights)")
    for name, spec in mx.VARIANTS.items():
        cls, kw = spec[1], dict(spec[2])
        sizes = [s for s in spec[3:] if isinstance(s, tuple) and len(s) == 2]
        m = mx.build(name)
        if cls is ref.NAT:
            legacy = kw.pop("legacy_pad", False)
            flavours = [("nat.py + NATTEN v0.14.6 module", o.nat14)] if legacy else \
                [("nat.py + natten 0.17.5", o.nat), ("nat.py + NATTEN v0.14.6 module", o.nat14)]
            for what, mod in flavours:
                compare_model(f"{name} [{what}]", m, mod.NAT(drop_path_rate=0.0, **kw), sizes, ref, fu)
        else:
            compare_model(f"{name} [biformer.py]", m, o.bif.BiFormer(**kw), sizes, ref, fu)

    # Full-size registrations at 224 x 224, weights scaled like the fixtures
    # (fixture_utils.scale_weights). 18 (NAT-Mini) / 14 (BiFormer-T) blocks of float32 rounding
    # put the two implementations ~1e-6 *relative* apart, i.e. above 1e-5 absolute on features of
    # ~10-40: these are compared in float64 (both sides), the float32 figures printed alongside.
    x224 = fu.batch_input((224, 224))
    torch.manual_seed(201)
    m = fu.scale_weights(ref.NAT(**ref.NAT_CONFIGS["nat_mini"]), 201, [x224], head=["head"])
    compare_model("nat_mini full-size (extra) [nat.py + natten 0.17.5]", m, o.nat.nat_mini(),
                  [(224, 224)], ref, fu, dtype=torch.float64)
    torch.manual_seed(202)
    m = fu.scale_weights(ref.BiFormer(**ref.BIFORMER_CONFIGS["biformer_tiny"]), 202, [x224], head=["head"])
    compare_model("biformer_tiny full-size (extra) [biformer.py]", m, o.bif.biformer_tiny(), [(224, 224)], ref, fu,
                  dtype=torch.float64)

    print("\n== Full-size registrations: parameter counts and state-dict keys / shapes")
    pairs = [(n, ref.NAT(**c), getattr(o.nat, n)()) for n, c in ref.NAT_CONFIGS.items()]
    pairs += [(n, ref.BiFormer(**c), getattr(o.bif, n)()) for n, c in ref.BIFORMER_CONFIGS.items()]
    for n, m, om in pairs:
        sd, osd = m.state_dict(), om.state_dict()
        same_keys = list(sd) == list(osd) and all(sd[k].shape == osd[k].shape for k in sd)
        same = same_keys and n_params(m) == n_params(om)
        print(f"{'OK ' if same else 'FAIL'} {n:<16} official params {n_params(om):>10}  reference params "
              f"{n_params(m):>10}  state-dict entries {len(osd)} (keys and shapes {'identical' if same_keys else 'DIFFER'})")
        RESULTS.append((n + " params", same, 0.0, 0.0))


def main():
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*Overwriting .* in registry.*")
    off = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("OFFICIAL_DIR", "/tmp/official")
    off = os.path.abspath(off)
    torch.set_grad_enabled(False)
    import timm

    print(f"crosscheck_token_official.py: torch {torch.__version__}, timm {timm.__version__}, "
          f"float32, tolerance max|diff| <= {TOL:g}, OFFICIAL_DIR={off}")
    check_pins(off)
    o = load_official(off)

    import fixture_utils as fu
    import gen_nat_biformer_fixtures as mx
    import gen_token_na_bra_fixtures as fx
    import token_official_reference as ref

    run_na(o, ref, fx)
    run_bra(o, ref, fx)
    run_models(o, ref, mx, fu)

    failed = [r for r in RESULTS if not r[1]]
    worst = max(r[2] for r in RESULTS)
    print(f"\n{len(RESULTS) - len(failed)}/{len(RESULTS)} checks passed; worst max|diff| {worst:.3e} (tolerance {TOL:g})")
    assert not failed, f"failed: {[r[0] for r in failed]}"


if __name__ == "__main__":
    main()
