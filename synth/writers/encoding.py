"""Deterministic encoders for sample arrays: JPEG images, PNG masks, canonical JSON.

Every encoder fixes all of its parameters explicitly (quality, chroma subsampling, optimisation,
progressive mode, PNG compression level), so the same array always gives the same bytes with the
same OpenCV build — the basis of the byte-identical outputs across worker counts and backends.
"""

from __future__ import annotations

import json
from typing import Any

import cv2
import numpy as np

__all__ = ["JPEG_QUALITY", "PNG_COMPRESSION", "encode_jpeg", "encode_png", "encode_json", "check_sample"]

#: JPEG quality (OpenCV/libjpeg scale 0-100) of every written image.
JPEG_QUALITY = 95
#: zlib level (0-9) of every written PNG mask.
PNG_COMPRESSION = 3


def encode_jpeg(image: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """Encode an RGB image as baseline JPEG bytes.

    Args:
        image: uint8 (H, W, 3) RGB.
        quality: libjpeg quality 1..100 (default 95); 4:2:0 chroma subsampling, no optimised
            Huffman tables, not progressive (all fixed, so the bytes are reproducible).

    Raises:
        ValueError: wrong dtype/shape or an encoder failure.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be uint8 (H, W, 3) RGB, got {image.dtype} {image.shape}")
    params = [
        cv2.IMWRITE_JPEG_QUALITY, int(quality),
        cv2.IMWRITE_JPEG_OPTIMIZE, 0,
        cv2.IMWRITE_JPEG_PROGRESSIVE, 0,
        cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420,
    ]
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(image[:, :, ::-1]), params)
    if not ok:
        raise ValueError("OpenCV failed to encode the image as JPEG")
    return buf.tobytes()


def encode_png(mask: np.ndarray, compression: int = PNG_COMPRESSION) -> bytes:
    """Encode a single-channel uint8 mask (values kept as they are, e.g. {0, 1, 255}) as PNG bytes."""
    if mask.dtype != np.uint8 or mask.ndim != 2:
        raise ValueError(f"mask must be uint8 (H, W), got {mask.dtype} {mask.shape}")
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(mask), [cv2.IMWRITE_PNG_COMPRESSION, int(compression)])
    if not ok:
        raise ValueError("OpenCV failed to encode the mask as PNG")
    return buf.tobytes()


def encode_json(obj: Any) -> bytes:
    """Canonical UTF-8 JSON (sorted keys) so equal dicts give equal bytes."""
    return json.dumps(obj, sort_keys=True, ensure_ascii=False).encode("utf-8")


def check_sample(sample: Any, index: int) -> None:
    """Validate one rendered sample against the sample contract (docs/DESIGN.md).

    Checks: ``image`` uint8 (H, W, 3); ``mask`` uint8 (H, W) with values in {0, 1, 255};
    ``meta`` a dict holding ``seed``; optional ``instances`` integer (H, W) with
    ``mask == (instances > 0)`` outside the ignore band.

    Raises:
        ValueError: naming the sample index, the field and what was found.
    """
    where = f"renderer output for sample {index}"
    if not isinstance(sample, dict):
        raise ValueError(f"{where}: expected a dict with image/mask/meta, got {type(sample).__name__}")
    for key in ("image", "mask", "meta"):
        if key not in sample:
            raise ValueError(f"{where}: missing key {key!r} (the sample contract needs image, mask, meta)")
    image, mask, meta = sample["image"], sample["mask"], sample["meta"]
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{where}: image must be uint8 (H, W, 3), got {getattr(image, 'dtype', type(image))} {getattr(image, 'shape', '')}")
    if not isinstance(mask, np.ndarray) or mask.dtype != np.uint8 or mask.shape != image.shape[:2]:
        raise ValueError(f"{where}: mask must be uint8 {image.shape[:2]}, got {getattr(mask, 'dtype', type(mask))} {getattr(mask, 'shape', '')}")
    if np.any((mask > 1) & (mask != 255)):
        raise ValueError(f"{where}: mask values must be 0, 1 or 255 (ignore), found {sorted(set(np.unique(mask).tolist()) - {0, 1, 255})[:5]}")
    if not isinstance(meta, dict) or "seed" not in meta:
        raise ValueError(f"{where}: meta must be a dict holding 'seed' (synth.seeding.sample_seed)")
    inst = sample.get("instances")
    if inst is not None:
        if not isinstance(inst, np.ndarray) or inst.shape != mask.shape or inst.dtype.kind not in "ui":
            raise ValueError(f"{where}: instances must be an unsigned integer (H, W) array, got {getattr(inst, 'dtype', type(inst))} {getattr(inst, 'shape', '')}")
        disagree = (mask != 255) & ((mask == 1) != (inst > 0))
        if np.any(disagree):
            raise ValueError(
                f"{where}: mask and instances disagree on {int(disagree.sum())} pixels outside the ignore band "
                "(the contract: mask == (instances > 0) there); fix the renderer's compositing"
            )
