"""The camera chain applied after compositing: blur -> vignette -> sensor noise -> colour -> JPEG
(the order of a real capture pipeline: optics, sensor, ISP, codec). Effects come from
``SynthConfig.camera_effects`` (names in ``synth.effects.EFFECTS``); ``SynthConfig.camera_backend``
= "imgaug" swaps sensor_noise + color + jpeg for one ``imgaug_camera`` effect.

Speed: every effect with a ``gain`` method (vignette, lighting gradient) is NOT applied as its own
full-frame pass: its low-resolution gain map is multiplied into the scene's illumination gain and
the product is applied once, fused with the float32 -> uint8 conversion of the composite
(``functional.apply_gain``). Smooth gains commute with the blurs up to < 1 DN, and they act before
the sensor in a real camera, so the noise sees the attenuated signal as it should. Everything after
that runs on uint8 (fixed-point OpenCV paths).
"""

from __future__ import annotations

import numpy as np

from .effects import Effect, build_effects
from . import functional as F

__all__ = ["CameraChain"]


class CameraChain:
    """Apply effects in order; parameters drawn from ``rng``. Photometric only (mask unchanged).

    Input float32 (H, W, 3) in [0, 255] (the composite) or uint8; output uint8 RGB and a meta dict
    {effect name: sampled params or None (skipped)}.
    """

    def __init__(self, cfg):
        self.effects: list[Effect] = build_effects(cfg)

    def sample(self, rng: np.random.Generator, shape: tuple) -> dict:
        """Every effect's parameters for an image of ``shape`` (H, W, 3), drawn from ``rng`` in chain
        order: {effect name: params, or None for an effect skipped this time}. No pixel is read."""
        return {eff.name: eff.sample(rng, shape) for eff in self.effects}

    def apply(self, image: np.ndarray, params: dict, gain: np.ndarray | None = None) -> np.ndarray:
        """Apply the effects with ``params`` (from :meth:`sample`). ``image`` float32/uint8 (H, W, 3);
        ``gain`` optional float32 (g, g) scene illumination gain (``functional.gradient_gain`` x
        exposure) folded into the single gain pass. Returns uint8 (H, W, 3)."""
        todo = []
        for eff in self.effects:
            p = params[eff.name]
            if p is None:
                continue
            g = getattr(eff, "gain", None)
            if g is not None:
                eg = g(image.shape, **p)
                gain = eg if gain is None else gain * eg
            else:
                todo.append((eff, p))
        image = F.apply_gain(image, gain, out_uint8=True)
        for eff, p in todo:
            image = eff.apply(image, **p)
        return image

    def __call__(self, image: np.ndarray, rng: np.random.Generator, gain: np.ndarray | None = None
                 ) -> tuple[np.ndarray, dict]:
        """:meth:`sample` then :meth:`apply`: (uint8 (H, W, 3), the parameters as meta)."""
        params = self.sample(rng, image.shape)
        return self.apply(image, params, gain), params
