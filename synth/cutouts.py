"""User key cut-outs from a folder, with the same interface as ``synth.keys.ProceduralKeys``.

Layouts accepted under ``root`` (both may be mixed):

- ``*.png`` (top level): RGBA PNGs; alpha = key coverage (0 = background, 255 = key).
- ``images/NAME.{png,jpg,jpeg,bmp,webp}`` + ``masks/NAME.png``: an image and a single-channel mask
  (0 = background, >0 = key; values 1 or 255 both work; soft masks are kept as coverage).

Each sample picks one cut-out uniformly (``rng.integers``), crops it to the alpha's bounding box,
scales it so the longer side of that box is ``length_px`` (INTER_AREA down, INTER_LINEAR up),
and rotates it counter-clockwise by ``angle_deg`` on an expanded canvas. ``shading`` and
``light_dir`` are accepted for interface compatibility; no re-lighting is done (photographed
cut-outs keep their own lighting). Files are indexed lazily and decoded once per source object.

A folder written by ``keysynth cutouts`` holds ``cutouts.jsonl``; the cut-outs it flags
``truncated`` (keys cut by their photo's border) are left out while whole ones remain: pasted
inside a scene, their straight cut edge would be labelled as a key outline no real key has.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import cv2
import numpy as np

from keysynth.common import CUTOUT_INDEX, IMAGE_EXTENSIONS

__all__ = ["FolderCutouts", "CutoutError", "read_cutout_index"]



class CutoutError(ValueError):
    """A cut-out folder or file is unusable; the message names the file and the fix."""


def _read(path: Path, flags: int) -> np.ndarray:
    data = np.fromfile(str(path), np.uint8) if path.is_file() else None
    img = cv2.imdecode(data, flags) if data is not None and data.size else None
    if img is None:
        raise CutoutError(f"cannot decode image file {path}: it is missing, empty or corrupt; "
                          f"re-export it as PNG (or delete it from the cut-out folder)")
    return img


def read_cutout_index(root: str | os.PathLike) -> list[dict]:
    """The rows of ``root/cutouts.jsonl`` (:data:`keysynth.common.CUTOUT_INDEX`, one JSON object per
    line, written by ``keysynth cutouts``); an empty list when the folder has no index.

    Raises:
        CutoutError: a line is not a JSON object; the message names the file and the line.
    """
    index = Path(root) / CUTOUT_INDEX
    if not index.is_file():
        return []
    rows = []
    for n, line in enumerate(index.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if not isinstance(row, dict):
            raise CutoutError(f"{index} line {n} is not a JSON object; re-run `keysynth cutouts` or delete the index")
        rows.append(row)
    return rows


def _truncated_files(root: Path) -> set[str]:
    """File names flagged ``"truncated": true`` in the folder's cut-out index (keys cut by their
    photo's border); empty without the index."""
    return {r["file"] for r in read_cutout_index(root) if r.get("truncated") is True and isinstance(r.get("file"), str)}


class FolderCutouts:
    """Key cut-outs from ``root`` (see module doc). Picklable: only the path travels.

    Raises:
        CutoutError: on first use if the folder does not exist or holds no usable file, or when a
            chosen file is corrupt, has no alpha, or its mask is missing or of another size.
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self._entries: list[tuple[str, Path, Path | None]] | None = None
        self._cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.n_truncated = 0  # cut-outs left out because their key was cut by the photo border

    def __repr__(self) -> str:
        return f"FolderCutouts({str(self.root)!r})"

    def __getstate__(self) -> dict:
        return {"root": str(self.root)}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["root"])

    def entries(self) -> list[tuple[str, Path, Path | None]]:
        """Sorted ``(name, image_path, mask_path_or_None)`` list (indexed once)."""
        if self._entries is None:
            if not self.root.is_dir():
                raise CutoutError(f"cut-out folder {self.root} does not exist; pass a folder holding RGBA "
                                  f"*.png files or images/ + masks/ subfolders")
            out = [(p.stem, p, None) for p in sorted(self.root.iterdir())
                   if p.is_file() and p.suffix.lower() == ".png"]
            img_dir, mask_dir = self.root / "images", self.root / "masks"
            if img_dir.is_dir():
                for p in sorted(img_dir.iterdir()):
                    if not (p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS):
                        continue
                    m = mask_dir / (p.stem + ".png")
                    if not m.is_file():
                        raise CutoutError(f"image {p} has no mask: expected {m} (single-channel PNG, 0 = "
                                          f"background, >0 = key); add it or remove the image")
                    out.append(("images/" + p.stem, p, m))
            if not out:
                raise CutoutError(f"cut-out folder {self.root} is empty: put RGBA *.png files in it, or "
                                  f"images/NAME.jpg + masks/NAME.png pairs")
            cut = _truncated_files(self.root)
            whole = [e for e in out if e[1].name not in cut or e[2] is not None]
            self.n_truncated = len(out) - len(whole)
            self._entries = whole or out  # only truncated cut-outs: use them rather than none
        return self._entries

    def __len__(self) -> int:
        return len(self.entries())

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Cut-out ``i`` cropped to its alpha box: (rgb uint8 (h, w, 3), alpha uint8 (h, w)). Cached."""
        name, img_path, mask_path = self.entries()[i]
        hit = self._cache.get(name)
        if hit is not None:
            return hit
        if mask_path is None:
            img = _read(img_path, cv2.IMREAD_UNCHANGED)
            if img.ndim != 3 or img.shape[2] != 4:
                raise CutoutError(f"{img_path} has no alpha channel; save it as an RGBA PNG (transparent "
                                  f"background), or move it to images/ and add masks/{img_path.stem}.png")
            if img.dtype == np.uint16:
                img = (img >> 8).astype(np.uint8)
            rgb, alpha = cv2.cvtColor(img[..., :3], cv2.COLOR_BGR2RGB), img[..., 3]
        else:
            bgr = _read(img_path, cv2.IMREAD_COLOR)
            mask = _read(mask_path, cv2.IMREAD_GRAYSCALE)
            if mask.shape != bgr.shape[:2]:
                raise CutoutError(f"mask {mask_path} is {mask.shape[1]}x{mask.shape[0]} but image {img_path} is "
                                  f"{bgr.shape[1]}x{bgr.shape[0]}; masks must match their image's size")
            alpha = (mask > 0).astype(np.uint8) * 255 if mask.max() <= 1 else mask
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        ys, xs = np.nonzero(alpha)
        if ys.size == 0:
            raise CutoutError(f"{mask_path or img_path} has an empty alpha/mask (no key pixel); fix or remove it")
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        out = (np.ascontiguousarray(rgb[y0:y1, x0:x1]), np.ascontiguousarray(alpha[y0:y1, x0:x1]))
        self._cache[name] = out
        return out

    def sample_layers(self, rng: np.random.Generator, *, length_px: float, angle_deg: float, light_dir=None,
                      env: np.ndarray | None = None, shading: bool = True, max_upscale: float | None = None
                      ) -> tuple[np.ndarray, np.ndarray, dict]:
        """One cut-out: (rgba uint8 (H, W, 4) straight alpha, key_alpha uint8 (H, W) == alpha, meta).

        ``length_px`` = longer side of the alpha bounding box after scaling, unless that would
        enlarge the cut-out more than ``max_upscale`` times (then it is scaled by ``max_upscale``;
        ``meta["length_px"]`` is the length drawn, ``meta["upscale_capped"]`` says so);
        ``angle_deg`` CCW degrees. ``light_dir``, ``env`` and ``shading`` are accepted and ignored
        (no re-lighting).
        """
        L = float(length_px)
        if not math.isfinite(L) or L < 4 or L > 8192:
            raise ValueError(f"length_px must be in [4, 8192] px, got {length_px!r}")
        i = int(rng.integers(len(self.entries())))
        rgb, alpha = self.load(i)
        h, w = alpha.shape
        s = L / max(h, w)
        capped = max_upscale is not None and s > float(max_upscale)
        if capped:
            s = float(max_upscale)
            L = s * max(h, w)
        nw, nh = max(1, round(w * s)), max(1, round(h * s))
        interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
        rgba = cv2.resize(np.dstack([rgb, alpha]), (nw, nh), interpolation=interp)
        a = math.radians(float(angle_deg))
        c, si = abs(math.cos(a)), abs(math.sin(a))
        ow, oh = int(math.ceil(nw * c + nh * si)) + 2, int(math.ceil(nw * si + nh * c)) + 2
        m = cv2.getRotationMatrix2D((nw / 2, nh / 2), float(angle_deg), 1.0)
        m[:, 2] += ((ow - nw) / 2, (oh - nh) / 2)
        # rotate premultiplied colour so edges do not bleed the (undefined) colour outside the alpha
        pm = rgba.astype(np.float32)
        pm[..., :3] *= pm[..., 3:] / 255.0
        rot = cv2.warpAffine(pm, m, (ow, oh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        al = rot[..., 3]
        rgb_out = rot[..., :3] * (255.0 / np.maximum(al, 1e-3))[..., None]
        out = np.empty((oh, ow, 4), np.uint8)
        out[..., :3] = np.clip(rgb_out + 0.5, 0, 255).astype(np.uint8)
        out[..., 3] = np.clip(al + 0.5, 0, 255).astype(np.uint8)
        out[..., :3][out[..., 3] == 0] = 0
        name = self.entries()[i][0]
        meta = {"kind": "cutout", "name": name, "scale": round(s, 5), "length_px": round(L, 3),
                "angle_deg": round(float(angle_deg), 3), "hole_xy": None, "shading": False}
        if capped:
            meta["upscale_capped"] = True
        return out, out[..., 3].copy(), meta

    def sample(self, rng: np.random.Generator, *, length_px: float, angle_deg: float, light_dir=None,
               env: np.ndarray | None = None, shading: bool = True) -> tuple[np.ndarray, dict]:
        """Same as :meth:`sample_layers` without the key alpha: ``(rgba, meta)``."""
        rgba, _, meta = self.sample_layers(rng, length_px=length_px, angle_deg=angle_deg, light_dir=light_dir,
                                           env=env, shading=shading)
        return rgba, meta
