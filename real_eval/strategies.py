"""Inference strategies for keys that are small in large photos: one entry point, a registry.

In phone photos a key is often 80-150 px long in a 3000-4000 px image; padded to a square and
resized to a 512 px model input it shrinks to 20-40 px and its teeth vanish. Strategies:

- ``resize``: whole photo, pad to square + resize to ``image_size`` (one forward pass; the
  baseline; ``real_eval.predict.predict_resize``).
- ``tiles``: overlapping windows at native resolution (or ``tile_scale`` x native), logits blended
  with a Hann importance window (nnU-Net sliding-window inference, Isensee et al. 2021); see
  :mod:`real_eval.tiling`. Memory: 4 bytes/px + one batch of tiles. A photo whose long side
  exceeds ``tile_max_side`` (default :data:`DEFAULT_TILE_MAX_SIDE`) is scaled down to it: keys
  fill 10-60 % of a typical photo's long side, so in a 4000 px photo they would be 400-2400 px
  long, far beyond the 30-180 px keys of 192 px training samples, and the photo would cost 16x the
  tiles of a 1000 px one.
- ``coarse-to-fine``: resize pass, candidate regions from the coarse map, each region re-run on a
  full-resolution crop and pasted back (crop-and-refine as in two-stage detectors / DeepKey,
  Smith & Burghardt 2018); see :mod:`real_eval.coarse_to_fine`.

Any ``torch.nn.Module`` mapping float32 (N, 3, h, w) to logits (N, 1, h, w) can be passed as
``model`` (tests use a 1x1 convolution as a fake model); ``model_spec`` needs ``image_size``,
``mean`` and ``std`` (see ``real_eval.model_io``).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from real_eval.coarse_to_fine import predict_coarse_to_fine, resize_probs
from real_eval.tiling import check_image, predict_tiles

__all__ = ["STRATEGIES", "DEFAULT_STRATEGY", "DEFAULT_TILE_MAX_SIDE", "predict_probs", "capped_tile_scale",
           "get_strategy", "resize_probs", "predict_tiles", "predict_coarse_to_fine"]

STRATEGIES = ("resize", "tiles", "coarse-to-fine")
# Chosen by measurement (bench/bench_strategies.py on a real dev set, mobilenet_v2 U-Net at 256 px,
# 1000 CPU steps): coarse-to-fine IoU 0.270 / boundary F1 0.373 vs resize 0.254 / 0.252, at ~3x
# the time per megapixel; tiles@1 reached boundary F1 0.458 but IoU 0.250 at ~9x the time.
DEFAULT_STRATEGY = "coarse-to-fine"
DEFAULT_TILE_MAX_SIDE = 1024  # px; photos above it are tiled at max_side / long side
DEFAULT_MIN_REGION_PX = 4  # px of the coarse map at model scale (see find_regions)
DEFAULT_MAX_REGIONS = 8


def get_strategy(name: str) -> Callable[..., np.ndarray]:
    """The prediction function registered under ``name``.

    Raises:
        ValueError: unknown name; the message lists :data:`STRATEGIES`.
    """
    table = {"resize": resize_probs, "tiles": predict_tiles, "coarse-to-fine": predict_coarse_to_fine}
    if name not in table:
        raise ValueError(f"unknown strategy {name!r}; valid names: {', '.join(STRATEGIES)}")
    return table[name]


def capped_tile_scale(shape: tuple[int, ...], tile_scale: float, max_side: int | None) -> float:
    """``tile_scale``, lowered so the photo's long side (``shape`` (H, W, ...), px) times the scale
    is at most ``max_side`` px (None: unchanged).

    Raises:
        ValueError: ``max_side`` < 1.
    """
    if max_side is None:
        return tile_scale
    if max_side < 1:
        raise ValueError(f"tile_max_side must be >= 1 px or None, got {max_side}")
    return min(tile_scale, max_side / max(shape[:2]))


def predict_probs(
    model,
    model_spec: dict[str, Any],
    image: np.ndarray,
    *,
    strategy: str | None = DEFAULT_STRATEGY,
    device: str = "cpu",
    batch_size: int = 8,
    tile_size: int | None = None,
    overlap: float = 0.25,
    tile_scale: float = 1.0,
    tile_max_side: int | None = DEFAULT_TILE_MAX_SIDE,
    coarse_threshold: float = 0.3,
    margin: float = 0.25,
    min_region_px: int = DEFAULT_MIN_REGION_PX,
    max_regions: int = DEFAULT_MAX_REGIONS,
) -> np.ndarray:
    """Key probability map of one photo with the chosen inference ``strategy``.

    Args:
        model: ``torch.nn.Module`` already on ``device`` (eval mode is the caller's job):
            float32 (N, 3, h, w) -> logits (N, 1, h, w).
        model_spec: dict with ``image_size`` (model input side, px), ``mean``, ``std``.
        image: uint8 RGB (H, W, 3), any size.
        strategy: one of :data:`STRATEGIES`.
        device: torch device string ("cpu", "cuda", "cuda:0", ...).
        batch_size: tiles / region crops per forward pass, >= 1 (``tiles``, ``coarse-to-fine``).
        tile_size: model input side for tiles, px (default ``image_size``; ``tiles`` only).
        overlap: fraction of a tile shared with its neighbour, [0, 1) (``tiles`` only).
        tile_scale: model px per photo px for tiles, > 0; 1.0 = native (``tiles`` only).
        tile_max_side: largest photo long side tiled, px, after ``tile_scale``; a larger photo is
            tiled at ``tile_max_side / long side`` instead; None = no limit (``tiles`` only).
        coarse_threshold: coarse probability that marks a candidate pixel, (0, 1]
            (``coarse-to-fine`` only).
        margin: context added around each region, fraction of its side per side, >= 0
            (``coarse-to-fine`` only).
        min_region_px: smallest candidate component, px of the coarse map at model scale
            (``coarse-to-fine`` only).
        max_regions: most regions refined (each costs one forward pass; ``coarse-to-fine``).

    Returns:
        float32 (H, W) probabilities in [0, 1], aligned with ``image``.

    Raises:
        ValueError: unknown strategy (lists :data:`STRATEGIES`), bad image, bad parameter, or a
            model output that is not (N, 1, h, w).
    """
    strategy = strategy or DEFAULT_STRATEGY
    fn = get_strategy(strategy)
    image = check_image(image)
    if strategy == "resize":
        probs = fn(model, model_spec, image, device=device)
    elif strategy == "tiles":
        probs = fn(model, model_spec, image, device=device, batch_size=batch_size, tile_size=tile_size,
                   overlap=overlap, tile_scale=capped_tile_scale(image.shape, tile_scale, tile_max_side))
    else:
        probs = fn(model, model_spec, image, device=device, batch_size=batch_size, coarse_threshold=coarse_threshold,
                   margin=margin, min_region_px=min_region_px, max_regions=max_regions)
    return np.asarray(probs, dtype=np.float32)
