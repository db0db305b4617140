"""Pure image functions used by the effects and the compositor (no randomness inside).

Conventions: images are (H, W, 3) RGB, either uint8 or float32 in [0, 255]; every function
returns a NEW array of the input dtype (uint8 results are rounded and clipped; float32 results are
clipped to [0, 255] only where stated) and never mutates its input. Masks are never touched by
photometric functions. Randomness lives in ``synth.effects`` (parameter sampling); the only
"random" input here is the fixed, seeded noise bank indexed by sampled offsets.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = [
    "gaussian_blur", "motion_blur", "motion_kernel", "vignette", "lighting_gradient", "noise_bank",
    "sensor_noise", "color_transfer", "jpeg", "to_float", "to_uint8",
]


def to_float(img: np.ndarray) -> np.ndarray:
    """uint8/float32 -> float32 copy in [0, 255]."""
    return img.astype(np.float32, copy=True)


def to_uint8(img: np.ndarray) -> np.ndarray:
    """float32 [0, 255] -> uint8 (rounded, clipped)."""
    if img.dtype == np.uint8:
        return img.copy()
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def _like(out: np.ndarray, ref: np.ndarray) -> np.ndarray:
    return to_uint8(out) if ref.dtype == np.uint8 else out.astype(np.float32, copy=False)


def gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Defocus approximated by a Gaussian PSF of standard deviation ``sigma`` px (>= 0).

    For sigma > 2 the blur runs at half resolution (blur is band-limiting, so the downsample loses
    nothing visible) and is upsampled with INTER_LINEAR: ~4x cheaper.
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


def _gain_apply(img: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """img x gain[..., None] (gain >= 0), clipped at 255, input dtype kept."""
    if img.dtype == np.uint8:
        g3 = cv2.merge([gain, gain, gain])
        return to_uint8(img.astype(np.float32) * g3)
    out = img * gain[..., None]
    np.minimum(out, 255.0, out=out)
    return out


def vignette(img: np.ndarray, strength: float, cx: float = 0.5, cy: float = 0.5, power: float = 2.0) -> np.ndarray:
    """Radial lens fall-off: gain = 1 - strength * (r / r_max) ** power, r from centre (cx, cy) given
    as fractions of (W, H), r_max = the half-diagonal. strength in [0, 1); the gain field is computed
    on a 32x32 grid and upsampled (smooth by construction)."""
    H, W = img.shape[:2]
    g = 32
    ys = (np.linspace(0, 1, g, dtype=np.float32) - cy) * H
    xs = (np.linspace(0, 1, g, dtype=np.float32) - cx) * W
    r = np.sqrt(ys[:, None] ** 2 + xs[None, :] ** 2) / (0.5 * np.hypot(H, W))
    gain = 1.0 - strength * np.clip(r, 0, 1.5) ** power
    gain = cv2.resize(gain.astype(np.float32), (W, H), interpolation=cv2.INTER_LINEAR)
    return _gain_apply(img, np.maximum(gain, 0.0))


def lighting_gradient(img: np.ndarray, amplitude: float, dx: float, dy: float) -> np.ndarray:
    """Multiplicative linear illumination gradient along the image-plane light direction (dx, dy)
    (x right, y down; normalised inside): gain = 1 + amplitude * p, p in [-1, 1] the projection of
    the pixel position (centred, normalised by the half-diagonal) on the direction. Pixels nearer
    the light get brighter. amplitude in [0, 1)."""
    H, W = img.shape[:2]
    n = float(np.hypot(dx, dy)) or 1.0
    dx, dy = dx / n, dy / n
    hd = 0.5 * np.hypot(H, W)
    xs = (np.arange(W, dtype=np.float32) - (W - 1) / 2) * (dx / hd)
    ys = (np.arange(H, dtype=np.float32) - (H - 1) / 2) * (dy / hd)
    # light comes FROM -direction? No: (dx, dy) points toward the light, so +projection = brighter.
    gain = 1.0 + amplitude * (ys[:, None] + xs[None, :])
    return _gain_apply(img, np.maximum(gain, 0.0).astype(np.float32))


_BANK: dict[int, np.ndarray] = {}
BANK_SIZE = 1024
BANK_SEED = 20240611


def noise_bank() -> np.ndarray:
    """Process-wide float32 (1024, 1024, 3) standard-normal bank from a FIXED seed (identical in every
    process and machine), so noise costs a slice instead of 3 M normal draws per sample."""
    b = _BANK.get(BANK_SIZE)
    if b is None:
        b = _BANK[BANK_SIZE] = np.random.default_rng(BANK_SEED).standard_normal((BANK_SIZE, BANK_SIZE, 3), dtype=np.float32)
    return b


def _bank_patch(h: int, w: int, oy: int, ox: int, flip: int) -> np.ndarray:
    bank = noise_bank()
    if flip & 4:
        h, w = w, h
    if h > BANK_SIZE or w > BANK_SIZE:
        reps = (h // BANK_SIZE + 1, w // BANK_SIZE + 1, 1)
        bank = np.tile(bank, reps)
    oy %= bank.shape[0] - h + 1
    ox %= bank.shape[1] - w + 1
    p = bank[oy:oy + h, ox:ox + w]
    if flip & 1:
        p = p[::-1]
    if flip & 2:
        p = p[:, ::-1]
    if flip & 4:
        p = p.transpose(1, 0, 2)
    return p


def sensor_noise(img: np.ndarray, shot: float, read: float, grain: float = 1.0, chroma: float = 1.0,
                 oy: int = 0, ox: int = 0, flip: int = 0) -> np.ndarray:
    """Heteroscedastic sensor noise (Poisson-Gaussian model, Foi et al. 2008):
    I' = I + sqrt(shot * I + read**2) * n, with n ~ N(0, 1) taken from ``noise_bank`` at offset
    (oy, ox) and orientation ``flip`` (bits: 1 vertical, 2 horizontal, 4 transpose).

    Args:
        shot: signal-dependent variance factor (DN; 0-2 typical); read: read-noise sigma in DN (0-10).
        grain: >1 draws the noise at 1/grain resolution and upsamples (phone ISP denoising leaves
            blotchy, spatially-correlated noise); chroma in [0, 1]: 0 = luminance-only noise.
    """
    H, W = img.shape[:2]
    g = max(1.0, float(grain))
    h, w = max(1, int(round(H / g))), max(1, int(round(W / g)))
    n = _bank_patch(h, w, int(oy), int(ox), int(flip))
    if chroma < 1.0:
        n = n * np.float32(chroma) + n[..., :1] * np.float32(1.0 - chroma)
    x = img if img.dtype == np.float32 else img.astype(np.float32)
    if (h, w) != (H, W):
        # correlated (ISP-denoised) noise: noise x local sigma computed at the noise resolution,
        # then upsampled; sqrt(g) keeps the per-pixel sigma after bilinear smoothing roughly equal.
        xs = cv2.resize(x, (w, h), interpolation=cv2.INTER_AREA)
        sd = np.sqrt(np.maximum(xs * np.float32(shot) + np.float32(read * read), 0.0))
        add = cv2.resize(np.ascontiguousarray(n) * sd, (W, H), interpolation=cv2.INTER_LINEAR)
        add *= np.float32(np.sqrt(g))
    else:
        sd = np.sqrt(np.maximum(x * np.float32(shot) + np.float32(read * read), 0.0))
        add = sd * n
    out = cv2.add(x, add)
    np.clip(out, 0, 255, out=out)
    return _like(out, img)


def color_transfer(img: np.ndarray, gains=(1.0, 1.0, 1.0), saturation: float = 1.0, contrast: float = 1.0,
                   brightness: float = 0.0, gamma: float = 1.0) -> np.ndarray:
    """White balance + saturation (3x3 colour matrix, ``cv2.transform``), then a per-channel tone
    LUT: y = 255 * clip((contrast * (x - 128) + 128 + brightness) / 255, 0, 1) ** (1 / gamma).
    Works on uint8 (LUT path, fast) and float32 (rounded through uint8)."""
    u8 = to_uint8(img) if img.dtype != np.uint8 else img
    g = np.asarray(gains, np.float32).reshape(3)
    s = float(saturation)
    lum = np.array([0.299, 0.587, 0.114], np.float32)
    M = s * np.eye(3, dtype=np.float32) + (1 - s) * np.tile(lum, (3, 1))
    M = (np.diag(g) @ M).astype(np.float32)
    out = cv2.transform(u8, M) if not np.allclose(M, np.eye(3)) else u8.copy()
    x = np.arange(256, dtype=np.float32)
    y = np.clip((contrast * (x - 128.0) + 128.0 + brightness) / 255.0, 0, 1) ** (1.0 / max(gamma, 1e-3))
    lut = np.clip(y * 255.0 + 0.5, 0, 255).astype(np.uint8)
    out = cv2.LUT(out, lut)
    return out if img.dtype == np.uint8 else out.astype(np.float32)


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """JPEG round trip at ``quality`` in [1, 100] (libjpeg via OpenCV, 4:2:0 chroma subsampling)."""
    u8 = to_uint8(img) if img.dtype != np.uint8 else img
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(u8, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"JPEG encoding failed for an image of shape {u8.shape}")
    out = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return out if img.dtype == np.uint8 else out.astype(np.float32)
