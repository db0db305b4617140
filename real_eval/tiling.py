"""Sliding-window ("tiles") inference for small keys in large photos.

A key 80-150 px long in a 4000 px phone photo shrinks to 20-40 px when the whole photo is padded
to a square and resized to the model's ``image_size``; its teeth vanish. Here the model instead
sees overlapping ``tile_size`` windows at native resolution (or at ``tile_scale`` times native),
and the tile LOGITS are blended with a separable 2-D Hann importance window normalised by the sum
of window weights, then passed through the sigmoid. This is the sliding-window inference with
importance weighting of nnU-Net (Isensee et al., Nature Methods 2021, which uses a Gaussian; a
Hann window behaves the same way: tile centres, where the receptive field is complete, count
most, tile borders least).

Memory bound: the only full-resolution array is the returned float32 (H, W) map, used as the
logit-sum accumulator (4 bytes/px: 200 MB for a 50-megapixel photo). The weight sum is never
stored at full resolution: every tile row uses the same column starts and every tile the same
separable window ``w(y) * w(x)``, so the weight sum is the outer product of two 1-D sums and is
applied in row bands of at most ~16 MB. On top of that: one batch of tiles (``batch_size * 3 *
tile_size**2`` float32 input plus the model's activations) and one tile resized back to its
native window (``2 * 4 * (tile_size / tile_scale)**2`` bytes). The input photo itself is only
sliced, never copied whole.
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

from real_eval.model_io import to_input_tensor

__all__ = ["predict_tiles", "tile_starts", "hann_window", "model_logits", "check_image"]

_BAND_BYTES = 16 * 2**20  # row-band size for the final normalisation


def check_image(image: np.ndarray) -> np.ndarray:
    """Return ``image`` if it is uint8 RGB (H, W, 3) with H, W >= 1, else raise ValueError."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3 or min(arr.shape[:2]) < 1:
        raise ValueError(
            f"expected a uint8 RGB image of shape (H, W, 3), got {arr.dtype} {arr.shape}; "
            "load photos with cv2.imread + cv2.cvtColor(..., cv2.COLOR_BGR2RGB)"
        )
    return arr


def model_logits(model, model_spec: dict[str, Any], batch: np.ndarray, device: str = "cpu") -> np.ndarray:
    """Run ``model`` on a uint8 RGB batch (N, h, w, 3) -> float32 logits (N, h, w) on the CPU.

    The batch is normalised with ``model_spec["mean"]/["std"]`` (:func:`to_input_tensor`) and
    moved to ``device``; no gradients are kept. Any ``torch.nn.Module`` mapping float32
    (N, 3, h, w) to logits (N, 1, h, w) works (tests pass tiny convolutions as fake models).

    Raises:
        ValueError: the model output is not (N, 1, h, w).
    """
    import torch

    x = to_input_tensor(batch, model_spec).to(device)
    with torch.inference_mode():
        y = model(x)
    if not isinstance(y, torch.Tensor) or y.ndim != 4 or y.shape[1] != 1 or tuple(y.shape[2:]) != tuple(x.shape[2:]) \
            or y.shape[0] != x.shape[0]:
        got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(
            f"model returned {got} for input {tuple(x.shape)}; expected logits (N, 1, H, W) of the input size "
            "(a binary segmentation model with classes=1)"
        )
    return y[:, 0].float().cpu().numpy()


def tile_starts(length: int, window: int, overlap: float) -> np.ndarray:
    """Start offsets (px, int64) of windows of ``window`` px covering ``[0, length)``.

    Neighbouring windows overlap by at least ``overlap * window`` px; starts are spread evenly
    from 0 to ``length - window`` (so the last window ends at the image border, as in nnU-Net).
    If ``length <= window`` there is one window at 0 (the caller pads it).
    """
    if length <= window:
        return np.zeros(1, np.int64)
    stride = max(1.0, window * (1.0 - overlap))
    n = math.ceil((length - window) / stride) + 1
    return np.round(np.linspace(0, length - window, n)).astype(np.int64)


def hann_window(n: int, floor: float = 1e-3) -> np.ndarray:
    """1-D Hann importance window, float64 (n,), peak 1 at the centre, never below ``floor``.

    ``w[i] = sin^2(pi * (i + 0.5) / n)``, clipped below at ``floor`` so that pixels covered by a
    single tile border (image borders) keep a non-zero weight and the normalisation is defined.
    """
    i = np.arange(n, dtype=np.float64)
    return np.maximum(np.sin(np.pi * (i + 0.5) / n) ** 2, floor)


def _window_sum(starts: np.ndarray, window: np.ndarray, length: int) -> np.ndarray:
    """Sum over windows of the 1-D weight at each position in ``[0, length)`` (float64)."""
    total = np.zeros(length, np.float64)
    for s in starts:
        e = min(length, int(s) + window.size)
        total[s:e] += window[: e - s]
    return total


def _sigmoid_inplace(a: np.ndarray) -> None:
    with np.errstate(over="ignore"):
        np.negative(a, out=a)
        np.exp(a, out=a)
    a += 1.0
    np.reciprocal(a, out=a)


def predict_tiles(
    model,
    model_spec: dict[str, Any],
    image: np.ndarray,
    *,
    device: str = "cpu",
    batch_size: int = 8,
    tile_size: int | None = None,
    overlap: float = 0.25,
    tile_scale: float = 1.0,
) -> np.ndarray:
    """Key probability map of ``image`` by overlapping tiles with Hann-weighted logit blending.

    Args:
        model: ``torch.nn.Module`` on ``device``, float32 (N, 3, t, t) -> logits (N, 1, t, t).
        model_spec: needs ``image_size`` (default tile size, px), ``mean``, ``std``.
        image: uint8 RGB (H, W, 3), any size (tested up to 50 megapixels).
        device: torch device string for the model inputs.
        batch_size: tiles per forward pass (>= 1).
        tile_size: model input side t in px (default ``model_spec["image_size"]``); keep it a
            multiple of the encoder's output stride (32 for smp encoders).
        overlap: fraction of the window shared by neighbouring windows, in [0, 1).
        tile_scale: model px per photo px, > 0. 1.0 = native resolution; 0.5 = each tile covers
            ``2 * t`` photo px, shrunk with INTER_AREA (fewer tiles, less detail). Logits are
            resized back to the photo window with INTER_LINEAR before blending.

    Returns:
        float32 (H, W) probabilities in [0, 1]: ``sigmoid(sum_i w_i * logit_i / sum_i w_i)``
        over the tiles i covering each pixel. Windows that overhang the photo (photo smaller
        than a window) are zero-padded bottom/right, like the resize path.

    Memory: 4 bytes/px for the result (also the accumulator) + one batch + one native window;
    see the module docstring.

    Raises:
        ValueError: bad image, batch_size < 1, overlap outside [0, 1), tile_scale <= 0,
            tile_size < 1, or a model output that is not (N, 1, t, t).
    """
    image = check_image(image)
    t = _check_tile_args(model_spec, batch_size, tile_size, overlap, tile_scale)
    s = max(1, int(round(t / float(tile_scale))))  # window side in photo px
    h, w = image.shape[:2]
    ys, xs = tile_starts(h, s, overlap), tile_starts(w, s, overlap)
    win = hann_window(s)
    win2d = np.outer(win, win).astype(np.float32)

    out = np.zeros((h, w), np.float32)  # logit-sum accumulator, later the result
    jobs = [(int(y), int(x)) for y in ys for x in xs]
    for b0 in range(0, len(jobs), int(batch_size)):
        chunk = jobs[b0: b0 + int(batch_size)]
        logits = model_logits(model, model_spec, _tile_batch(image, chunk, s, t), device)
        _add_weighted_logits(out, logits, chunk, s, win2d)
        del logits

    wy = _window_sum(ys, win, h).astype(np.float32)
    wx = _window_sum(xs, win, w).astype(np.float32)
    rows = max(1, _BAND_BYTES // (4 * w))
    for r0 in range(0, h, rows):
        band = out[r0: r0 + rows]
        band /= wy[r0: r0 + rows, None]
        band /= wx[None, :]
        _sigmoid_inplace(band)
    return out


def _check_tile_args(model_spec: dict[str, Any], batch_size, tile_size, overlap, tile_scale) -> int:
    """Validate :func:`predict_tiles`' options; returns the model input side t in px."""
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not 0.0 <= float(overlap) < 1.0:
        raise ValueError(f"overlap must be in [0, 1) (a fraction of the tile), got {overlap}")
    if not float(tile_scale) > 0.0:
        raise ValueError(f"tile_scale must be > 0 (1.0 = native resolution), got {tile_scale}")
    t = int(tile_size if tile_size is not None else model_spec["image_size"])
    if t < 1:
        raise ValueError(f"tile_size must be >= 1 px, got {tile_size}")
    return t


def _tile_batch(image: np.ndarray, chunk: list[tuple[int, int]], s: int, t: int) -> np.ndarray:
    """uint8 (N, t, t, 3): the s x s photo windows at ``chunk``'s (y, x) corners, zero-padded where
    they overhang the photo, resized to the model side t (INTER_AREA down, INTER_LINEAR up)."""
    batch = np.zeros((len(chunk), t, t, 3), np.uint8)
    for k, (y, x) in enumerate(chunk):
        crop = image[y: y + s, x: x + s]
        if s == t:
            batch[k, : crop.shape[0], : crop.shape[1]] = crop
        else:
            padded = np.zeros((s, s, 3), np.uint8)
            padded[: crop.shape[0], : crop.shape[1]] = crop
            interp = cv2.INTER_AREA if s > t else cv2.INTER_LINEAR
            batch[k] = cv2.resize(padded, (t, t), interpolation=interp)
    return batch


def _add_weighted_logits(out: np.ndarray, logits: np.ndarray, chunk: list[tuple[int, int]], s: int,
                         win2d: np.ndarray) -> None:
    """Add each tile's logits (resized back to its s x s window), weighted by the 2-D Hann window,
    into the accumulator ``out`` (H, W) in place, cropped where the window overhangs the photo."""
    h, w = out.shape
    for k, (y, x) in enumerate(chunk):
        lg = logits[k]
        if lg.shape[0] != s:
            lg = cv2.resize(lg, (s, s), interpolation=cv2.INTER_LINEAR)
        vh, vw = min(s, h - y), min(s, w - x)
        lg = lg[:vh, :vw]
        lg *= win2d[:vh, :vw]
        out[y: y + vh, x: x + vw] += lg
