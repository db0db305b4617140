"""Periodic evaluation for the trainer: a thin adapter over ``real_eval``.

- Synthetic validation set: rendered once from a separate run seed; predicted at training size
  (no resizing); per-image metrics from ``real_eval.metrics.image_metrics`` (IoU, Dice, boundary F1
  with the DAVIS tolerance 0.008 x diagonal; Csurka et al. BMVC 2013), averaged over images.
- Real photos: ``real_eval.evaluate.evaluate_model(...)["overall"]["mean"]`` (per-image means).

All functions return flat ``{"iou", "dice", "boundary_f1"}`` floats.
"""

from __future__ import annotations

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
    from real_eval.metrics import image_metrics

    rows = [image_metrics(p, g) for p, g in zip(preds, gts)]
    return {k: float(np.mean([r[k] for r in rows])) for k in ("iou", "dice", "boundary_f1")}


def evaluate_synthetic(model, model_spec: dict[str, Any], samples: Sequence[SimpleSample], device, batch_size: int = 16,
                       autocast_dtype=None) -> dict[str, float]:
    """Predict the fixed synthetic set at its own size and score it at threshold 0.5; also the
    threshold with the highest mean IoU over these samples (``threshold``, on the 0.05 grid, ties
    to the one nearest 0.5) and that IoU (``iou_at_threshold``).

    A model early in training is often right about where keys are but under-confident (no pixel
    above 0.5); the threshold read off synthetic samples, which the model never trained on and
    which hold no real photo, is a fair default for predicting real ones.
    """
    import torch

    from real_eval.evaluate import best_threshold, probability_histograms
    from real_eval.model_io import to_input_tensor

    preds, hists = [], []
    was_training = model.training
    model.eval()
    with torch.inference_mode(), torch.autocast(device_type=torch.device(device).type, dtype=autocast_dtype or torch.bfloat16,
                                                 enabled=autocast_dtype is not None):
        for i in range(0, len(samples), batch_size):
            x = to_input_tensor(np.stack([s.image for s in samples[i:i + batch_size]]), model_spec).to(device)
            logits = model(x).float()[:, 0]
            preds.extend((logits > 0).cpu().numpy())
            hists.extend(probability_histograms(p, s.mask) for p, s in
                         zip(torch.sigmoid(logits).cpu().numpy(), samples[i:i + batch_size]))
    model.train(was_training)
    out = score_masks(preds, [s.mask for s in samples])
    if hists:
        t, iou = best_threshold(hists)
        out.update(threshold=t, iou_at_threshold=iou)
    return out


def evaluate_real(model, model_spec: dict[str, Any], samples: Sequence, device) -> dict[str, float]:
    """Score real photos with ``real_eval.evaluate.evaluate_model`` (per-image means; 20 bootstrap
    resamples, since intervals are for reports and periodic evaluation must stay cheap)."""
    from real_eval.evaluate import evaluate_model

    overall = evaluate_model(model, model_spec, list(samples), device=str(device), n_boot=20)["overall"]["mean"]
    return {k: float(overall[k]) for k in ("iou", "dice", "boundary_f1")}


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
