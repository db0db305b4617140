"""Shape -> shaded RGBA cut-out + metal-only alpha (shared by keys and distractors).

Two stages, so that the geometry can be cached and re-lit (``synth.keys.bank``):

1. :func:`build_relief` (geometry, no light, no material colours): rasterise the rotated shape
   (anti-aliased polygons), coverage maps (metal, plastic, holes), an optional side wall (the
   plate's thickness seen slightly obliquely: the coverage shifted a few px, composited underneath),
   the height map -> unit normals and cavity depth, texture coordinates, the tight crop.
2. :func:`shade_relief` (appearance): Blinn-Phong + environment reflection with the scene's light,
   brushed streaks / tarnish / scratches / cavity darkening on metal, the side wall darkened, then
   straight-alpha RGBA uint8. It draws the per-object parameters and runs the per-pixel model in
   one compiled pass (:func:`synth.keys.kernels.shade_pixels`; the NumPy reference of the model is
   :func:`synth.keys.shading.shade_surface`).

:func:`render_shape` runs both on one rng (every object fresh). A cached relief is re-lit under
another on-screen rotation by rotating its normals (``normal_rotation``): the caller then warps the
canonical cut-out by the same rotation.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import cv2
import numpy as np

from ..seeding import normal, pick, uniform
from .geometry import Raster, Shape, rasterize
from .kernels import Q_CAVITY, Q_TEXTURE, Q_UNIT, dequantize, pack_params, quantize, shade_pixels
from .shading import (blotch_bank, canonical_coords, default_env, env_image, light_xyz, lookup_texture,
                      relief_normals, streak_bank)

__all__ = ["PreparedEnv", "Relief", "SurfaceDetail", "build_relief", "surface_detail", "shade_relief", "render_shape"]


def _scratches(rng: np.random.Generator, size: tuple[int, int], n: int, length: float, axis_deg: float) -> np.ndarray:
    img = np.zeros(size, np.uint8)
    h, w = size
    for _ in range(n):
        x, y = uniform(rng, 0, w), uniform(rng, 0, h)
        a = math.radians(axis_deg + (normal(rng, 0, 8) if rng.random() < 0.6 else uniform(rng, 0, 180)))
        ln = length * uniform(rng, 0.05, 0.35)
        p0 = (int(x * 16), int(y * 16))
        p1 = (int((x + ln * math.cos(a)) * 16), int((y - ln * math.sin(a)) * 16))
        cv2.line(img, p0, p1, int(rng.integers(60, 256)), 1, cv2.LINE_AA, 4)
    return img


def _planar96(e: np.ndarray, dtype=None) -> np.ndarray:
    """(h, w, 3) sphere map (float32, or uint8) -> planar (3, 96, 96) (what ``shade_surface`` looks
    up), resized bilinearly in the input's dtype and converted to ``dtype`` (None: kept) in the same
    transposing copy."""
    return np.ascontiguousarray(cv2.resize(e, (96, 96), interpolation=cv2.INTER_LINEAR).transpose(2, 0, 1), dtype=dtype)


@dataclass(frozen=True, eq=False)
class PreparedEnv:
    """A reflection environment prepared once for every object of a scene: ``planar`` float32
    (3, 96, 96) in [0, 1], read-only, the sphere map the shading kernel looks up. Accepted as
    ``env`` wherever an env image is (the renderer passes one per scene, so its objects share one
    conversion)."""

    planar: np.ndarray

    @classmethod
    def from_image(cls, env) -> "PreparedEnv":
        """From a uint8 (h, w, 3) RGB env image (validated by ``env_image``; ValueError otherwise)."""
        return cls(_env_planar(env))


def _env_planar(env) -> np.ndarray:
    """The planar 96 px float32 version of ``env`` (a :class:`PreparedEnv`, or an image validated
    by ``env_image``), in [0, 1], read-only. The map is resized as uint8 (fixed point), then
    converted in one transposing copy: ~3x cheaper than converting to float32 first (values within
    0.5 / 255)."""
    if isinstance(env, PreparedEnv):
        return env.planar
    e = _planar96(env_image(env), np.float32)
    e *= np.float32(1.0 / 255.0)
    e.flags.writeable = False
    return e


@dataclass(frozen=True)
class Relief:
    """Geometry of one rendered shape, before light and material colours (read-only arrays).

    Pixel sets are flat indices ``idx`` (int32 (N,)) into the ``(h, w)`` working canvas; every
    per-pixel array is (N,) float32 in that order (int16 fixed point after :meth:`compact`: the
    shading kernel's input format, ``synth.keys.kernels.quantize``). ``crop`` = (y0, y1, x0, x1) of
    the returned cut-out in the canvas; ``alpha`` / ``key_alpha`` uint8 (y1-y0, x1-x0) are the cut-out's alpha
    and metal-only label coverage; ``out_idx`` int32 (N,) are the ``idx`` pixels as flat indices
    into the cut-out; ``points`` are named points in cut-out pixels.
    """

    size: tuple[int, int]
    idx: np.ndarray
    normals: tuple[np.ndarray, np.ndarray, np.ndarray] | None  # unit (nx, ny, nz), image frame
    cavity: np.ndarray | None  # groove / dimple depth, height units
    tex_xy: tuple[np.ndarray, np.ndarray] | None  # canonical (x, y) of metal pixels for textures
    plastic_w: np.ndarray | None  # plastic coverage 0..1
    top_ratio: np.ndarray | None  # top face / total coverage (side wall darkening), None = no wall
    crop: tuple[int, int, int, int]
    out_idx: np.ndarray  # int32 (N,): the same pixels as flat indices into the cut-out (crop)
    alpha: np.ndarray
    key_alpha: np.ndarray
    points: dict
    has_metal: bool
    has_plastic: bool
    side_px: int
    bevel_px: float

    @property
    def nbytes(self) -> int:
        arrs = [self.idx, self.out_idx, self.cavity, self.plastic_w, self.top_ratio, self.alpha, self.key_alpha,
                *(self.normals or ()), *(self.tex_xy or ())]
        return int(sum(a.nbytes for a in arrs if a is not None)) + 512

    def compact(self) -> "Relief":
        """A copy for caching: per-pixel float arrays as int16 fixed point (half the bytes of
        float32; normals, weights and ratios to 1.5e-5, cavity depths to 1e-3 px) and no texture
        coordinates (a cached asset keeps its :class:`SurfaceDetail` instead)."""
        n = None if self.normals is None else tuple(_fixed(a, Q_UNIT) for a in self.normals)
        return dataclasses.replace(self, normals=n, cavity=_fixed(self.cavity, Q_CAVITY),
                                   plastic_w=_fixed(self.plastic_w, Q_UNIT), top_ratio=_fixed(self.top_ratio, Q_UNIT),
                                   tex_xy=None)


def _frozen(a):
    if a is not None:
        a.flags.writeable = False
    return a


def _fixed(a, scale):
    """A read-only int16 fixed-point copy of ``a`` (None stays None): how cached per-pixel arrays are kept."""
    return None if a is None else quantize(a, scale)


def _material_coverage(maps: dict, hw: tuple[int, int], has_metal: bool, metal_on_top: bool):
    """Coverage algebra on uint8 (saturating) of a raster's maps: ``(layers, key8, top8, p8)``:
    the relief layers (cut-away removed), key = metal not under plastic, top = key + plastic, and
    the plastic coverage (``None`` without plastic). Without metal every drawn part is plastic."""
    cut = maps.get("cut")
    layers = {k: (cv2.subtract(v, cut) if cut is not None else v) for k, v in maps.items()
              if k in ("metal", "cyl", "plastic")}
    for k in ("groove", "raise", "dimple"):
        if k in maps:
            layers[k] = maps[k]
    m8 = None
    for k in ("metal", "cyl"):
        if k in layers:
            m8 = layers[k] if m8 is None else cv2.max(m8, layers[k])
    p8 = layers.get("plastic")
    if not has_metal:  # whole object is non-key material
        p8 = m8 if p8 is None else (p8 if m8 is None else cv2.max(p8, m8))
        m8 = None
    if m8 is None:
        m8 = np.zeros(hw, np.uint8)
    if p8 is not None and metal_on_top:
        p8 = cv2.subtract(p8, m8)
    key8 = cv2.subtract(m8, p8) if p8 is not None else m8
    top8 = cv2.add(key8, p8) if p8 is not None else key8
    return layers, key8, top8, p8


def _side_wall(top8: np.ndarray, key8: np.ndarray, side_px: int, sdx: float, sdy: float):
    """Coverage with the side wall: the object shifted along (sdx, sdy) by 1..side_px px,
    composited underneath (the max over shifts == dilation with a line kernel anchored at its far
    end). Returns ``(alpha8, key8)``."""
    kx, ky = int(round(sdx * side_px)), int(round(sdy * side_px))
    ker = np.zeros((2 * side_px + 1, 2 * side_px + 1), np.uint8)
    cv2.line(ker, (side_px, side_px), (side_px - kx, side_px - ky), 1, 1)
    ker[side_px, side_px] = 0 if (kx or ky) else 1
    sa = cv2.dilate(top8, ker, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    sk = cv2.dilate(key8, ker, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return cv2.max(top8, sa), cv2.max(key8, cv2.subtract(sk, top8))


def build_relief(rng: np.random.Generator, shape: Shape, *, length_px: float, angle_deg: float = 0.0,
                 has_metal: bool = True, has_plastic: bool = False, normals: bool = True, side_p: float = 0.6,
                 side_max: float | None = None, points: dict | None = None, metal_on_top: bool = False,
                 bend_sigma: tuple[float, float, float, float] = (0.08, 0.08, 0.25, 0.25)) -> Relief:
    """Rasterise ``shape`` and compute its 2.5D relief (geometry only).

    Args:
        rng: draws the side wall (probability ``side_p``, 0.6-2% of the length, capped at
            ``side_max`` px) and the gentle bend of the plate.
        shape: canonical-frame drawing program (long axis along +x).
        length_px: object length in px (scales bevels, side walls).
        angle_deg: counter-clockwise rotation on screen, degrees (0 for a cacheable canonical relief).
        has_metal / has_plastic: which materials exist; metal is what ``key_alpha`` covers; without
            metal every drawn part is plastic (non-key material).
        normals: compute normals / cavity / texture coordinates (False: flat shading only).
        points: named canonical points (e.g. ``{"hole": (x, y)}``) to map to cut-out pixels.
        metal_on_top: metal covers plastic where both are drawn (zipper teeth on tape, fob eyelet);
            default False: plastic covers metal (rubber key heads).
        bend_sigma: std of the plate's (tilt_x, tilt_y, curve_x, curve_y) (``relief_normals``);
            a real key is never perfectly flat.

    Raises:
        ValueError: neither metal nor plastic, or nothing visible (``length_px`` too small).
    """
    if not (has_metal or has_plastic):
        raise ValueError("render_shape needs a metal or a plastic material")
    L = float(length_px)
    bevel = float(min(max(L * 0.0055, 0.7), 3.0))
    side_px = int(round(uniform(rng, 0.006, 0.02) * L)) if rng.random() < side_p else 0
    if side_max is not None:
        side_px = max(0, min(side_px, int(side_max)))
    side_a = uniform(rng, 0, 2 * math.pi)
    bend = tuple(float(v) for v in rng.normal(0, bend_sigma))
    sdx, sdy = math.cos(side_a), math.sin(side_a)
    margin = int(math.ceil(bevel * 4)) + side_px + 2
    ras: Raster = rasterize(shape, angle_deg, margin)
    hgt, wid = ras.size
    layers, key8, top8, p8 = _material_coverage(ras.maps, (hgt, wid), has_metal, metal_on_top)
    a8, k8 = _side_wall(top8, key8, side_px, sdx, sdy) if side_px > 0 else (top8, key8)
    idx = np.flatnonzero(a8).astype(np.int32)
    if idx.size == 0:
        raise ValueError("rendered object is empty (length_px too small?)")
    f = np.float32(1.0 / 255.0)
    pw = p8.reshape(-1).take(idx).astype(np.float32) * f if p8 is not None and has_plastic else None
    n = cavity = tex = None
    if normals:
        *n, cavity = relief_normals(layers, idx, bevel, bevel * 2.4, bend)
        n = tuple(n)
        if has_metal:
            ys, xs = np.divmod(idx, wid)
            tex = canonical_coords(ras.matrix, xs.astype(np.float32), ys.astype(np.float32))
    ratio = None
    if side_px > 0:
        ratio = top8.reshape(-1).take(idx).astype(np.float32) / np.maximum(a8.reshape(-1).take(idx), 1)
    rows, cols = np.flatnonzero(a8.any(1)), np.flatnonzero(a8.any(0))
    y0, y1 = max(rows[0] - 2, 0), min(rows[-1] + 3, hgt)
    x0, x1 = max(cols[0] - 2, 0), min(cols[-1] + 3, wid)
    alpha = np.ascontiguousarray(a8[y0:y1, x0:x1])
    ys, xs = np.divmod(idx, wid)
    out_idx = ((ys - y0) * (x1 - x0) + (xs - x0)).astype(np.int32)
    key_alpha = np.minimum(k8[y0:y1, x0:x1], alpha)
    pts = {}
    for name, p in (points or {}).items():
        q = ras.to_out(p)[0]
        pts[name] = [round(float(q[0] - x0), 2), round(float(q[1] - y0), 2)]
    for a in (idx, out_idx, cavity, pw, ratio, alpha, key_alpha, *(n or ()), *(tex or ())):
        _frozen(a)
    return Relief(size=(hgt, wid), idx=idx, normals=n, cavity=cavity, tex_xy=tex, plastic_w=pw, top_ratio=ratio,
                  crop=(int(y0), int(y1), int(x0), int(x1)), out_idx=out_idx, alpha=alpha, key_alpha=key_alpha, points=pts,
                  has_metal=bool(has_metal), has_plastic=pw is not None, side_px=side_px, bevel_px=round(bevel, 3))


@dataclass(frozen=True)
class SurfaceDetail:
    """Per-pixel surface marks of one object (in ``Relief.idx`` order, read-only int16 fixed point
    (N,), ``Q_TEXTURE`` / ``Q_UNIT`` codes):
    ``streak`` brushed-metal texture and ``blotch`` tarnish texture (zero-mean, unit std; scaled by
    the material's ``streak`` / ``wear``), ``scratches`` 0..1 coverage drawn at
    ``SCRATCH_DENSITY`` lines per 100 px (scaled by the material's ``scratches`` / density), or
    None. Cached with an asset: brushing, tarnish and scratches belong to the object, not to the
    light."""

    streak: np.ndarray
    blotch: np.ndarray
    scratches: np.ndarray | None

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.streak, self.blotch, self.scratches) if a is not None)


SCRATCH_DENSITY = 3.0


def _metal_textures(rng: np.random.Generator, tex_xy: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Brushed-streak and tarnish-blotch texture values at canonical coordinates ``tex_xy``
    (random bank texture, scale and offset of each), float32 (N,) each."""
    cx, cy = tex_xy
    sb, bb = streak_bank(), blotch_bank()
    st = lookup_texture(pick(rng, sb), cx, cy, uniform(rng, 0.7, 1.6), tuple(rng.uniform(0, 512, 2)))
    bl = lookup_texture(pick(rng, bb), cx, cy, uniform(rng, 0.8, 2.5), tuple(rng.uniform(0, 128, 2)))
    return st, bl


def surface_detail(rng: np.random.Generator, relief: Relief, *, length_px: float,
                   scratch_axis_deg: float = 0.0) -> SurfaceDetail | None:
    """Draw an object's brushed streaks, tarnish blotches and scratches (see :class:`SurfaceDetail`;
    stored as int16 fixed point: it is cached); None for a relief without metal or normals."""
    if not relief.has_metal or relief.tex_xy is None:
        return None
    st, bl = _metal_textures(rng, relief.tex_xy)
    ns = int(round(SCRATCH_DENSITY * float(length_px) / 100.0))
    scr = None
    if ns:
        scr = _scratches(rng, relief.size, ns, float(length_px), scratch_axis_deg).reshape(-1)[relief.idx]
        scr = scr.astype(np.float32) * np.float32(1.0 / 255.0)
    return SurfaceDetail(_fixed(st, Q_TEXTURE), _fixed(bl, Q_TEXTURE), _fixed(scr, Q_UNIT))


def _flat_colours(relief: Relief, metal: dict | None, plastic: dict | None, rgba: np.ndarray) -> None:
    """Flat material colours (the shading ablation) into ``rgba``'s colour channels."""
    idx = relief.idx
    hgt, wid = relief.size
    y0, y1, x0, x1 = relief.crop
    base_m = np.asarray(metal["albedo"] if metal and relief.has_metal else (0.5, 0.5, 0.5), np.float32)
    base_p = np.asarray(plastic["albedo"] if plastic else (0.1, 0.1, 0.1), np.float32)
    col = np.empty((3, idx.size), np.float32)
    col[:] = (base_m if relief.has_metal else base_p)[:, None]
    if relief.plastic_w is not None and relief.has_metal:
        col[:, dequantize(relief.plastic_w, Q_UNIT) > 0.5] = base_p[:, None]
    # planar colour scattered into the box (contiguous per-channel writes), then cropped + interleaved
    planes = np.zeros((3, hgt * wid), np.uint8)
    planes[:, idx] = np.minimum(np.maximum(col * 255.0 + 0.5, 0), 255).astype(np.uint8)
    planes = planes.reshape(3, hgt, wid)[:, y0:y1, x0:x1]
    for ch in range(3):
        rgba[..., ch] = planes[ch]


def _metal_params(rng: np.random.Generator, relief: Relief, metal: dict, L: float, scratch_axis_deg: float,
                  detail: SurfaceDetail | None):
    """The metal's surface marks (streaks, blotches, scratches: cached in ``detail`` or drawn here)
    and its kernel parameters -> ``(streak, blotch, scratches, params)``."""
    scr, scratch_amount = None, 0.0
    if detail is not None:
        st, bl = detail.streak, detail.blotch
        if detail.scratches is not None and metal.get("scratches", 0) > 0:
            scr = detail.scratches
            scratch_amount = 0.3 * min(1.0, metal["scratches"] / SCRATCH_DENSITY)
    else:
        st, bl = _metal_textures(rng, relief.tex_xy)
        ns = int(round(metal.get("scratches", 0) * L / 100.0))
        if ns:
            scr = _scratches(rng, relief.size, ns, L, scratch_axis_deg).reshape(-1)[relief.idx]
            scr = scr.astype(np.float32) * np.float32(1.0 / 255.0)
            scratch_amount = 0.3
    # the albedo as the kernel sees it: float32-rounded (as the NumPy reference shades it)
    params = (*np.asarray(metal["albedo"], np.float32).tolist(), metal["streak"], metal["wear"], *metal["rust"],
              metal["diffuse"], metal["specular"], metal["shininess"], metal["env"], scratch_amount,
              -0.18 / relief.bevel_px)
    return st, bl, scr, params


def shade_relief(rng: np.random.Generator, relief: Relief, *, length_px: float, light_dir,
                 env: np.ndarray | PreparedEnv | None, shading: bool, metal: dict | None, plastic: dict | None,
                 scratch_axis_deg: float = 0.0,
                 normal_rotation_deg: float = 0.0, detail: SurfaceDetail | None = None
                 ) -> tuple[np.ndarray, np.ndarray, dict]:
    """Light and colour a relief -> (rgba uint8 (h, w, 4) straight alpha, key_alpha uint8 (h, w), info).

    Args:
        rng: draws every appearance detail (texture placement, scratches, room, brightness).
        relief: from :func:`build_relief` (not modified).
        length_px: object length in px (scales scratches).
        light_dir: (3,) light direction, image coordinates (x right, y down, z toward camera).
        env: optional uint8 (h, w, 3) RGB reflection environment (sphere map) or a
            :class:`PreparedEnv`; None = synthetic room.
        shading: False -> flat material colours (ablation).
        metal / plastic: material dicts (:mod:`synth.keys.materials`); required where the relief has
            that material.
        scratch_axis_deg: on-canvas direction of the brushing / scratches (the relief's rotation).
        normal_rotation_deg: the on-screen rotation the caller will apply to the cut-out (CCW,
            degrees); normals are rotated by it before lighting, so a canonical relief lit here
            and then warped matches one rasterised at that angle.
        detail: the object's cached surface marks (:func:`surface_detail`); None = draw them here
            (streak / blotch placement and ``metal["scratches"]`` lines per 100 px).

    Raises:
        ValueError: a material the relief needs is missing, or a bad ``light_dir`` / ``env``.
    """
    if relief.has_metal and metal is None:
        raise ValueError("this relief has metal: pass a metal material")
    if relief.has_plastic and plastic is None:
        raise ValueError("this relief has plastic: pass a plastic material")
    L = float(length_px)
    y0, y1, x0, x1 = relief.crop
    rgba = np.zeros((y1 - y0, x1 - x0, 4), np.uint8)
    if not shading or relief.normals is None:
        light_xyz(light_dir)  # validated like the shaded path
        _flat_colours(relief, metal, plastic, rgba)
    else:
        light = light_xyz(light_dir)
        if env is not None:
            e = _env_planar(env)
        else:
            e = _planar96(default_env(rng, np.array(light, np.float64)))
            e.flags.writeable = False  # like a prepared one: one kernel signature
        centre = (uniform(rng, 0.3, 0.7), uniform(rng, 0.3, 0.7))  # == rng.uniform(0.3, 0.7, 2)
        st = bl = scr = mvals = pvals = None
        if relief.has_metal:
            st, bl, scr, mvals = _metal_params(rng, relief, metal, L, scratch_axis_deg, detail)
        pw = relief.plastic_w
        if plastic is not None and (pw is not None or not relief.has_metal):
            pvals = (*np.asarray(plastic["albedo"], np.float32).tolist(), plastic["diffuse"], plastic["specular"],
                     plastic["shininess"], plastic["env"])
        if plastic is None or not relief.has_metal:
            pw = None  # one material everywhere (the weight only mixes metal with plastic)
        if normal_rotation_deg:  # == synth.keys.geometry.rotation_matrix, as plain floats
            ar = math.radians(normal_rotation_deg)
            c_, s_ = math.cos(ar), math.sin(ar)
            rot = (c_, s_, -s_, c_)
        else:
            rot = (1.0, 0.0, 0.0, 1.0)
        vec = pack_params(rot, light, centre, uniform(rng, 0.85, 1.15), mvals, pvals)
        q, u = quantize, Q_UNIT
        nx, ny, nz = relief.normals
        shade_pixels(relief.out_idx, q(nx, u), q(ny, u), q(nz, u), q(st, Q_TEXTURE), q(bl, Q_TEXTURE), q(scr, u),
                     q(relief.cavity if relief.has_metal else None, Q_CAVITY), q(relief.top_ratio, u), q(pw, u),
                     e, vec, rgba)
    rgba[..., 3] = relief.alpha
    info = {"side_px": relief.side_px, "bevel_px": relief.bevel_px, "points": {k: list(v) for k, v in relief.points.items()}}
    return rgba, np.array(relief.key_alpha), info


def render_shape(rng: np.random.Generator, shape: Shape, *, length_px: float, angle_deg: float, light_dir,
                 env: np.ndarray | PreparedEnv | None, shading: bool, metal: dict | None, plastic: dict | None,
                 side_p: float = 0.6, points: dict | None = None, metal_on_top: bool = False,
                 side_max: float | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Render a shape into (rgba uint8 (H, W, 4) straight alpha, key_alpha uint8 (H, W), info):
    :func:`build_relief` at ``angle_deg`` then :func:`shade_relief`, on one rng (every object fresh).

    Args:
        rng: the only randomness source.
        shape: canonical-frame drawing program (long axis along +x).
        length_px: object length in px (scales bevels, scratches).
        angle_deg: counter-clockwise rotation on screen, degrees.
        light_dir: (3,) light direction, image coordinates (x right, y down, z toward camera).
        env: optional uint8 (h, w, 3) RGB reflection environment (sphere map) or a
            :class:`PreparedEnv`; None = synthetic room.
        shading: False -> flat material colours (ablation).
        metal / plastic: material dicts (:mod:`synth.keys.materials`); metal is what ``key_alpha`` covers.
        side_p: probability of drawing a visible side wall.
        points: named canonical points (e.g. ``{"hole": (x, y)}``) to map to output pixels.
        side_max: cap on the side-wall offset in px (keeps small holes see-through).
        metal_on_top: see :func:`build_relief`.

    Returns:
        rgba, key_alpha (metal coverage not hidden by plastic; 0 when ``metal`` is None),
        info dict with ``points`` (output pixel coords, lists), ``side_px`` and ``bevel_px``.
    """
    if env is not None and not isinstance(env, PreparedEnv):  # validated even when shading is off
        env_image(env)
    relief = build_relief(rng, shape, length_px=length_px, angle_deg=angle_deg, has_metal=metal is not None,
                          has_plastic=plastic is not None, normals=bool(shading), side_p=side_p, side_max=side_max,
                          points=points, metal_on_top=metal_on_top)
    return shade_relief(rng, relief, length_px=length_px, light_dir=light_dir, env=env, shading=shading, metal=metal,
                        plastic=plastic, scratch_axis_deg=angle_deg)
