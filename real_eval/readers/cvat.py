"""CVAT for images 1.1 XML reader (format ``cvat``); task and project exports.

Follows CVAT's XML format documentation (docs.cvat.ai, "XML annotation format", version 1.1)
and CVAT's own exporter:

* ``<image id name width height [subset task_id]>`` (``subset``/``task_id`` in project exports,
  whose images lie in ``images/<subset>/<name>``; task exports use ``images/<name>``);
* ``<polygon label points="x0,y0;x1,y1;...">`` (continuous pixel-corner coordinates, rasterised
  like COCO polygons with pycocotools);
* ``<box label xtl ytl xbr ybr [rotation]>`` (rotation in degrees, clockwise, about the centre);
* ``<ellipse label cx cy rx ry [rotation]>``;
* ``<mask label rle="a, b, c, ..." left top width height>``: run lengths over the
  ``width x height`` box in ROW-major order, starting with a background (0) run;
* ``<tag>``, ``<polyline>``, ``<points>``, ``<cuboid>``, ``<skeleton>`` carry no area: ignored.

Checked against CVAT's ``cvat/apps/dataset_manager/formats/cvat.py`` (``dump_as_cvat_annotation``,
``load_anno``, ``dump_media_files``) and cvat-core's ``mask2Rle``: the mask ``width``/``height``
are inclusive (``right - left + 1``); frames of a *video* task are named ``frame_000000`` in the
XML but saved as ``images/frame_000000.PNG`` (``FrameProvider.VIDEO_FRAME_EXT``), so a name with
no image extension is also looked up with ``.PNG`` appended.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from real_eval.dataset import IMAGE_EXTENSIONS, RealSample, read_image_rgb
from real_eval.readers.base import (AnnotationError, ClassFilter, check_coords, check_patch_size, check_size, clip_paste,
                                   coco_polygons_to_mask, compose_mask, find_image, sample_name, to_int, warn_empty)

NAME = "cvat"
DESCRIPTION = "CVAT for images 1.1 XML (task or project export; polygon, box, ellipse, mask)"


def _xml_file(path: Path) -> Path | None:
    if path.is_file():
        return path if path.suffix.lower() == ".xml" else None
    if (path / "annotations.xml").is_file():
        return path / "annotations.xml"
    xmls = sorted(path.glob("*.xml"))
    return xmls[0] if len(xmls) == 1 else None


def detect(path: Path) -> bool:
    xf = _xml_file(path)
    if xf is None:
        return False
    try:
        for _event, elem in ET.iterparse(str(xf), events=("start",)):
            return elem.tag == "annotations"
    except (ET.ParseError, OSError):
        return False
    return False


def _float(el: ET.Element, attr: str, file: Path, where: str) -> float:
    v = el.get(attr)
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise AnnotationError(file, f"{where}@{attr}", f"expected a number, got {v!r}") from None
    if not math.isfinite(f):
        raise AnnotationError(file, f"{where}@{attr}", f"{v!r} is not a finite number",
                              "fix or delete this shape in CVAT and export again")
    return f


def _rotated(points: np.ndarray, cx: float, cy: float, deg: float) -> np.ndarray:
    if not deg:
        return points
    a = math.radians(deg)
    c, s = math.cos(a), math.sin(a)
    d = points - [cx, cy]
    return np.stack([cx + c * d[:, 0] - s * d[:, 1], cy + s * d[:, 0] + c * d[:, 1]], 1)


def decode_cvat_rle(rle: str, width: int, height: int, *, file: Path | str = "<rle>", field: str = "rle") -> np.ndarray:
    """CVAT mask ``rle`` string -> bool (height, width): row-major runs, first run = background.

    Raises:
        AnnotationError: non-integer, non-finite or negative runs, or runs not summing to
            width*height.
    """
    try:
        runs = [int(float(t)) for t in rle.replace(" ", "").split(",") if t != ""]
    except (ValueError, OverflowError):
        raise AnnotationError(file, field, "run lengths must be comma-separated finite integers") from None
    negative = [i for i, r in enumerate(runs) if r < 0]
    if negative:
        raise AnnotationError(file, field, f"run {negative[0]} is negative ({runs[negative[0]]}); run lengths must be "
                                           "non-negative integers: re-export the annotations from CVAT")
    if sum(runs) != width * height:
        raise AnnotationError(file, field, f"run lengths sum to {sum(runs)}, expected width*height = {width * height}")
    flat = np.zeros(width * height, bool)
    pos, val = 0, False
    for r in runs:
        if val:
            flat[pos:pos + r] = True
        pos += r
        val = not val
    return flat.reshape(height, width)


def encode_cvat_rle(mask: np.ndarray) -> str:
    """bool (h, w) -> CVAT ``rle`` string (row-major, starting with a background run)."""
    flat = np.asarray(mask, bool).ravel()
    change = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        runs = [0] + runs
    return ", ".join(str(int(r)) for r in runs)


def _shape_mask(el: ET.Element, h: int, w: int, file: Path, where: str) -> np.ndarray | None:
    tag = el.tag
    if tag == "polygon":
        pts = el.get("points") or ""
        try:
            xy = [float(v) for pair in pts.split(";") if pair.strip() for v in pair.split(",")]
        except ValueError:
            raise AnnotationError(file, f"{where}@points", f"expected 'x,y;x,y;...', got {pts[:60]!r}") from None
        if len(xy) < 6 or len(xy) % 2:
            raise AnnotationError(file, f"{where}@points", "a polygon needs at least 3 'x,y' points")
        return coco_polygons_to_mask([xy], h, w, file=file, field=f"{where}@points")
    if tag == "box":
        x0, y0, x1, y1 = (_float(el, a, file, where) for a in ("xtl", "ytl", "xbr", "ybr"))
        check_coords([x0, y0, x1, y1], h, w, file=file, field=f"{where}@xtl/ytl/xbr/ybr")
        corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], float)
        corners = _rotated(corners, (x0 + x1) / 2, (y0 + y1) / 2, _rotation(el, file, where))
        return coco_polygons_to_mask([corners.ravel().tolist()], h, w, file=file, field=f"{where}@xtl/ytl/xbr/ybr")
    if tag == "ellipse":
        cx, cy, rx, ry = (_float(el, a, file, where) for a in ("cx", "cy", "rx", "ry"))
        check_coords([cx, cy, rx, ry], h, w, file=file, field=f"{where}@cx/cy/rx/ry")
        t = np.linspace(0, 2 * np.pi, 96, endpoint=False)
        pts = np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], 1)
        pts = _rotated(pts, cx, cy, _rotation(el, file, where))
        return coco_polygons_to_mask([pts.ravel().tolist()], h, w, file=file, field=f"{where}@cx/cy/rx/ry")
    if tag == "mask":
        left, top = (to_int(el.get(a), file=file, field=f"{where}@{a}", lo=-4 * lim - 1000, hi=4 * lim + 1000)
                     for a, lim in (("left", w), ("top", h)))
        mw, mh = (to_int(el.get(a), file=file, field=f"{where}@{a}") for a in ("width", "height"))
        if mw <= 0 or mh <= 0:
            raise AnnotationError(file, f"{where}@width/height", f"mask box must be positive, got {mw}x{mh}")
        check_patch_size(mw, mh, w, h, file=file, field=f"{where}@width/height")
        patch = decode_cvat_rle(el.get("rle") or "", mw, mh, file=file, field=f"{where}@rle")
        canvas = np.zeros((h, w), bool)
        clip_paste(canvas, patch, top, left)
        return canvas
    return None  # tag, polyline, points, cuboid, skeleton, attribute: no area


def _rotation(el: ET.Element, file: Path, where: str) -> float:
    return _float(el, "rotation", file, where) if el.get("rotation") else 0.0


VIDEO_FRAME_EXT = ".PNG"  # CVAT FrameProvider.VIDEO_FRAME_EXT: extension added to video-task frames


def _find_frame(root: Path, xf: Path, name: str, bases: list[Path], *, field: str) -> Path:
    """``find_image`` for ``name``; for extension-less names (video-task frames, ``frame_000000``)
    CVAT's exporter writes ``name + ".PNG"``, which is tried too."""
    try:
        return find_image(root, xf, name, bases, field=field)
    except FileNotFoundError:
        if Path(name).suffix.lower() in IMAGE_EXTENSIONS:
            raise
        for ext in (VIDEO_FRAME_EXT, VIDEO_FRAME_EXT.lower()):
            try:
                return find_image(root, xf, name + ext, bases, field=field)
            except FileNotFoundError:
                pass
        raise


def read(path: Path, *, classes=None) -> list[RealSample]:
    """Read a CVAT for images 1.1 export (see module docstring) -> samples."""
    path = Path(path)
    xf = _xml_file(path)
    if xf is None:
        raise ValueError(f"{path}: no CVAT annotations.xml found")
    root = xf.parent if path.is_file() else path
    try:
        tree = ET.parse(str(xf))
    except ET.ParseError as exc:
        raise AnnotationError(xf, "<xml>", f"not well-formed XML ({exc}); the file may be truncated or garbled: export it again") from exc
    top = tree.getroot()
    if top.tag != "annotations":
        raise AnnotationError(xf, "<annotations>", f"root element is <{top.tag}>; not a CVAT for images export")
    images = top.findall("image")
    if not images and top.findall("track"):
        raise AnnotationError(xf, "<track>", "this is a 'CVAT for video' export", "export as 'CVAT for images 1.1'")
    flt = ClassFilter(classes)
    subsets = {_subset(im, xf, f"image[{k}]") for k, im in enumerate(images)} - {None}
    out, empty = [], 0
    for k, im in enumerate(images):
        where = f"image[{k}]"
        name = im.get("name")
        if not name:
            raise AnnotationError(xf, f"{where}@name", "missing")
        try:
            w, h = int(im.get("width")), int(im.get("height"))
        except (TypeError, ValueError):
            raise AnnotationError(xf, f"{where}@width/height", "missing or not integers") from None
        subset = _subset(im, xf, where)
        bases = ([xf.parent / "images" / subset] if subset else []) + [xf.parent / "images", xf.parent, root / "images", root]
        img_path = _find_frame(root, xf, name, bases, field=f"{where}@name")
        image = read_image_rgb(img_path)
        check_size(xf, f"{where}@width/height", image, h, w, img_path)
        keys, ign = [], []
        for j, el in enumerate(im):
            label = el.get("label")
            if label is None or not (flt.is_key(label) or flt.is_ignore(label)):
                continue
            m = _shape_mask(el, h, w, xf, f"{where}/{el.tag}[{j}]")
            if m is not None:
                empty += not m.any()
                (ign if flt.is_ignore(label) else keys).append(m)
        parts = list(Path(name.replace("\\", "/")).with_suffix("").parts)
        if len(subsets) > 1 and subset:
            parts.insert(0, subset)
        out.append(RealSample(sample_name(parts), image, compose_mask((h, w), keys, ign), source=str(img_path),
                              meta={"format": NAME, "annotation": str(xf), "subset": subset}))
    warn_empty(xf, empty)
    return out


def _subset(im: ET.Element, xf: Path, where: str) -> str | None:
    """The image's ``subset`` (project exports), which must be a plain folder name."""
    subset = im.get("subset")
    if not subset:
        return None
    if subset.strip() in (".", "..") or any(c in subset for c in "/\\\0") or any(ord(c) < 32 for c in subset):
        raise AnnotationError(xf, f"{where}@subset", f"{subset!r} is not a plain folder name",
                              "CVAT subsets are names such as Train, Validation or default; fix the XML")
    return subset
