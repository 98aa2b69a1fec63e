"""Export tiny reference models to ONNX as users do, into tests/fixtures/onnx/ (run from the
repo root):

    /work/venv/bin/python tests/reference/gen_onnx_fixtures.py

Each model is the reference module of an existing parity fixture (same class, same
configuration) loaded with that fixture's weights, so the Rust test compares what gaze
recovers from the ONNX graph with the logits / SR output already stored in the parity fixture
(computed in float64 by PyTorch). Families: CNNs with BatchNorm (ResNet + SE; deep-stem ResNets + ECA, + PSA), a ViT, a Swin
(relative-position tables), a LeViT (BatchNorm linears, attention-bias tables), an SR net (PAN),
a NAT (relative-position bias looked up by position pairs).

Every model is exported in eval mode with both exporters at opsets 17 and 18, exactly as
`torch.onnx.export` writes by default (TorchScript: `dynamo=False`, constant folding on, BN
folded into convs, MatMul weights transposed and renamed; dynamo: `dynamo=True`, external data
`<file>.onnx.data`, folded BN as `…weight_bias`, gathered tables). dynamo asked for opset 17
exports at 18 and down-converts with the onnx C API, which fails for most graphs (ResNet, ViT,
Swin, LeViT: the file stays at 18 and is not kept twice; exports.json says so); where it works
(PAN, BSRN-S) the converted file has lost the node metadata, so no module scopes: recovery then
rests on initializer names and forward order.

Checks (asserted): onnxruntime runs every file and matches the PyTorch output within 1e-4 (the
files are faithful exports), and, except for PAN (convs without norms keep their names), the
weights are NOT all stored under the state dict's names (so the test exercises the graph
recovery, not the by-name reading).

Versions: torch 2.15.0, timm 1.0.31, onnx 1.23.2, onnxscript 0.7.2, onnxruntime 1.32.0.
"""
import json
import os
import sys
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import torch
from safetensors.torch import load_file, save_file
from timm.models.levit import LevitDistilled
from timm.models.resnet import Bottleneck, ResNet
from timm.models.swin_transformer import SwinTransformer
from timm.models.vision_transformer import VisionTransformer

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fixture_utils as fu  # noqa: E402
from pan_reference import PAN  # noqa: E402
from attn_sr_reference import ResidualAttentionModel  # noqa: E402
from gen_ran_fixtures import TINY_WIDTH as RAN_TINY_WIDTH  # noqa: E402
import gen_bsrn_fixtures as bsrn_fixtures  # noqa: E402
import gen_nat_biformer_fixtures as nat_fixtures  # noqa: E402
import gen_resnet_fixtures as resnet_fixtures  # noqa: E402
import token_official_reference as token_ref  # noqa: E402

_official = {}


def rfdn():
    """The official BSRN repository's RFDNFINALB5 (BSRN-S; pinned, see gen_bsrn_fixtures.py)."""
    if not _official:
        _official["rfdn"] = bsrn_fixtures.load_official(fu.official_dir_arg())[1]
    return _official["rfdn"]


def bsrn_s(scale, num_feat):
    return bsrn_fixtures.quiet(rfdn().RFDNFINALB5, num_in_ch=3, num_feat=num_feat, num_block=5, num_out_ch=3,
                               upscale=scale, conv="BSConvU")

FIXTURES = os.path.join(HERE, "..", "fixtures")
OUT = os.path.join(FIXTURES, "onnx")

# name: (parity fixture, builder, input size, output key)
MODELS = {
    "resnet_se": ("resnet/bottleneck_plain_se",
                  lambda: ResNet(block=Bottleneck, layers=(1, 2, 1, 1), block_args=dict(attn_layer="se"),
                                 channels=(8, 8, 16, 16), num_classes=10), (56, 56), "logits"),
    # The deep stem `conv1` = Sequential(conv, bn, act, conv, bn, act, conv) ends in a conv
    # without bias whose norm is the top-level `bn1`: folded across modules.
    "resnet_deep_eca": ("resnet/bottleneck_d_eca",
                        lambda: ResNet(**resnet_fixtures.TINY["bottleneck_d_eca"]), (29, 23), "logits"),
    # PSA's `conv_up` holds a LayerNorm over [c, 1, 1]: no 1-D norm, its weights are free tensors.
    "resnet_psa": ("resnet/basic_d_psa_s",
                   lambda: ResNet(**resnet_fixtures.TINY["basic_d_psa_s"]), (29, 23), "logits"),
    "vit": ("vit/tiny",
            lambda: VisionTransformer(img_size=64, patch_size=16, embed_dim=32, depth=4, num_heads=2,
                                      num_classes=10, dynamic_img_size=True), (64, 64), "logits"),
    "swin": ("swin/tiny",
             lambda: SwinTransformer(img_size=64, patch_size=4, embed_dim=6, depths=(2, 2, 2, 2),
                                     num_heads=(1, 2, 2, 4), window_size=4, num_classes=10,
                                     strict_img_size=False), (64, 64), "logits"),
    "levit": ("levit/tiny_distilled",
              lambda: LevitDistilled(img_size=64, num_classes=10, embed_dim=(16, 24, 32), key_dim=8,
                                     num_heads=(2, 2, 2), depth=(1, 1, 1)), (64, 64), "logits"),
    "pan_x2": ("pan/pan_x2", lambda: PAN(in_nc=3, out_nc=3, nf=8, unf=6, nb=2, scale=2), (12, 12), "output"),
    # BSRN-S: 1x1 layers are nn.Linear on channels-last maps (MatMul, transposed), `cw` weights.
    "bsrn_s": ("bsrn/bsrn_s_x2", lambda: bsrn_s(2, 8), (15, 23), "output"),
    # RAN: pre-activation units whose identity-shortcut projection `conv4` is built but never
    # run, so no export holds it (gaze finds those layers by a backward pass and zero-fills them).
    "ran": ("ran/attention56_imagenet",
            lambda: ResidualAttentionModel(56, False, input_size=(29, 23), **RAN_TINY_WIDTH), (29, 23), "logits"),
    # NAT: the TorchScript exporter stores each `rpb` [heads, 5, 5] moved to [5, 5, heads] (the
    # advanced index `rpb[:, i, j]`), dynamo folds the small levels' lookups into one constant
    # [heads, H, W, 3, 3]; a non-square input so that rows and columns differ.
    "nat": ("nat_biformer/nat_plain", lambda: token_ref.NAT(**nat_fixtures.VARIANTS["nat_plain"][2]), (112, 80),
            "logits"),
}

# A registered full-size model for the Model / CLI path (`gaze convert`, `load_weights`): the
# official BSRN-S x4 network with its default random initialisation, exported by the default
# exporter (dynamo, opset 18, external data); its output on the deterministic 15x15 batch is
# stored beside it (`bsrn_s_x4.safetensors`, key `output_15x15`), computed in float64.
REGISTERED = ("bsrn_s_x4", lambda: bsrn_s(4, 48), (15, 15))
EXPORTS = [("torchscript", False, 17), ("torchscript", False, 18), ("dynamo", True, 17), ("dynamo", True, 18)]


def build(name):
    fixture, builder, size, key = MODELS[name]
    model = builder().eval()
    stored = load_file(os.path.join(FIXTURES, fixture + ".safetensors"))
    sd = model.state_dict()
    weights = {k: stored[k] for k in sd if k in stored}
    missing = [k for k in sd if k not in weights and not k.endswith("num_batches_tracked")
               and sd[k].is_floating_point()]
    assert not missing, f"{name}: fixture lacks {missing[:5]}"
    model.load_state_dict(weights, strict=False)
    x = fu.batch_input(size)
    expected = stored[f"{key}_{fu.tag(size)}"]
    return model, x, expected


def write_export(model, x, path, dynamo, opset):
    """torch.onnx.export with its defaults but the exporter and opset, over any stale file."""
    for stale in (path, path + ".data"):
        if os.path.exists(stale):
            os.remove(stale)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), path, dynamo=dynamo, opset_version=opset)


def export(name, exporter, dynamo, opset):
    model, x, expected = build(name)
    path = os.path.join(OUT, f"{name}__{exporter}_op{opset}.onnx")
    write_export(model, x, path, dynamo, opset)
    with torch.no_grad():
        y = model(x)
    y = y.reshape(expected.shape)
    assert (y - expected).abs().max() < 1e-4, f"{name}: the module does not reproduce its parity fixture"
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    diff = float(np.abs(out.reshape(expected.shape) - expected.numpy()).max())
    assert diff < 1e-4, f"{path}: onnxruntime differs from PyTorch by {diff}"
    proto = onnx.load(path, load_external_data=False)
    names = {i.name for i in proto.graph.initializer}
    state = [k for k, v in model.state_dict().items() if v.is_floating_point()]
    kept = sum(k in names for k in state)
    # The port's pre-activation units keep every running layer's name, but the never-run
    # `conv4` layers are absent: recovery is still exercised.
    # Only PAN (convs without norms) keeps every name: it loads by name, external data included.
    assert name.startswith("pan") or kept < len(state), \
        f"{path}: every weight kept its name; the test would not exercise recovery"
    opset_found = max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    external = os.path.exists(path + ".data")
    if opset_found != opset:
        # dynamo's down-conversion failed: the file is the opset-18 one; not kept twice.
        for f in (path, path + ".data"):
            if os.path.exists(f):
                os.remove(f)
        return dict(file=None, opset=opset_found, note="down-conversion failed: identical to the opset 18 export")
    return dict(file=os.path.basename(path), opset=opset_found, external_data=external,
                initializers=len(names), state_dict_names_kept=f"{kept}/{len(state)}",
                onnxruntime_vs_torch=diff)


def main():
    """All models, or only those named on the command line (their entries in exports.json are
    replaced, the others kept)."""
    only = sys.argv[1:]
    unknown = [n for n in only if n not in MODELS]
    assert not unknown, f"unknown models {unknown}; known: {list(MODELS)}"
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    log = []
    if only:
        with open(os.path.join(OUT, "exports.json")) as f:
            log = [e for e in json.load(f)["exports"] if e.get("model") not in only]
    for name in only or MODELS:
        for exporter, dynamo, opset in EXPORTS:
            entry = export(name, exporter, dynamo, opset)
            entry["model"] = name
            entry["asked_opset"] = opset
            print(entry)
            log.append(entry)
    if only:
        write_log(log)
        return
    name, builder, size = REGISTERED
    torch.manual_seed(1)
    model = builder().eval()
    x = fu.batch_input(size)
    path = os.path.join(OUT, f"{name}.onnx")
    write_export(model, x, path, True, 18)
    with torch.no_grad():
        y64 = fu.float64_copy(model)(x.double()).float()
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    diff = float(np.abs(out - y64.numpy()).max())
    assert diff < 1e-4, f"{path}: onnxruntime differs from PyTorch by {diff}"
    save_file({f"output_{fu.tag(size)}": y64.contiguous()}, os.path.join(OUT, f"{name}.safetensors"))
    log.append(dict(file=os.path.basename(path), model=name, opset=18, onnxruntime_vs_torch=diff))
    print(log[-1])
    write_log(log)


def write_log(log):
    with open(os.path.join(OUT, "exports.json"), "w") as f:
        json.dump(dict(torch=torch.__version__, onnx=onnx.__version__, onnxruntime=ort.__version__,
                       exports=log), f, indent=1)


if __name__ == "__main__":
    main()
