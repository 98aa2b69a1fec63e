"""Cross-check gaze's Python re-implementations of CNN attention blocks against the OFFICIAL code.

    tests/reference/export_official.sh [GIT_ROOT] [OFFICIAL_DIR]      # once: export pinned files
    /work/venv/bin/python tests/reference/crosscheck_cnn_official.py [OFFICIAL_DIR] [--git-root DIR]

The fixtures in tests/fixtures/{pan,attn,ran} are generated from our re-implementations
(pan_reference.py, attn_sr_reference.py, attn_official_reference.py). This script builds every
re-implemented module next to the official module, copies the state dict across with a strict
load_state_dict (explicit key mapping where the names differ), runs both in eval() mode (BatchNorm
uses its running statistics), and ASSERTS max |official - ours| <= 1e-5 (fp32) on every output, for
the exact configurations, seeds and inputs of the fixture scripts (gen_pan_fixtures.py,
gen_attn_sr_fixtures.py, gen_attn_official_fixtures.py, gen_ran_fixtures.py) plus further
configurations (default widths, batch 2, other sizes). It also asserts equal parameter counts,
equal state-dict key sets and shapes, equal construction-time buffers (FcaNet's DCT filter is
compared BEFORE loading, because loading would overwrite it), and, where a fixture file exists,
runs the official module on the fixture's stored weights and inputs and asserts the stored outputs
("fixture[<file> = this case]" when the case rebuilt exactly the fixture's weights and inputs).
One line per case: name, input shapes, output shapes, max|out|, max abs diff, parameter counts.

Official code, pinned (repository, full commit, files loaded):

* github.com/zhaohengyuan1/PAN @ 4d045d18592c5771cd3990da88f292812774e538
  codes/models/archs/PAN_arch.py (PA, PAConv, SCPA, PAN), codes/models/archs/arch_util.py (make_layer)
* github.com/yulunzhang/RCAN @ f722e5d0e1eff45148bfaefd9bc85c6f0f26ce02
  RCAN_TrainCode/code/model/rcan.py (CALayer, RCAB), RCAN_TrainCode/code/model/common.py (default_conv)
* github.com/wwlCape/HAN @ 0595e23a992531f72c7e5559f8b519182b41cb9e
  src/model/han.py (LAM_Module, CSAM_Module), src/model/common.py (imported by han.py)
* github.com/tengshaofeng/ResidualAttentionNetwork-pytorch @ 88ed90f1b59f4b20e152495d3a5b6a19a4aa4232
  Residual-Attention-Network/model/basic_layers.py (ResidualBlock),
  Residual-Attention-Network/model/attention_module.py (AttentionModule_stage{1,2,3}[_cifar]),
  Residual-Attention-Network/model/residual_attention_network.py (ResidualAttentionModel_56, _92,
  _92_32input_update)
* github.com/ozan-oktay/Attention-Gated-Networks @ eee4881fdc31920efd873773e0b744df8dacbfb6
  models/layers/grid_attention_layer.py (GridAttentionBlock2D), models/networks_other.py (init_weights)
* github.com/LeeJunHyun/Image_Segmentation @ 5e9da9395c52b119d55dfc6532c34ac0e88f446e
  network.py (Attention_block)
* github.com/cfzd/FcaNet @ aa5fb63505575bb4e4e094613565379c3f6ada33
  model/layer.py (MultiSpectralAttentionLayer, MultiSpectralDCTLayer)
* github.com/landskape-ai/triplet-attention @ 2cf02fb91196408ac6352f7984a0336aa4f7677a
  MODELS/triplet_attention.py (TripletAttention, the released checkpoints' naming),
  triplet_attention.py (TripletAttention, root naming cw/hc/hw)
* github.com/DeLightCMU/PSA @ 20e307ad708ae6a39239aa50ffa32e0c36c92894
  semantic-segmentation/network/PSA.py (PSA_p, PSA_s)

OFFICIAL_DIR (argument, else $OFFICIAL_DIR, else /tmp/official) holds <owner>+<repo>/<path> as
written by export_official.sh (or `python crosscheck_cnn_official.py --export GIT_ROOT`), plus a
COMMIT stamp per repository. Every loaded file's git blob hash is checked against FILES below (so
the check needs no git directory); with --git-root (or $GAZE_MIRROR) the pinned commit's tree is
also asked for the same blobs, and a checkout that is itself a git work tree must be AT the pin.

The official files are never modified. Shims, all applied from outside the file and only while
the official code is imported / constructed / run:

* Package stubs: the official files import their siblings as packages (`models.archs.arch_util`,
  `from model import common`, `from .basic_layers import ...`, `models.networks_other`). We register
  stub packages whose __path__ is the exported directory, so the siblings load from the pinned
  files without executing the repos' package __init__.py (RCAN's / HAN's build the training
  wrapper, HAN's sets CUDA_VISIBLE_DEVICES) and without the name clashes between repos (RCAN and
  HAN both call theirs `model`, PAN and Attention-Gated-Networks theirs `models`).
* ResidualAttentionNetwork-pytorch is Python 2 code: ResidualBlock passes `output_channels/4` (a
  float under Python 3) to nn.Conv2d / nn.BatchNorm2d. While the official modules are constructed,
  those two constructors coerce integral floats to int (non-integral floats raise).
* Its networks fix the interpolation targets and the final AvgPool kernel for one input size
  (224 / 32). For the odd input sizes of the fixtures, the constructed official instance gets
  those constants set to the values for the new size (the reference's); at the native size the
  official constants are first asserted equal to the reference's.
* Attention-Gated-Networks calls F.upsample(mode='bilinear') without align_corners: in every
  PyTorch >= 0.4 that is align_corners=False, which is what the official code is run with. The
  *_ac cases emulate PyTorch <= 0.3 (align_corners=True semantics) by giving the official module
  an `F` whose upsample passes align_corners=True (the reference's align_corners=True option).
* PAN's standalone U-PA stage (pan_reference.UPA, not a class of its own officially) is checked by
  embedding it in the official PAN(nb=0): conv_first is set to the identity, trunk_conv to zero,
  so fea = x, and the official U-PA output is the input of conv_last (read with a forward pre-hook).
"""
import argparse
import contextlib
import hashlib
import importlib
import importlib.util
import math
import os
import subprocess
import sys
import types
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "fixtures")
sys.path.insert(0, HERE)

import attn_official_reference as off_ref  # noqa: E402
import attn_sr_reference as sr_ref  # noqa: E402
import pan_reference as pan_ref  # noqa: E402

TOL = 1e-5

PINS = {
    "zhaohengyuan1/PAN": "4d045d18592c5771cd3990da88f292812774e538",
    "yulunzhang/RCAN": "f722e5d0e1eff45148bfaefd9bc85c6f0f26ce02",
    "wwlCape/HAN": "0595e23a992531f72c7e5559f8b519182b41cb9e",
    "tengshaofeng/ResidualAttentionNetwork-pytorch": "88ed90f1b59f4b20e152495d3a5b6a19a4aa4232",
    "ozan-oktay/Attention-Gated-Networks": "eee4881fdc31920efd873773e0b744df8dacbfb6",
    "LeeJunHyun/Image_Segmentation": "5e9da9395c52b119d55dfc6532c34ac0e88f446e",
    "cfzd/FcaNet": "aa5fb63505575bb4e4e094613565379c3f6ada33",
    "landskape-ai/triplet-attention": "2cf02fb91196408ac6352f7984a0336aa4f7677a",
    "DeLightCMU/PSA": "20e307ad708ae6a39239aa50ffa32e0c36c92894",
}

# Git blob hashes (sha1 of "blob <len>\0<content>") of the files at the pinned commits.
FILES = {
    "zhaohengyuan1/PAN": {
        "codes/models/__init__.py": "c95004c9d9b1f1f13439bb90946359ea476a96d1",
        "codes/models/archs/__init__.py": "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391",
        "codes/models/archs/PAN_arch.py": "1ab240dbc7b1c3bbb7cf865b47f1a51ed6706531",
        "codes/models/archs/arch_util.py": "204fa2c45457837c3ac84e47a1d968adbc9e0a42",
    },
    "yulunzhang/RCAN": {
        "RCAN_TrainCode/code/model/rcan.py": "fd3c9bcc0cf87ced2aca2fcef1453f363731949e",
        "RCAN_TrainCode/code/model/common.py": "352d1bb7b596e9de6045e3581456995d0e329233",
    },
    "wwlCape/HAN": {
        "src/model/han.py": "a4fd4b1b15f1ba6b38790627db529467854f0658",
        "src/model/common.py": "aeee33512680a5c1437f9ad68be18bc2436fca61",
    },
    "tengshaofeng/ResidualAttentionNetwork-pytorch": {
        "Residual-Attention-Network/model/basic_layers.py": "043ef34629092f07c7b9120be9f9d3d41801ad35",
        "Residual-Attention-Network/model/attention_module.py": "54138e461bd9da40a411e18735d4c0ce20cc0261",
        "Residual-Attention-Network/model/residual_attention_network.py": "e947371c63a6da7c6c0a849f34ce76531fb66062",
    },
    "ozan-oktay/Attention-Gated-Networks": {
        "models/__init__.py": "8e2e4f08bddca7245fc64e6fc79b73cb88c3e6d2",
        "models/layers/__init__.py": "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391",
        "models/layers/grid_attention_layer.py": "77c2d9c4de06955f6a35e288849f0cbaa546f370",
        "models/networks_other.py": "37ea1659fc95ffada208836dd58520d98478fa6a",
    },
    "LeeJunHyun/Image_Segmentation": {
        "network.py": "88164e154118425283a01642ad6285d6037fc915",
    },
    "cfzd/FcaNet": {
        "model/layer.py": "ef7bde4078d042e8bf84733947fc2ca7a162e8d2",
    },
    "landskape-ai/triplet-attention": {
        "MODELS/triplet_attention.py": "af469cdadebe15443e365abac4885bdb15ebaf63",
        "triplet_attention.py": "884d34d6989d1b85ae0fb893bb13ad173a2b07fa",
    },
    "DeLightCMU/PSA": {
        "semantic-segmentation/network/PSA.py": "ea5717edc19a57f4d8655d9171fe55368afa5d8a",
    },
}


def _dirname(repo):
    return repo.replace("/", "+")


# ============================================================================ export / verify


def _git_dir(git_root, repo):
    base = os.path.join(git_root, _dirname(repo))
    for d in (os.path.join(base, "repo", ".git"), os.path.join(base, "repo"), os.path.join(base, ".git"), base):
        r = subprocess.run(["git", "--git-dir", d, "rev-parse", "--git-dir"], capture_output=True)
        if os.path.isdir(d) and r.returncode == 0:
            return d
    return None


def export_official(git_root, out_dir):
    """Python twin of export_official.sh: write the pinned files and a COMMIT stamp per repo."""
    for repo, commit in PINS.items():
        gd = _git_dir(git_root, repo)
        assert gd is not None, f"no git dir for {repo} under {git_root}"
        dest = os.path.join(out_dir, _dirname(repo))
        for path in FILES[repo]:
            data = subprocess.run(["git", "--git-dir", gd, "show", f"{commit}:{path}"], check=True,
                                  capture_output=True).stdout
            os.makedirs(os.path.dirname(os.path.join(dest, path)), exist_ok=True)
            with open(os.path.join(dest, path), "wb") as f:
                f.write(data)
        with open(os.path.join(dest, "COMMIT"), "w") as f:
            f.write(commit + "\n")
        print(f"exported {repo} @ {commit} -> {dest}")


def _blob_sha(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def verify_checkouts(official_dir, git_root=None):
    print(f"# official sources: {os.path.abspath(official_dir)}")
    for repo, commit in PINS.items():
        d = os.path.join(official_dir, _dirname(repo))
        how = []
        stamp = os.path.join(d, "COMMIT")
        if os.path.exists(stamp):
            got = open(stamp).read().strip()
            assert got == commit, f"{repo}: COMMIT stamp {got} != pin {commit}"
            how.append("COMMIT stamp")
        if os.path.isdir(os.path.join(d, ".git")):
            head = subprocess.run(["git", "-C", d, "rev-parse", "HEAD"], check=True, capture_output=True,
                                  text=True).stdout.strip()
            assert head == commit, f"{repo}: checkout HEAD {head} != pin {commit}"
            how.append("checkout HEAD")
        for path, blob in FILES[repo].items():
            with open(os.path.join(d, path), "rb") as f:
                got = _blob_sha(f.read())
            assert got == blob, f"{repo}:{path}: blob {got} != pinned {blob} (not the file at {commit})"
        how.append(f"{len(FILES[repo])} file blob hashes")
        if git_root:
            gd = _git_dir(git_root, repo)
            if gd is not None:
                for path, blob in FILES[repo].items():
                    got = subprocess.run(["git", "--git-dir", gd, "rev-parse", f"{commit}:{path}"], check=True,
                                         capture_output=True, text=True).stdout.strip()
                    assert got == blob, f"{repo}: {commit}:{path} is {got} in {gd}, pinned {blob}"
                how.append(f"pinned tree in {gd}")
        print(f"# {repo} @ {commit}: verified ({', '.join(how)})")


# ============================================================================ loading shims


@contextlib.contextmanager
def stub_packages(pkgs):
    """Register stub packages {dotted name: directory} so that the official siblings import from
    the exported directory without running the repos' __init__.py; removed again afterwards."""

    def ours(k):
        return any(k == n or k.startswith(n + ".") for n in pkgs)

    saved = {k: v for k, v in sys.modules.items() if ours(k)}
    for k in saved:
        del sys.modules[k]
    for name, d in pkgs.items():
        m = types.ModuleType(name)
        m.__path__ = [d]
        m.__package__ = name
        sys.modules[name] = m
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, m)
    try:
        yield
    finally:
        for k in [k for k in sys.modules if ours(k)]:
            del sys.modules[k]
        sys.modules.update(saved)


def load_file(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@contextlib.contextmanager
def patched_init(cls, wrap):
    had = "__init__" in cls.__dict__
    orig = cls.__init__
    cls.__init__ = wrap(orig)
    try:
        yield
    finally:
        if had:
            cls.__init__ = orig
        else:
            del cls.__init__


def _int_if_integral(v):
    if isinstance(v, float):
        assert v.is_integer(), v
        return int(v)
    return v


@contextlib.contextmanager
def py2_channel_division():
    """ResidualAttentionNetwork-pytorch is Python 2: `output_channels/4` is a float under Python 3."""

    def conv(orig):
        def init(self, in_channels, out_channels, *a, **k):
            orig(self, _int_if_integral(in_channels), _int_if_integral(out_channels), *a, **k)
        return init

    def bn(orig):
        def init(self, num_features, *a, **k):
            orig(self, _int_if_integral(num_features), *a, **k)
        return init

    with patched_init(nn.Conv2d, conv), patched_init(nn.BatchNorm2d, bn):
        yield


class _LegacyUpsampleF:
    """torch.nn.functional, except upsample behaves as in PyTorch <= 0.3 (align_corners=True)."""

    def __getattr__(self, name):
        return getattr(F, name)

    @staticmethod
    def upsample(input, size=None, scale_factor=None, mode="nearest", align_corners=None):
        return F.interpolate(input, size=size, scale_factor=scale_factor, mode=mode, align_corners=True)


class _Official:
    pass


def load_official(official_dir):
    o = _Official()

    def p(repo, *parts):
        return os.path.join(official_dir, _dirname(repo), *parts)

    with stub_packages({"models": p("zhaohengyuan1/PAN", "codes", "models"),
                        "models.archs": p("zhaohengyuan1/PAN", "codes", "models", "archs")}):
        o.pan = importlib.import_module("models.archs.PAN_arch")
    with stub_packages({"model": p("yulunzhang/RCAN", "RCAN_TrainCode", "code", "model")}):
        o.rcan = importlib.import_module("model.rcan")
        o.rcan_common = sys.modules["model.common"]
    with stub_packages({"model": p("wwlCape/HAN", "src", "model")}):
        o.han = importlib.import_module("model.han")
    with stub_packages({"model": p("tengshaofeng/ResidualAttentionNetwork-pytorch", "Residual-Attention-Network",
                                   "model")}):
        o.ran_basic = importlib.import_module("model.basic_layers")
        o.ran_att = importlib.import_module("model.attention_module")
        o.ran_net = importlib.import_module("model.residual_attention_network")
    with stub_packages({"models": p("ozan-oktay/Attention-Gated-Networks", "models"),
                        "models.layers": p("ozan-oktay/Attention-Gated-Networks", "models", "layers")}):
        o.agn = importlib.import_module("models.layers.grid_attention_layer")
    o.lee = load_file(p("LeeJunHyun/Image_Segmentation", "network.py"), "official_lee_network")
    o.fca = load_file(p("cfzd/FcaNet", "model", "layer.py"), "official_fcanet_layer")
    o.tri_models = load_file(p("landskape-ai/triplet-attention", "MODELS", "triplet_attention.py"),
                             "official_triplet_MODELS")
    o.tri_root = load_file(p("landskape-ai/triplet-attention", "triplet_attention.py"), "official_triplet_root")
    o.psa = load_file(p("DeLightCMU/PSA", "semantic-segmentation", "network", "PSA.py"), "official_psa")
    return o


# ============================================================================ comparison


def nparams(m):
    return sum(p.numel() for p in m.parameters())


def _is_bn_stat(k):
    return k.endswith(("running_mean", "running_var", "num_batches_tracked"))


def _tuple(y):
    return tuple(y) if isinstance(y, (tuple, list)) else (y,)


def _fmt_shapes(ts):
    return ",".join("x".join(str(s) for s in t.shape) for t in ts)


def _load_fixture(subdir, name):
    from safetensors.torch import load_file as st_load

    path = os.path.join(FIXTURES, subdir, f"{name}.safetensors")
    return st_load(path) if os.path.exists(path) else None


CASES = []
SKIPPED = []


def check(name, official, reference, inputs, *, to_official=None, run_official=None, run_reference=None,
          same_params=True, fixture=None):
    """Strict-load ours -> official, run both in eval(), assert max abs diff <= TOL.

    to_official(ref_state_dict, official) -> the official state dict (default: same keys).
    fixture = (subdir, file name, input keys, output keys): also run the official module on the
    fixture's stored weights and inputs and compare with the stored outputs.
    """
    to_official = to_official or (lambda sd, off: dict(sd))
    run_official = run_official or (lambda m, *xs: m(*xs))
    run_reference = run_reference or (lambda m, *xs: m(*xs))
    reference.eval()
    official.eval()

    off_sd0 = official.state_dict()
    sd = to_official(reference.state_dict(), official)
    missing, extra = set(off_sd0) - set(sd), set(sd) - set(off_sd0)
    assert not missing and not extra, f"{name}: key sets differ: official-only {missing}, ours-only {extra}"
    for k in off_sd0:
        assert off_sd0[k].shape == sd[k].shape, f"{name}: {k} {tuple(off_sd0[k].shape)} vs {tuple(sd[k].shape)}"
    # Construction-time buffers (not BatchNorm statistics) must already agree: loading the state
    # dict would overwrite them and hide a difference (e.g. FcaNet's DCT filter).
    buf_diff = None
    for k, b in official.named_buffers():
        if not _is_bn_stat(k):
            d = (b.float() - sd[k].float()).abs().max().item()
            buf_diff = d if buf_diff is None else max(buf_diff, d)
            assert d <= 1e-7, f"{name}: construction buffer {k} differs by {d:.3e}"
    official.load_state_dict(sd, strict=True)
    n_off, n_ref = nparams(official), nparams(reference)
    if same_params:
        assert n_off == n_ref, f"{name}: parameter counts differ: official {n_off}, ours {n_ref}"

    with torch.no_grad():
        yo = _tuple(run_official(official, *[t.clone() for t in inputs]))
        yr = _tuple(run_reference(reference, *[t.clone() for t in inputs]))
    assert len(yo) == len(yr), name
    diff, amax = 0.0, 0.0
    for a, b in zip(yo, yr):
        assert a.shape == b.shape, f"{name}: output shapes {tuple(a.shape)} vs {tuple(b.shape)}"
        assert torch.isfinite(a).all() and torch.isfinite(b).all(), name
        diff = max(diff, (a - b).abs().max().item())
        amax = max(amax, b.abs().max().item())
        assert b.std().item() > 1e-4 or b.numel() == 1, f"{name}: degenerate (constant) output"
    assert 0.1 < amax < 100, f"{name}: output scale max|out| = {amax} not moderate; rescale the weights"
    assert diff <= TOL, f"{name}: official vs ours max abs diff {diff:.3e} > {TOL}"

    fix = ""
    if fixture is not None:
        subdir, fname, in_keys, out_keys = fixture
        t = _load_fixture(subdir, fname)
        if t is None:
            fix = f" fixture[{subdir}/{fname}] ABSENT"
            SKIPPED.append(f"{subdir}/{fname}: absent")
        elif not all(k in t for k in list(in_keys) + list(out_keys)):
            fix = f" fixture[{subdir}/{fname}] FORMAT NOT RECOGNISED"
            SKIPPED.append(f"{subdir}/{fname}: lacks {[k for k in list(in_keys) + list(out_keys) if k not in t]}")
        else:
            fsd = {k: v for k, v in t.items() if k not in set(in_keys) | set(out_keys)}
            # Did this case rebuild the fixture exactly (same weights and inputs)?
            rsd = reference.state_dict()
            same = set(fsd) == set(rsd) and all(torch.equal(fsd[k].float(), rsd[k].float()) for k in fsd) and all(
                torch.equal(t[k], x) for k, x in zip(in_keys, inputs))
            official.load_state_dict(to_official(fsd, official), strict=True)
            with torch.no_grad():
                fo = _tuple(run_official(official, *[t[k].clone() for k in in_keys]))
            fd = max((a - t[k]).abs().max().item() for a, k in zip(fo, out_keys))
            assert fd <= TOL, f"{name}: official on fixture {subdir}/{fname} differs from stored output by {fd:.3e}"
            fix = f" fixture[{subdir}/{fname}{' = this case' if same else ''}] diff={fd:.2e}"

    params = f"params={n_off}" if same_params else f"params ours={n_ref} (embedded in official {n_off})"
    buf = "" if buf_diff is None else f" const-buffer diff={buf_diff:.1e}"
    line = (f"{name:<34} in={_fmt_shapes(inputs):<22} out={_fmt_shapes(yr):<24} max|out|={amax:8.4f} "
            f"max|diff|={diff:.2e} {params}{buf}{fix}")
    print(line, flush=True)
    CASES.append((name, diff))


def reinit_normal(m, std, bn_stats=False, batches_tracked=7):
    """The fixture scripts' re-initialisation, same draw order (seeded by torch.manual_seed):
    every parameter ~ N(0, std); with bn_stats, then every BatchNorm's running_mean ~ N(0, std),
    running_var ~ U(0.5, 1.5), num_batches_tracked = batches_tracked (gen_pan_fixtures.reinit:
    std 0.2, no BatchNorm; gen_attn_sr_fixtures.reinit: std 0.3 or 0.15, 7;
    gen_attn_official_fixtures.reinit: std 0.3, left at 0)."""
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0.0, std)
        if bn_stats:
            for mod in m.modules():
                if isinstance(mod, nn.BatchNorm2d):
                    mod.running_mean.normal_(0.0, std)
                    mod.running_var.uniform_(0.5, 1.5)
                    mod.num_batches_tracked.fill_(batches_tracked)
    return m


def smooth_input(n, c, h, w):
    """x[n,c,h,w] = sin(0.05 (h+1)(c+1) + 0.07 w + 0.3 n), computed in float64, used as float32."""
    ni, ci, hi, wi = torch.meshgrid(*(torch.arange(s, dtype=torch.float64) for s in (n, c, h, w)), indexing="ij")
    return torch.sin(0.05 * (hi + 1) * (ci + 1) + 0.07 * wi + 0.3 * ni).float()


def randomize(m, seed, gain=1.0, bias=0.1):
    """Fan-in scaled weights (gain / sqrt(fan_in)), norm-layer weights 1 + 0.2 N(0,1), biases
    bias * N(0,1), BatchNorm running stats away from (0, 1)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in m.named_parameters():
            if p.dim() > 1:
                p.copy_(torch.randn(p.shape, generator=g) * (gain / math.sqrt(max(1, p[0].numel()))))
            elif n.endswith(".weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(bias * torch.randn(p.shape, generator=g))
        for n, b in m.named_buffers():
            if n.endswith("running_mean"):
                b.copy_(0.1 * torch.randn(b.shape, generator=g))
            elif n.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=g))
            elif n.endswith("num_batches_tracked"):
                b.fill_(7)
    return m


# ============================================================================ PAN


def check_pan(O):
    print("\n## PAN (zhaohengyuan1/PAN codes/models/archs/PAN_arch.py)")
    P = O.pan
    # Fixture configurations (gen_pan_fixtures.py: seeds, reinit N(0, 0.2), inputs).
    torch.manual_seed(1)
    m = pan_ref.PA(6)
    reinit_normal(m, 0.2)
    x = torch.randn(2, 6, 13, 17)
    check("pan/pa [fixture pa]", P.PA(6), m, [x], fixture=("pan", "pa", ["input"], ["output"]))

    torch.manual_seed(2)
    m = pan_ref.SCPA(8, reduction=2)
    reinit_normal(m, 0.2)
    x = torch.randn(2, 8, 13, 17)
    check("pan/scpa [fixture scpa]", P.SCPA(nf=8, reduction=2), m, [x], fixture=("pan", "scpa", ["input"], ["output"]))

    # U-PA, embedded in the official PAN(nb=0): fea = conv_first(x) + trunk_conv(fea) = x.
    for seed, s, fname in [(3, 2, "upa"), (4, 3, "upa_x3")]:
        torch.manual_seed(seed)
        m = pan_ref.UPA(8, 6, scale=s)
        reinit_normal(m, 0.2)
        x = torch.randn(2, 8, 7, 9)
        off = P.PAN(in_nc=8, out_nc=8, nf=8, unf=6, nb=0, scale=s)

        def to_off(sd, off):
            full = {k: v.clone() for k, v in off.state_dict().items()}
            eye = torch.zeros_like(full["conv_first.weight"])
            for c in range(eye.shape[0]):
                eye[c, c, 1, 1] = 1.0
            full["conv_first.weight"] = eye
            full["conv_first.bias"] = torch.zeros_like(full["conv_first.bias"])
            full["trunk_conv.weight"] = torch.zeros_like(full["trunk_conv.weight"])
            full["trunk_conv.bias"] = torch.zeros_like(full["trunk_conv.bias"])
            for k, v in sd.items():
                full[k.replace("upconv.", "upconv1.").replace("att.", "att1.").replace("HRconv.", "HRconv1.")] = v
            return full

        def run_off(model, x):
            seen = []
            h = model.conv_last.register_forward_pre_hook(lambda mod, inp: seen.append(inp[0].clone()))
            model(x)
            h.remove()
            return seen[0]

        check(f"pan/upa x{s} [fixture {fname}]", off, m, [x], to_official=to_off, run_official=run_off,
              same_params=False, fixture=("pan", fname, ["input"], ["output"]))

    for s in (2, 3, 4):
        torch.manual_seed(10 + s)
        m = pan_ref.PAN(in_nc=3, out_nc=3, nf=8, unf=6, nb=2, scale=s)
        reinit_normal(m, 0.2)
        x = torch.rand(1, 3, 11, 13)
        check(f"pan/pan x{s} tiny [fixture pan_x{s}]", P.PAN(3, 3, 8, 6, 2, scale=s), m, [x],
              fixture=("pan", f"pan_x{s}", ["input"], ["output"]))

    # Further configurations: other widths, PAConv alone, the full-size PAN (nf 40, unf 24, nb 16).
    m = randomize(pan_ref.PA(24), 21, gain=2.0)
    check("pan/pa c24", P.PA(24), m, [torch.randn(2, 24, 9, 7, generator=torch.Generator().manual_seed(21))])
    m = randomize(pan_ref.PAConv(20), 22, gain=1.5)
    check("pan/paconv c20", P.PAConv(20), m, [torch.randn(2, 20, 9, 11, generator=torch.Generator().manual_seed(22))])
    m = randomize(pan_ref.SCPA(40, 2), 23, gain=1.5)
    check("pan/scpa c40", P.SCPA(nf=40, reduction=2), m,
          [torch.randn(2, 40, 10, 12, generator=torch.Generator().manual_seed(23))])
    for s in (2, 3, 4):
        m = randomize(pan_ref.PAN(scale=s), 30 + s, gain=0.8)
        x = torch.rand(2, 3, 12, 10, generator=torch.Generator().manual_seed(30 + s))
        check(f"pan/pan x{s} full (40/24/16)", P.PAN(3, 3, 40, 24, 16, scale=s), m, [x])


# ============================================================================ RCAN / HAN


def check_rcan_han(O):
    print("\n## RCAN (yulunzhang/RCAN RCAN_TrainCode/code/model/rcan.py), HAN (wwlCape/HAN src/model/han.py)")
    R, H, conv = O.rcan, O.han, O.rcan_common.default_conv
    torch.manual_seed(101)
    m = sr_ref.CALayer(16, reduction=4)
    reinit_normal(m, 0.3, bn_stats=True)
    x = torch.randn(1, 16, 13, 17)
    check("rcan/calayer [fixture rcan_ca]", R.CALayer(16, 4), m, [x], fixture=("attn", "rcan_ca", ["input"], ["output"]))

    torch.manual_seed(102)
    m = sr_ref.RCAB(8, kernel_size=3, reduction=2)
    reinit_normal(m, 0.15, bn_stats=True)
    x = torch.randn(1, 8, 13, 17)
    check("rcan/rcab [fixture rcan_rcab]", R.RCAB(conv, 8, 3, 2), m, [x],
          fixture=("attn", "rcan_rcab", ["input"], ["output"]))

    m = randomize(sr_ref.CALayer(64, 16), 110, gain=2.0, bias=0.5)
    check("rcan/calayer c64 r16", R.CALayer(64, 16), m,
          [torch.randn(2, 64, 11, 9, generator=torch.Generator().manual_seed(110))])
    m = randomize(sr_ref.RCAB(64, 3, 16), 111, gain=1.0)
    check("rcan/rcab c64 r16", R.RCAB(conv, 64, 3, 16), m,
          [torch.randn(2, 64, 11, 9, generator=torch.Generator().manual_seed(111))])
    m = randomize(sr_ref.RCAB(16, 5, 4), 112, gain=1.0)
    check("rcan/rcab c16 k5 r4", R.RCAB(conv, 16, 5, 4), m,
          [torch.randn(1, 16, 8, 13, generator=torch.Generator().manual_seed(112))])

    torch.manual_seed(103)
    m = sr_ref.LAM_Module(8)
    reinit_normal(m, 0.3, bn_stats=True)
    with torch.no_grad():
        m.gamma.fill_(0.75)
    x = 0.1 * torch.randn(1, 4, 8, 9, 11)
    check("han/lam [fixture han_lam]", H.LAM_Module(8), m, [x], fixture=("attn", "han_lam", ["input"], ["output"]))

    torch.manual_seed(104)
    m = sr_ref.CSAM_Module(8)
    reinit_normal(m, 0.3, bn_stats=True)
    with torch.no_grad():
        m.gamma.fill_(-0.6)
    x = torch.randn(1, 8, 13, 17)
    check("han/csam [fixture han_csam]", H.CSAM_Module(8), m, [x], fixture=("attn", "han_csam", ["input"], ["output"]))

    g = torch.Generator().manual_seed(113)
    m = sr_ref.LAM_Module(4)
    with torch.no_grad():
        m.gamma.fill_(1.3)
    check("han/lam b2 n6 c4", H.LAM_Module(4), m, [0.3 * torch.randn(2, 6, 4, 3, 5, generator=g)])
    m = randomize(sr_ref.CSAM_Module(64), 114, gain=1.0)
    with torch.no_grad():
        m.gamma.fill_(0.9)
    check("han/csam b2 c64", H.CSAM_Module(64), m, [torch.randn(2, 64, 7, 10, generator=torch.Generator().manual_seed(114))])


# ============================================================================ Residual Attention Network


def _ran_sizes(h, w, n):
    out = [(h, w)]
    for _ in range(n - 1):
        h, w = (h + 1) // 2, (w + 1) // 2
        out.append((h, w))
    return out


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def check_ran(O):
    print("\n## Residual Attention Network (tengshaofeng/ResidualAttentionNetwork-pytorch model/*.py)")
    B, A, N = O.ran_basic, O.ran_att, O.ran_net

    def off(ctor, *a, **k):
        with py2_channel_division():
            return ctor(*a, **k)

    for i, (cin, cout, stride, hw) in enumerate([(8, 8, 1, (9, 7)), (8, 16, 1, (9, 7)), (16, 16, 2, (9, 7)),
                                                 (16, 24, 2, (10, 12)), (64, 256, 1, (8, 8))]):
        m = randomize(sr_ref.ResidualBlock(cin, cout, stride), 120 + i)
        x = torch.randn(2, cin, *hw, generator=torch.Generator().manual_seed(120 + i))
        check(f"ran/residual_block {cin}->{cout} s{stride}", off(B.ResidualBlock, cin, cout, stride), m, [x])

    # Fixture stage modules (gen_attn_sr_fixtures.py).
    c = 8
    torch.manual_seed(105 + 19)
    s1, s2, s3 = _ran_sizes(19, 21, 3)
    m = sr_ref.AttentionModule_stage1(c, c, size1=s1, size2=s2, size3=s3)
    reinit_normal(m, 0.3, bn_stats=True)
    x = torch.randn(1, c, 19, 21)
    check("ran/stage1 19x21 [fixture]", off(A.AttentionModule_stage1, c, c, size1=s1, size2=s2, size3=s3), m, [x],
          fixture=("attn", "ran_stage1_19x21", ["input"], ["output"]))
    torch.manual_seed(106)
    s1, s2 = _ran_sizes(15, 13, 2)
    m = sr_ref.AttentionModule_stage2(c, c, size1=s1, size2=s2)
    reinit_normal(m, 0.3, bn_stats=True)
    x = torch.randn(1, c, 15, 13)
    check("ran/stage2 15x13 [fixture]", off(A.AttentionModule_stage2, c, c, size1=s1, size2=s2), m, [x],
          fixture=("attn", "ran_stage2_15x13", ["input"], ["output"]))
    torch.manual_seed(107)
    m = sr_ref.AttentionModule_stage3(c, c, size1=(9, 7))
    reinit_normal(m, 0.3, bn_stats=True)
    x = torch.randn(1, c, 9, 7)
    check("ran/stage3 9x7 [fixture]", off(A.AttentionModule_stage3, c, c, size1=(9, 7)), m, [x],
          fixture=("attn", "ran_stage3_9x7", ["input"], ["output"]))

    # Native sizes (the official defaults 56/28/14) and the CIFAR modules at the sizes of the
    # port's CIFAR net (32/16) and of the odd fixture input (19x13 -> stage maps 19x13, 10x7, 5x4).
    g = torch.Generator().manual_seed(130)
    check("ran/stage1 56x56 c16 (defaults)", off(A.AttentionModule_stage1, 16, 16),
          randomize(sr_ref.AttentionModule_stage1(16, 16), 131), [torch.randn(1, 16, 56, 56, generator=g)])
    check("ran/stage2 28x28 c16 (defaults)", off(A.AttentionModule_stage2, 16, 16),
          randomize(sr_ref.AttentionModule_stage2(16, 16), 132), [torch.randn(2, 16, 28, 28, generator=g)])
    check("ran/stage3 14x14 c24 (defaults)", off(A.AttentionModule_stage3, 24, 24),
          randomize(sr_ref.AttentionModule_stage3(24, 24), 133), [torch.randn(2, 24, 14, 14, generator=g)])
    for h, w in [(32, 32), (19, 13)]:
        a, b = _ran_sizes(h, w, 2)
        check(f"ran/stage1_cifar {h}x{w} c16", off(A.AttentionModule_stage1_cifar, 16, 16, size1=(h, w), size2=b),
              randomize(sr_ref.AttentionModule_stage1_cifar(16, 16, size1=(h, w), size2=b), 134),
              [torch.randn(1, 16, h, w, generator=g)])
        check(f"ran/stage2_cifar {b[0]}x{b[1]} c16", off(A.AttentionModule_stage2_cifar, 16, 16, size=b),
              randomize(sr_ref.AttentionModule_stage2_cifar(16, 16, size=b), 135),
              [torch.randn(2, 16, *b, generator=g)])
        c3 = _ran_sizes(*b, 2)[1]
        check(f"ran/stage3_cifar {c3[0]}x{c3[1]} c24", off(A.AttentionModule_stage3_cifar, 24, 24),
              randomize(sr_ref.AttentionModule_stage3_cifar(24, 24), 136), [torch.randn(2, 24, *c3, generator=g)])

    # Whole networks at the port's full widths (its classes hard-code them, and 10 classes; the
    # tiny-width fixture networks cannot be built from the official classes, their blocks are
    # checked above), fan-in scaled weights, a smooth input; compared: logits and the four stage
    # outputs of the reference's forward_intermediates (official: forward hooks).
    def stage_hook_names(model):
        names = ["attention_module1",
                 "attention_module2_2" if hasattr(model, "attention_module2_2") else "attention_module2",
                 "attention_module3_3" if hasattr(model, "attention_module3_3") else "attention_module3"]
        return names

    def run_off(model, x):
        feats = {}
        hooks = [getattr(model, n).register_forward_hook(lambda mod, i, o, n=n: feats.__setitem__(n, o.clone()))
                 for n in stage_hook_names(model)]
        hooks.append(model.mpool2[1].register_forward_hook(lambda mod, i, o: feats.__setitem__("last", o.clone())))
        logits = model(x)
        for h in hooks:
            h.remove()
        return (logits,) + tuple(feats[n] for n in stage_hook_names(model)) + (feats["last"],)

    def run_ref(model, x):
        return (model(x),) + tuple(model.forward_intermediates(x))

    def sizes_of(model):
        out = {}
        for n, mod in model.named_modules():
            if isinstance(mod, nn.UpsamplingBilinear2d):
                out[n] = _pair(mod.size)
            elif isinstance(mod, nn.AvgPool2d):
                out[n] = _pair(mod.kernel_size)
        return out

    nets = [("attention56 imagenet", N.ResidualAttentionModel_56, 56, False, (224, 224), (29, 23)),
            ("attention92 imagenet", N.ResidualAttentionModel_92, 92, False, (224, 224), (29, 23)),
            ("attention92_cifar (32input_update)", N.ResidualAttentionModel_92_32input_update, 92, True, (32, 32),
             (19, 13))]
    for i, (name, ctor, depth, cifar, native, odd) in enumerate(nets):
        kw = dict(num_classes=10) if not cifar else {}
        ref_ctor = {56: sr_ref.ResidualAttentionModel_56, 92: sr_ref.ResidualAttentionModel_92}[depth]
        if cifar:
            ref_ctor = sr_ref.ResidualAttentionModel_92_32input_update
        ref = randomize(ref_ctor(**kw), 200 + i, gain=0.5)
        official = off(ctor)
        so, sr = sizes_of(official), sizes_of(ref)
        assert so.keys() == sr.keys() and so == sr, f"{name}: official fixed sizes {so} != ours {sr}"
        x = smooth_input(1, 3, *native)
        check(f"ran/net {name} {native[0]}x{native[1]}", official, ref, [x], run_official=run_off, run_reference=run_ref)
        # Odd size: the port's modules for that input size (constants set on the instance).
        ref_odd = ref_ctor(input_size=odd, **kw)
        ref_odd.load_state_dict(ref.state_dict())
        mods = dict(ref_odd.named_modules())
        for n, mod in official.named_modules():
            if isinstance(mod, nn.UpsamplingBilinear2d):
                mod.size = mods[n].size
            elif isinstance(mod, nn.AvgPool2d):
                mod.kernel_size = mods[n].kernel_size
        x = smooth_input(1, 3, *odd)
        check(f"ran/net {name} {odd[0]}x{odd[1]} (resized)", official, ref_odd, [x], run_official=run_off,
              run_reference=run_ref)

    counts = {"attention56": nparams(off(N.ResidualAttentionModel_56)),
              "attention92": nparams(off(N.ResidualAttentionModel_92)),
              "attention92_cifar": nparams(off(N.ResidualAttentionModel_92_32input_update))}
    print(f"# official port parameter counts (fc hard-coded to 10 classes): {counts}")
    print("# ours with num_classes=1000 (tests/fixtures/ran/param_counts.json): "
          f"attention56 {nparams(sr_ref.ResidualAttentionModel_56())}, "
          f"attention92 {nparams(sr_ref.ResidualAttentionModel_92())} "
          "(= official + 990 * (2048 + 1) for the 1000-way fc)")


# ============================================================================ attention gates


def check_gates(O):
    print("\n## Attention gates (ozan-oktay/Attention-Gated-Networks grid_attention_layer.py, "
          "LeeJunHyun/Image_Segmentation network.py)")
    G, L = O.agn, O.lee

    def legacy(model):
        # PyTorch <= 0.3 F.upsample semantics (align_corners=True) for the *_ac fixture.
        def run(m, x, g):
            G.F, saved = _LegacyUpsampleF(), G.F
            try:
                return m(x, g)
            finally:
                G.F = saved
        return run

    for name, xs, gs, ac in [("ag_grid", (1, 16, 14, 18), (1, 32, 7, 9), False),
                             ("ag_grid_odd", (1, 8, 15, 19), (1, 16, 4, 5), False),
                             ("ag_grid_odd_ac", (1, 8, 15, 19), (1, 16, 4, 5), True)]:
        torch.manual_seed(108 + len(name))
        m = sr_ref.GridAttentionBlock2D(xs[1], gs[1], inter_channels=xs[1] // 2, sub_sample_factor=(2, 2),
                                        align_corners=ac)
        reinit_normal(m, 0.3, bn_stats=True)
        x, g = torch.randn(*xs), torch.randn(*gs)
        o = G.GridAttentionBlock2D(xs[1], gs[1], inter_channels=xs[1] // 2, mode="concatenation",
                                   sub_sample_factor=(2, 2))
        tag = " (F.upsample as torch<=0.3)" if ac else ""
        check(f"ag/grid {name}{tag} [fixture]", o, m, [x, g], run_official=legacy(o) if ac else None,
              fixture=("attn", name, ["input", "gate"], ["output", "attention"]))

    gen = torch.Generator().manual_seed(140)
    for i, (xs, gs, inter, ac) in enumerate([((2, 32, 20, 24), (2, 64, 10, 12), None, False),
                                             ((2, 12, 17, 11), (2, 24, 3, 7), 5, False),
                                             ((2, 12, 17, 11), (2, 24, 3, 7), 5, True)]):
        m = randomize(sr_ref.GridAttentionBlock2D(xs[1], gs[1], inter_channels=inter, sub_sample_factor=(2, 2),
                                                  align_corners=ac), 141 + i, gain=1.5, bias=0.3)
        o = G.GridAttentionBlock2D(xs[1], gs[1], inter_channels=inter, sub_sample_factor=(2, 2))
        tag = " (F.upsample as torch<=0.3)" if ac else ""
        check(f"ag/grid x{xs[1]} g{gs[1]} inter={inter}{tag}", o, m,
              [torch.randn(*xs, generator=gen), torch.randn(*gs, generator=gen)],
              run_official=legacy(o) if ac else None)

    torch.manual_seed(109)
    m = sr_ref.Attention_block(F_g=12, F_l=8, F_int=4)
    reinit_normal(m, 0.3, bn_stats=True)
    x, g = torch.randn(1, 8, 13, 17), torch.randn(1, 12, 13, 17)
    # forward(g, x) on both sides; the fixture stores input (x) and gate (g).
    check("ag/unet Attention_block [fixture ag_unet]", L.Attention_block(F_g=12, F_l=8, F_int=4), m, [g, x],
          fixture=("attn", "ag_unet", ["gate", "input"], ["output"]))
    m = randomize(sr_ref.Attention_block(64, 64, 32), 150, gain=1.5, bias=0.3)
    check("ag/unet Attention_block 64/64/32", L.Attention_block(64, 64, 32), m,
          [torch.randn(2, 64, 9, 12, generator=gen), torch.randn(2, 64, 9, 12, generator=gen)])


# ============================================================================ FcaNet / triplet / PSA


def check_official_attn(O):
    print("\n## FcaNet (cfzd/FcaNet model/layer.py), triplet attention (landskape-ai/triplet-attention), "
          "PSA (DeLightCMU/PSA semantic-segmentation/network/PSA.py)")
    official = {
        "fca_top16_13x17": lambda: O.fca.MultiSpectralAttentionLayer(16, 7, 7, 4, "top16"),
        "fca_low16_7x7": lambda: O.fca.MultiSpectralAttentionLayer(16, 7, 7, 4, "low16"),
        "fca_bot16_14x14": lambda: O.fca.MultiSpectralAttentionLayer(16, 14, 14, 4, "bot16"),
        "fca_top8_dct14x7": lambda: O.fca.MultiSpectralAttentionLayer(8, 14, 7, 2, "top8"),
        "triplet": lambda: O.tri_models.TripletAttention(24, 16),
        "triplet_no_spatial": lambda: O.tri_root.TripletAttention(no_spatial=True),
        "psa_p": lambda: O.psa.PSA_p(16, 16),
        "psa_s": lambda: O.psa.PSA_s(16, 16),
    }
    # The fixture modules and inputs of gen_attn_official_fixtures.py (seeds, re-init, shapes).
    items = []
    for seed, (name, make, shape) in enumerate([
        ("fca_top16_13x17", lambda: off_ref.MultiSpectralAttentionLayer(16, 7, 7, 4, "top16"), (1, 16, 13, 17)),
        ("fca_low16_7x7", lambda: off_ref.MultiSpectralAttentionLayer(16, 7, 7, 4, "low16"), (2, 16, 7, 7)),
        ("fca_bot16_14x14", lambda: off_ref.MultiSpectralAttentionLayer(16, 14, 14, 4, "bot16"), (1, 16, 14, 14)),
        ("fca_top8_dct14x7", lambda: off_ref.MultiSpectralAttentionLayer(8, 14, 7, 2, "top8"), (2, 8, 9, 11)),
        ("triplet", lambda: off_ref.TripletAttention(24, 16), (2, 24, 13, 17)),
        ("triplet_no_spatial", lambda: off_ref.TripletAttentionV2(no_spatial=True), (2, 16, 9, 11)),
        ("psa_p", lambda: off_ref.PSA_p(16, 16), (2, 16, 9, 11)),
        ("psa_s", lambda: off_ref.PSA_s(16, 16), (2, 16, 9, 11)),
    ], start=1):
        torch.manual_seed(seed)
        m = reinit_normal(make(), 0.3, bn_stats=True, batches_tracked=0)
        items.append((name, m, torch.randn(*shape)))
    for name, m, x in items:
        check(f"{name} [fixture]", official[name](), m, [x], fixture=("attn", name, ["input"], ["output"]))

    gen = torch.Generator().manual_seed(160)
    more = [
        ("fca top32 c64 r16 7x7", lambda: O.fca.MultiSpectralAttentionLayer(64, 7, 7, 16, "top32"),
         lambda: off_ref.MultiSpectralAttentionLayer(64, 7, 7, 16, "top32"), (2, 64, 7, 7)),
        ("fca low4 c32 dct56 56x56", lambda: O.fca.MultiSpectralAttentionLayer(32, 56, 56, 8, "low4"),
         lambda: off_ref.MultiSpectralAttentionLayer(32, 56, 56, 8, "low4"), (1, 32, 56, 56)),
        ("fca bot2 c8 dct28 on 30x20", lambda: O.fca.MultiSpectralAttentionLayer(8, 28, 28, 2, "bot2"),
         lambda: off_ref.MultiSpectralAttentionLayer(8, 28, 28, 2, "bot2"), (2, 8, 30, 20)),
        ("fca top1 c4 dct5 (index scale 0)", lambda: O.fca.MultiSpectralAttentionLayer(4, 5, 5, 2, "top1"),
         lambda: off_ref.MultiSpectralAttentionLayer(4, 5, 5, 2, "top1"), (1, 4, 9, 6)),
        ("triplet MODELS no_spatial", lambda: O.tri_models.TripletAttention(16, no_spatial=True),
         lambda: off_ref.TripletAttention(16, no_spatial=True), (2, 16, 9, 11)),
        ("triplet root (cw/hc/hw)", lambda: O.tri_root.TripletAttention(),
         lambda: off_ref.TripletAttentionV2(), (2, 24, 13, 17)),
        ("psa_p c64", lambda: O.psa.PSA_p(64, 64), lambda: off_ref.PSA_p(64, 64), (2, 64, 13, 17)),
        ("psa_s c64", lambda: O.psa.PSA_s(64, 64), lambda: off_ref.PSA_s(64, 64), (2, 64, 13, 17)),
    ]
    for i, (name, mk_off, mk_ref, shape) in enumerate(more):
        m = mk_ref()
        randomize(m, 161 + i, gain=2.0, bias=0.3)
        check(name, mk_off(), m, [torch.randn(*shape, generator=gen)])


# ============================================================================ main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("official_dir", nargs="?", default=os.environ.get("OFFICIAL_DIR", "/tmp/official"))
    ap.add_argument("--git-root", default=os.environ.get("GAZE_MIRROR"),
                    help="clones <owner>+<repo> to also verify the pinned trees (optional)")
    ap.add_argument("--export", metavar="GIT_ROOT", help="first export the pinned files from GIT_ROOT")
    args = ap.parse_args()
    if args.export:
        export_official(args.export, args.official_dir)
    print(f"# torch {torch.__version__}, python {sys.version.split()[0]}, fp32, tolerance max|diff| <= {TOL:g}")
    verify_checkouts(args.official_dir, args.git_root)
    torch.set_default_dtype(torch.float32)
    with warnings.catch_warnings():
        # Deprecation warnings of the official code (F.upsample, F.sigmoid, init.kaiming_normal).
        warnings.simplefilter("ignore")
        O = load_official(args.official_dir)
        check_pan(O)
        check_rcan_han(O)
        check_ran(O)
        check_gates(O)
        check_official_attn(O)
    worst = max(d for _, d in CASES)
    for msg in SKIPPED:
        print(f"# fixture file not checked: {msg}")
    print(f"\nALL {len(CASES)} CASES PASS: max abs diff over all cases {worst:.2e} <= {TOL:g}")


if __name__ == "__main__":
    main()
