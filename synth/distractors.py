"""Non-key distractor objects (hard negatives), rendered with the same 2.5D metal shading as keys.

``render_distractor(rng, kind, size_px=..., angle_deg=..., light_dir=...) -> (rgba, meta)``: RGBA
uint8 cut-out with straight alpha, tightly cropped, rotated counter-clockwise by ``angle_deg``;
``size_px`` is the object's long-axis length before rotation. Nothing here is key: the scene labels
all of it 0. ``render_distractor_asset`` takes the geometry from the asset bank
(``synth.keys.bank``) and returns it in canonical orientation with the affine that places it.
Metal distractors (coins, clips, screws, cutlery, rings, openers, ball chains) share the key
materials so the model cannot tell keys by "metal look" alone (Dwibedi et al., ICCV 2017: distractor
objects; Tobin et al. 2017: domain randomisation).
"""

from __future__ import annotations

import math

import numpy as np

from backgrounds.cache import LRUCache

from .meta import CleanDict, fresh_copy, jsonable
from .seeding import pick, uniform as _u
from .keys.geometry import Shape, ellipse_pts, rect_pts, rounded_rect_pts
from .keys.bank import asset_rng, cached_asset, canonical_affine, draw_asset
from .keys.materials import sample_material, sample_plastic
from .keys.render import PreparedEnv, build_relief, render_shape, shade_relief, surface_detail

__all__ = ["DISTRACTOR_KINDS", "render_distractor", "render_distractor_asset"]


def _arc(cx, cy, r, a0, a1, n=20) -> np.ndarray:
    t = np.radians(np.linspace(a0, a1, n))
    return np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], 1)


def _coin(rng, S):
    s, r = Shape(), S / 2
    s.circle("metal", r, 0, r)
    s.line("raise", ellipse_pts(r, 0, r * 0.9, r * 0.9, 64), max(1.0, S * 0.02), 0.8, closed=True)
    for _ in range(int(rng.integers(4, 12))):  # relief: a few strokes/blobs inside
        c = rng.uniform(-0.5, 0.5, 2) * r + [r, 0]
        pts = c + rng.uniform(-0.25, 0.25, (3, 2)) * r
        s.line(str(pick(rng, ["raise", "groove"])), pts, max(1.0, S * _u(rng, 0.015, 0.04)), 0.6)
    return s, {"diameter": S}, "metal", ("brass", "nickel", "steel")


def _paper_clip(rng, S):
    s = Shape()
    r1 = S * _u(rng, 0.12, 0.17)
    r2, r3 = r1 * 0.8, r1 * 0.6
    wire = max(1.0, S * _u(rng, 0.025, 0.04))
    pts = np.concatenate([
        [[S * 0.72, r1]], _arc(r1, 0, r1, 90, 270), _arc(S - r2, -r1 + r2, r2, 270, 450),
        _arc(S * 0.25, -r1 + 2 * r2 - r3, r3, 90, 270), [[S * 0.78, -r1 + 2 * r2 - 2 * r3]]])
    s.line("cyl", pts, wire)
    plastic = rng.random() < 0.2
    return s, {"wire": wire, "r1": r1}, "plastic" if plastic else "metal", ("steel", "nickel", "coated")


def _screw(rng, S):
    s = Shape()
    hl, hh = S * _u(rng, 0.08, 0.15), S * _u(rng, 0.2, 0.3)
    sw = hh * _u(rng, 0.45, 0.6)
    s.poly("cyl", np.concatenate([_arc(hl, 0, hh / 2, 90, 270, 16) * [hl / (hh / 2), 1] + [hl - hl * hl / (hh / 2), 0],
                                  [[hl, -hh / 2], [hl, hh / 2]]]))
    pitch = S * _u(rng, 0.05, 0.08)
    n = int((S * 0.85 - hl) / pitch)
    top = [[hl, -sw / 2]]
    for i in range(n):
        x = hl + i * pitch
        top += [[x + pitch * 0.5, -sw / 2 - sw * 0.18], [x + pitch, -sw / 2]]
    bot = [[x, -y] for x, y in top]
    s.poly("cyl", np.concatenate([top, [[S, 0.0]], bot[::-1]]))
    for i in range(n):
        x = hl + i * pitch
        s.line("groove", np.array([[x, -sw / 2], [x + pitch * 0.5, sw / 2]]), max(1.0, pitch * 0.25), 0.8)
    s.line("groove", np.array([[hl * 0.25, -hh * 0.3], [hl * 0.25, hh * 0.3]]), max(1.0, hl * 0.15), 1.0)
    return s, {"head_len": hl, "head_h": hh, "shank_w": sw, "pitch": pitch}, "metal", ("steel", "nickel", "brass")


def _zipper(rng, S):
    s = Shape()
    tw = S * _u(rng, 0.12, 0.2)
    s.poly("plastic", rect_pts(0, -tw / 2, S, tw / 2))
    pitch, tl = S * _u(rng, 0.02, 0.035), tw * 0.3
    x, i = S * 0.3, 0
    while x < S - pitch:
        y0 = -tl if i % 2 else 0.0
        s.poly("metal", rect_pts(x, y0, x + pitch * 0.7, y0 + tl))
        x, i = x + pitch, i + 1
    body = S * 0.14
    s.poly("metal", np.array([[S * 0.16, -tw * 0.45], [S * 0.16 + body, -tw * 0.3], [S * 0.16 + body, tw * 0.3],
                              [S * 0.16, tw * 0.45]]))
    pull = S * _u(rng, 0.14, 0.2)
    s.poly("metal", rounded_rect_pts(S * 0.17 - pull / 2, 0, pull / 2, tw * 0.3, tw * 0.15))
    s.poly("cut", rounded_rect_pts(S * 0.17 - pull * 0.6, 0, pull * 0.25, tw * 0.1, tw * 0.08))
    return s, {"tape_w": tw, "tooth_pitch": pitch, "pull_len": pull}, "metal+plastic", ("nickel", "brass", "steel")


def _cutlery(rng, S):
    s = Shape()
    kind = str(pick(rng, ["spoon", "fork", "knife"]))
    hw = S * _u(rng, 0.05, 0.08)
    hl = S * _u(rng, 0.55, 0.65)
    s.poly("metal", np.array([[0, -hw * 0.6], [hl, -hw * 0.35], [hl, hw * 0.35], [0, hw * 0.6]]) +
           [[0, 0]] * 4)
    s.poly("metal", ellipse_pts(hw, 0, hw * 1.2, hw * 0.7, 24))
    hr = S - hl
    if kind == "spoon":
        s.poly("metal", ellipse_pts(hl + hr * 0.5, 0, hr * 0.5, hr * 0.3, 48))
        s.poly("dimple", ellipse_pts(hl + hr * 0.52, 0, hr * 0.4, hr * 0.22, 48), 0.6)
    elif kind == "fork":
        w = hr * 0.22
        s.poly("metal", np.array([[hl - 2, -hw * 0.35], [hl + hr * 0.45, -w], [S, -w], [S, w],
                                  [hl + hr * 0.45, w], [hl - 2, hw * 0.35]]))
        nt = 4
        for i in range(1, nt):
            y = -w + 2 * w * i / nt
            s.poly("cut", rect_pts(hl + hr * 0.5, y - w * 0.07, S + 1, y + w * 0.07))
    else:
        bw = hr * _u(rng, 0.2, 0.3)
        s.poly("metal", np.array([[hl - 2, -bw / 2], [S - hr * 0.3, -bw / 2], [S - hr * 0.08, -bw * 0.3],
                                  [S, -bw * 0.05], [S - hr * 0.1, bw * 0.25], [hl + hr * 0.15, bw / 2],
                                  [hl - 2, bw / 2]]))
    plastic = rng.random() < 0.3
    if plastic:
        s.poly("plastic", np.array([[0, -hw * 0.75], [hl * 0.8, -hw * 0.5], [hl * 0.8, hw * 0.5], [0, hw * 0.75]]))
    return s, {"utensil": kind, "handle_len": hl, "plastic_handle": bool(plastic)}, \
        "metal+plastic" if plastic else "metal", ("steel", "nickel")


def _key_ring(rng, S):
    s = Shape()
    r = S / 2
    wire = max(1.0, S * _u(rng, 0.04, 0.08))
    s.line("cyl", ellipse_pts(r, 0, r - wire / 2, r - wire / 2, 72), wire, closed=True)
    if rng.random() < 0.8:  # split ring: second coil, slightly inside, over ~300 degrees
        a0 = _u(rng, 0, 360)
        s.line("cyl", _arc(r, 0, r - wire * 1.3, a0, a0 + 300, 60), wire)
    return s, {"diameter": S, "wire": wire}, "metal", ("steel", "nickel", "brass")


def _fob(rng, S):
    s = Shape()
    h = S * _u(rng, 0.3, 0.6)
    shape = str(pick(rng, ["rect", "tear", "oval"]))
    if shape == "rect":
        s.poly("plastic", rounded_rect_pts(S / 2, 0, S / 2, h / 2, h * _u(rng, 0.1, 0.45)))
    elif shape == "oval":
        s.poly("plastic", ellipse_pts(S / 2, 0, S / 2, h / 2, 48))
    else:
        s.poly("plastic", np.concatenate([_arc(h / 2, 0, h / 2, 90, 270, 24), [[S, -h * 0.15], [S, h * 0.15]]]))
    hr = h * _u(rng, 0.1, 0.18)
    eyelet = rng.random() < 0.4
    if eyelet:
        s.circle("metal", h * 0.45, 0, hr * 1.6)
    s.circle("cut", h * 0.45, 0, hr)
    return s, {"outline": shape, "height": h, "hole_r": hr, "eyelet": bool(eyelet)}, \
        "metal+plastic" if eyelet else "plastic", ("nickel", "brass")


def _lanyard(rng, S):
    s = Shape()
    w = S * _u(rng, 0.07, 0.16)
    n = 8
    xs = np.linspace(w / 2, S - w / 2, n)
    ys = np.cumsum(rng.normal(0, S * 0.02, n))
    s.line("plastic", np.stack([xs, ys - ys.mean()], 1), w)
    return s, {"width": w, "path_y": (ys - ys.mean()).round(2).tolist()}, "plastic", ()


def _bottle_opener(rng, S):
    s = Shape()
    h = S * _u(rng, 0.25, 0.4)
    s.poly("metal", rounded_rect_pts(S / 2, 0, S / 2, h / 2, h * 0.45))
    ow = h * _u(rng, 0.5, 0.7)
    s.poly("cut", rounded_rect_pts(S * 0.78, 0, ow * 0.5, ow * 0.3, ow * 0.2))
    s.poly("cut", rect_pts(S * 0.78 + ow * 0.2, -ow * 0.12, S * 0.92 + 1, ow * 0.05))
    s.circle("cut", h * 0.4, 0, h * 0.15)
    return s, {"height": h, "opening_w": ow}, "metal", ("steel", "nickel", "brass", "coated")


def _usb_stick(rng, S):
    s = Shape()
    cl, cw = S * 0.28, S * _u(rng, 0.2, 0.26)
    bh = cw * _u(rng, 1.1, 1.5)
    s.poly("plastic", rounded_rect_pts((S - cl) / 2, 0, (S - cl) / 2, bh / 2, bh * _u(rng, 0.1, 0.4)))
    s.poly("metal", rect_pts(S - cl - 1, -cw / 2, S, cw / 2))
    for y in (-cw * 0.2, cw * 0.2):
        s.poly("groove", rect_pts(S - cl * 0.55, y - cw * 0.08, S - cl * 0.3, y + cw * 0.08))
    s.circle("cut", bh * 0.35, 0, bh * 0.12)
    return s, {"connector_len": cl, "body_h": bh}, "metal+plastic", ("steel", "nickel")


def _ball_chain(rng, S):
    """A ball chain (the bead chain of many key rings and tags): metal beads on a thin wire along a
    gently curved path; dark gaps between bright beads, a thin periodic metal outline, not a key."""
    s = Shape()
    r = max(1.5, S * _u(rng, 0.012, 0.03))  # bead radius, px
    pitch = r * _u(rng, 2.2, 2.8)
    amp, freq, phase = S * _u(rng, 0.0, 0.12), _u(rng, 0.5, 2.0), _u(rng, 0.0, 2 * math.pi)
    t = np.linspace(0.0, 1.0, 96)
    path = np.stack([r + t * (S - 2 * r), amp * np.sin(math.pi * freq * t + phase)], 1)
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(path, axis=0).T))])
    at = np.arange(0.0, arc[-1] + 1e-6, pitch)
    beads = np.stack([np.interp(at, arc, path[:, 0]), np.interp(at, arc, path[:, 1])], 1)
    s.line("cyl", path, max(1.0, r * 0.5))
    for x, y in beads:
        s.line("cyl", np.array([[x, y], [x + 0.01, y]]), 2 * r)
    return s, {"bead_r": r, "pitch": pitch, "n_beads": int(len(beads)), "amplitude": amp}, "metal", \
        ("steel", "nickel", "brass")


_METAL_ON_TOP = ("zipper", "fob", "usb_stick")

DISTRACTOR_KINDS = {
    "coin": _coin, "paper_clip": _paper_clip, "screw": _screw, "zipper": _zipper, "cutlery": _cutlery,
    "key_ring": _key_ring, "fob": _fob, "lanyard": _lanyard, "bottle_opener": _bottle_opener,
    "usb_stick": _usb_stick, "ball_chain": _ball_chain,
}


def render_distractor(rng: np.random.Generator, kind: str, *, size_px: float, angle_deg: float, light_dir,
                      shading: bool = True, env: np.ndarray | PreparedEnv | None = None) -> tuple[np.ndarray, dict]:
    """Render one distractor.

    Args:
        rng: ``np.random.Generator``, the only randomness source.
        kind: a name in ``DISTRACTOR_KINDS``.
        size_px: long-axis length before rotation, px (8..4096).
        angle_deg: counter-clockwise rotation on screen, degrees.
        light_dir: (3,) light direction in image coordinates (x right, y down, z toward camera).
        shading: False -> flat material colours.
        env: optional uint8 (h, w, 3) RGB reflection environment or a prepared one (see
            ``ProceduralKeys``).

    Returns:
        rgba uint8 (H, W, 4) straight alpha, and a JSON-serialisable meta (``kind``, ``params``,
        ``material``, ``plastic``). The whole object is background (not key).

    Raises:
        ValueError: unknown kind (lists the valid names) or size out of range.
    """
    if kind not in DISTRACTOR_KINDS:
        raise ValueError(f"unknown distractor kind {kind!r}; valid kinds: {sorted(DISTRACTOR_KINDS)}")
    S = float(size_px)
    if not math.isfinite(S) or S < 8 or S > 4096:
        raise ValueError(f"size_px must be in [8, 4096] px, got {size_px!r}")
    shape, params, mats, families = DISTRACTOR_KINDS[kind](rng, S)
    metal = sample_material(rng, str(pick(rng, families))) if "metal" in mats else None
    plastic = sample_plastic(rng, dark_p=0.35) if "plastic" in mats else None
    rgba, _, info = render_shape(rng, shape, length_px=S, angle_deg=float(angle_deg), light_dir=light_dir, env=env,
                                 shading=bool(shading), metal=metal, plastic=plastic, side_p=0.5,
                                 metal_on_top=kind in _METAL_ON_TOP)
    meta = {"kind": kind, "params": jsonable(params), "material": jsonable(metal), "plastic": jsonable(plastic),
            "size_px": round(S, 3), "angle_deg": round(float(angle_deg), 3),
            "render": jsonable({k: v for k, v in info.items() if k != "points"})}
    return rgba, meta


def render_distractor_asset(rng: np.random.Generator, kind: str, *, size_px: float, angle_deg: float, light_dir,
                            shading: bool = True, env: np.ndarray | PreparedEnv | None = None, bank_seed: int = 0,
                            bank_size: int = 256, cache: LRUCache | None = None
                            ) -> tuple[np.ndarray, dict, np.ndarray, tuple[int, int]]:
    """:func:`render_distractor` from the asset bank: the shape (parameters, side wall, relief) of
    asset ``(bank_seed, kind, id, size bucket)`` is cached, with ``id`` drawn from ``rng`` in
    ``[0, bank_size)``; material, textures and brightness are drawn from ``rng``. ``cache`` (the
    renderer's ``asset_cache``) keeps the shapes; None builds them afresh (same pixels).

    Returns:
        rgba uint8 (h, w, 4) straight alpha in CANONICAL orientation at the bucket size, meta (plus
        ``asset``), the float64 (2, 3) affine that rotates it by ``angle_deg`` and scales it to
        ``size_px``, and the (h, w) of the box the affine maps into.

    Raises:
        ValueError: unknown kind, size out of range, or ``bank_size < 1``.
    """
    if kind not in DISTRACTOR_KINDS:
        raise ValueError(f"unknown distractor kind {kind!r}; valid kinds: {sorted(DISTRACTOR_KINDS)}")
    S = float(size_px)
    if not math.isfinite(S) or S < 8 or S > 4096:
        raise ValueError(f"size_px must be in [8, 4096] px, got {size_px!r}")
    shading = bool(shading)
    aid, k, Sb = draw_asset(rng, bank_size, S, 8.0)

    def build():
        g = asset_rng(bank_seed, "distractor", kind, aid, k)
        shape, params, mats, families = DISTRACTOR_KINDS[kind](g, Sb)
        relief = build_relief(g, shape, length_px=Sb, angle_deg=0.0, has_metal="metal" in mats,
                              has_plastic="plastic" in mats, normals=shading, side_p=0.5,
                              metal_on_top=kind in _METAL_ON_TOP)
        return relief.compact(), surface_detail(g, relief, length_px=Sb), jsonable(params), families

    relief, detail, params, families = cached_asset(cache, (int(bank_seed), "distractor", kind, shading, aid, k), build)
    metal = sample_material(rng, str(pick(rng, families))) if relief.has_metal else None
    plastic = sample_plastic(rng, dark_p=0.35) if relief.has_plastic else None
    rgba, _, info = shade_relief(rng, relief, length_px=Sb, light_dir=light_dir, env=env, shading=shading,
                                 metal=metal, plastic=plastic, normal_rotation_deg=float(angle_deg), detail=detail)
    affine, out_hw = canonical_affine(rgba.shape[:2], float(angle_deg), S / Sb)
    meta = {"kind": kind, "params": fresh_copy(params), "material": jsonable(metal), "plastic": jsonable(plastic),
            "size_px": round(S, 3), "angle_deg": round(float(angle_deg), 3),
            "render": CleanDict(side_px=info["side_px"], bevel_px=info["bevel_px"]),
            "asset": CleanDict(bank_seed=int(bank_seed), id=aid, bucket_px=round(Sb, 3))}
    return rgba, meta, affine, out_hw
