"""Preview sheet: a grid of rendered samples with green mask contours, plus histograms of every
numeric sampled parameter (matplotlib, Agg backend)."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from .config import SynthConfig
from .scene import SampleRenderer

from keysynth.common import atomic_open, atomic_write_bytes

__all__ = ["write_preview", "contact_sheet", "flatten_numeric"]


def flatten_numeric(meta, prefix: str = "", out: dict | None = None) -> dict:
    """Flatten a nested meta dict into {dotted.path: float} for every int/float leaf (bools and
    strings skipped; list items pool under one ``name[]`` key — vector components and the several
    keys of a scene share one histogram). ``seed``/``index``/``run_seed`` are skipped."""
    out = {} if out is None else out
    if isinstance(meta, dict):
        for k, v in meta.items():
            if prefix == "" and k in ("seed", "index", "run_seed"):
                continue
            flatten_numeric(v, f"{prefix}.{k}" if prefix else str(k), out)
    elif isinstance(meta, list):
        for i, v in enumerate(meta):
            flatten_numeric(v, prefix if isinstance(v, dict) or prefix.endswith("[]") else f"{prefix}[]", out)
    elif isinstance(meta, (int, float)) and not isinstance(meta, bool):
        out.setdefault(prefix, []).append(float(meta))
    return out


def _overlay(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """BGR copy of ``image`` with green contours of mask==1 (and grey for the 255 band)."""
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    m = (mask == 1).astype(np.uint8)
    cs, _ = cv2.findContours(m, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(bgr, cs, -1, (0, 255, 0), 1, cv2.LINE_8)
    bgr[mask == 255] = (bgr[mask == 255] * 0.5 + 64).astype(np.uint8)
    return bgr


def contact_sheet(samples: list[dict], cols: int | None = None, tile: int | None = None) -> np.ndarray:
    """Grid (BGR uint8) of samples with contours; each tile is image|overlay side by side when the
    tile is large enough, else overlay only."""
    n = len(samples)
    cols = cols or int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / cols))
    S = samples[0]["image"].shape[0]
    t = tile or S
    sheet = np.full((rows * (t + 2), cols * (t + 2), 3), 255, np.uint8)
    for i, s in enumerate(samples):
        ov = _overlay(s["image"], s["mask"])
        if t != S:
            ov = cv2.resize(ov, (t, t), interpolation=cv2.INTER_AREA)
        r, c = divmod(i, cols)
        sheet[r * (t + 2):r * (t + 2) + t, c * (t + 2):c * (t + 2) + t] = ov
    return sheet


def _atomic_png(path: Path, bgr: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", bgr)
    if not ok:
        raise ValueError(f"PNG encoding failed for {path}")
    atomic_write_bytes(path, buf.tobytes())


def write_preview(out_png: Path, *, n: int = 64, config: SynthConfig, run_seed: int = 0, backgrounds=None,
                  hist_png: Path | None = None, keys=None, tile: int | None = None) -> None:
    """Render samples 0..n-1 of run ``run_seed`` and write a contact sheet PNG (mask contours in
    green) to ``out_png``; with ``hist_png``, also a matplotlib figure with one histogram per numeric
    sampled parameter (meta leaves) across the n samples. Writes are atomic.

    Raises:
        ValueError: n < 1, or the output folder does not exist.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    out_png = Path(out_png)
    if not out_png.parent.is_dir():
        raise ValueError(f"output folder {out_png.parent} does not exist; create it first")
    r = SampleRenderer(config, backgrounds=backgrounds, keys=keys)
    samples = [r.render(i, run_seed) for i in range(n)]
    _atomic_png(out_png, contact_sheet(samples, tile=tile))
    if hist_png is not None:
        hist_png = Path(hist_png)
        vals: dict = {}
        for s in samples:
            flatten_numeric(s["meta"], out=vals)
        keys_ = sorted(k for k, v in vals.items() if len(v) >= 2 and np.ptp(v) > 0)
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator

        cols = 6
        rows = max(1, int(math.ceil(len(keys_) / cols)))
        fig, axes = plt.subplots(rows, cols, figsize=(cols * 2.6, rows * 1.9), squeeze=False)
        for ax, k in zip(axes.flat, keys_):
            ax.hist(vals[k], bins=20, color="tab:blue")
            ax.set_title(k if len(k) < 38 else "..." + k[-35:], fontsize=6)
            ax.tick_params(labelsize=5, length=2)
            ax.set_yticks([])  # counts are implied by n; fewer tick artists keep the draw fast
            ax.xaxis.set_major_locator(MaxNLocator(3))
        for ax in list(axes.flat)[len(keys_):]:
            ax.axis("off")
        fig.suptitle(f"{n} samples, run_seed={run_seed}, size={config.size}", fontsize=9)
        # subplots_adjust, not tight_layout: the latter measures every text artist (minutes for
        # ~100 axes).
        fig.subplots_adjust(left=0.03, right=0.99, bottom=0.02, top=1 - 0.5 / (rows * 1.9), hspace=0.7, wspace=0.3)
        with atomic_open(hist_png) as fh:
            fig.savefig(fh, dpi=90, format="png")
        plt.close(fig)
