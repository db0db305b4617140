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
Every output name is a checked sample name (:func:`real_eval.dataset.check_sample_name`) and every
output path must resolve inside ``OUT`` (:func:`real_eval.dataset.output_file`). Files of ``OUT``
that the conversion would replace are refused unless ``overwrite`` (``--overwrite``).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from keysynth.common import atomic_open, atomic_write_text
from real_eval.dataset import IMAGE_EXTENSIONS, RealSample, load_real_set, output_file
from real_eval.predict import atomic_write_png

__all__ = ["convert_dataset", "write_mask_folder", "write_coco", "TARGETS"]

TARGETS = ("masks", "coco")


def _image_file_name(s: RealSample) -> str:
    """``NAME.ext`` of the copied image: the source's extension, or ``.png`` for embedded images."""
    src = Path(s.source) if s.source else None
    if src is not None and src.is_file() and src.suffix.lower() in IMAGE_EXTENSIONS:
        return f"{s.name}{src.suffix.lower()}"
    return f"{s.name}.png"


def _copy_image(s: RealSample, out: Path) -> str:
    """Copy the sample's image file byte for byte (or encode an embedded one as PNG) into
    ``out/images``; returns the file name written."""
    src = Path(s.source) if s.source else None
    dst = output_file(out, "images", _image_file_name(s))
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src is not None and src.is_file() and src.suffix.lower() in IMAGE_EXTENSIONS:
        with atomic_open(dst) as fh, open(src, "rb") as fin:
            shutil.copyfileobj(fin, fh)
    else:
        atomic_write_png(dst, s.image)
    return dst.name


def _planned(samples: list[RealSample], out: Path, to: str) -> tuple[list[Path], list[Path]]:
    """(files the conversion writes, stale files it must remove): every path checked to stay in ``out``.

    Stale files are outputs of an earlier conversion that would corrupt the new set: an
    ``ignore/NAME.png`` for a photo that now has no ignore region, an ``images/NAME.ext`` with
    another extension than the one written now.
    """
    writes, stale = [], []
    for s in samples:
        img = _image_file_name(s)
        writes.append(output_file(out, "images", img))
        stale += [output_file(out, "images", f"{s.name}{e}") for e in IMAGE_EXTENSIONS if f"{s.name}{e}" != img]
        if to == "masks":
            writes.append(output_file(out, "masks", f"{s.name}.png"))
            ign = output_file(out, "ignore", f"{s.name}.png")
            (writes if (s.mask == 255).any() else stale).append(ign)
    if to == "coco":
        writes.append(output_file(out, None, "annotations.json"))
    return writes, [p for p in stale if p.exists()]


def _check_out(samples: list[RealSample], out: Path, to: str, overwrite: bool) -> None:
    """Refuse to replace existing files in ``out`` unless ``overwrite``; with it, remove stale outputs."""
    writes, stale = _planned(samples, out, to)
    clash = [p for p in writes if p.exists()] + stale
    if clash and not overwrite:
        shown = ", ".join(str(p.relative_to(out)) for p in clash[:5]) + (", ..." if len(clash) > 5 else "")
        raise FileExistsError(f"--out {out} already holds {len(clash)} file(s) this conversion would overwrite or "
                              f"invalidate ({shown}); pass --overwrite to replace them, or choose an empty --out folder")
    for p in stale:
        p.unlink()


def write_mask_folder(samples: list[RealSample], out: str | os.PathLike) -> dict[str, Any]:
    """Write samples as images/ + masks/ (0/255) + ignore/ (module docstring)."""
    out = Path(out)
    n_ignore = 0
    for s in samples:
        _copy_image(s, out)
        atomic_write_png(output_file(out, "masks", f"{s.name}.png"), np.where(s.mask == 1, 255, 0).astype(np.uint8))
        ign = s.mask == 255
        if ign.any():
            n_ignore += 1
            atomic_write_png(output_file(out, "ignore", f"{s.name}.png"), np.where(ign, 255, 0).astype(np.uint8))
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
        fname = _copy_image(s, out)
        h, w = s.mask.shape
        images.append({"id": i, "file_name": fname, "height": int(h), "width": int(w)})
        for cat, region in ((1, s.mask == 1), (2, s.mask == 255)):
            if region.any():
                anns.append({"id": len(anns) + 1, "image_id": i, "category_id": cat, "iscrowd": 0, **_rle(region)})
    doc = {"info": {"description": "written by keysynth convert"}, "images": images, "annotations": anns,
           "categories": [{"id": 1, "name": "key", "supercategory": "key"},
                          {"id": 2, "name": "__ignore__", "supercategory": "ignore"}]}
    out.mkdir(parents=True, exist_ok=True)
    dst = output_file(out, None, "annotations.json")
    atomic_write_text(dst, json.dumps(doc))
    return {"to": "coco", "out": str(out), "n_images": len(samples), "n_annotations": len(anns)}


def convert_dataset(src: str | os.PathLike, out: str | os.PathLike, *, to: str = "masks", fmt: str | None = None,
                    classes: tuple[str, ...] | None = None, overwrite: bool = False, strict: bool = False
                    ) -> dict[str, Any]:
    """Read ``src`` (format ``fmt`` or auto-detected, key classes ``classes``) and write ``out``.

    Every sample is read and checked before the first file is written. ``out`` may hold other
    files, but none that this conversion writes (``images/NAME.*``, ``masks/NAME.png``,
    ``ignore/NAME.png``, ``annotations.json``) unless ``overwrite``; with ``overwrite`` an
    earlier conversion's ``ignore/NAME.png`` / ``images/NAME.other-ext`` that would no longer
    match is removed.

    Raises:
        ValueError: unknown target (lists :data:`TARGETS`), ``out`` equal to ``src``, reader errors,
            an output path resolving outside ``out``.
        FileExistsError: ``out`` holds files the conversion would overwrite and not ``overwrite``.
    """
    if to not in TARGETS:
        raise ValueError(f"unknown target {to!r}; valid names: {', '.join(TARGETS)}")
    if os.path.realpath(out) == os.path.realpath(src):
        raise ValueError(f"--out {out} is the source folder; write the converted set elsewhere")
    samples = load_real_set(src, fmt=fmt, classes=classes, strict=strict)
    _check_out(samples, Path(out), to, overwrite)
    return write_mask_folder(samples, out) if to == "masks" else write_coco(samples, out)
