"""The sampled scene (:class:`Scene`): everything random about one sample, before compositing.

:func:`sample_light` draws the whole scene light first: the direction the keys, distractors and
shadows are shaded from, and the illumination gradient and exposure applied to the finished
composite. :func:`sample_shadow` draws one layer's cast and contact shadow. The :class:`Scene`
holds the background, the light, the layout, every placed layer with its shadow and the camera's
parameters, and writes the sample's meta (:meth:`Scene.to_meta`); ``SampleRenderer.render_scene``
composites it without a random draw.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .config import SynthConfig
from .keys.render import PreparedEnv
from .layout import Layout
from .seeding import uniform

__all__ = ["Lighting", "sample_light", "Shadow", "sample_shadow", "Scene"]


@dataclasses.dataclass(frozen=True)
class Lighting:
    """One scene light: ``azimuth_deg`` (0-360, image plane, x right, y down) and ``elevation_deg``
    (above the table plane), ``direction`` the unit vector (x, y, z) towards the light; the
    illumination over the frame: a linear gradient of ``gradient_amplitude`` (gain 1 +- a, along
    the light's image-plane direction) times the ``exposure`` gain."""

    azimuth_deg: float
    elevation_deg: float
    direction: tuple
    gradient_amplitude: float
    exposure: float


def sample_light(rng: np.random.Generator, c: SynthConfig) -> Lighting:
    """Azimuth uniform in [0, 360), elevation in ``light_elevation_range``, gradient amplitude in
    ``lighting_gradient_range``, exposure in ``ambient_range`` (all uniform, drawn in that order)."""
    az = uniform(rng, 0, 360)
    el = uniform(rng, *c.light_elevation_range)
    a, e = math.radians(az), math.radians(el)
    amp = uniform(rng, *c.lighting_gradient_range)
    exposure = uniform(rng, *c.ambient_range)
    return Lighting(az, el, (math.cos(e) * math.cos(a), math.cos(e) * math.sin(a), math.sin(e)), amp, exposure)


@dataclasses.dataclass(frozen=True)
class Shadow:
    """One layer's shadow on the surface below it: a cast shadow (the layer's alpha blurred by
    ``blur_px``, darkening by ``strength``, shifted by ``shift`` = (dx, dy) px, ``offset_px`` long,
    away from the light; ``tint`` an RGB factor for bluish skylight or None) and, for objects
    lying on the surface, a thin contact shadow (blur ``contact_blur_px``, ``contact_strength``;
    None and 0 for lifted objects)."""

    offset_px: float
    blur_px: float
    strength: float
    shift: tuple
    tint: tuple | None
    contact_strength: float = 0.0
    contact_blur_px: float | None = None

    def meta(self) -> dict:
        """The parameters a sample's meta records for a key's shadow (px and strengths)."""
        return {"offset_px": self.offset_px, "blur_px": self.blur_px, "strength": self.strength,
                "contact_strength": self.contact_strength}


def sample_shadow(rng: np.random.Generator, c: SynthConfig, light: tuple, length_px: float,
                  lift: float = 1.0) -> Shadow | None:
    """The shadow of a layer of size ``length_px`` (px) under the unit ``light`` vector, or None
    (``shadows`` off, or not drawn with ``shadow_prob``). The offset grows with the light's
    cotangent (capped at 3) and with ``lift`` (height above the surface; fingers and blobs 2);
    offset and blur are fractions (``shadow_offset_range``, ``shadow_blur_range``) of
    ``length_px``. Draw order: apply?, offset, blur, strength, tint, contact strength (lift <= 1)."""
    if not (c.shadows and rng.random() < c.shadow_prob):
        return None
    lx, ly, lz = light
    n = math.hypot(lx, ly) or 1.0
    cot = min(3.0, math.hypot(lx, ly) / max(lz, 0.2))
    off = uniform(rng, *c.shadow_offset_range) * length_px * cot * lift
    sig = uniform(rng, *c.shadow_blur_range) * length_px * lift + 0.6
    st = uniform(rng, *c.shadow_strength_range)
    tint = (1.0, 1.0, 0.92) if rng.random() < 0.5 else None
    contact_strength, contact_blur_px = 0.0, None
    if lift <= 1.0:  # lying on the surface
        contact_strength, contact_blur_px = uniform(rng, *c.contact_shadow_strength_range), 0.5 + 0.004 * length_px
    return Shadow(off, sig, st, (-lx / n * off, -ly / n * off), tint, contact_strength, contact_blur_px)


@dataclasses.dataclass
class Scene:
    """One sampled scene, and its meta (:meth:`to_meta`): seed, index, run seed and size; the
    asset-bank generation; the background (its meta, and its pixels: uint8 (S, S, 3)); the
    scene's :class:`Lighting` (``light``: its unit vector towards the light); the reflection env
    every object shares; the shaded or flat look; the layout and placed keys; the layers of distractors (under / over the
    keys, with their size), ring halves and top occluders (fingers, blobs) with their meta; the
    ``shadows`` of the layers that cast one, a :class:`Shadow` or None per layer of each group
    (``under``, ``keys``, ``over``, ``tops``); the camera chain's parameters."""

    seed: int
    index: int
    run_seed: int
    size: int
    bank_seed: int | None
    background_meta: dict
    background_image: np.ndarray
    lighting: Lighting
    env: PreparedEnv
    shading: bool = True
    layout: Layout | None = None
    keys: list = dataclasses.field(default_factory=list)
    under_d: list = dataclasses.field(default_factory=list)
    over_d: list = dataclasses.field(default_factory=list)
    rings_under: list = dataclasses.field(default_factory=list)
    rings_over: list = dataclasses.field(default_factory=list)
    tops: list = dataclasses.field(default_factory=list)
    neg_meta: list = dataclasses.field(default_factory=list)
    occ_meta: list = dataclasses.field(default_factory=list)
    shadows: dict = dataclasses.field(default_factory=lambda: {"under": [], "keys": [], "over": [], "tops": []})
    camera: dict = dataclasses.field(default_factory=dict)

    @property
    def light(self) -> tuple:
        """Unit vector (x, y, z) towards the scene light (``lighting.direction``)."""
        return self.lighting.direction

    def to_meta(self, visible: dict[int, int]) -> dict:
        """The sample's meta: every sampled parameter of the scene (``visible``: visible pixels per
        key id, from the canvas labels; a key without any gets instance id 0). Nested dicts are the
        scene's own (not copied: this runs once per sample); edit a copy."""
        keys, iid = [], 0
        for k, (key, shadow) in enumerate(zip(self.keys, self.shadows["keys"], strict=True), start=1):
            if k in visible:
                iid += 1
            keys.append({**key.meta, "instance_id": iid if k in visible else 0, "visible_px": visible.get(k, 0),
                         "shadow": None if shadow is None else shadow.meta()})
        li = self.lighting
        return {"seed": self.seed, "index": self.index, "run_seed": self.run_seed, "size": self.size,
                "background": self.background_meta, "shading": self.shading,
                "light": {"azimuth_deg": li.azimuth_deg, "elevation_deg": li.elevation_deg, "dir": list(li.direction)},
                "mode": self.layout.mode, "key_scale": self.layout.scale,
                "illumination": {"gradient_amplitude": li.gradient_amplitude, "exposure": li.exposure},
                "camera": self.camera, "keys": keys, "n_keys_visible": len(visible), "negatives": self.neg_meta,
                "occluders": self.occ_meta, "ring": self.layout.ring}
