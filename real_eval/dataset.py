"""Real annotated photos: the :class:`RealSample` record and :func:`load_real_set`.

Every model is judged on real photos. ``load_real_set`` reads a folder in any supported
annotation format (see :mod:`real_eval.readers`: ``masks``, ``coco``, ``cvat``, ``supervisely``,
``labelme``), keeps the key classes, and returns one binary mask per image:

* ``mask`` uint8 (H, W): 0 = background, 1 = key, 255 = ignore (excluded from every metric;
  ``ignore_index=255`` as in the sample contract of docs/DESIGN.md).

Mask-folder layout (format ``masks``)::

    ROOT/images/NAME.jpg|png|...   RGB photo
    ROOT/masks/NAME.png            0/255 or 0/1 (single channel; 0/1/255 = synth convention,
                                   1 = key, 255 = ignore)
    ROOT/ignore/NAME.png           optional: non-zero = ignore (written by ``keysynth convert``)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from keysynth.common import IMAGE_EXTENSIONS

__all__ = ["RealSample", "load_real_set", "read_image_rgb", "IMAGE_EXTENSIONS", "check_sample_name", "output_file"]



def check_sample_name(name: object) -> str:
    """Return ``name`` when it is a file-name-safe sample name, else raise ValueError.

    Safe: a non-empty ``str``, not ``.`` or ``..``, without ``/``, ``\\``, NUL or other control
    characters, at most 240 UTF-8 bytes, so ``DIR / f"{name}.png"`` always names a file directly
    inside ``DIR``.
    """
    if not isinstance(name, str) or not name or name in (".", ".."):
        raise ValueError(f"sample name {name!r} is not a usable file name; names must be non-empty and not '.'/'..'")
    bad = sorted({c for c in name if c in "/\\" or ord(c) < 32 or ord(c) == 127})
    if bad:
        raise ValueError(f"sample name {name!r} holds {', '.join(map(repr, bad))}; names must be plain file names "
                         "(build them with real_eval.readers.base.sample_name)")
    if len(name.encode("utf-8")) > 240:
        raise ValueError(f"sample name {name[:40]!r}... is {len(name.encode('utf-8'))} bytes long; shorten the image "
                         "path or file name (names may have at most 240 bytes)")
    return name


def output_file(out_dir: str | os.PathLike, subdir: str | None, file_name: str) -> Path:
    """``out_dir/subdir/file_name``, checked to stay inside ``out_dir``.

    ``file_name`` must be one plain file name (no separators, not ``.``/``..``); the folder it lands
    in, with symlinks resolved (``os.path.realpath``), must lie inside ``out_dir`` (also resolved),
    so neither a crafted name nor a symlinked sub-folder can send a write elsewhere.

    Raises:
        ValueError: the name is not a plain file name, or the path resolves outside ``out_dir``.
    """
    check_sample_name(file_name)
    out_dir = Path(out_dir)
    path = (out_dir / subdir / file_name) if subdir else (out_dir / file_name)
    top = os.path.realpath(out_dir)
    real = os.path.realpath(path)
    if not real.startswith(top.rstrip(os.sep) + os.sep):
        raise ValueError(f"output {path} resolves to {real}, outside the output folder {out_dir}; "
                         "remove the symlink or choose another --out")
    return path


@dataclass
class RealSample:
    """One real annotated photo.

    Attributes:
        name: unique, file-name-safe identifier (image stem; dataset/subset prefixes joined by
            ``"__"`` where a format has several folders).
        image: uint8 (H, W, 3) RGB.
        mask: uint8 (H, W) with values {0 background, 1 key, 255 ignore}.
        source: path of the image file it came from (``None`` for images embedded in the
            annotation, e.g. labelme ``imageData``).
        meta: free-form JSON-serialisable details (format, annotation file, ...).

    Raises:
        ValueError: a name that is not a plain file name (:func:`check_sample_name`), or an
            image / mask of the wrong dtype, shape or values.
    """

    name: str
    image: np.ndarray
    mask: np.ndarray
    source: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_sample_name(self.name)
        img, msk = self.image, self.mask
        if not (isinstance(img, np.ndarray) and img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3):
            raise ValueError(f"sample {self.name!r}: image must be uint8 (H, W, 3) RGB, got "
                             f"{getattr(img, 'dtype', type(img))} {getattr(img, 'shape', '')}")
        if not (isinstance(msk, np.ndarray) and msk.dtype == np.uint8 and msk.shape == img.shape[:2]):
            raise ValueError(f"sample {self.name!r}: mask must be uint8 {img.shape[:2]}, got "
                             f"{getattr(msk, 'dtype', type(msk))} {getattr(msk, 'shape', '')}")
        bad = np.setdiff1d(np.unique(msk), np.array([0, 1, 255], np.uint8))
        if bad.size:
            raise ValueError(f"sample {self.name!r}: mask values must be 0, 1 or 255 (ignore); found {bad.tolist()}")


def read_image_rgb(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file to uint8 (H, W, 3) RGB (grey / RGBA converted; EXIF orientation
    applied by OpenCV, as most annotation tools display it).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file cannot be decoded as an image.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image {path} does not exist")
    data = np.fromfile(str(path), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise ValueError(f"image {path} cannot be decoded (corrupt or not an image file)")
    return np.ascontiguousarray(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))


def load_real_set(
    root: str | os.PathLike,
    *,
    fmt: str | None = None,
    classes: tuple[str, ...] | None = None,
    strict: bool = False,
    **reader_options: Any,
) -> list[RealSample]:
    """Load a real annotated set in any registered annotation format.

    Args:
        root: dataset folder (or, for COCO / CVAT / a single labelme file, the annotation file).
        fmt: reader name (``masks``, ``coco``, ``cvat``, ``supervisely``, ``labelme``); ``None``
            auto-detects with :func:`real_eval.readers.detect_format`.
        classes: label names counted as key (case-insensitive exact match). ``None`` uses the
            default key-name rule of :func:`real_eval.readers.base.is_key_class` ("key", "keys",
            "house_key", "Car Key", ... but not "key_ring", "keyboard"). Ignored by ``masks``.
        strict: annotation objects that would be skipped with a warning (an unknown image id, a
            shape entirely outside its image, a degenerate shape) raise instead.
        reader_options: extra keyword options of the chosen reader (e.g. Supervisely
            ``exclude_tags``).

    Returns:
        Samples sorted by name; ``mask`` uint8 {0, 1, 255}, the union of every chosen instance,
        ignore regions (``__ignore__`` / ``ignore`` labels) = 255.

    Raises:
        ValueError: unknown format (message lists valid names), malformed annotations (message
            names the file and field), duplicate names, paths escaping the dataset folder.
        FileNotFoundError: ``root`` or a referenced image does not exist.
    """
    from real_eval.readers import detect_format, get_reader
    from real_eval.readers.base import strict_annotations

    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"real set {root} does not exist")
    name = fmt or detect_format(root)
    reader = get_reader(name)
    with strict_annotations(strict):
        samples = reader.read(root, classes=classes, **reader_options)
    seen: dict[str, RealSample] = {}
    for s in samples:
        if s.name in seen:
            raise ValueError(f"{root}: two images share the name {s.name!r} ({seen[s.name].source} and {s.source}); "
                             "rename one of them")
        seen[s.name] = s
    return sorted(samples, key=lambda s: s.name)
