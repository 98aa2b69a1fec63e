"""Shared helpers of the backbone parity fixture scripts (gen_{resnet,ran,vit,swin,levit,
nat_biformer,halonet,pan}_fixtures.py and the SR zoo's gen_{imdn,a2n,bsrn,vapsr,hat,rcan_han}
_fixtures.py): deterministic inputs, scaled random weights, saving, range checks, the constants
the random-weight outputs barely see, block fixtures and the pinned official sources.

Fixture files (tests/fixtures/<family>/)
-----------------------------------------
`<fixture>.safetensors`
    * the reference model's state dict under its own key names: every floating-point tensor of
      `model.state_dict()` (`num_batches_tracked` and other integer buffers left out);
    * `logits_<H>x<W>`: `[2, num_classes]`, the model's output for
      `deterministic_input(2, 3, H, W)` (batch 2 everywhere);
    * `feature<i>_<H>x<W>`: the i-th feature map (`forward_intermediates` order of the reference,
      NCHW) of the same input, for every size the script lists as a feature size;
    * SR models (PAN): `output_<H>x<W>` (`[2, 3, sH, sW]`) and `feature0_<H>x<W>` (the
      low-resolution trunk features, gaze's `forward_features`) instead of logits;
    * every output (logits, SR outputs, feature maps) is computed in float64 (`float64_copy`:
      the float32 weights and buffers exactly, widened; the float32 input widened) and then
      rounded to float32, so that it is the exact result for the stored weights to float32
      precision and the tests' tolerance is left to gaze's own rounding (the
      weights themselves stay the float32 ones, as stored).
    `<H>x<W>` is always the input's height x width in pixels, e.g. `logits_224x224`,
    `feature3_29x23`: one naming for every family, derived from the size the test runs.
`<fixture>.pth`
    `torch.save(model.state_dict(), path)` (PyTorch's default zip format) of the same model:
    the same weights, `num_batches_tracked` (int64) included. The zip's random
    `.data/serialization_id` record is replaced by zeros so that regenerating is byte-stable.
`constants.json`
    {"fixtures":   {"<fixture>": CONSTANTS, ...},
     "registered": {"<full-size model name>": CONSTANTS, ...}}
    CONSTANTS maps a kind to {value: [module path pattern, ...]} (kinds without any module are
    left out):
    * "norm_eps": every normalization module (BatchNorm*, LayerNorm (timm's LayerNorm2d too),
      GroupNorm, RmsNorm, ...) by its `eps`;
    * "leaky_relu_slope": every LeakyReLU module by `negative_slope`, plus functional
      `F.leaky_relu` calls seen in a forward (fixtures, and registered models when the script
      runs one), attributed to the innermost module running them ("" = the model itself);
    * "prelu": PReLU modules by their `num_parameters` (the slope itself is a weight);
    * "attn_scale": the float `scale` attribute of every attention module (class name
      containing "attn", "attention" or "routing");
    * "gelu_approximate": every GELU by "none" / "tanh" (nn.GELU's `approximate`, timm's GELU /
      GELUTanh, functional `F.gelu` calls seen in a forward).
    Values are Python's `repr` of the float ("1e-05", "0.35355339059327373") or the string.
    Paths are state-dict module paths ("layer1.0.bn1"); every run of digits is written `*`
    when all the modules of that kind with that pattern have the same value ("layer*.*.bn1":
    `*` matches one run of digits), otherwise the paths are listed in full. A pattern only
    ever stands for modules of its own kind (norm_eps "*" in a Sequential means its numbered
    norms, not its convs).

Weights (`scale_weights`)
-------------------------
Random, then scaled so that activations stay O(1-10) and the logits O(1):
1. `randomize`: normalization weights ~ U(0.5, 1.5), their biases ~ N(0, 0.1); BatchNorm
   running_mean ~ N(0, 0.1), running_var ~ U(0.5, 1.5); conv / linear weights ~
   N(0, 1 / fan_in), biases ~ N(0, 0.1); other parameters (position tables, tokens, layer
   scales, ...) as the script overrides, else 1-D ~ U(0.5, 1.5) and N-D ~ N(0, 0.5).
2. `calibrate` (LSUV-like) on the fixture's inputs (every size, batch 2; RAN: its first size
   only; HaloNet: plus the padded input), module by module in execution order, each given the
   already calibrated ones before it:
   * conv / linear: weight and bias times the factor (rounded to 3 significant digits) that
     brings the largest output RMS over the inputs to 1 (2 for the classifier head(s), or the
     script's `head_rms`; scripts may set other targets, e.g. smaller residual branches
     where a deep un-normalized residual stream would grow, or a long chain of layers
     amplifies the float32 rounding error);
   * BatchNorm: with m, v the per-channel mean and variance of its inputs (all the inputs
     together; 3 significant digits; v raised to at least half its mean over the channels
     and to 1e-3, so that no channel with a chance small variance is amplified on other
     inputs): running_mean = m + N(0, 0.1) sqrt(v), running_var = v U(0.5, 1.5) (the random
     statistics of step 1 as perturbations); a BatchNorm the script gives a target (e.g. the
     last one of a residual branch, whose scale the conv before it cannot set) then also
     has its weight and bias multiplied by the factor that brings its largest output RMS
     over the inputs to that target.
`check_ranges` then asserts 0.5 <= max |logits| (or SR output) <= 20, max |feature| <= 30 and
every module output <= 50, and `make_fixture` that a float32 run of the same model (the
float32 rounding error a float32 implementation such as gaze's is expected to have) stays
within FP32_ERROR_MAX = 3e-5 of the float64 outputs, a third of the tests' 1e-4. Everything
is seeded and PyTorch runs single-threaded, so a rerun gives byte-identical files.

Block fixtures (`dump_block`)
-----------------------------
`<name>.safetensors` holds one module's state dict under the reference's own key names (every
entry, as float32), `input` and `output`: the layout of tests/suite/common.rs `load_fixture`.
The weights are `scale_weights` calibrated on that one input, the output is computed by the
`float64_copy` under `Float64Mode` and stored as float32, and a float32 run must stay within
FP32_ERROR_MAX of it, as for the whole-network fixtures. No .pth, no constants.

Pinned official sources (`verify_official`)
-------------------------------------------
Scripts that import an official repository's code read it from OFFICIAL_DIR/<owner>+<repo>/
(exported by tests/reference/export_*official.sh: the files as stored at the pinned commit,
plus a `COMMIT` stamp); `verify_official` asserts the stamp is the script's pinned commit and
every listed file has its pinned git blob hash (`git hash-object`) before anything is
imported. `stub_modules` registers stand-ins for the official files' imports of packages that
are not installed (e.g. BasicSR's registry) while they load.
"""
import contextlib
import copy
import hashlib
import json
import os
import re
import sys
import zipfile
import zlib
from inspect import signature

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file
from torch.overrides import TorchFunctionMode

torch.set_num_threads(1)

BATCH = 2
LOGIT_RANGE = (0.5, 20.0)
FEATURE_MAX = 30.0
ACTIVATION_MAX = 50.0
FP32_ERROR_MAX = 3e-5


def deterministic_input(n, c, h, w):
    """x[n,c,h,w] = sin(0.05 (h+1)(c+1) + 0.07 w + 0.3 n), computed in float64, stored f32."""
    ni, ci, hi, wi = torch.meshgrid(*(torch.arange(s, dtype=torch.float64) for s in (n, c, h, w)), indexing="ij")
    Float64Mode.making_input += 1  # float32 by definition, also while the float64 reference runs
    try:
        return torch.sin(0.05 * (hi + 1) * (ci + 1) + 0.07 * wi + 0.3 * ni).to(torch.float32)
    finally:
        Float64Mode.making_input -= 1


def tag(size):
    """`(H, W)` -> "HxW", the size part of every output key."""
    h, w = size
    return f"{h}x{w}"


def batch_input(size, channels=3):
    return deterministic_input(BATCH, channels, *size)


# ----------------------------------------------------------------------------- weights

LINEAR_TYPES = (nn.Conv1d, nn.Conv2d, nn.Linear)


def is_norm(m):
    return isinstance(m, (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)) or (
        isinstance(getattr(m, "eps", None), float) and "norm" in type(m).__name__.lower())


def randomize(model, seed, overrides=()):
    """Random weights before calibration (see the module docstring). `overrides`: pairs
    (regex on the parameter name, fn(param, generator) -> tensor) tried first, in order."""
    g = torch.Generator().manual_seed(seed)
    owners = {}
    for mname, m in model.named_modules():
        for pname, _ in m.named_parameters(recurse=False):
            owners[f"{mname}.{pname}" if mname else pname] = (m, pname)
    with torch.no_grad():
        for name, p in model.named_parameters():
            m, leaf = owners[name]
            fn = next((f for rx, f in overrides if re.search(rx, name)), None)
            if fn is not None:
                v = fn(p, g)
            elif is_norm(m):
                if leaf == "weight":
                    v = torch.rand(p.shape, generator=g) + 0.5
                else:
                    v = 0.1 * torch.randn(p.shape, generator=g)
            elif isinstance(m, LINEAR_TYPES):
                if leaf == "weight":
                    v = torch.randn(p.shape, generator=g) / p[0].numel() ** 0.5
                else:
                    v = 0.1 * torch.randn(p.shape, generator=g)
            elif isinstance(m, nn.PReLU):
                v = 0.05 + 0.35 * torch.rand(p.shape, generator=g)
            elif p.dim() <= 1:
                v = torch.rand(p.shape, generator=g) + 0.5
            else:
                v = 0.5 * torch.randn(p.shape, generator=g)
            p.copy_(v)
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.1 * torch.randn(b.shape, generator=g))
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)


def _round_sig(x, digits=3):
    return float(f"{x:.{digits - 1}e}")


def _round_sig_t(t, digits=3):
    e = torch.floor(torch.log10(t.abs().clamp_min(1e-30))) - (digits - 1)
    return torch.round(t / 10.0 ** e) * 10.0 ** e


class _Stop(Exception):
    pass


def calibrate(model, xs, head=(), rms=1.0, head_rms=2.0, targets=(), forward=None):
    """LSUV-like calibration (see the module docstring) on the inputs `xs` (a list): module by
    module in execution order, each given the already calibrated ones before it, from its
    inputs under every x: BatchNorm statistics over all of them, conv / linear scaled so that
    the largest output RMS over the inputs is the target. `head`: module paths of the
    classifier(s), brought to `head_rms`; `targets`: pairs (regex on the module path, RMS)
    for other conv / linear outputs (first match wins, else `rms`) and for BatchNorm outputs
    (only those that match; the others keep their random affine). `forward(model, x)`
    defaults to `model(x)`."""
    forward = forward or (lambda m, v: m(v))
    head = set(head)
    names = {m: n for n, m in model.named_modules()}
    missing = head - set(names.values())
    assert not missing, f"no head module {missing}"
    calibrated = LINEAR_TYPES + (nn.modules.batchnorm._BatchNorm,)

    def target(name, default=rms):
        if name in head:
            return head_rms
        return next((r for rx, r in targets if re.search(rx, name)), default)

    def rescale(mod, captured, goal):
        r = max(type(mod).forward(mod, *a).pow(2).mean().sqrt().item() for a in captured)
        if r > 1e-6:
            factor = _round_sig(goal / r)
            mod.weight.mul_(factor)
            if mod.bias is not None:
                mod.bias.mul_(factor)

    # Execution order (first call of each module).
    order = []

    def record(mod, args):
        if mod not in order:
            order.append(mod)

    hooks = [m.register_forward_pre_hook(record) for m in model.modules() if isinstance(m, calibrated)]
    try:
        with torch.no_grad():
            for x in xs:
                forward(model, x.clone())
    finally:
        for h in hooks:
            h.remove()

    for mod in order:
        captured = []

        def grab(m, args):
            captured.append(args)
            raise _Stop

        h = mod.register_forward_pre_hook(grab)
        try:
            with torch.no_grad():
                for x in xs:
                    try:
                        forward(model, x.clone())
                    except _Stop:
                        pass
        finally:
            h.remove()
        with torch.no_grad():
            if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                # Running statistics near the inputs' own, perturbed by the random ones.
                x = torch.cat([a[0].transpose(0, 1).flatten(1) for a in captured], 1)
                var = x.var(1, unbiased=False)
                var = _round_sig_t(var.clamp_min(max(0.5 * var.mean().item(), 1e-3)))
                mean = _round_sig_t(x.mean(1))
                mod.running_mean.copy_(mean + mod.running_mean * var.sqrt())
                mod.running_var.mul_(var)
                goal = target(names[mod], None)
                if goal is not None:
                    assert mod.affine, names[mod]
                    rescale(mod, captured, goal)
                continue
            rescale(mod, captured, target(names[mod]))
    unused = [n for m, n in names.items() if isinstance(m, calibrated) and m not in order]
    if unused:  # e.g. the RAN port's shortcut convs of blocks without projection
        print(f"   note: {len(unused)} conv/linear/BatchNorm never run (left uncalibrated), e.g. {unused[0]}")


def scale_weights(model, seed, xs, head=(), overrides=(), targets=(), forward=None, head_rms=2.0):
    """`randomize` then `calibrate` on the inputs `xs`; the model is left in eval mode."""
    model.eval()
    randomize(model, seed, overrides)
    calibrate(model, xs, head=head, targets=targets, forward=forward, head_rms=head_rms)
    return model


def max_activation(model, x, forward=None):
    """(max |output| over every module output tensor of a forward of `x`, module path)."""
    best = [0.0, ""]
    names = {m: n for n, m in model.named_modules()}

    def post(mod, args, out):
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if torch.is_tensor(t) and t.is_floating_point() and t.numel():
                v = t.abs().max().item()
                if v > best[0]:
                    best[:] = [v, names[mod]]

    hooks = [m.register_forward_hook(post) for m in model.modules()]
    try:
        with torch.no_grad():
            (forward or (lambda m, v: m(v)))(model, x)
    finally:
        for h in hooks:
            h.remove()
    return tuple(best)


def check_ranges(name, outputs, activation=None, logit_range=LOGIT_RANGE, feature_max=FEATURE_MAX):
    """Prints max |.| of every output and asserts the logits (or SR outputs) lie in
    `logit_range`, the features below `feature_max`, every activation below ACTIVATION_MAX."""
    summary = []
    for k, v in outputs.items():
        assert torch.isfinite(v).all(), f"{name}: {k} not finite"
        m = v.abs().max().item()
        summary.append(f"{k} {m:.3g}")
        if k.startswith(("logits_", "output_")):
            assert logit_range[0] <= m <= logit_range[1], f"{name}: max |{k}| = {m}"
        else:
            assert m <= feature_max, f"{name}: max |{k}| = {m}"
    line = f"   {name} max|.|: " + ", ".join(summary)
    if activation is not None:
        line += f"; max activation {activation[0]:.3g} ({activation[1] or 'model'})"
        assert activation[0] <= ACTIVATION_MAX, f"{name}: activation {activation}"
    print(line)


# ----------------------------------------------------------------------------- float64 outputs


def dtype_of(model):
    """The floating dtype of `model`'s weights (float64 for a `float64_copy`): run functions
    cast their own inputs (e.g. padded ones) with `x.to(fu.dtype_of(model))`."""
    return next(t.dtype for t in model.state_dict().values() if t.is_floating_point())


def float64_copy(model):
    """A float64 copy of `model` (eval mode): the same float32 weights and buffers (BatchNorm
    running statistics included) widened exactly, integer buffers untouched. `train()` then
    `eval()` drops eval-mode caches built from the float32 weights (timm LeViT's attention
    bias cache)."""
    m = copy.deepcopy(model)
    m.train()
    return m.double().eval()


class Float64Mode(TorchFunctionMode):
    """Active while the float64 copy runs. `Tensor.float()` of a float64 tensor returns it as
    it is (timm casts the position embeddings to float32 before resampling them, ViT), and
    any other op that narrows a float64 tensor to a lower floating precision raises, so that
    no float32 rounding hides inside the reference outputs."""

    NARROW = (torch.float32, torch.float16, torch.bfloat16)
    making_input = 0  # > 0 inside deterministic_input


    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.Tensor.float and torch.is_tensor(args[0]) and args[0].dtype == torch.float64:
            return args[0]
        out = func(*args, **kwargs)
        wide = any(torch.is_tensor(a) and a.dtype == torch.float64
                   for a in list(args) + list(kwargs.values()))
        if wide and not Float64Mode.making_input:
            for t in out if isinstance(out, (tuple, list)) else [out]:
                if torch.is_tensor(t) and t.dtype in self.NARROW:
                    raise AssertionError(f"float64 reference: {getattr(func, '__name__', func)} gives {t.dtype}")
        return out


# ----------------------------------------------------------------------------- saving


def _zero_serialization_id(path):
    """torch.save writes a random `.data/serialization_id`; overwrite it with zeros (and fix
    the CRC in the local and central headers) so that the file only depends on the weights."""
    with zipfile.ZipFile(path) as zf:
        info = next((i for i in zf.infolist() if i.filename.endswith(".data/serialization_id")), None)
        if info is None:
            return
        assert info.compress_type == zipfile.ZIP_STORED
        old = zf.read(info)
    new = b"0" * len(old)
    crc = zlib.crc32(new).to_bytes(4, "little")
    data = bytearray(open(path, "rb").read())
    off = info.header_offset
    assert data[off:off + 4] == b"PK\x03\x04"
    n, e = int.from_bytes(data[off + 26:off + 28], "little"), int.from_bytes(data[off + 28:off + 30], "little")
    start = off + 30 + n + e
    assert data[start:start + len(old)] == old
    data[start:start + len(old)] = new
    data[off + 14:off + 18] = crc
    name = info.filename.encode()
    pos = data.find(b"PK\x01\x02")
    found = False
    while pos != -1:
        fn_len = int.from_bytes(data[pos + 28:pos + 30], "little")
        if data[pos + 46:pos + 46 + fn_len] == name:
            data[pos + 16:pos + 20] = crc
            found = True
            break
        pos = data.find(b"PK\x01\x02", pos + 4)
    assert found, "central directory entry of serialization_id"
    with open(path, "wb") as f:
        f.write(data)
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None


def save_fixture(out_dir, name, model, outputs):
    """Writes `<name>.safetensors` (float state dict + outputs) and `<name>.pth`
    (`torch.save(model.state_dict())`), checks the .pth loads back to the same tensors, and
    returns the two file sizes."""
    sd = model.state_dict()
    t = {k: v.detach().float().contiguous() for k, v in sd.items() if v.is_floating_point()}
    clash = set(t) & set(outputs)
    assert not clash, clash
    t.update({k: v.detach().float().contiguous() for k, v in outputs.items()})
    st = os.path.join(out_dir, f"{name}.safetensors")
    save_file(t, st)
    os.chmod(st, 0o644)
    pth = os.path.join(out_dir, f"{name}.pth")
    torch.save(sd, pth)
    _zero_serialization_id(pth)
    back = torch.load(pth, map_location="cpu", weights_only=True)
    assert list(back) == list(sd) and all(torch.equal(back[k], sd[k]) for k in sd), pth
    return os.path.getsize(st), os.path.getsize(pth)


def dump_block(out_dir, name, module, x, seed, *, forward=None, overrides=(), targets=(), shapes=False,
               note=None):
    """Block fixture `<out_dir>/<name>.safetensors` (see the module docstring): `scale_weights`
    (`seed`, calibrated on `[x]`; `overrides`, `targets`, `forward` as there), then
    `forward(module, x)` (default `module(x)`) of the float64 copy (the stored output) and of
    `module` itself (the float32 error check). `note(module, x, y)`, if given, may check more
    and returns a fragment for the printed line (y: the float64 output). Prints
    `== <name>.safetensors (<bytes> bytes), params <n>, [in <shape> out <shape>, ]max|output|
    <m>, [<note>, ]float32 run vs float64 <err>` (the shapes with `shapes=True`) and returns
    the stored (float32) output."""
    forward = forward or (lambda m, v: m(v))
    scale_weights(module, seed, [x], overrides=overrides, targets=targets, forward=forward)
    module.eval()
    wide = float64_copy(module)
    with torch.no_grad(), Float64Mode():
        y = forward(wide, x.double())
    extra = note(module, x, y) if note is not None else None
    with torch.no_grad():
        y32 = forward(module, x)
    err = (y32.double() - y).abs().max().item()
    assert torch.isfinite(y).all() and err <= FP32_ERROR_MAX, (name, err)
    t = {k: v.detach().float().contiguous() for k, v in module.state_dict().items()}
    t["input"] = x.float().contiguous()
    t["output"] = y.float().contiguous()
    path = os.path.join(out_dir, f"{name}.safetensors")
    save_file(t, path)
    os.chmod(path, 0o644)
    parts = [f"params {sum(p.numel() for p in module.parameters())}"]
    if shapes:
        parts.append(f"in {list(x.shape)} out {list(y.shape)}")
    parts.append(f"max|output| {y.abs().max().item():.4f}")
    if extra is not None:
        parts.append(extra)
    parts.append(f"float32 run vs float64 {err:.3g}")
    print(f"== {name}.safetensors ({os.path.getsize(path)} bytes), " + ", ".join(parts))
    return t["output"]


# ----------------------------------------------------------------------------- official sources


def official_dir_arg():
    """The scripts' OFFICIAL_DIR: argv[1], else $OFFICIAL_DIR, else /tmp/official."""
    return sys.argv[1] if len(sys.argv) > 1 else os.environ.get("OFFICIAL_DIR", "/tmp/official")


def verify_official(official_dir, repo, commit, files):
    """Checks the export `<official_dir>/<repo>` (repo as `owner+name`): its `COMMIT` stamp is
    `commit` and every file of `files` ({path in the repo: git blob hash}) has its pinned blob
    hash. Prints one line and returns the repository directory."""
    d = os.path.join(official_dir, repo)
    stamp = open(os.path.join(d, "COMMIT")).read().strip()
    assert stamp == commit, f"{repo}: COMMIT stamp {stamp} != pin {commit}"
    for path, blob in files.items():
        with open(os.path.join(d, path), "rb") as f:
            data = f.read()
        got = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        assert got == blob, f"{repo}:{path}: blob {got} != pinned {blob}"
    print(f"# {repo} @ {commit}: verified ({len(files)} file blob hashes)")
    return d


@contextlib.contextmanager
def stub_modules(modules):
    """Registers the module objects `modules` ({dotted name: module}) in sys.modules while the
    block runs (stand-ins for an official file's imports of packages not installed here), then
    restores the previous entries (or their absence)."""
    saved = {k: sys.modules.get(k) for k in modules}
    sys.modules.update(modules)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


# ----------------------------------------------------------------------------- constants


def _add(out, kind, value, path):
    out.setdefault(kind, {}).setdefault(value, set()).add(path)


class _Functional(TorchFunctionMode):
    """Records F.leaky_relu / F.gelu calls with the innermost running module."""

    LEAKY = signature(F.leaky_relu)
    GELU_ARGS = ("input", "approximate")

    def __init__(self, stack, out):
        super().__init__()
        self.stack, self.out = stack, out

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.leaky_relu:
            b = self.LEAKY.bind(*args, **kwargs)
            b.apply_defaults()
            _add(self.out, "leaky_relu_slope", repr(float(b.arguments["negative_slope"])), self.stack[-1])
        elif func is F.gelu:
            approx = kwargs.get("approximate", args[1] if len(args) > 1 else "none")
            _add(self.out, "gelu_approximate", approx, self.stack[-1])
        return func(*args, **kwargs)


def _compress(groups):
    """{value: set(paths)} -> {value: sorted patterns} (see the module docstring)."""
    def pattern(p):
        return re.sub(r"[0-9]+", "*", p)

    values_of = {}
    for v, paths in groups.items():
        for p in paths:
            values_of.setdefault(pattern(p), set()).add(v)
    out = {}
    for v, paths in groups.items():
        items = {pattern(p) if len(values_of[pattern(p)]) == 1 else p for p in paths}
        out[v] = sorted(items)
    return out


def model_constants(model, x=None, forward=None):
    """The CONSTANTS dict of the module docstring; with an input `x`, a forward also records
    the functional F.leaky_relu / F.gelu calls."""
    out = {}
    for path, m in model.named_modules():
        cls = type(m).__name__
        if is_norm(m):
            _add(out, "norm_eps", repr(float(m.eps)), path)
        if isinstance(m, nn.LeakyReLU):
            _add(out, "leaky_relu_slope", repr(float(m.negative_slope)), path)
        if isinstance(m, nn.PReLU):
            _add(out, "prelu", str(m.num_parameters), path)
        if isinstance(m, nn.GELU):
            _add(out, "gelu_approximate", m.approximate, path)
        elif cls in ("GELU", "GELUTanh"):
            _add(out, "gelu_approximate", "tanh" if cls == "GELUTanh" else "none", path)
        scale = getattr(m, "scale", None)
        if isinstance(scale, float) and re.search("attn|attention|routing", cls, re.I):
            _add(out, "attn_scale", repr(scale), path)
    if x is not None:
        names = {m: n for n, m in model.named_modules()}
        stack = [""]
        hooks = []

        def enter(mod, args):
            stack.append(names[mod])

        def leave(mod, args, out):
            stack.pop()

        for m in model.modules():
            hooks.append(m.register_forward_pre_hook(enter))
            hooks.append(m.register_forward_hook(leave))
        try:
            with torch.no_grad(), _Functional(stack, out):
                (forward or (lambda mm, v: mm(v)))(model, x)
        finally:
            for h in hooks:
                h.remove()
    return {k: _compress(v) for k, v in sorted(out.items())}


def write_constants(out_dir, fixtures, registered):
    """Writes `constants.json` ({"fixtures": ..., "registered": ...}); returns its path."""
    path = os.path.join(out_dir, "constants.json")
    with open(path, "w") as f:
        json.dump({"fixtures": fixtures, "registered": registered}, f, indent=1, sort_keys=True)
        f.write("\n")
    return path


def write_param_counts(out_dir, counts, indent=1):
    """Writes `param_counts.json` ({model name: parameter count}, keys sorted); returns its path."""
    path = os.path.join(out_dir, "param_counts.json")
    with open(path, "w") as f:
        json.dump(counts, f, indent=indent, sort_keys=True)
        f.write("\n")
    return path


# ----------------------------------------------------------------------------- driver


def timm_run(**kw):
    """`run` for timm models: logits and `forward_intermediates(x, intermediates_only=True)`."""
    return lambda model, size, x: (model(x), model.forward_intermediates(x, intermediates_only=True, **kw))


def _outputs(model, sizes, run, feature_sizes, extra, output_key):
    outputs = {}
    with torch.no_grad():
        for size in sizes:
            y, feats = run(model, size, batch_input(size).to(dtype_of(model)))
            outputs[f"{output_key}_{tag(size)}"] = y
            if feature_sizes is None or size in feature_sizes:
                for i, f in enumerate(feats):
                    outputs[f"feature{i}_{tag(size)}"] = f
        if extra is not None:
            outputs.update(extra(model))
    return outputs


def make_fixture(out_dir, name, model, seed, sizes, *, head=(), run=None, feature_sizes=None, overrides=(),
                 targets=(), head_rms=2.0, calib_sizes=None, calib_extra=(), extra=None, output_key="logits"):
    """Scales `model`'s weights (`scale_weights`, calibrated on `calib_sizes`, default all the
    sizes, plus the inputs `calib_extra`; `model(x)` must take them; `targets`, `head_rms`:
    see `calibrate`), computes for
    each size `run(model, size, x) -> (output, [feature maps])` (default `timm_run()`) on
    `batch_input(size)`, stores `<output_key>_<HxW>` and, for the sizes in `feature_sizes`
    (default all), `feature<i>_<HxW>`; `extra(model)` may add outputs (e.g. padded sizes).
    The stored outputs come from `float64_copy(model)` under `Float64Mode` (x cast to float64;
    `run` and `extra` must cast their own inputs to `dtype_of(model)`), rounded to float32; a
    float32 run of the same functions must stay within FP32_ERROR_MAX of them.
    Checks the ranges, saves .safetensors + .pth and returns (outputs, constants)."""
    run = run or timm_run()
    xs = [batch_input(s) for s in calib_sizes or sizes] + list(calib_extra)
    if seed is not None:  # None: already scaled by the caller
        scale_weights(model, seed, xs, head=head, overrides=overrides, targets=targets, head_rms=head_rms)
    model.eval()
    wide = float64_copy(model)
    with Float64Mode():
        outputs = _outputs(wide, sizes, run, feature_sizes, extra, output_key)
        activation = max(max_activation(wide, x.double()) for x in xs)
    assert all(v.dtype == torch.float64 for v in outputs.values()), name
    narrow = _outputs(model, sizes, run, feature_sizes, extra, output_key)
    assert list(narrow) == list(outputs), name
    err, err_key = max((((narrow[k].double() - v).abs().max().item(), k) for k, v in outputs.items()))
    outputs = {k: v.to(torch.float32) for k, v in outputs.items()}
    check_ranges(name, outputs, activation)
    print(f"   {name}: float32 run vs float64 reference max |diff| {err:.3g} ({err_key})")
    assert err <= FP32_ERROR_MAX, f"{name}: float32 error {err} ({err_key})"
    st, pth = save_fixture(out_dir, name, model, outputs)
    params = sum(p.numel() for p in model.parameters())
    print(f"== {name}: {st} + {pth} bytes, params {params}, "
          f"{ {k: list(v.shape) for k, v in outputs.items()} }")
    return outputs, model_constants(model, xs[0])
