"""Whole-photo prediction: the baseline "resize" strategy, strategy dispatch, and the
``keysynth predict`` writer (binary masks + RGBA cut-outs).

Baseline (:func:`predict_resize`, as common practice: pad to square, then resize):
pad the photo with zeros at the bottom/right to a square of side L = max(H, W), resize to
``model_spec["image_size"]`` S with ``cv2.INTER_AREA``, run the model, apply the sigmoid to the
logits, resize the S x S probability map back to L x L with ``cv2.INTER_LINEAR`` and crop the pad
away ([:H, :W]; cropping after resizing keeps the geometry exact, no rounding of the content
box). Other strategies (tiles, coarse-to-fine) live in ``real_eval.strategies``, whose
``predict_probs`` dispatches to them all (default: ``strategies.DEFAULT_STRATEGY``, chosen by
measurement on real photos).
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from keysynth.common import atomic_write_bytes
from real_eval.dataset import IMAGE_EXTENSIONS, output_file, read_image_rgb
from real_eval.model_io import to_input_tensor

__all__ = ["predict_resize", "predict_resize_batch", "predict_files", "output_names",
           "atomic_write_png", "cutout_rgba"]


def _pad_resize(image: np.ndarray, size: int) -> np.ndarray:
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3):
        raise ValueError(f"image must be uint8 (H, W, 3) RGB, got {getattr(image, 'dtype', type(image))} "
                         f"{getattr(image, 'shape', '')}")
    h, w = image.shape[:2]
    side = max(h, w)
    sq = np.zeros((side, side, 3), np.uint8)
    sq[:h, :w] = image
    if side == size:
        return sq
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(sq, (size, size), interpolation=interp)


def _unpad(prob: np.ndarray, h: int, w: int) -> np.ndarray:
    side = max(h, w)
    if prob.shape[0] != side:
        prob = cv2.resize(prob, (side, side), interpolation=cv2.INTER_LINEAR)
    return np.clip(prob[:h, :w], 0.0, 1.0).astype(np.float32)


def predict_resize_batch(model, model_spec: dict[str, Any], images: Sequence[np.ndarray], device: str = "cpu",
                         batch_size: int = 8) -> list[np.ndarray]:
    """Batched :func:`predict_resize`: list of uint8 (H_i, W_i, 3) RGB -> list of float32 (H_i, W_i)
    key probabilities in [0, 1]. The model is used as is (call ``model.eval()`` first)."""
    import torch

    size = int(model_spec["image_size"])
    out: list[np.ndarray] = []
    for start in range(0, len(images), max(1, int(batch_size))):
        chunk = images[start:start + max(1, int(batch_size))]
        x = to_input_tensor(np.stack([_pad_resize(im, size) for im in chunk]), model_spec).to(device)
        with torch.inference_mode():
            prob = torch.sigmoid(model(x).float())[:, 0].cpu().numpy()
        out.extend(_unpad(p, im.shape[0], im.shape[1]) for p, im in zip(prob, chunk))
    return out


def predict_resize(model, model_spec: dict[str, Any], image: np.ndarray, device: str = "cpu") -> np.ndarray:
    """Pad-to-square + resize prediction (module docstring).

    Args:
        model: torch module returning logits (N, 1, S, S) for float32 (N, 3, S, S) input.
        model_spec: needs ``image_size`` (S, px), ``mean``, ``std`` (see model_io).
        image: uint8 (H, W, 3) RGB, any size.
    Returns:
        float32 (H, W) key probabilities in [0, 1].
    Raises:
        ValueError: image not uint8 RGB.
    """
    return predict_resize_batch(model, model_spec, [image], device=device, batch_size=1)[0]


def atomic_write_png(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write uint8 (H, W), (H, W, 3) RGB or (H, W, 4) RGBA as PNG via a temp name + os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.asarray(array)
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR if arr.shape[2] == 3 else cv2.COLOR_RGBA2BGRA)
    ok, buf = cv2.imencode(".png", arr)
    if not ok:
        raise ValueError(f"cannot encode {path} as PNG")
    atomic_write_bytes(path, buf.tobytes())


def cutout_rgba(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """uint8 RGB (H, W, 3) + bool (H, W) key mask -> uint8 RGBA cut-out (alpha 255 on key, 0 elsewhere)."""
    return np.dstack([image, np.where(mask, 255, 0).astype(np.uint8)])


def _expand_photos(photos: Sequence[str | os.PathLike]) -> list[Path]:
    """Photo files of ``photos`` (files, or folders searched recursively), each file once."""
    files: list[Path] = []
    for p in map(Path, photos):
        if p.is_dir():
            files += sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in IMAGE_EXTENSIONS)
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"photo {p} does not exist")
    seen: set[str] = set()
    files = [f for f in files if not (os.path.realpath(f) in seen or seen.add(os.path.realpath(f)))]
    if not files:
        raise ValueError(f"no photos found in {', '.join(map(str, photos))} ({', '.join(IMAGE_EXTENSIONS)})")
    return files


def output_names(files: Sequence[Path]) -> list[str]:
    """Unique, file-name-safe output names for ``files`` (``masks/NAME.png``, ``cutouts/NAME.png``).

    A photo's name is its stem; photos whose stems collide (compared case-insensitively, as on
    macOS / Windows file systems), e.g. ``photo.jpg`` and ``photo.png``, keep their extension
    (``photo.jpg``, ``photo.png``); names that still collide (the same file name in two folders)
    get the parent folder's name in front (``a__photo.jpg``), and any clash left gets ``__2``,
    ``__3``, ... Separators and control characters in a name become ``_``.
    """
    from real_eval.readers.base import sample_name

    files = [Path(f) for f in files]
    names = [f.stem for f in files]
    for rule in (lambda f: f.name, lambda f: f"{f.parent.name}__{f.name}"):
        counts = Counter(n.lower() for n in names)
        names = [rule(f) if counts[n.lower()] > 1 else n for f, n in zip(files, names)]
    taken: set[str] = set()
    out = []
    for n in (sample_name([n]) or "photo" for n in names):
        cand, k = n, 2
        while cand.lower() in taken:
            cand, k = f"{n}__{k}", k + 1
        taken.add(cand.lower())
        out.append(cand)
    return out


def predict_files(photos: Sequence[str | os.PathLike], model, model_spec: dict[str, Any], out_dir: str | os.PathLike, *,
                  strategy: str | None = None, threshold: float = 0.5, device: str = "cpu", progress: bool = True) -> list[dict]:
    """Predict photos (files or folders, any size) and write ``out_dir/masks/NAME.png`` (uint8
    0/255) and ``out_dir/cutouts/NAME.png`` (RGBA, alpha = key); NAME from :func:`output_names`
    (unique per photo). A photo that cannot be read is skipped and the others are still predicted.

    Returns:
        One record per photo, in input order: ``photo``, ``name``, and ``height``, ``width``,
        ``key_share`` when written, or ``error`` (the reason) when the photo could not be read.

    Raises:
        FileNotFoundError: a given photo path does not exist.
        ValueError: no photos found, or an output path that would resolve outside ``out_dir``.
    """
    from tqdm import tqdm

    from real_eval import strategies  # strategies builds on this module: import at call time

    files = _expand_photos(photos)
    out_dir = Path(out_dir)
    records = []
    for f, name in tqdm(list(zip(files, output_names(files))), desc="predict", unit="photo", disable=not progress):
        mask_path, cut_path = output_file(out_dir, "masks", f"{name}.png"), output_file(out_dir, "cutouts", f"{name}.png")
        try:
            image = read_image_rgb(f)
        except (OSError, ValueError, cv2.error) as exc:
            records.append({"photo": str(f), "name": name, "error": str(exc)})
            continue
        prob = strategies.predict_probs(model, model_spec, image, strategy=strategy, device=device)
        key = prob >= threshold
        atomic_write_png(mask_path, np.where(key, 255, 0).astype(np.uint8))
        atomic_write_png(cut_path, cutout_rgba(image, key))
        records.append({"photo": str(f), "name": name, "height": image.shape[0], "width": image.shape[1],
                        "key_share": float(key.mean())})
    return records
