"""Background sources for keysynth: user folders, procedural textures, scikit-image photos.

Every source implements ``sample(rng, size) -> (uint8 (H, W, 3) RGB, meta)`` (see
``BackgroundSource``), is picklable and cheap to construct. ``make_backgrounds(spec)`` builds one
from a name (``"default"``, ``"procedural"``, ``"bundled"``) or a folder path.
"""

from __future__ import annotations

import os

from .base import BackgroundError, BackgroundSource, MixedBackgrounds, crop_resize
from .bundled import BUNDLED_FILES, BundledBackgrounds
from .folder import FolderBackgrounds
from .procedural import PROCEDURAL_KINDS, ProceduralBackgrounds, fractal_noise

__all__ = [
    "BackgroundError", "BackgroundSource", "MixedBackgrounds", "FolderBackgrounds",
    "ProceduralBackgrounds", "BundledBackgrounds", "default_backgrounds", "make_backgrounds",
    "BACKGROUND_SPECS", "PROCEDURAL_KINDS", "BUNDLED_FILES", "crop_resize", "fractal_noise",
]


def default_backgrounds() -> MixedBackgrounds:
    """Procedural textures (weight 0.6) + scikit-image photos (weight 0.4)."""
    return MixedBackgrounds([(ProceduralBackgrounds(), 0.6), (BundledBackgrounds(), 0.4)])


BACKGROUND_SPECS = {
    "default": default_backgrounds,
    "procedural": ProceduralBackgrounds,
    "bundled": BundledBackgrounds,
}


def make_backgrounds(spec: "str | os.PathLike | BackgroundSource") -> BackgroundSource:
    """Build a background source from a registry name or a folder path.

    Args:
        spec: ``"default"``, ``"procedural"``, ``"bundled"``, ``"procedural:wood,tiles"`` (subset of
            kinds), a folder of photos, or an existing source (returned unchanged).

    Raises:
        ValueError: unknown name that is not an existing folder (lists valid names).
    """
    if hasattr(spec, "sample"):
        return spec  # type: ignore[return-value]
    s = os.fspath(spec)
    if s in BACKGROUND_SPECS:
        return BACKGROUND_SPECS[s]()
    if s.startswith("procedural:"):
        return ProceduralBackgrounds(tuple(k for k in s.split(":", 1)[1].split(",") if k))
    if os.path.isdir(s):
        return FolderBackgrounds(s)
    raise ValueError(f"unknown backgrounds {s!r}: not a folder and not one of {sorted(BACKGROUND_SPECS)} "
                     f"(or 'procedural:KIND,...' with kinds {sorted(PROCEDURAL_KINDS)})")
