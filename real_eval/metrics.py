"""Binary segmentation metrics for real key photos, with ignore pixels and bootstrap intervals.

Inputs everywhere: ``pred`` bool/0-1 (H, W) predicted key mask; ``gt`` uint8 (H, W) with
0 = background, 1 = key, 255 = ignore (``IGNORE``). Ignore pixels are excluded from every count:
region counts, boundary pixels and Boundary-IoU bands.

Region metrics (counts over non-ignore pixels): IoU = TP/(TP+FP+FN), Dice = 2TP/(2TP+FP+FN),
precision = TP/(TP+FP), recall = TP/(TP+FN).

Boundary F1 (Csurka et al., "What is a good evaluation measure for semantic segmentation?",
BMVC 2013; the DAVIS F measure): boundary pixels are foreground pixels with a 4-neighbour of
background (pixels outside the image do not count as background, so a key cut by the frame has
no boundary along the frame, as DAVIS' ``seg2bmap``). Boundary precision = share of predicted
boundary pixels within ``tol`` (Euclidean px) of a GT boundary pixel; recall = share of GT
boundary pixels within ``tol`` of a predicted one; F1 = 2PR/(P+R). ``tol`` is given in pixels
(``tol_px``) or as a fraction of the image diagonal (``tol_frac``; DAVIS uses 0.008).
Predicted boundary pixels lying in the ignore region are dropped; a GT key pixel next only to
ignore pixels is not a GT boundary pixel.

Boundary IoU (Cheng et al., "Boundary IoU: Improving Object-Centric Image Segmentation
Evaluation", CVPR 2021): IoU of G_d ∩ G and P_d ∩ P, the mask pixels within distance d of their
own contour, d = round(``d_frac`` x diagonal) px (0.02 in the paper, at least 1); computed like
the reference code (erosion by a 3x3 square d times, image border counts as contour).

Empty conventions (documented, tested): when a ratio's denominator is 0 both masks are empty for
that ratio, and the value is 1.0 (perfect: nothing to find, nothing found). Concretely: GT and
prediction both empty -> IoU = Dice = precision = recall = BF1 = BIoU = 1. GT empty, prediction
not -> IoU = Dice = precision = 0, recall = 1 (no key was missed). GT not empty, prediction
empty -> IoU = Dice = recall = 0, precision = 1 (no false alarm). Boundary precision/recall
follow the same rule on boundary pixels.

Aggregation (:func:`summarize`): per-image means (each photo weighs the same) and micro (pooled)
values (counts summed over all photos, then the ratio: large keys weigh more), each with a
percentile bootstrap 95% interval over photos (Efron & Tibshirani 1993), resampling image indices
with ``np.random.default_rng(seed)``.
"""

from __future__ import annotations

from typing import Any, Sequence

import cv2
import numpy as np
from scipy import ndimage

IGNORE = 255

__all__ = [
    "IGNORE",
    "confusion_counts",
    "region_metrics",
    "boundary_pixels",
    "boundary_f1",
    "boundary_iou",
    "image_metrics",
    "summarize",
    "bootstrap_ci",
    "METRIC_NAMES",
]

METRIC_NAMES = ("iou", "dice", "precision", "recall", "boundary_f1", "boundary_iou")


def _ratio(num: float, den: float) -> float:
    return 1.0 if den == 0 else float(num) / float(den)


def _check(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    if pred.shape != gt.shape or pred.ndim != 2:
        raise ValueError(f"pred {pred.shape} and gt {gt.shape} must be the same (H, W) shape")
    bad = np.setdiff1d(np.unique(gt), [0, 1, IGNORE])
    if bad.size:
        raise ValueError(f"gt values must be 0, 1 or 255 (ignore); found {bad.tolist()}")
    valid = gt != IGNORE
    return pred.astype(bool), gt == 1, valid


def confusion_counts(pred: np.ndarray, gt: np.ndarray) -> dict[str, int]:
    """TP, FP, FN, TN and the number of ignore pixels (ints) over non-ignore pixels."""
    p, g, valid = _check(pred, gt)
    tp = int(np.count_nonzero(p & g))
    fp = int(np.count_nonzero(p & ~g & valid))
    fn = int(np.count_nonzero(~p & g))
    n_valid = int(np.count_nonzero(valid))
    return {"tp": tp, "fp": fp, "fn": fn, "tn": n_valid - tp - fp - fn, "n_ignore": int(valid.size - n_valid)}


def region_metrics(tp: int, fp: int, fn: int) -> dict[str, float]:
    """IoU, Dice, precision, recall from counts (empty conventions: module docstring)."""
    return {
        "iou": _ratio(tp, tp + fp + fn),
        "dice": _ratio(2 * tp, 2 * tp + fp + fn),
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
    }


def boundary_pixels(fg: np.ndarray, background: np.ndarray | None = None) -> np.ndarray:
    """Inner 4-connected boundary: fg pixels with a 4-neighbour in ``background``.

    Args:
        fg: bool (H, W) foreground.
        background: bool (H, W) pixels that count as background (default ``~fg``); outside the
            image never counts as background.
    Returns:
        bool (H, W).
    """
    fg = np.asarray(fg, bool)
    bg = ~fg if background is None else np.asarray(background, bool)
    pad = np.pad(bg, 1, constant_values=False)
    near_bg = pad[:-2, 1:-1] | pad[2:, 1:-1] | pad[1:-1, :-2] | pad[1:-1, 2:]
    return fg & near_bg


def _tolerance(shape: tuple[int, int], tol_px: float | None, tol_frac: float | None) -> float:
    if tol_px is not None:
        if tol_px < 0:
            raise ValueError(f"tol_px must be >= 0, got {tol_px}")
        return float(tol_px)
    if tol_frac is None or tol_frac < 0:
        raise ValueError("give tol_px (pixels) or tol_frac (fraction of the diagonal, e.g. 0.008)")
    return float(tol_frac) * float(np.hypot(*shape))


def boundary_f1(pred: np.ndarray, gt: np.ndarray, *, tol_px: float | None = None, tol_frac: float | None = 0.008) -> dict[str, Any]:
    """Boundary F1 (Csurka et al. 2013) with tolerance ``tol_px`` px or ``tol_frac`` x diagonal.

    Returns a dict: ``boundary_f1``, ``boundary_precision``, ``boundary_recall`` (floats in
    [0, 1]) and the counts ``bp_matched``, ``bp_total`` (predicted boundary px matched / all),
    ``bg_matched``, ``bg_total`` (GT boundary px matched / all), ``tol_px`` (the tolerance used).
    """
    p, g, valid = _check(pred, gt)
    tol = _tolerance(p.shape, tol_px, tol_frac)
    pb = boundary_pixels(p) & valid
    gb = boundary_pixels(g, background=valid & ~g)
    n_pb, n_gb = int(pb.sum()), int(gb.sum())
    if n_pb and n_gb:
        d_to_g = ndimage.distance_transform_edt(~gb)
        d_to_p = ndimage.distance_transform_edt(~pb)
        m_p = int(np.count_nonzero(d_to_g[pb] <= tol))
        m_g = int(np.count_nonzero(d_to_p[gb] <= tol))
    else:
        m_p = m_g = 0
    bp, br = _ratio(m_p, n_pb), _ratio(m_g, n_gb)
    f1 = 0.0 if bp + br == 0 else 2 * bp * br / (bp + br)
    return {"boundary_f1": f1, "boundary_precision": bp, "boundary_recall": br,
            "bp_matched": m_p, "bp_total": n_pb, "bg_matched": m_g, "bg_total": n_gb, "tol_px": tol}


def _band(fg: np.ndarray, d: int) -> np.ndarray:
    """Pixels of ``fg`` within chessboard distance d of its contour (image border = contour)."""
    u8 = np.pad(fg.astype(np.uint8), 1, constant_values=0)
    eroded = cv2.erode(u8, np.ones((2 * d + 1, 2 * d + 1), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return fg & ~eroded[1:-1, 1:-1].astype(bool)


def boundary_iou(pred: np.ndarray, gt: np.ndarray, *, d_frac: float = 0.02, d_px: int | None = None) -> dict[str, Any]:
    """Boundary IoU (Cheng et al. 2021), d = ``d_px`` or max(1, round(d_frac x diagonal)).

    Returns ``boundary_iou`` (float in [0, 1]), ``biou_inter``, ``biou_union`` (ints), ``d_px``.
    """
    p, g, valid = _check(pred, gt)
    d = int(d_px) if d_px is not None else max(1, int(round(d_frac * float(np.hypot(*p.shape)))))
    pd, gd = _band(p, d) & valid, _band(g, d) & valid
    inter, union = int(np.count_nonzero(pd & gd)), int(np.count_nonzero(pd | gd))
    return {"boundary_iou": _ratio(inter, union), "biou_inter": inter, "biou_union": union, "d_px": d}


def image_metrics(pred: np.ndarray, gt: np.ndarray, *, tol_px: float | None = None, tol_frac: float | None = 0.008,
                  biou_d_frac: float = 0.02) -> dict[str, Any]:
    """All metrics of one photo: counts, region metrics, boundary F1, Boundary IoU, key share.

    ``key_share`` = GT key pixels / non-ignore pixels (0 when the photo is all ignore).
    """
    c = confusion_counts(pred, gt)
    out: dict[str, Any] = dict(c)
    out.update(region_metrics(c["tp"], c["fp"], c["fn"]))
    out.update(boundary_f1(pred, gt, tol_px=tol_px, tol_frac=tol_frac))
    out.update(boundary_iou(pred, gt, d_frac=biou_d_frac))
    n_valid = c["tp"] + c["fp"] + c["fn"] + c["tn"]
    out["key_share"] = (c["tp"] + c["fn"]) / n_valid if n_valid else 0.0
    return out


_COUNT_KEYS = ("tp", "fp", "fn", "bp_matched", "bp_total", "bg_matched", "bg_total", "biou_inter", "biou_union")


def _pooled_from_sums(s: dict[str, float]) -> dict[str, float]:
    out = region_metrics(s["tp"], s["fp"], s["fn"])
    bp, br = _ratio(s["bp_matched"], s["bp_total"]), _ratio(s["bg_matched"], s["bg_total"])
    out["boundary_f1"] = 0.0 if bp + br == 0 else 2 * bp * br / (bp + br)
    out["boundary_iou"] = _ratio(s["biou_inter"], s["biou_union"])
    return out


def _pooled(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    return _pooled_from_sums({k: sum(r[k] for r in rows) for k in _COUNT_KEYS})


def bootstrap_ci(n: int, stat, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of ``stat(indices) -> float`` over ``n`` photos.

    Resamples ``n`` indices with replacement ``n_boot`` times using ``np.random.default_rng(seed)``.
    Returns (low, high); (nan, nan) when ``n == 0``.
    """
    if n == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    vals = np.array([stat(rng.integers(0, n, n)) for _ in range(int(n_boot))], float)
    a = (1.0 - level) / 2.0
    return (float(np.quantile(vals, a)), float(np.quantile(vals, 1.0 - a)))


def summarize(rows: Sequence[dict[str, Any]], *, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict[str, Any]:
    """Aggregate per-image metric dicts (from :func:`image_metrics`).

    Returns ``{"n_images", "micro": {metric: value}, "micro_ci": {metric: [lo, hi]},
    "mean": {metric: value}, "mean_ci": {metric: [lo, hi]}, "ci_level", "n_boot", "seed"}`` for
    the metrics in :data:`METRIC_NAMES`.
    """
    rows = list(rows)
    n = len(rows)
    out: dict[str, Any] = {"n_images": n, "ci_level": level, "n_boot": n_boot, "seed": seed}
    if n == 0:
        nan = float("nan")
        out.update({k: {m: nan for m in METRIC_NAMES} for k in ("micro", "mean")})
        out.update({k: {m: [nan, nan] for m in METRIC_NAMES} for k in ("micro_ci", "mean_ci")})
        return out
    table = np.array([[r[m] for m in METRIC_NAMES] for r in rows], float)
    out["mean"] = {m: float(v) for m, v in zip(METRIC_NAMES, table.mean(0))}
    out["micro"] = _pooled(rows)
    if int(n_boot) < 1:  # no intervals asked for
        nan = float("nan")
        out.update({k: {m: [nan, nan] for m in METRIC_NAMES} for k in ("micro_ci", "mean_ci")})
        return out
    # One shared resampling for all metrics (same seed -> same index draws).
    rng = np.random.default_rng(seed)
    draws = [rng.integers(0, n, n) for _ in range(int(n_boot))]
    a = (1.0 - level) / 2.0
    mean_boot = np.array([table[idx].mean(0) for idx in draws])
    counts = np.array([[r[k] for k in _COUNT_KEYS] for r in rows], float)
    micro_boot = np.array([[_pooled_from_sums(dict(zip(_COUNT_KEYS, counts[idx].sum(0))))[m] for m in METRIC_NAMES]
                           for idx in draws])
    out["mean_ci"] = {m: [float(np.quantile(mean_boot[:, j], a)), float(np.quantile(mean_boot[:, j], 1 - a))]
                      for j, m in enumerate(METRIC_NAMES)}
    out["micro_ci"] = {m: [float(np.quantile(micro_boot[:, j], a)), float(np.quantile(micro_boot[:, j], 1 - a))]
                       for j, m in enumerate(METRIC_NAMES)}
    return out
