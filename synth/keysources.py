"""Mixed key sources and the look of pasted cut-outs: per-key source choice, re-lighting, blending.

``SynthConfig.key_source`` names one source (``"procedural"``, ``"fallback"`` or a folder of
cut-outs) or a weighted mix, ``"procedural:0.5,/data/cutouts:0.5"``: each key of a scene draws its
source with those weights (:class:`MixedKeys`). A single source draws nothing extra, so its
samples are unchanged.

Photographed cut-outs carry their own light and a hard paste edge, two cues a model can learn
instead of the key. Each pasted cut-out is therefore

- **re-lit** to the scene (:func:`sample_relight` / :func:`relight_layer`): exposure, contrast and
  colour temperature jitter, and a linear brightness gradient across the cut-out along the
  scene light's azimuth, so it agrees with the scene's lighting gradient and cast shadow;
- **blended** with a mode drawn per key (:data:`BLEND_MODES`): a hard edge, a Gaussian-feathered
  edge, a motion-blurred edge, or Poisson image editing (``cv2.seamlessClone``; Perez et al.,
  SIGGRAPH 2003). Mixing blend modes, rather than any single one, is what made copy-paste data
  work in Dwibedi et al., "Cut, Paste and Learn", ICCV 2017 (+8 mAP; Poisson alone hurt).

The label is the cut-out's own alpha whatever the blend (the layer's ``label``), so a feathered or
smeared edge changes the pixels, never the mask.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import cv2
import numpy as np

from backgrounds.base import uniform

__all__ = ["BLEND_MODES", "parse_key_sources", "MixedKeys", "make_keys", "sample_relight", "relight_layer", "sample_blend",
           "blend_layer", "poisson_colour"]

#: blend modes of pasted cut-outs, in the order of ``SynthConfig.cutout_blend_weights``
BLEND_MODES = ("hard", "gaussian", "motion", "poisson")


def parse_key_sources(spec: str) -> list[tuple[str, float]]:
    """``"procedural"`` -> ``[("procedural", 1.0)]``; ``"procedural:0.5,DIR:0.5"`` -> the pairs,
    weights normalised to sum 1. A name without ``:weight`` gets weight 1.

    Raises:
        ValueError: an empty name, a weight that is not a finite number >= 0, or all weights 0.
    """
    out = []
    for part in str(spec).split(","):
        part = part.strip()
        name, weight = part, 1.0
        if ":" in part:
            head, tail = part.rsplit(":", 1)
            try:
                weight = float(tail)
                name = head.strip()
            except ValueError:  # a ':' that is part of the name (e.g. a Windows drive)
                pass
        if not name:
            raise ValueError(f"key_source {spec!r}: empty source name; write e.g. 'procedural:0.5,/data/cutouts:0.5'")
        if not (math.isfinite(weight) and weight >= 0):
            raise ValueError(f"key_source {spec!r}: weight of {name!r} must be a finite number >= 0, got {weight}")
        out.append((name, weight))
    total = sum(w for _, w in out)
    if total <= 0:
        raise ValueError(f"key_source {spec!r}: all weights are 0; give at least one source a weight > 0")
    return [(n, w / total) for n, w in out]


class MixedKeys:
    """Several key sources drawn per key with fixed weights (picklable if its sources are).

    ``pick(rng)`` draws one ``rng.random()`` and returns ``(index, source)`` by the cumulative weights.
    """

    def __init__(self, sources: Sequence[Any], weights: Sequence[float], names: Sequence[str]):
        if not (len(sources) == len(weights) == len(names)) or not sources:
            raise ValueError("MixedKeys needs as many weights and names as sources, and at least one")
        self.sources, self.names = list(sources), list(names)
        self.cdf = np.cumsum(np.asarray(weights, np.float64) / float(np.sum(weights))).tolist()

    def __repr__(self) -> str:
        return f"MixedKeys({dict(zip(self.names, np.diff([0.0] + self.cdf).round(4).tolist()))})"

    def pick(self, rng: np.random.Generator) -> tuple[int, Any]:
        u = rng.random()
        i = next((j for j, c in enumerate(self.cdf) if u < c), len(self.cdf) - 1)
        return i, self.sources[i]


# ------------------------------------------------------------------ re-lighting
def sample_relight(rng: np.random.Generator, light_dir: Sequence[float], amplitude: float) -> dict[str, Any]:
    """Re-lighting parameters for one cut-out: ``exposure`` (x), ``contrast`` (x, about the cut-out's
    mean), ``temperature`` (-1 warm .. +1 cool; +-12% red / blue gain at 1), ``gradient`` (relative
    brightness change across the cut-out's long side along the light's azimuth)."""
    lx, ly = float(light_dir[0]), float(light_dir[1])
    return {"exposure": uniform(rng, 0.7, 1.3), "contrast": uniform(rng, 0.75, 1.25),
            "temperature": uniform(rng, -1.0, 1.0), "gradient": float(amplitude) * uniform(rng, 0.5, 1.5),
            "azimuth": math.atan2(ly, lx)}


def relight_layer(rgba: np.ndarray, p: dict[str, Any]) -> None:
    """Apply :func:`sample_relight` parameters in place to a premultiplied float32 (h, w, 4) layer
    (colour in [0, 255] x alpha, alpha in [0, 1]); alpha is unchanged."""
    h, w = rgba.shape[:2]
    a = rgba[..., 3]
    rgb = rgba[..., :3]
    cover = float(a.sum())
    if cover <= 0:
        return
    mean = rgb.reshape(-1, 3).sum(0) / cover  # straight-colour mean over the cut-out
    t = p["temperature"] * 0.12
    gains = np.array([1.0 - t, 1.0, 1.0 + t], np.float32) * np.float32(p["exposure"])
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    proj = (xs - w / 2) * math.cos(p["azimuth"]) + (ys - h / 2) * math.sin(p["azimuth"])
    ramp = 1.0 + np.float32(p["gradient"]) * proj / max(h, w, 1)
    c = np.float32(p["contrast"])
    # contrast about the mean, in premultiplied form: (C - m) * c + m, times alpha
    rgb -= a[..., None] * mean.astype(np.float32)
    rgb *= c
    rgb += a[..., None] * mean.astype(np.float32)
    rgb *= (ramp[..., None] * gains)
    np.clip(rgb, 0.0, 255.0 * a[..., None], out=rgb)


# ------------------------------------------------------------------ blending
def sample_blend(rng: np.random.Generator, weights: Sequence[float]) -> dict[str, Any]:
    """One blend mode by ``weights`` (order :data:`BLEND_MODES`) and its parameters: ``sigma``
    (px, Gaussian), ``length`` (px) and ``angle`` (deg) for motion."""
    cdf = np.cumsum(np.asarray(weights, np.float64) / float(np.sum(weights)))
    u = rng.random()
    mode = BLEND_MODES[int(min(np.searchsorted(cdf, u, side="right"), len(BLEND_MODES) - 1))]
    out: dict[str, Any] = {"mode": mode}
    if mode == "gaussian":
        out["sigma"] = uniform(rng, 0.5, 2.0)
    elif mode == "motion":
        out["length"] = uniform(rng, 3.0, 9.0)
        out["angle"] = uniform(rng, 0.0, 180.0)
    return out


def _motion_kernel(length: float, angle_deg: float) -> np.ndarray:
    n = int(math.ceil(length)) | 1
    k = np.zeros((n, n), np.float32)
    c = n // 2
    dx, dy = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    for t in np.linspace(-length / 2, length / 2, 2 * n):
        k[int(round(c + t * dy)), int(round(c + t * dx))] = 1.0
    return k / k.sum()


def blend_layer(rgba: np.ndarray, label: np.ndarray | None, p: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, int]:
    """Blend a premultiplied float32 (h, w, 4) layer's edge by ``p`` (:func:`sample_blend`).

    Returns ``(rgba', label', pad)``: the layer grown by ``pad`` px on each side where the edge
    spreads, and the label coverage (the original alpha, or ``label``) padded alike and unblurred.
    ``hard`` snaps alpha to {0, 1} at 0.5; ``poisson`` is applied at paste time
    (:func:`poisson_colour`) and only pads here.
    """
    lab = (rgba[..., 3] if label is None else label).astype(np.float32)
    mode = p["mode"]
    pad = {"gaussian": int(math.ceil(3 * p.get("sigma", 0))), "motion": int(math.ceil(p.get("length", 0) / 2))}.get(mode, 0)
    if pad:
        rgba = cv2.copyMakeBorder(rgba, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
        lab = cv2.copyMakeBorder(lab, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    if mode == "hard":
        a = rgba[..., 3]
        straight = rgba[..., :3] / np.maximum(a, 1e-6)[..., None]
        hard = (a >= 0.5).astype(np.float32)
        rgba = np.dstack([straight * hard[..., None], hard]).astype(np.float32)
    elif mode == "gaussian":
        rgba = cv2.GaussianBlur(rgba, (0, 0), p["sigma"])
    elif mode == "motion":
        rgba = cv2.filter2D(rgba, -1, _motion_kernel(p["length"], p["angle"]), borderType=cv2.BORDER_CONSTANT)
    return np.ascontiguousarray(rgba, np.float32), np.ascontiguousarray(lab), pad


def poisson_colour(canvas_img: np.ndarray, rgba: np.ndarray, x0: int, y0: int) -> np.ndarray | None:
    """Poisson-blend a layer's colour into the canvas region under it (``cv2.seamlessClone``,
    NORMAL_CLONE, mask = alpha >= 0.5). Returns the layer's new premultiplied float32 (h, w, 4)
    (hard alpha), or ``None`` when too little of it is on the canvas (the caller keeps the layer).
    """
    H, W = canvas_img.shape[:2]
    h, w = rgba.shape[:2]
    cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(W, x0 + w), min(H, y0 + h)
    if cx1 - cx0 < 8 or cy1 - cy0 < 8:
        return None
    sub = rgba[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]
    hard = sub[..., 3] >= 0.5
    m = np.zeros((cy1 - cy0 + 4, cx1 - cx0 + 4), np.uint8)
    m[2:-2, 2:-2][hard] = 255
    if m.sum() < 255 * 16:
        return None
    dst = cv2.copyMakeBorder(np.clip(canvas_img[cy0:cy1, cx0:cx1], 0, 255).astype(np.uint8), 2, 2, 2, 2, cv2.BORDER_REFLECT)
    straight = sub[..., :3] / np.maximum(sub[..., 3], 1e-6)[..., None]
    src = dst.copy()
    src[2:-2, 2:-2][hard] = np.clip(straight[hard], 0, 255).astype(np.uint8)
    bx, by, bw, bh = cv2.boundingRect(m)
    out = cv2.seamlessClone(src, dst, m, (bx + bw // 2, by + bh // 2), cv2.NORMAL_CLONE)[2:-2, 2:-2]
    new = np.zeros_like(rgba)
    region = new[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]
    region[..., 3] = hard
    region[..., :3] = out.astype(np.float32) * hard[..., None]
    return new


def make_keys(spec: str, kinds=None, materials=None):
    """Key cut-out source from ``SynthConfig.key_source``: "procedural" (``synth.keys``; falls back
    to ``FallbackKeys`` only if that module does not exist), "fallback", a cut-out folder, or a
    weighted mix ``"procedural:0.5,DIR:0.5"`` (:class:`synth.keysources.MixedKeys`)."""
    pairs = parse_key_sources(spec)
    if len(pairs) > 1:
        return MixedKeys([_one_key_source(n, kinds, materials) for n, _ in pairs], [w for _, w in pairs],
                         [n for n, _ in pairs])
    return _one_key_source(pairs[0][0], kinds, materials)


def _one_key_source(spec: str, kinds=None, materials=None):
    if spec == "fallback":
        from synth.occluders import FallbackKeys

        return FallbackKeys()
    if spec == "procedural":
        try:
            from synth.keys import ProceduralKeys
        except ModuleNotFoundError as exc:
            if exc.name not in ("synth.keys",):
                raise
            from synth.occluders import FallbackKeys

            return FallbackKeys()
        return ProceduralKeys(kinds=kinds, materials=materials)
    import os

    if os.path.isdir(spec):
        from synth.cutouts import FolderCutouts

        return FolderCutouts(spec)
    raise ValueError(f"unknown key_source {spec!r}: not 'procedural', 'fallback' or an existing folder of cut-outs "
                     f"(a mix is written 'procedural:0.5,/data/cutouts:0.5')")
