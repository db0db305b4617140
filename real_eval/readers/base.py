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

import contextlib
import contextvars
import logging
import os
import re
from pathlib import Path, PurePosixPath
from typing import Iterable, Iterator

import numpy as np

__all__ = [
    "AnnotationError",
    "IGNORE_LABELS",
    "is_key_class",
    "ClassFilter",
    "safe_join",
    "find_image",
    "inside_real",
    "sample_name",
    "check_coords",
    "to_int",
    "png_size",
    "check_patch_size",
    "compose_mask",
    "coco_polygons_to_mask",
    "warn_empty",
    "warn_dropped",
    "strict_annotations",
]

log = logging.getLogger("real_eval.readers")

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


def inside_real(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """True when ``path``, with every symlink resolved (``os.path.realpath``), lies in ``folder``
    (also resolved) or is ``folder`` itself."""
    real, top = os.path.realpath(path), os.path.realpath(folder)
    return real == top or real.startswith(top.rstrip(os.sep) + os.sep)


def safe_join(root: Path, base: Path, rel: str, *, file: str | os.PathLike, field: str) -> Path:
    """Resolve ``rel`` (POSIX or Windows separators) against folder ``base``, refusing escapes.

    The result must stay inside ``root`` (the dataset folder), both as written and after
    resolving symlinks (``os.path.realpath``), so a link to a file outside the dataset is refused
    too. Absolute paths, ``..`` that climb out of ``root`` and such links raise
    :class:`AnnotationError` naming ``file`` and ``field``.
    """
    if not isinstance(rel, str) or not rel.strip():
        raise AnnotationError(file, field, f"expected a relative path string, got {rel!r}")
    if "\0" in rel:
        raise AnnotationError(file, field, f"path {rel!r} holds a NUL character")
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
    if not inside_real(cand, root):
        raise AnnotationError(file, field, f"path {rel!r} is a symlink (or lies under one) resolving to "
                              f"{os.path.realpath(cand)}, outside the dataset folder {root}",
                              "copy the file into the dataset folder instead of linking to it")
    return cand


def find_image(root: Path, ann_file: Path, name: str, bases: list[Path], *, field: str) -> Path:
    """The first existing ``safe_join(root, base, name)`` over ``bases`` (duplicates skipped).

    Raises:
        AnnotationError: ``name`` escapes ``root`` or is a symlink out of it (see :func:`safe_join`).
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


_UNSAFE_NAME_CHARS = re.compile(r"[/\\\x00-\x1f\x7f]")


def sample_name(parts: Iterable[str]) -> str:
    """Join name parts (dataset folders, subset, path pieces, stem) with ``"__"`` into one
    file-name-safe sample name: path separators and control characters inside a part become
    ``"_"`` and empty parts are dropped, so the name can never be a path. The result is checked
    again by :class:`real_eval.dataset.RealSample` (``.``/``..``/empty names are refused there)."""
    return "__".join(p for p in (_UNSAFE_NAME_CHARS.sub("_", str(x)) for x in parts) if p)


def check_coords(xy, height: int, width: int, *, file: str | os.PathLike, field: str) -> np.ndarray:
    """Validate annotation coordinates before rasterising; returns them as float64 (N, 2).

    ``xy`` is a flat ``[x0, y0, x1, y1, ...]`` sequence or an (N, 2) array of pixel coordinates.
    Every value must be finite and within ``|x| <= 4 * width + 1000``, ``|y| <= 4 * height + 1000``
    (a generous margin around the image); anything else (NaN, inf, 1e12) would make the
    rasterisers allocate without bound.

    Raises:
        AnnotationError: an odd count, a non-number, a non-finite or a far-out coordinate
            (the message gives the first bad value and the allowed range).
    """
    try:
        arr = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    except (TypeError, ValueError):
        raise AnnotationError(file, field, "coordinates must be numbers in x, y pairs") from None
    bad = ~np.isfinite(arr)
    if bad.any():
        v = arr[bad][0]
        raise AnnotationError(file, field, f"coordinate {v} is not a finite number",
                              "fix or delete this shape in the annotation tool")
    lim = np.array([4 * int(width) + 1000, 4 * int(height) + 1000], np.float64)
    far = np.abs(arr) > lim
    if far.any():
        i, j = np.argwhere(far)[0]
        raise AnnotationError(file, field, f"coordinate {'xy'[j]} = {arr[i, j]:g} is far outside the "
                              f"{int(width)}x{int(height)} image (allowed |{'xy'[j]}| <= {lim[j]:g})",
                              "fix or delete this shape in the annotation tool")
    return arr


def to_int(value, *, file: str | os.PathLike, field: str, lo: float = -2**31, hi: float = 2**31 - 1) -> int:
    """A finite number (int, float or numeric string) in ``[lo, hi]`` -> int (rounded).

    Raises:
        AnnotationError: missing, not a number, NaN/inf, or outside ``[lo, hi]``.
    """
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise AnnotationError(file, field, f"expected a number, got {value!r}") from None
    if not np.isfinite(f) or not lo <= f <= hi:
        raise AnnotationError(file, field, f"expected a finite number in [{lo:g}, {hi:g}], got {value!r}",
                              "fix or delete this shape in the annotation tool")
    return int(round(f))


def png_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from a PNG's IHDR header, or ``None`` when ``data`` is not a PNG.
    Reads 24 bytes only, so a size can be checked before anything is decoded."""
    if len(data) < 24 or data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return None
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def check_patch_size(pw: int, ph: int, max_w: int, max_h: int, *, file: str | os.PathLike, field: str) -> None:
    """Refuse a mask patch of ``pw x ph`` px larger than the ``max_w x max_h`` image it belongs to
    (checked before decoding, so a decompression bomb never allocates)."""
    if pw > max_w or ph > max_h:
        raise AnnotationError(file, field, f"mask patch is {pw}x{ph} px, larger than the {max_w}x{max_h} image; "
                              "refused before decoding", "crop the mask to the image in the annotation tool")


_STRICT: contextvars.ContextVar[bool] = contextvars.ContextVar("keysynth_strict_annotations", default=False)


@contextlib.contextmanager
def strict_annotations(on: bool = True) -> Iterator[None]:
    """Within the block, annotation objects that would be skipped with a warning (:func:`warn_empty`,
    :func:`warn_dropped`) raise :class:`AnnotationError` instead (the ``--strict`` flag)."""
    token = _STRICT.set(bool(on))
    try:
        yield
    finally:
        _STRICT.reset(token)


def _skipped(file: str | os.PathLike, what: str) -> None:
    if _STRICT.get():
        raise AnnotationError(file, "<objects>", what, "fix them in the annotation tool, or run without --strict "
                                                       "to skip them with a warning")
    log.warning("%s: %s", file, what)


def warn_empty(file: str | os.PathLike, count: int) -> None:
    """Warn when ``count`` key/ignore shapes of ``file`` covered no pixel of their image (placed
    fully outside it, or degenerate), so they were silently contributing nothing; an error under
    :func:`strict_annotations`."""
    if count:
        _skipped(file, f"{count} key/ignore shape(s) cover no pixel of their image (placed outside it or degenerate); "
                       "they add nothing to the masks, check them in the annotation tool")


def warn_dropped(file: str | os.PathLike, count: int, why: str) -> None:
    """Warn that ``count`` annotation objects of ``file`` were dropped, and ``why``; an error under
    :func:`strict_annotations`."""
    if count:
        _skipped(file, f"{count} annotation object(s) dropped: {why}")


def compose_mask(shape: tuple[int, int], key_parts: Iterable[np.ndarray], ignore_parts: Iterable[np.ndarray]) -> np.ndarray:
    """Unite boolean (H, W) instance masks: uint8 (H, W), 0 bg, 1 key, 255 ignore (ignore wins)."""
    mask = np.zeros(shape, np.uint8)
    for part in key_parts:
        mask[part] = 1
    for part in ignore_parts:
        mask[part] = 255
    return mask


def coco_polygons_to_mask(polygons: list[list[float]], height: int, width: int, *,
                          file: str | os.PathLike = "<polygon>", field: str = "points") -> np.ndarray:
    """Rasterise flat ``[x0, y0, x1, y1, ...]`` polygons (pixel-corner coordinates, COCO
    convention) with pycocotools' ``frPyObjects`` -> bool (H, W) union. Used for COCO, CVAT and
    any other continuous-coordinate polygon so that all agree with COCO's own rasteriser.

    Raises:
        AnnotationError: a coordinate that is not finite or lies far outside the image
            (:func:`check_coords`; ``file``/``field`` name it in the message).
    """
    from pycocotools import mask as mask_utils

    polys = [[float(v) for v in p] for p in polygons if len(p) >= 6]
    for p in polys:
        check_coords(p, height, width, file=file, field=field)
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
    for v in (height, width):
        if isinstance(v, bool) or not isinstance(v, (int, float, str)):
            raise AnnotationError(file, field, f"must be whole numbers of pixels, got {v!r}")
    try:
        height, width = int(float(height)), int(float(width))
    except (ValueError, OverflowError):
        raise AnnotationError(file, field, f"must be whole numbers of pixels, got {height!r} x {width!r}") from None
    if (height, width) != (h, w):
        hint = " (EXIF rotation? the image is stored transposed)" if (int(height), int(width)) == (w, h) else ""
        raise AnnotationError(file, field, f"declares {int(width)}x{int(height)} but image {image_path} is {w}x{h}{hint}",
                              "re-export the annotations for this image")
