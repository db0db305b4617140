"""Camera-chain effects: thin classes that only SAMPLE parameters; the work is in ``functional``.

Albumentations style: ``Effect.sample(rng, shape) -> params | None`` (None = skipped this sample,
decided by ``p``), ``Effect.apply(image, **params) -> image`` (pure), ``Effect.apply_mask`` (the
label; identity for photometric effects). ``EFFECTS`` maps names to classes; every class carries
``test_params`` (a representative, non-trivial parameter dict) used by the parametrised tests.
Pixel-sized parameters are specified for a 512 px frame and scaled by ``min(H, W) / 512``.
Smooth multiplicative effects (vignette, lighting gradient) also expose ``gain(shape, **params)``:
a low-resolution float32 gain map the camera chain multiplies together and applies in one pass.
``ImgaugCamera`` is the imgaug-based alternative to sensor_noise + color + jpeg
(``SynthConfig.camera_backend = "imgaug"``).
"""

from __future__ import annotations

import threading

import numpy as np

from . import functional as F
from .seeding import uniform

__all__ = ["Effect", "EFFECTS", "build_effects", "DefocusBlur", "MotionBlur", "Vignette", "SensorNoise",
           "ColorJitter", "Jpeg", "LightingGradient", "ImgaugCamera"]

EFFECTS: dict[str, type["Effect"]] = {}


def register(cls):
    EFFECTS[cls.name] = cls
    return cls


def _u(rng, r):
    """One draw in [r[0], r[1]) (``synth.seeding.uniform``: the same double as ``rng.uniform``), or
    r[0] for an empty range."""
    return uniform(rng, float(r[0]), float(r[1])) if r[1] > r[0] else float(r[0])


class Effect:
    """Base class. Subclasses set ``name``, ``config_fields`` ({init kwarg: SynthConfig field}),
    ``test_params`` and implement ``sample_params`` + ``apply``."""

    name = "effect"
    config_fields: dict[str, str] = {}
    test_params: dict = {}

    def __init__(self, p: float = 1.0):
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"{type(self).__name__}: p must be in [0, 1], got {p!r}")
        self.p = float(p)

    @classmethod
    def from_config(cls, cfg) -> "Effect":
        return cls(**{k: getattr(cfg, v) for k, v in cls.config_fields.items()})

    def sample(self, rng: np.random.Generator, shape: tuple) -> dict | None:
        """Draw whether to apply (prob ``p``) and the parameters; None when skipped."""
        if rng.random() >= self.p:
            return None
        return self.sample_params(rng, shape)

    def sample_params(self, rng: np.random.Generator, shape: tuple) -> dict:
        raise NotImplementedError

    @staticmethod
    def apply(image: np.ndarray, **params) -> np.ndarray:
        raise NotImplementedError

    @staticmethod
    def apply_mask(mask: np.ndarray, **params) -> np.ndarray:
        return mask

    def __call__(self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator):
        """-> (image, mask, params | None). Inputs are not mutated."""
        params = self.sample(rng, image.shape)
        if params is None:
            return image, mask, None
        return self.apply(image, **params), self.apply_mask(mask, **params), params


def _scale(shape) -> float:
    return min(shape[0], shape[1]) / 512.0


@register
class DefocusBlur(Effect):
    """Out-of-focus blur (Gaussian PSF), sigma in px @512."""

    name = "defocus_blur"
    config_fields = {"p": "defocus_prob", "sigma_range": "defocus_sigma_range"}
    test_params = {"sigma": 1.5}

    def __init__(self, p=0.35, sigma_range=(0.4, 3.0)):
        super().__init__(p)
        self.sigma_range = tuple(sigma_range)

    def sample_params(self, rng, shape):
        return {"sigma": _u(rng, self.sigma_range) * _scale(shape)}

    @staticmethod
    def apply(image, sigma):
        return F.gaussian_blur(image, sigma)


@register
class MotionBlur(Effect):
    """Linear camera-shake blur, length in px @512, any direction."""

    name = "motion_blur"
    config_fields = {"p": "motion_blur_prob", "length_range": "motion_blur_length_range"}
    test_params = {"length": 7.0, "angle": 30.0}

    def __init__(self, p=0.2, length_range=(2.0, 14.0)):
        super().__init__(p)
        self.length_range = tuple(length_range)

    def sample_params(self, rng, shape):
        return {"length": _u(rng, self.length_range) * _scale(shape), "angle": _u(rng, (0.0, 180.0))}

    @staticmethod
    def apply(image, length, angle):
        return F.motion_blur(image, length, angle)


@register
class Vignette(Effect):
    """Radial lens fall-off with a jittered optical centre."""

    name = "vignette"
    config_fields = {"p": "vignette_prob", "strength_range": "vignette_strength_range"}
    test_params = {"strength": 0.4, "cx": 0.45, "cy": 0.55, "power": 2.0}

    def __init__(self, p=0.5, strength_range=(0.05, 0.45)):
        super().__init__(p)
        self.strength_range = tuple(strength_range)

    def sample_params(self, rng, shape):
        return {"strength": _u(rng, self.strength_range), "cx": _u(rng, (0.4, 0.6)), "cy": _u(rng, (0.4, 0.6)),
                "power": _u(rng, (1.5, 3.0))}

    @staticmethod
    def apply(image, strength, cx, cy, power):
        return F.vignette(image, strength, cx, cy, power)

    @staticmethod
    def gain(shape, strength, cx, cy, power):
        """Low-resolution gain map float32 (32, 32) (``functional.vignette_gain``)."""
        return F.vignette_gain(shape, strength, cx, cy, power)


@register
class LightingGradient(Effect):
    """Multiplicative illumination gradient; in scenes the direction comes from the scene light."""

    name = "lighting_gradient"
    config_fields = {"amplitude_range": "lighting_gradient_range"}
    test_params = {"amplitude": 0.3, "dx": 0.6, "dy": -0.8}

    def __init__(self, p=1.0, amplitude_range=(0.0, 0.45)):
        super().__init__(p)
        self.amplitude_range = tuple(amplitude_range)

    def sample_params(self, rng, shape):
        t = _u(rng, (0.0, 2 * np.pi))
        return {"amplitude": _u(rng, self.amplitude_range), "dx": float(np.cos(t)), "dy": float(np.sin(t))}

    @staticmethod
    def apply(image, amplitude, dx, dy):
        return F.lighting_gradient(image, amplitude, dx, dy)

    @staticmethod
    def gain(shape, amplitude, dx, dy):
        """Low-resolution gain map float32 (32, 32) (``functional.gradient_gain``)."""
        return F.gradient_gain(shape, amplitude, dx, dy)


@register
class SensorNoise(Effect):
    """Poisson-Gaussian sensor noise from the fixed noise bank at sampled offsets."""

    name = "sensor_noise"
    config_fields = {"p": "noise_prob", "shot_range": "shot_noise_range", "read_range": "read_noise_range",
                     "grain_range": "noise_grain_range"}
    test_params = {"shot": 0.8, "read": 4.0, "grain": 1.5, "chroma": 0.6, "oy": 17, "ox": 301, "flip": 5}

    def __init__(self, p=0.9, shot_range=(0.0, 1.2), read_range=(0.3, 6.0), grain_range=(1.0, 2.5)):
        super().__init__(p)
        self.shot_range, self.read_range, self.grain_range = tuple(shot_range), tuple(read_range), tuple(grain_range)

    def sample_params(self, rng, shape):
        return {"shot": _u(rng, self.shot_range), "read": _u(rng, self.read_range),
                "grain": _u(rng, self.grain_range), "chroma": _u(rng, (0.2, 1.0)),
                "oy": int(rng.integers(0, F.BANK_SIZE)), "ox": int(rng.integers(0, F.BANK_SIZE)),
                "flip": int(rng.integers(0, 8))}

    @staticmethod
    def apply(image, shot, read, grain, chroma, oy, ox, flip):
        return F.sensor_noise(image, shot, read, grain, chroma, oy, ox, flip)


@register
class ColorJitter(Effect):
    """White balance gains, saturation, contrast, brightness and gamma (one LUT pass)."""

    name = "color"
    config_fields = {"p": "color_prob", "wb_gain_range": "wb_gain_range", "saturation_range": "saturation_range",
                     "contrast_range": "contrast_range", "brightness_range": "brightness_range",
                     "gamma_range": "gamma_range"}
    test_params = {"gains": [1.1, 1.0, 0.9], "saturation": 0.8, "contrast": 1.1, "brightness": 5.0, "gamma": 0.9}

    def __init__(self, p=1.0, wb_gain_range=(0.85, 1.15), saturation_range=(0.65, 1.25), contrast_range=(0.8, 1.2),
                 brightness_range=(-18.0, 18.0), gamma_range=(0.8, 1.25)):
        super().__init__(p)
        self.wb_gain_range, self.saturation_range = tuple(wb_gain_range), tuple(saturation_range)
        self.contrast_range, self.brightness_range = tuple(contrast_range), tuple(brightness_range)
        self.gamma_range = tuple(gamma_range)

    def sample_params(self, rng, shape):
        return {"gains": [_u(rng, self.wb_gain_range) for _ in range(3)],
                "saturation": _u(rng, self.saturation_range), "contrast": _u(rng, self.contrast_range),
                "brightness": _u(rng, self.brightness_range), "gamma": _u(rng, self.gamma_range)}

    @staticmethod
    def apply(image, gains, saturation, contrast, brightness, gamma):
        return F.color_transfer(image, gains, saturation, contrast, brightness, gamma)


@register
class Jpeg(Effect):
    """JPEG compression artefacts at a sampled quality."""

    name = "jpeg"
    config_fields = {"p": "jpeg_prob", "quality_range": "jpeg_quality_range"}
    test_params = {"quality": 40}

    def __init__(self, p=0.8, quality_range=(35, 95)):
        super().__init__(p)
        self.quality_range = tuple(quality_range)

    def sample_params(self, rng, shape):
        return {"quality": int(rng.integers(int(self.quality_range[0]), int(self.quality_range[1]) + 1))}

    @staticmethod
    def apply(image, quality):
        return F.jpeg(image, quality)


_IMGAUG_LOCK = threading.Lock()
_IMGAUG_WARM = [False]


def _warm_imgaug() -> None:
    """Run imgaug once per process under a lock, restoring NumPy's global RandomState around it:
    imgaug (or a library it imports lazily) makes one hidden draw from the GLOBAL RandomState on
    first use (found by tests/test_scene.py). Every later call uses explicit seeds only, so
    rendering never touches the global RNG, also with Dask worker threads rendering at once."""
    if _IMGAUG_WARM[0]:
        return
    with _IMGAUG_LOCK:
        if _IMGAUG_WARM[0]:
            return
        state = np.random.get_state()
        try:
            ImgaugCamera._apply(np.zeros((8, 8, 3), np.uint8), 0, 1.0, 1.0, [1.0, 1.0, 1.0], 1.0, 1.0, 0.0, 1.0, 50)
        finally:
            np.random.set_state(state)
        _IMGAUG_WARM[0] = True


@register
class ImgaugCamera(Effect):
    """Alternative sensor + ISP + codec chain built from imgaug augmenters (Jung et al., imgaug 0.4):
    ``iaa.Sequential`` of AdditiveGaussianNoise (read noise) + AdditivePoissonNoise (shot noise),
    per-channel Multiply (white balance), MultiplySaturation, LinearContrast, Add (brightness),
    GammaContrast and JpegCompression. Every value is sampled HERE from the sample's rng and passed
    to imgaug as a constant; the noise draws come from imgaug generators seeded with the sampled
    ``seed`` (one per augmenter), so the output is deterministic and numpy's global RNG is never
    used. Slower than the native chain (see bench/bench_synth.py); photometric only."""

    name = "imgaug_camera"
    config_fields = {"noise_p": "noise_prob", "read_range": "read_noise_range", "shot_range": "shot_noise_range",
                     "wb_gain_range": "wb_gain_range", "saturation_range": "saturation_range",
                     "contrast_range": "contrast_range", "brightness_range": "brightness_range",
                     "gamma_range": "gamma_range", "jpeg_p": "jpeg_prob", "quality_range": "jpeg_quality_range"}
    test_params = {"seed": 123, "read": 4.0, "shot_lam": 3.0, "gains": [1.1, 1.0, 0.9], "saturation": 0.8,
                   "contrast": 1.1, "brightness": 5.0, "gamma": 0.9, "quality": 40}

    def __init__(self, p=1.0, noise_p=0.9, read_range=(0.3, 6.0), shot_range=(0.0, 1.2), wb_gain_range=(0.85, 1.15),
                 saturation_range=(0.65, 1.25), contrast_range=(0.8, 1.2), brightness_range=(-18.0, 18.0),
                 gamma_range=(0.8, 1.25), jpeg_p=0.8, quality_range=(35, 95)):
        super().__init__(p)
        self.noise_p, self.jpeg_p = float(noise_p), float(jpeg_p)
        self.read_range, self.shot_range = tuple(read_range), tuple(shot_range)
        self.wb_gain_range, self.saturation_range = tuple(wb_gain_range), tuple(saturation_range)
        self.contrast_range, self.brightness_range = tuple(contrast_range), tuple(brightness_range)
        self.gamma_range, self.quality_range = tuple(gamma_range), tuple(quality_range)

    def sample_params(self, rng, shape):
        noise = rng.random() < self.noise_p
        jpg = rng.random() < self.jpeg_p
        return {"seed": int(rng.integers(0, 2**31 - 1)),
                "read": _u(rng, self.read_range) if noise else 0.0,
                # Poisson lambda for a mid-grey pixel: variance shot * 128 DN^2
                "shot_lam": _u(rng, self.shot_range) * 128.0 if noise else 0.0,
                "gains": [_u(rng, self.wb_gain_range) for _ in range(3)],
                "saturation": _u(rng, self.saturation_range), "contrast": _u(rng, self.contrast_range),
                "brightness": _u(rng, self.brightness_range), "gamma": _u(rng, self.gamma_range),
                "quality": int(rng.integers(int(self.quality_range[0]), int(self.quality_range[1]) + 1)) if jpg else 0}

    @staticmethod
    def apply(image, seed, read, shot_lam, gains, saturation, contrast, brightness, gamma, quality):
        _warm_imgaug()
        return ImgaugCamera._apply(image, seed, read, shot_lam, gains, saturation, contrast, brightness, gamma,
                                   quality)

    @staticmethod
    def _apply(image, seed, read, shot_lam, gains, saturation, contrast, brightness, gamma, quality):
        import imgaug.augmenters as iaa  # lazy: imgaug is slow to import and optional for the native chain

        s = int(seed)
        augs = []
        if read > 0:
            augs.append(iaa.AdditiveGaussianNoise(loc=0, scale=float(read), per_channel=True, seed=s))
        if shot_lam > 0:
            augs.append(iaa.AdditivePoissonNoise(lam=float(shot_lam), per_channel=True, seed=s + 1))
        augs += [iaa.WithChannels([c], iaa.Multiply(float(gains[c]), seed=s + 2 + c), seed=s + 5 + c) for c in range(3)]
        augs += [iaa.MultiplySaturation(float(saturation), seed=s + 8),
                 iaa.LinearContrast(float(contrast), seed=s + 9),
                 iaa.Add(float(brightness), seed=s + 10),
                 iaa.GammaContrast(1.0 / max(float(gamma), 1e-3), seed=s + 11)]
        if quality > 0:
            augs.append(iaa.JpegCompression(compression=float(100 - int(quality)), seed=s + 12))
        seq = iaa.Sequential(augs, seed=s + 13)
        u8 = image if image.dtype == np.uint8 else F.to_uint8(image)
        out = seq(image=np.ascontiguousarray(u8))
        return out if image.dtype == np.uint8 else out.astype(np.float32)


#: the native effects the imgaug backend replaces (by one ``imgaug_camera`` at the first one's place)
IMGAUG_REPLACES = ("sensor_noise", "color", "jpeg")


def camera_effect_names(cfg) -> list[str]:
    """Effect names the camera chain runs for ``cfg``: ``cfg.camera_effects`` for the native backend;
    for ``camera_backend == "imgaug"`` sensor_noise/color/jpeg become one ``imgaug_camera``."""
    names = list(cfg.camera_effects)
    if getattr(cfg, "camera_backend", "native") != "imgaug":
        return names
    out, done = [], "imgaug_camera" in names  # listed by name: the replaced effects add no second one
    for n in names:
        if n in IMGAUG_REPLACES:
            if not done:
                out.append("imgaug_camera")
                done = True
        else:
            out.append(n)
    if not done and "imgaug_camera" not in out:
        out.append("imgaug_camera")
    return out


def build_effects(cfg) -> list[Effect]:
    """Instantiate the camera effects of ``cfg`` (``camera_effect_names``, in order) from the config;
    unknown names raise ValueError listing the valid ones."""
    out = []
    for name in camera_effect_names(cfg):
        if name not in EFFECTS:
            raise ValueError(f"unknown effect {name!r}; valid: {sorted(EFFECTS)}")
        out.append(EFFECTS[name].from_config(cfg))
    return out
