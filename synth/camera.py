"""The camera chain applied after compositing: blur -> vignette -> sensor noise -> colour -> JPEG
(the order of a real capture pipeline: optics, sensor, ISP, codec). Effects come from
``SynthConfig.camera_effects`` (names in ``synth.effects.EFFECTS``)."""

from __future__ import annotations

import numpy as np

from .effects import Effect, build_effects
from . import functional as F

__all__ = ["CameraChain"]

_UINT8_STAGE = {"color", "jpeg"}


class CameraChain:
    """Apply effects in order; parameters drawn from ``rng``. Photometric only (mask unchanged).

    Input float32 (H, W, 3) in [0, 255] (the composite) or uint8; output uint8 RGB.
    """

    def __init__(self, cfg):
        self.effects: list[Effect] = build_effects(cfg)

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
        meta: dict = {}
        for eff in self.effects:
            params = eff.sample(rng, image.shape)
            meta[eff.name] = params
            if params is not None:
                if eff.name in _UINT8_STAGE and image.dtype != np.uint8:
                    image = F.to_uint8(image)  # colour LUT / codec run on 8-bit like an ISP
                image = eff.apply(image, **params)
        return F.to_uint8(image), meta
