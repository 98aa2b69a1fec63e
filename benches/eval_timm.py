"""timm's side of the `gaze eval` throughput benchmark: the same images, the same model weights,
timm's own eval pipeline (PIL decode, create_transform(resolve_data_config), model in eval mode),
batches of --batch, torch threads = --threads. Prints top-1/top-5 and images per second.

    python benches/eval_timm.py --model resnet50 --weights W.safetensors \
        --dir ../shared/data/imagenet-samples --labels ../shared/data/imagenet-samples/samples_labels.tsv

Make W with `python benches/eval_timm.py --model resnet50 --save-random W.safetensors` (random
weights, seed 0), then run `gaze eval --model resnet50 --weights W …` on the same images.
"""
import argparse
import csv
import os
import time

import timm
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from timm.data import create_transform, resolve_data_config


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--weights")
    ap.add_argument("--save-random")
    ap.add_argument("--dir")
    ap.add_argument("--labels")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = timm.create_model(a.model, pretrained=False).eval()
    if a.save_random:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, a.save_random)
        return
    model.load_state_dict(load_file(a.weights), strict=True)
    transform = create_transform(**resolve_data_config({}, model=model))
    items = []
    with open(a.labels) as f:
        for row in csv.reader(f, delimiter="\t"):
            if len(row) >= 2 and row[1].isdigit():
                p = os.path.join(a.dir, row[0])
                if not os.path.isfile(p):
                    p = os.path.join(a.dir, "images", row[0])
                items.append((p, int(row[1])))
    top1 = top5 = 0
    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(items), a.batch):
            chunk = items[i : i + a.batch]
            x = torch.stack([transform(Image.open(p).convert("RGB")) for p, _ in chunk])
            best = model(x).topk(5, dim=1).indices
            for row, (_, label) in zip(best.tolist(), chunk):
                top1 += row[0] == label
                top5 += label in row
    seconds = time.perf_counter() - start
    n = len(items)
    print(f"timm {a.model}: top-1 {100 * top1 / n:.2f}%  top-5 {100 * top5 / n:.2f}%  on {n} images, "
          f"{n / seconds:.1f} images/s ({a.threads} threads, batch {a.batch})")


if __name__ == "__main__":
    main()
