"""Compare inference strategies (resize / tiles / coarse-to-fine) on a real annotated set.

Usage::

    .venv/bin/python bench/bench_strategies.py --checkpoint runs/X/checkpoints/last.pt \\
        --real-set ../shared/data/real_keys_dev [--device cuda] [--tile-scale 1.0 0.5] \\
        [--upscale 2.5] [--json bench_strategies.json]

For every photo and strategy: IoU, Dice and boundary F1 of the thresholded probability map
(ignore pixels = 255 excluded), and seconds per megapixel. Prints a per-image table, then means
per strategy split by key size (share of the photo's valid pixels covered by key, bins set by
``--size-bins`` in percent), and optionally writes everything as JSON (atomic write).
``--upscale F`` enlarges each photo (INTER_CUBIC) and mask (INTER_NEAREST) by F to mimic the
3000-4000 px phone photos the dev set lacks (long side <= 1600 px there); it adds pixels, not
detail, so use it for timing and for the scale the model sees, not as a real high-res test.

Metrics: ``real_eval.metrics.image_metrics`` (IoU, Dice, boundary F1 of Csurka et al. 2013 with
the DAVIS tolerance 0.008 x diagonal, Boundary IoU of Cheng et al. 2021); photos are read with
``real_eval.dataset.load_real_set`` (any supported annotation format).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from real_eval.dataset import load_real_set  # noqa: E402
from real_eval.metrics import image_metrics  # noqa: E402
from real_eval.model_io import load_checkpoint  # noqa: E402
from real_eval.strategies import STRATEGIES, predict_probs  # noqa: E402


def size_bin(share_pct: float, edges: list[float]) -> str:
    lo = 0.0
    for e in edges:
        if share_pct < e:
            return f"{lo:g}-{e:g}%"
        lo = e
    return f">={lo:g}%"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True, type=Path)
    ap.add_argument("--real-set", required=True, type=Path, help="real set folder (e.g. images/ + masks/)")
    ap.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threshold", type=float, default=0.5, help="probability -> mask threshold")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--tile-size", type=int, default=None)
    ap.add_argument("--overlap", type=float, default=0.25)
    ap.add_argument("--tile-scale", type=float, nargs="+", default=[1.0], help="one tiles run per value")
    ap.add_argument("--coarse-threshold", type=float, default=0.3)
    ap.add_argument("--margin", type=float, default=0.25)
    ap.add_argument("--upscale", type=float, default=1.0, help="enlarge photos and masks by this factor")
    ap.add_argument("--size-bins", type=float, nargs="+", default=[0.5, 2.0], help="key share edges, percent")
    ap.add_argument("--bf1-tol", type=float, default=0.008, help="boundary tolerance, fraction of the diagonal")
    ap.add_argument("--json", type=Path, default=None, help="write all figures here")
    args = ap.parse_args(argv)

    model, spec = load_checkpoint(args.checkpoint, args.device)
    samples = [(s.name, s.image, s.mask) for s in load_real_set(args.real_set)]
    runs = []
    for s in args.strategies:
        if s == "tiles":
            runs += [(f"tiles@{ts:g}", s, {"tile_scale": ts}) for ts in args.tile_scale]
        else:
            runs.append((s, s, {}))
    common = dict(device=args.device, batch_size=args.batch_size, tile_size=args.tile_size, overlap=args.overlap,
                  coarse_threshold=args.coarse_threshold, margin=args.margin)
    sync = (lambda: __import__("torch").cuda.synchronize()) if args.device.startswith("cuda") else (lambda: None)

    rows = []
    print(f"{'image':<16}{'size':>11}{'share%':>8} {'strategy':<16}{'IoU':>7}{'Dice':>7}{'BF1':>7}{'BIoU':>7}{'s/MP':>8}")
    for name, image, mask in samples:
        if args.upscale != 1.0:
            image = cv2.resize(image, None, fx=args.upscale, fy=args.upscale, interpolation=cv2.INTER_CUBIC)
            mask = cv2.resize(mask, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_NEAREST)
        h, w = mask.shape
        valid = mask != 255
        share = 100.0 * float((mask == 1).sum()) / max(1, int(valid.sum()))
        predict_probs(model, spec, image[:64, :64], strategy="resize", device=args.device)  # warm-up
        for label, strategy, extra in runs:
            sync()
            t0 = time.perf_counter()
            probs = predict_probs(model, spec, image, strategy=strategy, **common, **extra)
            sync()
            sec = time.perf_counter() - t0
            m = image_metrics(probs >= args.threshold, mask, tol_frac=args.bf1_tol)
            sc = {"iou": m["iou"], "dice": m["dice"], "bf1": m["boundary_f1"], "biou": m["boundary_iou"]}
            row = {"image": name, "height": h, "width": w, "share_pct": share,
                   "size_bin": size_bin(share, args.size_bins), "strategy": label,
                   "s_per_mp": sec / (h * w / 1e6), **sc}
            rows.append(row)
            print(f"{name:<16}{f'{w}x{h}':>11}{share:>8.2f} {label:<16}{sc['iou']:>7.3f}{sc['dice']:>7.3f}"
                  f"{sc['bf1']:>7.3f}{sc['biou']:>7.3f}{row['s_per_mp']:>8.3f}")

    summary = {}
    print(f"\n{'strategy':<16}{'key share':<12}{'n':>3}{'IoU':>7}{'Dice':>7}{'BF1':>7}{'BIoU':>7}{'s/MP':>8}")
    order = [size_bin(lo, args.size_bins) for lo in [0.0, *args.size_bins]]
    bins = [b for b in order if any(r["size_bin"] == b for r in rows)] + ["all"]
    for label, _, _ in runs:
        for b in bins:
            sel = [r for r in rows if r["strategy"] == label and (b == "all" or r["size_bin"] == b)]
            if not sel:
                continue
            mean = {k: float(np.mean([r[k] for r in sel])) for k in ("iou", "dice", "bf1", "biou", "s_per_mp")}
            summary.setdefault(label, {})[b] = {"n": len(sel), **mean}
            print(f"{label:<16}{b:<12}{len(sel):>3}{mean['iou']:>7.3f}{mean['dice']:>7.3f}{mean['bf1']:>7.3f}"
                  f"{mean['biou']:>7.3f}{mean['s_per_mp']:>8.3f}")

    if args.json:
        payload = {"args": {k: str(v) for k, v in vars(args).items()}, "model_spec": spec,
                   "rows": rows, "summary": summary}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=args.json.parent, prefix=args.json.name, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=1)
        os.replace(tmp, args.json)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
