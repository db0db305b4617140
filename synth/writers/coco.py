"""COCO instance-segmentation output: one category ``key``, one annotation per visible key.

Annotations come from the renderer's ``instances`` map (uint16 (H, W); 0 = no key, k = visible
pixels of the k-th key). The renderer composites cut-outs copy-paste style, so each pixel belongs
to at most one key and overlapping keys give disjoint visible masks by construction; a key that is
fully covered has no pixel left and is dropped, as in Simple Copy-Paste (Ghiasi et al., CVPR 2021:
"update occluded masks, drop fully covered objects").

Segmentation (``coco_segmentation``):
- ``"polygon"``: outer contours from ``cv2.findContours`` (one polygon per connected piece). A
  polygon cannot carry a hole (a key's bow hole), so an instance with a hole, with a piece too
  thin for a polygon (< 3 points), or whose rasterised polygon would cover a pixel of another key
  (touching keys), is written as compressed RLE instead.
- ``"rle"``: always compressed RLE (``pycocotools.mask.encode``, counts as an ASCII string),
  exact to the pixel.
``area`` is the visible pixel count and ``bbox`` ``[x, y, w, h]`` the tight pixel box of the mask
(both from the mask, whatever the segmentation type). Image entries carry ``file_name`` (relative to
the folder of ``annotations.json``), ``width`` and ``height``; image ``id`` = sample index + 1.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np

from keysynth.common import atomic_open
from synth.writers.base import COCO_SEGMENTATIONS
from synth.writers.folder import FolderWriter

__all__ = ["CATEGORIES", "CocoWriter", "instance_annotations", "mask_to_rle", "write_coco_json"]

CATEGORIES = [{"id": 1, "name": "key", "supercategory": "object"}]


def mask_to_rle(mask: np.ndarray) -> dict:
    """Compressed COCO RLE of a binary (H, W) mask: ``{"size": [H, W], "counts": str}``."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def _polygons(mask: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> list[list[float]] | None:
    """Outer-contour polygons ``[[x0, y0, x1, y1, ...], ...]`` in COCO pixel coordinates, or None
    if the mask has a hole or a degenerate piece.

    COCO puts pixel ``(x, y)`` at the square ``[x, x+1] x [y, y+1]``; a contour traced through the
    integer pixel indices would sit half a pixel up-left and lose about half of the boundary pixels
    on decoding. So the mask's bounding box is upsampled 2x (nearest) and traced there: the vertex
    ``u`` of the 2x grid maps to ``(u + 0.5) / 2``, a quarter pixel inside every boundary pixel,
    and pycocotools rasterises the polygon back to (almost exactly) the same pixels.
    """
    crop = mask[y0:y1 + 1, x0:x1 + 1].astype(np.uint8)
    up = np.pad(np.repeat(np.repeat(crop, 2, axis=0), 2, axis=1), 1)
    contours, hierarchy = cv2.findContours(up, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None or not contours:
        return None
    # RETR_CCOMP: two levels; hierarchy[0][i][3] >= 0 means contour i is a hole of its parent.
    if np.any(hierarchy[0][:, 3] >= 0):
        return None
    polys = []
    for contour in contours:
        if len(contour) < 3:
            return None
        pts = (contour.reshape(-1, 2).astype(np.float64) - 1.0 + 0.5) / 2.0 + (x0, y0)
        polys.append([round(float(v), 2) for v in pts.ravel()])
    return polys


def _polygon_spills(polys: list[list[float]], instances: np.ndarray, label: int) -> bool:
    """True when the polygons, rasterised the way pycocotools does, cover another key's pixels.

    Polygons traced through boundary pixel centres rasterise slightly differently from the mask,
    so two touching keys could share a pixel after decoding; such instances are written as RLE,
    which keeps the decoded visible masks disjoint.
    """
    from pycocotools import mask as mask_utils

    h, w = instances.shape
    with warnings.catch_warnings():  # pycocotools' decode trips NumPy 2's __array__(copy=) deprecation
        warnings.simplefilter("ignore", DeprecationWarning)
        decoded = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polys, h, w))).astype(bool)
    return bool(np.any(decoded & (instances != 0) & (instances != label)))


def instance_annotations(instances: np.ndarray, *, segmentation: str = "polygon") -> list[dict]:
    """COCO annotation dicts (no ``id``/``image_id`` yet) for every key visible in ``instances``.

    Args:
        instances: unsigned int (H, W); 0 = no key, k = visible pixels of key k.
        segmentation: ``"polygon"`` (RLE fallback for holes) or ``"rle"``.

    Returns:
        list of ``{"category_id": 1, "iscrowd": 0, "segmentation", "area", "bbox", "instance"}``
        sorted by instance label ``k``; keys with no visible pixel are absent.

    Raises:
        ValueError: unknown ``segmentation`` (lists the valid names) or a bad ``instances`` array.
    """
    if segmentation not in COCO_SEGMENTATIONS:
        raise ValueError(f"unknown COCO segmentation {segmentation!r}; valid: {', '.join(COCO_SEGMENTATIONS)}")
    if not isinstance(instances, np.ndarray) or instances.ndim != 2 or instances.dtype.kind not in "ui":
        raise ValueError(f"instances must be an integer (H, W) array, got {getattr(instances, 'dtype', type(instances))}")
    anns = []
    for label in np.unique(instances):
        if label == 0:
            continue
        mask = instances == label
        area = int(mask.sum())
        if area == 0:
            continue
        ys, xs = np.nonzero(mask)
        x0, y0 = int(xs.min()), int(ys.min())
        bbox = [float(x0), float(y0), float(xs.max() - x0 + 1), float(ys.max() - y0 + 1)]
        seg = _polygons(mask, x0, y0, int(xs.max()), int(ys.max())) if segmentation == "polygon" else None
        if seg is not None and _polygon_spills(seg, instances, label):
            seg = None
        anns.append({
            "category_id": 1,
            "iscrowd": 0,
            "segmentation": seg if seg is not None else mask_to_rle(mask),
            "area": area,
            "bbox": bbox,
            "instance": int(label),
        })
    return anns


def write_coco_json(path: Path, records: Callable[[], Iterator[dict]], *, file_name: Callable[[int], str], tmp_dir: Path | None = None) -> None:
    """Stream a COCO instances file from per-sample records (memory stays flat for any n).

    Args:
        path: output JSON path (written atomically).
        records: callable returning a fresh iterator of records in index order (called twice:
            images, then annotations); each has ``index``, ``height``, ``width``, ``annotations``.
        file_name: maps a sample index to the image path written in the image entry.
        tmp_dir: folder for the temporary file.
    """
    with atomic_open(path, tmp_dir) as fh:
        fh.write(b'{"info": {"description": "keysynth synthetic keys", "version": "1"}, "licenses": [], ')
        fh.write(b'"categories": ' + json.dumps(CATEGORIES).encode() + b', "images": [')
        for n, rec in enumerate(records()):
            entry = {"id": rec["index"] + 1, "file_name": file_name(rec["index"]), "width": rec["width"], "height": rec["height"]}
            fh.write((b", " if n else b"") + json.dumps(entry, sort_keys=True).encode())
        fh.write(b'], "annotations": [')
        ann_id = 0
        for rec in records():
            for ann in rec.get("annotations", []):
                ann_id += 1
                entry = dict(ann, id=ann_id, image_id=rec["index"] + 1)
                fh.write((b", " if ann_id > 1 else b"") + json.dumps(entry, sort_keys=True).encode())
        fh.write(b"]}\n")


class CocoWriter(FolderWriter):
    """``--format coco``: the folder format plus ``annotations.json`` (COCO instances)."""

    name = "coco"

    def __init__(self, *, chunk_size: int = 32, coco: bool = True, coco_segmentation: str = "polygon") -> None:
        super().__init__(chunk_size=chunk_size, coco=True, coco_segmentation=coco_segmentation)
