"""Generate image-preprocessing fixtures into tests/fixtures/preprocess/ (run from the repo root).

    nice -n 10 /work/venv/bin/python tests/reference/gen_preprocess_fixtures.py

They let gaze prove that its image loading and eval preprocessing equal timm 1.0.31's eval
transform on Pillow 13.0.0 / torchvision 0.29:

    img = PIL.Image.open(path).convert("RGB")          # timm ImageDataset, input_img_mode="RGB"
    x = timm.data.create_transform(**resolve_data_config({}, model=m))(img)
        # Resize (PIL resampling) -> CenterCrop -> ToTensor -> Normalize

The source pictures are regions of scikit-image's sample photos in /work/shared/data/photos
(astronaut, camera, chelsea, coffee, motorcycle_left; override with GAZE_PHOTOS=dir; their
sha256 is checked and recorded), plus seeded noise. Everything is deterministic: a rerun gives
the same pixels and arrays (PNG/JPEG bytes depend on the zlib / libjpeg-turbo builds only).

Files (all arrays are .npy, C order; sizes are written [height, width] unless named "wh")
-------------------------------------------------------------------------------------
`data_configs.json`
    For every model name of the gaze registry that timm knows (`timm.models.is_model`): the
    default pretrained tag, whether timm has weights for it, the label set, and
    `data_config` = resolve_data_config({}, model=timm.create_model(name)) (input_size,
    interpolation, crop_pct, crop_mode, mean, std), obtained from
    `get_pretrained_cfg(name)` without building the model (checked against built models for
    a few names), plus `data_config_test` = the same with use_test_size=True, which is what
    timm's own inference.py / validate.py use by default (test_input_size, test_crop_pct).
    Names timm does not know are listed under "not_in_timm".
`labels_imagenet1k.txt` (also written to src/labels/imagenet1k.txt)
    The 1000 ImageNet-1k class descriptions in class-index order, one per line:
    `ImageNetInfo().index_to_description(i)` (detailed=False), i.e. the full WordNet lemma
    list such as "tench, Tinca tinca" -- the form timm's inference.py prints with its default
    `--label-type description`, not only the first lemma.
`images/<name>.png|.jpg` and `images/<name>_rgb.npy`
    Small test pictures in the modes gaze must read (RGB odd size / landscape / portrait, L,
    LA, RGBA, 16-bit gray (I;16), 16-bit RGB, P, P with tRNS, baseline JPEG 4:2:0, gray JPEG,
    and convert-only extras: 1-bit, 4-bit gray, 16-bit gray+alpha, 16-bit RGBA, JPEG with an
    EXIF orientation tag), and `np.asarray(Image.open(p).convert("RGB"))` (uint8 HWC).
    tests/reference/logs/pil_convert_semantics.md says what convert("RGB") does per mode;
    each rule is asserted below.
`cases/<config>__<image>_resized.npy` (uint8 HWC) and `cases/<config>__<image>_tensor.npy`
    (float32 CHW): the PIL image right after timm's Resize step (before the crop) and the
    transform's output tensor, for every (config, image) pair of the manifest. The configs
    are the real data configs of resnet50, vit_tiny_patch16_224, deit_tiny_patch16_224 and
    levit_128s (one image each: their tensors are 3x224x224, 602 kB) and small synthetic configs
    (<= 56 px) exercising every branch: bilinear / bicubic / nearest / lanczos / box /
    hamming, crop_pct 0.875 / 0.9 / 1.0, crop_mode center / squash / border, a non-square
    input size, mean/std 0.5.
`manifest.json`
    Images (file, PIL mode, size, convert npy), configs (id and every field), cases (image,
    config, files, the resize output size, which PIL resampling passes ran, the crop box and
    padding timm used) and timm's size rules (see tests/reference/logs/timm_eval_transform.md).

Checks made while generating (any failure stops the script)
    * a pure Python/NumPy re-implementation of Pillow's resampling (the description of
      tests/reference/logs/pil_resample.md) reproduces every Resize output bit for bit, and a
      random sweep of sizes and filters;
    * the crop box / padding formulas reproduce timm's crop, and
      (u8 as f32 / 255 - mean_f32) / std_f32 in float32 reproduces the tensor exactly;
    * the size formulas reproduce the Resize output size of every case.
"""
import hashlib
import json
import math
import os
import random
import re
import shutil
import struct
import warnings
import zlib

import numpy as np
import PIL
import timm
import torch
import torchvision
from PIL import Image, JpegImagePlugin, features
from timm.data import ImageNetInfo, create_transform, infer_imagenet_subset, resolve_data_config
from timm.data.transforms import CenterCropOrPad, ResizeKeepRatio
from timm.models import get_pretrained_cfg, is_model
from torchvision import transforms as T
from torchvision.transforms.functional import pil_modes_mapping

torch.set_num_threads(1)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
OUT = os.path.join(ROOT, "tests", "fixtures", "preprocess")
IMG_DIR = os.path.join(OUT, "images")
CASE_DIR = os.path.join(OUT, "cases")
LABELS_SRC = os.path.join(ROOT, "src", "labels", "imagenet1k.txt")
PHOTOS = os.environ.get("GAZE_PHOTOS", "/work/shared/data/photos")
PHOTO_SHA256 = {
    "astronaut.png": None, "camera.png": None, "chelsea.png": None, "coffee.png": None,
    "motorcycle_left.png": None,
}

REGISTRY = """resnet18 resnet26 resnet34 resnet50 resnet101 resnet18d resnet26d resnet34d resnet50d
resnet101d resnet26t resnet50t seresnet18 seresnet34 seresnet50 seresnet101 seresnet50t ecaresnet26t
ecaresnet50d ecaresnet50t ecaresnet101d cbam_resnet18 cbam_resnet50 triplet_resnet18 triplet_resnet50
fca_resnet18 fca_resnet50 psa_resnet18 psa_resnet50 resnest14d resnest26d resnest50d resnest101e
attention56 attention92 attention92_cifar vit_tiny_patch16_224 vit_small_patch16_224
vit_base_patch16_224 deit_tiny_patch16_224 deit_small_patch16_224 swin_tiny_patch4_window7_224
swin_small_patch4_window7_224 levit_128s levit_128 levit_192 levit_256 levit_384 nat_mini nat_tiny
nat_small nat_base biformer_tiny biformer_small halonet26t halonet50ts""".split()
# Built with timm.create_model (random weights, no download) to check the cfg-only resolution.
VERIFY_BUILT = ["resnet18", "resnet50t", "resnest14d", "vit_tiny_patch16_224", "deit_tiny_patch16_224",
                "levit_128s", "halonet26t"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def write_json(path, obj):
    """Indented JSON with every list of plain values on one line."""
    text = json.dumps(obj, indent=1)
    flat = r'\[(?:[^\[\]{}"]|"(?:[^"\\]|\\.)*")*\]'  # a list without nested lists / objects
    text = re.sub(flat, lambda m: re.sub(r"\[\s+", "[", re.sub(r"\s+\]", "]", re.sub(r",\n\s*", ", ", m.group(0)))), text)
    assert json.loads(text) == obj
    with open(path, "w") as f:
        f.write(text + "\n")


def rel(path):
    return os.path.relpath(path, OUT).replace(os.sep, "/")


def as_list(v):
    return list(v) if isinstance(v, (tuple, list)) else v


def mean_std_kind(mean, std):
    mean, std = tuple(mean), tuple(std)
    if mean == IMAGENET_MEAN and std == IMAGENET_STD:
        return "imagenet"
    if mean == (0.5, 0.5, 0.5) and std == (0.5, 0.5, 0.5):
        return "inception (0.5, 0.5)"
    return "other"


# --------------------------------------------------------------------------------------------
# 1. data configs
# --------------------------------------------------------------------------------------------
DC_KEYS = ("input_size", "interpolation", "crop_pct", "crop_mode", "mean", "std")


def dc_json(dc):
    assert set(dc) == set(DC_KEYS), dc
    return {k: as_list(dc[k]) for k in DC_KEYS}


def data_configs():
    models, missing = {}, []
    for name in REGISTRY:
        if not is_model(name):
            missing.append(name)
            continue
        cfg = get_pretrained_cfg(name).to_dict()
        dc = resolve_data_config(pretrained_cfg=cfg)
        dc_test = resolve_data_config(pretrained_cfg=cfg, use_test_size=True)
        label_names = cfg.get("label_names")
        models[name] = {
            "default_tag": cfg.get("tag"),
            "pretrained_weights": bool(cfg.get("hf_hub_id") or cfg.get("url") or cfg.get("file")),
            "hf_hub_id": cfg.get("hf_hub_id"),
            "num_classes": cfg.get("num_classes"),
            "label_set": "custom (pretrained_cfg label_names)" if label_names else infer_imagenet_subset(cfg),
            "label_names": as_list(label_names),
            "label_descriptions": cfg.get("label_descriptions"),
            "fixed_input_size": bool(cfg.get("fixed_input_size", False)),
            "mean_std_kind": mean_std_kind(dc["mean"], dc["std"]),
            "data_config": dc_json(dc),
            "test_input_size": as_list(cfg.get("test_input_size")),
            "test_crop_pct": cfg.get("test_crop_pct"),
            "data_config_test": dc_json(dc_test),
        }
    # The cfg-only resolution equals what a built model gives, for the plain and the
    # inference.py (use_test_size=True, resolve_input_data_config) resolutions.
    from timm.data import resolve_input_data_config
    for name in VERIFY_BUILT:
        m = timm.create_model(name, pretrained=False)
        want = models[name]["data_config"]
        for got in (resolve_data_config({}, model=m), timm.data.resolve_model_data_config(m)):
            assert dc_json(got) == want, (name, got, want)
        got_test = dc_json(resolve_input_data_config(m, {}, use_test_size=True))
        assert got_test == models[name]["data_config_test"], (name, got_test)
        assert m.pretrained_cfg.get("tag") == models[name]["default_tag"], name
        del m
    return {
        "timm_version": timm.__version__,
        "how": "data_config = timm.data.resolve_data_config(pretrained_cfg=timm.models.get_pretrained_cfg(name)"
               ".to_dict()) == resolve_data_config({}, model=timm.create_model(name)); data_config_test: "
               "the same with use_test_size=True (timm's inference.py / validate.py default, "
               "resolve_input_data_config(model, use_test_size=True))",
        "verified_against_create_model": VERIFY_BUILT,
        "models": models,
        "not_in_timm": missing,
    }


# --------------------------------------------------------------------------------------------
# 2. labels
# --------------------------------------------------------------------------------------------
def labels():
    info = ImageNetInfo("imagenet-1k")
    desc = [info.index_to_description(i) for i in range(1000)]
    assert info.num_classes() == 1000 and desc[0] == "tench, Tinca tinca", desc[0]
    assert all("\n" not in d and d == d.strip() and d for d in desc)
    return "".join(d + "\n" for d in desc)


# --------------------------------------------------------------------------------------------
# 3. images
# --------------------------------------------------------------------------------------------
def write_png(path, arr, color_type, bit_depth):
    """Minimal PNG writer for what PIL cannot write (16-bit RGB/RGBA/LA, 4-bit gray):
    arr is HxW or HxWxC, samples big-endian, no interlace, filter 0 on every row."""
    a = np.asarray(arr)
    h, w = a.shape[:2]
    rows = []
    for y in range(h):
        if bit_depth == 16:
            rows.append(a[y].astype(">u2").tobytes())
        elif bit_depth == 8:
            rows.append(a[y].astype(np.uint8).tobytes())
        else:
            per = 8 // bit_depth
            b = bytearray((w + per - 1) // per)
            for x in range(w):
                b[x // per] |= int(a[y, x]) << (8 - bit_depth * (x % per + 1))
            rows.append(bytes(b))
    data = b"".join(b"\x00" + r for r in rows)

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, 0))
    out += chunk(b"IDAT", zlib.compress(data, 9)) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(out)


def photo(name, mode=None):
    path = os.path.join(PHOTOS, name)
    with open(path, "rb") as f:
        PHOTO_SHA256[name] = hashlib.sha256(f.read()).hexdigest()
    im = Image.open(path)
    im.load()
    return im.convert(mode) if mode else im


def region(name, box, size, mode="RGB"):
    """A region of a sample photo, resized with Lanczos (only to make the picture)."""
    return photo(name, mode).crop(box).resize(size, Image.Resampling.LANCZOS)


def make_images():
    """Writes the test pictures; returns [(stem, file, description, transform_cases)]."""
    rng = np.random.default_rng(20240607)
    imgs = []

    def add(stem, ext, desc, cases=True):
        imgs.append((stem, f"{stem}.{ext}", desc, cases))
        return os.path.join(IMG_DIR, f"{stem}.{ext}")

    region("chelsea.png", (120, 40, 314, 162), (97, 61)).save(
        add("rgb_odd_97x61", "png", "RGB, odd size (chelsea)"))
    region("astronaut.png", (100, 40, 400, 240), (150, 100)).save(
        add("rgb_landscape_150x100", "png", "RGB landscape (astronaut)"))
    region("coffee.png", (200, 0, 457, 400), (90, 140)).save(
        add("rgb_portrait_90x140", "png", "RGB portrait (coffee)"))
    region("camera.png", (100, 50, 349, 251), (83, 67), "L").save(
        add("gray_l_83x67", "png", "8-bit gray, mode L (camera)"))

    # LA: gray photo + alpha ramp (0..255 across x) with noise, a fully transparent corner.
    g = np.asarray(region("camera.png", (200, 250, 440, 430), (72, 54), "L"))
    alpha = np.clip(np.linspace(0, 255, 72)[None, :] + rng.normal(0, 20, (54, 72)), 0, 255).astype(np.uint8)
    alpha[:10, :12] = 0
    Image.fromarray(np.stack([g, alpha], -1), "LA").save(add("gray_alpha_la_72x54", "png", "gray + alpha, mode LA"))

    # RGBA: photo + radial alpha (255 centre .. 0 corners) with noise; alpha-0 pixels keep colour.
    rgb = np.asarray(region("astronaut.png", (150, 250, 414, 448), (88, 66)))
    yy, xx = np.mgrid[0:66, 0:88]
    r = np.hypot((yy - 33) / 33.0, (xx - 44) / 44.0)
    alpha = np.clip(255 * (1.3 - r) + rng.normal(0, 15, r.shape), 0, 255).astype(np.uint8)
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(add("rgba_88x66", "png", "RGBA, varied alpha (0..255)"))

    # 16-bit gray: top half full-range (v * 257 + noise, as a real 16-bit picture), bottom half
    # small values 0..511 (v * 2 + noise): PIL clips at 255, so both halves matter.
    v = np.asarray(region("camera.png", (260, 60, 400, 160), (70, 50), "L")).astype(np.int64)
    g16 = np.empty_like(v)
    g16[:25] = np.clip(v[:25] * 257 + rng.integers(-128, 128, v[:25].shape), 0, 65535)
    g16[25:] = v[25:] * 2 + rng.integers(0, 2, v[25:].shape)
    im = Image.fromarray(g16.astype(np.uint16))
    assert im.mode == "I;16"
    im.save(add("gray16_70x50", "png", "16-bit gray PNG (PIL mode I;16); top half full range, bottom half < 512"))

    # 16-bit RGB: high byte from the photo, random low byte (shows which byte PIL keeps).
    hi = np.asarray(region("chelsea.png", (250, 100, 410, 220), (64, 48))).astype(np.uint16)
    write_png(add("rgb16_64x48", "png", "16-bit RGB PNG (PIL mode RGB): high byte photo, low byte random"),
              (hi << 8) | rng.integers(0, 256, hi.shape).astype(np.uint16), 2, 16)

    # Palette, 48 colours (median cut + Floyd-Steinberg dithering, PIL's defaults).
    region("coffee.png", (0, 60, 300, 285), (80, 60)).quantize(48).save(
        add("palette_p_80x60", "png", "palette PNG, mode P, 48 colours"))
    # Palette with a tRNS chunk: alpha for the first 20 of 32 entries, the rest opaque.
    p = region("motorcycle_left.png", (200, 100, 580, 390), (76, 58)).quantize(32)
    trns = bytes((i * 53 + 7) % 256 for i in range(20))
    p.save(add("palette_trns_p_76x58", "png", "palette PNG with per-index alpha (tRNS, 20 of 32 entries)"),
           transparency=trns)

    region("motorcycle_left.png", (300, 150, 540, 330), (96, 72)).save(
        add("jpeg_rgb_96x72", "jpg", "baseline JPEG, quality 90, 4:2:0"), quality=90, subsampling=2)
    region("camera.png", (20, 100, 180, 300), (64, 80), "L").save(
        add("jpeg_gray_64x80", "jpg", "grayscale JPEG, quality 90"), quality=90)

    # Convert-only extras (no transform cases: after convert("RGB") they are plain RGB).
    region("camera.png", (150, 150, 330, 282), (45, 33), "L").convert("1").save(
        add("bilevel_1_45x33", "png", "1-bit PNG, PIL mode 1 (Floyd-Steinberg from camera)", False))
    g4 = np.asarray(region("camera.png", (300, 300, 460, 420), (40, 30), "L")) >> 4
    write_png(add("gray4_40x30", "png", "4-bit gray PNG (PIL mode L, values x17)", False), g4, 0, 4)
    la = np.asarray(region("camera.png", (0, 0, 144, 112), (36, 28), "L")).astype(np.uint16)
    la16 = np.stack([(la << 8) | rng.integers(0, 256, la.shape).astype(np.uint16),
                     rng.integers(0, 65536, la.shape).astype(np.uint16)], -1)
    write_png(add("gray_alpha16_36x28", "png", "16-bit gray + alpha PNG (PIL mode RGBA)", False), la16, 4, 16)
    c = np.asarray(region("chelsea.png", (10, 10, 154, 122), (36, 28))).astype(np.uint16)
    rgba16 = np.dstack([(c << 8) | rng.integers(0, 256, c.shape).astype(np.uint16),
                        rng.integers(0, 65536, c.shape[:2]).astype(np.uint16)])
    write_png(add("rgba16_36x28", "png", "16-bit RGBA PNG (PIL mode RGBA)", False), rgba16, 6, 16)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display; PIL's open/convert ignores it
    region("chelsea.png", (200, 60, 392, 188), (48, 32)).save(
        add("jpeg_exif_orient6_48x32", "jpg", "JPEG with EXIF Orientation=6 (not applied by PIL/timm)", False),
        quality=90, subsampling=2, exif=exif.tobytes())
    return imgs


def check_convert_semantics(stem, im, rgb):
    """Asserts the convert("RGB") rules of logs/pil_convert_semantics.md on each picture."""
    a = np.asarray(im)
    if im.mode == "RGB":
        assert np.array_equal(rgb, a)
    elif im.mode == "L":
        assert np.array_equal(rgb, np.repeat(a[..., None], 3, -1))
    elif im.mode == "1":
        assert np.array_equal(rgb, np.repeat(np.where(a, 255, 0).astype(np.uint8)[..., None], 3, -1))
    elif im.mode in ("LA", "RGBA"):  # alpha dropped, not composited
        assert np.array_equal(rgb, np.asarray(im.convert("RGBA"))[..., :3])
        if im.mode == "LA":
            assert np.array_equal(rgb, np.repeat(a[..., :1], 3, -1))
    elif im.mode == "I;16":  # clipped at 255, not scaled
        assert np.array_equal(rgb, np.repeat(np.minimum(a, 255).astype(np.uint8)[..., None], 3, -1))
    elif im.mode == "P":  # palette lookup, transparency ignored
        pal = np.array(im.getpalette("RGB"), dtype=np.uint8).reshape(-1, 3)
        assert np.array_equal(rgb, pal[a])
    else:
        raise AssertionError(f"{stem}: unexpected mode {im.mode}")


def raw_png_samples(path):
    """The decoded samples of one of our own uncompressed-filter PNGs (for the 16-bit checks)."""
    with open(path, "rb") as f:
        b = f.read()
    pos, idat, ihdr = 8, b"", None
    while pos < len(b):
        n, t = struct.unpack(">I4s", b[pos:pos + 8])
        d = b[pos + 8:pos + 8 + n]
        if t == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", d)
        elif t == b"IDAT":
            idat += d
        pos += 12 + n
    w, h, depth, ctype = ihdr[:4]
    ch = {0: 1, 2: 3, 4: 2, 6: 4}[ctype]
    assert depth == 16
    raw = zlib.decompress(idat)
    stride = 1 + w * ch * 2
    rows = [raw[y * stride + 1:(y + 1) * stride] for y in range(h)]
    assert all(raw[y * stride] == 0 for y in range(h))
    return np.frombuffer(b"".join(rows), dtype=">u2").reshape(h, w, ch)


def open_images(imgs):
    entries = []
    for stem, file, desc, cases in imgs:
        path = os.path.join(IMG_DIR, file)
        with warnings.catch_warnings():
            # "Palette images with Transparency expressed in bytes should be converted to RGBA"
            warnings.simplefilter("ignore", UserWarning)
            im = Image.open(path)
            mode, (w, h) = im.mode, im.size
            im.load()
            rgb = np.asarray(im.convert("RGB"))
        assert rgb.dtype == np.uint8 and rgb.shape == (h, w, 3)
        check_convert_semantics(stem, im, rgb)
        if stem in ("rgb16_64x48", "gray_alpha16_36x28", "rgba16_36x28"):  # 16-bit -> high byte
            hi = (raw_png_samples(path) >> 8).astype(np.uint8)
            want = np.repeat(hi[..., :1], 3, -1) if stem.startswith("gray") else hi[..., :3]
            assert np.array_equal(rgb, want), stem
        npy = os.path.join(IMG_DIR, f"{stem}_rgb.npy")
        np.save(npy, rgb)
        e = {"name": stem, "file": rel(path), "description": desc, "pil_mode": mode, "size_wh": [w, h],
             "convert_rgb_npy": rel(npy), "transform_cases": cases}
        if "transparency" in im.info:
            t = im.info["transparency"]
            e["pil_info_transparency"] = list(t) if isinstance(t, (bytes, tuple)) else t
        if file.endswith(".jpg"):
            e["jpeg"] = {"sampling": {0: "4:4:4", 1: "4:2:2", 2: "4:2:0", -1: "n/a (gray)"}[
                JpegImagePlugin.get_sampling(im)], "progressive": bool(im.info.get("progressive", 0))}
            if "exif" in im.info:
                e["jpeg"]["exif_orientation"] = im.getexif().get(0x0112)
        entries.append(e)
    return entries


# --------------------------------------------------------------------------------------------
# Pillow resampling, re-implemented (logs/pil_resample.md); asserted bit-exact against PIL.
# --------------------------------------------------------------------------------------------
def _bilinear(x):
    x = abs(x)
    return 1.0 - x if x < 1.0 else 0.0


def _bicubic(x, a=-0.5):
    x = abs(x)
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    if x < 2.0:
        return (((x - 5) * x + 8) * x - 4) * a
    return 0.0


def _box(x):
    return 1.0 if -0.5 < x <= 0.5 else 0.0


_F054, _F046 = float(np.float32(0.54)), float(np.float32(0.46))  # C float literals 0.54f, 0.46f


def _hamming(x):
    x = abs(x)
    if x == 0.0:
        return 1.0
    if x >= 1.0:
        return 0.0
    x = x * math.pi
    return math.sin(x) / x * (_F054 + _F046 * math.cos(x))


def _sinc(x):
    if x == 0.0:
        return 1.0
    x = x * math.pi
    return math.sin(x) / x


def _lanczos(x):
    return _sinc(x) * _sinc(x / 3) if -3.0 <= x < 3.0 else 0.0


PIL_FILTERS = {  # PIL filter id -> (kernel, support)
    Image.Resampling.BOX: (_box, 0.5), Image.Resampling.BILINEAR: (_bilinear, 1.0),
    Image.Resampling.HAMMING: (_hamming, 1.0), Image.Resampling.BICUBIC: (_bicubic, 2.0),
    Image.Resampling.LANCZOS: (_lanczos, 3.0),
}
PRECISION_BITS = 32 - 8 - 2


def pil_coeffs(in_size, out_size, filt):
    """precompute_coeffs + normalize_coeffs_8bpc for box (0, in_size): [(xmin, n, [int k])]."""
    kernel, fsupport = PIL_FILTERS[filt]
    scale = float(np.float32(in_size) - np.float32(0)) / out_size
    filterscale = max(scale, 1.0)
    support = fsupport * filterscale
    inv = 1.0 / filterscale
    out = []
    for xx in range(out_size):
        center = 0.0 + (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        n = min(int(center + support + 0.5), in_size) - xmin
        w = [kernel((x + xmin - center + 0.5) * inv) for x in range(n)]
        ww = 0.0
        for v in w:
            ww += v
        if ww != 0.0:
            w = [v / ww for v in w]
        k = [int(-0.5 + v * (1 << PRECISION_BITS)) if v < 0 else int(0.5 + v * (1 << PRECISION_BITS)) for v in w]
        out.append((xmin, n, np.array(k, dtype=np.int64)))
    return out


def _pass(a, coeffs, axis):
    a = np.moveaxis(a.astype(np.int64), axis, 0)
    res = np.empty((len(coeffs),) + a.shape[1:], dtype=np.int64)
    for i, (xmin, n, k) in enumerate(coeffs):
        ss = (1 << (PRECISION_BITS - 1)) + np.tensordot(k, a[xmin:xmin + n], axes=(0, 0))
        res[i] = np.clip(ss >> PRECISION_BITS, 0, 255)  # arithmetic shift = floor
    return np.moveaxis(res, 0, axis).astype(np.uint8)


def pil_resample_plan(w, h, ow, oh):
    """Which passes Pillow 13 runs for (w, h) -> (ow, oh), in order."""
    need_h, need_v = ow != w, oh != h
    if not need_h and not need_v:
        return "none (copy)"
    if need_h and not need_v:
        return "horizontal only"
    if need_v and not need_h:
        return "vertical only"
    vertical_first = oh < h and (h - oh) > 2 * (w - ow)
    return "vertical, then horizontal" if vertical_first else "horizontal, then vertical"


def pil_resize_reference(a, ow, oh, filt):
    """Image.fromarray(a).resize((ow, oh), filt) for a uint8 HxWxC array, without PIL."""
    h, w = a.shape[:2]
    if filt == Image.Resampling.NEAREST:
        def idx(n_in, n_out):
            step = float(np.float32(n_in)) / n_out
            pos, res = step * 0.5, []
            for _ in range(n_out):
                res.append(-1 if pos < 0 else int(pos))
                pos += step  # accumulated, as ImagingScaleAffine does
            return np.array(res)
        return a.copy() if (w, h) == (ow, oh) else a[idx(h, oh)][:, idx(w, ow)]
    plan = pil_resample_plan(w, h, ow, oh)
    if plan.startswith("none"):
        return a.copy()
    vc = pil_coeffs(h, oh, filt) if oh != h else None
    hc = pil_coeffs(w, ow, filt) if ow != w else None
    if plan == "vertical, then horizontal":
        return _pass(_pass(a, vc, 0), hc, 1)
    if hc is not None:
        if vc is not None:  # only the source rows the vertical pass reads
            y0, y1 = vc[0][0], vc[-1][0] + vc[-1][1]
            a = a[y0:y1]
            vc = [(xmin - y0, n, k) for xmin, n, k in vc]
        a = _pass(a, hc, 1)
    return _pass(a, vc, 0) if vc is not None else a


def resample_sweep(n=300, seed=11):
    """Random sizes, all filters: the re-implementation equals PIL bit for bit."""
    rnd, rng = random.Random(seed), np.random.default_rng(seed)
    filters = [Image.Resampling.NEAREST] + list(PIL_FILTERS)
    for i in range(n):
        w, h, ow, oh = (rnd.randint(1, 96) for _ in range(4))
        if i % 3 == 0:  # near the pass-order boundary (h - oh) == 2 (w - ow)
            d = rnd.randint(1, 20)
            w, h = rnd.randint(d + 1, 96), rnd.randint(2 * d + 3, 96)
            ow, oh = w - d, h - 2 * d + rnd.randint(-1, 1)
        a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        filt = filters[i % len(filters)]
        want = np.asarray(Image.fromarray(a).resize((ow, oh), filt))
        assert np.array_equal(pil_resize_reference(a, ow, oh, filt), want), (w, h, ow, oh, filt)
    return n


# --------------------------------------------------------------------------------------------
# 5. transform configs and cases
# --------------------------------------------------------------------------------------------
def synthetic(cid, size, interp, crop_pct, crop_mode="center", mean=IMAGENET_MEAN, std=IMAGENET_STD, note=""):
    return {"id": cid, "kind": "synthetic", "input_size": [3, *size], "interpolation": interp,
            "crop_pct": crop_pct, "crop_mode": crop_mode, "mean": list(mean), "std": list(std), "note": note}


SYNTHETIC = [
    synthetic("syn_bilinear_c0875", (28, 28), "bilinear", 0.875, note="scale 32"),
    synthetic("syn_bicubic_c09", (27, 27), "bicubic", 0.9, note="scale 30"),
    synthetic("syn_bicubic_c10", (24, 24), "bicubic", 1.0, note="scale 24: no margin"),
    synthetic("syn_squash", (42, 42), "bicubic", 0.875, "squash",
              note="Resize((48, 48)) ignoring aspect; rgb16_64x48 keeps its height: horizontal pass only"),
    synthetic("syn_squash_wide", (21, 56), "bilinear", 0.875, "squash",
              note="Resize((24, 64)); the 64-wide images keep their width: vertical pass only"),
    synthetic("syn_border", (30, 30), "bicubic", 0.9, "border",
              note="longest edge -> 33, short edge padded with round(255 * mean) = (124, 116, 104), centre crop"),
    synthetic("syn_border_half_c10", (24, 24), "bilinear", 1.0, "border", (0.5,) * 3, (0.5,) * 3,
              note="longest edge -> 24, padded with round(127.5) = 128 (half to even), nothing to crop"),
    synthetic("syn_nonsquare", (21, 35), "bicubic", 0.875,
              note="scale (24, 40): ResizeKeepRatio(longest=0), shortest-edge fit, then CenterCrop((21, 35))"),
    synthetic("syn_nearest", (24, 24), "nearest", 0.875, note="scale 27"),
    synthetic("syn_half_mean", (28, 28), "bilinear", 0.95, mean=(0.5,) * 3, std=(0.5,) * 3, note="scale 29"),
    synthetic("syn_lanczos", (20, 20), "lanczos", 0.9, note="scale 22"),
    synthetic("syn_box", (16, 16), "box", 0.875, note="scale 18"),
    synthetic("syn_hamming", (16, 16), "hamming", 0.875, note="scale 18"),
]
# Extra filters (timm accepts them; no registry model uses them): only on these images.
EXTRA_FILTER_IMAGES = {"syn_lanczos", "syn_box", "syn_hamming"}, ["rgb_odd_97x61", "rgb_portrait_90x140",
                                                                 "jpeg_rgb_96x72", "gray16_70x50"]
# Real configs: (model name, images), one image each: a 3x224x224 float32 tensor is 602 kB.
# deit_tiny and levit_128s have identical data configs (different images here).
REAL = [
    ("resnet50", ["rgb_odd_97x61"]),
    ("vit_tiny_patch16_224", ["gray_l_83x67"]),
    ("deit_tiny_patch16_224", ["rgba_88x66"]),
    ("levit_128s", ["palette_trns_p_76x58"]),
]


def real_configs(dcs):
    out = []
    for name, images in REAL:
        m = dcs["models"][name]
        dc = m["data_config"]
        out.append(({"id": f"{name}.{m['default_tag']}", "kind": "real", "model": name, **dc,
                     "note": "resolve_data_config({}, model=timm.create_model(name))"}, images))
    return out


def build_transform(cfg):
    return create_transform(input_size=tuple(cfg["input_size"]), interpolation=cfg["interpolation"],
                            crop_pct=cfg["crop_pct"], crop_mode=cfg["crop_mode"], mean=tuple(cfg["mean"]),
                            std=tuple(cfg["std"]), is_training=False)


def py_round(x):
    return int(round(x))  # Python's round: half to even


def expected_resize_hw(cfg, h, w):
    """The Resize output size by the formulas of the manifest's size_rules."""
    th, tw = cfg["input_size"][1:]
    sh, sw = math.floor(th / cfg["crop_pct"]), math.floor(tw / cfg["crop_pct"])
    if cfg["crop_mode"] == "squash":
        return sh, sw
    if cfg["crop_mode"] == "border" or sh != sw:
        ratio_h, ratio_w = h / sh, w / sw
        longest = 1.0 if cfg["crop_mode"] == "border" else 0.0
        ratio = max(ratio_h, ratio_w) * longest + min(ratio_h, ratio_w) * (1.0 - longest)
        return py_round(h / ratio), py_round(w / ratio)
    s = sh
    if w <= h:
        return int(s * h / w), s
    return s, int(s * w / h)


def crop_geometry(cfg, rh, rw):
    """timm's padding (border mode) and centre crop box in the resized (then padded) image."""
    th, tw = cfg["input_size"][1:]
    pad = [0, 0, 0, 0]  # left, top, right, bottom
    if cfg["crop_mode"] == "border" and (tw > rw or th > rh):
        pad = [(tw - rw) // 2 if tw > rw else 0, (th - rh) // 2 if th > rh else 0,
               (tw - rw + 1) // 2 if tw > rw else 0, (th - rh + 1) // 2 if th > rh else 0]
    ph, pw = rh + pad[1] + pad[3], rw + pad[0] + pad[2]
    assert ph >= th and pw >= tw
    top, left = py_round((ph - th) / 2.0), py_round((pw - tw) / 2.0)
    return pad, {"top": top, "left": left, "height": th, "width": tw}


def run_case(cfg, entry):
    tf = build_transform(cfg)
    steps = tf.transforms
    resize, crop, to_tensor, norm = steps
    if cfg["crop_mode"] == "border":
        assert isinstance(resize, ResizeKeepRatio) and isinstance(crop, CenterCropOrPad)
    elif cfg["crop_mode"] == "squash":
        assert isinstance(resize, T.Resize) and isinstance(crop, T.CenterCrop)
    else:
        sq = cfg["input_size"][1] == cfg["input_size"][2]
        assert isinstance(resize, T.Resize if sq else ResizeKeepRatio) and isinstance(crop, T.CenterCrop)
    assert isinstance(norm, T.Normalize)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        img = Image.open(os.path.join(OUT, entry["file"])).convert("RGB")
    src = np.asarray(img)
    resized = resize(img)
    cropped = crop(resized)
    tensor = norm(to_tensor(cropped))
    assert torch.equal(tensor, tf(img))
    r = np.asarray(resized)
    assert r.dtype == np.uint8 and r.ndim == 3
    rh, rw = r.shape[:2]
    h, w = src.shape[:2]
    assert (rh, rw) == expected_resize_hw(cfg, h, w), (cfg["id"], (h, w), (rh, rw))
    filt = int(pil_modes_mapping[T.InterpolationMode(cfg["interpolation"])])
    assert np.array_equal(pil_resize_reference(src, rw, rh, filt), r), (cfg["id"], entry["name"])
    pad, box = crop_geometry(cfg, rh, rw)
    fill = [py_round(255 * v) for v in cfg["mean"]]
    p = r
    if any(pad):
        p = np.empty((rh + pad[1] + pad[3], rw + pad[0] + pad[2], 3), np.uint8)
        p[...] = np.array(fill, np.uint8)
        p[pad[1]:pad[1] + rh, pad[0]:pad[0] + rw] = r
    c = p[box["top"]:box["top"] + box["height"], box["left"]:box["left"] + box["width"]]
    assert np.array_equal(c, np.asarray(cropped)), (cfg["id"], entry["name"])
    mean = np.array(cfg["mean"], np.float32)[:, None, None]
    std = np.array(cfg["std"], np.float32)[:, None, None]
    x = (c.transpose(2, 0, 1).astype(np.float32) / np.float32(255) - mean) / std
    t = tensor.numpy()
    assert t.dtype == np.float32 and np.array_equal(x, t), (cfg["id"], entry["name"], np.abs(x - t).max())
    cid = f"{cfg['id']}__{entry['name']}"
    rpath, tpath = os.path.join(CASE_DIR, f"{cid}_resized.npy"), os.path.join(CASE_DIR, f"{cid}_tensor.npy")
    np.save(rpath, np.ascontiguousarray(r))
    np.save(tpath, np.ascontiguousarray(t))
    case = {"id": cid, "image": entry["name"], "config": cfg["id"], "source_hw": [h, w],
            "resized_npy": rel(rpath), "tensor_npy": rel(tpath), "resized_hw": [rh, rw],
            "pil_passes": "nearest (ImagingScaleAffine)" if filt == 0 else pil_resample_plan(w, h, rw, rh),
            "crop_box": box, "tensor_shape": list(t.shape)}
    if cfg["crop_mode"] == "border":
        case["pad_ltrb"] = pad
        case["pad_fill"] = fill
    return case


CONVERT_RULES = {  # asserted in check_convert_semantics / open_images; see logs/pil_convert_semantics.md
    "L": "(v, v, v)",
    "1": "0 -> 0, 1 -> 255 in all channels",
    "LA": "(L, L, L): alpha dropped, not composited",
    "RGBA": "(R, G, B) as stored, alpha dropped (also where alpha == 0)",
    "P": "palette[index]",
    "P with tRNS": "palette[index], transparency ignored (PIL warns for tRNS bytes)",
    "I;16 (16-bit gray PNG)": "min(v, 255): clipped, not scaled",
    "I (32-bit int)": "clamp(v, 0, 255)",
    "16-bit RGB PNG": "opens as RGB holding the high byte of each sample (v >> 8, truncation)",
    "16-bit gray+alpha / RGBA PNG": "opens as RGBA of high bytes; convert drops alpha",
    "2/4-bit gray PNG": "opens as L, values scaled at decode (x 85 / x 17)",
    "JPEG": "libjpeg-turbo defaults (ISLOW IDCT, fancy upsampling); EXIF orientation not applied",
}

SIZE_RULES = {
    "scale_size": "crop_pct = crop_pct or 0.875; for an input size (th, tw): scale_size = (math.floor(th / crop_pct), "
                  "math.floor(tw / crop_pct)) -- float64 division, floor, per dimension (timm transforms_factory.py "
                  "transforms_imagenet_eval)",
    "center": "scale_size square (sh == sw): torchvision Resize(sh): shortest edge -> sh, longest -> "
              "int(sh * long / short) (truncation, float64; w <= h counts w as the short side); no resize at all "
              "when that equals the source size. Non-square: timm ResizeKeepRatio(scale_size, longest=0): "
              "ratio = min(h / sh, w / sw); size = (round(h / ratio), round(w / ratio)), Python round (half to "
              "even). Then CenterCrop(th, tw).",
    "squash": "torchvision Resize((sh, sw)): both edges set, aspect ignored; then CenterCrop(th, tw).",
    "border": "ResizeKeepRatio(scale_size, longest=1): ratio = max(h / sh, w / sw); size = (round(h / ratio), "
              "round(w / ratio)) (half to even); then CenterCropOrPad((th, tw), fill=[round(255 * m) for m in mean]) "
              "(half to even: mean 0.5 -> 128): where the image is smaller than the crop, pad left = (tw - w) // 2, "
              "top = (th - h) // 2, right = (tw - w + 1) // 2, bottom = (th - h + 1) // 2 with the fill colour; "
              "then centre crop as below.",
    "center_crop": "top = int(round((H - th) / 2.0)), left = int(round((W - tw) / 2.0)) with Python round (half to "
                   "even: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2); crop rows top..top+th, cols left..left+tw.",
    "to_tensor": "CHW float32 = uint8 as float32 / 255 (float32 division)",
    "normalize": "(x - mean_f32) / std_f32 in float32 (mean, std rounded to float32 first); subtraction then "
                 "division, no fused reciprocal",
    "resample": "PIL Image.resize((w, h), filter) with no box and no reducing_gap; see "
                "tests/reference/logs/pil_resample.md; 'pil_passes' in each case says which passes ran",
}


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(IMG_DIR)
    os.makedirs(CASE_DIR)

    dcs = data_configs()
    write_json(os.path.join(OUT, "data_configs.json"), dcs)

    text = labels()
    for path in (os.path.join(OUT, "labels_imagenet1k.txt"), LABELS_SRC):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)

    images = open_images(make_images())
    by_name = {e["name"]: e for e in images}
    n_sweep = resample_sweep()

    configs, cases = [], []
    for cfg, names in real_configs(dcs):
        configs.append(cfg)
        cases += [run_case(cfg, by_name[n]) for n in names]
    for cfg in SYNTHETIC:
        configs.append(cfg)
        only = EXTRA_FILTER_IMAGES[1] if cfg["id"] in EXTRA_FILTER_IMAGES[0] else None
        cases += [run_case(cfg, e) for e in images if e["transform_cases"] and (only is None or e["name"] in only)]

    # Coverage of the rounding corners the Rust side must get right.
    passes = sorted({c["pil_passes"] for c in cases})
    half_even = []  # crop offset (H - th) / 2 = k + 0.5 with k even: half-up would give k + 1
    for c in cases:
        left, top, right, bottom = c.get("pad_ltrb", [0, 0, 0, 0])
        excess = (c["resized_hw"][0] + top + bottom - c["crop_box"]["height"],
                  c["resized_hw"][1] + left + right - c["crop_box"]["width"])
        if any(e % 4 == 1 for e in excess):
            half_even.append(c["id"])
    assert {"horizontal, then vertical", "vertical, then horizontal", "horizontal only", "vertical only"} <= set(passes), passes
    assert half_even, "no case with a crop offset of x.5 rounded to even"

    manifest = {
        "generator": "tests/reference/gen_preprocess_fixtures.py",
        "versions": {"timm": timm.__version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
                     "pillow": PIL.__version__, "numpy": np.__version__,
                     "libjpeg_turbo": features.version("libjpeg_turbo"), "zlib": features.version("zlib")},
        "photo_sources_sha256": {k: v for k, v in PHOTO_SHA256.items() if v},
        "conventions": "sizes [height, width] unless the key ends in _wh; resized npy uint8 HWC (RGB) = the PIL "
                       "image after timm's Resize step; tensor npy float32 CHW = the transform output; crop_box in "
                       "resized (after padding, for border) pixel coordinates",
        "read_image": "PIL.Image.open(path).convert('RGB') (timm ImageDataset input_img_mode='RGB'); no EXIF "
                      "orientation, no alpha compositing; see tests/reference/logs/pil_convert_semantics.md",
        "pil_convert_rgb": CONVERT_RULES,
        "size_rules": SIZE_RULES,
        "pil_resample_checked": f"pil_resize_reference == PIL on every case and on {n_sweep} random resizes",
        "cases_with_half_to_even_crop_offset": half_even,
        "images": images,
        "configs": configs,
        "cases": cases,
    }
    write_json(os.path.join(OUT, "manifest.json"), manifest)

    total = 0
    for d, _, files in os.walk(OUT):
        total += sum(os.path.getsize(os.path.join(d, f)) for f in files)
    print(f"{len(images)} images, {len(configs)} configs, {len(cases)} cases, passes {passes}, "
          f"{len(half_even)} half-to-even crop cases, {total / 1e6:.2f} MB in {OUT}")
    print("not in timm:", " ".join(dcs["not_in_timm"]))


if __name__ == "__main__":
    main()
