"""labelme JSON reader (format ``labelme``), rasterising like labelme's own
``labelme.utils.shape.shape_to_mask`` / ``shapes_to_label`` (PIL ``ImageDraw`` with
``outline=1, fill=1``):

* ``polygon`` (also a missing ``shape_type``): ``draw.polygon(points)``;
* ``rectangle``: two opposite corners, ``draw.rectangle``;
* ``circle``: ``[centre, point on the circumference]``, ``draw.ellipse`` of radius
  ``|centre - point|``;
* ``mask``: ``points`` = ``[[x1, y1], [x2, y2]]`` (cast to int) and ``mask`` = base64 PNG of the
  ``(y2-y1+1, x2-x1+1)`` box, pasted at ``[y1:y2+1, x1:x2+1]`` (``shapes_to_label``). labelme
  computes the box with ``imgviz.instances.masks_to_bboxes`` (``y2``/``x2`` = last row/col + 1)
  and stores ``mask[y1:y2+1, x1:x2+1]``, so a mask touching the right/bottom image border is
  saved cropped to the image: a PNG of the box clipped to the image is accepted too;
* ``line``, ``linestrip``, ``point`` and ``points`` (AI prompt points) are ignored: they outline
  or point at an object without giving its area (labelme's ``shape_to_mask`` would paint a 10 px
  stroke / 5 px disc, which is not a key's extent, so a segmentation label must not come from them);
* the ``__ignore__`` label is an ignore region (255), as in labelme's ``labelme_export_json``.

``imagePath`` is relative to the JSON file (Windows ``\\`` separators accepted) and may not
leave the dataset folder; when it is missing, absent, or outside the dataset folder, the
embedded ``imageData`` (base64 of the image file; labelme itself prefers it) is used.
"""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw

from real_eval.dataset import RealSample, read_image_rgb
from real_eval.readers.base import (AnnotationError, ClassFilter, check_coords, check_patch_size, check_size, clip_paste,
                                   compose_mask, png_size, safe_join, sample_name, warn_empty)

NAME = "labelme"
DESCRIPTION = "labelme JSON per image (polygon, rectangle, circle, mask; __ignore__)"

_NO_AREA = {"points", "line", "linestrip", "point"}


def _json_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*.json") if p.is_file())


def _is_labelme(path: Path) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "shapes" in data and ("imagePath" in data or "imageData" in data)


def detect(path: Path) -> bool:
    files = _json_files(path) if path.exists() else []
    return bool(files) and any(_is_labelme(p) for p in files[:20])


def _b64_png(data: str, file: Path, field: str, max_hw: tuple[int, int] | None = None) -> np.ndarray:
    """Decode base64 image bytes; with ``max_hw`` = (h, w) the data must be a PNG no larger than
    that, checked from its header before decoding."""
    try:
        raw = base64.b64decode(data, validate=False)
    except (binascii.Error, TypeError, ValueError) as exc:
        raise AnnotationError(file, field, f"not base64 ({exc})") from exc
    if max_hw is not None:
        size = png_size(raw)
        if size is None:
            raise AnnotationError(file, field, "base64 data is not a PNG image")
        check_patch_size(size[0], size[1], max_hw[1], max_hw[0], file=file, field=field)
    img = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_UNCHANGED) if raw else None
    if img is None:
        raise AnnotationError(file, field, "base64 data is not an image")
    return img


def _shape_mask(shape: dict, h: int, w: int, file: Path, where: str) -> np.ndarray | None:
    stype = shape.get("shape_type") or "polygon"
    if not isinstance(stype, str):
        raise AnnotationError(file, f"{where}.shape_type", f"must be a shape name such as 'polygon', got {stype!r}")
    if stype in _NO_AREA:
        return None
    try:
        pts = [(float(x), float(y)) for x, y in shape.get("points") or []]
    except (TypeError, ValueError):
        raise AnnotationError(file, f"{where}.points", "expected [[x, y], ...] numbers") from None
    check_coords(pts, h, w, file=file, field=f"{where}.points")
    if stype == "mask":
        if len(pts) != 2 or not shape.get("mask"):
            raise AnnotationError(file, f"{where}.mask", "a mask shape needs 2 box points and base64 'mask'")
        patch = _b64_png(shape["mask"], file, f"{where}.mask", max_hw=(h, w))
        if patch.ndim == 3:
            patch = patch[:, :, 3] if patch.shape[2] == 4 else patch.max(axis=2)
        (x1, y1), (x2, y2) = np.asarray(pts).astype(int)
        full = (y2 - y1 + 1, x2 - x1 + 1)
        clipped = (min(y2 + 1, h) - max(y1, 0), min(x2 + 1, w) - max(x1, 0))  # numpy slice of the image
        if patch.shape[:2] not in (full, clipped):
            raise AnnotationError(file, f"{where}.mask", f"PNG is {patch.shape[1]}x{patch.shape[0]} but the box "
                                  f"{x1},{y1}-{x2},{y2} is {x2 - x1 + 1}x{y2 - y1 + 1}")
        canvas = np.zeros((h, w), bool)
        clip_paste(canvas, patch > 0, y1, x1)
        return canvas
    canvas = Image.fromarray(np.zeros((h, w), np.uint8))
    draw = ImageDraw.Draw(canvas)
    if stype == "circle":
        if len(pts) != 2:
            raise AnnotationError(file, f"{where}.points", "a circle needs [centre, point on circle]")
        (cx, cy), (px, py) = pts
        d = float(np.hypot(cx - px, cy - py))
        draw.ellipse([cx - d, cy - d, cx + d, cy + d], outline=1, fill=1)
    elif stype == "rectangle":
        if len(pts) != 2:
            raise AnnotationError(file, f"{where}.points", "a rectangle needs 2 corner points")
        (x0, y0), (x1, y1) = pts
        draw.rectangle([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)], outline=1, fill=1)
    elif stype == "polygon":
        if len(pts) < 3:
            raise AnnotationError(file, f"{where}.points", "a polygon needs at least 3 points")
        draw.polygon(pts, outline=1, fill=1)
    else:
        raise AnnotationError(file, f"{where}.shape_type", f"unknown shape_type {stype!r}",
                              "valid: polygon, rectangle, circle, mask, line, linestrip, point, points")
    return np.asarray(canvas, bool)


def _load_image(root: Path, jf: Path, data: dict) -> tuple[np.ndarray, str | None]:
    rel = data.get("imagePath")
    if rel:
        try:
            p = safe_join(root, jf.parent, rel, file=jf, field="imagePath")
        except AnnotationError:
            if not data.get("imageData"):
                raise
            p = None  # outside the dataset folder: never opened; the embedded image is used
        if p is not None and p.is_file():
            return read_image_rgb(p), str(p)
    if data.get("imageData"):
        img = _b64_png(data["imageData"], jf, "imageData")
        if img.ndim == 2:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        elif img.shape[2] == 4:
            img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
        return np.ascontiguousarray(cv2.cvtColor(img, cv2.COLOR_BGR2RGB)), None
    raise FileNotFoundError(f"{jf}: imagePath {rel!r} not found and no imageData embedded")


def read(path: Path, *, classes=None) -> list[RealSample]:
    """Read labelme JSON files under ``path`` (or one file) -> samples (non-labelme JSON skipped)."""
    path = Path(path)
    root = path.parent if path.is_file() else path
    flt = ClassFilter(classes)
    out = []
    for jf in _json_files(path):
        try:
            data = json.loads(jf.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise AnnotationError(jf, "<json>", f"not valid JSON ({exc})") from exc
        if not (isinstance(data, dict) and "shapes" in data):
            continue
        if not isinstance(data["shapes"], list):
            raise AnnotationError(jf, "shapes", "must be a list")
        image, src = _load_image(root, jf, data)
        check_size(jf, "imageHeight/imageWidth", image, data.get("imageHeight"), data.get("imageWidth"), src or "imageData")
        h, w = image.shape[:2]
        keys, ign, empty = [], [], 0
        for j, shape in enumerate(data["shapes"]):
            if not isinstance(shape, dict) or "label" not in shape:
                raise AnnotationError(jf, f"shapes[{j}].label", "missing")
            label = str(shape["label"])
            if not (flt.is_key(label) or flt.is_ignore(label)):
                continue
            m = _shape_mask(shape, h, w, jf, f"shapes[{j}]")
            if m is not None:
                empty += not m.any()
                (ign if flt.is_ignore(label) else keys).append(m)
        warn_empty(jf, empty)
        rel = jf.relative_to(root) if jf != path else Path(jf.name)
        name = sample_name(rel.with_suffix("").parts)
        out.append(RealSample(name, image, compose_mask((h, w), keys, ign), source=src,
                              meta={"format": NAME, "annotation": str(jf)}))
    if not out:
        raise ValueError(f"{path}: no labelme JSON files (with 'shapes') found")
    return out
