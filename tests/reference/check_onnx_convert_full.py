"""Full-size check of the ONNX path as a user meets it (not run by CI: needs torch):

    GAZE=target/release/gaze /work/venv/bin/python tests/reference/check_onnx_convert_full.py [MODEL...]

For each registered timm model, and the official code of the SR families (pinned sources in
$OFFICIAL_DIR, default /tmp/official, from export_sr_official.sh): build it with random weights (BatchNorm statistics and affines
randomised so that folding is not trivial; LayerNorms left at ones/zeros so that the exporters
merge equal tensors), export it with the TorchScript exporter at opsets 17 and 18 and the dynamo
exporter at opset 18 (its default; asking for 17 gives the same file or a failed conversion),
run `gaze convert --model NAME FILE.onnx OUT.safetensors`, load OUT into a fresh timm model with
`load_state_dict(strict=True)` and compare its output with the exported model's: the largest
difference must stay within 1e-4 of the output scale. Exports that PyTorch itself cannot write
(HaloNet's Unfold under the TorchScript exporter) are listed as skipped. The log is
tests/reference/logs/check_onnx_convert_full.log.

Segmentation nets and the token-mixing classifiers (OTHER), each at its registered full-size
configuration (the one `gaze convert --model NAME` builds), from the same reference code as the
fixture scripts, all at 224x224:

* unet, attention_unet: `RefUNet` with gen_unet_fixtures.REGISTERED's kwargs, wired from the
  official LeeJunHyun/Image_Segmentation modules (crosscheck_cnn_official.load_official; the
  pinned files of export_official.sh under $OFFICIAL_DIR);
* unet_resnet18, unet_swin_tiny_patch4_window7_224: smp 0.6.0's `Unet("tu-<encoder>",
  classes=1)` with its default decoder, as gen_encoder_unet_fixtures.py counts them;
* swin_unet, att_swin_unet: the official SwinTransformerSys (1 class) and SwinAttentionUnet
  (skip_num "3", 1 class, with gen_swin_unet_fixtures.build_att's fixes; export_seg_official.sh);
* cbam_resnet18, triplet_resnet18, fca_resnet18, psa_resnet18: timm's ResNet with the attention
  module gen_resnet_fixtures.FULL gives it (timm's CBAM; the reference triplet attention, FcaNet
  layer and PSA of attn_official_reference.py);
* nat_mini, biformer_tiny: token_official_reference.py's pure-PyTorch NAT / BiFormer (the
  official NAT needs natten, whose ops do not export), NAT's `rpb` drawn as NATTEN initialises
  it (trunc_normal, std 0.02; the reference leaves it at zero), BiFormer with auto_pad as gaze
  registers it (a no-op at 224);
* unet_nat_mini: smp's `Unet` (default decoder, 1 class) on that NAT, registered as a custom smp
  encoder returning what TimmUniversalEncoder returns for a transformer-style pyramid.
"""
import functools
import os
import re
import subprocess
import sys
import tempfile
import time
import warnings

import timm
import torch
from safetensors.torch import load_file

GAZE = os.environ.get("GAZE") or os.path.join(
    os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/gaze-target")), "release", "gaze")
MODELS = {
    "resnet18": 224, "seresnet18": 224, "ecaresnet26t": 224, "resnest14d": 224, "vit_tiny_patch16_224": 224,
    "deit_tiny_patch16_224": 224, "swin_tiny_patch4_window7_224": 224, "levit_128s": 224, "halonet26t": 256,
}
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def official_sr(name):
    """The official SR networks (pinned sources, /tmp/official: export_sr_official.sh), as the
    fixture scripts build them at full size."""
    d = os.environ.get("OFFICIAL_DIR", "/tmp/official")
    family, scale = name.rsplit("_x", 1)
    scale = int(scale)
    if family == "imdn":
        import gen_imdn_fixtures as g
        return g.load_official(d)[0].IMDN(upscale=scale)
    if family == "a2n":
        import gen_a2n_fixtures as g
        return g.build(g.load_official(d)[0], scale)
    if family in ("vapsr", "vapsr_s"):
        import gen_vapsr_fixtures as g
        kw, _ = g.REGISTERED[name]
        return g.load_official(d).vapsr(3, 3, **kw)
    if family in ("bsrn", "bsrn_s"):
        import gen_bsrn_fixtures as g
        cls, kw, _ = g.REGISTERED[name]
        b, rfdn, _ = g.load_official(d)
        module = b if cls == "BSRN" else rfdn
        return g.quiet(getattr(module, cls), num_in_ch=3, num_out_ch=3, conv="BSConvU", **kw)
    if family in ("rcan", "han"):
        import gen_rcan_han_fixtures as g
        return g.build(g.load_official(d, family), scale)
    if family in ("hat", "hat_s"):
        import gen_hat_fixtures as g
        return g.full_model(g.load_official(d), family, scale)
    raise KeyError(name)


def residual_attention_56():
    """Residual Attention Network 56 (the re-implementation cross-checked against the official
    code, attn_sr_reference.py)."""
    from attn_sr_reference import ResidualAttentionModel_56
    return ResidualAttentionModel_56()


OFFICIAL_DIR = os.environ.get("OFFICIAL_DIR", "/tmp/official")


@functools.lru_cache(maxsize=None)
def cnn_official():
    import crosscheck_cnn_official as cc
    cc.verify_checkouts(OFFICIAL_DIR)
    return cc.load_official(OFFICIAL_DIR)


@functools.lru_cache(maxsize=None)
def seg_official():
    import gen_swin_unet_fixtures as g
    return g.load_official(OFFICIAL_DIR)


def lee_unet(name):
    """gen_unet_fixtures.RefUNet from the official LeeJunHyun modules, registered kwargs."""
    import gen_unet_fixtures as g
    return g.RefUNet(cnn_official(), **g.REGISTERED[name])


def smp_unet(name):
    """smp's Unet with a timm encoder, as gen_encoder_unet_fixtures.py counts the registered ones."""
    import segmentation_models_pytorch as smp
    from gen_encoder_unet_fixtures import encoder_kwargs
    base, kw = encoder_kwargs(name[len("unet_"):])
    return smp.Unet(f"tu-{base}", encoder_weights=None, classes=1, **kw)


def swin_unet(name):
    """The official Swin-UNet / Att-SwinU-Net as gen_swin_unet_fixtures.py registers them."""
    import gen_swin_unet_fixtures as g
    sysmod, _, att, att_decoder = seg_official()
    if name == "swin_unet":
        return g.build(sysmod.SwinTransformerSys, num_classes=1, img_size=224, embed_dim=96, depths=[2, 2, 2, 2],
                       num_heads=[3, 6, 12, 24], window_size=7)
    return g.build_att(att, att_decoder, att.SwinAttentionUnet, 1, "3", **g.ATT_FULL)


def nat(name):
    import token_official_reference as ref
    m = ref.NAT(**ref.NAT_CONFIGS[name])
    for mod in m.modules():  # NATTEN's own init of the table (the reference leaves zeros)
        if isinstance(mod, ref.NeighborhoodAttention2D):
            torch.nn.init.trunc_normal_(mod.rpb, std=0.02, mean=0.0, a=-2.0, b=2.0)
    return m


def nat_unet(name):
    """smp's Unet on the reference NAT: registered as a custom smp encoder that returns what
    smp's TimmUniversalEncoder returns for a transformer-style pyramid (the input, an empty
    stride-2 level, the four levels before their downsamplers), the NAT under `model` as timm
    encoders sit."""
    import segmentation_models_pytorch as smp

    nat_name = name[len("unet_"):]

    class NatEncoder(torch.nn.Module):
        def __init__(self, depth=5, output_stride=32):
            super().__init__()
            self.model = nat(nat_name)
            self.model.head = torch.nn.Identity()
            dim = self.model.num_features // 8
            self.out_channels = [3, 0, dim, 2 * dim, 4 * dim, 8 * dim]
            self.output_stride = output_stride

        def set_in_channels(self, in_channels, pretrained=False):
            assert in_channels == 3

        def forward(self, x):
            b, _, h, w = x.shape
            return [x, x.new_empty(b, 0, h // 2, w // 2)] + self.model.forward_intermediates(x)

    smp.encoders.encoders[name] = {"encoder": NatEncoder, "pretrained_settings": {}, "params": {}}
    return smp.Unet(name, encoder_weights=None, classes=1)


def biformer(name):
    import token_official_reference as ref
    return ref.BiFormer(**ref.BIFORMER_CONFIGS[name], auto_pad=True)


def attention_resnet(name):
    """The ResNets with the attention kinds timm lacks (or names otherwise), as the fixture script
    builds them: timm's ResNet with the reference attention module."""
    import gen_resnet_fixtures as g
    from timm.models.resnet import ResNet
    return ResNet(**g.FULL[name])


# RAN: its identity-shortcut conv4 layers exist in the state dict but the forward never uses them,
# so no graph holds them; gaze finds them by a backward pass and writes zeros (same outputs).
OTHER = {"attention56": (224, residual_attention_56)}
for _name, _build in [("unet", lee_unet), ("attention_unet", lee_unet), ("unet_resnet18", smp_unet),
                      ("unet_swin_tiny_patch4_window7_224", smp_unet), ("swin_unet", swin_unet),
                      ("att_swin_unet", swin_unet), ("nat_mini", nat), ("unet_nat_mini", nat_unet),
                      ("biformer_tiny", biformer),
                      ("cbam_resnet18", attention_resnet), ("triplet_resnet18", attention_resnet),
                      ("fca_resnet18", attention_resnet), ("psa_resnet18", attention_resnet)]:
    OTHER[_name] = (224, functools.partial(_build, _name))
# Parameters of modules the official code builds but never runs: no graph holds them and gaze
# has no place for them, so they stay missing (the fresh model keeps its own, unused, values).
# Att-SwinU-Net: the top-level `patch_embed` (its encoder has its own) and `decoder.norm`
# (gen_swin_unet_fixtures.DEAD; the registered parameter count leaves both out).
NEVER_RUN = {"att_swin_unet": r"^(patch_embed|decoder\.norm)\."}
SR = {"imdn_x4": 32, "a2n_x4": 32, "vapsr_x4": 32, "bsrn_x4": 32, "rcan_x4": 32, "han_x4": 32, "hat_s_x4": 32}
EXPORTS = [("torchscript", False, 17), ("torchscript", False, 18), ("dynamo", True, 18)]
# Other exporters/opsets: OPSETS="torchscript:19,torchscript:20,dynamo:20" (the log name says so).
if os.environ.get("OPSETS"):
    EXPORTS = [(e, e == "dynamo", int(o)) for e, o in (x.split(":") for x in os.environ["OPSETS"].split(","))]


def randomise(model, seed):
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            c = m.num_features
            m.running_mean.copy_(0.1 * torch.randn(c, generator=g))
            m.running_var.copy_(0.5 + torch.rand(c, generator=g))
            m.weight.data.copy_(0.5 + torch.rand(c, generator=g))
            m.bias.data.copy_(0.1 * torch.randn(c, generator=g))


def main():
    names = sys.argv[1:] or list(MODELS) + list(OTHER) + list(SR)
    # The default set writes the log; a run on named models writes its own.
    suffix = "" if not sys.argv[1:] else "_" + "_".join(sys.argv[1:])[:60]
    if os.environ.get("OPSETS"):
        suffix += "_opsets_" + os.environ["OPSETS"].replace(":", "").replace(",", "_")
    log_path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "logs",
                            f"check_onnx_convert_full{suffix}.log")
    lines = [f"torch {torch.__version__}, timm {timm.__version__}, gaze {GAZE}"]
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i, name in enumerate(names):
            size = MODELS.get(name, 224)
            torch.manual_seed(i)
            if name in SR:
                size, build = SR[name], (lambda: official_sr(name))
            elif name in OTHER:
                size, build = OTHER[name]
            else:
                build = lambda: timm.create_model(name, pretrained=False)  # noqa: E731
            model = build().eval()
            with torch.no_grad():
                randomise(model, i)
            x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(100 + i))
            with torch.no_grad():
                y = model(x)
            scale = float(y.abs().max())
            for exporter, dynamo, opset in EXPORTS:
                path = os.path.join(tmp, f"{name}__{exporter}_op{opset}.onnx")
                t0 = time.time()
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        torch.onnx.export(model, (x,), path, dynamo=dynamo, opset_version=opset)
                except Exception as e:  # a PyTorch exporter limit, not gaze's
                    lines.append(f"skip {name} {exporter} op{opset}: torch.onnx.export fails: "
                                 f"{str(e).strip().splitlines()[0][:160]}")
                    print(lines[-1], flush=True)
                    continue
                out = os.path.join(tmp, f"{name}.safetensors")
                r = subprocess.run([GAZE, "convert", "--model", name, path, out], capture_output=True, text=True)
                if r.returncode != 0:
                    failures += 1
                    lines.append(f"FAIL {name} {exporter} op{opset}: gaze convert: {r.stderr.strip()}")
                    print(lines[-1], flush=True)
                    continue
                fresh = build().eval()
                # Index buffers, masks and filters computed at init (HAT's
                # relative_position_index_*, attn_mask, FcaNet's DCT filter) are not weights: gaze leaves them out, and NEVER_RUN's modules.
                # Nothing else may differ.
                # nn.Module's own: RCAN and HAN override load_state_dict (EDSR style).
                result = torch.nn.Module.load_state_dict(fresh, load_file(out), strict=False)
                assert not result.unexpected_keys, result.unexpected_keys
                missing_ok = r"(relative_position_index|attn_mask|dct_layer\.weight)"
                if name in NEVER_RUN:
                    missing_ok += "|" + NEVER_RUN[name]
                assert all(re.search(missing_ok, k) for k in result.missing_keys), result.missing_keys
                with torch.no_grad():
                    diff = float((fresh(x) - y).abs().max())
                ok = diff <= 1e-4 * max(1.0, scale)
                failures += not ok
                how = [h for h in r.stderr.strip().splitlines() if "recovered" in h or "wrote" in h]
                lines.append(f"{'ok  ' if ok else 'FAIL'} {name} {exporter} op{opset}: max|diff| {diff:.2e} "
                             f"(|y| max {scale:.2f}); {how[0] if how else ''} [{time.time() - t0:.0f} s]")
                print(lines[-1], flush=True)
                for f in (path, path + ".data", out):
                    if os.path.exists(f):
                        os.remove(f)
    lines.append(f"{failures} failures")
    with open(log_path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(lines[-1])
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
