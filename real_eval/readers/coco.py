"""COCO JSON reader (format ``coco``), decoding with pycocotools.

Accepted ``segmentation`` forms (COCO data format, cocodataset.org/#format-data):

* polygons: ``[[x0, y0, x1, y1, ...], ...]`` in pixel-corner coordinates;
* uncompressed RLE: ``{"size": [h, w], "counts": [int, ...]}``, column-major (Fortran order)
  runs starting with background;
* compressed RLE: ``{"size": [h, w], "counts": "string"}`` (LEB128-like string of pycocotools).

``iscrowd`` 0 and 1 are both read: a crowd region of a key class is key pixels (it marks many
keys in one region), so it counts as key. ``area`` is never trusted (the mask is decoded), nor
is ``bbox`` when there is a ``segmentation``. A box-only object (``segmentation`` missing or
``[]``, as CVAT/datumaro write for rectangles) is its ``bbox`` ``[x, y, w, h]`` rasterised with
pycocotools (``frPyObjects`` of a box), like a box in the other formats. Images listed without annotations get an empty mask. Categories named ``__ignore__`` /
``ignore`` are ignore regions. Layout: ``ROOT/*.json`` or ``ROOT/annotations/*.json`` (or the
JSON file itself); ``file_name`` is looked up under ``images/`` next to the JSON or the root,
then next to the JSON / the root; it may not leave the dataset folder.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from real_eval.dataset import RealSample, read_image_rgb
from real_eval.readers.base import (AnnotationError, ClassFilter, check_coords, check_size, coco_polygons_to_mask,
                                   compose_mask, decode_rle, find_image, sample_name, to_int, warn_dropped, warn_empty)

NAME = "coco"
DESCRIPTION = "COCO instances JSON (polygons, RLE list or string counts, iscrowd 0/1)"


def _is_coco(path: Path) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "images" in data and "annotations" in data


def _json_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    cands = sorted(path.glob("*.json")) + sorted((path / "annotations").glob("*.json"))
    return [p for p in cands if p.is_file() and _is_coco(p)]


def detect(path: Path) -> bool:
    if path.is_file():
        return path.suffix.lower() == ".json" and _is_coco(path)
    return path.is_dir() and bool(_json_files(path))


def _segmentation_mask(seg, h: int, w: int, file: Path, field: str) -> np.ndarray:
    from pycocotools import mask as mask_utils

    if isinstance(seg, list):
        if not all(isinstance(p, list) and len(p) % 2 == 0 and all(isinstance(v, (int, float)) for v in p) for p in seg):
            raise AnnotationError(file, field, "polygons must be lists of numbers [x0, y0, x1, y1, ...]")
        return coco_polygons_to_mask(seg, h, w, file=file, field=field)
    if isinstance(seg, dict) and "counts" in seg and "size" in seg:
        size = seg["size"]
        if not (isinstance(size, list) and len(size) == 2 and all(_is_count(v) for v in size)
                and [int(size[0]), int(size[1])] == [h, w]):
            raise AnnotationError(file, field + ".size", f"RLE size {size} differs from the image's [h, w] = [{h}, {w}]")
        counts = seg["counts"]
        if isinstance(counts, list):
            if not all(_is_count(c) for c in counts):
                raise AnnotationError(file, field + ".counts", "uncompressed RLE runs must be non-negative integers")
            if sum(int(c) for c in counts) != h * w:
                raise AnnotationError(file, field + ".counts", f"uncompressed RLE runs sum to {sum(counts)}, expected h*w = {h * w}")
            rle = mask_utils.frPyObjects(seg, h, w)
        elif isinstance(counts, str):
            rle = {"size": [h, w], "counts": counts.encode("ascii")}
        else:
            raise AnnotationError(file, field + ".counts", f"expected a list of ints or an RLE string, got {type(counts).__name__}")
        try:
            rle = rle[0] if isinstance(rle, list) else rle
            return decode_rle(rle)
        except Exception as exc:  # pycocotools raises bare errors on corrupt strings
            raise AnnotationError(file, field + ".counts", f"cannot decode RLE ({exc})") from exc
    raise AnnotationError(file, field, "expected polygons (list) or RLE ({'size', 'counts'})")


def _is_count(v) -> bool:
    """A non-negative whole number (JSON int, or a float such as 3.0), never NaN/inf or bool."""
    return (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
            and float(v).is_integer())


def _bbox_mask(bbox, h: int, w: int, file: Path, where: str) -> np.ndarray:
    """Box-only object (no usable segmentation): ``bbox`` ``[x, y, w, h]`` -> bool (h, w)."""
    from pycocotools import mask as mask_utils

    if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) for v in bbox)):
        raise AnnotationError(file, f"{where}.segmentation", "missing or empty, and no 'bbox' [x, y, w, h] to fall back on",
                              "draw the object as a polygon or mask")
    check_coords(bbox, h, w, file=file, field=f"{where}.bbox")
    return decode_rle(mask_utils.frPyObjects(np.array([bbox], dtype=np.float64), int(h), int(w))[0])


def read(path: Path, *, classes=None) -> list[RealSample]:
    """Read every COCO JSON under ``path`` (see module docstring) -> samples.

    Raises:
        AnnotationError: malformed JSON or fields (names the file and field), coordinates that
            are not finite or far outside the image, image paths leaving the dataset folder.
        FileNotFoundError: a listed image does not exist.
    """
    path = Path(path)
    root = path.parent if path.is_file() else path
    files = _json_files(path)
    if not files:
        raise ValueError(f"{path}: no COCO JSON (with 'images' and 'annotations') found")
    flt = ClassFilter(classes)
    out: list[RealSample] = []
    for jf in files:
        out += _read_file(jf, root, flt)
    return out


def _read_file(jf: Path, root: Path, flt: ClassFilter) -> list[RealSample]:
    try:
        data = json.loads(jf.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise AnnotationError(jf, "<json>", f"not valid JSON ({exc})") from exc
    for key in ("images", "annotations"):
        if not isinstance(data.get(key), list):
            raise AnnotationError(jf, key, "missing or not a list")
    cats = data.get("categories") or []
    try:
        names = {int(c["id"]): str(c["name"]) for c in cats}
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise AnnotationError(jf, "categories", f"each category needs 'id' and 'name' ({exc})") from exc
    key_ids = {i for i, n in names.items() if flt.is_key(n)}
    ign_ids = {i for i, n in names.items() if flt.is_ignore(n)}
    by_image: dict[int, list[tuple[int, dict]]] = {}
    for k, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict) or "image_id" not in ann or "category_id" not in ann:
            raise AnnotationError(jf, f"annotations[{k}]", "needs 'image_id' and 'category_id'")
        by_image.setdefault(_hashable(ann["image_id"]), []).append((k, ann))
    out, empty, seen = [], 0, set()
    for k, im in enumerate(data["images"]):
        try:
            iid, fname, h, w = im["id"], im["file_name"], int(im["height"]), int(im["width"])
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise AnnotationError(jf, f"images[{k}]", f"needs 'id', 'file_name', 'height', 'width' ({exc})") from exc
        seen.add(_hashable(iid))
        img_path = find_image(root, jf, fname, [jf.parent / "images", root / "images", jf.parent, root],
                              field=f"images[{k}].file_name")
        image = read_image_rgb(img_path)
        check_size(jf, f"images[{k}].height/width", image, h, w, img_path)
        keys, ign = [], []
        for j, ann in by_image.get(_hashable(iid), []):
            cid = to_int(ann["category_id"], file=jf, field=f"annotations[{j}].category_id")
            if cid not in key_ids and cid not in ign_ids:
                continue
            seg = ann.get("segmentation")
            if seg is None or (isinstance(seg, list) and not any(isinstance(p, list) and len(p) >= 6 for p in seg)):
                m = _bbox_mask(ann.get("bbox"), h, w, jf, f"annotations[{j}]")
            else:
                m = _segmentation_mask(seg, h, w, jf, f"annotations[{j}].segmentation")
            empty += not m.any()
            (ign if cid in ign_ids else keys).append(m)
        rel = Path(str(fname).replace("\\", "/"))
        out.append(RealSample(sample_name(rel.with_suffix("").parts), image, compose_mask((h, w), keys, ign),
                              source=str(img_path), meta={"format": NAME, "annotation": str(jf), "image_id": iid}))
    orphans = sum(len(v) for i, v in by_image.items() if i not in seen)
    warn_dropped(jf, orphans, "their image_id is not listed in 'images'")
    warn_empty(jf, empty)
    return out


def _hashable(v):
    """An image id usable as a dict key (COCO ids are ints; a list/dict id is kept as its JSON text)."""
    return v if isinstance(v, (int, float, str)) or v is None else json.dumps(v, sort_keys=True)
