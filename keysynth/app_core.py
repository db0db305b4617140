"""Pure helpers of ``keysynth app`` (no Gradio): reading uploaded photos, segmenting them,
extracting uploaded zips safely, and describing the model.

Everything here raises :class:`AppInputError` (a ``ValueError``) with a message meant for the
page when the input is at fault; the web layer (:mod:`keysynth.app`) shows that message instead
of a stack trace.
"""

from __future__ import annotations

import re
import stat
import threading
import warnings
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Any, Sequence

import cv2
import numpy as np

__all__ = [
    "AppInputError", "MAX_SIDE", "MAX_PIXELS", "PREVIEW_SIDE", "MAX_ZIP_BYTES", "MAX_ZIP_MEMBERS",
    "load_photo", "safe_stem", "overlay_preview", "segment_image", "segment_files", "safe_extract_zip",
    "dataset_root", "model_summary", "figures_markdown", "PREDICT_LOCK",
]

MAX_SIDE = 4000              # photos are downscaled so that their long side is at most this, px
MAX_PIXELS = 150_000_000     # larger photos are refused before decoding (a 12000 x 12000 photo)
PREVIEW_SIDE = 1280          # long side of the images shown in the page, px
MAX_ZIP_BYTES = 2 * 1024**3  # total uncompressed size of an uploaded annotated set
MAX_ZIP_MEMBERS = 20000
PHOTO_FORMATS = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG", "WEBP": "WebP"}

PREDICT_LOCK = threading.Lock()  # one prediction at a time: bounds the server's peak memory


class AppInputError(ValueError):
    """A problem with what the user gave (file, zip, setting); the message is shown in the page."""


def safe_stem(name: str, taken: set[str] | None = None) -> str:
    """A file-name-safe stem of ``name`` (letters, digits, ``._-``; at most 80 characters), made
    unique against ``taken`` (which is updated) with a ``-2``, ``-3``, ... suffix."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(str(name)).stem).strip("._") or "photo"
    stem = stem[:80]
    if taken is None:
        return stem
    out, k = stem, 2
    while out in taken:
        out, k = f"{stem}-{k}", k + 1
    taken.add(out)
    return out


def _to_rgb(im) -> np.ndarray:
    """PIL image of any mode -> uint8 (H, W, 3) RGB; transparency composited over white."""
    from PIL import Image

    if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        arr = np.asarray(im, dtype=np.float32)
        arr = arr / (257.0 if arr.max(initial=0) > 255 else 1.0)
        grey = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, rgba)
    return np.ascontiguousarray(np.asarray(im.convert("RGB"), dtype=np.uint8))


def load_photo(path: str | Path, *, max_side: int = MAX_SIDE, max_pixels: int = MAX_PIXELS,
               display_name: str | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Read an uploaded JPEG / PNG / WebP photo as uint8 RGB, upright and at most ``max_side`` px.

    EXIF orientation is applied (``PIL.ImageOps.exif_transpose``). A photo whose long side exceeds
    ``max_side`` is downscaled (JPEGs are decoded at a reduced DCT scale first, so a 12000 x 9000
    JPEG never exists in memory at full size). Grey, palette, 16-bit and RGBA photos are converted
    (transparency over white).

    Returns:
        ``(image, info)``: uint8 (H, W, 3) RGB with ``max(H, W) <= max_side``, and ``{"name",
        "format", "original_size": (w, h) upright, "size": (w, h), "downscaled": bool}``.

    Raises:
        AppInputError: missing or 0-byte file, not an image, a format other than JPEG / PNG /
            WebP, more than ``max_pixels`` pixels, or a corrupt / truncated file.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    name = display_name or path.name
    if not path.is_file():
        raise AppInputError(f"{name}: the file does not exist (upload it again)")
    if path.stat().st_size == 0:
        raise AppInputError(f"{name}: the file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                fmt = PHOTO_FORMATS.get(im.format or "")
                if fmt is None:
                    raise AppInputError(f"{name}: {im.format or 'this'} images are not supported; "
                                        "upload a JPEG, PNG or WebP photo")
                w, h = im.size
                if w * h > max_pixels:
                    raise AppInputError(f"{name}: {w} x {h} px is too large ({w * h / 1e6:.0f} megapixels; "
                                        f"at most {max_pixels / 1e6:.0f}); downscale it first")
                scale = min(1.0, max_side / max(w, h))
                if fmt == "JPEG" and scale < 1.0:
                    im.draft("RGB", (max(1, int(w * scale + 1)), max(1, int(h * scale + 1))))
                orientation = im.getexif().get(0x0112, 1)
                orig = (h, w) if orientation in (5, 6, 7, 8) else (w, h)  # these orientations swap the sides
                im.load()
                if im.mode.startswith("I;16"):
                    im = im.convert("I")
                if max(im.size) > max_side:  # a square box: the same whatever the orientation
                    im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=3.0)
                if orientation != 1:  # transposed after shrinking: cheaper, same result
                    im = ImageOps.exif_transpose(im)
                image = _to_rgb(im)
    except AppInputError:
        raise
    except UnidentifiedImageError:
        raise AppInputError(f"{name}: not a readable image (not an image file, or a corrupt one); "
                            "upload a JPEG, PNG or WebP photo") from None
    except Image.DecompressionBombError:
        raise AppInputError(f"{name}: the image is too large to decode safely; downscale it first") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise AppInputError(f"{name}: the image cannot be decoded (corrupt or truncated file: {exc})") from None
    info = {"name": name, "format": fmt, "original_size": tuple(int(v) for v in orig),
            "size": (int(image.shape[1]), int(image.shape[0])), "downscaled": max(orig) > max_side}
    return image, info


def _shrink(arr: np.ndarray, side: int, *, nearest: bool = False) -> np.ndarray:
    h, w = arr.shape[:2]
    s = min(1.0, side / max(h, w))
    if s >= 1.0:
        return arr
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return cv2.resize(arr, size, interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_AREA)


def overlay_preview(image: np.ndarray, mask: np.ndarray, *, max_side: int = PREVIEW_SIDE) -> np.ndarray:
    """uint8 RGB overlay, long side at most ``max_side``: key pixels tinted red, outlined in yellow.

    Args:
        image: uint8 (H, W, 3) RGB.
        mask: bool or {0, 1} (H, W) key mask.
    """
    small = _shrink(image, max_side)
    m = _shrink(np.asarray(mask, np.uint8), max_side, nearest=True).astype(bool)
    out = small.astype(np.float32)
    out[m] = out[m] * 0.5 + np.array((255, 30, 30), np.float32) * 0.5
    out = np.ascontiguousarray(np.clip(out, 0, 255).astype(np.uint8))
    cnts, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(out, cnts, -1, (255, 230, 0), max(1, max(out.shape[:2]) // 500), lineType=cv2.LINE_AA)
    return out


def segment_image(model, spec: dict[str, Any], image: np.ndarray, *, strategy: str, threshold: float,
                  device: str = "cpu") -> np.ndarray:
    """Key mask of one photo: ``predict_probs(...) >= threshold`` as bool (H, W).

    Predictions are serialised process-wide (one at a time) to bound the server's peak memory.

    Raises:
        AppInputError: unknown strategy or a threshold outside [0, 1].
    """
    from real_eval.strategies import STRATEGIES, predict_probs

    if strategy not in STRATEGIES:
        raise AppInputError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if not 0.0 <= float(threshold) <= 1.0:
        raise AppInputError(f"threshold must be in [0, 1], got {threshold}")
    with PREDICT_LOCK:
        prob = predict_probs(model, spec, image, strategy=strategy, device=device)
    return prob >= float(threshold)


def _write_png(path: Path, arr: np.ndarray, level: int = 1) -> Path:
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR if arr.shape[2] == 3 else cv2.COLOR_RGBA2BGRA)
    ok, buf = cv2.imencode(".png", arr, [cv2.IMWRITE_PNG_COMPRESSION, level])
    if not ok:
        raise ValueError(f"cannot encode {path.name} as PNG")
    path.write_bytes(buf.tobytes())
    return path


def segment_files(paths: Sequence[str | Path], model, spec: dict[str, Any], out_dir: str | Path, *,
                  strategy: str, threshold: float, device: str = "cpu",
                  names: Sequence[str] | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """Segment uploaded photos and write, per photo, into ``out_dir``:
    ``STEM_mask.png`` (uint8 0/255, working size), ``STEM_cutout.png`` (RGBA, alpha 255 on key)
    and page previews ``STEM_overlay.jpg``, ``STEM_mask_preview.png``, ``STEM_cutout_preview.png``
    (long side <= :data:`PREVIEW_SIDE`).

    Returns:
        ``(records, errors)``: one dict per photo that worked (``name``, ``info`` from
        :func:`load_photo`, ``key_share``, ``seconds`` and the paths above as ``mask``, ``cutout``,
        ``overlay_preview``, ``mask_preview``, ``cutout_preview``) and one message per photo that
        did not (bad files do not stop the others).

    Raises:
        AppInputError: unknown strategy or bad threshold (nothing is processed).
    """
    import time

    from real_eval.predict import cutout_rgba

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    records, errors, taken = [], [], set()
    for i, p in enumerate(paths):
        t0 = time.perf_counter()
        name = names[i] if names is not None else Path(p).name
        try:
            image, info = load_photo(p, display_name=name)
        except AppInputError as exc:
            errors.append(str(exc))
            continue
        mask = segment_image(model, spec, image, strategy=strategy, threshold=threshold, device=device)
        stem = safe_stem(name, taken)
        rec = {"name": name, "info": info, "key_share": float(mask.mean())}
        rec["mask"] = _write_png(out_dir / f"{stem}_mask.png", np.where(mask, 255, 0).astype(np.uint8))
        rgba = cutout_rgba(image, mask)
        rec["cutout"] = _write_png(out_dir / f"{stem}_cutout.png", rgba)
        rec["cutout_preview"] = _write_png(out_dir / f"{stem}_cutout_preview.png", _shrink(rgba, PREVIEW_SIDE))
        del rgba
        rec["mask_preview"] = _write_png(out_dir / f"{stem}_mask_preview.png",
                                         _shrink(np.where(mask, 255, 0).astype(np.uint8), PREVIEW_SIDE, nearest=True))
        ov = overlay_preview(image, mask)
        rec["overlay_preview"] = out_dir / f"{stem}_overlay.jpg"
        cv2.imwrite(str(rec["overlay_preview"]), cv2.cvtColor(ov, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
        rec["seconds"] = time.perf_counter() - t0
        records.append(rec)
    return records, errors


def _member_parts(info: zipfile.ZipInfo) -> list[str] | None:
    """Path parts of a zip member, or None for entries to skip (folders, macOS metadata).

    Raises:
        AppInputError: an absolute path, a ``..`` part, a symlink or an encrypted member.
    """
    name = info.filename
    norm = name.replace("\\", "/")
    if "\x00" in name or norm.startswith("/") or re.match(r"^[A-Za-z]:", norm):
        raise AppInputError(f"the zip holds an absolute path ({name!r}); refusing to extract it")
    parts = [p for p in PurePosixPath(norm).parts if p not in ("", ".")]
    if ".." in parts:
        raise AppInputError(f"the zip holds a path that leaves its folder ({name!r}); refusing to extract it")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise AppInputError(f"the zip holds a symbolic link ({name!r}); refusing to extract it")
    if info.flag_bits & 0x1:
        raise AppInputError(f"the zip holds an encrypted file ({name!r}); upload an unencrypted zip")
    if not parts or parts[0] == "__MACOSX" or parts[-1].startswith("._") or info.is_dir():
        return None
    return parts


def safe_extract_zip(zip_path: str | Path, dest: str | Path, *, max_bytes: int = MAX_ZIP_BYTES,
                     max_members: int = MAX_ZIP_MEMBERS) -> list[Path]:
    """Extract an uploaded zip into the (empty, temporary) folder ``dest``.

    Every member name is checked before anything is written: absolute paths, ``..`` parts,
    symbolic links and encrypted members refuse the whole archive. The uncompressed size is
    counted while copying (not trusted from the header), so a zip bomb stops at ``max_bytes``.
    Files are created exclusively (never through an existing link). ``__MACOSX/`` and ``._*``
    entries are skipped.

    Returns:
        the extracted file paths, all inside ``dest``.

    Raises:
        AppInputError: not a zip, unsafe member, more than ``max_members`` entries, more than
            ``max_bytes`` uncompressed, duplicate names, or a corrupt member.
    """
    dest = Path(dest).resolve()
    dest.mkdir(parents=True, exist_ok=True)
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError):
        raise AppInputError(f"{Path(zip_path).name} is not a zip file; upload the annotated set as a .zip") from None
    written: list[Path] = []
    with zf:
        infos = zf.infolist()
        if len(infos) > max_members:
            raise AppInputError(f"the zip holds {len(infos)} entries (at most {max_members})")
        plan = [(info, parts) for info in infos if (parts := _member_parts(info)) is not None]
        if sum(info.file_size for info, _ in plan) > max_bytes:
            raise AppInputError(f"the zip unpacks to more than {max_bytes / 1024**3:.1f} GiB; upload a smaller set")
        total = 0
        for info, parts in plan:
            target = dest.joinpath(*parts)
            if dest not in target.resolve().parents:
                raise AppInputError(f"the zip member {info.filename!r} leaves its folder; refusing to extract it")
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with zf.open(info) as src, open(target, "xb") as dst:
                    while chunk := src.read(1 << 20):
                        total += len(chunk)
                        if total > max_bytes:
                            raise AppInputError(f"the zip unpacks to more than {max_bytes / 1024**3:.1f} GiB; "
                                                "upload a smaller set")
                        dst.write(chunk)
            except FileExistsError:
                raise AppInputError(f"the zip holds {info.filename!r} twice (or as a file and a folder)") from None
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
                raise AppInputError(f"the zip member {info.filename!r} cannot be read ({exc})") from None
            written.append(target)
    return written


def dataset_root(folder: str | Path) -> Path:
    """The folder to read an extracted set from: ``folder`` itself, or its only sub-folder when
    the zip wrapped everything in one folder (``set.zip`` -> ``set/images``, ``set/masks``)."""
    folder = Path(folder)
    while True:
        entries = [e for e in folder.iterdir() if e.name not in ("__MACOSX",) and not e.name.startswith(".")]
        if len(entries) == 1 and entries[0].is_dir() and entries[0].name not in ("images", "masks", "annotations"):
            folder = entries[0]
            continue
        return folder


def _flatten(obj: Any, prefix: str = "", out: list | None = None) -> list[tuple[str, Any]]:
    out = [] if out is None else out
    if isinstance(obj, dict):
        for k, v in obj.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    elif isinstance(obj, list) and obj and all(isinstance(v, (dict, list)) for v in obj):
        for i, v in enumerate(obj):
            _flatten(v, f"{prefix}[{i}]", out)
    else:
        out.append((prefix or "value", obj))
    return out


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return ", ".join(_fmt(x) for x in v[:12]) + (" ..." if len(v) > 12 else "")
    return re.sub(r"([\\`*_{}\[\]<>#|])", r"\\\1", str(v).replace("\n", " "))


def figures_markdown(figures: Any, max_items: int = 40) -> str:
    """One Markdown line listing a model folder's ``figures`` entry (any JSON: nested dicts are
    flattened to dotted names, ``name value`` pairs joined by `` · ``); empty for ``None``."""
    if figures is None:
        return ""
    if isinstance(figures, dict) and isinstance(figures.get("cross_calibrated"), dict):
        # a shipped model's headline: per-photo means with 95% intervals, calibrated on other photos
        cc = figures["cross_calibrated"]
        items = [f"{_fmt(k)} **{v['mean']:.3f}** [{v['ci95'][0]:.3f}, {v['ci95'][1]:.3f}]"
                 for k, v in cc.items() if isinstance(v, dict) and "mean" in v and "ci95" in v]
        how = ("each photo scored by the same recipe trained without its key's cut-outs"
               if figures.get("method") == "grouped folds" else "threshold and strategy calibrated on other photos")
        return f"**Real-photo figures** (mean over photos, {how}; see the model card): " + " · ".join(items)
    rows = _flatten(figures)
    items = [f"{_fmt(k)} **{_fmt(v)}**" for k, v in rows[:max_items]]
    if len(rows) > max_items:
        items.append(f"... {len(rows) - max_items} more")
    return "**Figures:** " + " · ".join(items)


def _origin(value: Any) -> str:
    return "the model's own" if value is not None else "default"


def model_summary(spec: dict[str, Any], checkpoint: str | Path | None) -> str:
    """Markdown paragraph naming the model (path, architecture, input size), its own threshold
    and strategy, its calibration, and its ``figures`` (from a model folder's ``keysynth.json``)."""
    from real_eval.model_io import is_model_dir, read_model_info
    from real_eval.strategies import DEFAULT_STRATEGY

    where = str(checkpoint) if checkpoint else f"the shipped model ({spec.get('source')})"
    thr, strat = spec.get("threshold"), spec.get("strategy")
    parts = [f"**Model:** `{where}` — {spec.get('arch', 'Unet')} / {spec.get('encoder_name')}, "
             f"{spec.get('image_size')} px input.",
             f"Threshold {thr if thr is not None else 0.5} ({_origin(thr)}), "
             f"strategy {strat or DEFAULT_STRATEGY} ({_origin(strat)})."]
    cal = spec.get("calibration") or {}
    if cal.get("n_images"):
        parts.append(f"Calibrated on {cal['n_images']} photos (mean IoU {float(cal.get('mean_iou', float('nan'))):.3f}).")
    elif cal.get("set") == "synthetic validation":
        parts.append("Threshold read off the model's synthetic validation samples during training.")
    text = " ".join(parts)
    src = spec.get("source") or checkpoint
    figures = None
    if src and is_model_dir(src):
        try:
            figures = read_model_info(src).get("figures")
        except ValueError:
            figures = None
    if figures is not None:
        text += "\n\n" + figures_markdown(figures)
    return text
