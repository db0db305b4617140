"""Calibrate a model's decision threshold and inference strategy on a real annotated set.

The model outputs a key probability per pixel; the threshold that turns it into a mask, and the
strategy that runs the model over a photo of any size (:mod:`real_eval.strategies`), decide the
real-photo IoU as much as the weights do. :func:`calibrate` predicts every photo once per
strategy, reads the mean IoU over photos at every threshold on the 0.05 grid off per-photo
probability histograms (:func:`real_eval.evaluate.threshold_sweep`, the sweep ``keysynth eval``
reports), and returns the pair with the highest mean IoU over photos (ties: the threshold nearest 0.5, then the
strategy listed first in :data:`real_eval.strategies.STRATEGIES`).

Calibration and test photos must differ, or the test figure is tuned to the test set: the model
keeps the SHA-256 of every calibration photo's pixels (:func:`content_hashes`), and evaluation
refuses a set that shares one (:func:`check_disjoint`) unless told to allow it.
"""

from __future__ import annotations

import hashlib
from typing import Any, Sequence

import numpy as np

__all__ = ["calibrate", "calibrate_probs", "predict_all", "content_hash", "content_hashes", "check_disjoint",
           "photos_seen_by", "OverlapError"]


class OverlapError(ValueError):
    """Two sets that must be disjoint (calibration / training vs evaluation) share a photo."""


def content_hash(image: np.ndarray) -> str:
    """SHA-256 hex digest of a uint8 (H, W, 3) image's shape and pixels (format- and name-independent)."""
    arr = np.ascontiguousarray(image)
    h = hashlib.sha256(f"{arr.dtype}{arr.shape}".encode())
    h.update(arr.tobytes())
    return h.hexdigest()


def content_hashes(samples: Sequence) -> dict[str, str]:
    """``{content_hash(sample.image): sample name}`` for samples with ``name`` and ``image``."""
    return {content_hash(s.image): s.name for s in samples}


def check_disjoint(samples: Sequence, hashes: dict[str, str] | Sequence[str], what: str, *, allow: bool = False) -> list[str]:
    """Names of ``samples`` whose pixels are in ``hashes``; raises unless ``allow``.

    Args:
        samples: the evaluation set (``name``, ``image``).
        hashes: content hashes of the other set (a dict hash -> name, or a list of hashes).
        what: the other set, for the message (e.g. ``"the model's calibration set"``).
        allow: return the overlap instead of raising.

    Raises:
        OverlapError: an evaluation photo is also in the other set; the message names it and the fix.
    """
    names = hashes if isinstance(hashes, dict) else {h: "?" for h in hashes}
    shared = [(s.name, names[h]) for s in samples if (h := content_hash(s.image)) in names]
    if shared and not allow:
        first = ", ".join(a if b == "?" else f"{a} (= {b})" for a, b in shared[:3])
        raise OverlapError(f"{len(shared)} evaluation photo(s) are also in {what}: {first}; evaluate on other "
                           f"photos, or pass --allow-overlap to score them anyway (the figure is then optimistic)")
    return [a for a, _ in shared]


def photos_seen_by(model_spec: dict[str, Any]) -> list[tuple[str, str, list[str]]]:
    """The photo sets a model has seen and must not be scored on, as ``(what, how, content hashes)``:
    ``what`` names the set for :func:`check_disjoint`'s message, ``how`` says what the model did
    with them ("calibrated on", "trained on cut-outs of"). From the spec's ``calibration.hashes``
    and ``cutout_source_hashes`` (see :func:`real_eval.model_io.load_checkpoint`); sets the model
    does not record are left out."""
    sets = [("the model's calibration set", "calibrated on", (model_spec.get("calibration") or {}).get("hashes")),
            ("the photos this model's training cut-outs were made from", "trained on cut-outs of",
             model_spec.get("cutout_source_hashes"))]
    return [(what, how, list(hashes)) for what, how, hashes in sets if hashes]


def calibrate_probs(probs: dict[str, Sequence[np.ndarray]], masks: Sequence[np.ndarray]) -> dict[str, Any]:
    """The (threshold, strategy) pair with the highest mean IoU, from probability maps already predicted.

    Args:
        probs: ``{strategy: [float probability map (H, W) per photo]}``, photos in the order of ``masks``.
        masks: uint8 (H, W) {0, 1, 255} per photo.

    Returns:
        ``{"threshold", "strategy", "mean_iou", "table": [{"strategy", "threshold", "mean_iou"}]}``;
        thresholds on the 0.05 grid, ties to the threshold nearest 0.5, then the first strategy.
    """
    from real_eval.evaluate import best_threshold, probability_histograms

    table = []
    for name, maps in probs.items():
        t, iou = best_threshold([probability_histograms(np.asarray(p, np.float32), m) for p, m in zip(maps, masks)])
        table.append({"strategy": name, "threshold": t, "mean_iou": iou})
    top = max(table, key=lambda r: (round(r["mean_iou"], 12), -list(probs).index(r["strategy"])))
    return {"threshold": top["threshold"], "strategy": top["strategy"], "mean_iou": top["mean_iou"], "table": table}


def predict_all(model, model_spec: dict[str, Any], samples: Sequence, strategies: Sequence[str], *,
                device: str = "cpu", progress: bool = False) -> dict[str, list[np.ndarray]]:
    """``{strategy: [float16 probability map per sample]}`` (each photo predicted once per strategy)."""
    from tqdm import tqdm

    from real_eval.strategies import predict_probs

    was_training = bool(getattr(model, "training", False))
    model.eval()
    try:
        return {name: [predict_probs(model, model_spec, s.image, strategy=name, device=device).astype(np.float16)
                       for s in tqdm(samples, desc=name, unit="photo", disable=not progress)]
                for name in strategies}
    finally:
        model.train(was_training)


def calibrate(model, model_spec: dict[str, Any], samples: Sequence, *, strategies: Sequence[str] | None = None,
              device: str = "cpu", progress: bool = False) -> dict[str, Any]:
    """Pick the (threshold, strategy) pair with the highest mean IoU over ``samples``.

    Args:
        model: torch module returning logits (N, 1, h, w).
        model_spec: its spec (``image_size``, ``mean``, ``std``).
        samples: real photos with ``name``, ``image`` uint8 (H, W, 3) RGB, ``mask`` uint8 {0, 1, 255}.
        strategies: names from :data:`real_eval.strategies.STRATEGIES` (default: all).

    Returns:
        :func:`calibrate_probs`'s dict plus ``"hashes"`` (content hashes of the photos) and ``"n_images"``.

    Raises:
        ValueError: empty ``samples`` or an unknown strategy name.
    """
    from real_eval.strategies import STRATEGIES, get_strategy

    if not samples:
        raise ValueError("calibration set holds no photos; pass a folder of annotated key photos")
    names = list(strategies or STRATEGIES)
    for n in names:
        get_strategy(n)  # raises with the valid names
    probs = predict_all(model, model_spec, samples, names, device=device, progress=progress)
    res = calibrate_probs(probs, [s.mask for s in samples])
    return {**res, "hashes": sorted(content_hashes(samples)), "n_images": len(samples)}
