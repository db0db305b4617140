"""Augmented crops of real annotated photos, mixed into the synthetic batches.

Cut, Paste and Learn (Dwibedi et al., ICCV 2017) found synthetic data plus a little real data
beats either alone. :class:`RealCrops` turns a handful of real photos into an endless supply of
training crops at the model's input size: a random scale (the key's long side 8-90 % of the
crop), a crop centred near a key (``positive_prob``) or anywhere, a rotation by a multiple of 90
degrees and a flip, and brightness / contrast / saturation jitter. The trainer replaces about
``real_fraction`` of each batch with these crops.

Every crop is a pure function of ``(seed, step, slot)``, so a resumed run sees the same crops.
"""

from __future__ import annotations

import math
from typing import Sequence

import cv2
import numpy as np

from keysynth.common import seed_rng

__all__ = ["RealCrops", "crops_per_batch"]


def crops_per_batch(batch_size: int, fraction: float, step: int) -> int:
    """How many of a batch's samples are real crops at ``step``: ``fraction * batch_size`` on
    average, the fractional part spread evenly over steps (error diffusion, no randomness)."""
    want = fraction * batch_size
    return int(math.floor(want * (step + 1)) - math.floor(want * step))


class RealCrops:
    """Endless augmented crops of real photos.

    Args:
        samples: real photos with ``image`` uint8 (H, W, 3) RGB and ``mask`` uint8 {0, 1, 255}.
        size: crop side, px (the training size).
        seed: run seed.
        positive_prob: share of crops centred on a key pixel (the rest anywhere in the photo).

    Raises:
        ValueError: no photos, or a photo smaller than 8 px.
    """

    def __init__(self, samples: Sequence, size: int, seed: int = 0, positive_prob: float = 0.7):
        if not samples:
            raise ValueError("real-train set holds no photos; pass a folder of annotated key photos")
        self.images = [np.asarray(s.image) for s in samples]
        self.masks = [np.asarray(s.mask) for s in samples]
        for s, im in zip(samples, self.images):
            if min(im.shape[:2]) < 8:
                raise ValueError(f"real-train photo {s.name} is {im.shape[1]}x{im.shape[0]} px; it needs >= 8 px a side")
        self.keys = [np.argwhere(m == 1) for m in self.masks]
        self.lengths = [max(float(np.ptp(k[:, 0])), float(np.ptp(k[:, 1]))) + 1 if len(k) else 0.0 for k in self.keys]
        self.size, self.seed, self.positive_prob = int(size), int(seed), float(positive_prob)

    def crop(self, step: int, slot: int) -> tuple[np.ndarray, np.ndarray]:
        """Crop ``slot`` of ``step``: ``(image uint8 (S, S, 3), mask uint8 (S, S) {0, 1, 255})``."""
        rng = seed_rng(self.seed, int(step), int(slot), 0x5EA1)
        i = int(rng.integers(len(self.images)))
        img, m, keys, L = self.images[i], self.masks[i], self.keys[i], self.lengths[i]
        S = self.size
        if len(keys) and L > 0:
            scale = S * math.exp(rng.uniform(math.log(0.08), math.log(0.9))) / L
        else:
            scale = S * rng.uniform(0.8, 3.0) / max(img.shape[:2])
        if len(keys) and rng.random() < self.positive_prob:
            cy, cx = keys[int(rng.integers(len(keys)))] + rng.normal(0, 0.15 * S / scale, 2)
        else:
            cy, cx = rng.uniform(0, img.shape[0]), rng.uniform(0, img.shape[1])
        a = np.float64(scale)
        M = np.array([[a, 0, S / 2 - a * cx], [0, a, S / 2 - a * cy]])
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        out = cv2.warpAffine(img, M, (S, S), flags=interp, borderMode=cv2.BORDER_REFLECT_101)
        # mask: nearest neighbour; pixels from outside the photo are ignored (255)
        lab = cv2.warpAffine(m, M, (S, S), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=255)
        k = int(rng.integers(4))
        out, lab = np.rot90(out, k), np.rot90(lab, k)
        if rng.random() < 0.5:
            out, lab = out[:, ::-1], lab[:, ::-1]
        out = out.astype(np.float32)
        grey = out.mean(2, keepdims=True)
        out = grey + (out - grey) * rng.uniform(0.6, 1.3)  # saturation
        out = (out - out.mean()) * rng.uniform(0.75, 1.25) + out.mean() + rng.uniform(-25, 25)  # contrast, brightness
        return np.clip(out + 0.5, 0, 255).astype(np.uint8), np.ascontiguousarray(lab)
