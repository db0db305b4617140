"""``keysynth convert``: any supported annotation format -> a mask folder or a COCO file.

Output ``--to masks`` (the format ``real_eval.readers.mask_folder`` reads)::

    OUT/images/NAME.ext    the original image file copied byte for byte (PNG when the image was
                           embedded in the annotation, e.g. labelme imageData)
    OUT/masks/NAME.png     single-channel uint8: 0 = background, 255 = key
    OUT/ignore/NAME.png    only for photos with ignore regions: 255 = ignore, 0 elsewhere
                           (ignore pixels are 0 in masks/, so masks/ alone is a valid
                           conservative binary mask for any other tool)

Output ``--to coco``::

    OUT/images/NAME.ext
    OUT/annotations.json   categories 1 = "key", 2 = "__ignore__"; per photo at most one "key"
                           and one "__ignore__" annotation holding the united mask as compressed
                           RLE (pycocotools ``encode``; ``counts`` string, column-major),
                           ``iscrowd`` 0, ``area``/``bbox`` computed from the RLE.

Every file is written to a temporary name and moved into place with ``os.replace`` (atomic).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from real_eval.dataset import IMAGE_EXTENSIONS, RealSample, load_real_set
from real_eval.predict import atomic_write_png

__all__ = ["convert_dataset", "write_mask_folder", "write_coco", "TARGETS"]

TARGETS = ("masks", "coco")


def _copy_image(s: RealSample, images_dir: Path) -> str:
    images_dir.mkdir(parents=True, exist_ok=True)
    src = Path(s.source) if s.source else None
    if src is not None and src.is_file() and src.suffix.lower() in IMAGE_EXTENSIONS:
        dst = images_dir / f"{s.name}{src.suffix.lower()}"
        tmp = dst.with_name(f".{dst.name}.tmp{os.getpid()}")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    else:
        dst = images_dir / f"{s.name}.png"
        atomic_write_png(dst, s.image)
    return dst.name


def write_mask_folder(samples: list[RealSample], out: str | os.PathLike) -> dict[str, Any]:
    """Write samples as images/ + masks/ (0/255) + ignore/ (module docstring)."""
    out = Path(out)
    n_ignore = 0
    for s in samples:
        _copy_image(s, out / "images")
        atomic_write_png(out / "masks" / f"{s.name}.png", np.where(s.mask == 1, 255, 0).astype(np.uint8))
        ign = s.mask == 255
        if ign.any():
            n_ignore += 1
            atomic_write_png(out / "ignore" / f"{s.name}.png", np.where(ign, 255, 0).astype(np.uint8))
    return {"to": "masks", "out": str(out), "n_images": len(samples), "n_with_ignore": n_ignore}


def _rle(mask: np.ndarray) -> dict[str, Any]:
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    area = int(mask_utils.area(rle))
    bbox = [float(v) for v in mask_utils.toBbox(rle)]
    rle["counts"] = rle["counts"].decode("ascii")
    return {"segmentation": {"size": [int(v) for v in rle["size"]], "counts": rle["counts"]}, "area": area, "bbox": bbox}


def write_coco(samples: list[RealSample], out: str | os.PathLike) -> dict[str, Any]:
    """Write samples as images/ + annotations.json with compressed RLE (module docstring)."""
    out = Path(out)
    images, anns = [], []
    for i, s in enumerate(samples, start=1):
        fname = _copy_image(s, out / "images")
        h, w = s.mask.shape
        images.append({"id": i, "file_name": fname, "height": int(h), "width": int(w)})
        for cat, region in ((1, s.mask == 1), (2, s.mask == 255)):
            if region.any():
                anns.append({"id": len(anns) + 1, "image_id": i, "category_id": cat, "iscrowd": 0, **_rle(region)})
    doc = {"info": {"description": "written by keysynth convert"}, "images": images, "annotations": anns,
           "categories": [{"id": 1, "name": "key", "supercategory": "key"},
                          {"id": 2, "name": "__ignore__", "supercategory": "ignore"}]}
    out.mkdir(parents=True, exist_ok=True)
    dst = out / "annotations.json"
    tmp = dst.with_name(f".{dst.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(doc), encoding="utf-8")
    os.replace(tmp, dst)
    return {"to": "coco", "out": str(out), "n_images": len(samples), "n_annotations": len(anns)}


def convert_dataset(src: str | os.PathLike, out: str | os.PathLike, *, to: str = "masks", fmt: str | None = None,
                    classes: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Read ``src`` (format ``fmt`` or auto-detected, key classes ``classes``) and write ``out``.

    Raises:
        ValueError: unknown target (lists :data:`TARGETS`), ``out`` equal to ``src``, reader errors.
    """
    if to not in TARGETS:
        raise ValueError(f"unknown target {to!r}; valid names: {', '.join(TARGETS)}")
    if Path(out).absolute() == Path(src).absolute():
        raise ValueError(f"--out {out} is the source folder; write the converted set elsewhere")
    samples = load_real_set(src, fmt=fmt, classes=classes)
    return write_mask_folder(samples, out) if to == "masks" else write_coco(samples, out)
