"""`gaze classify` ranks the classes as timm's own pipeline does, image by image.

    python benches/eval_timm.py --model M --save-random W.safetensors
    gaze classify --model M --weights W --topk 5 --json IMAGES... > gaze.json
    python tests/reference/check_classify_vs_timm.py M W gaze.json

For every image: timm's `create_transform(**resolve_data_config({}, model=m))` on
`Image.open(p).convert("RGB")`, the timm model with the same weights, softmax, top-5. Asserts the
top-5 classes are the same and in the same order, and the probabilities agree to 1e-4.
"""
import json
import sys

import timm
import torch
from PIL import Image
from safetensors.torch import load_file
from timm.data import create_transform, resolve_data_config


def main():
    name, weights, gaze_json = sys.argv[1:4]
    torch.set_num_threads(2)
    model = timm.create_model(name, pretrained=False).eval()
    model.load_state_dict(load_file(weights), strict=True)
    transform = create_transform(**resolve_data_config({}, model=model))
    results = json.load(open(gaze_json))
    worst = 0.0
    with torch.inference_mode():
        for r in results:
            p = model(transform(Image.open(r["image"]).convert("RGB"))[None]).softmax(1)[0]
            top = p.topk(5)
            ours = [(q["class"], q["probability"]) for q in r["predictions"]]
            assert [c for c, _ in ours] == top.indices.tolist(), (r["image"], ours, top)
            worst = max(worst, max(abs(a - b) for (_, a), b in zip(ours, top.values.tolist())))
    assert worst <= 1e-4, worst
    print(f"timm {timm.__version__}: {name}, {len(results)} images: the same top-5 classes in the same "
          f"order for every image; max probability difference {worst:.2e}")


if __name__ == "__main__":
    main()
