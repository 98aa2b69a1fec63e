"""Generate NAT and BiFormer fixtures into tests/fixtures/nat_biformer/ (run from the repo root):

    /work/venv/bin/python tests/reference/gen_nat_biformer_fixtures.py [--crosscheck]

The reference networks are our re-implementations of the official code with the official names
(token_official_reference.py: `NAT` from SHI-Labs/Neighborhood-Attention-Transformer
classification/nat.py, `BiFormer` from rayleizhu/BiFormer models/biformer.py). Each tiny variant
exercises the code paths of the full-size models (NAT: tokenizer, layers with and without layer
scale, downsamplers, NATTEN's border windows, and NATTEN <= 0.14's padding of small maps;
BiFormer: stem, routed stages with identity / adaptive-average-pooled keys, auto_pad, the
AttentionLePE and Attention last stages, layer scale).

Layout, weights, inputs (batch 2) and constants.json: see fixture_utils.py. Each file holds the
state dict (official keys), `logits_<HxW>` and `feature{0..3}_<HxW>` (each level's output,
NCHW) at two sizes per variant (the second non-square; see VARIANTS). `param_counts.json`
holds the reference parameter count of every full-size model; constants.json's "registered"
part comes from the reference configs (ref.NAT_CONFIGS, ref.BIFORMER_CONFIGS).

--crosscheck also runs the official model files (read with `git show` from the mirrors under
$GAZE_MIRROR, default /work/.mirror) on the same weights: NAT's classification/nat.py with our
NeighborhoodAttention2D standing in for the `natten` package (whose kernels are CUDA/C++ only),
and BiFormer's models/biformer.py with its own models/_common.py and ops/bra_legacy.py (fairscale
stubbed), and prints the max abs difference of the logits.
"""
import json
import os
import subprocess
import sys
import tempfile
import types

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fixture_utils as fu  # noqa: E402
import token_official_reference as ref  # noqa: E402

OUT = os.path.join(HERE, "..", "fixtures", "nat_biformer")

# name -> (seed, class, kwargs, size a, size b (non-square))
VARIANTS = {
    # k = 3 needs every level >= 3, i.e. inputs >= 32 * 2 + 1 = 65.
    "nat_plain": (
        1, ref.NAT, dict(embed_dim=4, mlp_ratio=3, depths=[1, 1, 2, 1], num_heads=[1, 2, 2, 4], kernel_size=3,
                         num_classes=10), (96, 96), (112, 80)),
    # nat_small / nat_base path (layer scale, MLP ratio 2) and NATTEN <= 0.14's padding: the
    # last level is 2 x 2 (and 2 x 2 / 2 x 1 ... below 3) at these sizes.
    "nat_layer_scale_legacy_pad": (
        2, ref.NAT, dict(embed_dim=4, mlp_ratio=2, depths=[1, 1, 1, 1], num_heads=[2, 2, 4, 4], kernel_size=3,
                         num_classes=10, layer_scale=1e-5, legacy_pad=True), (64, 64), (48, 40)),
    # BiFormer-T/S path: identity kv, topk per stage, AttentionLePE (8 heads) last.
    "biformer_plain": (
        6, ref.BiFormer, dict(depth=[1, 1, 1, 1], embed_dim=[8, 16, 16, 24], mlp_ratios=[3, 3, 3, 3], n_win=2,
                              kv_downsample_mode="identity", kv_per_wins=[-1, -1, -1, -1], topks=[1, 2, 2, -2],
                              side_dwconv=5, before_attn_dwconv=3, layer_scale_init_value=-1,
                              qk_dims=[8, 16, 16, 24], head_dim=8, num_classes=10), (64, 64), (64, 96)),
    # auto_pad (maps 18 x 28, 9 x 14 and 5 x 7 padded to multiples of 3; no region is all
    # padding, whose equal means would tie the routing), adaptive average pooled keys,
    # layer scale, vanilla Attention (topk -1) last, qk_dim != dim.
    "biformer_auto_pad": (
        53, ref.BiFormer, dict(depth=[1, 1, 2, 1], embed_dim=[8, 16, 16, 24], mlp_ratios=[2, 2, 2, 2], n_win=3,
                              kv_downsample_mode="ada_avgpool", kv_per_wins=[2, 2, 1, 1], topks=[2, 3, 4, -1],
                              side_dwconv=3, before_attn_dwconv=3, layer_scale_init_value=0.5,
                              qk_dims=[16, 16, 16, 24], head_dim=8, auto_pad=True, num_classes=10),
        (96, 96), (70, 110)),
}


def build(name):
    """The variant with its scaled random weights (fixture_utils.scale_weights, calibrated on
    both sizes), eval mode."""
    seed, cls, kw, size_a, size_b = VARIANTS[name]
    torch.manual_seed(seed)
    m = cls(**kw)
    return fu.scale_weights(m, seed, [fu.batch_input(size_a), fu.batch_input(size_b)], head=["head"])


def routing_margins(m, x):
    """Smallest routing-logit gap at the topk boundary over every BRA of the forward."""
    margins = []
    hooks = [
        mod.register_forward_pre_hook(lambda mod, inp: margins.append(mod.routing_margin(inp[0])))
        for mod in m.modules() if isinstance(mod, ref.BiLevelRoutingAttention)
    ]
    with torch.no_grad():
        m(x)
    for h in hooks:
        h.remove()
    return min(margins) if margins else float("inf")


def generate():
    os.makedirs(OUT, exist_ok=True)
    constants = {}
    for name, (_, _, _, size_a, size_b) in VARIANTS.items():
        m = build(name)
        margin = min(routing_margins(m, fu.batch_input(size_a)), routing_margins(m, fu.batch_input(size_b)))
        assert margin > 1e-3, f"{name}: routing ties ({margin})"
        print(f"   {name}: routing margin {margin:.3e}")
        _, constants[name] = fu.make_fixture(OUT, name, m, None, [size_a, size_b],
                                             run=lambda model, size, x: (model(x), model.forward_intermediates(x)))

    counts = {n: sum(p.numel() for p in ref.NAT(**c).parameters()) for n, c in ref.NAT_CONFIGS.items()}
    counts.update({n: sum(p.numel() for p in ref.BiFormer(**c).parameters())
                   for n, c in ref.BIFORMER_CONFIGS.items()})
    with open(os.path.join(OUT, "param_counts.json"), "w") as f:
        json.dump(counts, f, indent=2, sort_keys=True)
        f.write("\n")
    print(counts)
    registered = {n: fu.model_constants(ref.NAT(**c)) for n, c in ref.NAT_CONFIGS.items()}
    registered.update({n: fu.model_constants(ref.BiFormer(**c)) for n, c in ref.BIFORMER_CONFIGS.items()})
    print("wrote", fu.write_constants(OUT, constants, registered))


# ----------------------------------------------------------------------------- cross-check


def _git_show(repo_dir, rev, path):
    return subprocess.run(
        ["git", "--git-dir", repo_dir, "show", f"{rev}:{path}"], check=True, capture_output=True, text=True
    ).stdout


def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def crosscheck():
    import importlib

    mirror = os.environ.get("GAZE_MIRROR", "/work/.mirror")
    nat_git = f"{mirror}/SHI-Labs+Neighborhood-Attention-Transformer/repo"
    bra_git = f"{mirror}/rayleizhu+BiFormer/repo"
    with tempfile.TemporaryDirectory() as tmp:
        # `natten` stand-in: our NeighborhoodAttention2D under NATTEN >= 0.17's signature.
        legacy = {"pad": False}
        natten = types.ModuleType("natten")
        natten.context = object()

        def na2d(dim, kernel_size, dilation=None, num_heads=1, qkv_bias=True, qk_scale=None, attn_drop=0.0,
                 proj_drop=0.0, rel_pos_bias=True):
            return ref.NeighborhoodAttention2D(dim, num_heads, kernel_size, dilation or 1, qkv_bias, qk_scale,
                                               rel_pos_bias, legacy_pad=legacy["pad"])

        natten.NeighborhoodAttention2D = na2d
        sys.modules["natten"] = natten
        fairscale = types.ModuleType("fairscale")
        fairscale.nn = types.ModuleType("fairscale.nn")
        fairscale.nn.checkpoint = types.ModuleType("fairscale.nn.checkpoint")
        fairscale.nn.checkpoint.checkpoint_wrapper = lambda m: m
        sys.modules.update({"fairscale": fairscale, "fairscale.nn": fairscale.nn,
                            "fairscale.nn.checkpoint": fairscale.nn.checkpoint})

        _write(f"{tmp}/official_nat.py", _git_show(nat_git, "HEAD", "classification/nat.py"))
        _write(f"{tmp}/models/__init__.py", "")
        _write(f"{tmp}/models/biformer.py", _git_show(bra_git, "HEAD", "models/biformer.py"))
        _write(f"{tmp}/models/_common.py", _git_show(bra_git, "HEAD", "models/_common.py"))
        _write(f"{tmp}/ops/__init__.py", "")
        _write(f"{tmp}/ops/bra_legacy.py", _git_show(bra_git, "HEAD", "ops/bra_legacy.py"))
        sys.path.insert(0, tmp)
        official_nat = importlib.import_module("official_nat")
        official_bif = importlib.import_module("models.biformer")

        for name, (_, cls, kw, size_a, size_b) in VARIANTS.items():
            m = build(name)
            kw = dict(kw)
            if cls is ref.NAT:
                legacy["pad"] = kw.pop("legacy_pad", False)
                o = official_nat.NAT(drop_path_rate=0.0, **kw)
            else:
                o = official_bif.BiFormer(**kw)
            o.load_state_dict(m.state_dict(), strict=True)
            o.eval()
            worst = 0.0
            with torch.no_grad():
                for size in (size_a, size_b):
                    x = fu.batch_input(size)
                    worst = max(worst, (o(x) - m(x)).abs().max().item())
            print(f"crosscheck {name}: official vs reference max |logits diff| = {worst:.3e}")
            assert worst < 1e-4, name

        # Full-size: same parameter names and counts as the official registrations.
        for name, c in ref.NAT_CONFIGS.items():
            o = getattr(official_nat, name)()
            m = ref.NAT(**c)
            assert [k for k in o.state_dict()] == [k for k in m.state_dict()], name
            print(f"crosscheck {name}: official params {sum(p.numel() for p in o.parameters())}")
        for name, c in ref.BIFORMER_CONFIGS.items():
            o = getattr(official_bif, name)()
            m = ref.BiFormer(**c)
            assert [k for k in o.state_dict()] == [k for k in m.state_dict()], name
            print(f"crosscheck {name}: official params {sum(p.numel() for p in o.parameters())}")


if __name__ == "__main__":
    generate()
    if "--crosscheck" in sys.argv:
        crosscheck()
