"""Background-source protocol, errors, mixing and helpers shared by every source.

A background source turns ``(rng, size)`` into an RGB uint8 image of exactly ``size`` = (H, W)
plus a JSON-serialisable ``meta`` dict naming what was used (source, file, crop, kind).
"""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import cv2
import numpy as np

__all__ = ["BackgroundSource", "BackgroundError", "MixedBackgrounds", "check_size", "crop_resize", "resize_to",
           "channel_gains", "uniform", "pick"]


class BackgroundError(ValueError):
    """A background file or folder cannot be used; the message names the file and the fix."""


@runtime_checkable
class BackgroundSource(Protocol):
    """Anything with ``sample(rng, size) -> (uint8 (H, W, 3) RGB, meta dict)``; must be picklable."""

    def sample(self, rng: np.random.Generator, size: tuple[int, int]) -> tuple[np.ndarray, dict]:
        ...


def check_size(size) -> tuple[int, int]:
    """Validate ``size`` = (H, W) of positive ints; raises ValueError naming the bad value."""
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be a pair (H, W) of positive ints, got {size!r}") from None
    if h <= 0 or w <= 0:
        raise ValueError(f"size must be a pair (H, W) of positive ints, got {size!r}")
    return h, w


def resize_to(img: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    """Resize uint8/float32 ``img`` to ``size_wh`` = (W, H), anti-aliased when shrinking.

    Method (mip-mapping, Williams 1983): Gaussian-pyramid halvings (``cv2.pyrDown``, 5x5 binomial
    filter) while the image is still >= 2x the target, then one bilinear resize (a factor < 2 left).
    About as alias-free as ``INTER_AREA`` but ~5x faster at non-integer ratios (OpenCV's area
    filter falls back to a slow generic path there: 1.45 ms vs 0.2 ms for 400 -> 256 px RGB).
    Enlarging is bilinear.
    """
    W, H = int(size_wh[0]), int(size_wh[1])
    while img.shape[1] >= 2 * W and img.shape[0] >= 2 * H:
        img = cv2.pyrDown(img)
    if img.shape[1] == W and img.shape[0] == H:
        return img
    return cv2.resize(img, (W, H), interpolation=cv2.INTER_LINEAR)


def uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    """One draw of ``float(rng.uniform(lo, hi))``, bit for bit and at the same stream position (NumPy
    computes ``lo + (hi - lo) * next_double``), without the ~2.5 us argument handling of a scalar
    ``Generator.uniform`` call (a sample makes about a hundred). Also ``synth.seeding.uniform``."""
    return lo + (hi - lo) * rng.random()


def pick(rng: np.random.Generator, seq):
    """One uniformly drawn element of ``seq``: the same draw and rng stream as ``rng.choice(seq)``
    (which is ``rng.integers(len(seq))`` indexing) without its ~20 us array conversion. Also
    ``synth.seeding.pick``."""
    return seq[int(rng.integers(len(seq)))]


def channel_gains(img: np.ndarray, gains) -> np.ndarray:
    """uint8 (H, W, 3) x per-channel ``gains`` (3 floats) -> new uint8 (H, W, 3), rounded and saturated.

    One ``cv2.transform`` pass with the diagonal 3x3 matrix: ~4x faster than
    ``cv2.multiply(img, (*gains, 0), dtype=cv2.CV_8U)`` (a mixed-depth path). OpenCV's uint8
    transform uses a fixed-point matrix (gains quantised to 1/1024), so a few % of pixels differ by
    1 DN from the exact float product.
    """
    return cv2.transform(img, np.diag(np.asarray(gains, np.float64).reshape(3)))


def crop_resize(img: np.ndarray, rng: np.random.Generator, size: tuple[int, int],
                scale_range: tuple[float, float] = (0.35, 1.0), flip: bool = True) -> tuple[np.ndarray, dict]:
    """Random crop with the output aspect ratio, then resize to ``size``.

    Args:
        img: uint8 (h, w, 3) image.
        rng: generator for the crop.
        size: (H, W) of the output.
        scale_range: crop side as a fraction of the largest crop with the output aspect ratio
            that fits in ``img`` (1.0 = as large as possible).
        flip: also draw a horizontal flip with probability 0.5.

    Returns:
        (uint8 (H, W, 3), meta with ``crop`` = [x0, y0, cw, ch] in the given image's pixels,
        ``flip``). Resized by :func:`resize_to` (pyramid + bilinear).
    """
    H, W = size
    h, w = img.shape[:2]
    aspect = W / H
    max_ch = min(h, w / aspect)
    s = uniform(rng, float(scale_range[0]), float(scale_range[1]))
    ch = max(1, int(round(max_ch * s)))
    cw = max(1, min(w, int(round(ch * aspect))))
    y0 = int(rng.integers(0, h - ch + 1))
    x0 = int(rng.integers(0, w - cw + 1))
    crop = img[y0:y0 + ch, x0:x0 + cw]
    out = resize_to(crop, (W, H))
    do_flip = bool(flip and rng.random() < 0.5)
    if do_flip:
        out = cv2.flip(out, 1)  # ~30x faster than copying numpy's reversed view of a 3-channel image
    return np.ascontiguousarray(out), {"crop": [x0, y0, cw, ch], "flip": do_flip}


class MixedBackgrounds:
    """Pick one of several sources per sample with the given weights.

    Args:
        sources: sequence of ``(source, weight)`` with weight > 0.

    Raises:
        ValueError: if empty or a weight is not positive.
    """

    def __init__(self, sources: Sequence[tuple[BackgroundSource, float]]):
        sources = list(sources)
        if not sources:
            raise ValueError("MixedBackgrounds needs at least one (source, weight) pair")
        for src, wt in sources:
            if not hasattr(src, "sample"):
                raise ValueError(f"{src!r} is not a background source (no .sample(rng, size))")
            if not float(wt) > 0:
                raise ValueError(f"weight of {src!r} must be > 0, got {wt!r}")
        self.sources = [s for s, _ in sources]
        w = np.asarray([float(wt) for _, wt in sources])
        self.weights = (w / w.sum()).tolist()
        cdf = np.cumsum(np.asarray(self.weights, np.float64))
        self._cdf = cdf / cdf[-1]

    def _pick(self, rng: np.random.Generator) -> int:
        # == rng.choice(len(sources), p=weights): inverse CDF on one rng.random() (same stream), minus
        # choice's ~20 us validation overhead; the CDF is computed once, in __init__
        return int(self._cdf.searchsorted(rng.random(), side="right"))

    def sample(self, rng: np.random.Generator, size: tuple[int, int]) -> tuple[np.ndarray, dict]:
        """Draw the source index, then delegate; meta gains ``mixed_index``."""
        i = self._pick(rng)
        img, meta = self.sources[i].sample(rng, size)
        return img, {**meta, "mixed_index": i}

    def sample_banked(self, rng: np.random.Generator, size: tuple[int, int], **bank) -> tuple[np.ndarray, dict]:
        """As :meth:`sample`, delegating to the chosen source's ``sample_banked(rng, size, **bank)``
        where it has one (procedural textures), else to its ``sample``."""
        i = self._pick(rng)
        src = self.sources[i]
        img, meta = src.sample_banked(rng, size, **bank) if hasattr(src, "sample_banked") else src.sample(rng, size)
        return img, {**meta, "mixed_index": i}

    def __repr__(self) -> str:
        return f"MixedBackgrounds({list(zip(self.sources, self.weights))!r})"
