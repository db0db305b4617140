"""Procedural occluders and helpers drawn as premultiplied ``Layer`` boxes: split key rings,
finger/thumb shapes, generic object blobs, a fallback key silhouette and fallback distractors.

Shapes are rasterised with OpenCV anti-aliased polygons (``cv2.LINE_AA``, sub-pixel ``shift``)
and shaded with simple analytic profiles (Lambert-like falloff across a cylinder's width).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .compiled import kernel
from .compose import Layer
from .seeding import pick, uniform

__all__ = ["FallbackKeys", "key_ring_layers", "finger_layer", "blob_layer", "fallback_distractor", "distractor_renderers",
           "SKIN_TONES"]

_SH = 4  # sub-pixel bits for cv2 drawing
_S = float(1 << _SH)

SKIN_TONES = np.array([[233, 196, 170], [222, 171, 137], [198, 140, 106], [160, 106, 76],
                       [120, 78, 56], [88, 58, 44], [240, 205, 185]], np.float32)
METALS = {"brass": (196, 160, 82), "nickel": (190, 190, 186), "steel": (160, 163, 168), "copper": (184, 115, 80)}
_NAIL = np.array([235.0, 205.0, 200.0])  # finger-nail colour (RGB)


def _pts(p) -> np.ndarray:
    return np.round(np.asarray(p, np.float64) * _S).astype(np.int32)


def _rotate_rgba(rgba: np.ndarray, angle_deg: float, pivot=None) -> tuple[np.ndarray, np.ndarray]:
    """Rotate counter-clockwise into an enlarged box; returns (rgba, 2x3 matrix used)."""
    h, w = rgba.shape[:2]
    c = (w / 2.0, h / 2.0)
    M = cv2.getRotationMatrix2D(c, angle_deg, 1.0)
    cos, sin = abs(M[0, 0]), abs(M[0, 1])
    nw, nh = int(np.ceil(h * sin + w * cos)) + 2, int(np.ceil(h * cos + w * sin)) + 2
    M[0, 2] += nw / 2.0 - c[0]
    M[1, 2] += nh / 2.0 - c[1]
    out = cv2.warpAffine(rgba, M, (nw, nh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return out, M


class FallbackKeys:
    """Simple key silhouette (round/square bow with hole, toothed blade), flat or linearly shaded
    metal. Used only when ``synth.keys`` is unavailable and in tests. Same ``sample`` signature as
    ``synth.keys.ProceduralKeys``: returns straight-alpha RGBA uint8 rotated by ``angle_deg`` and
    meta with kind, material, hole_xy."""

    def sample(self, rng, *, length_px: float, angle_deg: float, light_dir=(0.0, 0.0, 1.0), env=None, shading=True):
        L = max(6.0, float(length_px))
        bow_r = L * uniform(rng, 0.15, 0.22)
        bw = L * uniform(rng, 0.09, 0.14)  # blade width
        h = int(np.ceil(2 * bow_r + 4))
        w = int(np.ceil(L + 4))
        cy = h / 2.0
        a = np.zeros((h, w), np.uint8)
        bx = 2 + bow_r
        square = rng.random() < 0.4
        if square:
            cv2.fillPoly(a, [_pts([[2, cy - bow_r], [2 + 2 * bow_r, cy - bow_r], [2 + 2 * bow_r, cy + bow_r], [2, cy + bow_r]])],
                         255, cv2.LINE_AA, _SH)
        else:
            cv2.circle(a, tuple(int(v) for v in _pts([bx, cy])), int(bow_r * _S), 255, -1, cv2.LINE_AA, _SH)
        x1 = L + 2
        top = cy - bw / 2
        blade = [[bx, top], [x1 - bw * 0.6, top], [x1, cy], [x1 - bw * 0.3, cy + bw / 2]]
        n_teeth = int(rng.integers(4, 7))
        xs = np.linspace(x1 - bw, bx + bow_r * 1.3, n_teeth * 2)
        for i, x in enumerate(xs):
            blade.append([x, cy + bw / 2 + (bw * uniform(rng, 0.25, 0.6) if i % 2 == 0 else 0)])
        blade.append([bx, cy + bw / 2])
        cv2.fillPoly(a, [_pts(blade)], 255, cv2.LINE_AA, _SH)
        hole = (bx - bow_r * 0.45, cy)
        hr = max(1.0, bow_r * 0.28)
        cv2.circle(a, tuple(int(v) for v in _pts(hole)), int(hr * _S), 0, -1, cv2.LINE_AA, _SH)
        material = str(pick(rng, list(METALS)))
        col = np.asarray(METALS[material], np.float32) * np.float32(uniform(rng, 0.85, 1.1))
        rgb = np.empty((h, w, 3), np.float32)
        rgb[:] = col
        if shading:
            yy = np.linspace(-1, 1, h, dtype=np.float32)[:, None]
            xx = np.linspace(-1, 1, w, dtype=np.float32)[None, :]
            g = 1.0 + 0.35 * (xx * light_dir[0] * 0.3 + yy * light_dir[1]) * -1
            rgb *= g[..., None]
        rgba = np.dstack([np.clip(rgb, 0, 255).astype(np.uint8), a])
        out, M = _rotate_rgba(rgba, angle_deg)
        hx, hy = M @ np.array([hole[0], hole[1], 1.0])
        return out, {"kind": "fallback_" + ("square" if square else "round"), "material": material,
                     "hole_xy": [float(hx), float(hy)]}


@kernel
def _ring_halves(n, r, t, light, shading, col, x0, y0, cx, cy, bx, by, under_rgb, under_a, over_rgb, over_a):
    """Annulus of mid-radius r, wire thickness t (px) in an (n, n) box at frame (x0, y0), split by
    the line through (cx, cy) along (bx, by) into two premultiplied layers (arrays pre-zeroed).
    Colour: torus cross-section shading, ``clip(col (0.35 + 0.75 lam) + 200 lam**24, 0, 255)`` with
    ``lam = clip(n.l, 0, 1)`` and the wire normal ``(u x/d, u y/d, sqrt(1 - u^2))``,
    ``u = (d - r) / (t/2)``; alpha ``clip(t/2 + 0.5 - |d - r|, 0, 1)`` (anti-aliased edges)."""
    hc = n / 2.0
    ht = t / 2.0
    for y in range(n):
        yy = y - hc
        for x in range(n):
            xx = x - hc
            d = math.sqrt(xx * xx + yy * yy)
            a = ht + 0.5 - abs(d - r)
            if a <= 0.0:
                continue
            if a > 1.0:
                a = 1.0
            if shading:
                u = (d - r) / ht
                nz = math.sqrt(max(1.0 - u * u, 0.0))
                inv = 1.0 / max(d, 1e-3)
                lam = (u * xx * inv) * light[0] + (u * yy * inv) * light[1] + nz * light[2]
                lam = min(max(lam, 0.0), 1.0)
                g, s = 0.35 + 0.75 * lam, 200.0 * lam ** 24
            else:
                g, s = 1.0, 0.0
            over = ((x + x0 - cx) * -by + (y + y0 - cy) * bx) > 0  # left/right of the axis through the hole
            rgb, al = (over_rgb, over_a) if over else (under_rgb, under_a)
            al[y, x] = a
            for k in range(3):
                rgb[y, x, k] = min(max(col[k] * g + s, 0.0), 255.0) * a


def key_ring_layers(rng, hole_xy, blade_dir, key_len: float, light_dir, shading=True, radius=None):
    """A split ring threaded through a key's hole: returns (under_layer, over_layer, meta), both in
    frame coordinates. The ring centre lies away from the blade; the half of the ring on one side of
    the line (hole -> ring centre) is pasted under the key, the other half over it, as a ring
    passing through the hole looks."""
    r = float(radius) if radius is not None else key_len * uniform(rng, 0.18, 0.45)
    t = max(1.2, key_len * uniform(rng, 0.018, 0.035))
    bx, by = blade_dir
    cx, cy = hole_xy[0] - bx * r, hole_xy[1] - by * r
    colour = np.asarray(METALS[str(pick(rng, ["nickel", "steel", "brass"]))], np.float32) * np.float32(uniform(rng, 0.8, 1.05))
    n = int(np.ceil(2 * (r + t / 2 + 2)))
    x0, y0 = int(round(cx - n / 2)), int(round(cy - n / 2))
    under, over = (Layer(np.zeros((n, n, 3), np.float32), np.zeros((n, n), np.float32), x0, y0) for _ in range(2))
    _ring_halves(n, r, t, np.asarray(light_dir, np.float64), bool(shading), colour.astype(np.float64), x0, y0, cx, cy,
                 float(bx), float(by), under.rgb, under.alpha, over.rgb, over.alpha)
    return under, over, {"ring_radius_px": r, "ring_wire_px": t, "ring_centre": [float(cx), float(cy)]}


@kernel
def _finger_pixels(idx, w, ox, oy, dx, dy, width, length, light, shading, nail_on, skin, rgb, alpha):
    """Capsule pixels ``idx`` (flat in a ``w``-wide box whose origin is (ox, oy) from the tip):
    ``along`` / ``across`` the finger axis (dx, dy); radius ``width/2 (1 + 0.15 clip(along/length))``
    (wider toward the hand); alpha ``clip(rad - dist + 0.5, 0, 1)`` (round tip); skin colour x
    cylinder shading ``0.45 + 0.7 clip(n.l)``; a lighter nail near the tip; premultiplied out."""
    for i in range(idx.size):
        p = idx[i]
        y, x = p // w, p % w
        px = x + ox
        py = y + oy
        along = px * dx + py * dy
        across = -px * dy + py * dx
        rad = width / 2 * (1 + 0.15 * min(max(along / max(length, 1.0), 0.0), 1.0))
        dist = math.sqrt(along * along + across * across) if along < 0 else abs(across)
        a = min(max(rad - dist + 0.5, 0.0), 1.0)
        if a == 0.0:
            continue
        g = 1.0
        if shading:
            u = min(max(across / rad, -1.0), 1.0)
            lam = u * (-dy * light[0] + dx * light[1]) + math.sqrt(1 - u * u) * light[2]
            g = 0.45 + 0.7 * min(max(lam, 0.0), 1.0)
        nail = nail_on and width * 0.08 < along < width * 0.9 and abs(across) < rad * 0.6
        alpha[y, x] = a
        for k in range(3):
            c = skin[k] * g
            if nail:
                c = c * 0.6 + _NAIL[k] * 0.4
            rgb[y, x, k] = c * a


def finger_layer(rng, tip_xy, direction, width: float, length: float, light_dir, shading=True, frame_hw=None):
    """A finger/thumb: capsule of ``width`` px from ``tip_xy`` extending ``length`` px along unit
    ``direction`` (toward the hand), skin-toned, cylinder-shaded, with a lighter nail near the tip.
    ``frame_hw`` clips the box to the frame (the finger usually runs out of the picture)."""
    dx, dy = direction
    tx, ty = tip_xy
    ex, ey = tx + dx * length, ty + dy * length
    pad = width
    x0, y0 = int(np.floor(min(tx, ex) - pad)), int(np.floor(min(ty, ey) - pad))
    x1, y1 = int(np.ceil(max(tx, ex) + pad)), int(np.ceil(max(ty, ey) + pad))
    if frame_hw is not None:  # only the part inside the frame is ever visible
        x0, y0 = max(x0, 0), max(y0, 0)
        x1, y1 = max(x0 + 1, min(x1, frame_hw[1])), max(y0 + 1, min(y1, frame_hw[0]))
    h, w = y1 - y0, x1 - x0
    # conservative footprint (the capsule's rotated bounding rectangle + 2 px): the per-pixel maths
    # runs only there (element-wise, so values are identical to evaluating the whole box); alpha is 0
    # outside it
    hw_ = width / 2 * 1.15 + 2.0
    a0_, a1_ = -(width / 2 + 2.0), length + pad + 2.0
    rect = np.array([[tx + dx * a + (-dy) * b, ty + dy * a + dx * b]
                     for a, b in ((a0_, -hw_), (a1_, -hw_), (a1_, hw_), (a0_, hw_))], np.float64)
    fp = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(fp, np.round((rect - (x0, y0)) * 16).astype(np.int32), 1, cv2.LINE_8, 4)
    fp = cv2.dilate(fp, np.ones((5, 5), np.uint8))
    idx = np.flatnonzero(fp).astype(np.int32)
    skin = pick(rng, SKIN_TONES) * np.float32(uniform(rng, 0.85, 1.1))
    nail_on = bool(rng.random() < 0.6)
    rgb = np.zeros((h, w, 3), np.float32)
    a = np.zeros((h, w), np.float32)
    _finger_pixels(idx, w, float(x0 - tx), float(y0 - ty), float(dx), float(dy), float(width), float(length),
                   np.asarray(light_dir, np.float64), bool(shading), nail_on, skin.astype(np.float64), rgb, a)
    return Layer(rgb, a, x0, y0), {"finger_width_px": width, "nail": nail_on}


def blob_layer(rng, centre, radius: float, light_dir, shading=True):
    """A generic object edge: random smooth polygon (perturbed ellipse), random colour, soft shading."""
    n = 16
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    rr = radius * (1 + 0.25 * rng.standard_normal(n)).clip(0.5, 1.6)
    ax = uniform(rng, 0.4, 1.0)
    rot = uniform(rng, 0, np.pi)
    xs, ys = rr * np.cos(t), rr * np.sin(t) * ax
    px = centre[0] + xs * np.cos(rot) - ys * np.sin(rot)
    py = centre[1] + xs * np.sin(rot) + ys * np.cos(rot)
    x0, y0 = int(np.floor(px.min())) - 2, int(np.floor(py.min())) - 2
    h, w = int(np.ceil(py.max())) - y0 + 3, int(np.ceil(px.max())) - x0 + 3
    a = np.zeros((h, w), np.uint8)
    cv2.fillPoly(a, [_pts(np.stack([px - x0, py - y0], 1))], 255, cv2.LINE_AA, _SH)
    alpha = a.astype(np.float32) / 255
    col = rng.uniform(15, 240, 3).astype(np.float32)
    rgb = np.empty((h, w, 3), np.float32)
    rgb[:] = col
    if shading:
        g = np.linspace(1 + 0.25 * light_dir[1], 1 - 0.25 * light_dir[1], h, dtype=np.float32)[:, None, None]
        rgb *= g
    return Layer(rgb * alpha[..., None], alpha, x0, y0), {"blob_radius_px": float(radius)}


def fallback_distractor(rng, kind: str, *, size_px: float, angle_deg: float, light_dir, shading=True):
    """Stand-in for ``synth.distractors.render_distractor``: coin-like disk or bar (RGBA uint8)."""
    s = max(4.0, float(size_px))
    n = int(np.ceil(s)) + 4
    a = np.zeros((n, n), np.uint8)
    c = n / 2
    if kind == "coin":
        cv2.circle(a, tuple(int(v) for v in _pts([c, c])), int(s / 2 * _S), 255, -1, cv2.LINE_AA, _SH)
    else:
        bw = s * uniform(rng, 0.1, 0.3)
        cv2.fillPoly(a, [_pts([[2, c - bw / 2], [n - 2, c - bw / 2], [n - 2, c + bw / 2], [2, c + bw / 2]])], 255, cv2.LINE_AA, _SH)
    col = rng.uniform(30, 230, 3)
    rgb = np.empty((n, n, 3), np.float32)
    rgb[:] = col
    rgba = np.dstack([rgb.astype(np.uint8), a])
    out, _ = _rotate_rgba(rgba, angle_deg)
    return out, {"kind": kind, "fallback": True}


def distractor_renderers(kinds: tuple | None = None):
    """``(render, kinds drawn, render from the asset bank)`` of the hard negatives
    (:mod:`synth.distractors`; :func:`fallback_distractor` without it); ``kinds`` None = every kind
    (``SynthConfig`` has checked the names)."""
    try:
        import synth.distractors as D
    except ModuleNotFoundError as exc:
        if exc.name != "synth.distractors":
            raise
        return fallback_distractor, ("coin", "bar"), None
    return D.render_distractor, tuple(kinds or D.DISTRACTOR_KINDS), D.render_distractor_asset
