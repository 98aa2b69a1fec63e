"""Generate the segmentation-metrics fixture into tests/fixtures/seg_metrics/ (from the repo root).

    /work/venv/bin/python tests/reference/gen_seg_metrics_fixtures.py

A small set in the DRIVE layout, written as `gaze segment` and DRIVE store it:

* `pred/<id>_prob.png`: 16-bit gray probabilities (level = round(p * 65535)), random with
  ties (levels drawn from a coarse grid so that equal scores occur in both classes);
* `images/<id>_test.png`, `1st_manual/<id>_manual1.png` (0/255), `mask/<id>_test_mask.png`
  (field of view, 0/255; image 3 has none: every pixel counts);

and `expected.json`: the DRIVE figures per image and pooled over the three, computed here with
numpy from the PNGs (foreground/FOV where the 8-bit value > 127; a pixel is predicted
foreground when level / 65535 >= 0.5): F1 = 2TP / (2TP + FP + FN), accuracy, sensitivity,
specificity, precision, IoU, and the AUC as the Mann-Whitney statistic with average ranks
for ties (equal to scikit-learn's roc_auc_score). The Rust test reads the same PNGs through
gaze's loader and asserts every figure within 1e-12.
"""
import json
import os

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "seg_metrics")
SIZES = [(23, 31), (17, 19), (12, 15)]  # (H, W)


def auc_mann_whitney(scores, labels):
    order = np.argsort(scores, kind="mergesort")
    s = scores[order]
    ranks = np.empty(len(s), dtype=np.float64)
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    pos = labels.astype(bool)
    n_pos, n_neg = pos.sum(), (~pos).sum()
    if n_pos == 0 or n_neg == 0:
        return 0.5
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def figures(levels, truth, valid):
    sel = valid.astype(bool)
    q, t = levels[sel].astype(np.float64), truth[sel].astype(bool)
    pred = q / 65535.0 >= 0.5
    tp = int((pred & t).sum())
    fp = int((pred & ~t).sum())
    fn = int((~pred & t).sum())
    tn = int((~pred & ~t).sum())
    r = lambda a, b: a / b if b else 0.0  # noqa: E731
    return {
        "f1": r(2 * tp, 2 * tp + fp + fn),
        "auc": auc_mann_whitney(q, t),
        "accuracy": r(tp + tn, tp + tn + fp + fn),
        "sensitivity": r(tp, tp + fn),
        "specificity": r(tn, tn + fp),
        "precision": r(tp, tp + fp),
        "iou": r(tp, tp + fp + fn),
        "pixels": int(sel.sum()),
    }


def main():
    rng = np.random.default_rng(7)
    for d in ("pred", "images", "1st_manual", "mask"):
        os.makedirs(os.path.join(OUT, d), exist_ok=True)
    expected = {"images": {}, "pooled": None}
    all_q, all_t, all_v = [], [], []
    for i, (h, w) in enumerate(SIZES, start=1):
        ident = f"{i:02d}"
        truth = (rng.random((h, w)) < 0.3).astype(np.uint8)
        # Scores correlated with the truth, on a coarse grid of levels (ties in both classes).
        p = np.clip(0.35 * truth + rng.random((h, w)) * 0.65, 0, 1)
        levels = (np.round(np.round(p * 40) / 40 * 65535)).astype(np.uint16)
        valid = np.ones((h, w), np.uint8)
        if i < 3:
            yy, xx = np.mgrid[:h, :w]
            valid = (((yy - h / 2) / (h / 2)) ** 2 + ((xx - w / 2) / (w / 2)) ** 2 <= 1.0).astype(np.uint8)
            Image.fromarray(valid * 255).save(os.path.join(OUT, "mask", f"{ident}_test_mask.png"))
        Image.fromarray(levels).save(os.path.join(OUT, "pred", f"{ident}_prob.png"))
        Image.fromarray(truth * 255).save(os.path.join(OUT, "1st_manual", f"{ident}_manual1.png"))
        rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        Image.fromarray(rgb).save(os.path.join(OUT, "images", f"{ident}_test.png"))
        # Read back, as the test does.
        q = np.array(Image.open(os.path.join(OUT, "pred", f"{ident}_prob.png"))).astype(np.int64)
        assert (q == levels).all()
        expected["images"][f"{ident}_test.png"] = figures(q, truth, valid)
        all_q.append(q.ravel()), all_t.append(truth.ravel()), all_v.append(valid.ravel())
    expected["pooled"] = figures(np.concatenate(all_q), np.concatenate(all_t), np.concatenate(all_v))
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
        f.write("\n")
    print(json.dumps(expected["pooled"], indent=1))


if __name__ == "__main__":
    main()
