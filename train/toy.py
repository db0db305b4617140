"""A tiny picklable producer (random bright discs on noise) with the ``SampleRenderer`` interface.

Used by the tests and benchmarks so they do not depend on the real generator's speed, and to
smoke-test a training setup (``ToyDiscRenderer(64)``: a model learns it in a few dozen steps).
Randomness comes only from ``synth.seeding.sample_seed(run_seed, index)``, so sample ``i`` of run
``s`` is the same in every process.
"""

from __future__ import annotations

import time

import numpy as np

from synth.seeding import sample_seed

__all__ = ["ToyDiscRenderer"]


class ToyDiscRenderer:
    """Render 0-``max_discs`` bright discs (mask 1) on dark noise.

    Args:
        size: side length, px.
        max_discs: at most this many discs per sample (0 discs happens: empty samples).
        delay_s: sleep this long per sample (simulates a slow generator in stream tests).
        ignore_band: if > 0, pixels within this many px of a disc rim get mask 255 (ignore).
    """

    def __init__(self, size: int = 64, max_discs: int = 3, delay_s: float = 0.0, ignore_band: int = 0):
        if size < 8:
            raise ValueError(f"ToyDiscRenderer size must be >= 8 px, got {size}")
        self.size = int(size)
        self.max_discs = int(max_discs)
        self.delay_s = float(delay_s)
        self.ignore_band = int(ignore_band)

    def render(self, index: int, run_seed: int) -> dict:
        """-> sample dict: image uint8 (S, S, 3), mask uint8 (S, S) {0, 1[, 255]}, meta."""
        seed = sample_seed(run_seed, index)
        rng = np.random.default_rng(seed)
        s = self.size
        image = rng.integers(0, 90, size=(s, s, 3), dtype=np.uint8)
        yy, xx = np.mgrid[0:s, 0:s]
        mask = np.zeros((s, s), np.uint8)
        band = np.zeros((s, s), bool)
        n = int(rng.integers(0, self.max_discs + 1))
        for _ in range(n):
            cy, cx = rng.uniform(0.15 * s, 0.85 * s, size=2)
            r = rng.uniform(0.08 * s, 0.2 * s)
            d = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
            disc = d <= r
            mask[disc] = 1
            image[disc] = rng.integers(150, 256, size=3, dtype=np.uint8)
            if self.ignore_band:
                band |= np.abs(d - r) <= self.ignore_band
        if self.ignore_band:
            mask[band] = 255
        if self.delay_s:
            time.sleep(self.delay_s)
        return {"image": image, "mask": mask, "meta": {"seed": seed, "index": int(index), "run_seed": int(run_seed),
                                                       "discs": n}}
