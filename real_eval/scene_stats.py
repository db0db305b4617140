"""Scene statistics of key photos, measured the same way on real and synthetic sets.

Per photo (image uint8 (H, W, 3) RGB, mask uint8 {0, 1, 255}; key instances = 8-connected
components of ``mask == 1`` with at least ``min_area`` px):

- ``keys``: instances per photo;
- ``key_share``: key pixels / all pixels;
- ``length``: per instance, the longer side of its bounding box / the photo's long side;
- ``x``, ``y``: per instance, centroid / width, height;
- ``brightness``: per instance, mean luma (BT.601) of its pixels, 0-255;
- ``warmth``: per instance, mean (R - B) of its pixels (brass > 0, steel near 0), -255..255;
- ``edge_contrast``: per instance, |mean luma of a 3-px band inside its outline - of a 3-px band
  outside|, 0-255 (how much the key stands out from what lies around it).

:func:`compare_table` puts two sets' quartiles side by side; :func:`plot_comparison` draws the
histograms (a PNG).
"""

from __future__ import annotations

from typing import Iterable

import cv2
import numpy as np

__all__ = ["STAT_NAMES", "photo_stats", "set_stats", "compare_table", "plot_comparison"]

STAT_NAMES = ("keys", "key_share", "length", "x", "y", "brightness", "warmth", "edge_contrast")


def photo_stats(image: np.ndarray, mask: np.ndarray, *, min_area: int = 16) -> dict[str, list[float]]:
    """Statistics of one photo (see module doc): ``{name: [values]}``, one value for the per-photo
    statistics and one per instance for the others.

    Raises:
        ValueError: shapes or dtypes off.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or mask.shape != image.shape[:2]:
        raise ValueError(f"need uint8 (H, W, 3) image and (H, W) mask, got {image.dtype} {image.shape} / {mask.shape}")
    H, W = mask.shape
    key = (mask == 1).astype(np.uint8)
    luma = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    warm = image[..., 0].astype(np.float32) - image[..., 2].astype(np.float32)
    n, lab, st, cen = cv2.connectedComponentsWithStats(key, connectivity=8)
    out: dict[str, list[float]] = {k: [] for k in STAT_NAMES}
    k3 = np.ones((7, 7), np.uint8)
    for i in range(1, n):
        if st[i, cv2.CC_STAT_AREA] < min_area:
            continue
        inst = (lab == i).astype(np.uint8)
        inner = inst & ~cv2.erode(inst, k3).astype(bool)
        outer = cv2.dilate(inst, k3).astype(bool) & ~inst.astype(bool) & (mask != 255)
        px = inst.astype(bool)
        out["length"].append(max(st[i, cv2.CC_STAT_WIDTH], st[i, cv2.CC_STAT_HEIGHT]) / max(H, W))
        out["x"].append(cen[i][0] / W)
        out["y"].append(cen[i][1] / H)
        out["brightness"].append(float(luma[px].mean()))
        out["warmth"].append(float(warm[px].mean()))
        if inner.any() and outer.any():
            out["edge_contrast"].append(abs(float(luma[inner.astype(bool)].mean() - luma[outer].mean())))
    out["keys"].append(float(len(out["length"])))
    out["key_share"].append(float(key.mean()))
    return out


def set_stats(pairs: Iterable[tuple[np.ndarray, np.ndarray]], *, min_area: int = 16) -> dict[str, np.ndarray]:
    """:func:`photo_stats` pooled over ``(image, mask)`` pairs: ``{name: float64 array}``."""
    acc: dict[str, list[float]] = {k: [] for k in STAT_NAMES}
    for image, mask in pairs:
        for k, v in photo_stats(image, mask, min_area=min_area).items():
            acc[k].extend(v)
    return {k: np.asarray(v, np.float64) for k, v in acc.items()}


def _q(v: np.ndarray) -> str:
    if v.size == 0:
        return "-"
    a, b, c = np.quantile(v, (0.25, 0.5, 0.75))
    return f"{b:.3g} [{a:.3g}, {c:.3g}]"


def compare_table(a: dict[str, np.ndarray], b: dict[str, np.ndarray], names: tuple[str, str]) -> str:
    """Markdown table: each statistic's median [quartiles] in set ``a`` and set ``b``."""
    rows = [f"| statistic | {names[0]} (n) | {names[1]} (n) |", "|---|---|---|"]
    for k in STAT_NAMES:
        rows.append(f"| {k} | {_q(a[k])} ({a[k].size}) | {_q(b[k])} ({b[k].size}) |")
    return "\n".join(rows)


def plot_comparison(a: dict[str, np.ndarray], b: dict[str, np.ndarray], names: tuple[str, str], path) -> None:
    """Histograms of every statistic, ``a`` and ``b`` overlaid as densities, written to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 4, figsize=(13, 5.5))
    for ax, k in zip(axes.ravel(), STAT_NAMES):
        both = np.concatenate([a[k], b[k]])
        if both.size == 0:
            ax.set_title(f"{k}: no data")
            continue
        bins = np.linspace(both.min(), both.max() + 1e-9, 21)
        for v, name, colour in ((a[k], names[0], "tab:blue"), (b[k], names[1], "tab:orange")):
            if v.size:
                ax.hist(v, bins=bins, density=True, alpha=0.5, color=colour, label=f"{name} ({v.size})")
        ax.set_title(k)
        ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    plt.close(fig)
