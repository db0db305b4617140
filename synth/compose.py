"""Layered alpha compositing with per-key visible-coverage tracking, and cast/contact shadows.

All work is done on each layer's bounding box, never the whole frame. Layers carry PREMULTIPLIED
float32 colour (so bilinear warps do not leave dark fringes) and float32 alpha in [0, 1].
Porter-Duff "over" (Porter & Duff 1984): C = C_layer + (1 - a) * C_below.
Each key's visible coverage is its alpha times the product of (1 - alpha) of everything pasted
later; the label is that coverage thresholded at 0.5.

Speed: "over", shadow darkening and premultiplication run as small compiled loops (Numba) on the
layer's box: one pass each instead of 3-4 NumPy/OpenCV calls (with their per-call overhead, which
dominated for the 5-10 small layers of a sample). They do the same float32 operations in the same
order, so the bytes equal the NumPy expressions given in their docstrings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .compiled import kernel

__all__ = ["Layer", "Canvas", "rgba_to_layer", "warp_layer", "shadow_alpha", "cast_shadow", "rect_to_quad", "matmul3"]


@dataclass
class Layer:
    """A cut-out: premultiplied colour (h, w, 3) float32, alpha (h, w) float32 in [0, 1], top-left
    (x0, y0) in frame pixels (may be negative / beyond the frame). Premultiplied means ``rgb`` is 0
    wherever ``alpha`` is 0 (``Canvas.paste`` skips those pixels).

    ``rgba`` is optional (h, w, 4) float32 storage that ``rgb`` and ``alpha`` are views of
    (:meth:`from_rgba`, what :func:`rgba_to_layer` and :func:`warp_layer` make): a warp then
    resamples all four channels in one OpenCV call (~2x cheaper than 3 + 1, same values)."""

    rgb: np.ndarray
    alpha: np.ndarray
    x0: int = 0
    y0: int = 0
    label: np.ndarray | None = None  # key-only coverage (<= alpha), e.g. metal without plastic head
    rgba: np.ndarray | None = None

    @classmethod
    def from_rgba(cls, rgba: np.ndarray, x0: int = 0, y0: int = 0, label: np.ndarray | None = None) -> "Layer":
        """Layer over premultiplied float32 (h, w, 4) storage (colour = ``rgba[..., :3]``, alpha =
        ``rgba[..., 3]``, both views)."""
        return cls(rgba[..., :3], rgba[..., 3], x0, y0, label, rgba)

    @property
    def shape(self):
        return self.alpha.shape


@kernel
def _premultiply(rgba, label, px, lab):
    """px[..., 3] = a = float32(rgba[..., 3]) * float32(1/255), px[..., :3] = float32(rgba[..., :3]) * a;
    lab (when label is not empty) = min(float32(label) * float32(1/255), a)."""
    f = np.float32(1.0 / 255.0)
    has_lab = label.shape[0] > 0
    for y in range(rgba.shape[0]):
        for x in range(rgba.shape[1]):
            al = np.float32(rgba[y, x, 3]) * f
            px[y, x, 3] = al
            px[y, x, 0] = np.float32(rgba[y, x, 0]) * al
            px[y, x, 1] = np.float32(rgba[y, x, 1]) * al
            px[y, x, 2] = np.float32(rgba[y, x, 2]) * al
            if has_lab:
                v = np.float32(label[y, x]) * f
                lab[y, x] = v if v < al else al


@kernel
def _over(dst, rgb, a):
    """Porter-Duff over in place on float32 boxes: dst = dst * (1 - a) + rgb (premultiplied rgb)."""
    one = np.float32(1.0)
    for y in range(a.shape[0]):
        for x in range(a.shape[1]):
            al = a[y, x]
            if al != 0:  # premultiplied colour is 0 there: dst * 1 + 0 == dst
                k = one - al
                dst[y, x, 0] = dst[y, x, 0] * k + rgb[y, x, 0]
                dst[y, x, 1] = dst[y, x, 1] * k + rgb[y, x, 1]
                dst[y, x, 2] = dst[y, x, 2] * k + rgb[y, x, 2]


@kernel
def _darken(dst, alpha, strength, c0, c1, c2):
    """In place: dst[..., k] *= 1 - (strength * alpha) * c_k (float32; c = 1 for an untinted shadow).
    No test for alpha == 0 (a factor of exactly 1 there): the branch-free loop is ~1.4x faster."""
    one = np.float32(1.0)
    for y in range(alpha.shape[0]):
        d, a = dst[y], alpha[y]
        for x in range(alpha.shape[1]):
            s = strength * a[x]
            d[x, 0] *= one - s * c0
            d[x, 1] *= one - s * c1
            d[x, 2] *= one - s * c2


@kernel
def _accumulate_coverage(total, best, owner, cov, oy, ox, kid):
    """Over key ``kid``'s coverage box at (oy, ox) of the union box: ``total += cov``; where ``cov``
    beats ``best`` (strictly), ``best = cov`` and ``owner = kid``."""
    for y in range(cov.shape[0]):
        for x in range(cov.shape[1]):
            c = cov[y, x]
            total[oy + y, ox + x] += c
            if c > best[oy + y, ox + x]:
                best[oy + y, ox + x] = c
                owner[oy + y, ox + x] = kid


@kernel
def _drop_uncovered(total, owner, counts):
    """owner = 0 where total < 0.5; counts[k] = number of pixels owned by k."""
    for y in range(owner.shape[0]):
        for x in range(owner.shape[1]):
            if total[y, x] < 0.5:
                owner[y, x] = 0
            counts[owner[y, x]] += 1


@kernel
def _paint_labels(owner, remap, inst, mask):
    """inst = remap[owner]; mask = inst > 0."""
    for y in range(owner.shape[0]):
        for x in range(owner.shape[1]):
            v = remap[owner[y, x]]
            inst[y, x] = v
            mask[y, x] = 1 if v > 0 else 0


_NO_LABEL = np.zeros((0, 0), np.uint8)
_NO_COVERAGE = np.zeros((0, 0), np.float32)
_UNTINTED = (np.float32(1.0),) * 3


def rgba_to_layer(rgba: np.ndarray, label: np.ndarray | None = None) -> Layer:
    """Straight-alpha RGBA uint8 (h, w, 4) (+ optional uint8 (h, w) label coverage) -> premultiplied
    float Layer: ``a = rgba[..., 3] / 255``, ``rgb = rgba[..., :3] * a`` (float32), label coverage
    ``min(label / 255, a)``. Raises ValueError on bad shapes/dtypes."""
    if rgba.ndim != 3 or rgba.shape[2] != 4 or rgba.dtype != np.uint8:
        raise ValueError(f"cut-out must be uint8 (h, w, 4) straight-alpha RGBA, got {rgba.dtype} {rgba.shape}")
    if label is not None and (label.shape != rgba.shape[:2] or label.dtype != np.uint8):
        raise ValueError(f"label coverage must be uint8 {rgba.shape[:2]} like the cut-out, got {label.dtype} {label.shape}")
    h, w = rgba.shape[:2]
    px = np.empty((h, w, 4), np.float32)
    lab = None if label is None else np.empty((h, w), np.float32)
    _premultiply(rgba, _NO_LABEL if label is None else label, px, _NO_COVERAGE if lab is None else lab)
    return Layer.from_rgba(px, label=lab)


def warp_layer(layer: Layer, M: np.ndarray, out_hw: tuple[int, int]) -> Layer:
    """Warp a layer with a 3x3 projective (or 2x3 affine) matrix into an (h, w) box (INTER_LINEAR)."""
    h, w = out_hw

    def _w(x):
        if M.shape == (2, 3):
            return cv2.warpAffine(x, M, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        return cv2.warpPerspective(x, M, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)

    # bilinear weights are >= 0 and sum to 1, so warped alpha / coverage in [0, 1] stays >= 0;
    # only float rounding can push it a hair above 1
    lab = None if layer.label is None else np.minimum(_w(layer.label), np.float32(1.0))
    if layer.rgba is not None:
        px = _w(layer.rgba)
        np.minimum(px[..., 3], np.float32(1.0), out=px[..., 3])
        return Layer.from_rgba(px, layer.x0, layer.y0, lab)
    return Layer(_w(layer.rgb), np.minimum(_w(layer.alpha), np.float32(1.0)), layer.x0, layer.y0, lab)


def rect_to_quad(w: float, h: float, quad) -> list[list[float]]:
    """3x3 homography (nested lists of floats) taking the rectangle corners (0, 0), (w, 0), (w, h),
    (0, h) to the 4 points ``quad`` [[x, y], ...] in that order (what ``cv2.getPerspectiveTransform``
    solves with an 8x8 system), in closed form: Heckbert's square-to-quad mapping (Fundamentals of
    Texture Mapping, 1989, sec. 2.2.3) after scaling the rectangle to the unit square. Plain floats:
    it runs once per object. Raises ValueError for a degenerate quad or rectangle."""
    if not (w > 0 and h > 0):
        raise ValueError(f"rect_to_quad: the rectangle must have positive sides, got {w!r} x {h!r}")
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = quad
    sx, sy = x0 - x1 + x2 - x3, y0 - y1 + y2 - y3
    if sx == 0.0 and sy == 0.0:  # parallelogram: affine
        g = hh = 0.0
    else:
        dx1, dx2, dy1, dy2 = x1 - x2, x3 - x2, y1 - y2, y3 - y2
        den = dx1 * dy2 - dx2 * dy1
        if den == 0.0:
            raise ValueError(f"rect_to_quad: degenerate quad {quad!r}")
        g = (sx * dy2 - dx2 * sy) / den
        hh = (dx1 * sy - sx * dy1) / den
    return [[(x1 - x0 + g * x1) / w, (x3 - x0 + hh * x3) / h, x0],
            [(y1 - y0 + g * y1) / w, (y3 - y0 + hh * y3) / h, y0],
            [g / w, hh / h, 1.0]]


def matmul3(a, b) -> list[list[float]]:
    """Product of two 3x3 matrices given as nested lists (or a 2x3 affine ``b``, completed with
    the row [0, 0, 1]); plain floats, for per-object transforms."""
    b2 = b[2] if len(b) == 3 else (0.0, 0.0, 1.0)
    return [[r[0] * b[0][k] + r[1] * b[1][k] + r[2] * b2[k] for k in range(3)] for r in a]


def shadow_alpha(alpha: np.ndarray, sigma: float, pad: int) -> np.ndarray:
    """Blurred alpha padded by ``pad`` px on each side (float32); large sigmas are blurred at reduced
    resolution (Gaussian blur is band-limiting) to keep the cost ~constant."""
    a = cv2.copyMakeBorder(alpha, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    if sigma < 0.3:
        return a
    f = 1
    while sigma / f > 3.0 and min(a.shape) // (2 * f) >= 8:
        f *= 2
    if f > 1:
        h, w = a.shape
        small = cv2.resize(a, (max(1, w // f), max(1, h // f)), interpolation=cv2.INTER_AREA)
        small = cv2.GaussianBlur(small, (0, 0), sigma / f)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.GaussianBlur(a, (0, 0), sigma)


def cast_shadow(canvas: "Canvas", layer: Layer, shadow) -> None:
    """Darken ``canvas`` with ``layer``'s sampled shadow (``synth.spec.Shadow``; None: nothing)
    before the layer is pasted: the cast shadow, then the contact shadow at the layer's place."""
    if shadow is None:
        return
    pad = int(math.ceil(3 * shadow.blur_px)) + 1
    dx, dy = shadow.shift
    canvas.darken(shadow_alpha(layer.alpha, shadow.blur_px, pad), int(round(layer.x0 - pad + dx)),
                  int(round(layer.y0 - pad + dy)), shadow.strength, shadow.tint)
    if shadow.contact_blur_px is not None:
        cp = int(math.ceil(3 * shadow.contact_blur_px)) + 1
        canvas.darken(shadow_alpha(layer.alpha, shadow.contact_blur_px, cp), layer.x0 - cp, layer.y0 - cp,
                      shadow.contact_strength)


def _clip(x0, y0, h, w, H, W):
    """Intersection of box (x0, y0, w, h) with the frame -> (frame slice, layer slice) or None."""
    fx0, fy0 = max(0, x0), max(0, y0)
    fx1, fy1 = min(W, x0 + w), min(H, y0 + h)
    if fx1 <= fx0 or fy1 <= fy0:
        return None
    return (slice(fy0, fy1), slice(fx0, fx1)), (slice(fy0 - y0, fy1 - y0), slice(fx0 - x0, fx1 - x0))


class Canvas:
    """The scene being composed: float32 (H, W, 3) image in [0, 255] plus per-key coverage boxes.

    ``paste(layer, key_id)`` composites over; ``key_id > 0`` registers the layer as key
    ``key_id`` (its alpha becomes that key's visible coverage); every paste (key or not) reduces
    the coverage of earlier keys by (1 - alpha). ``darken`` applies a shadow. ``labels()`` builds
    the mask / instance map.
    """

    def __init__(self, background: np.ndarray):
        if background.ndim != 3 or background.shape[2] != 3:
            raise ValueError(f"background must be (H, W, 3), got {background.shape}")
        self.img = background.astype(np.float32, order="C")
        self.H, self.W = background.shape[:2]
        self.cov: dict[int, tuple[int, int, np.ndarray]] = {}  # key_id -> (x0, y0, coverage box)

    def paste(self, layer: Layer, key_id: int = 0) -> bool:
        """Composite ``layer`` over the canvas; returns False when it lies fully outside."""
        h, w = layer.alpha.shape
        r = _clip(layer.x0, layer.y0, h, w, self.H, self.W)
        if r is None:
            return False
        fs, ls = r
        a = layer.alpha[ls]
        _over(self.img[fs], layer.rgb[ls], a)
        fy, fx = fs
        for kid, (kx0, ky0, cov) in self.cov.items():
            kh, kw = cov.shape
            oy0, oy1 = max(fy.start, ky0), min(fy.stop, ky0 + kh)
            ox0, ox1 = max(fx.start, kx0), min(fx.stop, kx0 + kw)
            if oy1 <= oy0 or ox1 <= ox0:
                continue
            cov[oy0 - ky0:oy1 - ky0, ox0 - kx0:ox1 - kx0] *= 1.0 - a[oy0 - fy.start:oy1 - fy.start, ox0 - fx.start:ox1 - fx.start]
        if key_id > 0:
            lab = a if layer.label is None else layer.label[ls]
            self.cov[key_id] = (fx.start, fy.start, lab.copy())
        return True

    def darken(self, alpha: np.ndarray, x0: int, y0: int, strength: float, colour=None) -> None:
        """Multiply the canvas by (1 - strength * alpha) over the box at (x0, y0) (a shadow);
        ``colour`` (3,) tints the shadow (ambient skylight is bluish)."""
        h, w = alpha.shape
        r = _clip(x0, y0, h, w, self.H, self.W)
        if r is None:
            return
        fs, ls = r
        c0, c1, c2 = _UNTINTED if colour is None else (np.float32(v) for v in colour)
        _darken(self.img[fs], alpha[ls].astype(np.float32, copy=False), np.float32(strength), c0, c1, c2)

    def labels(self, ignore_band: bool = False, band_px: int = 1, min_visible_px: int = 1):
        """-> (mask uint8 (H, W) {0,1}[,255], instances uint16 (H, W), {key_id: visible px}).

        A pixel is key where the TOTAL visible key coverage (sum over keys of alpha x the
        transparency of everything pasted later) is >= 0.5; its instance is the key with the largest
        coverage there. Keys with fewer than ``min_visible_px`` pixels are dropped (mask and
        instances 0 there); surviving keys are renumbered 1..n in paste order. With
        ``ignore_band`` the partial-coverage boundary (0.02 < total < 0.98, dilated by
        ``band_px - 1``) becomes 255 in ``mask`` (instances keep their ids).
        """
        H, W = self.H, self.W
        mask = np.zeros((H, W), np.uint8)
        inst = np.zeros((H, W), np.uint16)
        if not self.cov:
            return mask, inst, {}
        # all work on the union box of the key coverage boxes (+ the band dilation reach); outside it
        # total coverage is 0, so the result equals the whole-frame computation
        e = band_px if ignore_band else 0
        bx0 = max(0, min(v[0] for v in self.cov.values()) - e)
        by0 = max(0, min(v[1] for v in self.cov.values()) - e)
        bx1 = min(W, max(v[0] + v[2].shape[1] for v in self.cov.values()) + e)
        by1 = min(H, max(v[1] + v[2].shape[0] for v in self.cov.values()) + e)
        bh, bw = by1 - by0, bx1 - bx0
        total = np.zeros((bh, bw), np.float32)
        best = np.zeros((bh, bw), np.float32)
        owner = np.zeros((bh, bw), np.uint16)
        for kid in sorted(self.cov):
            x0, y0, cov = self.cov[kid]
            _accumulate_coverage(total, best, owner, cov, y0 - by0, x0 - bx0, kid)
        counts_all = np.zeros(max(self.cov) + 1, np.int64)
        _drop_uncovered(total, owner, counts_all)
        counts: dict[int, int] = {}
        remap = np.zeros(len(counts_all), np.uint16)
        new_id = 0
        for kid in sorted(self.cov):
            n = int(counts_all[kid])
            if n >= max(1, min_visible_px):
                new_id += 1
                remap[kid] = new_id
                counts[kid] = n
        ib = inst[by0:by1, bx0:bx1]
        mb = mask[by0:by1, bx0:bx1]
        _paint_labels(owner, remap, ib, mb)
        if ignore_band:
            band = (total > 0.02) & (total < 0.98)
            if band_px > 1:
                band = cv2.dilate(band.astype(np.uint8), np.ones((2 * band_px - 1,) * 2, np.uint8)) > 0
            mb[band] = 255
        return mask, inst, counts
