"""Shape -> shaded RGBA cut-out + metal-only alpha (shared by keys and distractors).

Pipeline (all on the object's own tight canvas): rasterise the rotated shape (anti-aliased
polygons), coverage maps (metal, plastic, holes), height map -> normals -> Blinn-Phong + env
reflection, brushed streaks / tarnish / scratches / cavity darkening on metal, an optional side wall
(the plate's thickness seen slightly obliquely: the coverage shifted a few px, darkened, composited
underneath), then straight-alpha RGBA uint8 cropped to the visible pixels.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .geometry import Raster, Shape, rasterize
from .shading import (blotch_bank, canonical_coords, check_env, check_light, default_env, lookup_texture,
                      relief_normals, shade_surface, streak_bank)

__all__ = ["render_shape"]


def _scratches(rng: np.random.Generator, size: tuple[int, int], n: int, length: float, axis_deg: float) -> np.ndarray:
    img = np.zeros(size, np.uint8)
    h, w = size
    for _ in range(n):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        a = math.radians(axis_deg + (rng.normal(0, 8) if rng.random() < 0.6 else rng.uniform(0, 180)))
        ln = length * rng.uniform(0.05, 0.35)
        p0 = (int(x * 16), int(y * 16))
        p1 = (int((x + ln * math.cos(a)) * 16), int((y - ln * math.sin(a)) * 16))
        cv2.line(img, p0, p1, int(rng.integers(60, 256)), 1, cv2.LINE_AA, 4)
    return img


def _planar96(e: np.ndarray) -> np.ndarray:
    """float32 (h, w, 3) sphere map -> planar (3, 96, 96) (what ``shade_surface`` looks up)."""
    return np.ascontiguousarray(cv2.resize(e, (96, 96), interpolation=cv2.INTER_LINEAR).transpose(2, 0, 1))


_ENV_MEMO: list = [None]  # [(copy of the last uint8 env, its planar 96 px float32 version)]


def _env_planar(env) -> np.ndarray:
    """Validated (``check_env``) planar 96 px version of ``env``; the last one is memoised per process
    (every key of a scene shares the scene's env), keyed by content, so results never depend on it.
    The memo is one tuple swapped atomically (safe with threaded workers)."""
    hit = _ENV_MEMO[0]
    u8 = isinstance(env, np.ndarray) and env.dtype == np.uint8
    if u8 and hit is not None and env.shape == hit[0].shape and np.array_equal(env, hit[0]):
        return hit[1]
    e = _planar96(check_env(env))
    e.flags.writeable = False
    if u8:
        _ENV_MEMO[0] = (env.copy(), e)
    return e


def render_shape(rng: np.random.Generator, shape: Shape, *, length_px: float, angle_deg: float, light_dir,
                 env: np.ndarray | None, shading: bool, metal: dict | None, plastic: dict | None,
                 side_p: float = 0.6, points: dict | None = None, metal_on_top: bool = False,
                 side_max: float | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Render a shape into (rgba uint8 (H, W, 4) straight alpha, key_alpha uint8 (H, W), info).

    Args:
        rng: the only randomness source (shading details drawn here).
        shape: canonical-frame drawing program (long axis along +x).
        length_px: object length in px (scales bevels, scratches).
        angle_deg: counter-clockwise rotation on screen, degrees.
        light_dir: (3,) light direction, image coordinates (x right, y down, z toward camera).
        env: optional uint8 (h, w, 3) RGB reflection environment (sphere map); None = synthetic room.
        shading: False -> flat material colours (ablation).
        metal / plastic: material dicts (:mod:`synth.keys.materials`); metal is what ``key_alpha`` covers.
        side_p: probability of drawing a visible side wall.
        points: named canonical points (e.g. ``{"hole": (x, y)}``) to map to output pixels.
        side_max: cap on the side-wall offset in px (keeps small holes see-through).
        metal_on_top: metal covers plastic where both are drawn (zipper teeth on tape, fob eyelet);
            default False: plastic covers metal (rubber key heads).

    Returns:
        rgba, key_alpha (metal coverage not hidden by plastic; 0 when ``metal`` is None),
        info dict with ``points`` (output pixel coords, lists) and ``shading`` parameters.
    """
    light = check_light(light_dir)
    env_p = _env_planar(env) if env is not None else None
    L = float(length_px)
    bevel = float(min(max(L * 0.0055, 0.7), 3.0))
    side_px = int(round(rng.uniform(0.006, 0.02) * L)) if rng.random() < side_p else 0
    if side_max is not None:
        side_px = max(0, min(side_px, int(side_max)))
    side_a = rng.uniform(0, 2 * math.pi)
    sdx, sdy = math.cos(side_a), math.sin(side_a)
    margin = int(math.ceil(bevel * 4)) + side_px + 2
    ras: Raster = rasterize(shape, angle_deg, margin)
    hgt, wid = ras.size
    f = np.float32(1.0 / 255.0)
    maps = ras.maps
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
    if metal is None:  # whole object is non-key material
        if plastic is None:
            raise ValueError("render_shape needs a metal or a plastic material")
        p8 = m8 if p8 is None else (p8 if m8 is None else cv2.max(p8, m8))
        m8 = None
    if m8 is None:
        m8 = np.zeros((hgt, wid), np.uint8)
    if p8 is not None and metal_on_top:
        p8 = cv2.subtract(p8, m8)
    # coverage algebra on uint8 (saturating): key = metal not under plastic, alpha = key + plastic
    key8 = cv2.subtract(m8, p8) if p8 is not None else m8
    top8 = cv2.add(key8, p8) if p8 is not None else key8
    a8, k8 = top8, key8
    if side_px > 0:  # side wall: coverage shifted along (sdx, sdy), composited underneath
        # max over shifts 1..side_px == dilation with a line kernel anchored at its far end
        kx, ky = int(round(sdx * side_px)), int(round(sdy * side_px))
        ker = np.zeros((2 * side_px + 1, 2 * side_px + 1), np.uint8)
        cv2.line(ker, (side_px, side_px), (side_px - kx, side_px - ky), 1, 1)
        ker[side_px, side_px] = 0 if (kx or ky) else 1
        sa = cv2.dilate(top8, ker, borderType=cv2.BORDER_CONSTANT, borderValue=0)
        sk = cv2.dilate(key8, ker, borderType=cv2.BORDER_CONSTANT, borderValue=0)
        a8 = cv2.max(top8, sa)
        k8 = cv2.max(key8, cv2.subtract(sk, top8))
    idx = np.flatnonzero(a8)
    if idx.size == 0:
        raise ValueError("rendered object is empty (length_px too small?)")
    info: dict = {"side_px": side_px, "bevel_px": round(bevel, 3)}
    base_m = np.asarray(metal["albedo"] if metal else (0.5, 0.5, 0.5), np.float32)
    base_p = np.asarray(plastic["albedo"] if plastic else (0.1, 0.1, 0.1), np.float32)
    pw = p8.reshape(-1).take(idx).astype(np.float32) * f if p8 is not None else None
    if not shading:
        col = np.empty((3, idx.size), np.float32)
        col[:] = base_m[:, None]
        if pw is not None:
            col[:, pw > 0.5] = base_p[:, None]
    else:
        bend = tuple(float(v) for v in rng.normal(0, [0.08, 0.08, 0.25, 0.25]))
        *n, cavity = relief_normals(layers, idx, bevel, bevel * 2.4, bend)
        e = env_p if env_p is not None else _planar96(default_env(rng, light))
        centre = tuple(float(v) for v in rng.uniform(0.3, 0.7, 2))
        col = None
        if metal is not None:
            ys, xs = np.divmod(idx, wid)
            xs, ys = xs.astype(np.float32), ys.astype(np.float32)
            sb, bb = streak_bank(), blotch_bank()
            cx, cy = canonical_coords(ras.matrix, xs, ys)
            st = lookup_texture(sb[int(rng.integers(len(sb)))], cx, cy, rng.uniform(0.7, 1.6),
                                tuple(rng.uniform(0, 512, 2)))
            bl = lookup_texture(bb[int(rng.integers(len(bb)))], cx, cy, rng.uniform(0.8, 2.5),
                                tuple(rng.uniform(0, 128, 2)))
            wear = np.minimum(np.maximum(bl * np.float32(metal["wear"]), 0.0), 1.0)
            alb = base_m[:, None] * (1.0 + np.float32(metal["streak"]) * st)
            alb = alb * (1.0 - wear) + np.asarray(metal["rust"], np.float32)[:, None] * wear
            spec_map = np.maximum(1.0 + np.float32(metal["streak"]) * st - 0.8 * wear, 0.1)
            col = shade_surface(n, alb, light, e, diffuse=metal["diffuse"], specular=metal["specular"],
                                shininess=metal["shininess"], env_strength=metal["env"], metallic=True,
                                env_centre=centre, spec_map=spec_map)
            ns = int(round(metal.get("scratches", 0) * L / 100.0))
            if ns:
                scr = _scratches(rng, ras.size, ns, L, angle_deg).reshape(-1)[idx].astype(np.float32) * (f * 0.3)
                col += scr * (0.5 + 0.5 * base_m)[:, None]
            if cavity is not None:  # grooves and dimples are shadowed
                col *= np.exp(cavity * np.float32(-0.18 / bevel))
        if pw is not None and plastic is not None:
            pcol = shade_surface(n, base_p, light, e, diffuse=plastic["diffuse"], specular=plastic["specular"],
                                 shininess=plastic["shininess"], env_strength=plastic["env"], metallic=False,
                                 env_centre=centre)
            col = pcol if col is None else col + (pcol - col) * pw
        col *= np.float32(rng.uniform(0.85, 1.15))
        if side_px > 0:  # darken the side wall (the part not covered by the top face)
            t = top8.reshape(-1).take(idx).astype(np.float32) / np.maximum(a8.reshape(-1).take(idx), 1)
            col *= 0.4 + 0.6 * t
    # planar colour scattered into the box (contiguous per-channel writes), then cropped + interleaved
    planes = np.zeros((3, hgt * wid), np.uint8)
    planes[:, idx] = np.minimum(np.maximum(col * 255.0 + 0.5, 0), 255).astype(np.uint8)
    rows, cols = np.flatnonzero(a8.any(1)), np.flatnonzero(a8.any(0))
    y0, y1 = max(rows[0] - 2, 0), min(rows[-1] + 3, hgt)
    x0, x1 = max(cols[0] - 2, 0), min(cols[-1] + 3, wid)
    planes = planes.reshape(3, hgt, wid)[:, y0:y1, x0:x1]
    rgba = np.empty((y1 - y0, x1 - x0, 4), np.uint8)
    for ch in range(3):
        rgba[..., ch] = planes[ch]
    rgba[..., 3] = a8[y0:y1, x0:x1]
    pts = {}
    for name, p in (points or {}).items():
        q = ras.to_out(p)[0]
        pts[name] = [round(float(q[0] - x0), 2), round(float(q[1] - y0), 2)]
    info["points"] = pts
    return rgba, np.ascontiguousarray(np.minimum(k8[y0:y1, x0:x1], rgba[..., 3])), info
