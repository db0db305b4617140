"""``SynthConfig``: every knob of the scene renderer, flat and typed, with YAML round-trip.

Conventions: ``*_range`` = (low, high) sampled uniformly (``*_range`` on lengths that span decades
are sampled log-uniformly, stated per field); ``*_prob`` in [0, 1]; pixel quantities are given
for a 512 px frame and scaled by ``size / 512``. Family switches (``shading``, ``shadows``,
``occluders``, ``camera``) turn whole groups off for ablations; backgrounds are chosen by the
``backgrounds`` argument of ``SampleRenderer`` (or ``backgrounds`` here as a spec string).
"""

from __future__ import annotations

import math

import dataclasses
import os
from dataclasses import dataclass, fields
from pathlib import Path

from .schema import check_fields, knob

from keysynth.common import atomic_write_text

__all__ = ["SynthConfig", "DEFAULT_YAML"]

DEFAULT_YAML = Path(__file__).with_name("default.yaml")
MAX_SIZE = 4096  # px: the largest sample side (memory grows with its square)
CAMERA_BACKENDS = ("native", "imgaug")


@dataclass
class SynthConfig:
    # ---- frame / sources
    size: int = knob(256, 'output side of the square sample', unit='px', low=16, high=MAX_SIZE)
    backgrounds: str = knob("default",
        'background source spec when the renderer is given none: default, procedural, bundled or a photo folder')
    key_source: str = knob("procedural",
        'where keys come from: procedural, fallback, a cut-out folder, or a weighted mix such as procedural:0.5,DIR:0.5')
    key_kinds: tuple | None = knob(None, 'procedural key kinds to draw from (null = all)')
    distractor_kinds: tuple | None = knob(
        ("coin", "paper_clip", "screw", "zipper", "cutlery", "key_ring", "fob", "lanyard", "bottle_opener",
         "usb_stick"),
        'hard-negative object kinds to draw from; null = all, which adds ball_chain (opt-in: no real-photo gain '
        'measured)')
    key_materials: tuple | None = knob(None, 'procedural key materials to draw from (null = all)')
    # ---- asset bank (synth.keys.bank): cached key / distractor geometry, re-lit per sample
    asset_bank_size: int = knob(64,
        'key shapes cached per size bucket and re-lit per sample; 0 builds every key afresh', unit='shapes', low=0,
        high=100000)
    distractor_bank_size: int = knob(8,
        'shapes cached per distractor kind and size bucket; 0 builds afresh', unit='shapes', low=0, high=100000)
    background_bank_size: int = knob(64,
        'procedural background textures cached per bank generation; 0 builds afresh', unit='textures', low=0,
        high=100000)
    asset_bank_refresh: int = knob(20000,
        'samples per asset-bank generation: new shapes after this many indices', unit='samples', low=1)
    asset_cache_mib: int = knob(384,
        'budget of the cached key and distractor geometry, per renderer (one per worker process or thread)',
        unit='MiB', low=0, high=1048576)
    # ---- scene layout
    empty_prob: float = knob(0.12, 'share of samples with no key at all (empty mask)', low=0, high=1)
    n_keys_range: tuple = knob((1, 4), 'keys per non-empty sample, inclusive', unit='keys', low=1, high=64)
    key_length_range: tuple = knob((0.02, 0.8),
        'key long side relative to the frame side, log-uniform (the tiny-key draws)', unit='x frame side', low=0.005,
        high=2.0)
    key_length_typical_range: tuple = knob((0.15, 0.7),
        'key long side relative to the frame side for the other draws, log-uniform', unit='x frame side', low=0.005,
        high=2.0)
    tiny_key_prob: float = knob(0.15,
        'share of keys drawn from the full key_length_range (small keys in phone photos)', low=0, high=1)
    crop_like_prob: float = knob(0.2,
        'share of samples showing one key centred with a margin (the view of a second-stage crop)', low=0, high=1)
    crop_like_length_range: tuple = knob((0.45, 0.95),
        'key long side in crop-like samples', unit='x frame side', low=0.05, high=2.0)
    crop_like_cut_prob: float = knob(0.35,
        'share of crop-like samples whose key is partly cut by the border', low=0, high=1)
    ring_cluster_prob: float = knob(0.35,
        'share of samples with several keys fanned on one key ring (overlapping)', low=0, high=1)
    border_cut_prob: float = knob(0.15, 'share of free keys placed partly outside the frame', low=0, high=1)
    cutout_relight: bool = knob(True,
        're-light photographed cut-outs to the scene (exposure, contrast, colour, lighting gradient)')
    cutout_blend_weights: tuple = knob((0.25, 0.35, 0.2, 0.2),
        'relative weights of the cut-out edge blends: hard, Gaussian-feathered, motion-blurred, Poisson')
    cutout_max_upscale: float = knob(1.5,
        'largest enlargement of a photographed cut-out; a key drawn longer is pasted at this scale instead '
        '(a small cut-out blown up is a blurred blob, not a key)', low=0.1, high=100.0)
    perspective_range: tuple = knob((0.0, 0.15),
        'corner jitter of the projective warp', unit='x key side', low=0.0, high=0.5)
    aspect_jitter_range: tuple = knob((0.85, 1.15), "foreshortening factor of the key's width", low=0.2, high=5.0)
    # ---- light (one direction per scene)
    light_elevation_range: tuple = knob((20.0, 75.0),
        'light elevation above the table plane (one light direction per scene)', unit='deg', low=0.0, high=90.0)
    lighting_gradient_range: tuple = knob((0.0, 0.45),
        'amplitude of the multiplicative lighting gradient across the frame', low=0.0, high=1.0)
    ambient_range: tuple = knob((0.75, 1.2), 'global exposure factor of the scene', low=0.05, high=5.0)
    # ---- family: key metal shading
    shading: bool = knob(True, 'shade keys as metal (relief, specular highlights); false draws flat material colour')
    flat_shading_prob: float = knob(0.0, 'share of scenes drawn in flat material colours, keys and every other object '
                                    'alike (domain randomization: outline, not shading, tells a key)', low=0, high=1)
    # ---- family: shadows
    shadows: bool = knob(True, 'cast and contact shadows under keys and objects')
    shadow_prob: float = knob(0.85, 'share of keys casting a shadow', low=0, high=1)
    shadow_strength_range: tuple = knob((0.15, 0.6), 'darkening of the cast shadow', low=0.0, high=1.0)
    shadow_offset_range: tuple = knob((0.01, 0.08),
        'cast-shadow offset along the light direction', unit='x key length', low=0.0, high=1.0)
    shadow_blur_range: tuple = knob((0.005, 0.04), 'cast-shadow blur sigma', unit='x key length', low=0.0, high=0.5)
    contact_shadow_strength_range: tuple = knob((0.2, 0.55),
        "darkening of the contact shadow along the key's edge", low=0.0, high=1.0)
    # ---- family: occluders / negatives
    occluders: bool = knob(True, 'key rings, distractor objects (hard negatives), fingers and object edges over keys')
    key_ring_prob: float = knob(0.45, 'share of keys with a ring through the bow hole (mask 0)', low=0, high=1)
    n_distractors_range: tuple = knob((0, 4),
        'hard-negative objects per sample (coins, clips, fobs...; mask 0), inclusive', unit='objects', low=0,
        high=64)
    distractor_size_range: tuple = knob((0.04, 0.35),
        'distractor size, log-uniform', unit='x frame side', low=0.001, high=2.0)
    hand_prob: float = knob(0.25, 'share of samples with fingers over a key (mask updated)', low=0, high=1)
    blob_occluder_prob: float = knob(0.15,
        'share of samples with a generic object edge crossing a key', low=0, high=1)
    # ---- family: camera chain (after compositing, this order)
    camera: bool = knob(True, 'apply the camera chain after compositing (camera_effects, in order)')
    camera_effects: tuple = knob(("defocus_blur", "motion_blur", "vignette", "sensor_noise", "color", "jpeg"),
        'camera effects in the order applied')
    camera_backend: str = knob("native",
        'native (fast) or imgaug (sensor noise, colour and JPEG through imgaug)', choices=CAMERA_BACKENDS)
    defocus_prob: float = knob(0.35, 'share of samples with defocus blur', low=0, high=1)
    defocus_sigma_range: tuple = knob((0.4, 3.0),
        'defocus blur sigma at 512 px (scaled with size)', unit='px', low=0.0, high=50.0)
    motion_blur_prob: float = knob(0.2, 'share of samples with motion blur', low=0, high=1)
    motion_blur_length_range: tuple = knob((2.0, 14.0),
        'motion-blur length at 512 px (scaled with size)', unit='px', low=0.0, high=200.0)
    vignette_prob: float = knob(0.5, 'share of samples with a vignette', low=0, high=1)
    vignette_strength_range: tuple = knob((0.05, 0.45), 'corner darkening of the vignette', low=0.0, high=1.0)
    noise_prob: float = knob(0.9, 'share of samples with sensor noise', low=0, high=1)
    shot_noise_range: tuple = knob((0.0, 1.2),
        'shot-noise variance factor (signal-dependent)', unit='DN', low=0.0, high=20.0)
    read_noise_range: tuple = knob((0.3, 4.0),
        'read-noise sigma (signal-independent)', unit='DN', low=0.0, high=100.0)
    noise_grain_range: tuple = knob((1.0, 2.5), 'noise grain size', unit='px', low=0.5, high=10.0)
    color_prob: float = knob(1.0,
        'share of samples with a colour change (white balance, saturation, contrast, brightness, gamma)', low=0,
        high=1)
    wb_gain_range: tuple = knob((0.85, 1.15), 'white-balance gain per channel', low=0.1, high=10.0)
    saturation_range: tuple = knob((0.65, 1.25), 'saturation factor', low=0.0, high=5.0)
    contrast_range: tuple = knob((0.8, 1.2), 'contrast factor', low=0.0, high=5.0)
    brightness_range: tuple = knob((-18.0, 18.0), 'brightness offset', unit='DN', low=-255.0, high=255.0)
    gamma_range: tuple = knob((0.8, 1.25), 'gamma exponent', low=0.1, high=10.0)
    jpeg_prob: float = knob(0.8, 'share of samples JPEG-compressed', low=0, high=1)
    jpeg_quality_range: tuple = knob((35, 95), 'JPEG quality', low=1, high=100)
    # ---- labels
    ignore_band: bool = knob(False, 'label the partial-alpha boundary 255 (ignored by losses and metrics)')
    ignore_band_px: int = knob(1, 'width of the ignore band', unit='px', low=0, high=64)
    min_visible_px: int = knob(4,
        'keys with fewer visible pixels are dropped from the instance list', unit='px', low=0)

    # ------------------------------------------------------------------ validation / io
    def __post_init__(self):
        """Coerce and check every field against its declared type and bounds (:mod:`synth.schema`).

        Raises:
            ValueError: ``SynthConfig.<field>=<value>: <why>`` for the first invalid field.
        """
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, list):
                setattr(self, f.name, tuple(v))
        check_fields(self)
        w = self.cutout_blend_weights
        if not (isinstance(w, tuple) and len(w) == 4 and all(isinstance(x, (int, float)) and math.isfinite(x) and x >= 0
                                                               for x in w) and sum(w) > 0):
            raise ValueError(f"SynthConfig.cutout_blend_weights must be 4 weights >= 0 (hard, gaussian, motion, "
                             f"poisson) with a positive sum, got {w!r}")
        for name in ("key_kinds", "distractor_kinds", "key_materials", "camera_effects"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, tuple) and all(isinstance(x, str) for x in v)):
                raise ValueError(f"SynthConfig.{name} must be a list of names, got {v!r}")
        from .distractors import DISTRACTOR_KINDS  # local: neither imports config
        from .effects import EFFECTS, camera_effect_names

        for name, valid in (("camera_effects", EFFECTS), ("distractor_kinds", DISTRACTOR_KINDS)):
            bad = [x for x in getattr(self, name) or () if x not in valid]
            if bad:
                raise ValueError(f"SynthConfig.{name}: unknown name(s) {bad}; valid: {sorted(valid)}")
        if self.distractor_kinds == ():
            raise ValueError("SynthConfig.distractor_kinds: an empty list draws no object; list kinds, or null for all")
        effects = camera_effect_names(self)
        twice = sorted({x for x in effects if effects.count(x) > 1})
        if twice:
            raise ValueError(f"SynthConfig.camera_effects lists {twice} more than once; each effect runs at most once "
                             f"per sample (widen its range instead)")

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def to_dict(self) -> dict:
        """Plain dict (tuples become lists) suitable for YAML/JSON."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "SynthConfig":
        """Build from a dict; unknown keys raise ValueError listing the valid keys."""
        if not isinstance(d, dict):
            raise ValueError(f"SynthConfig.from_dict needs a mapping, got {type(d).__name__}")
        valid = cls.field_names()
        bad = sorted(k for k in d if k not in valid)
        if bad:
            raise ValueError(f"unknown SynthConfig key(s) {bad}; valid keys: {valid}")
        return cls(**d)

    @classmethod
    def from_yaml(cls, path: "str | os.PathLike") -> "SynthConfig":
        """Read a YAML mapping (missing keys keep their defaults). Raises ValueError naming the file."""
        import yaml

        p = Path(path)
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except FileNotFoundError:
            raise FileNotFoundError(f"synth config {p} not found; pass an existing YAML file") from None
        except yaml.YAMLError as exc:
            raise ValueError(f"synth config {p} is not valid YAML: {exc}") from None
        try:
            return cls.from_dict(data)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{p}: {exc}") from None

    @classmethod
    def default(cls) -> "SynthConfig":
        """The packaged default (``synth/default.yaml``)."""
        return cls.from_yaml(DEFAULT_YAML)

    def to_yaml(self, path: "str | os.PathLike | None" = None) -> str:
        """YAML text; also written atomically to ``path`` when given."""
        import yaml

        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            atomic_write_text(path, text)
        return text

    def replace(self, **kw) -> "SynthConfig":
        """Copy with fields replaced (unknown names raise, listing valid keys)."""
        d = self.to_dict()
        d.update(kw)
        return SynthConfig.from_dict(d)
