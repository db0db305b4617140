"""Asset bank: cached object geometry, re-lit per sample (the renderer's main speed lever).

Rasterising a procedural object and computing its height map and normals costs ~1-2 ms; lighting
and colouring it costs a fraction of that. With an asset bank a scene does not build every key or
distractor afresh: it draws an asset id in ``[0, bank_size)`` and takes that object's geometry
(:class:`synth.keys.render.Relief`, canonical orientation, at a size bucket) from the renderer's
LRU cache (``SampleRenderer.asset_cache``), then samples material, texture placement, scratches,
light, environment, rotation, scale and perspective for this sample only. Like a fixed asset set
in Kubric or the cut-out pool of Cut, Paste and Learn, but procedural and refreshed: the bank's
seed changes every ``refresh`` samples, so a long run keeps seeing new shapes.

Determinism: an asset's geometry is a pure function of ``(bank seed, family, asset id, size
bucket)`` (its own ``SeedSequence``), and the asset id comes from the sample's rng. The cache only
decides whether that function is evaluated or looked up, so a sample's bytes never depend on the
cache, the worker or the order of samples.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from backgrounds.cache import LRUCache
from keysynth.common import seed_rng

__all__ = ["size_bucket", "draw_asset", "asset_rng", "canonical_affine", "cached_asset", "BUCKETS_PER_OCTAVE"]

BUCKETS_PER_OCTAVE = 2  # size buckets 2**(1/2) apart: a cached asset is shrunk by at most 1/sqrt(2)


def size_bucket(length_px: float, min_px: float = 8.0) -> tuple[int, float]:
    """``(k, Lb)``: the smallest bucket length ``Lb = min_px * 2**(k / BUCKETS_PER_OCTAVE) >= length_px``
    (px). The asset is built at ``Lb`` and shrunk to ``length_px`` by the caller's warp."""
    L = max(float(length_px), float(min_px))
    k = int(math.ceil(BUCKETS_PER_OCTAVE * math.log2(L / min_px) - 1e-9))
    return k, float(min_px * 2.0 ** (k / BUCKETS_PER_OCTAVE))


def draw_asset(rng: np.random.Generator, bank_size: int, length_px: float, min_px: float) -> tuple[int, int, float]:
    """``(asset id, size bucket k, bucket length Lb)`` for one object of ``length_px``: the id is
    drawn from the sample's ``rng`` in ``[0, bank_size)``. Raises ValueError if ``bank_size < 1``."""
    if int(bank_size) < 1:
        raise ValueError(f"bank_size must be >= 1, got {bank_size!r}")
    aid = int(rng.integers(int(bank_size)))
    k, Lb = size_bucket(length_px, min_px)
    return aid, k, Lb


def asset_rng(bank_seed: int, *tags: int | str) -> np.random.Generator:
    """The geometry rng of one asset: ``SeedSequence([bank_seed, *tags])`` (strings as crc32)."""
    return seed_rng(bank_seed, *tags)


def canonical_affine(hw: tuple[int, int], angle_deg: float, scale: float) -> tuple[np.ndarray, tuple[int, int]]:
    """2x3 affine that rotates (CCW on screen, degrees; ``geometry.rotation_matrix``) and scales an
    (h, w) canonical cut-out into a tight box, and that box's (h, w). Pixel centres map to pixel
    centres (OpenCV convention). Plain floats: this runs once per object."""
    h, w = hw
    a = math.radians(angle_deg)
    c, s = math.cos(a) * scale, math.sin(a) * scale
    # pixel-edge corners (-0.5 .. n - 0.5) mapped by [[c, s], [-s, c]]
    xs = [c * x + s * y for x in (-0.5, w - 0.5) for y in (-0.5, h - 0.5)]
    ys = [-s * x + c * y for x in (-0.5, w - 0.5) for y in (-0.5, h - 0.5)]
    lo_x, lo_y = min(xs), min(ys)
    out_w = int(math.ceil(max(xs) - lo_x)) + 1
    out_h = int(math.ceil(max(ys) - lo_y)) + 1
    return np.array([[c, s, -lo_x - 0.5], [-s, c, -lo_y - 0.5]]), (out_h, out_w)


def cached_asset(cache: LRUCache | None, key: tuple, build: Callable[[], object]):
    """``build()``'s value for ``key`` (its first item: the bank seed) from ``cache``, which first
    drops all but the most recent bank generations (``LRUCache.enter_generation``); with no cache
    the asset is built afresh (same value, slower)."""
    if cache is None:
        return build()
    cache.enter_generation(key[0])
    return cache.get(key, build)
