"""Inference scale of the ``tiles`` strategy on real photos, judged by grouped cross-calibration.

A model trained at 192 px sees keys 30-130 px long; in a 1600 px photo at native resolution a key
that spans a fifth of the photo is 320 px long, larger than anything it trained on. ``tiles``
with ``tile_scale`` = T / (photo long side) runs the model as if every photo had a long side of T
model pixels, whatever its resolution. For each T the threshold is calibrated on the other photo
groups and the held-out group is scored (:func:`real_eval.folds.grouped_folds`); the last row
also chooses T itself on the other groups. Also prints the paired interval of each T against
native resolution (``tiles`` at scale 1, the shipped strategy).

Usage::

    python bench/tile_scale.py --real ../shared/data/real_keys_dev --checkpoint models/keysynth-unet
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGETS = (256, 384, 512, 768, 1024)


def predict_at(model, spec, samples, target: int | None) -> list[np.ndarray]:
    """Tiles probabilities per photo with the long side mapped to ``target`` px (None = native)."""
    from real_eval.strategies import predict_probs

    out = []
    for s in samples:
        scale = 1.0 if target is None else target / max(s.image.shape[:2])
        out.append(predict_probs(model, spec, s.image, strategy="tiles", tile_scale=scale,
                                 tile_max_side=None).astype(np.float16))
    return out


def main(argv: list[str] | None = None) -> int:
    from ship_model import cross_calibrated

    from real_eval.dataset import load_real_set
    from real_eval.folds import comparison_table
    from real_eval.model_io import load_checkpoint

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--real", required=True, help="real annotated set (any supported format)")
    p.add_argument("--checkpoint", default=None, help="checkpoint or model folder (default: the shipped model)")
    p.add_argument("--targets", type=int, nargs="+", default=list(TARGETS), help="long sides to try, model px")
    args = p.parse_args(argv)

    samples = load_real_set(args.real)
    model, spec = load_checkpoint(args.checkpoint, "cpu")
    model.eval()
    probs, seconds = {}, {}
    for t in [None, *args.targets]:
        key = "native" if t is None else f"T={t}"
        t0 = time.perf_counter()
        probs[key] = predict_at(model, spec, samples, t)
        seconds[key] = (time.perf_counter() - t0) / len(samples)
        print(f"predicted {key} ({seconds[key]:.2f} s/photo)", flush=True)
    res = {}
    for key in probs:
        rows, folds = cross_calibrated({key: probs[key]}, samples)
        res[key] = {r["name"]: r["iou"] for r in rows}
    rows, folds = cross_calibrated(probs, samples)
    res["T chosen on other groups"] = {r["name"]: r["iou"] for r in rows}
    print("  folds choose: " + ", ".join(f"{f['held_out']} -> {f['strategy']} @ {f['threshold']:.2f}" for f in folds))
    print("\ngrouped cross-calibrated:\n" + comparison_table(
        res, "native", what="tiles scale", extra={k: f"{v:.2f} s/photo" for k, v in seconds.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
