"""Periodic evaluation for the trainer: a thin adapter over ``real_eval`` (tolerates its absence).

- Synthetic validation set: rendered once from a separate run seed; predicted at training size
  (no resizing); metrics per image from ``real_eval.metrics.image_metrics`` (IoU, Dice, boundary F1
  with the DAVIS tolerance 0.008 x diagonal; Csurka et al. BMVC 2013), averaged over images. Falls
  back to IoU / Dice computed here when ``real_eval.metrics`` is not importable.
- Real photos: ``real_eval.evaluate.evaluate_model(model, model_spec, samples, ...)["overall"]``
  (its per-image ``"mean"`` block when present) when that module exists, else pad-to-square + resize prediction
  (``real_eval.predict.predict_resize_batch``) scored as above.

All functions return flat ``{"iou", "dice", "boundary_f1"}`` floats (boundary_f1 may be NaN in the
fallback).
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

__all__ = ["SimpleSample", "render_val_set", "load_real_samples", "score_masks", "evaluate_synthetic",
           "evaluate_real", "prediction_grid"]

log = logging.getLogger("keysynth.train")


@dataclass
class SimpleSample:
    """``name``, ``image`` uint8 (H, W, 3) RGB, ``mask`` uint8 (H, W) {0, 1, 255} (RealSample-like)."""

    name: str
    image: np.ndarray
    mask: np.ndarray


def render_val_set(producer, n: int, run_seed: int) -> list[SimpleSample]:
    """Render samples ``0..n-1`` of ``run_seed`` in this process (fixed validation set)."""
    out = []
    for i in range(n):
        s = producer.render(i, run_seed)
        out.append(SimpleSample(f"val_{i:05d}", np.asarray(s["image"]), np.asarray(s["mask"])))
    return out


def load_real_samples(root: str) -> list:
    """``real_eval.dataset.load_real_set(root)``; raises ``FileNotFoundError`` for a missing dir."""
    from pathlib import Path

    if not Path(root).exists():
        raise FileNotFoundError(f"real_dir {root} does not exist; pass a folder with images/ and masks/")
    from real_eval.dataset import load_real_set

    return load_real_set(root)


def score_masks(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray]) -> dict[str, float]:
    """Mean over images of IoU, Dice, boundary F1 for bool predictions vs {0,1,255} masks."""
    try:
        from real_eval.metrics import image_metrics
    except ImportError:  # fallback: region metrics only
        image_metrics = None
    rows = []
    for p, g in zip(preds, gts):
        if image_metrics is not None:
            m = image_metrics(p, g)
            rows.append((m["iou"], m["dice"], m["boundary_f1"]))
        else:
            v = g != 255
            tp = float((p & (g == 1) & v).sum())
            fp = float((p & (g == 0) & v).sum())
            fn = float((~p & (g == 1) & v).sum())
            iou = tp / (tp + fp + fn) if tp + fp + fn else 1.0
            dice = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0
            rows.append((iou, dice, float("nan")))
    a = np.array(rows, float).reshape(-1, 3)
    return {"iou": float(a[:, 0].mean()), "dice": float(a[:, 1].mean()), "boundary_f1": float(a[:, 2].mean())}


def evaluate_synthetic(model, model_spec: dict[str, Any], samples: Sequence[SimpleSample], device, batch_size: int = 16,
                       autocast_dtype=None) -> dict[str, float]:
    """Predict the fixed synthetic set at its own size (threshold 0.5) and score it."""
    import torch

    from real_eval.model_io import to_input_tensor

    preds = []
    was_training = model.training
    model.eval()
    with torch.inference_mode(), torch.autocast(device_type=torch.device(device).type, dtype=autocast_dtype or torch.bfloat16,
                                                 enabled=autocast_dtype is not None):
        for i in range(0, len(samples), batch_size):
            x = to_input_tensor(np.stack([s.image for s in samples[i:i + batch_size]]), model_spec).to(device)
            preds.extend((model(x).float()[:, 0] > 0).cpu().numpy())
    model.train(was_training)
    return score_masks(preds, [s.mask for s in samples])


def evaluate_real(model, model_spec: dict[str, Any], samples: Sequence, device) -> dict[str, float]:
    """Score real photos with ``real_eval.evaluate.evaluate_model`` (or the resize fallback)."""
    was_training = model.training
    model.eval()
    try:
        try:
            from real_eval.evaluate import evaluate_model
        except ImportError:
            evaluate_model = None
        if evaluate_model is not None:
            params = inspect.signature(evaluate_model).parameters
            kwargs = {"device": str(device)} if "device" in params else {}
            if "n_boot" in params:
                kwargs["n_boot"] = 20  # intervals are for reports; keep periodic eval cheap
            overall = evaluate_model(model, model_spec, list(samples), **kwargs)["overall"]
            overall = overall.get("mean", overall)  # per-image means (summarize() layout) or flat
            return {k: float(overall.get(k, float("nan"))) for k in ("iou", "dice", "boundary_f1")}
        from real_eval.predict import predict_resize_batch

        probs = predict_resize_batch(model, model_spec, [s.image for s in samples], device=str(device))
        return score_masks([p > 0.5 for p in probs], [s.mask for s in samples])
    finally:
        model.train(was_training)


def prediction_grid(model, model_spec: dict[str, Any], samples: Sequence, device, n: int = 4, tile: int = 192) -> np.ndarray:
    """uint8 (rows*tile, 3*tile, 3) grid: photo | predicted probability | ground truth, per row."""
    import cv2

    from real_eval.predict import predict_resize_batch

    was_training = model.training
    model.eval()
    samples = list(samples)[:n]
    probs = predict_resize_batch(model, model_spec, [s.image for s in samples], device=str(device))
    model.train(was_training)

    def fit(a):
        return cv2.resize(a, (tile, tile), interpolation=cv2.INTER_AREA)

    rows = []
    for s, p in zip(samples, probs):
        gt = np.where(s.mask == 255, 128, s.mask * 255).astype(np.uint8)
        rows.append(np.concatenate([fit(s.image), np.repeat(fit((p * 255).astype(np.uint8))[..., None], 3, 2),
                                    np.repeat(fit(gt)[..., None], 3, 2)], axis=1))
    return np.concatenate(rows, axis=0) if rows else np.zeros((tile, 3 * tile, 3), np.uint8)
