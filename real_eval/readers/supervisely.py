"""Supervisely project reader (format ``supervisely``), following Supervisely's annotation
format documentation (developer.supervisely.com, "Supervisely Annotation Format") and SDK:

* ``ROOT/meta.json`` (``classes``: ``title`` + ``shape``) and one folder per dataset,
  ``ROOT/DATASET/ann/*.json`` + ``ROOT/DATASET/img/*`` (nested ``datasets/`` folders too).
* Current layout: ``ann/NAME.jpg.json`` for ``img/NAME.jpg``; each object has ``classTitle`` and
  ``geometryType``. Older layout: ``ann/NAME.json``, the shape only in ``meta.json``'s classes.
* ``bitmap``: ``bitmap.data`` = base64 of zlib-compressed PNG bytes (the SDK's
  ``Bitmap.data_2_base64`` writes a 2-colour palette PNG with ``transparency=0``; its
  ``base64_2_data`` also accepts plain base64 PNG without zlib), ``bitmap.origin`` = ``[x, y]`` of
  the PNG's top-left pixel. Foreground = alpha > 0 for 4-channel decodes (as the SDK), any
  non-zero value otherwise.
* ``alpha_mask`` (SDK ``AlphaMask``): same encoding, greyscale 0..255 opacity; foreground = any
  non-zero value (the SDK's ``AlphaMask.area`` counts non-zero pixels).
* ``polygon``: ``points.exterior`` ``[[x, y], ...]`` pixel indices (col, row), rounded like the
  SDK's ``PointLocation``; drawn like ``Polygon._draw_impl``: ``cv2.fillPoly`` of the exterior
  with 1, then of the interiors (holes) with 0, so a hole's own outline pixels are background.
* ``rectangle``: ``points.exterior`` ``[[left, top], [right, bottom]]``, inclusive pixels.
* Other geometries (point, line, graph, cuboid) carry no area and are skipped.
* Image tags listed in ``exclude_tags`` (default ``("bad_image",)``) drop the image.
"""

from __future__ import annotations

import base64
import binascii
import glob
import json
import os
import zlib
from pathlib import Path

import cv2
import numpy as np

from real_eval.dataset import IMAGE_EXTENSIONS, RealSample, read_image_rgb
from real_eval.readers.base import (AnnotationError, ClassFilter, check_coords, check_patch_size, check_size, clip_paste,
                                   compose_mask, inside_real, png_size, safe_join, sample_name, to_int, warn_empty)

NAME = "supervisely"
DESCRIPTION = "Supervisely project: meta.json + DATASET/ann/*.json + DATASET/img/* (bitmap, polygon, rectangle)"


def _dataset_dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob("ann") if p.is_dir() and (p.parent / "img").is_dir())


def detect(path: Path) -> bool:
    return path.is_dir() and (path / "meta.json").is_file() and bool(_dataset_dirs(path))


#: largest bitmap side accepted when no image size is given to :func:`decode_bitmap`.
MAX_BITMAP_SIDE = 16384


def _inflate(raw: bytes, limit: int, file, field: str) -> bytes:
    """zlib-decompress ``raw`` to at most ``limit`` bytes (a zlib bomb is refused, not inflated)."""
    d = zlib.decompressobj()
    png = d.decompress(raw, limit)
    if d.unconsumed_tail:
        raise AnnotationError(file, field, f"zlib data inflates to more than {limit} bytes; refused",
                              "re-export the annotation (the bitmap is far larger than its image)")
    if not d.eof:
        raise zlib.error("incomplete or truncated zlib stream")
    return png


def decode_bitmap(data: str, *, file: Path | str = "<bitmap>", field: str = "bitmap.data",
                  max_hw: tuple[int, int] | None = None) -> np.ndarray:
    """Supervisely ``bitmap.data`` (base64(zlib(PNG))) -> bool (h, w) foreground.

    ``max_hw`` = (height, width) of the image the bitmap belongs to: a larger PNG (read from its
    header, before decoding) is refused; ``None`` caps each side at :data:`MAX_BITMAP_SIDE`.

    Raises:
        AnnotationError: not base64, not zlib, not a PNG, or larger than ``max_hw``.
    """
    max_h, max_w = max_hw if max_hw is not None else (MAX_BITMAP_SIDE, MAX_BITMAP_SIDE)
    try:
        raw = base64.b64decode(data, validate=False)
    except (binascii.Error, TypeError, ValueError) as exc:
        raise AnnotationError(file, field, f"expected base64 of zlib-compressed PNG bytes ({exc})") from exc
    try:  # a PNG of the whole image, stored uncompressed as RGBA, is under 4*h*w + h bytes of pixel data
        png = _inflate(raw, 4 * int(max_h) * int(max_w) + int(max_h) + (1 << 20), file, field)
    except zlib.error as exc:
        if not raw.startswith(b"\x89PNG"):  # the SDK also accepts base64 PNG without zlib
            raise AnnotationError(file, field, f"expected base64 of zlib-compressed PNG bytes ({exc})") from exc
        png = raw
    size = png_size(png)
    if size is None:
        raise AnnotationError(file, field, "the decompressed bytes are not a PNG image")
    check_patch_size(size[0], size[1], int(max_w), int(max_h), file=file, field=field)
    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise AnnotationError(file, field, "the decompressed bytes are not a PNG image")
    if img.ndim == 3:
        img = img[:, :, 3] if img.shape[2] == 4 else img.max(axis=2)
    return img > 0


def encode_bitmap(mask: np.ndarray) -> str:
    """bool (h, w) -> Supervisely ``bitmap.data`` string (RGBA-free 1-bit style greyscale PNG)."""
    ok, png = cv2.imencode(".png", np.asarray(mask, bool).astype(np.uint8) * 255)
    if not ok:
        raise ValueError("cannot encode bitmap PNG")
    return base64.b64encode(zlib.compress(png.tobytes())).decode("ascii")


def _points(obj: dict, file: Path, where: str) -> tuple[np.ndarray, list]:
    pts = obj.get("points")
    if not isinstance(pts, dict) or not isinstance(pts.get("exterior"), list):
        raise AnnotationError(file, f"{where}.points.exterior", "missing or not a list of [x, y]")
    ext, interior = pts["exterior"], pts.get("interior") or []
    try:
        ext = np.asarray(ext, float).reshape(-1, 2)
        interior = [np.asarray(h, float).reshape(-1, 2) for h in interior]
    except (TypeError, ValueError):
        raise AnnotationError(file, f"{where}.points", "points must be [[x, y], ...] numbers") from None
    return ext, interior


def _check_points(ext: np.ndarray, interior: list, h: int, w: int, file: Path, where: str) -> None:
    check_coords(ext, h, w, file=file, field=f"{where}.points.exterior")
    for k, hole in enumerate(interior):
        check_coords(hole, h, w, file=file, field=f"{where}.points.interior[{k}]")


def _ring(pts: np.ndarray) -> np.ndarray:
    """Rounded int32 contour; fewer than 3 points are padded with the last one (as the SDK's
    ``Polygon.__init__`` does, with a warning, instead of failing)."""
    pts = np.round(pts).astype(np.int32)
    if len(pts) < 3:
        pts = np.concatenate([pts, np.repeat(pts[-1:], 3 - len(pts), axis=0)])
    return pts


def _object_mask(obj: dict, gtype: str, h: int, w: int, file: Path, where: str) -> np.ndarray | None:
    if gtype in ("bitmap", "alpha_mask"):
        bm = obj.get("bitmap")
        if not isinstance(bm, dict) or "data" not in bm or "origin" not in bm:
            raise AnnotationError(file, f"{where}.bitmap", "needs 'data' and 'origin'")
        origin = bm["origin"]
        if not isinstance(origin, (list, tuple)) or len(origin) != 2:
            raise AnnotationError(file, f"{where}.bitmap.origin", f"expected [x, y], got {origin!r}")
        for v, lim in zip(origin, (w, h)):
            to_int(v, file=file, field=f"{where}.bitmap.origin", lo=-4 * lim - 1000, hi=4 * lim + 1000)
        x, y = (int(float(v)) for v in origin)
        patch = decode_bitmap(bm["data"], file=file, field=f"{where}.bitmap.data", max_hw=(h, w))
        canvas = np.zeros((h, w), bool)
        clip_paste(canvas, patch, y, x)
        return canvas
    if gtype == "polygon":
        ext, interior = _points(obj, file, where)
        _check_points(ext, interior, h, w, file, where)
        if len(ext) == 0:
            raise AnnotationError(file, f"{where}.points.exterior", "a polygon needs at least 1 point")
        canvas = np.zeros((h, w), np.uint8)
        cv2.fillPoly(canvas, [_ring(ext)], 1)
        holes = [_ring(p) for p in interior if len(p)]
        if holes:
            cv2.fillPoly(canvas, holes, 0)
        return canvas.astype(bool)
    if gtype == "rectangle":
        ext, _ = _points(obj, file, where)
        _check_points(ext, [], h, w, file, where)
        if len(ext) != 2:
            raise AnnotationError(file, f"{where}.points.exterior", "a rectangle needs [[left, top], [right, bottom]]")
        (l, t), (r, b) = np.round(ext).astype(int)
        canvas = np.zeros((h, w), bool)
        canvas[max(min(t, b), 0):max(t, b) + 1, max(min(l, r), 0):max(l, r) + 1] = True
        return canvas
    return None


def _tag_names(tags, file: Path) -> set[str]:
    if tags is not None and not isinstance(tags, list):
        raise AnnotationError(file, "tags", f"must be a list of tags, got {type(tags).__name__}")
    names = set()
    for t in tags or []:
        if isinstance(t, str):
            names.add(t)
        elif isinstance(t, dict) and "name" in t:
            names.add(str(t["name"]))
    return names


def read(path: Path, *, classes=None, exclude_tags: tuple[str, ...] = ("bad_image",)) -> list[RealSample]:
    """Read a Supervisely project folder (see module docstring) -> samples."""
    root = Path(path)
    meta_path = root / "meta.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{root}: meta.json missing; export the whole Supervisely project") from None
    except ValueError as exc:
        raise AnnotationError(meta_path, "<json>", f"not valid JSON ({exc})") from exc
    shapes = {}
    for k, c in enumerate(meta.get("classes") or []):
        if not isinstance(c, dict) or "title" not in c:
            raise AnnotationError(meta_path, f"classes[{k}].title", "missing")
        shapes[str(c["title"])] = c.get("shape")
    flt = ClassFilter(classes)
    excluded = {str(t) for t in exclude_tags}
    dsets = _dataset_dirs(root)
    out = []
    for ds in dsets:
        for af in sorted((ds / "ann").glob("*.json")):
            try:
                ann = json.loads(af.read_text(encoding="utf-8"))
            except ValueError as exc:
                raise AnnotationError(af, "<json>", f"not valid JSON ({exc})") from exc
            if not isinstance(ann, dict):
                raise AnnotationError(af, "<json>", f"expected an annotation object, got {type(ann).__name__}")
            if _tag_names(ann.get("tags"), af) & excluded:
                continue
            img_path = _find_image(root, ds, af)
            image = read_image_rgb(img_path)
            size = ann.get("size")
            if not isinstance(size, dict) or "height" not in size or "width" not in size:
                raise AnnotationError(af, "size", "needs {'height': int, 'width': int}")
            check_size(af, "size", image, size["height"], size["width"], img_path)
            h, w = image.shape[:2]
            objs = ann.get("objects")
            if not isinstance(objs, list):
                raise AnnotationError(af, "objects", "missing or not a list")
            keys, ign, empty = [], [], 0
            for j, obj in enumerate(objs):
                where = f"objects[{j}]"
                if not isinstance(obj, dict) or "classTitle" not in obj:
                    raise AnnotationError(af, f"{where}.classTitle", "missing")
                label = str(obj["classTitle"])
                if not (flt.is_key(label) or flt.is_ignore(label)):
                    continue
                gtype = obj.get("geometryType") or obj.get("shape") or shapes.get(label)
                if gtype is None:
                    raise AnnotationError(af, f"{where}.geometryType", f"missing and class {label!r} is not in meta.json")
                m = _object_mask(obj, str(gtype), h, w, af, where)
                if m is not None:
                    empty += not m.any()
                    (ign if flt.is_ignore(label) else keys).append(m)
            warn_empty(af, empty)
            stem = Path(img_path.name).stem
            name = sample_name([stem] if len(dsets) == 1 else list(ds.relative_to(root).parts) + [stem])
            out.append(RealSample(name, image, compose_mask((h, w), keys, ign), source=str(img_path),
                                  meta={"format": NAME, "annotation": str(af)}))
    return out


def _find_image(root: Path, ds: Path, af: Path) -> Path:
    img_name = af.name[:-len(".json")]
    direct = safe_join(root, ds / "img", img_name, file=af, field="<annotation file name>")
    if direct.is_file() and direct.suffix.lower() in IMAGE_EXTENSIONS:
        return direct  # current layout: NAME.jpg.json
    cands = sorted(p for p in (ds / "img").glob(f"{glob.escape(img_name)}.*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    if len(cands) == 1:
        if not inside_real(cands[0], root):
            raise AnnotationError(af, "<annotation file name>", f"image {cands[0]} is a symlink resolving to "
                                  f"{os.path.realpath(cands[0])}, outside the dataset folder {root}",
                                  "copy the file into the dataset folder instead of linking to it")
        return cands[0]  # older layout: NAME.json
    if not cands:
        raise FileNotFoundError(f"{af}: no image {ds / 'img' / img_name}[.ext] for this annotation")
    raise ValueError(f"{af}: several images match {img_name}.*: {[c.name for c in cands]}; keep one")
