"""Metal / plastic shading as pure functions on float32 arrays.

Method: a 2.5D height map (bevelled plates from a Gaussian-blurred coverage mask, round parts from
the Euclidean distance transform, ``h = sqrt(d (2R - d))``) gives per-pixel normals by Sobel
differences. Lighting is Blinn-Phong (Blinn, SIGGRAPH 1977) with an orthographic viewer
``V = (0, 0, 1)`` plus an environment reflection looked up in a sphere map (Blinn & Newell 1976;
for an orthographic view the sphere-map coordinate of the reflected ray reduces to the normal's
x/y, ``u = 0.5 + 0.5 n_x``). Metals tint their reflections by their albedo; plastics reflect white.
Brushed streaks and tarnish come from texture banks generated once per process from a fixed seed
(so cached content never depends on call order) and placed by the caller's rng.

Coordinates: image frame, x right, y down, z toward the camera.
"""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np

from ..seeding import pick, uniform

__all__ = [
    "streak_bank", "blotch_bank", "sample_texture", "relief_normals", "default_env", "check_env", "env_image",
    "check_light", "light_xyz", "shade_surface", "canonical_coords", "lookup_texture",
]

_BANK_SEED = 20240611


@functools.lru_cache(maxsize=1)
def streak_bank() -> tuple[np.ndarray, ...]:
    """4 float32 (64, 512) zero-mean unit-std textures stretched along x (brushed metal)."""
    rng = np.random.default_rng(_BANK_SEED)
    out = []
    for _ in range(4):
        n = rng.standard_normal((64, 512)).astype(np.float32)
        t = cv2.GaussianBlur(n, (0, 0), sigmaX=40, sigmaY=0.7) * 2 + cv2.GaussianBlur(n, (0, 0), 8, 0.5)
        t -= t.mean()
        out.append((t / (t.std() + 1e-6)).astype(np.float32))
    return tuple(out)


@functools.lru_cache(maxsize=1)
def blotch_bank() -> tuple[np.ndarray, ...]:
    """4 float32 (128, 128) zero-mean unit-std low-frequency noise textures (tarnish, dirt, rooms)."""
    rng = np.random.default_rng(_BANK_SEED + 1)
    out = []
    for _ in range(4):
        n = rng.standard_normal((128, 128)).astype(np.float32)
        t = cv2.GaussianBlur(n, (0, 0), 10) * 3 + cv2.GaussianBlur(n, (0, 0), 3)
        t -= t.mean()
        out.append((t / (t.std() + 1e-6)).astype(np.float32))
    return tuple(out)


def sample_texture(tex: np.ndarray, matrix: np.ndarray, xs: np.ndarray, ys: np.ndarray, scale: float,
                   offset: tuple[float, float]) -> np.ndarray:
    """Look up a tiling texture at output pixels (xs, ys) (1D float32/int arrays), nearest texel.

    Texture coordinate = canonical coordinate * ``scale`` + ``offset``, where ``matrix`` (2, 3) maps
    canonical to output pixels (its inverse is applied here). Returns float32 like ``xs``.
    """
    cx, cy = canonical_coords(matrix, xs, ys)
    return lookup_texture(tex, cx, cy, scale, offset)


def canonical_coords(matrix: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Output pixels (xs, ys) -> canonical-frame coordinates (inverse of the rotation+shift ``matrix``
    (2, 3)); float32 like ``xs``. Split out of :func:`sample_texture` so several textures looked up
    at the same pixels share it."""
    r, t = matrix[:, :2], matrix[:, 2]
    dx, dy = xs - np.float32(t[0]), ys - np.float32(t[1])
    # inverse of a rotation is its transpose
    cx = dx * np.float32(r[0, 0]) + dy * np.float32(r[1, 0])
    cy = dx * np.float32(r[0, 1]) + dy * np.float32(r[1, 1])
    return cx, cy


def lookup_texture(tex: np.ndarray, cx: np.ndarray, cy: np.ndarray, scale: float,
                   offset: tuple[float, float]) -> np.ndarray:
    """Nearest-texel lookup of a tiling power-of-two texture at canonical coords * scale + offset."""
    th, tw = tex.shape
    if tw & (tw - 1) or th & (th - 1):
        raise ValueError(f"texture sides must be powers of two, got {tex.shape}")
    u = (cx * np.float32(scale) + np.float32(offset[0])).astype(np.int32) & (tw - 1)
    v = (cy * np.float32(scale) + np.float32(offset[1])).astype(np.int32) & (th - 1)
    return tex.reshape(-1).take(v * tw + u)


def _blur(x: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(x, (0, 0), max(float(sigma), 0.3))


def relief_normals(layers: dict[str, np.ndarray], idx: np.ndarray, bevel_px: float, thickness: float,
                   bend: tuple[float, float, float, float] = (0, 0, 0, 0)
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Unit normals and cavity depth at flat pixel indices ``idx`` of a 2.5D relief.

    The height is built from uint8 coverage layers (H, W) (holes already removed):
    ``metal`` plate ``T * G_bevel(metal)`` with grooves (-0.45 T), raised details (+0.3 T) and
    dimples (-0.7 T) blurred at their own scales; ``cyl`` round parts
    ``sqrt(d (2R - d))`` from the Euclidean distance transform d (R = max d); ``plastic`` a soft
    pillow ``2.5 T * G_{3 bevel}(plastic)``; parts combine by maximum. Blurs run on the uint8 maps
    (fast fixed-point path) and the height is only evaluated at ``idx`` and its 4 neighbours
    (central differences), so the cost scales with the object's area, not its bounding box.
    ``bend`` = (tilt_x, tilt_y, curve_x, curve_y) adds a gentle global tilt/curvature (a real key is
    never perfectly flat); curvature per half canvas size. ``idx`` must be >= 1 px from the border.

    Returns:
        (nx, ny, nz) float32 (N,) unit normals (image frame, z toward camera) and the cavity depth
        float32 (N,) in height units (or None when there are no grooves/dimples).
    """
    hgt, wid = next(iter(layers.values())).shape
    flat = {}
    scale = np.float32(thickness / 255.0)
    if "metal" in layers:
        flat["plate"] = _blur(layers["metal"], bevel_px).reshape(-1)
        for name, sig in (("groove", 0.7), ("raise", 0.6), ("dimple", 1.6)):
            if name in layers:
                flat[name] = _blur(layers[name], bevel_px * sig).reshape(-1)
    if "cyl" in layers:
        d = cv2.distanceTransform((layers["cyl"] > 127).astype(np.uint8), cv2.DIST_L2, 3)
        flat["cyl_r"] = max(float(d.max()), 1.0)
        flat["cyl"] = d.reshape(-1)
    if "plastic" in layers:
        flat["pbl"] = _blur(layers["plastic"], bevel_px * 3.0).reshape(-1)
        flat["p"] = layers["plastic"].reshape(-1)

    def height(j):
        h = None
        if "plate" in flat:
            pl = flat["plate"].take(j).astype(np.float32)
            h = pl * scale
            rel = None
            for name, depth in (("groove", -0.45), ("raise", 0.3), ("dimple", -0.7)):
                if name in flat:
                    t = flat[name].take(j).astype(np.float32) * np.float32(depth)
                    rel = t if rel is None else rel + t
            if rel is not None:
                h += rel * pl * np.float32(thickness / 65025.0)
        if "cyl" in flat:
            r = flat["cyl_r"]
            dd = np.minimum(flat["cyl"].take(j), r)
            hc = np.sqrt(dd * (2 * r - dd)) * np.float32(0.9) + np.float32(thickness * 0.3) * (dd > 0)
            h = hc if h is None else np.maximum(h, hc)
        if "pbl" in flat:
            hp = flat["pbl"].take(j).astype(np.float32) * np.float32(2.5) * scale + \
                flat["p"].take(j).astype(np.float32) * np.float32(0.2) * scale
            h = hp if h is None else np.maximum(h, hp)
        return h if h is not None else np.zeros(j.shape, np.float32)

    # the 4 neighbour sets in ONE evaluation (element-wise, so identical to 4 separate calls)
    n_ = idx.size
    hh = height(np.concatenate([idx + 1, idx - 1, idx + wid, idx - wid]))
    gx = (hh[:n_] - hh[n_:2 * n_]) * np.float32(0.5)
    gy = (hh[2 * n_:3 * n_] - hh[3 * n_:]) * np.float32(0.5)
    ys, xs = np.divmod(idx, wid)
    nx = -gx + np.float32(bend[0]) + np.float32(bend[2] * 2.0 / max(wid, 1)) * (xs.astype(np.float32) - wid / 2)
    ny = -gy + np.float32(bend[1]) + np.float32(bend[3] * 2.0 / max(hgt, 1)) * (ys.astype(np.float32) - hgt / 2)
    inv = 1.0 / np.sqrt(nx * nx + ny * ny + 1.0)
    cavity = None
    if "plate" in flat and ("groove" in flat or "dimple" in flat):
        c = np.zeros(idx.shape, np.float32)
        for name, depth in (("groove", 0.45), ("dimple", 0.7)):
            if name in flat:
                c += flat[name].take(idx).astype(np.float32) * np.float32(depth)
        cavity = c * flat["plate"].take(idx).astype(np.float32) * np.float32(thickness / 65025.0)
    return nx * inv, ny * inv, inv, cavity


def light_xyz(light_dir) -> tuple[float, float, float]:
    """Validate and normalise a light direction (3,) -> unit (x, y, z) Python floats (z forced >= 0.05).
    Raises ValueError for anything but 3 finite numbers, not all zero."""
    if type(light_dir) is tuple and len(light_dir) == 3 and all(type(c) is float for c in light_dir):
        # fast path (the renderer's per-object call): plain floats, no numpy reductions; same values
        x, y, z = light_dir
        nrm = math.sqrt(x * x + y * y + z * z)
        if math.isfinite(nrm) and nrm >= 1e-9:
            x, y, z = x / nrm, y / nrm, z / nrm
            if z < 0.05:
                z = 0.05
                nrm = math.sqrt(x * x + y * y + z * z)
                x, y, z = x / nrm, y / nrm, z / nrm
            return x, y, z
    v = np.asarray(light_dir, np.float64).reshape(-1)
    if v.shape != (3,) or not np.all(np.isfinite(v)) or np.linalg.norm(v) < 1e-9:
        raise ValueError(f"light_dir must be 3 finite numbers, not all zero (x right, y down, z to camera); got {light_dir!r}")
    v = v / np.linalg.norm(v)
    if v[2] < 0.05:
        v[2] = 0.05
        v /= np.linalg.norm(v)
    x, y, z = v.tolist()
    return x, y, z


def check_light(light_dir) -> np.ndarray:
    """Validate and normalise a light direction (3,) -> float64 unit vector (z forced >= 0.05);
    :func:`light_xyz` as an array."""
    return np.array(light_xyz(light_dir), np.float64)


def env_image(env) -> np.ndarray:
    """Validate an environment image: uint8 (h, w, 3) RGB, h, w >= 2 -> it as an array (not copied).
    Raises ValueError naming the dtype and shape otherwise."""
    if env is None:
        raise ValueError("env is None")
    e = np.asarray(env)
    if e.ndim != 3 or e.shape[2] != 3 or e.shape[0] < 2 or e.shape[1] < 2 or e.dtype != np.uint8:
        raise ValueError(f"env must be a uint8 RGB image (h, w, 3) with h, w >= 2; got {e.dtype} {e.shape}")
    return e


def check_env(env) -> np.ndarray:
    """Validate an environment image (:func:`env_image`) -> float32 (h, w, 3) in [0, 1]."""
    return env_image(env).astype(np.float32) * (1.0 / 255.0)


def default_env(rng: np.random.Generator, light: np.ndarray, size: int = 32) -> np.ndarray:
    """A plausible room as a sphere map: bright toward the light, darker away, blotchy structure.

    Returns float32 (size, size, 3) in [0, 1].
    """
    g = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    d = light[:2] / (np.linalg.norm(light[:2]) + 1e-6)
    grad = d[0] * g[None, :] + d[1] * g[:, None]
    bank = blotch_bank()
    tex = pick(rng, bank)
    o = rng.integers(0, tex.shape[0] - size, 2)
    blot = tex[o[0]:o[0] + size, o[1]:o[1] + size]
    base = uniform(rng, 0.3, 0.6)
    lum = np.clip(base + uniform(rng, 0.15, 0.4) * grad + uniform(rng, 0.05, 0.15) * blot, 0.02, 1.0)
    tint = np.array([1.0, 1.0, 1.0], np.float32) + rng.uniform(-0.06, 0.06, 3).astype(np.float32)
    return lum[..., None] * tint[None, None, :]


_LUT_X = np.linspace(0.0, 1.0, 1024, dtype=np.float32)
_LUT_X.flags.writeable = False


def _pow_lut(x: np.ndarray, exponent: float) -> np.ndarray:
    """x ** exponent for x in [0, 1] via a 1024-entry lookup table (float32)."""
    lut = _LUT_X ** np.float32(exponent)
    return lut.take((x * np.float32(1023.0) + np.float32(0.5)).astype(np.int32))


def shade_surface(n: tuple[np.ndarray, np.ndarray, np.ndarray], albedo: np.ndarray, light: np.ndarray,
                  env: np.ndarray, *, diffuse: float, specular: float, shininess: float, env_strength: float,
                  metallic: bool, env_gain: float = 0.8, env_centre: tuple[float, float] = (0.5, 0.5),
                  spec_map: np.ndarray | None = None, ambient: float = 0.25) -> np.ndarray:
    """Blinn-Phong + sphere-map reflection on N pixels. Returns float32 (3, N) planar RGB, ~[0, 1.3].

    Args:
        n: unit normals (nx, ny, nz), each float32 (N,).
        albedo: float32 (3,) or planar (3, N) base colour in [0, 1].
        light: unit light direction (3,) in image coordinates.
        env: float32 planar (3, h, w) sphere map in [0, 1] (nearest lookup: pass it at ~96 px).
        metallic: tint specular and reflection with the albedo (metal) or keep them white (dielectric).
        spec_map: optional float32 (N,) multiplier of the specular/reflection terms (streaks, wear).
    """
    nx, ny, nz = n
    lx, ly, lz = (float(v) for v in light)
    hn = (lx * lx + ly * ly + (lz + 1.0) ** 2) ** 0.5
    hx, hy, hz = lx / hn, ly / hn, (lz + 1.0) / hn  # Blinn half vector (python floats keep float32)
    ndl = np.maximum(nx * lx + ny * ly + nz * lz, 0.0)
    ndh = np.minimum(np.maximum(nx * hx + ny * hy + nz * hz, 0.0), 1.0)
    spec = _pow_lut(ndh, shininess) * np.float32(specular)
    _, eh, ew = env.shape
    mx = np.minimum(np.maximum((env_centre[0] + env_gain * 0.5 * nx) * (ew - 1) + 0.5, 0), ew - 1).astype(np.int32)
    my = np.minimum(np.maximum((env_centre[1] + env_gain * 0.5 * ny) * (eh - 1) + 0.5, 0), eh - 1).astype(np.int32)
    flat = my * ew + mx
    ep = env.reshape(3, -1)
    refl = ep.take(flat, axis=1)  # (3, N), == stacking the 3 per-channel takes
    # Schlick-like rise of reflection at grazing normals (bevels reflect more)
    fres = np.float32(env_strength) * (1.6 - 0.6 * nz)
    if spec_map is not None:
        spec = spec * spec_map
        fres = fres * spec_map
    albedo = np.asarray(albedo, np.float32)
    if albedo.ndim == 1:
        albedo = albedo[:, None]
    lit = np.float32(ambient) + np.float32(diffuse) * ndl
    out = albedo * lit
    if metallic:
        tint = 0.75 * albedo + 0.25
        out = out * np.float32(0.55) + refl * fres * tint + spec * (0.5 * albedo + 0.5)
    else:
        out = out + refl * fres + spec
    return out
