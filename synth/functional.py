"""Pure image functions used by the effects and the compositor (no randomness inside).

Conventions: images are (H, W, 3) RGB, either uint8 or float32 in [0, 255]; every function
returns a NEW array of the input dtype (uint8 results are rounded and clipped; float32 results are
clipped to [0, 255] only where stated) and never mutates its input. Masks are never touched by
photometric functions. Randomness lives in ``synth.effects`` (parameter sampling); the only
"random" input here is the fixed, seeded noise bank indexed by sampled offsets.
"""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np

from .compiled import kernel

__all__ = [
    "gaussian_blur", "motion_blur", "motion_kernel", "vignette", "lighting_gradient", "noise_bank",
    "vignette_gain", "gradient_gain", "apply_gain", "GAIN_GRID",
    "sensor_noise", "color_transfer", "jpeg", "to_float", "to_uint8",
]


def to_float(img: np.ndarray) -> np.ndarray:
    """uint8/float32 -> float32 copy in [0, 255]."""
    return img.astype(np.float32, copy=True)


_RINT = np.float32(12582912.0)  # 1.5 * 2**23


@kernel
def _rint(t):
    """float32 ``t`` rounded to the nearest integer, half to even, for |t| < 2**22: adding and
    subtracting 1.5 * 2**23 is IEEE round-to-nearest-even. Inlined into the loops below, which it
    lets LLVM vectorise (a call to ``rint`` would not)."""
    return (t + _RINT) - _RINT


@kernel
def _to_uint8_flat(src, out):
    """out = uint8(rint(clip(src, 0, 255))) element-wise (flat float32 -> flat uint8, half to even)."""
    lo, hi = np.float32(0.0), np.float32(255.0)
    for i in range(src.size):
        out[i] = np.uint8(_rint(min(max(src[i], lo), hi)))


def to_uint8(img: np.ndarray) -> np.ndarray:
    """float32 [0, 255] -> uint8 (clipped to [0, 255], rounded half to even)."""
    if img.dtype == np.uint8:
        return img.copy()
    src = np.ascontiguousarray(img, dtype=np.float32)
    out = np.empty(src.shape, np.uint8)
    _to_uint8_flat(src.reshape(-1), out.reshape(-1))
    return out


def gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Defocus approximated by a Gaussian PSF of standard deviation ``sigma`` px (>= 0).

    For sigma > 2 the blur runs at half resolution (blur is band-limiting, so the downsample loses
    nothing visible) and is upsampled with INTER_LINEAR: ~4x cheaper. uint8 input takes OpenCV's
    bit-exact fixed-point Gaussian (same bytes on every CPU; a float ``sepFilter2D`` was 1.4x
    faster but its rounding may follow the CPU's SIMD path).
    """
    if sigma <= 0.05:
        return img.copy()
    H, W = img.shape[:2]
    if sigma > 2.0 and min(H, W) >= 32:
        small = cv2.resize(img, (W // 2, H // 2), interpolation=cv2.INTER_AREA)
        small = cv2.GaussianBlur(small, (0, 0), sigma / 2.0)
        return cv2.resize(small, (W, H), interpolation=cv2.INTER_LINEAR)
    return cv2.GaussianBlur(img, (0, 0), float(sigma))


def motion_kernel(length: float, angle_deg: float) -> np.ndarray:
    """Normalised linear motion-blur kernel (float32, odd side >= 3): an anti-aliased line segment
    of ``length`` px at ``angle_deg`` (counter-clockwise from +x), summing to 1."""
    k = max(3, int(np.ceil(length)) | 1)
    ker = np.zeros((k, k), np.float32)
    c = (k - 1) / 2.0
    t = np.deg2rad(angle_deg)
    dx, dy = np.cos(t) * (length - 1) / 2.0, -np.sin(t) * (length - 1) / 2.0
    s = 16  # sub-pixel shift bits
    p0 = (int(round((c - dx) * s)), int(round((c - dy) * s)))
    p1 = (int(round((c + dx) * s)), int(round((c + dy) * s)))
    cv2.line(ker, p0, p1, 1.0, 1, cv2.LINE_AA, shift=4)
    tot = float(ker.sum())
    if tot <= 0:
        ker[int(c), int(c)] = 1.0
        tot = 1.0
    return ker / tot


def motion_blur(img: np.ndarray, length: float, angle_deg: float) -> np.ndarray:
    """Linear camera-shake blur (convolution with ``motion_kernel``); lengths > 9 px run at half
    resolution with a half-length kernel, then upsample."""
    if length < 1.5:
        return img.copy()
    H, W = img.shape[:2]
    if length > 9 and min(H, W) >= 32:
        small = cv2.resize(img, (W // 2, H // 2), interpolation=cv2.INTER_AREA)
        small = cv2.filter2D(small, -1, motion_kernel(length / 2.0, angle_deg), borderType=cv2.BORDER_REFLECT)
        return cv2.resize(small, (W, H), interpolation=cv2.INTER_LINEAR)
    return cv2.filter2D(img, -1, motion_kernel(length, angle_deg), borderType=cv2.BORDER_REFLECT)


GAIN_GRID = 32  # side of the low-resolution grid smooth gain fields are evaluated on


@functools.lru_cache(maxsize=64)
def _grid_coords(H: int, W: int, g: int = GAIN_GRID) -> tuple[np.ndarray, np.ndarray]:
    """Frame-pixel centres (ys (g,), xs (g,), float32, read-only, memoised per (H, W, g)) of a g x g
    grid as ``cv2.resize`` maps them (x_src = (x_dst + 0.5) * g / W - 0.5), so a field sampled there
    and upsampled with INTER_LINEAR is exact for linear fields (clamped in the outer half cell)."""
    ys = (np.arange(g, dtype=np.float32) + 0.5) * np.float32(H / g) - 0.5
    xs = (np.arange(g, dtype=np.float32) + 0.5) * np.float32(W / g) - 0.5
    ys.flags.writeable = xs.flags.writeable = False
    return ys, xs


@kernel
def _vignette_grid(ys, xs, cy, cx, inv_r, strength, power):
    """(g, g) float32: max(1 - strength * min(r * inv_r, 1.5) ** power, 0), r from (cy, cx) to the
    grid points (ys, xs), in float32 arithmetic (bit-identical to the same NumPy float32 expression)."""
    out = np.empty((ys.size, xs.size), np.float32)
    zero, one, lim = np.float32(0.0), np.float32(1.0), np.float32(1.5)
    for i in range(ys.size):
        dy = ys[i] - cy
        for j in range(xs.size):
            dx = xs[j] - cx
            r = np.sqrt(dy * dy + dx * dx) * inv_r
            out[i, j] = max(one - strength * min(r, lim) ** power, zero)
    return out


@kernel
def _gradient_grid(ys, xs, cy, cx, ky, kx, amplitude, scale):
    """(g, g) float32: max(1 + amplitude * ((ys - cy) * ky + (xs - cx) * kx), 0) * scale (float32
    arithmetic, bit-identical to the same NumPy float32 expression)."""
    out = np.empty((ys.size, xs.size), np.float32)
    zero, one = np.float32(0.0), np.float32(1.0)
    for i in range(ys.size):
        y = (ys[i] - cy) * ky
        for j in range(xs.size):
            out[i, j] = max(one + amplitude * (y + (xs[j] - cx) * kx), zero) * scale
    return out


def vignette_gain(shape: tuple, strength: float, cx: float = 0.5, cy: float = 0.5, power: float = 2.0,
                  g: int = GAIN_GRID) -> np.ndarray:
    """Low-resolution radial fall-off gain, float32 (g, g) >= 0, for a frame of ``shape`` (H, W, ...):
    gain = 1 - strength * (r / r_max) ** power (see ``vignette``); one compiled loop over the grid
    (the NumPy expression's dozen small-array calls cost more than the arithmetic)."""
    H, W = shape[:2]
    ys, xs = _grid_coords(H, W, g)
    return _vignette_grid(ys, xs, np.float32(cy * (H - 1)), np.float32(cx * (W - 1)),
                          np.float32(1.0 / (0.5 * math.hypot(H, W))), np.float32(strength), np.float32(power))


def gradient_gain(shape: tuple, amplitude: float, dx: float, dy: float, g: int = GAIN_GRID,
                  scale: float = 1.0) -> np.ndarray:
    """Low-resolution linear illumination gain, float32 (g, g) >= 0 (see ``lighting_gradient``),
    times ``scale`` (the scene's exposure): one compiled loop over the grid."""
    H, W = shape[:2]
    n = math.hypot(dx, dy) or 1.0
    hd = 0.5 * math.hypot(H, W)
    ys, xs = _grid_coords(H, W, g)
    return _gradient_grid(ys, xs, np.float32((H - 1) / 2), np.float32((W - 1) / 2), np.float32(dy / n / hd),
                          np.float32(dx / n / hd), np.float32(amplitude), np.float32(scale))


@kernel
def _linear_tap(i, n_src, n_dst):
    """Bilinear taps of destination index ``i`` (of ``n_dst``) on a grid of ``n_src``: (i0, i1,
    weight of i1) at i_src = (i + 0.5) * n_src / n_dst - 0.5 clamped to [0, n_src - 1]
    (``cv2.resize`` INTER_LINEAR's mapping)."""
    f = (i + 0.5) * (n_src / n_dst) - 0.5
    if f < 0.0:
        f = 0.0
    i0 = min(int(f), n_src - 1)
    return i0, min(i0 + 1, n_src - 1), np.float32(f - i0)


@kernel
def _gain_columns(gain, W, C):
    """The (g, g) gain grid interpolated along x to W frame columns, each repeated C times:
    float32 (g, W * C) (taps: ``_linear_tap``)."""
    gh, gw = gain.shape
    T = np.empty((gh, W * C), np.float32)
    one = np.float32(1.0)
    for x in range(W):
        x0, x1, wx = _linear_tap(x, gw, W)
        for r in range(gh):
            v = gain[r, x0] * (one - wx) + gain[r, x1] * wx
            for c in range(C):
                T[r, x * C + c] = v
    return T


@kernel
def _apply_gain_rows(img, gain, out, to8):
    """out[y] = img[y] * bilinear(gain)[y] (rows of H x (W * C) values): float32 clipped to
    [0, 255], or with ``to8`` rounded half to even into uint8. ``gain`` float32 (g, g)."""
    H, WC = img.shape
    C = WC // out.shape[1] if out.ndim == 3 else 1
    gh = gain.shape[0]
    T = _gain_columns(gain, WC // C, C)
    lo, hi, one = np.float32(0.0), np.float32(255.0), np.float32(1.0)
    o = out.reshape(H, WC)
    for y in range(H):
        y0, y1, wy = _linear_tap(y, gh, H)
        wy1 = one - wy
        t0, t1, src, dst = T[y0], T[y1], img[y], o[y]
        for j in range(WC):
            t = min(max(src[j] * (t0[j] * wy1 + t1[j] * wy), lo), hi)
            dst[j] = _rint(t) if to8 else t


def apply_gain(img: np.ndarray, gain: np.ndarray | None, out_uint8: bool = False) -> np.ndarray:
    """``img`` x a smooth gain field in ONE pass: ``gain`` float32 (g, g) (any g, e.g. the product of
    ``vignette_gain`` and ``gradient_gain``) or (g, g, 3) (per channel), upsampled to the frame
    bilinearly (``cv2.resize`` INTER_LINEAR's pixel-centre mapping, evaluated in the loop: no
    full-size gain image). Output: uint8 (clipped, rounded half to even) when ``out_uint8`` or the
    input is uint8, else float32 clipped to [0, 255]. ``gain=None`` only converts. The input is
    never mutated."""
    H, W = img.shape[:2]
    to8 = out_uint8 or img.dtype == np.uint8
    if gain is None:
        if not to8:
            return np.clip(img, 0, 255).astype(np.float32)
        return img.copy() if img.dtype == np.uint8 else to_uint8(img)
    gs = np.ascontiguousarray(gain, dtype=np.float32)
    if gs.ndim == 3:  # per-channel gain: the upsampled field, as before (rare path)
        g3 = cv2.resize(gs, (W, H), interpolation=cv2.INTER_LINEAR)
        if to8:
            return cv2.multiply(img, g3, dtype=cv2.CV_8U)
        out = cv2.multiply(img, g3, dtype=cv2.CV_32F)
        np.clip(out, 0.0, 255.0, out=out)
        return out
    src = np.ascontiguousarray(img, dtype=np.float32)
    out = np.empty(img.shape, np.uint8 if to8 else np.float32)
    _apply_gain_rows(src.reshape(H, -1), gs, out, to8)
    return out


def vignette(img: np.ndarray, strength: float, cx: float = 0.5, cy: float = 0.5, power: float = 2.0) -> np.ndarray:
    """Radial lens fall-off: gain = 1 - strength * (r / r_max) ** power, r from centre (cx, cy) given
    as fractions of (W, H), r_max = the half-diagonal. strength in [0, 1); the gain field is computed
    on a 32x32 grid and upsampled (smooth by construction)."""
    return apply_gain(img, vignette_gain(img.shape, strength, cx, cy, power))


def lighting_gradient(img: np.ndarray, amplitude: float, dx: float, dy: float) -> np.ndarray:
    """Multiplicative linear illumination gradient along the image-plane light direction (dx, dy)
    (x right, y down; normalised inside): gain = 1 + amplitude * p, p in [-1, 1] the projection of
    the pixel position (centred, normalised by the half-diagonal) on the direction; (dx, dy) points
    toward the light, so pixels nearer the light get brighter. amplitude in [0, 1). The (linear) gain
    is evaluated on a 32x32 grid and upsampled bilinearly (exact except the outer half cell)."""
    return apply_gain(img, gradient_gain(img.shape, amplitude, dx, dy))


BANK_SIZE = 1024
BANK_SEED = 20240611
NOISE_SCALE = 64  # the bank holds round(64 * N(0, 1)) as int16


@functools.lru_cache(maxsize=1)
def noise_bank() -> np.ndarray:
    """Read-only int16 (1024, 1024, 3) bank of ``round(NOISE_SCALE * n)``, n standard normal, from a
    FIXED seed (identical in every process and machine; a constant, built once on first use), so
    noise costs a slice instead of 3 M normal draws per sample; int16 halves the memory traffic of
    every later pass."""
    n = np.random.default_rng(BANK_SEED).standard_normal((BANK_SIZE, BANK_SIZE, 3), dtype=np.float32)
    b = np.clip(np.rint(n * NOISE_SCALE), -32767, 32767).astype(np.int16)
    b.flags.writeable = False
    return b


def _noise_field(h: int, w: int, oy: int, ox: int, flip: int, mix: np.ndarray) -> np.ndarray:
    """Contiguous int16 (h, w, 3) slice of the bank at (oy, ox), colour-mixed by the 3x3 ``mix``
    (one ``cv2.transform`` pass that also copies) and flipped/transposed per ``flip``."""
    bank = noise_bank()
    th, tw = (w, h) if flip & 4 else (h, w)
    if th > BANK_SIZE or tw > BANK_SIZE:
        bank = np.tile(bank, (th // BANK_SIZE + 1, tw // BANK_SIZE + 1, 1))
    oy %= bank.shape[0] - th + 1
    ox %= bank.shape[1] - tw + 1
    n = cv2.transform(bank[oy:oy + th, ox:ox + tw], mix)
    if flip & 4:
        n = cv2.transpose(n)
    code = {1: 0, 2: 1, 3: -1}.get(flip & 3)
    if code is not None:
        n = cv2.flip(n, code)
    return n


@kernel
def _add_noise_flat(img, n, shot, read2, k, out):
    """out = sat_uint8(img + rint(n * k * sqrt(max(shot * img + read2, 0)))), element-wise on flat
    arrays (img uint8, n int16, float32 arithmetic; ``_rint`` is exact for |t| < 2**22, and any
    larger |t| saturates the same way)."""
    lo, hi, zero = np.float32(0.0), np.float32(255.0), np.float32(0.0)
    for i in range(img.size):
        v = np.float32(img[i])
        t = _rint(np.float32(n[i]) * (np.sqrt(max(v * shot + read2, zero)) * k))
        out[i] = np.uint8(min(max(t + v, lo), hi))


def sensor_noise(img: np.ndarray, shot: float, read: float, grain: float = 1.0, chroma: float = 1.0,
                 oy: int = 0, ox: int = 0, flip: int = 0) -> np.ndarray:
    """Heteroscedastic sensor noise (Poisson-Gaussian model, Foi et al. 2008):
    I' = I + sqrt(shot * I + read**2) * n, with n ~ N(0, 1) taken from ``noise_bank`` at offset
    (oy, ox) and orientation ``flip`` (bits: 1 vertical, 2 horizontal, 4 transpose).

    Args:
        shot: signal-dependent variance factor (DN; 0-2 typical); read: read-noise sigma in DN (0-10).
        grain: >1 draws the noise at 1/grain resolution and upsamples (phone ISP denoising leaves
            blotchy, spatially-correlated noise; x sqrt(grain) keeps the per-pixel sigma roughly
            equal after bilinear smoothing); chroma in [0, 1]: 0 = luminance-only noise.

    uint8 input: one compiled pass, float32 arithmetic per value,
    ``I' = clip(I + rint(n64 / 64 * sqrt(max(shot * I + read**2, 0))), 0, 255)`` with n64 the
    int16 bank value (64 x N(0, 1), colour-mixed, upsampled); the noise term is rounded to whole
    DN before the add. float32 input: the same sum in float32 (no rounding), clipped to [0, 255].
    """
    H, W = img.shape[:2]
    g = max(1.0, float(grain))
    h, w = max(1, int(round(H / g))), max(1, int(round(W / g)))
    c = float(min(max(chroma, 0.0), 1.0))
    mix = np.eye(3, dtype=np.float32) * np.float32(c)
    mix[:, 0] += np.float32(1.0 - c)
    if (h, w) != (H, W):
        mix *= np.float32(np.sqrt(g))
    n = _noise_field(h, w, int(oy), int(ox), int(flip), mix)
    if (h, w) != (H, W):
        n = cv2.resize(n, (W, H), interpolation=cv2.INTER_LINEAR)
    shot32, read2, k = np.float32(shot), np.float32(float(read) ** 2), np.float32(1.0 / NOISE_SCALE)
    if img.dtype == np.uint8:
        src = np.ascontiguousarray(img)
        out = np.empty(img.shape, np.uint8)
        _add_noise_flat(src.reshape(-1), n.reshape(-1), shot32, read2, k, out.reshape(-1))
        return out
    f = img.astype(np.float32)
    out = f + n.astype(np.float32) * (np.sqrt(np.maximum(f * shot32 + read2, np.float32(0.0))) * k)
    np.clip(out, 0, 255, out=out)
    return out


_LEVELS = np.arange(256, dtype=np.float64)  # the 8-bit input levels of a tone LUT


def color_transfer(img: np.ndarray, gains=(1.0, 1.0, 1.0), saturation: float = 1.0, contrast: float = 1.0,
                   brightness: float = 0.0, gamma: float = 1.0) -> np.ndarray:
    """White balance + saturation (3x3 colour matrix, ``cv2.transform``), then a per-channel tone
    LUT: y = 255 * clip((contrast * (x - 128) + 128 + brightness) / 255, 0, 1) ** (1 / gamma).
    Works on uint8 (LUT path, fast) and float32 (rounded through uint8)."""
    u8 = to_uint8(img) if img.dtype != np.uint8 else img
    g0, g1, g2 = (float(v) for v in np.asarray(gains, np.float64).reshape(3))
    s = float(saturation)
    if s == 1.0 and g0 == g1 == g2 == 1.0:
        out = u8.copy()
    else:  # M = diag(g) (s I + (1 - s) 1 lum^T), built in plain floats (9 numbers, no array temporaries)
        lr, lg, lb = (1.0 - s) * 0.299, (1.0 - s) * 0.587, (1.0 - s) * 0.114
        M = np.array([[g0 * (s + lr), g0 * lg, g0 * lb],
                      [g1 * lr, g1 * (s + lg), g1 * lb],
                      [g2 * lr, g2 * lg, g2 * (s + lb)]], np.float32)
        out = cv2.transform(u8, M)
    y = np.clip((contrast * (_LEVELS - 128.0) + 128.0 + brightness) * (1.0 / 255.0), 0.0, 1.0) ** (1.0 / max(gamma, 1e-3))
    lut = (y * 255.0 + 0.5).astype(np.uint8)  # y in [0, 1]: no clip needed
    out = cv2.LUT(out, lut)
    return out if img.dtype == np.uint8 else out.astype(np.float32)


_IMREAD_RGB = getattr(cv2, "IMREAD_COLOR_RGB", None)  # recent OpenCV (4.11+): libjpeg writes RGB directly


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """JPEG round trip at ``quality`` in [1, 100] (libjpeg via OpenCV, 4:2:0 chroma subsampling).
    The encoder gets BGR (OpenCV's channel order); the decoder writes RGB itself where OpenCV has
    ``IMREAD_COLOR_RGB`` (same bytes as decoding to BGR and swapping, one pass fewer)."""
    u8 = to_uint8(img) if img.dtype != np.uint8 else img
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(u8, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"JPEG encoding failed for an image of shape {u8.shape}")
    if _IMREAD_RGB is not None:
        out = cv2.imdecode(buf, _IMREAD_RGB)
    else:
        out = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return out if img.dtype == np.uint8 else out.astype(np.float32)
