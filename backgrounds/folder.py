"""Backgrounds from a folder of user photos (recursive JPEG/PNG), with a per-process decode cache."""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import cv2
import numpy as np

from .base import BackgroundError, check_size, crop_resize, pick

__all__ = ["FolderBackgrounds", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

# Per-process cache of decoded, downscaled photos: key (path, reduce) -> RGB uint8. Module level so
# that a source unpickled in a worker process reuses it across samples; never pickled.
_CACHE: "OrderedDict[tuple[str, int], np.ndarray]" = OrderedDict()
_CACHE_BYTES = [0]


def _cache_budget_bytes() -> int:
    return int(float(os.environ.get("KEYSYNTH_BG_CACHE_MB", "384")) * 2**20)


def _cache_get(key):
    img = _CACHE.get(key)
    if img is not None:
        _CACHE.move_to_end(key)
    return img


def _cache_put(key, img: np.ndarray) -> None:
    budget = _cache_budget_bytes()
    if img.nbytes > budget:
        return
    _CACHE[key] = img
    _CACHE_BYTES[0] += img.nbytes
    while _CACHE_BYTES[0] > budget and _CACHE:
        _, old = _CACHE.popitem(last=False)
        _CACHE_BYTES[0] -= old.nbytes


_REDUCED = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
            8: cv2.IMREAD_REDUCED_COLOR_8}


class FolderBackgrounds:
    """Random crops of the photos under ``root`` (recursive), rescaled to the requested size.

    The file index is built lazily on first use (construction and pickling are cheap). Decoded
    photos are cached per process (LRU, budget ``KEYSYNTH_BG_CACHE_MB`` MiB, default 384) at the
    smallest JPEG decode reduction (1/2, 1/4, 1/8 via ``cv2.IMREAD_REDUCED_COLOR_*``) whose short
    side still covers ``min_scale`` x the requested size, so large photos are never decoded at
    full resolution when the output is small.

    Args:
        root: folder with .jpg/.jpeg/.png/.bmp/.webp files (searched recursively).
        scale_range: crop side relative to the largest crop of the output aspect (see
            ``crop_resize``).

    Raises:
        BackgroundError: root missing / not a folder / holds no images (on first sample), or a
            file cannot be decoded (names the file and the fix).
    """

    def __init__(self, root: str | os.PathLike, scale_range: tuple[float, float] = (0.35, 1.0)):
        self.root = Path(root)
        if not self.root.exists():
            raise BackgroundError(f"background folder {self.root} does not exist; pass a folder of "
                                  f"JPEG/PNG photos or one of the built-in names")
        if not self.root.is_dir():
            raise BackgroundError(f"background path {self.root} is not a folder; pass a folder of JPEG/PNG photos")
        self.scale_range = tuple(float(v) for v in scale_range)
        self._files: list[str] | None = None

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_files"] = None  # re-index lazily in the worker: keeps pickles small
        return state

    @property
    def files(self) -> list[str]:
        """Sorted list of image paths (relative to root, POSIX separators)."""
        if self._files is None:
            files = sorted(
                p.relative_to(self.root).as_posix() for p in self.root.rglob("*")
                if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
            )
            if not files:
                raise BackgroundError(
                    f"background folder {self.root} holds no images ({', '.join(IMAGE_EXTENSIONS)}, searched "
                    f"recursively); add photos or use --backgrounds default")
            self._files = files
        return self._files

    def __len__(self) -> int:
        return len(self.files)

    def _load(self, rel: str, need: int) -> np.ndarray:
        path = self.root / rel
        key_full = (str(path), 1)
        # Prefer any cached version that is large enough.
        for red in (8, 4, 2, 1):
            img = _cache_get((str(path), red))
            if img is not None and (red == 1 or min(img.shape[:2]) >= need):
                return img
        red = 1
        if path.suffix.lower() in (".jpg", ".jpeg"):
            try:
                from PIL import Image

                with Image.open(path) as im:
                    short = min(im.size)
                red = 1
                for r in (8, 4, 2):
                    if short // r >= need:
                        red = r
                        break
            except Exception:  # noqa: BLE001 - fall back to a full decode, which reports the error
                red = 1
        flag = _REDUCED[red]
        bgr = cv2.imread(str(path), flag)
        if bgr is None or bgr.ndim != 3 or bgr.shape[0] < 2 or bgr.shape[1] < 2:
            raise BackgroundError(
                f"cannot decode background image {path}: the file is corrupt or not an image; "
                f"delete or re-save it (JPEG/PNG) or remove it from {self.root}")
        img = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        _cache_put((str(path), red) if red != 1 else key_full, img)
        return img

    def sample(self, rng: np.random.Generator, size: tuple[int, int]) -> tuple[np.ndarray, dict]:
        """Random photo, random crop (output aspect), rescale; meta names source/file/crop/reduce."""
        H, W = check_size(size)
        files = self.files
        rel = pick(rng, files)
        # The decoded short side covers the output at the largest crop (smaller crops upsample a
        # little, which reads as a slightly defocused background).
        need = int(max(H, W))
        img = self._load(rel, need)
        out, meta = crop_resize(img, rng, (H, W), self.scale_range)
        meta.update({"source": "folder", "file": rel, "decoded_hw": list(img.shape[:2])})
        return out, meta

    def __repr__(self) -> str:
        return f"FolderBackgrounds({str(self.root)!r})"
