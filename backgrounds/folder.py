"""Backgrounds from a folder of user photos (recursive JPEG/PNG), with a decode cache owned by the source."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2
import numpy as np

from keysynth.common import IMAGE_EXTENSIONS

from .base import BackgroundError, check_size, crop_resize
from .cache import LRUCache

log = logging.getLogger(__name__)

__all__ = ["FolderBackgrounds", "IMAGE_EXTENSIONS"]


#: default budget of a source's decoded-photo cache, MiB (``KEYSYNTH_BG_CACHE_MB`` overrides it)
DEFAULT_CACHE_MIB = 384.0


def _photo_cache() -> LRUCache:
    """An empty decoded-photo cache with this process's budget (``KEYSYNTH_BG_CACHE_MB``)."""
    return LRUCache(float(os.environ.get("KEYSYNTH_BG_CACHE_MB", DEFAULT_CACHE_MIB)))


def _read_header(path: Path) -> tuple[int, bool]:
    """``(short side from the header, 0 when unknown; True when the file ends with its format's end
    marker: JPEG EOI ``FF D9`` or PNG ``IEND`` within the last 64 bytes, other formats True)``."""
    short, ext = 0, path.suffix.lower()
    try:
        from PIL import Image

        with Image.open(path) as im:
            short = min(im.size)
    except Exception:  # noqa: BLE001 - the decode reports the error with the file name
        short = 0
    marker = {".jpg": b"\xff\xd9", ".jpeg": b"\xff\xd9", ".png": b"IEND"}.get(ext)
    ok = True
    if marker is not None:
        with open(path, "rb") as fh:
            fh.seek(max(0, path.stat().st_size - 64))
            ok = marker in fh.read()
    return short, ok


def _reduction(path: Path, short: int, need: int) -> int:
    """JPEG decode reduction (1, 2, 4 or 8) of ``path``: the largest whose short side (``short`` px
    from the header, 0 when unknown) still covers ``need`` px."""
    if path.suffix.lower() not in (".jpg", ".jpeg"):
        return 1
    return next((r for r in (8, 4, 2) if short and short // r >= need), 1)


_MIN_SIDE = 2  # px; a smaller decoded photo cannot be cropped and rescaled into a background

_REDUCED = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
            8: cv2.IMREAD_REDUCED_COLOR_8}


class FolderBackgrounds:
    """Random crops of the photos under ``root`` (recursive), rescaled to the requested size.

    The file index is built lazily on first use (construction and pickling are cheap). Decoded
    photos are cached by the source (``photo_cache``: LRU, budget ``KEYSYNTH_BG_CACHE_MB`` MiB,
    default 384, read where the source is built or unpickled; a pickled or deep-copied source
    arrives with an empty cache, so each worker process or thread fills its own) at the
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
        self.skipped: dict[str, str] = {}  # file -> why it was skipped (this process)
        self.photo_cache = _photo_cache()
        self._headers: dict[str, tuple[int, bool]] = {}  # path -> _read_header(path)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_files"] = None  # re-index lazily in the worker: keeps pickles small
        state["skipped"] = {}
        state["_headers"] = {}
        del state["photo_cache"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.photo_cache = _photo_cache()  # empty, with the budget of the process it arrives in

    def _header(self, path: Path) -> tuple[int, bool]:
        """:func:`_read_header` of ``path``, memoised by this source."""
        hit = self._headers.get(str(path))
        if hit is None:
            hit = self._headers[str(path)] = _read_header(path)
        return hit

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
        """The photo decoded at the reduction ``need`` calls for (cached under that reduction only,
        so a sample's pixels never depend on what was decoded before).

        Raises:
            BackgroundError: the file is truncated (no JPEG end-of-image / PNG IEND marker) or
                cannot be decoded.
        """
        path = self.root / rel
        red = _reduction(path, self._header(path)[0], need)
        return self.photo_cache.get((str(path), red), lambda: self._decode(path, red))

    def _decode(self, path: Path, red: int) -> np.ndarray:
        if not self._header(path)[1]:
            raise BackgroundError(f"background image {path} is truncated (its end marker is missing); re-save "
                                  f"or delete it, or remove it from {self.root}")
        bgr = cv2.imread(str(path), _REDUCED[red])
        if bgr is None or bgr.ndim != 3:
            raise BackgroundError(
                f"cannot decode background image {path}: the file is corrupt or not an image; "
                f"delete or re-save it (JPEG/PNG) or remove it from {self.root}")
        if min(bgr.shape[:2]) < _MIN_SIDE:
            raise BackgroundError(
                f"background image {path} decodes to {bgr.shape[1]}x{bgr.shape[0]} px, too small to crop a "
                f"background from (at least {_MIN_SIDE} px per side); use a larger photo or remove it from {self.root}")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def sample(self, rng: np.random.Generator, size: tuple[int, int]) -> tuple[np.ndarray, dict]:
        """Random photo, random crop (output aspect), rescale; meta names source/file/crop/reduce.

        A truncated or undecodable photo is skipped (the next file in sorted order is used; each
        skipped file is logged once and counted in ``skipped``); only when no photo decodes is it an error.
        """
        H, W = check_size(size)
        files = self.files
        first = int(rng.integers(len(files)))  # the draw of ``pick(rng, files)``
        # The decoded short side covers the output at the largest crop (smaller crops upsample a
        # little, which reads as a slightly defocused background).
        need = int(max(H, W))
        for k in range(len(files)):
            rel = files[(first + k) % len(files)]
            if rel in self.skipped:
                continue
            try:
                img = self._load(rel, need)
                break
            except BackgroundError as exc:
                self.skipped[rel] = str(exc)
                log.warning("skipping background %s (%d skipped so far): %s", rel, len(self.skipped), exc)
        else:
            name, why = next(iter(self.skipped.items()))
            raise BackgroundError(f"no background image in {self.root} can be used ({len(self.skipped)} skipped; "
                                  f"{name}: {why})")
        out, meta = crop_resize(img, rng, (H, W), self.scale_range)
        meta.update({"source": "folder", "file": rel, "decoded_hw": list(img.shape[:2])})
        return out, meta

    def __repr__(self) -> str:
        return f"FolderBackgrounds({str(self.root)!r})"
