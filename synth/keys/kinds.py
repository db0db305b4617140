"""Key outlines: one builder per key kind, canonical frame (bow at x~0, tip at x = L, axis y = 0).

Every builder is ``build(rng, L) -> (Shape, params, points, has_plastic)``: ``params`` holds every
sampled shape parameter (JSON-serialisable), ``points`` named canonical points (``"hole"``).
Proportions follow common key blanks (e.g. a Yale-type house key: blade ~0.55 L, blade width
~0.14 L, 5-6 pin-tumbler cuts 90-100 degree V with depth levels; warded keys: round shank, bit with
ward slots; laser-cut car keys: a wavy track milled along the blade).
"""

from __future__ import annotations

import math

import numpy as np

from ..seeding import pick, uniform as _u

from .geometry import Shape, ellipse_pts, flower_pts, rect_pts, regular_polygon_pts, rounded_rect_pts

__all__ = ["KEY_BUILDERS", "BOW_SHAPES"]

BOW_SHAPES = ("round", "oval", "rect", "hexagon", "clover", "pear")


def _bow_pts(name: str, cx: float, cy: float, a: float, b: float, rng) -> tuple[np.ndarray, dict]:
    if name == "round":
        return ellipse_pts(cx, cy, a, a, 64), {}
    if name == "oval":
        return ellipse_pts(cx, cy, a, b, 64), {}
    if name == "rect":
        r = _u(rng, 0.15, 0.6) * min(a, b)
        return rounded_rect_pts(cx, cy, a, b, r), {"corner": r}
    if name == "hexagon":
        rot = float(pick(rng, [0.0, math.pi / 6]))
        return regular_polygon_pts(cx, cy, a, b, 6, rot), {"rot": rot}
    if name == "clover":
        lobes, depth = int(pick(rng, [3, 4, 5])), _u(rng, 0.08, 0.2)
        return flower_pts(cx, cy, a, b, lobes, depth), {"lobes": lobes, "depth": depth}
    # pear: wide at the far end, narrowing toward the blade
    t = np.linspace(0, 2 * math.pi, 64, endpoint=False)
    k = _u(rng, 0.2, 0.4)
    x, y = np.cos(t), np.sin(t) * (1.0 - k * (np.cos(t) + 1) / 2)
    return np.stack([cx + a * x, cy + b * y], 1).astype(np.float32), {"taper": k}


def _bitting(rng, x0: float, x1: float, top: float, bw: float, n: int, depth_range) -> tuple[np.ndarray, dict]:
    """Top edge y(x) of a pin-tumbler blade: V-valleys (slope ~1.1, small flat) at n cut positions."""
    pitch = (x1 - x0) / (n + 0.3)
    pos = x0 + pitch * (0.75 + np.arange(n))
    levels = rng.integers(0, 8, n)
    depths = bw * (depth_range[0] + (depth_range[1] - depth_range[0]) * levels / 7.0)
    slope, flat = _u(rng, 0.9, 1.4), pitch * _u(rng, 0.04, 0.15)
    xs = np.linspace(x0, x1, 120)
    cut = np.max(np.clip(depths[:, None] - slope * np.maximum(np.abs(xs[None] - pos[:, None]) - flat, 0), 0, None), 0)
    pts = np.stack([xs, top + cut], 1)
    return pts, {"cut_x": pos.round(2).tolist(), "cut_levels": levels.tolist(), "cut_depths": depths.round(2).tolist(),
                 "cut_slope": slope}


def _grooves(rng, s: Shape, x0: float, x1: float, bw: float, n_max: int = 3) -> list:
    out = []
    for _ in range(int(rng.integers(1, n_max + 1))):
        yc, w = _u(rng, -0.3, 0.35) * bw, _u(rng, 0.08, 0.2) * bw
        xe = x1 - _u(rng, 0.0, 0.08) * (x1 - x0)
        s.poly("groove", np.array([[x0, yc - w / 2], [xe, yc - w / 2], [xe + w, yc + w / 2], [x0, yc + w / 2]]),
               _u(rng, 0.6, 1.0))
        out.append([round(yc, 2), round(w, 2)])
    return out


def _emboss(rng, s: Shape, cx: float, cy: float, w: float, h: float) -> int:
    """A few short raised/recessed strokes: a brand name or logo on the bow."""
    n = int(rng.integers(3, 7))
    layer = "raise" if rng.random() < 0.5 else "groove"
    for i in range(n):
        x = cx - w / 2 + (i + 0.5) * w / n
        pts = np.array([[x + _u(rng, -0.3, 0.3) * w / n, cy + _u(rng, -0.5, 0.5) * h] for _ in range(3)])
        s.line(layer, pts, max(1.0, 0.12 * w / n), 0.6)
    return n


def _house(rng, L: float, *, padlock: bool = False):
    s, p = Shape(), {}
    bow_len = L * (_u(rng, 0.38, 0.48) if padlock else _u(rng, 0.28, 0.4))
    bw = L * (_u(rng, 0.17, 0.23) if padlock else _u(rng, 0.12, 0.17))
    bow = str(pick(rng, BOW_SHAPES))
    a = bow_len / 2
    b = a * (1.0 if bow == "round" else _u(rng, 0.8, 1.25))
    b = max(b, bw * 1.1)
    pts, extra = _bow_pts(bow, a, 0.0, a, b, rng)
    s.poly("metal", pts)
    # neck + shoulder (the stop on the bitting side, top)
    xs = bow_len + L * _u(rng, 0.02, 0.06)
    sh, sb = bw * _u(rng, 0.1, 0.35), bw * _u(rng, 0.0, 0.15)
    s.poly("metal", rect_pts(bow_len * 0.75, -bw / 2 - sh, xs, bw / 2 + sb))
    tip_len = L * _u(rng, 0.05, 0.1)
    n_cuts = int(rng.integers(3, 6)) if padlock else int(rng.integers(5, 7))
    top, bp = _bitting(rng, xs, L - tip_len, -bw / 2, bw, n_cuts, (0.08, 0.5))
    tip_y = bw * _u(rng, -0.05, 0.3)
    bot_notch = rng.random() < 0.5
    bottom = [[L - tip_len * _u(rng, 0.8, 1.6), bw / 2], [xs, bw / 2]]
    if bot_notch:
        nx = xs + (L - xs) * _u(rng, 0.15, 0.6)
        nd = bw * _u(rng, 0.06, 0.15)
        bottom = [bottom[0], [nx + nd, bw / 2], [nx, bw / 2 - nd], [nx - nd, bw / 2], bottom[1]]
    blade = np.concatenate([[[bow_len * 0.9, -bw / 2]], top, [[L, tip_y]], bottom, [[bow_len * 0.9, bw / 2]]])
    s.poly("metal", blade)
    p["grooves"] = _grooves(rng, s, xs, L - tip_len * 0.5, bw)
    # hole
    hx, hy = a * _u(rng, 0.45, 0.7), b * _u(rng, -0.08, 0.08)
    hr = min(a, b) * _u(rng, 0.2, 0.36)
    if rng.random() < 0.4:  # raised rim along the bow outline
        s.line("raise", (pts - [a, 0]) * 0.86 + [a, 0], max(1.0, 0.05 * bow_len), 0.8, closed=True)
        p["bow_rim"] = True
    if rng.random() < 0.6:
        p["emboss_strokes"] = _emboss(rng, s, a * 1.3, 0.0, a * 0.6, b * 0.35)
    head = rng.random() < (0.12 if padlock else 0.28)
    if head:
        hpts, _ = _bow_pts(str(pick(rng, ["oval", "rect", "pear"])), a * 0.98, 0.0, a * 1.1, b * 1.12, rng)
        s.poly("plastic", hpts)
        s.poly("plastic", rect_pts(a, -bw / 2 - sh * 0.9, bow_len + (xs - bow_len) * 0.4, bw / 2 + sb * 0.9))
    s.circle("cut", hx, hy, hr)
    p.update(bow_shape=bow, bow_len=bow_len, bow_h=2 * b, bow_extra=extra, blade_w=bw, shoulder_x=xs,
             shoulder_h=sh, tip_len=tip_len, tip_y=tip_y, bottom_notch=bool(bot_notch), n_cuts=n_cuts,
             hole_r=hr, plastic_head=bool(head), **bp)
    return s, p, {"hole": (hx, hy)}, head


def _padlock(rng, L):
    return _house(rng, L, padlock=True)


def _dimple(rng, L):
    s, p = Shape(), {}
    head_len = L * _u(rng, 0.3, 0.4)
    a, b = head_len / 2, head_len / 2 * _u(rng, 0.85, 1.15)
    bw = L * _u(rng, 0.17, 0.22)
    bow = str(pick(rng, ["rect", "oval", "round", "hexagon"]))
    pts, extra = _bow_pts(bow, a, 0.0, a, b, rng)
    s.poly("metal", pts)
    xs = head_len + L * _u(rng, 0.03, 0.07)
    s.poly("metal", rect_pts(head_len * 0.8, -bw / 2 - bw * 0.15, xs, bw / 2 + bw * 0.15))
    tip = L * _u(rng, 0.05, 0.1)
    tw = bw * _u(rng, 0.2, 0.5)
    s.poly("metal", np.array([[head_len * 0.9, -bw / 2], [L - tip, -bw / 2], [L, -tw / 2], [L, tw / 2],
                              [L - tip, bw / 2], [head_len * 0.9, bw / 2]]))
    rows = [-0.23, 0.23] + ([0.0] if rng.random() < 0.3 else [])
    dimples = []
    for ry in rows:
        n = int(rng.integers(4, 8))
        for i in range(n):
            if rng.random() < 0.15:
                continue
            x = xs + (L - tip - xs) * (i + 0.6) / (n + 0.4)
            r = bw * _u(rng, 0.06, 0.13)
            s.circle("dimple", x, ry * bw, r, _u(rng, 0.6, 1.0))
            dimples.append([round(x, 2), round(ry * bw, 2), round(r, 2)])
    if rng.random() < 0.5:
        s.poly("groove", rect_pts(xs, -bw * 0.04, L - tip, bw * 0.04), 0.7)
    hx, hy, hr = a * _u(rng, 0.4, 0.65), 0.0, min(a, b) * _u(rng, 0.18, 0.3)
    head = rng.random() < 0.35
    if head:
        hp, _ = _bow_pts(str(pick(rng, ["rect", "oval"])), a, 0.0, a * 1.08, b * 1.1, rng)
        s.poly("plastic", hp)
    s.circle("cut", hx, hy, hr)
    p.update(bow_shape=bow, bow_extra=extra, head_len=head_len, blade_w=bw, shoulder_x=xs, tip_len=tip,
             tip_w=tw, dimples=dimples, hole_r=hr, plastic_head=bool(head))
    return s, p, {"hole": (hx, hy)}, head


def _car(rng, L):
    s, p = Shape(), {}
    variant = str(pick(rng, ["laser", "edge"]))
    head = rng.random() < 0.8
    head_len = L * (_u(rng, 0.35, 0.5) if head else _u(rng, 0.28, 0.36))
    a, b = head_len / 2, head_len / 2 * _u(rng, 0.6, 0.95)
    bw = L * _u(rng, 0.12, 0.17)
    bow = str(pick(rng, ["rect", "oval", "pear"]))
    pts, extra = _bow_pts(bow, a, 0.0, a, b, rng)
    s.poly("metal", pts if not head else rounded_rect_pts(a * 1.2, 0, a * 0.7, bw * 0.9, bw * 0.3))
    x0 = head_len * 0.85
    tip = L * _u(rng, 0.04, 0.08)
    if variant == "laser":
        s.poly("metal", np.concatenate([rect_pts(x0, -bw / 2, L - tip, bw / 2)[[0, 1]],
                                        ellipse_pts(L - tip, 0, tip, bw / 2, 24)[[18, 20, 22, 0, 2, 4, 6]],
                                        rect_pts(x0, -bw / 2, L - tip, bw / 2)[[2, 3]]]))
        n = int(rng.integers(5, 9))
        xs = np.linspace(x0 + L * 0.04, L - tip * 0.6, n + 1)
        ys = rng.uniform(-0.22, 0.22, n + 1) * bw
        track_w = bw * _u(rng, 0.18, 0.3)
        s.line("groove", np.stack([xs, ys], 1), track_w, 1.0)
        p.update(track_x=xs.round(2).tolist(), track_y=ys.round(2).tolist(), track_w=track_w)
    else:
        n = int(rng.integers(6, 9))
        top, bp = _bitting(rng, x0 + L * 0.05, L - tip, -bw / 2, bw, n, (0.05, 0.3))
        bot = top.copy()
        bot[:, 1] = -bot[:, 1]
        s.poly("metal", np.concatenate([[[x0, -bw / 2]], top, [[L, 0.0]], bot[::-1], [[x0, bw / 2]]]))
        p.update(n_cuts=n, **bp)
        p["grooves"] = _grooves(rng, s, x0 + L * 0.05, L - tip, bw, 2)
    hx, hy, hr = a * _u(rng, 0.25, 0.45), 0.0, min(a, b) * _u(rng, 0.16, 0.26)
    if head:
        hp, _ = _bow_pts(str(pick(rng, ["rect", "oval", "pear"])), a, 0.0, a, b, rng)
        s.poly("plastic", hp)
        if rng.random() < 0.5:  # buttons / logo inset
            s.poly("plastic", ellipse_pts(a * 1.1, 0, a * 0.3, b * 0.35, 32), 1.0)
    s.circle("cut", hx, hy, hr)
    p.update(variant=variant, head_len=head_len, head_h=2 * b, bow_shape=bow, bow_extra=extra, blade_w=bw,
             tip_len=tip, hole_r=hr, plastic_head=bool(head))
    return s, p, {"hole": (hx, hy)}, head


def _tubular(rng, L):
    s, p = Shape(), {}
    r_head = L * _u(rng, 0.2, 0.27)
    sw = L * _u(rng, 0.11, 0.16)
    head = rng.random() < 0.55
    s.circle("metal", r_head, 0.0, r_head)
    x0 = r_head * 1.6
    collar = L * _u(rng, 0.05, 0.1)
    s.poly("cyl", rect_pts(x0, -sw * 0.65, x0 + collar, sw * 0.65))
    s.poly("cyl", rect_pts(x0 + collar * 0.9, -sw / 2, L, sw / 2))
    notches = []
    for side in (-1, 1):
        for _ in range(int(rng.integers(1, 4))):
            ln, d = L * _u(rng, 0.04, 0.14), sw * _u(rng, 0.12, 0.3)
            w_ = L * _u(rng, 0.025, 0.045)
            xe = L - ln
            y0 = side * sw / 2
            s.poly("cut", rect_pts(xe - w_, min(y0, y0 - side * d), xe, max(y0, y0 - side * d)))
            notches.append([side, round(ln, 2), round(d, 2), round(w_, 2)])
    s.poly("cut", rect_pts(L - L * 0.015, -sw * 0.2, L + 1, sw * 0.2))
    hx, hy, hr = r_head * _u(rng, 0.5, 0.8), 0.0, r_head * _u(rng, 0.25, 0.4)
    if head:
        s.poly("plastic", ellipse_pts(r_head, 0.0, r_head * 1.08, r_head * 1.08, 64))
        s.poly("plastic", rect_pts(r_head, -sw * 0.75, x0 + collar * 0.3, sw * 0.75))
    else:
        s.poly("metal", rect_pts(r_head, -sw * 0.5, x0 + collar * 0.5, sw * 0.5))
    s.circle("cut", hx, hy, hr)
    p.update(head_r=r_head, shaft_w=sw, collar=collar, notches=notches, hole_r=hr, plastic_head=bool(head))
    return s, p, {"hole": (hx, hy)}, head


def _warded(rng, L):
    s, p = Shape(), {}
    style = str(pick(rng, ["ring", "oval_ring", "trefoil", "loop"]))
    rb = L * _u(rng, 0.1, 0.16)
    wire = rb * _u(rng, 0.3, 0.5)
    sw = L * _u(rng, 0.045, 0.075)
    hole = (rb, 0.0)
    if style == "ring":
        s.line("cyl", ellipse_pts(rb, 0, rb - wire / 2, rb - wire / 2, 64), wire, closed=True)
        xb = 2 * rb - wire * 0.3
    elif style == "oval_ring":
        bb = rb * _u(rng, 0.7, 0.9)
        s.line("cyl", ellipse_pts(rb * 1.2, 0, rb * 1.2 - wire / 2, bb - wire / 2, 64), wire, closed=True)
        hole, xb = (rb * 1.2, 0.0), 2.4 * rb - wire * 0.3
    elif style == "trefoil":
        rr = rb * 0.55
        for cx, cy in ((rr, 0.0), (rr * 2.2, -rr * 1.05), (rr * 2.2, rr * 1.05)):
            s.line("cyl", ellipse_pts(cx, cy, rr - wire * 0.3, rr - wire * 0.3, 48), wire * 0.6, closed=True)
        hole, xb = (rr, 0.0), rr * 3.2
    else:  # loop: flat decorated plate bow with a round hole
        pts, _ = _bow_pts("clover", rb, 0, rb, rb * 1.1, rng)
        s.poly("metal", pts)
        xb = 2 * rb - wire * 0.3
    s.poly("cyl", rect_pts(xb - wire, -sw / 2, L, sw / 2))
    cl = L * _u(rng, 0.02, 0.05)
    s.poly("cyl", rect_pts(xb + L * 0.02, -sw * 0.85, xb + L * 0.02 + cl, sw * 0.85))
    bit_len, bit_h = L * _u(rng, 0.09, 0.15), L * _u(rng, 0.1, 0.2)
    bx1 = L - L * _u(rng, 0.0, 0.04)
    s.poly("metal", rect_pts(bx1 - bit_len, sw * 0.3, bx1, sw / 2 + bit_h))
    wards = []
    for _ in range(int(rng.integers(1, 4))):
        wx, ww = bx1 - bit_len * _u(rng, 0.2, 0.8), bit_len * _u(rng, 0.08, 0.18)
        wd = bit_h * _u(rng, 0.2, 0.7)
        s.poly("cut", rect_pts(wx - ww / 2, sw / 2 + bit_h - wd, wx + ww / 2, sw / 2 + bit_h + 1))
        wards.append([round(wx, 2), round(ww, 2), round(wd, 2)])
    if rng.random() < 0.5:
        wy = sw / 2 + bit_h * _u(rng, 0.3, 0.7)
        s.poly("cut", rect_pts(bx1 - bit_len * 0.25, wy - bit_h * 0.08, bx1 + 1, wy + bit_h * 0.08))
        wards.append([round(bx1, 2), -1.0, round(wy, 2)])
    hr = rb - wire if style in ("ring", "oval_ring") else rb * 0.4
    if style == "loop":
        s.circle("cut", rb, 0.0, hr)
    p.update(bow_style=style, bow_r=rb, wire=wire, shank_w=sw, collar=cl, bit_len=bit_len, bit_h=bit_h,
             wards=wards, hole_r=hr, plastic_head=False)
    return s, p, {"hole": hole}, False


KEY_BUILDERS = {"house": _house, "padlock": _padlock, "dimple": _dimple, "tubular": _tubular, "car": _car,
                "warded": _warded}
