"""Procedural key renderer: 2.5D height-map keys shaded as metal, as RGBA cut-outs.

``ProceduralKeys(kinds, materials).sample_layers(rng, length_px=..., angle_deg=..., light_dir=...)``
returns ``(rgba, key_alpha, meta)``: the visible object (metal + plastic head) with straight
alpha, the metal-only coverage (the segmentation label: plastic heads are not key), and a
JSON-serialisable meta with every sampled parameter and ``hole_xy`` (bow hole centre in the
returned image's pixel coordinates, or None). ``sample_asset`` does the same from the asset bank
(``synth.keys.bank``): cached geometry, re-lit and re-coloured, returned in canonical orientation
with the affine that rotates and scales it.
"""

from __future__ import annotations

import bisect
import math

import numpy as np

from backgrounds.cache import LRUCache

from ..meta import CleanDict, fresh_copy, jsonable
from ..seeding import pick
from .bank import asset_rng, cached_asset, canonical_affine, draw_asset
from .kinds import KEY_BUILDERS
from .materials import MATERIALS, check_names, sample_material, sample_plastic
from .render import PreparedEnv, build_relief, render_shape, shade_relief, surface_detail

__all__ = ["ProceduralKeys", "KEY_KINDS", "MATERIALS", "KIND_MATERIAL_WEIGHTS"]

KEY_KINDS = dict(KEY_BUILDERS)

#: Material family weights per key kind (what real keys of that kind are usually made of).
KIND_MATERIAL_WEIGHTS = {
    "house": {"brass": 0.35, "nickel": 0.35, "steel": 0.15, "coated": 0.1, "iron": 0.05},
    "padlock": {"brass": 0.45, "nickel": 0.25, "steel": 0.2, "coated": 0.05, "iron": 0.05},
    "dimple": {"brass": 0.1, "nickel": 0.55, "steel": 0.3, "coated": 0.05, "iron": 0.0},
    "tubular": {"brass": 0.2, "nickel": 0.5, "steel": 0.3, "coated": 0.0, "iron": 0.0},
    "car": {"brass": 0.1, "nickel": 0.4, "steel": 0.5, "coated": 0.0, "iron": 0.0},
    "warded": {"brass": 0.3, "nickel": 0.0, "steel": 0.15, "coated": 0.0, "iron": 0.55},
}


def _check_sample_args(length_px, angle_deg) -> tuple[float, float]:
    L = float(length_px)
    if not math.isfinite(L) or L < 12 or L > 4096:
        raise ValueError(f"length_px must be in [12, 4096] px, got {length_px!r}")
    a = float(angle_deg)
    if not math.isfinite(a):
        raise ValueError(f"angle_deg must be finite, got {angle_deg!r}")
    return L, a


class ProceduralKeys:
    """Procedural key cut-out source (picklable, stateless apart from per-process texture banks).

    Args:
        kinds: subset of ``KEY_KINDS`` (``house``, ``padlock``, ``dimple``, ``tubular``, ``car``,
            ``warded``); None = all, drawn uniformly.
        materials: subset of ``MATERIALS`` (``brass``, ``nickel``, ``steel``, ``coated``, ``iron``);
            None = all, drawn with the per-kind weights ``KIND_MATERIAL_WEIGHTS``.

    Raises:
        ValueError: unknown kind/material name (the message lists the valid names).
    """

    def __init__(self, kinds: tuple[str, ...] | None = None, materials: tuple[str, ...] | None = None) -> None:
        self.kinds = check_names(kinds, KEY_KINDS, "key kind")
        self.materials = check_names(materials, MATERIALS, "material")
        self._cdf: dict[str, list[float]] = {}  # material-family CDF per key kind

    def __repr__(self) -> str:
        return f"ProceduralKeys(kinds={self.kinds!r}, materials={self.materials!r})"

    def _material_name(self, rng: np.random.Generator, kind: str) -> str:
        cdf = self._cdf.get(kind)
        if cdf is None:
            w = np.array([KIND_MATERIAL_WEIGHTS[kind].get(m, 0.0) for m in self.materials], np.float64)
            if w.sum() <= 0:
                w = np.ones(len(self.materials))
            cdf = np.cumsum(w / w.sum())
            cdf /= cdf[-1]
            cdf = self._cdf[kind] = cdf.tolist()
        # == rng.choice(len, p=w / w.sum()) (inverse-CDF on one rng.random(), same stream), without its
        # ~20 us validation overhead; the CDF per kind is computed once
        return self.materials[bisect.bisect_right(cdf, rng.random())]

    def sample_layers(self, rng: np.random.Generator, *, length_px: float, angle_deg: float, light_dir,
                      env: np.ndarray | PreparedEnv | None = None, shading: bool = True,
                      max_upscale: float | None = None
                      ) -> tuple[np.ndarray, np.ndarray, dict]:
        """Render one key.

        Args:
            rng: ``np.random.Generator``, the only randomness source.
            length_px: long-axis length of the key before rotation, px (12..4096).
            angle_deg: counter-clockwise rotation on screen, degrees.
            light_dir: (3,) light direction, image coordinates (x right, y down, z toward camera).
            env: optional uint8 (h, w, 3) RGB reflection environment (sphere map; e.g. a 64x64
                blurred background), or one prepared once per scene
                (``synth.keys.render.PreparedEnv``); None = a synthetic room lit from ``light_dir``.
            shading: False -> flat material colours (ablation); geometry identical.
            max_upscale: accepted and ignored (the cut-out sources' enlargement cap; a procedural
                key is drawn sharp at any length).

        Returns:
            rgba: uint8 (H, W, 4), straight alpha, tight crop + 2 px margin, key + plastic head.
            key_alpha: uint8 (H, W), 0..255 coverage of metal only (the label), ``<= rgba[..., 3]``.
            meta: JSON-serialisable dict: ``kind``, ``material`` (sampled appearance), ``params``
                (every shape parameter), ``plastic`` (head colour or None), ``hole_xy`` [x, y] or None,
                ``shading`` (side wall, bevel).
        """
        L, a = _check_sample_args(length_px, angle_deg)
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        kind = str(pick(rng, self.kinds))
        shape, params, points, has_plastic = KEY_KINDS[kind](rng, L)
        mat_name = self._material_name(rng, kind)
        metal = sample_material(rng, mat_name)
        plastic = sample_plastic(rng, dark_p=0.75 if kind == "car" else 0.45) if has_plastic else None
        rgba, key_alpha, info = render_shape(rng, shape, length_px=L, angle_deg=a, light_dir=light_dir, env=env,
                                             shading=bool(shading), metal=metal, plastic=plastic,
                                             points=points, side_max=0.5 * params.get("hole_r", 1e9))
        meta = {"kind": kind, "material": jsonable(metal), "params": jsonable(params),
                "plastic": jsonable(plastic), "length_px": round(L, 3), "angle_deg": round(a, 3),
                "hole_xy": info["points"].get("hole"), "shading": bool(shading),
                "render": jsonable({k: v for k, v in info.items() if k != "points"})}
        return rgba, key_alpha, meta

    def sample_asset(self, rng: np.random.Generator, *, length_px: float, angle_deg: float, light_dir,
                     env: np.ndarray | PreparedEnv | None = None, shading: bool = True, bank_seed: int = 0,
                     bank_size: int = 256,
                     cache: LRUCache | None = None) -> tuple[np.ndarray, np.ndarray, dict, np.ndarray, tuple[int, int]]:
        """Render one key from the asset bank: geometry cached, appearance sampled here.

        The asset id is drawn from ``rng`` in ``[0, bank_size)``; its kind, shape parameters, side
        wall, bend and surface marks (brushing, tarnish pattern, scratches) come from
        ``asset_rng(bank_seed, "key", id, bucket)`` at the size bucket ``Lb >= length_px``
        (``size_bucket``), so equal ids give equal objects. Material (colour, shininess, how
        strongly the marks show), plastic colour, environment placement and brightness are drawn
        from ``rng``; normals are rotated by ``angle_deg`` so that the light agrees with the
        on-screen orientation. ``cache`` (the renderer's ``asset_cache``) keeps the geometry of the
        two most recent bank generations; None builds it afresh (same pixels).

        Returns:
            rgba: uint8 (h, w, 4) straight alpha, CANONICAL orientation (long axis along +x), at Lb.
            key_alpha: uint8 (h, w) metal-only coverage.
            meta: as :meth:`sample_layers` plus ``asset`` (``bank_seed``, ``id``, ``bucket_px``);
                ``hole_xy`` in the canonical cut-out's pixels.
            affine: float64 (2, 3) mapping cut-out pixels to the rotated, scaled (``length_px / Lb``)
                key, i.e. what :meth:`sample_layers` would have returned (up to its margin).
            out_hw: (h, w) of the box ``affine`` maps into.

        Raises:
            ValueError: ``length_px`` outside [12, 4096], non-finite angle, ``bank_size < 1``, bad light.
            TypeError: ``rng`` is not a ``numpy.random.Generator``.
        """
        L, a = _check_sample_args(length_px, angle_deg)
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        shading = bool(shading)
        aid, k, Lb = draw_asset(rng, bank_size, L, 12.0)

        def build():
            g = asset_rng(bank_seed, "key", aid, k)
            kind = str(pick(g, self.kinds))
            shape, params, points, has_plastic = KEY_KINDS[kind](g, Lb)
            relief = build_relief(g, shape, length_px=Lb, angle_deg=0.0, has_metal=True, has_plastic=has_plastic,
                                  normals=shading, points=points, side_max=0.5 * params.get("hole_r", 1e9))
            return relief.compact(), surface_detail(g, relief, length_px=Lb), kind, jsonable(params)

        relief, detail, kind, params = cached_asset(cache, (int(bank_seed), "key", self.kinds, shading, aid, k), build)
        mat_name = self._material_name(rng, kind)
        metal = sample_material(rng, mat_name)
        plastic = sample_plastic(rng, dark_p=0.75 if kind == "car" else 0.45) if relief.has_plastic else None
        rgba, key_alpha, info = shade_relief(rng, relief, length_px=Lb, light_dir=light_dir, env=env, shading=shading,
                                             metal=metal, plastic=plastic, normal_rotation_deg=a, detail=detail)
        affine, out_hw = canonical_affine(rgba.shape[:2], a, L / Lb)
        meta = {"kind": kind, "material": jsonable(metal), "params": fresh_copy(params), "plastic": jsonable(plastic),
                "length_px": round(L, 3), "angle_deg": round(a, 3), "hole_xy": info["points"].get("hole"),
                "shading": shading, "render": CleanDict(side_px=info["side_px"], bevel_px=info["bevel_px"]),
                "asset": CleanDict(bank_seed=int(bank_seed), id=aid, bucket_px=round(Lb, 3))}
        return rgba, key_alpha, meta, affine, out_hw

    def sample(self, rng: np.random.Generator, *, length_px: float, angle_deg: float, light_dir,
               env: np.ndarray | PreparedEnv | None = None, shading: bool = True) -> tuple[np.ndarray, dict]:
        """Same as :meth:`sample_layers` without the metal-only alpha: ``(rgba, meta)``."""
        rgba, _, meta = self.sample_layers(rng, length_px=length_px, angle_deg=angle_deg, light_dir=light_dir,
                                           env=env, shading=shading)
        return rgba, meta
