"""Mask-folder reader (format ``masks``): ``images/NAME.ext`` + ``masks/NAME.png``.

Mask values: {0, 255} -> 255 is key; {0, 1} -> 1 is key; {0, 1, 255} with 1 present -> the
synth convention (1 key, 255 ignore). Any other value is an error naming the file and value.
An optional ``ignore/NAME.png`` (non-zero = ignore) adds ignore regions; this is how
``keysynth convert --to masks`` stores them, so ``masks/`` stays a plain 0/255 mask any tool
can read.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from real_eval.dataset import IMAGE_EXTENSIONS, RealSample, read_image_rgb
from real_eval.readers.base import inside_real

NAME = "masks"
DESCRIPTION = "images/NAME.ext + masks/NAME.png (0/255 or 0/1), optional ignore/NAME.png"


def _image_files(root: Path) -> list[Path]:
    d = root / "images"
    return sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS) if d.is_dir() else []


def detect(path: Path) -> bool:
    return path.is_dir() and (path / "images").is_dir() and (path / "masks").is_dir()


def read_mask_png(path: Path) -> np.ndarray:
    """Read a single-channel mask PNG -> uint8 (H, W) with the raw values (error otherwise)."""
    data = np.fromfile(str(path), dtype=np.uint8)
    m = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if m is None:
        raise ValueError(f"mask {path} cannot be decoded as an image")
    if m.ndim == 3:
        if m.shape[2] == 4:
            m = m[:, :, :3]
        if not (np.all(m[:, :, 0] == m[:, :, 1]) and np.all(m[:, :, 0] == m[:, :, 2])):
            raise ValueError(f"mask {path} is a colour image; save it as a single-channel 0/255 PNG")
        m = m[:, :, 0]
    if m.dtype != np.uint8:
        vals = np.unique(m)
        if vals.max(initial=0) > 255:
            raise ValueError(f"mask {path} has value {int(vals.max())}; masks must be 0/255 or 0/1")
        m = m.astype(np.uint8)
    return m


def normalise_mask_values(m: np.ndarray, path: Path) -> np.ndarray:
    """Raw mask values -> {0 bg, 1 key, 255 ignore} following the module docstring."""
    vals = set(np.unique(m).tolist())
    bad = sorted(vals - {0, 1, 255})
    if bad:
        raise ValueError(f"mask {path} has value {bad[0]} (values found: {sorted(vals)}); masks must hold "
                         "0 = background and 255 (or 1) = key only; re-export it as a binary mask")
    if 1 in vals:  # {0,1} or synth {0,1,255}
        return m.copy()
    return np.where(m == 255, 1, 0).astype(np.uint8)


def _check_inside(root: Path, *paths: Path) -> None:
    """Refuse files that are symlinks (or lie under symlinked folders) resolving outside ``root``."""
    for p in paths:
        if p.exists() and not inside_real(p, root):
            raise ValueError(f"{p} is a symlink resolving to {os.path.realpath(p)}, outside the dataset folder {root}; "
                             "copy the file into the dataset folder instead of linking to it")


def read(root: Path, *, classes=None) -> list[RealSample]:
    """Read the mask folder (``classes`` is meaningless here and ignored).

    Raises:
        ValueError: bad mask values (names file + value), image/mask size mismatch (names both),
            images without masks (lists them), no images, an image or mask that is a symlink to a
            file outside ``root``.
    """
    root = Path(root)
    images = _image_files(root)
    if not images:
        raise ValueError(f"{root}/images holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    missing = [p.name for p in images if not (root / "masks" / f"{p.stem}.png").is_file()]
    if missing:
        raise ValueError(f"{root}: {len(missing)} image(s) have no masks/NAME.png: {', '.join(missing)}")
    stems = [p.stem for p in images]
    dup = sorted({s for s in stems if stems.count(s) > 1})
    if dup:
        raise ValueError(f"{root}/images: several files share the stem(s) {dup}; keep one image per name")
    out = []
    for img_path in images:
        mask_path = root / "masks" / f"{img_path.stem}.png"
        _check_inside(root, img_path, mask_path, root / "ignore" / f"{img_path.stem}.png")
        image = read_image_rgb(img_path)
        raw = read_mask_png(mask_path)
        if raw.shape != image.shape[:2]:
            raise ValueError(f"mask {mask_path} is {raw.shape[1]}x{raw.shape[0]} but image {img_path} is "
                             f"{image.shape[1]}x{image.shape[0]}; masks must have the image's size")
        mask = normalise_mask_values(raw, mask_path)
        ign_path = root / "ignore" / f"{img_path.stem}.png"
        if ign_path.is_file():
            ign = read_mask_png(ign_path)
            if ign.shape != mask.shape:
                raise ValueError(f"ignore mask {ign_path} is {ign.shape[1]}x{ign.shape[0]} but image {img_path} is "
                                 f"{image.shape[1]}x{image.shape[0]}")
            mask[ign > 0] = 255
        out.append(RealSample(img_path.stem, image, mask, source=str(img_path),
                              meta={"format": NAME, "mask": str(mask_path)}))
    return out
