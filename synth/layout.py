"""Scene layout: how many keys, how large, and where each one goes, drawn from the scene's
``layout`` random stream (:func:`synth.seeding.child_rng`).

Layout kinds (``SynthConfig``): ``empty`` (no key, ``empty_prob``), ``crop`` (one key centred with
a margin, the view of a second-stage crop, ``crop_like_prob``), ``cluster`` (keys fanned on one
key ring, ``ring_cluster_prob``) and ``scatter`` (keys dropped anywhere, some cut by the border).
:func:`sample_layout` draws the kind, the key count and the key scale; per key,
:func:`key_length_and_angle` draws its length and orientation before the key is rendered, and
:func:`place_cluster` / :func:`place_crop` / :func:`place_scatter` its position after (the
position depends on the rendered key's size and bow hole).
"""

from __future__ import annotations

import dataclasses
import math

from .config import SynthConfig
from .seeding import loguniform, normal, uniform

__all__ = ["Layout", "PlacedKey", "sample_layout", "key_length_and_angle", "blade_frame", "place_cluster",
           "place_crop", "place_scatter"]


@dataclasses.dataclass
class Layout:
    """The scene's layout: ``mode`` (empty | crop | cluster | scatter), ``n`` keys of long side about
    ``scale`` x frame side; for a cluster the ring (``ring``: centre px, radius px) and the fan
    (``base`` direction and ``spread``, degrees)."""

    mode: str
    n: int
    scale: float = 0.0
    ring: dict | None = None
    base: float = 0.0
    spread: float = 0.0


@dataclasses.dataclass
class PlacedKey:
    """A rendered key on the canvas: its layer (x0, y0 set), bow hole in frame px, unit blade
    direction (x, y), long side ``length_px`` and its meta."""

    layer: object
    hole: list
    blade_dir: tuple
    length_px: float
    meta: dict


def sample_layout(rng, c: SynthConfig, size: int) -> Layout:
    """Layout kind, key count and key scale (log-uniform; tiny keys with ``tiny_key_prob``)."""
    if rng.random() < c.empty_prob:
        return Layout("empty", 0, _key_scale(rng, c, "empty", 0))
    u = rng.random()
    if u < c.crop_like_prob:
        mode, n = "crop", 1
    elif u < c.crop_like_prob + (1 - c.crop_like_prob) * c.ring_cluster_prob:
        mode, n = "cluster", int(rng.integers(max(2, c.n_keys_range[0]), max(2, c.n_keys_range[1]) + 1))
    else:
        mode, n = "scatter", int(rng.integers(c.n_keys_range[0], c.n_keys_range[1] + 1))
    layout = Layout(mode, n, _key_scale(rng, c, mode, n))
    if mode == "cluster":
        ring_r = layout.scale * size * uniform(rng, 0.15, 0.3)
        rc = rng.uniform(0.25, 0.75, 2) * size
        layout.base = uniform(rng, 0, 360)
        layout.spread = uniform(rng, 30, 150)
        layout.ring = {"centre": rc.tolist(), "radius": ring_r}
    return layout


def _key_scale(rng, c: SynthConfig, mode: str, n: int) -> float:
    if mode == "crop":
        return uniform(rng, *c.crop_like_length_range)
    lo, hi = c.key_length_range if rng.random() < c.tiny_key_prob else c.key_length_typical_range
    if not (mode == "scatter" and n == 1):  # several keys must fit together
        hi = min(hi, max(lo * 1.01, hi * (0.75 if mode == "scatter" else 0.55)))
    return loguniform(rng, lo, hi)


def key_length_and_angle(rng, layout: Layout, k: int, size: int, delta: float | None) -> tuple[float, float, float]:
    """Key ``k``'s long side (px), rotation (deg, CCW) and, in a cluster, its fan direction ``phi``
    (deg; the blade points outward from the ring: rotation = phi - ``delta``, the first key's
    offset between blade and rotation, once known)."""
    L = layout.scale * size * (uniform(rng, 0.85, 1.15) if layout.n > 1 else 1.0)
    phi = 0.0
    if layout.mode == "cluster":
        phi = layout.base + (k / max(1, layout.n - 1) - 0.5) * layout.spread + normal(rng, 0, 8)
        angle = phi if delta is None else phi - delta
    else:
        angle = uniform(rng, 0, 360)
    return L, angle, phi


def blade_frame(w: int, h: int, hole, angle: float, L: float) -> tuple[float, float, float, float]:
    """Bow hole ``(hx, hy)`` in layer px (estimated 0.35 L behind the centre when the source gives
    none) and the unit blade direction ``(bx, by)`` from the hole through the layer centre.

    2-vectors as plain floats: a handful of operations per key, where NumPy's per-call overhead
    would dominate."""
    cx, cy = w / 2, h / 2
    if hole is not None:
        hx, hy = float(hole[0]), float(hole[1])
    else:
        ar = math.radians(angle)
        hx, hy = cx - 0.35 * L * math.cos(ar), cy - 0.35 * L * -math.sin(ar)
    bx, by = cx - hx, cy - hy
    nb = math.hypot(bx, by) or 1.0
    return hx, hy, bx / nb, by / nb


def place_cluster(layout: Layout, phi: float, hx: float, hy: float) -> tuple[float, float]:
    """Layer origin putting the bow hole on the ring at direction ``phi`` (deg)."""
    pr = math.radians(phi)
    rcx, rcy = layout.ring["centre"]
    r = layout.ring["radius"]
    return rcx + r * math.cos(pr) - hx, rcy + r * -math.sin(pr) - hy


def place_crop(rng, c: SynthConfig, size: int, L: float, w: int, h: int, km: dict) -> tuple[float, float]:
    """Layer origin of a crop-like key: centred with a small jitter, or shifted by a quarter to a
    half of its length towards the border (``crop_like_cut_prob``); sets ``km["border_cut"]``."""
    cut = rng.random() < c.crop_like_cut_prob
    sx, sy = (rng.normal(0, 0.04, 2) * size).tolist()
    if cut:
        t = uniform(rng, 0, 2 * math.pi)
        u = uniform(rng, 0.25, 0.5)
        sx, sy = sx + math.cos(t) * L * u, sy + math.sin(t) * L * u
    km["border_cut"] = bool(cut)
    return size / 2 + sx - w / 2, size / 2 + sy - h / 2


def place_scatter(rng, c: SynthConfig, size: int, w: int, h: int, km: dict) -> tuple[float, float]:
    """Layer origin of a scattered key: inside the frame, or up to a quarter outside it
    (``border_cut_prob``); sets ``km["border_cut"]``."""
    cut = rng.random() < c.border_cut_prob
    lo = (-0.25 * w, -0.25 * h) if cut else (0.0, 0.0)
    hi = (size - w * (0.75 if cut else 1.0), size - h * (0.75 if cut else 1.0))
    px, py = (uniform(rng, min(lo[i], hi[i]), max(lo[i], hi[i])) for i in range(2))
    km["border_cut"] = bool(cut)
    return px, py
