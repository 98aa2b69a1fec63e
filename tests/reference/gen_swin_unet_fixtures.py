"""Generate the Swin-UNet and Att-SwinU-Net fixtures into tests/fixtures/swin_unet/ (from the repo root).

    tests/reference/export_seg_official.sh                  # once: the pinned official files
    /work/venv/bin/python tests/reference/gen_swin_unet_fixtures.py [OFFICIAL_DIR]

The reference is the OFFICIAL `SwinTransformerSys` of github.com/HuCaoFighting/Swin-Unet
(`networks/swin_transformer_unet_skip_expand_decoder_sys.py` @ f48f623e, blob-checked below),
built with small widths, random weights (fixture_utils.py), in eval mode. The official model
takes exactly `img_size`; gaze takes any size by zero-padding evenly to a multiple of 32 and
cropping back. `Padded` (a subclass, so the state-dict keys stay the official ones) does the
same padding around the official forward, so sizes that pad to `img_size` are compared too.

Fixtures (layout, weights, inputs: fixture_utils.py), each with `output_<HxW>` ([2, classes, H,
W] logits) and `feature<i>_<HxW>` (the skips the decoder reads, x_downsample[0..2], and the
normalised bottleneck, NCHW, of the padded input):

* tiny_w4:   img_size 64, window 4 (stage resolutions 16, 8, 4, 2: stages 0-1 shifted, stage 2
             one 4x4 window, stage 3 clipped to 2x2), embed 8, heads 1-2-2-4, 3 classes;
             64x64 and 61x50 (padded to 64x64)
* tiny_w7:   the official geometry, img_size 224, window 7 (56, 28, 14, 7: the bottleneck one
             unshifted 7x7 window), embed 12, heads 1-2-3-6, 1 class; 224x224 and 211x200

`encoder_map.json`: the official `SwinUnet.load_from` run on a Microsoft-layout Swin
classification checkpoint of the tiny_w4 geometry with depths 2-2-3-2 (so stage 2's third block
has no place) and a 5-class head: for every parameter of the Swin-UNet, the checkpoint key whose
tensor it received (found by value: every random tensor is distinct), or null when it keeps its
initialisation; plus the checkpoint's keys and the same checkpoint renamed to timm's layout
(patch merging at the start of the next stage, `head.fc`, no buffers).

Att-SwinU-Net: the OFFICIAL `SwinAttentionUnet` of github.com/NITR098/AttSwinUNet (`model/` @
4b14f377, blob-checked), mode `cross_contextual_attention`, which cannot be built as published;
the three smallest fixes, applied from here without editing its files:
* its `Decoder` tests `self.isxvit`, never set, before building the cross-contextual modules:
  the class gets `isxvit = '1'`;
* its `Decoder.__init__` loads an unused XCiT checkpoint from ./pretrained_ckpt (on CUDA):
  `torch.load` returns an empty one while the model is built;
* it never passes `num_classes` to the `Decoder` (always 9 outputs): the output convolution is
  replaced by one with the fixture's class count.
Its decoder is hard-wired to 224x224 (`Decoder(img_size=224)`), so the fixtures are at 224
(and at odd sizes padded to 224 by `Padded` as above):
* att_tiny:  embed 12, depths 2-2-4-2, heads 1-2-3-6, window 7, skip_num '2' (cross-contextual
             attention on the two deepest skips, the finest one fused plainly), 2 classes,
             cross attention 8 heads x 16 channels (a fourth change: the official decoder
             hard-codes 64 channels per head, which the registered model keeps); 224x224 and
             203x217
Features: its encoder's skips x_downsample[0..2] and the normalised bottleneck, as above.

The Swin blocks' `relative_position_index` and `attn_mask` buffers are made non-persistent before
saving (PyTorch's own flag; gaze recomputes both), which keeps them out of the fixture files.

`param_counts.json`: the official parameter counts of the registered `swin_unet` (1 class; the
log also prints the paper's 9-class Synapse model's) and `att_swin_unet` (1 class, without the
two modules the official code builds but never runs: the top-level `patch_embed` and
`decoder.norm`).
"""
import hashlib
import importlib
import json
import os
import sys
import tempfile
import types

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import crosscheck_cnn_official as cc  # noqa: E402
import fixture_utils as fu  # noqa: E402

OUT = os.path.join(HERE, "..", "fixtures", "swin_unet")
REPO = "HuCaoFighting+Swin-Unet"
COMMIT = "f48f623e226e25b6e395c37207915c50aaa9c776"
FILES = {
    "networks/swin_transformer_unet_skip_expand_decoder_sys.py": "606370fca273e3c469502a2d981f8221f09a5691",
    "networks/vision_transformer.py": "29b43eab567895dc7fa2ae39f0766fb84da13d08",
}
MULTIPLE = 32
ATT_REPO = "NITR098+AttSwinUNet"
ATT_COMMIT = "4b14f377066acea7ad255d9a8bb022245c3ff34d"
ATT_FILES = {
    "model/__init__.py": "4a9be7d34dca5d73ceb66175a4abf7bad0799ac0",
    "model/attention.py": "75667a47d847969dae808ca62c1d924e0ecb0153",
    "model/attention_swin_unet.py": "1ba0825921ab10b38d2e4e7f04bcbf169384d2b8",
    "model/decoder.py": "d18e07bdde57f6f49d5097af590cbd9c27f512f2",
    "model/embedding.py": "323c1ea9cf0278e56db3f321662c26911b40577d",
    "model/encoder.py": "eca561ed74da142619329a1ab0114bbdfb57e6e4",
    "model/partitioning.py": "4fd9ab21e6fdba0509b04f5430da3f42ed996506",
    "model/swin_block.py": "7447a44ce6dd8a16bdede797f96ae9d40c09af86",
    "model/skipconnection/crossvit.py": "49dc5a65002a80f3e31fed3f711b4a36c01768ba",
}
DEAD = ("patch_embed.", "decoder.norm.")


def verify(official_dir, repo, commit, files):
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


def load_official(official_dir):
    d = verify(official_dir, REPO, COMMIT, FILES)
    with cc.stub_packages({"networks": os.path.join(d, "networks")}):
        sysmod = importlib.import_module("networks.swin_transformer_unet_skip_expand_decoder_sys")
        vt = importlib.import_module("networks.vision_transformer")
    d = verify(official_dir, ATT_REPO, ATT_COMMIT, ATT_FILES)
    with cc.stub_packages({"model": os.path.join(d, "model"),
                           "model.skipconnection": os.path.join(d, "model", "skipconnection")}):
        att = importlib.import_module("model.attention_swin_unet")
        att_decoder = sys.modules["model.decoder"]
    return sysmod, vt, att, att_decoder


def drop_buffers(model):
    for m in model.modules():
        for name in ("attn_mask", "relative_position_index"):
            if name in m._buffers:
                m._non_persistent_buffers_set.add(name)
    return model


def build_att(att, att_decoder, cls, num_classes, skip_num, dim_head=64, **kw):
    """The official SwinAttentionUnet (cross_contextual_attention) with the three fixes of the
    module docstring."""
    config = types.SimpleNamespace(image_size=224, patch_size=4, window_size=7, mlp_ratio=4.0, qkv_bias=True,
                                   qk_scale=None, drop_rate=0.0, drop_path_rate=0.0, ape=False, patch_norm=True,
                                   use_checkpoint=False, mode="cross_contextual_attention", skip_num=skip_num,
                                   operationaddatten="+", spatial_attention="1", **kw)
    att_decoder.Decoder.isxvit = "1"
    load, cross = torch.load, att_decoder.CrossTransformer
    torch.load = lambda *a, **k: {"model": {}}
    att_decoder.CrossTransformer = lambda **a: cross(**{**a, "dim_head": dim_head})
    try:
        m = cls(config, num_classes)
    finally:
        torch.load, att_decoder.CrossTransformer = load, cross
    m.decoder.output = torch.nn.Conv2d(config.embed_dim, num_classes, kernel_size=1, bias=False)
    m.decoder.num_classes = num_classes
    m.img_size_ = 224
    return m.eval()


def live_params(m):
    return sum(p.numel() for k, p in m.named_parameters() if not k.startswith(DEAD))


def even_padding(h, w):
    ph = -h % MULTIPLE
    pw = -w % MULTIPLE
    return ph // 2, ph - ph // 2, pw // 2, pw - pw // 2


def padded_class(base, split):
    class Padded(base):
        """The official model with gaze's padding around it (state-dict keys unchanged)."""

        def pad(self, x):
            h, w = x.shape[-2:]
            top, bottom, left, right = even_padding(h, w)
            x = F.pad(x, (left, right, top, bottom))
            assert x.shape[-1] == x.shape[-2] == self.img_size_, (x.shape, self.img_size_)
            return x, (top, left, h, w)

        def forward(self, x):
            x, (top, left, h, w) = self.pad(x)
            y = super().forward(x)
            return y[:, :, top:top + h, left:left + w]

        def intermediates(self, x):
            x, _ = self.pad(x)
            bottleneck, skips = split(self, x)
            maps = list(skips[:-1]) + [bottleneck]
            out = []
            for t in maps:
                b, n, c = t.shape
                s = int(round(n ** 0.5))
                out.append(t.view(b, s, s, c).permute(0, 3, 1, 2))
            return out

    return Padded


def build(cls, img_size, **kw):
    m = cls(img_size=img_size, patch_size=4, in_chans=3, mlp_ratio=4.0, qkv_bias=True, qk_scale=None,
            drop_rate=0.0, drop_path_rate=0.0, ape=False, patch_norm=True, **kw)
    m.img_size_ = img_size
    return m.eval()


FIXTURES = {
    "tiny_w4": (dict(img_size=64, embed_dim=8, depths=[2, 2, 2, 2], num_heads=[1, 2, 2, 4], window_size=4,
                     num_classes=3), [(64, 64), (61, 50)]),
    "tiny_w7": (dict(img_size=224, embed_dim=12, depths=[2, 2, 2, 2], num_heads=[1, 2, 3, 6], window_size=7,
                     num_classes=1), [(224, 224), (211, 200)]),
    "att_tiny": (dict(num_classes=2, skip_num="2", embed_dim=12, depths=[2, 2, 4, 2], num_heads=[1, 2, 3, 6]),
                 [(224, 224), (203, 217)]),
}
# The fixtures' cross-contextual attention is narrowed from 8 x 64 to 8 x 16 channels (the
# official Decoder hard-codes 64; the registered model keeps it, checked by its parameter count).
FIXTURE_DIM_HEAD = 16
ATT_FULL = dict(embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24])


def encoder_map(sysmod, vt):
    """The official load_from on a Microsoft-layout classification checkpoint (tiny_w4 geometry,
    depths 2-2-3-2, 5 classes): which checkpoint key fills each Swin-UNet parameter."""
    torch.manual_seed(7)
    # A Microsoft-layout Swin classifier's encoder has exactly SwinTransformerSys's encoder keys
    # (patch_embed, layers.i.blocks / downsample at the end, norm); its head is `head`.
    donor = sysmod.SwinTransformerSys(img_size=64, patch_size=4, in_chans=3, num_classes=5, embed_dim=8,
                                      depths=[2, 2, 3, 2], num_heads=[1, 2, 2, 4], window_size=4)
    ckpt = {k: v for k, v in donor.state_dict().items() if k.startswith(("patch_embed.", "layers.", "norm."))}
    ckpt["head.weight"] = torch.randn(5, 64)
    ckpt["head.bias"] = torch.randn(5)
    for k, v in ckpt.items():  # distinct values, so the filled tensors can be traced back
        if v.is_floating_point():
            v.copy_(torch.randn_like(v))

    config = types.SimpleNamespace(
        DATA=types.SimpleNamespace(IMG_SIZE=64),
        MODEL=types.SimpleNamespace(
            SWIN=types.SimpleNamespace(PATCH_SIZE=4, IN_CHANS=3, EMBED_DIM=8, DEPTHS=[2, 2, 2, 2],
                                       NUM_HEADS=[1, 2, 2, 4], WINDOW_SIZE=4, MLP_RATIO=4.0, QKV_BIAS=True,
                                       QK_SCALE=None, APE=False, PATCH_NORM=True),
            DROP_RATE=0.0, DROP_PATH_RATE=0.0, PRETRAIN_CKPT=None),
        TRAIN=types.SimpleNamespace(USE_CHECKPOINT=False))
    net = vt.SwinUnet(config, img_size=64, num_classes=1)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "swin.pth")
        torch.save({"model": ckpt}, path)
        config.MODEL.PRETRAIN_CKPT = path
        net.load_from(config)
    filled = {}
    for key, value in net.swin_unet.named_parameters():
        src = [k for k, v in ckpt.items() if v.shape == value.shape and torch.equal(v, value.detach())]
        assert len(src) <= 1, (key, src)
        filled[key] = src[0] if src else None

    def timm_name(k):
        parts = k.split(".")
        if parts[0] == "layers" and parts[2] == "downsample":
            parts[1] = str(int(parts[1]) + 1)
        if parts[0] == "head":
            parts.insert(1, "fc")
        return ".".join(parts)

    timm_keys = [timm_name(k) for k in ckpt if not k.endswith(("relative_position_index", "attn_mask"))]
    n = sum(v is not None for v in filled.values())
    print(f"== encoder_map: {n} of {len(filled)} parameters filled by load_from")
    return {"checkpoint_keys": list(ckpt), "timm_checkpoint_keys": timm_keys, "filled": filled}


def main():
    official_dir = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("OFFICIAL_DIR", "/tmp/official")
    sysmod, vt, att, att_decoder = load_official(official_dir)
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    full = dict(img_size=224, embed_dim=96, depths=[2, 2, 2, 2], num_heads=[3, 6, 12, 24], window_size=7)
    counts = {"swin_unet": sum(p.numel() for p in build(sysmod.SwinTransformerSys, num_classes=1,
                                                         **full).parameters()),
              "att_swin_unet": live_params(build_att(att, att_decoder, att.SwinAttentionUnet, 1, "3", **ATT_FULL))}
    synapse = sum(p.numel() for p in build(sysmod.SwinTransformerSys, num_classes=9, **full).parameters())
    print(f"the paper's 9-class Synapse model: {synapse} parameters")
    with open(os.path.join(OUT, "param_counts.json"), "w") as f:
        json.dump(counts, f, indent=1, sort_keys=True)
        f.write("\n")
    print("full-size parameter counts:", counts)

    Padded = padded_class(sysmod.SwinTransformerSys, lambda m, x: m.forward_features(x))
    AttPadded = padded_class(att.SwinAttentionUnet, lambda m, x: m.encoder(x)[:2])
    constants = {}
    for i, (name, (kw, sizes)) in enumerate(FIXTURES.items()):
        torch.manual_seed(500 + i)
        if name.startswith("att_"):
            model = drop_buffers(build_att(att, att_decoder, AttPadded, dim_head=FIXTURE_DIM_HEAD, **kw))
        else:
            model = drop_buffers(build(Padded, **kw))

        def run(model, size, x):
            return model(x), model.intermediates(x)

        head = "decoder.output" if name.startswith("att_") else "output"
        _, consts = fu.make_fixture(OUT, name, model, 500 + i, sizes, run=run, head=[head], head_rms=1.0,
                                    output_key="output")
        # The modules Att-SwinU-Net builds and never runs have no counterpart in gaze.
        dead = ("patch_embed.norm", "decoder.norm") if name.startswith("att_") else ()
        for kind in consts.values():
            for value, paths in kind.items():
                kind[value] = [p for p in paths if p not in dead]
        constants[name] = {k: {v: p for v, p in kind.items() if p} for k, kind in consts.items()}
    with open(os.path.join(OUT, "encoder_map.json"), "w") as f:
        json.dump(encoder_map(sysmod, vt), f, indent=1)
        f.write("\n")
    registered = {"swin_unet": fu.model_constants(build(sysmod.SwinTransformerSys, num_classes=1, **full)),
                  "att_swin_unet": fu.model_constants(build_att(att, att_decoder, att.SwinAttentionUnet, 1, "3",
                                                                **ATT_FULL))}
    print("wrote", fu.write_constants(OUT, constants, registered))


if __name__ == "__main__":
    main()
