"""Procedural background textures: each kind is a pure function of ``(rng, size)``.

Cheap by construction: every random field is drawn on a coarse grid and upsampled with
``cv2.resize`` (value-noise octaves, Perlin 1985 / "fractal Brownian motion" as in Ebert et al.,
*Texturing & Modeling*), periodic patterns (weave, tiles) are built from a small tile with
``np.tile``. Output: uint8 (H, W, 3) RGB.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from keysynth.common import seed_rng

from .base import channel_gains, check_size, pick, uniform
from .cache import LRUCache

__all__ = ["ProceduralBackgrounds", "PROCEDURAL_KINDS", "fractal_noise"]

#: budget of a source's banked-texture cache, MiB
TEXTURE_CACHE_MIB = 128

_DIHEDRAL = ("none", "flip_x", "flip_y", "rot180", "transpose", "rot90", "rot270", "transverse")


def fractal_noise(rng: np.random.Generator, size: tuple[int, int], base_cells: float = 4.0,
                  octaves: int = 5, persistence: float = 0.5, aniso: float = 1.0) -> np.ndarray:
    """Value-noise fBm: sum of ``octaves`` upsampled random grids.

    Args:
        size: (H, W) output; base_cells: grid cells along the long side at octave 0 (>0);
        octaves: number of octaves (each doubles the frequency); persistence: amplitude factor
        per octave; aniso: >1 stretches features along x (grain).

    Returns:
        float32 (H, W), zero mean, unit standard deviation (approximately).
    """
    H, W = size
    # coarse-to-fine accumulation: the running sum is upsampled to each finer grid and the octave
    # added there, so only ONE resize per octave runs at that octave's own (small) grid size and a
    # single one at the frame size (instead of one full-frame cubic resize per octave).
    acc = None
    amp, total = 1.0, 0.0
    for o in range(octaves):
        cells = base_cells * (2 ** o)
        gh = max(2, int(round(cells * H / max(H, W))))
        gw = max(2, int(round(cells * W / max(H, W) / aniso)))
        if gh >= H or gw >= W:
            g = rng.standard_normal((H, W), dtype=np.float32)
        else:
            g = rng.standard_normal((gh, gw), dtype=np.float32)
        if acc is None:
            acc = g * np.float32(amp)
        else:
            if acc.shape != g.shape:
                acc = cv2.resize(acc, (g.shape[1], g.shape[0]), interpolation=cv2.INTER_CUBIC)
            acc += g * np.float32(amp)
        total += amp * amp
        amp *= persistence
    if acc.shape != (H, W):
        acc = cv2.resize(acc, (W, H), interpolation=cv2.INTER_CUBIC)
    acc *= np.float32(1.0 / np.sqrt(total))
    return acc


def _colour(rng, lo=20, hi=235) -> np.ndarray:
    return rng.uniform(lo, hi, 3).astype(np.float32)


def _merge_u8(chans) -> np.ndarray:
    """Three float32 (H, W) channel planes -> uint8 (H, W, 3), clipped to [0, 255] and truncated
    (same values as ``np.clip(img, 0, 255).astype(np.uint8)`` on the stacked image). Per-channel
    planes avoid numpy's slow broadcasting over a length-3 last axis."""
    return cv2.merge([np.clip(ch, 0, 255).astype(np.uint8) for ch in chans])


def _tint_u8(field: np.ndarray, c0: np.ndarray, c1: np.ndarray) -> np.ndarray:
    """Map a field in ~[0, 1] (clipped) to colours between c0 and c1 -> uint8 (H, W, 3).

    One fused float32 scale-add-saturate pass per channel (``cv2.convertScaleAbs``; c0, c1 >= 0 so
    the absolute value is a no-op) instead of float64 (H, W, 3) temporaries; the -0.5 offset makes
    OpenCV's rounding approximate the truncation of ``astype(np.uint8)`` (within 1 level)."""
    f = np.clip(np.asarray(field, np.float32), 0.0, 1.0)
    c0 = np.asarray(c0, np.float64)
    d = np.asarray(c1, np.float64) - c0
    return cv2.merge([cv2.convertScaleAbs(f, alpha=float(d[i]), beta=float(c0[i]) - 0.5) for i in range(3)])


def gradient(rng, size):
    """Smooth linear or radial two-colour gradient with faint low-frequency mottling."""
    H, W = size
    c0, c1 = _colour(rng), _colour(rng)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    if rng.random() < 0.5:
        t = uniform(rng, 0, 2 * np.pi)
        f = (xx * math.cos(t) + yy * math.sin(t))
        f = (f - f.min()) / max(1e-6, float(np.ptp(f)))
        sub = "linear"
    else:
        cx, cy = rng.uniform(0, W), rng.uniform(0, H)
        f = np.hypot(xx - cx, yy - cy)
        f = f / max(1e-6, float(f.max()))
        sub = "radial"
    f = f + 0.05 * fractal_noise(rng, size, 3, 3)
    return _tint_u8(f, c0, c1), {"variant": sub}


def noise(rng, size):
    """Coloured fractal noise (stone, plaster, granite-like)."""
    c0, c1 = _colour(rng), _colour(rng)
    base = uniform(rng, 2, 12)
    f = fractal_noise(rng, size, base, 6, uniform(rng, 0.4, 0.7))
    return _tint_u8(0.5 + 0.25 * f, c0, c1), {"base_cells": base}


def wood(rng, size):
    """Wood grain: sine rings of a distorted coordinate along a random axis, plus fine streaks."""
    H, W = size
    hue = rng.uniform([90, 50, 20], [200, 140, 80]).astype(np.float32)
    dark = hue * uniform(rng, 0.45, 0.7)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    t = uniform(rng, 0, np.pi)
    u = (xx * math.cos(t) + yy * math.sin(t)) / max(H, W)
    freq = uniform(rng, 8, 30)
    warp = fractal_noise(rng, size, 3, 3) * uniform(rng, 0.02, 0.08)
    rings = 0.5 + 0.5 * np.sin(2 * np.pi * freq * (u + warp))
    streak = fractal_noise(rng, (H, W), 40, 2, aniso=8.0) if abs(np.cos(t)) < 0.7 else \
        fractal_noise(rng, (W, H), 40, 2, aniso=8.0).T
    f = 0.7 * rings ** 2 + 0.15 * streak + 0.15
    planks = ""
    if rng.random() < 0.5:  # floor boards: dark seams perpendicular to the grain direction
        pw = int(rng.integers(max(8, H // 10), max(9, H // 3)))
        v = ((-xx * math.sin(t) + yy * math.cos(t)) % pw) < max(1, pw // 40)
        f = np.where(v, -0.3, f)
        planks = pw
    return _tint_u8(f, dark, hue), {"freq": freq, "angle": t, "plank_px": planks}


def tiles(rng, size):
    """Square/rectangular tiles with grout lines, per-tile colour jitter and surface mottling."""
    H, W = size
    tw = int(rng.integers(max(12, W // 12), max(13, W // 2)))
    th = tw if rng.random() < 0.6 else int(tw * uniform(rng, 0.4, 1.0))
    grout = max(1, int(tw * uniform(rng, 0.02, 0.08)))
    c = _colour(rng, 60, 240)
    gc = c * uniform(rng, 0.3, 1.2)
    ny, nx = H // th + 2, W // tw + 2
    jitter = rng.normal(0, rng.uniform(2, 18), (ny, nx, 3)).astype(np.float32)
    ox, oy = int(rng.integers(tw)), int(rng.integers(th))
    yy = (np.arange(H) + oy)
    xx = (np.arange(W) + ox)
    iy, ix = yy // th, xx // tw
    mott = fractal_noise(rng, size, 6, 4) * uniform(rng, 2, 10)
    gl = ((yy % th) < grout)[:, None] | ((xx % tw) < grout)[None, :]
    chans = []
    for i in range(3):  # per channel: c + jitter[tile] + mottling, grout painted over
        ch = c[i] + jitter[:, :, i].take(iy, 0).take(ix, 1)
        ch = ch + mott
        ch[gl] = gc[i]
        chans.append(ch)
    return _merge_u8(chans), {"tile_px": [int(th), int(tw)], "grout_px": grout}


def fabric(rng, size):
    """Plain fabric weave: alternating over/under thread pattern from a small periodic tile."""
    H, W = size
    p = int(rng.integers(3, 9))  # thread pitch px
    n = 2 * p
    y, x = np.mgrid[0:n, 0:n].astype(np.float32)
    warp = 0.5 + 0.5 * np.cos(np.pi * (x % p - (p - 1) / 2) / p)  # thread profile across
    weft = 0.5 + 0.5 * np.cos(np.pi * (y % p - (p - 1) / 2) / p)
    over = ((x // p + y // p) % 2).astype(np.float32)
    tile = over * warp + (1 - over) * weft
    f = np.tile(tile, (H // n + 1, W // n + 1))[:H, :W]
    c0, c1 = _colour(rng, 15, 220), None
    c1 = np.clip(c0 * rng.uniform(1.1, 1.6), 0, 255).astype(np.float32)
    f = 0.6 * f + 0.4 * (0.5 + 0.3 * fractal_noise(rng, size, 8, 4))
    return _tint_u8(f, c0 * 0.6, c1), {"pitch_px": p}


def carpet(rng, size):
    """Carpet / rug pile: high-frequency speckle on a low-frequency colour field."""
    c0, c1 = _colour(rng, 10, 200), _colour(rng, 10, 200)
    low = 0.5 + 0.3 * fractal_noise(rng, size, 3, 3)
    hi = fractal_noise(rng, size, max(size) / 3.0, 2, 0.6)
    d = c1 - c0
    g = 1 + 0.25 * hi
    return _merge_u8([(c0[i] + low * d[i]) * g for i in range(3)]), {}


def laminate(rng, size):
    """Desk / laminate: flat colour with faint stretched grain and a soft sheen."""
    H, W = size
    c = _colour(rng, 40, 235)
    t = rng.random() < 0.5
    g = fractal_noise(rng, (H, W) if t else (W, H), 30, 3, aniso=uniform(rng, 5, 20))
    g = g if t else np.ascontiguousarray(g.T)
    g1 = 1 + uniform(rng, 0.02, 0.08) * g
    return _merge_u8([c[i] * g1 for i in range(3)]), {"grain_axis": "x" if t else "y"}


def paper(rng, size):
    """Paper / notebook: near-white with fibre noise, optionally ruled lines."""
    H, W = size
    c = rng.uniform([200, 195, 180], [255, 252, 245]).astype(np.float32)
    g1 = 1 + 0.03 * fractal_noise(rng, size, 20, 4)
    chans = [c[i] * g1 for i in range(3)]
    ruled = bool(rng.random() < 0.4)
    if ruled:
        pitch = int(rng.integers(max(6, H // 30), max(7, H // 10)))
        rows = (np.arange(H) % pitch) == 0
        ink = np.array([0.75, 0.8, 0.95], np.float32)
        for i in range(3):
            chans[i][rows] = chans[i][rows] * ink[i]
    return _merge_u8(chans), {"ruled": ruled}


PROCEDURAL_KINDS = {
    "gradient": gradient, "noise": noise, "wood": wood, "tiles": tiles, "fabric": fabric,
    "carpet": carpet, "laminate": laminate, "paper": paper,
}


class ProceduralBackgrounds:
    """Procedural textures (``PROCEDURAL_KINDS``), one kind drawn uniformly per sample.

    Args:
        kinds: subset of ``PROCEDURAL_KINDS`` names (None = all).
        max_work_px: textures are synthesised with the long side at most this many px, then
            upsampled (INTER_LINEAR) to the requested size: keeps 512 px backgrounds at ~1-3 ms.

    Raises:
        ValueError: unknown kind (lists the valid names).
    """

    def __init__(self, kinds: tuple[str, ...] | None = None, max_work_px: int = 256):
        kinds = tuple(PROCEDURAL_KINDS) if kinds is None else tuple(kinds)
        bad = [k for k in kinds if k not in PROCEDURAL_KINDS]
        if bad or not kinds:
            raise ValueError(f"unknown procedural background kind(s) {bad}; valid: {sorted(PROCEDURAL_KINDS)}")
        self.kinds = kinds
        self.max_work_px = int(max_work_px)
        self.texture_cache = LRUCache(TEXTURE_CACHE_MIB)  # banked textures (a copy starts empty)

    def sample(self, rng: np.random.Generator, size: tuple[int, int]) -> tuple[np.ndarray, dict]:
        """uint8 (H, W, 3) RGB texture; meta = {source, kind, **kind params}."""
        H, W = check_size(size)
        kind = pick(rng, self.kinds)
        f = min(1.0, self.max_work_px / max(H, W))
        wh, ww = max(8, int(round(H * f))), max(8, int(round(W * f)))
        img, meta = PROCEDURAL_KINDS[kind](rng, (wh, ww))
        if (wh, ww) != (H, W):
            img = cv2.resize(img, (W, H), interpolation=cv2.INTER_LINEAR)
        return img, {"source": "procedural", "kind": kind, "work_hw": [wh, ww], **meta}

    def sample_banked(self, rng: np.random.Generator, size: tuple[int, int], *, bank_seed: int,
                      bank_size: int) -> tuple[np.ndarray, dict]:
        """A texture from a bank of ``bank_size`` per ``bank_seed`` (the renderer's asset-bank
        generation), seen under one of the 8 flips / 90-degree turns (4 flips when H != W) and a
        per-channel gain in [0.85, 1.15]: ~0.1 ms instead of ~1-2 ms per sample.

        The texture of id ``i`` is ``sample(SeedSequence([bank_seed, i, H, W]), size)``, a pure
        function kept in this source's ``texture_cache`` (the two most recent bank generations);
        ``i``, the orientation and the gains come from ``rng``, so the output never depends on the
        cache. Raises ValueError if ``bank_size < 1``.
        """
        H, W = check_size(size)
        if int(bank_size) < 1:
            raise ValueError(f"bank_size must be >= 1, got {bank_size!r}")
        tid = int(rng.integers(int(bank_size)))
        orient = int(rng.integers(8 if H == W else 4))
        gains = rng.uniform(0.85, 1.15, 3)

        def build():
            g = seed_rng(bank_seed, tid, H, W)
            img, meta = self.sample(g, (H, W))
            img.flags.writeable = False
            return img, meta

        self.texture_cache.enter_generation(int(bank_seed))
        key = (int(bank_seed), "procedural", self.kinds, self.max_work_px, tid, H, W)
        img, meta = self.texture_cache.get(key, build)
        if orient in (1, 2, 3):
            img = cv2.flip(img, {1: 1, 2: 0, 3: -1}[orient])
        elif orient >= 4:
            img = cv2.transpose(img)
            if orient > 4:
                img = cv2.flip(img, {5: 1, 6: 0, 7: -1}[orient])
        out = channel_gains(img, gains)
        return out, {**meta, "bank": {"bank_seed": int(bank_seed), "id": tid, "orientation": _DIHEDRAL[orient],
                                      "gains": [round(float(v), 4) for v in gains]}}

    def __repr__(self) -> str:
        return f"ProceduralBackgrounds({self.kinds!r})"
