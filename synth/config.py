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

__all__ = ["SynthConfig", "DEFAULT_YAML"]

DEFAULT_YAML = Path(__file__).with_name("default.yaml")
MAX_SIZE = 4096  # px: the largest sample side (memory grows with its square)
CAMERA_BACKENDS = ("native", "imgaug")


@dataclass
class SynthConfig:
    # ---- frame / sources
    size: int = 256                       # output side (square), px
    backgrounds: str = "default"          # make_backgrounds spec when no source is passed
    key_source: str = "procedural"        # "procedural" (synth.keys), "fallback", a cut-out folder, or a mix "procedural:0.5,DIR:0.5"
    key_kinds: tuple | None = None        # subset for ProceduralKeys (None = all)
    key_materials: tuple | None = None
    # ---- asset bank (synth.keys.bank): cached key / distractor geometry, re-lit per sample
    asset_bank_size: int = 64             # key shapes per size bucket; 0 = build every object afresh
    distractor_bank_size: int = 8         # shapes per distractor kind and size bucket (0 = afresh)
    background_bank_size: int = 64        # procedural background textures per generation (0 = afresh)
    asset_bank_refresh: int = 20000       # samples per bank generation (new shapes after that many indices)
    asset_cache_mib: int = 384            # per-process LRU budget for cached geometry, MiB
    # ---- scene layout
    empty_prob: float = 0.12              # samples with no key at all (empty mask)
    n_keys_range: tuple = (1, 4)          # inclusive
    key_length_range: tuple = (0.02, 0.8)  # key long side / frame side, LOG-uniform (tiny draws)
    key_length_typical_range: tuple = (0.15, 0.7)  # LOG-uniform range of the other draws
    tiny_key_prob: float = 0.15           # draw from the full key_length_range (phone photos: tiny keys)
    crop_like_prob: float = 0.2           # one key centred with margin (second-stage crop view)
    crop_like_length_range: tuple = (0.45, 0.95)
    crop_like_cut_prob: float = 0.35      # ... of which partly cut by the border
    ring_cluster_prob: float = 0.35       # several keys fanned on one ring (overlapping)
    border_cut_prob: float = 0.15         # a free key placed partly outside the frame
    cutout_relight: bool = True           # re-light photographed cut-outs to the scene (exposure, contrast, colour, gradient)
    cutout_blend_weights: tuple = (0.25, 0.35, 0.2, 0.2)  # cut-out edge blend: hard, gaussian, motion, poisson
    perspective_range: tuple = (0.0, 0.15)  # corner jitter / cut-out side (projective warp)
    aspect_jitter_range: tuple = (0.85, 1.15)  # foreshortening of the key's width
    # ---- light (one direction per scene)
    light_elevation_range: tuple = (20.0, 75.0)  # deg above the table plane
    lighting_gradient_range: tuple = (0.0, 0.45)  # amplitude of the multiplicative gradient
    ambient_range: tuple = (0.75, 1.2)    # global exposure factor of the scene
    # ---- family: key metal shading
    shading: bool = True
    # ---- family: shadows
    shadows: bool = True
    shadow_prob: float = 0.85
    shadow_strength_range: tuple = (0.15, 0.6)
    shadow_offset_range: tuple = (0.01, 0.08)   # x key length, along the light direction
    shadow_blur_range: tuple = (0.005, 0.04)    # sigma, x key length
    contact_shadow_strength_range: tuple = (0.2, 0.55)
    # ---- family: occluders / negatives
    occluders: bool = True
    key_ring_prob: float = 0.45           # ring through a key's bow hole (mask 0)
    n_distractors_range: tuple = (0, 4)   # hard negatives (coins, clips, fobs...; mask 0), inclusive
    distractor_size_range: tuple = (0.04, 0.35)  # x frame side, log-uniform
    hand_prob: float = 0.25               # finger/thumb shapes over a key (mask updated)
    blob_occluder_prob: float = 0.15      # generic object edge crossing a key
    # ---- family: camera chain (after compositing, this order)
    camera: bool = True
    camera_effects: tuple = ("defocus_blur", "motion_blur", "vignette", "sensor_noise", "color", "jpeg")
    camera_backend: str = "native"        # "native" (fast) or "imgaug": sensor_noise+color+jpeg via imgaug
    defocus_prob: float = 0.35
    defocus_sigma_range: tuple = (0.4, 3.0)      # px @512
    motion_blur_prob: float = 0.2
    motion_blur_length_range: tuple = (2.0, 14.0)  # px @512
    vignette_prob: float = 0.5
    vignette_strength_range: tuple = (0.05, 0.45)
    noise_prob: float = 0.9
    shot_noise_range: tuple = (0.0, 1.2)          # DN-variance factor
    read_noise_range: tuple = (0.3, 4.0)          # DN sigma
    noise_grain_range: tuple = (1.0, 2.5)
    color_prob: float = 1.0
    wb_gain_range: tuple = (0.85, 1.15)
    saturation_range: tuple = (0.65, 1.25)
    contrast_range: tuple = (0.8, 1.2)
    brightness_range: tuple = (-18.0, 18.0)
    gamma_range: tuple = (0.8, 1.25)
    jpeg_prob: float = 0.8
    jpeg_quality_range: tuple = (35, 95)
    # ---- labels
    ignore_band: bool = False             # 255 on the partial-alpha boundary
    ignore_band_px: int = 1
    min_visible_px: int = 4               # keys with fewer visible pixels are dropped from instances

    # ------------------------------------------------------------------ validation / io
    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, list):
                setattr(self, f.name, tuple(v))
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name.endswith("_range"):
                if not (isinstance(v, tuple) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v)):
                    raise ValueError(f"SynthConfig.{f.name} must be a (low, high) pair of numbers, got {v!r}")
                if v[0] > v[1]:
                    raise ValueError(f"SynthConfig.{f.name} low > high: {v!r}; swap the values")
            if f.name.endswith("_prob") and not (isinstance(v, (int, float)) and 0.0 <= v <= 1.0):
                raise ValueError(f"SynthConfig.{f.name} must be a probability in [0, 1], got {v!r}")
        w = self.cutout_blend_weights
        if not (isinstance(w, tuple) and len(w) == 4 and all(isinstance(x, (int, float)) and math.isfinite(x) and x >= 0
                                                               for x in w) and sum(w) > 0):
            raise ValueError(f"SynthConfig.cutout_blend_weights must be 4 weights >= 0 (hard, gaussian, motion, "
                             f"poisson) with a positive sum, got {w!r}")
        if not isinstance(self.size, int) or self.size < 16:
            raise ValueError(f"SynthConfig.size must be an int >= 16 (px), got {self.size!r}")
        if self.size > MAX_SIZE:
            raise ValueError(f"SynthConfig.size={self.size} px is above {MAX_SIZE} (one float32 canvas alone would "
                             f"take {self.size ** 2 * 12 / 2**30:.1f} GiB); render at most {MAX_SIZE} px and resize")
        if self.n_keys_range[0] < 1:
            raise ValueError(f"SynthConfig.n_keys_range must start at >= 1 (use empty_prob for empty samples), got {self.n_keys_range!r}")
        if self.key_length_range[0] <= 0:
            raise ValueError(f"SynthConfig.key_length_range must be > 0, got {self.key_length_range!r}")
        for name in ("asset_bank_size", "distractor_bank_size", "background_bank_size", "asset_cache_mib"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"SynthConfig.{name} must be an int >= 0, got {v!r}")
        if isinstance(self.asset_bank_refresh, bool) or not isinstance(self.asset_bank_refresh, int) \
                or self.asset_bank_refresh < 1:
            raise ValueError(f"SynthConfig.asset_bank_refresh must be an int >= 1 (samples), got {self.asset_bank_refresh!r}")
        if self.camera_backend not in CAMERA_BACKENDS:
            raise ValueError(f"SynthConfig.camera_backend must be one of {CAMERA_BACKENDS}, got {self.camera_backend!r}")
        from .effects import EFFECTS  # local: effects imports nothing from config

        bad = [e for e in self.camera_effects if e not in EFFECTS]
        if bad:
            raise ValueError(f"SynthConfig.camera_effects: unknown effect(s) {bad}; valid: {sorted(EFFECTS)}")

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
            p = Path(path)
            tmp = p.with_name(f".{p.name}.tmp{os.getpid()}")
            tmp.write_text(text)
            os.replace(tmp, p)
        return text

    def replace(self, **kw) -> "SynthConfig":
        """Copy with fields replaced (unknown names raise, listing valid keys)."""
        d = self.to_dict()
        d.update(kw)
        return SynthConfig.from_dict(d)
