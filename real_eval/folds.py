"""Grouped folds over a small real set, and paired bootstrap intervals for comparing models on it.

When a model trains on cut-outs or crops of real photos, it may only be scored on photos of
*other* keys: frames of one video show the same key bunch, so they form one group, and a fold
holds out one whole group (leave-one-group-out cross-validation). :func:`photo_group` names a
photo's group (its name without a trailing video-frame suffix ``_f<digits>``, or a
``GROUP__NAME`` prefix); :func:`grouped_folds` lists the folds.

Differences of a few hundredths between two models on a handful of photos are noise:
:func:`paired_bootstrap` resamples photos (the same draw for both models) and gives an interval
for the mean difference (Efron & Tibshirani, An Introduction to the Bootstrap, 1993, ch. 13).
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

__all__ = ["photo_group", "grouped_folds", "mean_interval", "paired_bootstrap", "comparison_table"]

_FRAME = re.compile(r"^(?P<group>.+?)_f\d+$")


def photo_group(name: str) -> str:
    """Group of a photo name: ``"video1_f0009"`` -> ``"video1"``, ``"shelf__a"`` -> ``"shelf"``,
    any other name is its own group."""
    if "__" in name:
        return name.split("__", 1)[0]
    m = _FRAME.match(name)
    return m.group("group") if m else name


def grouped_folds(names: Sequence[str]) -> list[tuple[str, list[str], list[str]]]:
    """Leave-one-group-out folds: ``[(group, held_out_names, training_names), ...]`` sorted by group.

    Raises:
        ValueError: fewer than two groups (nothing would be left to train on).
    """
    groups: dict[str, list[str]] = {}
    for n in names:
        groups.setdefault(photo_group(n), []).append(n)
    if len(groups) < 2:
        raise ValueError(f"grouped folds need photos of at least two groups, got {sorted(groups)}")
    return [(g, sorted(held), sorted(n for n in names if photo_group(n) != g)) for g, held in sorted(groups.items())]


def mean_interval(values: Sequence[float], *, n_boot: int = 2000, seed: int = 0, level: float = 0.95
                  ) -> tuple[float, float, float]:
    """``(mean, low, high)``: percentile bootstrap interval of the mean over photos."""
    v = np.asarray(values, float)
    rng = np.random.default_rng(seed)
    boots = v[rng.integers(0, len(v), (n_boot, len(v)))].mean(1)
    a = (1 - level) / 2
    return float(v.mean()), float(np.quantile(boots, a)), float(np.quantile(boots, 1 - a))


def paired_bootstrap(a: Sequence[float], b: Sequence[float], *, n_boot: int = 2000, seed: int = 0,
                     level: float = 0.95) -> tuple[float, float, float]:
    """``(mean(a - b), low, high)`` over the same photos, resampled together.

    Raises:
        ValueError: ``a`` and ``b`` differ in length or are empty.
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"paired_bootstrap needs two equally long non-empty lists, got {a.shape} and {b.shape}")
    return mean_interval(a - b, n_boot=n_boot, seed=seed, level=level)


def comparison_table(results: dict[str, dict[str, float]], baseline: str, *, what: str = "variant",
                     extra: dict[str, str] | None = None) -> str:
    """Markdown tables comparing variants scored on the same photos.

    Args:
        results: ``{variant: {photo name: IoU}}``, every variant scored on the same photos.
        baseline: the variant the paired differences are taken against.
        what: header of the first column.
        extra: ``{variant: text}`` for a last column (e.g. seconds per photo).

    Returns:
        One row per variant (mean with bootstrap interval, paired difference to ``baseline`` with
        its interval), then one row per photo.
    """
    names = list(results[baseline])
    base = [results[baseline][n] for n in names]
    head = f"| {what} | mean IoU [95% CI] | difference to {baseline} [paired 95% CI] |"
    lines = [head + (" cost |" if extra else ""), "|---|---|---|" + ("---|" if extra else "")]
    for key, d in results.items():
        v = [d[n] for n in names]
        m, lo, hi = mean_interval(v)
        dm, dlo, dhi = paired_bootstrap(v, base)
        row = f"| {key} | {m:.3f} [{lo:.3f}, {hi:.3f}] | {dm:+.3f} [{dlo:+.3f}, {dhi:+.3f}] |"
        lines.append(row + (f" {extra.get(key, '')} |" if extra else ""))
    lines += ["", "| photo | " + " | ".join(results) + " |", "|---|" + "---|" * len(results)]
    lines += [f"| {n} | " + " | ".join(f"{results[k][n]:.3f}" for k in results) + " |" for n in names]
    return "\n".join(lines)
