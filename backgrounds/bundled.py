"""Photos bundled with scikit-image (``skimage.data``), used as real-photo backgrounds offline."""

from __future__ import annotations

import functools
import os

import cv2
import numpy as np

from .base import BackgroundError, channel_gains, check_size, crop_resize, pick

__all__ = ["BundledBackgrounds", "BUNDLED_FILES"]

# Photo-like files of skimage's data folder. Excluded: synthetic charts/logos/silhouettes
# (chessboard_*, color, logo, horse, phantom, text), microscopy / astronomy / medical images that
# look like no place a key lies (cell, ihc, microaneurysms, hubble_deep_field, retina, moon),
# and the right stereo view (duplicate of motorcycle_left). Grayscale files are converted to RGB
# (with a random tint when sampled). coins.png shows coins: fine as hard negatives (mask 0).
BUNDLED_FILES = (
    "astronaut.png", "brick.png", "camera.png", "chelsea.png", "coffee.png", "coins.png",
    "grass.png", "gravel.png", "motorcycle_left.png", "rocket.jpg", "page.png", "clock_motion.png",
)


def _data_dir() -> str:
    import skimage.data

    return os.path.dirname(skimage.data.__file__)


@functools.lru_cache(maxsize=None)
def _decode(name: str) -> tuple[np.ndarray, bool]:
    """Bundled file ``name`` as read-only RGB uint8 and whether it is grayscale (memoised: a pure
    function of the installed file).

    Raises:
        BackgroundError: the file cannot be decoded (names it and the fix).
    """
    path = os.path.join(_data_dir(), name)
    raw = cv2.imread(path, cv2.IMREAD_COLOR)  # grayscale -> 3 equal channels, alpha dropped
    if raw is None:
        raise BackgroundError(f"cannot decode bundled image {path}; reinstall scikit-image")
    img = cv2.cvtColor(raw, cv2.COLOR_BGR2RGB)
    gray = bool(np.array_equal(img[..., 0], img[..., 1]) and np.array_equal(img[..., 1], img[..., 2]))
    img.flags.writeable = False
    return img, gray


class BundledBackgrounds:
    """Random crops of scikit-image's bundled photos (``BUNDLED_FILES`` present on disk).

    Raises:
        BackgroundError: if none of the files is present (scikit-image missing or stripped).
    """

    def __init__(self, scale_range: tuple[float, float] = (0.35, 1.0)):
        self.scale_range = tuple(float(v) for v in scale_range)
        self._files: list[str] | None = None

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_files"] = None
        return state

    @property
    def files(self) -> list[str]:
        """Bundled file names found in skimage's data folder."""
        if self._files is None:
            d = _data_dir()
            self._files = [f for f in BUNDLED_FILES if os.path.isfile(os.path.join(d, f))]
            if not self._files:
                raise BackgroundError(f"no scikit-image data photos found in {d}; reinstall scikit-image "
                                      f"or use --backgrounds procedural")
        return self._files

    def sample(self, rng: np.random.Generator, size: tuple[int, int]) -> tuple[np.ndarray, dict]:
        """uint8 (H, W, 3) RGB crop; meta = {source, file, crop, flip, tint}."""
        H, W = check_size(size)
        files = self.files
        name = pick(rng, files)
        img, gray = _decode(name)
        out, meta = crop_resize(img, rng, (H, W), self.scale_range)
        tint = None
        if gray:  # grayscale source: random warm/cool tint
            tint = rng.uniform(0.75, 1.15, 3).round(3).tolist()
            out = channel_gains(out, tint)  # per-channel gain, rounded and saturating
        meta.update({"source": "bundled", "file": name, "tint": tint})
        return out, meta

    def __repr__(self) -> str:
        return "BundledBackgrounds()"
