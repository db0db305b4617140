"""Key cut-outs from an annotated photo set, for copy-paste into synthetic scenes.

Every connected component (8-connectivity) of a photo's key mask is one cut-out: a tight crop of
the photo plus a margin, written as a straight-alpha RGBA PNG whose alpha is the mask (255 = key,
0 = elsewhere, ignore pixels included as 0). Components smaller than ``min_area`` px are skipped
and counted (specks of mask noise make useless cut-outs). A component touching the photo border is
flagged ``truncated``: the key may go on outside the photo, so a generator can avoid treating its
cut edge as a key outline. ``cutouts.jsonl`` records one line per cut-out: file, source photo,
its content hash (:func:`real_eval.calibrate.content_hash`, used to keep training cut-outs apart
from evaluation photos), instance box ``[x0, y0, x1, y1]`` in source px, area px, truncated.

This is the data step of copy-paste augmentation (Dwibedi et al., "Cut, Paste and Learn", ICCV
2017; Ghiasi et al., "Simple Copy-Paste", CVPR 2021); ``synth.cutouts.FolderCutouts`` reads the
folder back.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from keysynth.common import CUTOUT_INDEX, atomic_write_text
from real_eval.calibrate import content_hash
from real_eval.predict import atomic_write_png

__all__ = ["instance_cutouts", "extract_cutouts", "CUTOUT_INDEX"]



def instance_cutouts(image: np.ndarray, mask: np.ndarray, *, min_area: int = 64, margin: int = 4
                     ) -> tuple[list[tuple[np.ndarray, dict[str, Any]]], int]:
    """Split one photo's key mask into instance cut-outs.

    Args:
        image: uint8 (H, W, 3) RGB.
        mask: uint8 (H, W), 1 = key (255 = ignore and 0 = background are both left out).
        min_area: components with fewer key pixels are skipped.
        margin: px of context kept around each instance box (alpha 0 there).

    Returns:
        ``([(rgba uint8 (h, w, 4), {"box", "area", "truncated"}), ...], n_skipped)``, largest first.

    Raises:
        ValueError: shapes or dtypes off, or a negative ``min_area`` / ``margin``.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or mask.shape != image.shape[:2]:
        raise ValueError(f"need uint8 (H, W, 3) image and (H, W) mask, got {image.dtype} {image.shape} / {mask.shape}")
    if min_area < 0 or margin < 0:
        raise ValueError(f"min_area and margin must be >= 0, got {min_area}, {margin}")
    H, W = mask.shape
    n, lab, stats, _ = cv2.connectedComponentsWithStats((mask == 1).astype(np.uint8), connectivity=8)
    out, skipped = [], 0
    for i in sorted(range(1, n), key=lambda j: -stats[j, cv2.CC_STAT_AREA]):
        x, y, w, h, area = (int(v) for v in stats[i])
        if area < min_area:
            skipped += 1
            continue
        x0, y0, x1, y1 = max(0, x - margin), max(0, y - margin), min(W, x + w + margin), min(H, y + h + margin)
        alpha = np.where(lab[y0:y1, x0:x1] == i, 255, 0).astype(np.uint8)
        rgba = np.dstack([image[y0:y1, x0:x1], alpha])
        truncated = x == 0 or y == 0 or x + w == W or y + h == H
        out.append((rgba, {"box": [x, y, x + w, y + h], "area": area, "truncated": bool(truncated)}))
    return out, skipped


def extract_cutouts(samples: Sequence, out_dir: str | os.PathLike, *, min_area: int = 64, margin: int = 4,
                    overwrite: bool = False) -> dict[str, Any]:
    """Write every instance cut-out of ``samples`` to ``out_dir`` (see module doc).

    Args:
        samples: :class:`real_eval.dataset.RealSample` items (``name``, ``image``, ``mask``, ``source``).
        out_dir: output folder; ``NAME_kJ.png`` per cut-out and ``cutouts.jsonl``.
        overwrite: allow an ``out_dir`` that already holds cut-outs (they are replaced).

    Returns:
        ``{"photos", "cutouts", "skipped_small", "truncated", "out"}``.

    Raises:
        FileExistsError: ``out_dir`` already holds a ``cutouts.jsonl`` and ``overwrite`` is False.
        ValueError: an output name would leave ``out_dir``.
    """
    out = Path(out_dir)
    if (out / CUTOUT_INDEX).exists() and not overwrite:
        raise FileExistsError(f"{out} already holds cut-outs ({CUTOUT_INDEX}); pick another --out or pass --overwrite")
    out.mkdir(parents=True, exist_ok=True)
    root = out.resolve()
    rows, skipped = [], 0
    for s in samples:
        cuts, sk = instance_cutouts(s.image, s.mask, min_area=min_area, margin=margin)
        skipped += sk
        digest = content_hash(s.image)
        for j, (rgba, info) in enumerate(cuts):
            path = (out / f"{s.name}_k{j}.png").resolve()
            if path.parent != root:
                raise ValueError(f"cut-out name {s.name!r} would be written outside {out}; rename the photo")
            atomic_write_png(path, rgba)
            rows.append({"file": path.name, "source": s.source or s.name, "source_hash": digest, **info})
    atomic_write_text(out / CUTOUT_INDEX, "".join(json.dumps(r) + "\n" for r in rows))
    return {"photos": len(samples), "cutouts": len(rows), "skipped_small": skipped,
            "truncated": sum(r["truncated"] for r in rows), "out": str(out)}
