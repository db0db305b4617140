"""Material families: each sampler draws one concrete appearance from an explicit rng.

Colours are display-referred sRGB in [0, 1]. Numbers were set by eye against phone photos of keys:
nickel-silver and steel keys look light grey with a slight warm/cool tint, brass is yellow-orange
and darker, coated keys are saturated anodised colours, antique iron is near black-brown with rust.
Every sampler returns a JSON-serialisable dict:

- ``albedo``: [r, g, b] base colour, ``diffuse``: weight of the Lambert term,
- ``specular``: Blinn-Phong strength, ``shininess``: Blinn-Phong exponent,
- ``env``: strength of the environment reflection, ``streak``: brushed-streak contrast,
- ``wear``: low-frequency tarnish/dirt contrast, ``rust``: [r, g, b] colour of the tarnish,
- ``scratches``: how many scratch lines per 100 px of length.
"""

from __future__ import annotations

import colorsys

import numpy as np

from ..meta import CleanDict
from ..seeding import uniform

__all__ = ["MATERIALS", "sample_material", "sample_plastic", "check_names"]


def _u(rng, lo: float, hi: float) -> float:
    """A uniform draw rounded to the 4 decimals meta keeps (``synth.meta.jsonable``), so a material
    dict is JSON-clean as sampled (a :class:`CleanDict`) and the renderer shades with exactly the
    values its meta records."""
    return round(uniform(rng, lo, hi), 4)


def _hsv(h: float, s: float, v: float) -> list[float]:
    return [round(c, 4) for c in colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))]


def _brass(rng):
    a = _hsv(_u(rng, 0.095, 0.135), _u(rng, 0.35, 0.65), _u(rng, 0.62, 0.92))
    return CleanDict(albedo=a, diffuse=_u(rng, 0.35, 0.6), specular=_u(rng, 0.35, 0.8), shininess=_u(rng, 12, 60),
                env=_u(rng, 0.35, 0.7), streak=_u(rng, 0.02, 0.07), wear=_u(rng, 0.05, 0.25),
                rust=_hsv(_u(rng, 0.06, 0.1), 0.6, 0.35), scratches=_u(rng, 0.5, 4.0))


def _nickel(rng):
    a = _hsv(_u(rng, 0.08, 0.16), _u(rng, 0.02, 0.1), _u(rng, 0.68, 0.92))
    return CleanDict(albedo=a, diffuse=_u(rng, 0.3, 0.55), specular=_u(rng, 0.4, 0.9), shininess=_u(rng, 15, 80),
                env=_u(rng, 0.4, 0.8), streak=_u(rng, 0.02, 0.07), wear=_u(rng, 0.03, 0.15),
                rust=_hsv(_u(rng, 0.08, 0.12), 0.15, 0.4), scratches=_u(rng, 0.5, 4.0))


def _steel(rng):
    a = _hsv(_u(rng, 0.52, 0.62), _u(rng, 0.02, 0.09), _u(rng, 0.5, 0.8))
    return CleanDict(albedo=a, diffuse=_u(rng, 0.3, 0.55), specular=_u(rng, 0.4, 0.9), shininess=_u(rng, 10, 60),
                env=_u(rng, 0.4, 0.8), streak=_u(rng, 0.03, 0.09), wear=_u(rng, 0.03, 0.2),
                rust=_hsv(_u(rng, 0.07, 0.1), 0.3, 0.35), scratches=_u(rng, 1.0, 5.0))


def _coated(rng):
    a = _hsv(_u(rng, 0.0, 1.0), _u(rng, 0.45, 0.85), _u(rng, 0.35, 0.85))
    return CleanDict(albedo=a, diffuse=_u(rng, 0.45, 0.7), specular=_u(rng, 0.25, 0.6), shininess=_u(rng, 10, 40),
                env=_u(rng, 0.2, 0.45), streak=_u(rng, 0.02, 0.05), wear=_u(rng, 0.03, 0.15),
                rust=_hsv(_u(rng, 0.55, 0.6), 0.05, 0.7), scratches=_u(rng, 0.5, 3.0))


def _iron(rng):
    a = _hsv(_u(rng, 0.05, 0.12), _u(rng, 0.08, 0.3), _u(rng, 0.18, 0.42))
    return CleanDict(albedo=a, diffuse=_u(rng, 0.5, 0.8), specular=_u(rng, 0.1, 0.4), shininess=_u(rng, 6, 25),
                env=_u(rng, 0.1, 0.35), streak=_u(rng, 0.02, 0.08), wear=_u(rng, 0.2, 0.5),
                rust=_hsv(_u(rng, 0.04, 0.08), _u(rng, 0.5, 0.8), _u(rng, 0.25, 0.45)), scratches=_u(rng, 0.0, 2.0))


MATERIALS = {"brass": _brass, "nickel": _nickel, "steel": _steel, "coated": _coated, "iron": _iron}


def check_names(names, registry: dict, what: str) -> tuple[str, ...]:
    """Validate a subset of registry names; ``None`` means all. Raises ValueError listing valid names."""
    if names is None:
        return tuple(registry)
    if isinstance(names, str):
        names = (names,)
    names = tuple(names)
    if not names:
        raise ValueError(f"empty {what} list; choose from {sorted(registry)}")
    bad = [n for n in names if n not in registry]
    if bad:
        raise ValueError(f"unknown {what} {bad}; valid {what}s: {sorted(registry)}")
    return names


def sample_material(rng: np.random.Generator, name: str) -> dict:
    """One concrete appearance of material family ``name`` (see module doc for the keys), as a
    JSON-clean :class:`~synth.meta.CleanDict` (floats at 4 decimals)."""
    if name not in MATERIALS:
        raise ValueError(f"unknown material {name!r}; valid materials: {sorted(MATERIALS)}")
    out = MATERIALS[name](rng)
    out["family"] = name
    return out


def sample_plastic(rng: np.random.Generator, dark_p: float = 0.5) -> dict:
    """Rubber/plastic/leather colour: black/dark grey with probability ``dark_p``, else a saturated hue
    (a JSON-clean :class:`~synth.meta.CleanDict`, floats at 4 decimals)."""
    if rng.random() < dark_p:
        col = _hsv(_u(rng, 0, 1), _u(rng, 0.0, 0.15), _u(rng, 0.06, 0.25))
    else:
        col = _hsv(_u(rng, 0, 1), _u(rng, 0.4, 0.9), _u(rng, 0.35, 0.9))
    return CleanDict(albedo=col, diffuse=_u(rng, 0.6, 0.9), specular=_u(rng, 0.05, 0.35), shininess=_u(rng, 4, 20),
                env=_u(rng, 0.0, 0.08))
