"""Evaluate a model on real annotated photos (used by the trainer and by ``keysynth eval``).

:func:`evaluate_model` predicts every photo with a strategy (default
``real_eval.strategies.DEFAULT_STRATEGY``, see :mod:`real_eval.strategies`), thresholds the probabilities, computes the metrics of
:mod:`real_eval.metrics` per photo and overall (micro + per-image means, bootstrap 95%
intervals), a threshold sweep from the probability maps (per-photo histograms of the key
probability of GT-key and GT-background pixels, 100 bins, so any threshold on the 0.01 grid is
exact), and metrics by key size. With ``out_dir`` it also writes ``metrics.json``,
``per_image.csv``, ``overlays/NAME.png`` (GT contour green, predicted contour red, false
positives tinted red, misses tinted yellow, ignore tinted grey), ``probs/NAME.png`` (key
probability x 255) and the self-contained ``report.html``.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from keysynth.common import atomic_write_text
from real_eval.dataset import output_file
from real_eval.metrics import IGNORE, METRIC_NAMES, image_metrics, region_metrics, summarize
from real_eval.predict import atomic_write_png
from real_eval.strategies import DEFAULT_STRATEGY, predict_probs

__all__ = ["evaluate_model", "evaluate_checkpoint", "probability_histograms", "threshold_sweep", "best_threshold",
           "make_overlay", "SIZE_BINS"]

# (label, low, high): key share in [low, high); "no key" = photos without key pixels.
SIZE_BINS = (("no key", 0.0, 0.0), ("< 0.5%", 0.0, 0.005), ("0.5-1%", 0.005, 0.01), ("1-2%", 0.01, 0.02),
             ("2-4%", 0.02, 0.04), ("4-8%", 0.04, 0.08), ("8-16%", 0.08, 0.16), (">= 16%", 0.16, 1.01))
_N_BINS = 100
PROB_EDGES = np.linspace(0.0, 1.0, _N_BINS + 1)


def make_overlay(image: np.ndarray, gt: np.ndarray, pred: np.ndarray, *, max_side: int = 1024) -> np.ndarray:
    """uint8 RGB overlay of prediction vs GT, long side at most ``max_side`` px.

    GT contour green, predicted contour red (2 px, drawn at the output scale from full-resolution
    contours), false positives tinted red, false negatives tinted yellow, ignore tinted grey.
    """
    h, w = gt.shape
    scale = min(1.0, max_side / max(h, w))
    pred = np.asarray(pred, bool)
    key = gt == 1
    ign = gt == IGNORE
    out = image.astype(np.float32) * 0.85
    for region, color in ((pred & ~key & ~ign, (255, 40, 40)), (key & ~pred, (255, 220, 0)), (ign, (150, 150, 150))):
        out[region] = out[region] * 0.55 + np.array(color, np.float32) * 0.45
    out = np.clip(out, 0, 255).astype(np.uint8)
    if scale < 1.0:
        out = cv2.resize(out, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    out = np.ascontiguousarray(out)
    for m, color in ((key, (0, 230, 0)), (pred, (255, 0, 0))):
        cnts, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
        cnts = [np.round(c.astype(np.float32) * scale).astype(np.int32) for c in cnts]
        cv2.drawContours(out, cnts, -1, color, 2, lineType=cv2.LINE_AA)
    return out


def probability_histograms(prob: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Histograms (int64 (100,)) of a float probability map (H, W) over key pixels (``mask == 1``)
    and background pixels (``mask == 0``), 100 equal bins of [0, 1]: every threshold on the 0.01
    grid is exact from them (ignore pixels are left out)."""
    return (np.histogram(prob[mask == 1], bins=PROB_EDGES)[0], np.histogram(prob[mask == 0], bins=PROB_EDGES)[0])


def threshold_sweep(pos_hists: np.ndarray, neg_hists: np.ndarray) -> dict[str, Any]:
    """Micro IoU / Dice / precision / recall and the per-image mean IoU at thresholds 0.05, 0.10,
    ..., 0.95 (pred = prob >= t) from per-image :func:`probability_histograms` (n_images, 100)."""
    idx = list(range(5, _N_BINS, 5))
    thr = [float(round(PROB_EDGES[i], 4)) for i in idx]
    pos_tot = pos_hists.sum(1)
    res: dict[str, list] = {k: [] for k in ("micro_iou", "micro_dice", "micro_precision", "micro_recall", "mean_iou")}
    for i in idx:
        tp_i = pos_hists[:, i:].sum(1)
        fp_i = neg_hists[:, i:].sum(1)
        fn_i = pos_tot - tp_i
        m = region_metrics(int(tp_i.sum()), int(fp_i.sum()), int(fn_i.sum()))
        for k in ("iou", "dice", "precision", "recall"):
            res[f"micro_{k}"].append(m[k])
        res["mean_iou"].append(float(np.mean([region_metrics(int(a), int(b), int(c))["iou"]
                                               for a, b, c in zip(tp_i, fp_i, fn_i)])) if len(tp_i) else float("nan"))
    best = int(np.nanargmax(res["micro_iou"])) if res["micro_iou"] else 0
    return {"thresholds": thr, **res, "best_threshold": thr[best] if thr else None,
            "best_micro_iou": res["micro_iou"][best] if thr else None}


def best_threshold(hists: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[float, float]:
    """``(threshold, mean IoU)``: the threshold on :func:`threshold_sweep`'s 0.05 grid with the
    highest mean IoU over images, from their :func:`probability_histograms`; ties go to the
    threshold nearest 0.5."""
    sweep = threshold_sweep(np.array([h[0] for h in hists]), np.array([h[1] for h in hists]))
    grid, curve = sweep["thresholds"], sweep["mean_iou"]
    best = max(range(len(grid)), key=lambda i: (round(float(curve[i]), 12), -abs(grid[i] - 0.5)))
    return float(grid[best]), float(curve[best])


def _by_size(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for label, lo, hi in SIZE_BINS:
        if label == "no key":
            sel = [r for r in rows if r["key_share"] == 0]
        else:
            sel = [r for r in rows if r["key_share"] > 0 and lo <= r["key_share"] < hi]
        entry: dict[str, Any] = {"bin": label, "n_images": len(sel)}
        for m in METRIC_NAMES:
            entry[f"mean_{m}"] = float(np.mean([r[m] for r in sel])) if sel else None
        if sel:
            entry["micro_iou"] = region_metrics(sum(r["tp"] for r in sel), sum(r["fp"] for r in sel),
                                                sum(r["fn"] for r in sel))["iou"]
        else:
            entry["micro_iou"] = None
        out.append(entry)
    return out


def evaluate_model(model, model_spec: dict[str, Any], samples: Sequence, *, device: str = "cpu", threshold: float = 0.5,
                   strategy: str = DEFAULT_STRATEGY, boundary_tol_px: float | None = None, boundary_tol_frac: float = 0.008,
                   biou_d_frac: float = 0.02, n_boot: int = 1000, seed: int = 0, out_dir: str | os.PathLike | None = None,
                   progress: bool = False, title: str = "keysynth evaluation on real photos",
                   **strategy_options) -> dict[str, Any]:
    """Evaluate ``model`` on real samples.

    Args:
        model: torch module (its train/eval mode is restored afterwards).
        model_spec: the checkpoint's model_spec (``image_size``, ``mean``, ``std``, ...).
        samples: :class:`real_eval.dataset.RealSample` items (``name``, ``image``, ``mask``).
        threshold: key if probability >= threshold.
        strategy: prediction strategy name (``resize`` or any of ``real_eval.strategies``).
        boundary_tol_px: boundary-F1 tolerance in px; ``None`` -> ``boundary_tol_frac`` x diagonal
            (DAVIS: 0.008).
        biou_d_frac: Boundary IoU band width as a fraction of the diagonal (Cheng et al.: 0.02).
        n_boot, seed: bootstrap resamples and the seed of its ``np.random.default_rng``.
        out_dir: when given, write metrics.json, per_image.csv, overlays/, probs/, report.html.
    Returns:
        ``{"overall": summarize(...) (micro, micro_ci, mean, mean_ci, n_images), "per_image": [...],
        "sweep": {...}, "by_size": [...], "settings": {...}}`` (JSON-serialisable).
    """
    from tqdm import tqdm

    if not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    out_path = Path(out_dir) if out_dir is not None else None
    rows, pos_h, neg_h = [], [], []
    was_training = bool(getattr(model, "training", False))
    model.eval()
    try:
        for s in tqdm(samples, desc="eval", unit="photo", disable=not progress):
            prob = predict_probs(model, model_spec, s.image, strategy=strategy, device=device, **strategy_options)
            if prob.shape != s.mask.shape:
                raise ValueError(f"strategy {strategy!r} returned {prob.shape} for {s.name} of size {s.mask.shape}")
            pred = prob >= threshold
            r = {"name": s.name, "height": int(s.mask.shape[0]), "width": int(s.mask.shape[1])}
            r.update(image_metrics(pred, s.mask, tol_px=boundary_tol_px, tol_frac=boundary_tol_frac, biou_d_frac=biou_d_frac))
            rows.append(r)
            pos, neg = probability_histograms(prob, s.mask)
            pos_h.append(pos)
            neg_h.append(neg)
            if out_path is not None:
                atomic_write_png(output_file(out_path, "overlays", f"{s.name}.png"), make_overlay(s.image, s.mask, pred))
                atomic_write_png(output_file(out_path, "probs", f"{s.name}.png"), np.round(prob * 255).astype(np.uint8))
    finally:
        model.train(was_training)
    result = {
        "overall": summarize(rows, n_boot=n_boot, seed=seed),
        "per_image": rows,
        "sweep": threshold_sweep(np.array(pos_h).reshape(-1, _N_BINS), np.array(neg_h).reshape(-1, _N_BINS)),
        "by_size": _by_size(rows),
        "settings": {"threshold": float(threshold), "strategy": strategy, "boundary_tol_px": boundary_tol_px,
                     "boundary_tol_frac": boundary_tol_frac, "biou_d_frac": biou_d_frac, "n_boot": n_boot, "seed": seed,
                     "model_spec": {k: model_spec.get(k) for k in ("arch", "encoder_name", "image_size")}},
    }
    if out_path is not None:
        write_outputs(result, out_path, title=title)
    return result


def write_outputs(result: dict[str, Any], out_dir: Path, *, title: str = "keysynth evaluation on real photos") -> None:
    """metrics.json, per_image.csv and report.html in ``out_dir`` (atomic writes)."""
    from real_eval.report import render_report

    out_dir = Path(out_dir)
    atomic_write_text(out_dir / "metrics.json", json.dumps(result, indent=2, allow_nan=True))
    cols = ["name", "height", "width", "key_share", *METRIC_NAMES, "boundary_precision", "boundary_recall",
            "tp", "fp", "fn", "tn", "n_ignore", "tol_px", "d_px"]
    buf = io.StringIO()
    wr = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    wr.writeheader()
    for r in result["per_image"]:
        wr.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    atomic_write_text(out_dir / "per_image.csv", buf.getvalue())
    atomic_write_text(out_dir / "report.html", render_report(result, overlay_dir=out_dir / "overlays", title=title))


def evaluate_checkpoint(checkpoint: str | os.PathLike, real: str | os.PathLike, out_dir: str | os.PathLike, *,
                        strategy: str = DEFAULT_STRATEGY, threshold: float = 0.5, device: str = "cpu", fmt: str | None = None,
                        classes: tuple[str, ...] | None = None, progress: bool = True, **kw) -> dict[str, Any]:
    """``keysynth eval``: load a checkpoint and a real set, evaluate, write every output."""
    from real_eval.dataset import load_real_set
    from real_eval.model_io import load_checkpoint

    samples = load_real_set(real, fmt=fmt, classes=classes)
    if not samples:
        raise ValueError(f"real set {real} holds no images")
    model, spec = load_checkpoint(checkpoint, device)
    return evaluate_model(model, spec, samples, device=device, threshold=threshold, strategy=strategy,
                          out_dir=out_dir, progress=progress, title=f"{Path(checkpoint).name} on {Path(real).name}", **kw)
