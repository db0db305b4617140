"""Shared pieces of the annotation readers: errors, the key-class rule, safe paths, masks.

Class rule (default when no ``--classes`` are given), :func:`is_key_class`: a label is a key
class when, split into lower-case words at non-letters and camelCase humps, one word is
``key`` or ``keys`` and no word names a key accessory (``ring``, ``chain``, ``fob``, ``tag``,
``holder``, ``hook``, ``card``, ``cover``, ``cap``, ``box``, ``hole``). So ``key``, ``Keys``,
``house_key``, ``car-key``, ``DoorKey`` are keys; ``key_ring``, ``keychain``, ``keyboard``,
``key fob`` are not. Labels ``__ignore__`` / ``ignore`` (any case) are ignore regions (255) in
every format; ignore wins over key where both cover a pixel.
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath
from typing import Iterable

import numpy as np

__all__ = [
    "AnnotationError",
    "IGNORE_LABELS",
    "is_key_class",
    "ClassFilter",
    "safe_join",
    "compose_mask",
    "coco_polygons_to_mask",
]

IGNORE_LABELS = ("__ignore__", "ignore")
_KEY_WORDS = {"key", "keys"}
_ACCESSORY_WORDS = {"ring", "rings", "chain", "chains", "fob", "fobs", "tag", "tags", "holder", "hook",
                    "card", "cover", "cap", "box", "hole"}


class AnnotationError(ValueError):
    """A malformed or unsafe annotation file. The message names the file, the field and the fix."""

    def __init__(self, file: str | os.PathLike, field: str, problem: str, fix: str = ""):
        self.file, self.field = str(file), field
        msg = f"{file}: field {field!r}: {problem}"
        if fix:
            msg += f"; {fix}"
        super().__init__(msg)


def _words(label: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", label)
    return [w for w in re.split(r"[^a-z]+", spaced.lower()) if w]


def is_key_class(label: str) -> bool:
    """Default key-class rule (module docstring): a word ``key``/``keys``, no accessory word."""
    words = _words(str(label))
    return bool(_KEY_WORDS & set(words)) and not (_ACCESSORY_WORDS & set(words))


class ClassFilter:
    """Decides, per label name, whether it is key (1), ignore (255) or neither.

    Args:
        classes: names counted as key, matched case-insensitively after stripping; ``None`` =
            :func:`is_key_class`. Ignore labels (:data:`IGNORE_LABELS`) are always ignore.
    """

    def __init__(self, classes: Iterable[str] | None = None):
        self.classes = None if classes is None else {str(c).strip().lower() for c in classes if str(c).strip()}
        if self.classes is not None and not self.classes:
            raise ValueError("classes is empty; pass at least one class name (e.g. --classes key)")

    def is_ignore(self, label: str) -> bool:
        return str(label).strip().lower() in IGNORE_LABELS

    def is_key(self, label: str) -> bool:
        if self.is_ignore(label):
            return False
        if self.classes is None:
            return is_key_class(label)
        return str(label).strip().lower() in self.classes


def safe_join(root: Path, base: Path, rel: str, *, file: str | os.PathLike, field: str) -> Path:
    """Resolve ``rel`` (POSIX or Windows separators) against folder ``base``, refusing escapes.

    The result must stay inside ``root`` (the dataset folder); absolute paths and ``..`` that
    climb out of ``root`` raise :class:`AnnotationError` naming ``file`` and ``field``.
    """
    if not isinstance(rel, str) or not rel.strip():
        raise AnnotationError(file, field, f"expected a relative path string, got {rel!r}")
    norm = rel.strip().replace("\\", "/")
    if norm.startswith("/") or re.match(r"^[A-Za-z]:/", norm):
        raise AnnotationError(file, field, f"absolute path {rel!r} refused",
                              "store image paths relative to the annotation file")
    cand = Path(os.path.normpath(str(Path(base) / PurePosixPath(norm))))
    root_abs = Path(os.path.normpath(str(Path(root).absolute())))
    cand_abs = Path(os.path.normpath(str(cand.absolute())))
    if cand_abs != root_abs and root_abs not in cand_abs.parents:
        raise AnnotationError(file, field, f"path {rel!r} points outside the dataset folder {root}",
                              "'..' may not leave the dataset folder")
    return cand



def find_image(root: Path, ann_file: Path, name: str, bases: list[Path], *, field: str) -> Path:
    """The first existing ``safe_join(root, base, name)`` over ``bases`` (duplicates skipped).

    Raises:
        AnnotationError: ``name`` escapes ``root`` (see :func:`safe_join`).
        FileNotFoundError: no candidate exists; the message names the annotation file, the field
            and every path tried.
    """
    tried = []
    for base in dict.fromkeys(bases):
        p = safe_join(root, base, name, file=ann_file, field=field)
        if p.is_file():
            return p
        tried.append(str(p))
    raise FileNotFoundError(f"{ann_file}: {field} {name!r} not found; looked at {', '.join(tried)}")

def compose_mask(shape: tuple[int, int], key_parts: Iterable[np.ndarray], ignore_parts: Iterable[np.ndarray]) -> np.ndarray:
    """Unite boolean (H, W) instance masks: uint8 (H, W), 0 bg, 1 key, 255 ignore (ignore wins)."""
    mask = np.zeros(shape, np.uint8)
    for part in key_parts:
        mask[part] = 1
    for part in ignore_parts:
        mask[part] = 255
    return mask


def coco_polygons_to_mask(polygons: list[list[float]], height: int, width: int) -> np.ndarray:
    """Rasterise flat ``[x0, y0, x1, y1, ...]`` polygons (pixel-corner coordinates, COCO
    convention) with pycocotools' ``frPyObjects`` -> bool (H, W) union. Used for COCO, CVAT and
    any other continuous-coordinate polygon so that all agree with COCO's own rasteriser."""
    from pycocotools import mask as mask_utils

    polys = [[float(v) for v in p] for p in polygons if len(p) >= 6]
    if not polys:
        return np.zeros((height, width), bool)
    rles = mask_utils.frPyObjects(polys, int(height), int(width))
    return decode_rle(mask_utils.merge(rles))


def decode_rle(rle: dict) -> np.ndarray:
    """pycocotools RLE dict (``counts`` bytes) -> bool (H, W). Silences pycocotools' NumPy-2
    ``__array__`` DeprecationWarning, which is about its Cython glue, not the data."""
    import warnings

    from pycocotools import mask as mask_utils

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return mask_utils.decode([rle])[:, :, 0].astype(bool)


def clip_paste(canvas: np.ndarray, patch: np.ndarray, top: int, left: int) -> None:
    """OR a boolean ``patch`` into boolean ``canvas`` at (top, left), clipped to the canvas."""
    h, w = canvas.shape
    ph, pw = patch.shape
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + ph, h), min(left + pw, w)
    if y1 <= y0 or x1 <= x0:
        return
    canvas[y0:y1, x0:x1] |= patch[y0 - top:y1 - top, x0 - left:x1 - left]


def check_size(file, field: str, image: np.ndarray, height: int | None, width: int | None, image_path) -> None:
    """Raise AnnotationError when the annotation's declared size differs from the decoded image."""
    if height is None or width is None:
        return
    h, w = image.shape[:2]
    if (int(height), int(width)) != (h, w):
        hint = " (EXIF rotation? the image is stored transposed)" if (int(height), int(width)) == (w, h) else ""
        raise AnnotationError(file, field, f"declares {int(width)}x{int(height)} but image {image_path} is {w}x{h}{hint}",
                              "re-export the annotations for this image")
