"""2D outlines and the rasteriser that turns them into 2.5D layer maps.

A *shape* is a small drawing program in a canonical frame (pixels, object long axis along +x,
y down). :func:`rasterize` rotates it counter-clockwise by ``angle_deg`` and draws every primitive
straight into a tightly sized output canvas with OpenCV's anti-aliased polygon filler
(``cv2.fillPoly(..., cv2.LINE_AA, shift=4)``: 1/16 px vertex precision), so no resampling of
the finished cut-out is needed and the edges stay sharp. Layers (uint8 coverage, 0..255):

- ``metal``: flat metal plate (bevelled edges), ``cyl``: round metal parts (wire, shank, ring),
- ``plastic``: plastic/rubber/fabric parts (drawn on top of the metal; NOT key),
- ``cut``: holes and slots, removed from every other layer (see-through),
- ``groove`` / ``raise`` / ``dimple``: relief on the metal (value = relative depth/height).
"""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np

__all__ = [
    "LAYERS", "Shape", "Raster", "rasterize", "ellipse_pts", "rounded_rect_pts", "regular_polygon_pts",
    "flower_pts", "rect_pts",
]

LAYERS = ("metal", "cyl", "plastic", "cut", "groove", "raise", "dimple")
_SHIFT = 4
_ONE = 1 << _SHIFT


def ellipse_pts(cx: float, cy: float, a: float, b: float, n: int = 48, rot: float = 0.0) -> np.ndarray:
    """(n, 2) float32 points of an ellipse with half-axes ``a`` (x) and ``b`` (y), rotated ``rot`` rad."""
    ct, st = _unit_circle(int(n))
    x, y = a * ct, b * st
    c, s = math.cos(rot), math.sin(rot)
    out = np.empty((len(ct), 2), np.float32)  # == np.stack(...).astype(np.float32), fewer temporaries
    out[:, 0] = cx + c * x - s * y
    out[:, 1] = cy + s * x + c * y
    return out


@functools.lru_cache(maxsize=256)
def _unit_circle(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(cos t, sin t) float64 (n,) for t = linspace(0, 2 pi, n, endpoint=False); cached per process,
    read-only (deterministic in n, so caching never changes results)."""
    t = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
    c, s = np.cos(t), np.sin(t)
    c.flags.writeable = False
    s.flags.writeable = False
    return c, s


@functools.lru_cache(maxsize=64)
def _quarter_arc(t0: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(cos t, sin t) for t = linspace(t0, t0 + pi/2, n); cached per process, read-only."""
    t = np.linspace(t0, t0 + 0.5 * math.pi, n)
    c, s = np.cos(t), np.sin(t)
    c.flags.writeable = False
    s.flags.writeable = False
    return c, s


def rect_pts(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """(4, 2) float32 corners of an axis-aligned rectangle."""
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)


def rounded_rect_pts(cx: float, cy: float, a: float, b: float, r: float, n_corner: int = 8) -> np.ndarray:
    """Rounded rectangle centred at (cx, cy), half-extents a, b, corner radius r (clipped)."""
    r = float(min(max(r, 0.0), a, b))
    pts = []
    for qx, qy, t0 in ((1, 1, 0.0), (-1, 1, 0.5 * math.pi), (-1, -1, math.pi), (1, -1, 1.5 * math.pi)):
        ox, oy = cx + qx * (a - r), cy + qy * (b - r)
        ct, st = _quarter_arc(t0, int(n_corner))
        pts.append(np.stack([ox + r * ct, oy + r * st], 1))
    return np.concatenate(pts).astype(np.float32)


def regular_polygon_pts(cx: float, cy: float, a: float, b: float, k: int, rot: float = 0.0) -> np.ndarray:
    """Regular k-gon stretched to half-extents a, b."""
    t = rot + np.arange(k) * 2 * math.pi / k
    return np.stack([cx + a * np.cos(t), cy + b * np.sin(t)], 1).astype(np.float32)


def flower_pts(cx: float, cy: float, a: float, b: float, lobes: int, depth: float, n: int = 96) -> np.ndarray:
    """Decorative polar outline r(t) = 1 + depth*cos(lobes*t), normalised to half-extents a, b."""
    t = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
    r = (1.0 + depth * np.cos(lobes * t)) / (1.0 + depth)
    return np.stack([cx + a * r * np.cos(t), cy + b * r * np.sin(t)], 1).astype(np.float32)


class Shape:
    """A list of drawing operations in the canonical frame (units: output pixels).

    Ops are drawn in insertion order per layer; ``value`` in [0, 1] is the coverage/relief level.
    """

    def __init__(self) -> None:
        self.ops: list[tuple] = []

    def poly(self, layer: str, pts: np.ndarray, value: float = 1.0) -> None:
        """Filled polygon (N, 2)."""
        self.ops.append((layer, "poly", np.asarray(pts, np.float32), float(value)))

    def line(self, layer: str, pts: np.ndarray, thickness: float, value: float = 1.0, closed: bool = False) -> None:
        """Thick anti-aliased polyline (round caps)."""
        self.ops.append((layer, "line", np.asarray(pts, np.float32), float(value), float(thickness), bool(closed)))

    def circle(self, layer: str, cx: float, cy: float, r: float, value: float = 1.0) -> None:
        """Filled circle (as a polygon so it stays round under rotation)."""
        n = int(min(max(r * 1.2, 16), 64))
        self.poly(layer, ellipse_pts(cx, cy, r, r, n), value)

    def bounds(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) of every visible primitive in the canonical frame."""
        xs, ys = [], []
        for op in self.ops:
            if op[0] in ("cut", "groove", "raise", "dimple"):
                continue
            pts = op[2]
            pad = op[4] / 2 if op[1] == "line" else 0.0
            xs += [pts[:, 0].min() - pad, pts[:, 0].max() + pad]
            ys += [pts[:, 1].min() - pad, pts[:, 1].max() + pad]
        if not xs:
            raise ValueError("shape has no visible primitive (metal, cyl or plastic)")
        return float(min(xs)), float(min(ys)), float(max(xs)), float(max(ys))


class Raster:
    """Result of :func:`rasterize`: uint8 layer maps (H, W) plus the canonical->output affine."""

    def __init__(self, maps: dict[str, np.ndarray], matrix: np.ndarray, size: tuple[int, int]) -> None:
        self.maps = maps
        self.matrix = matrix  # (2, 3) float64, canonical -> output pixel coordinates
        self.size = size  # (h, w)

    def to_out(self, pts) -> np.ndarray:
        """Map canonical (N, 2) points to output pixel coordinates."""
        p = np.asarray(pts, np.float64).reshape(-1, 2)
        return p @ self.matrix[:, :2].T + self.matrix[:, 2]

    def get(self, layer: str) -> np.ndarray | None:
        return self.maps.get(layer)


def rotation_matrix(angle_deg: float) -> np.ndarray:
    """2x2 rotation that turns +x counter-clockwise on screen (image y axis points down)."""
    a = math.radians(angle_deg)
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, s], [-s, c]], np.float64)


def rasterize(shape: Shape, angle_deg: float, margin: int) -> Raster:
    """Draw ``shape`` rotated by ``angle_deg`` (CCW, degrees) into a tight canvas.

    Args:
        shape: the drawing program.
        angle_deg: rotation in degrees, counter-clockwise on screen.
        margin: empty border in pixels kept around the object (room for blur and side walls).

    Returns:
        :class:`Raster` with one uint8 (H, W) map per used layer (values 0..255, anti-aliased).
    """
    r = rotation_matrix(angle_deg)
    ops = shape.ops
    if not ops:
        shape.bounds()  # raises the "no visible primitive" error
    # all vertices in one array: bounds and the rotation run once per shape, not once per primitive
    pts_all = np.concatenate([op[2] for op in ops])
    counts = np.array([len(op[2]) for op in ops])
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    vis = np.array([op[0] not in ("cut", "groove", "raise", "dimple") for op in ops])
    if not vis.any():
        raise ValueError("shape has no visible primitive (metal, cyl or plastic)")
    pad = np.array([op[4] / 2 if op[1] == "line" else 0.0 for op in ops])
    mins = np.minimum.reduceat(pts_all, starts, axis=0)[vis].astype(np.float64) - pad[vis, None]
    maxs = np.maximum.reduceat(pts_all, starts, axis=0)[vis].astype(np.float64) + pad[vis, None]
    x0, y0 = float(mins[:, 0].min()), float(mins[:, 1].min())
    x1, y1 = float(maxs[:, 0].max()), float(maxs[:, 1].max())
    corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]) @ r.T
    lo = np.floor(corners.min(0)) - margin
    hi = np.ceil(corners.max(0)) + margin
    w, h = int(hi[0] - lo[0]) + 1, int(hi[1] - lo[1]) + 1
    m = np.concatenate([r, -lo[:, None]], 1)
    px = pts_all[:, 0].astype(np.float64)
    py = pts_all[:, 1].astype(np.float64)
    ipts_all = np.empty((len(pts_all), 2), np.int32)
    ipts_all[:, 0] = np.round((px * r[0, 0] + py * r[0, 1] - lo[0]) * _ONE)
    ipts_all[:, 1] = np.round((px * r[1, 0] + py * r[1, 1] - lo[1]) * _ONE)
    maps: dict[str, np.ndarray] = {}
    for op, s0, n in zip(ops, starts.tolist(), counts.tolist()):
        layer = op[0]
        img = maps.get(layer)
        if img is None:
            img = maps[layer] = np.zeros((h, w), np.uint8)
        ipts = ipts_all[s0:s0 + n]
        val = int(round(min(max(op[3], 0.0), 1.0) * 255))
        if op[1] == "poly":
            cv2.fillPoly(img, [ipts], val, cv2.LINE_AA, _SHIFT)
        else:
            th = max(1, int(round(op[4])))
            if op[4] < 1.0:
                val = int(round(val * op[4]))
            cv2.polylines(img, [ipts], op[5], val, th, cv2.LINE_AA, _SHIFT)
    return Raster(maps, m, (h, w))
