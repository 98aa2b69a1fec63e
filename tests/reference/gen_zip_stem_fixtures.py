"""Generate zip-stem fixtures into tests/fixtures/loader/stems/ (run from the repo root).

    python tests/reference/gen_zip_stem_fixtures.py

`torch.save(obj, "<stem>.pth")` names the folder inside the zip after the file stem
(`<stem>/data.pkl`, `<stem>/data/0`, ...), so the archive layout depends on the stem's
length. zip 9.8.1 rejects the layout a 21-character stem produces (see
weights/src/torch_zip.rs). This writes the same tiny state dict under every stem length
1..64, the stem being the first N characters of ALPHABET repeated, and `expected.json` with
the tensors every one of them must load to.
"""
import json
import os
import shutil

import torch

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "loader", "stems")
ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789_"
LENGTHS = range(1, 65)


def stem(n):
    return (ALPHABET * (n // len(ALPHABET) + 1))[:n]


def main():
    shutil.rmtree(OUT_DIR, ignore_errors=True)
    os.makedirs(OUT_DIR)
    sd = {
        "a.weight": torch.arange(6, dtype=torch.float32).reshape(2, 3),
        "b.bias": torch.ones(2),
    }
    for n in LENGTHS:
        # Saved through the path, not a file object: only then does torch use the stem.
        torch.save(sd, os.path.join(OUT_DIR, f"{stem(n)}.pth"))
    expected = {
        "alphabet": ALPHABET,
        "lengths": [LENGTHS.start, LENGTHS.stop - 1],
        "files": [f"{stem(n)}.pth" for n in LENGTHS],
        "tensors": {
            k: {"dtype": "float32", "shape": list(v.shape), "values": v.flatten().tolist()}
            for k, v in sd.items()
        },
        "torch": torch.__version__,
    }
    with open(os.path.join(OUT_DIR, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
