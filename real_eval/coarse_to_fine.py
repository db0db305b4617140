"""Coarse-to-fine ("crop and refine") inference for small keys in large photos.

1. Coarse pass: the whole photo padded to a square and resized to the model's ``image_size``
   (the ``resize`` strategy, :func:`resize_probs`).
2. Candidate regions: the coarse map, brought to the model's scale, is thresholded at
   ``coarse_threshold``; 8-connected components smaller than ``min_region_px`` are dropped, the
   ``max_regions`` with the largest probability mass are kept; each bounding box is made square,
   grown by ``margin`` of its side on every side, shifted inside the photo; boxes that overlap are
   merged (union) until none do.
3. Refinement: each region is cropped from the FULL-resolution photo, segmented at model size
   (pad-to-square + resize again, so a 120 px key fills the model input instead of 20-40 px of
   it) and pasted back, replacing the coarse map inside the region with a linear ramp at the
   region borders that lie inside the photo (no seam). If the refined mask reaches a crop side
   inside the photo, that side grows by half the crop side and the crop is segmented once more.
   Pixels outside every region keep the coarse probability.

This is the two-stage crop-and-refine scheme of two-stage detectors (propose regions on a cheap
pass, re-run on region crops at higher resolution, as in Faster R-CNN / Mask R-CNN's RoI heads)
and of DeepKey (Smith & Burghardt 2018: key detection, then bitting segmentation on the crop).

Cost: 1 + (number of regions) forward passes at ``image_size`` (+1 per region that had to
grow). Memory: the coarse map (float32, 4 bytes/px, reused as the result) + what the resize pass
needs (its pad-to-square copy: 3 bytes x max(H, W)^2).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from real_eval.predict import predict_resize, predict_resize_batch
from real_eval.tiling import check_image

__all__ = ["predict_coarse_to_fine", "find_regions", "resize_probs"]

MIN_REGION_SIDE = 32  # px of the photo: smallest refinement crop


def resize_probs(model, model_spec: dict[str, Any], image: np.ndarray, device: str = "cpu") -> np.ndarray:
    """The ``resize`` strategy: uint8 RGB (H, W, 3) -> float32 (H, W) probabilities in [0, 1].

    Pad to square (bottom/right, zeros), resize to ``model_spec["image_size"]`` (INTER_AREA),
    sigmoid, resize back, crop the padding off: ``real_eval.predict.predict_resize`` (the single
    implementation), re-exported here as the coarse pass.
    """
    return predict_resize(model, model_spec, check_image(image), device=device)


def _square_box(y0: float, x0: float, y1: float, x1: float, margin: float, h: int, w: int):
    side = max(y1 - y0, x1 - x0) * (1.0 + 2.0 * margin)
    side = max(side, MIN_REGION_SIDE)
    out = []
    for c, dim in (((y0 + y1) / 2.0, h), ((x0 + x1) / 2.0, w)):
        length = int(min(dim, round(side)))
        start = int(min(max(round(c - length / 2.0), 0), dim - length))
        out.append((start, start + length))
    (by0, by1), (bx0, bx1) = out
    return by0, bx0, by1, bx1


def _merge_overlapping(boxes: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    boxes = list(boxes)
    merged = True
    while merged:
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                    boxes[i] = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
                    del boxes[j]
                    merged = True
                    break
            if merged:
                break
    return boxes


def find_regions(
    coarse: np.ndarray,
    *,
    image_size: int,
    coarse_threshold: float = 0.3,
    margin: float = 0.25,
    min_region_px: int = 4,
    max_regions: int = 8,
) -> list[tuple[int, int, int, int]]:
    """Candidate key regions from a coarse probability map.

    Args:
        coarse: float32 (H, W) probabilities in [0, 1] at photo resolution.
        image_size: the model's input side (px); the map is analysed at that scale (long side =
            ``image_size``, INTER_AREA; the photo's own scale if it is smaller), because the
            coarse pass carries no finer information.
        coarse_threshold: probability at or above which a pixel is a candidate, in (0, 1].
        margin: each square box grows by ``margin`` x its side on every side (>= 0).
        min_region_px: components with fewer pixels **at the analysis scale** are dropped.
        max_regions: at most this many components (largest probability mass first) are kept.

    Returns:
        ``(y0, x0, y1, x1)`` half-open int boxes in photo px, non-overlapping, ordered by
        coarse probability mass (merged boxes take the rank of their first member). Empty when
        nothing reaches ``coarse_threshold``.
    """
    coarse = np.asarray(coarse, np.float32)
    if coarse.ndim != 2:
        raise ValueError(f"coarse map must be float (H, W), got shape {coarse.shape}")
    if not 0.0 < coarse_threshold <= 1.0:
        raise ValueError(f"coarse_threshold must be in (0, 1], got {coarse_threshold}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0 (a fraction of the box side), got {margin}")
    if int(max_regions) < 1 or int(min_region_px) < 0:
        raise ValueError(f"need max_regions >= 1 and min_region_px >= 0, got {max_regions}, {min_region_px}")
    h, w = coarse.shape
    scale = min(1.0, float(image_size) / max(h, w))  # analysis px per photo px
    small = coarse
    if scale < 1.0:
        sh, sw = max(1, round(h * scale)), max(1, round(w * scale))
        small = cv2.resize(coarse, (sw, sh), interpolation=cv2.INTER_AREA)
    fg = (small >= coarse_threshold).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    if n <= 1:
        return []
    mass = np.bincount(labels.ravel(), weights=small.ravel().astype(np.float64), minlength=n)
    keep = [k for k in range(1, n) if stats[k, cv2.CC_STAT_AREA] >= int(min_region_px)]
    keep.sort(key=lambda k: -mass[k])
    sy, sx = small.shape[0] / h, small.shape[1] / w
    boxes = []
    for k in keep[: int(max_regions)]:
        left, top = stats[k, cv2.CC_STAT_LEFT], stats[k, cv2.CC_STAT_TOP]
        bw, bh = stats[k, cv2.CC_STAT_WIDTH], stats[k, cv2.CC_STAT_HEIGHT]
        boxes.append(_square_box(top / sy, left / sx, (top + bh) / sy, (left + bw) / sx, margin, h, w))
    return _merge_overlapping(boxes)


def _border_ramp(box: tuple[int, int, int, int], shape: tuple[int, int], feather: int) -> np.ndarray:
    """float32 (bh, bw) weight: 1 inside, linear ramp to ~0 over ``feather`` px at box sides that
    lie inside the photo (sides on the photo border keep weight 1)."""
    y0, x0, y1, x1 = box
    ramps = []
    for lo, hi, dim in ((y0, y1, shape[0]), (x0, x1, shape[1])):
        idx = np.arange(hi - lo, dtype=np.float32)
        r = np.ones(hi - lo, np.float32)
        if lo > 0:
            r = np.minimum(r, (idx + 1.0) / feather)
        if hi < dim:
            r = np.minimum(r, (hi - lo - idx) / feather)
        ramps.append(r)
    return np.minimum.outer(ramps[0], ramps[1])


def _crops(image: np.ndarray, boxes) -> list[np.ndarray]:
    return [np.ascontiguousarray(image[y0:y1, x0:x1]) for y0, x0, y1, x1 in boxes]


def _grow_touching(box, fine: np.ndarray, shape: tuple[int, int]):
    """``box`` with every side that lies inside the photo and that the refined mask (p >= 0.5)
    reaches moved out by half the box's long side (clipped to the photo)."""
    h, w = shape
    y0, x0, y1, x1 = box
    g = max(1, round(0.5 * max(y1 - y0, x1 - x0)))
    return (
        max(0, y0 - g) if y0 > 0 and (fine[0] >= 0.5).any() else y0,
        max(0, x0 - g) if x0 > 0 and (fine[:, 0] >= 0.5).any() else x0,
        min(h, y1 + g) if y1 < h and (fine[-1] >= 0.5).any() else y1,
        min(w, x1 + g) if x1 < w and (fine[:, -1] >= 0.5).any() else x1,
    )


def _refine(model, model_spec, image, boxes, device, batch_size):
    """Segment the crops ``boxes`` (batched). A crop whose refined mask reaches a side inside the
    photo (the coarse pass saw only part of the key, e.g. the bow but not a thin blade) grows on
    those sides by half its long side and is segmented once more. Returns [(box, probs)]."""
    fines = predict_resize_batch(model, model_spec, _crops(image, boxes), device=device, batch_size=batch_size)
    grown = [_grow_touching(b, f, image.shape[:2]) for b, f in zip(boxes, fines)]
    redo = [i for i, (b, g) in enumerate(zip(boxes, grown)) if tuple(b) != g]
    if redo:
        again = predict_resize_batch(model, model_spec, _crops(image, [grown[i] for i in redo]), device=device,
                                     batch_size=batch_size)
        for i, f in zip(redo, again):
            fines[i] = f
    return [(grown[i] if i in redo else tuple(boxes[i]), fines[i]) for i in range(len(boxes))]


def predict_coarse_to_fine(
    model,
    model_spec: dict[str, Any],
    image: np.ndarray,
    *,
    device: str = "cpu",
    batch_size: int = 8,
    coarse_threshold: float = 0.3,
    margin: float = 0.25,
    min_region_px: int = 4,
    max_regions: int = 8,
) -> np.ndarray:
    """Key probability map by a coarse whole-photo pass refined on full-resolution crops.

    Args:
        model: ``torch.nn.Module`` on ``device``: float32 (N, 3, n, n) -> logits (N, 1, n, n).
        model_spec: needs ``image_size`` (n, px), ``mean``, ``std``.
        image: uint8 RGB (H, W, 3).
        device: torch device string.
        batch_size: region crops per forward pass (>= 1).
        coarse_threshold, margin, min_region_px, max_regions: see :func:`find_regions`.

    Returns:
        float32 (H, W) probabilities in [0, 1]: the refined crop probabilities inside the
        regions (blended linearly into the coarse map over ``max(1, 0.5 * margin / (1 + 2 *
        margin) * crop side)`` px at crop sides inside the photo), the coarse map elsewhere.

    Raises:
        ValueError: bad image or parameters (see :func:`find_regions`), bad model output.
    """
    image = check_image(image)
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    out = resize_probs(model, model_spec, image, device)
    if not out.flags.writeable:
        out = out.copy()
    regions = find_regions(
        out, image_size=int(model_spec["image_size"]), coarse_threshold=coarse_threshold, margin=margin,
        min_region_px=min_region_px, max_regions=max_regions,
    )
    for box, fine in _refine(model, model_spec, image, regions, device, int(batch_size)) if regions else []:
        y0, x0, y1, x1 = box
        feather = max(1, round(0.5 * margin / (1.0 + 2.0 * margin) * min(y1 - y0, x1 - x0)))
        alpha = _border_ramp(box, out.shape, feather)
        region = out[y0:y1, x0:x1]
        region += alpha * (fine - region)
    np.clip(out, 0.0, 1.0, out=out)
    return out
