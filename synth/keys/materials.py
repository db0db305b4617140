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
import functools

import numpy as np

from ..meta import CleanDict, round4

__all__ = ["MATERIALS", "FAMILIES", "sample_material", "sample_plastic", "check_names"]


def _scaled(u: float, lo: float, hi: float) -> float:
    """A unit draw ``u`` mapped to [lo, hi) as ``synth.seeding.uniform`` maps it (same double),
    rounded to the 4 decimals meta keeps: materials are JSON-clean as sampled and the renderer
    shades with exactly the values its meta records."""
    return round4(lo + (hi - lo) * u)


def _hsv(h: float, s: float, v: float) -> list[float]:
    return [round4(c) for c in colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))]


#: the order in which a family's parameters are drawn (a ``(lo, hi)`` range is drawn uniformly, a
#: number is a constant); albedo and rust colours are HSV.
_ORDER = ("hue", "sat", "val", "diffuse", "specular", "shininess", "env", "streak", "wear",
          "rust_hue", "rust_sat", "rust_val", "scratches")


def _family(**spec) -> dict:
    if set(spec) != set(_ORDER):
        raise ValueError(f"a material family needs exactly {_ORDER}")
    return {k: spec[k] for k in _ORDER}


#: material families: every parameter's range
FAMILIES = {
    "brass": _family(hue=(0.095, 0.135), sat=(0.35, 0.65), val=(0.62, 0.92), diffuse=(0.35, 0.6), specular=(0.35, 0.8),
                     shininess=(12, 60), env=(0.35, 0.7), streak=(0.02, 0.07), wear=(0.05, 0.25),
                     rust_hue=(0.06, 0.1), rust_sat=0.6, rust_val=0.35, scratches=(0.5, 4.0)),
    "nickel": _family(hue=(0.08, 0.16), sat=(0.02, 0.1), val=(0.68, 0.92), diffuse=(0.3, 0.55), specular=(0.4, 0.9),
                      shininess=(15, 80), env=(0.4, 0.8), streak=(0.02, 0.07), wear=(0.03, 0.15),
                      rust_hue=(0.08, 0.12), rust_sat=0.15, rust_val=0.4, scratches=(0.5, 4.0)),
    "steel": _family(hue=(0.52, 0.62), sat=(0.02, 0.09), val=(0.5, 0.8), diffuse=(0.3, 0.55), specular=(0.4, 0.9),
                     shininess=(10, 60), env=(0.4, 0.8), streak=(0.03, 0.09), wear=(0.03, 0.2),
                     rust_hue=(0.07, 0.1), rust_sat=0.3, rust_val=0.35, scratches=(1.0, 5.0)),
    "coated": _family(hue=(0.0, 1.0), sat=(0.45, 0.85), val=(0.35, 0.85), diffuse=(0.45, 0.7), specular=(0.25, 0.6),
                      shininess=(10, 40), env=(0.2, 0.45), streak=(0.02, 0.05), wear=(0.03, 0.15),
                      rust_hue=(0.55, 0.6), rust_sat=0.05, rust_val=0.7, scratches=(0.5, 3.0)),
    "iron": _family(hue=(0.05, 0.12), sat=(0.08, 0.3), val=(0.18, 0.42), diffuse=(0.5, 0.8), specular=(0.1, 0.4),
                    shininess=(6, 25), env=(0.1, 0.35), streak=(0.02, 0.08), wear=(0.2, 0.5),
                    rust_hue=(0.04, 0.08), rust_sat=(0.5, 0.8), rust_val=(0.25, 0.45), scratches=(0.0, 2.0)),
}
_N_DRAWS = {name: sum(type(v) is tuple for v in spec.values()) for name, spec in FAMILIES.items()}


def _sample_family(rng: np.random.Generator, name: str) -> CleanDict:
    """Every range of family ``name`` drawn in ``_ORDER`` from ONE ``rng.random(n)`` call: the same
    values and stream position as one ``uniform`` call per range, rounded to 4 decimals."""
    draws = rng.random(_N_DRAWS[name]).tolist()
    v, j = {}, 0
    for k, x in FAMILIES[name].items():  # a plain loop: ~1.5x cheaper than a comprehension over next()
        if type(x) is tuple:
            v[k] = _scaled(draws[j], *x)
            j += 1
        else:
            v[k] = x
    return CleanDict(albedo=_hsv(v["hue"], v["sat"], v["val"]), diffuse=v["diffuse"], specular=v["specular"],
                     shininess=v["shininess"], env=v["env"], streak=v["streak"], wear=v["wear"],
                     rust=_hsv(v["rust_hue"], v["rust_sat"], v["rust_val"]), scratches=v["scratches"])


MATERIALS = {name: functools.partial(_sample_family, name=name) for name in FAMILIES}  # name -> sampler(rng)


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
    u = rng.random(8).tolist()  # == eight successive draws (branch, hue, sat, val, four ranges)

    if u[0] < dark_p:
        col = _hsv(_scaled(u[1], 0, 1), _scaled(u[2], 0.0, 0.15), _scaled(u[3], 0.06, 0.25))
    else:
        col = _hsv(_scaled(u[1], 0, 1), _scaled(u[2], 0.4, 0.9), _scaled(u[3], 0.35, 0.9))
    return CleanDict(albedo=col, diffuse=_scaled(u[4], 0.6, 0.9), specular=_scaled(u[5], 0.05, 0.35),
                     shininess=_scaled(u[6], 4, 20), env=_scaled(u[7], 0.0, 0.08))
