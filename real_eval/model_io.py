"""Build segmentation models from a ``model_spec`` and load keysynth checkpoints.

This is the single place that constructs models: the trainer calls :func:`build_model`, the
evaluator and predictor call :func:`load_checkpoint`. Architectures come from
segmentation_models_pytorch (smp); pretrained weights are never downloaded unless the spec asks
for them (``encoder_weights="imagenet"``), because most machines here are offline.

``model_spec`` (a plain dict, stored in every checkpoint)::

    {"arch": "Unet", "encoder_name": "mobilenet_v2", "encoder_weights": None,
     "in_channels": 3, "classes": 1, "image_size": 192, "decoder_width": 128,
     "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}

``decoder_width`` is the channel count of the U-Net decoder's first (coarsest) block; each finer
block has half as many, at least 8: 256 gives smp's default ``(256, 128, 64, 32, 16)``, 128 gives
``(128, 64, 32, 16, 8)``, which trains about 1.6x faster on a CPU at the same accuracy per step.
Architectures without a U-Net style decoder ignore it.

The model takes float32 NCHW ``x = (rgb / 255 - mean) / std`` and returns logits (N, 1, H, W).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from keysynth.common import atomic_open

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

ARCHITECTURES = ("Unet", "UnetPlusPlus", "FPN", "DeepLabV3Plus", "Linknet", "PSPNet", "MAnet", "PAN")
DEFAULT_ENCODER = "mobilenet_v2"
DEFAULT_IMAGE_SIZE = 192
DEFAULT_DECODER_WIDTH = 128
_DECODER_CHANNELS_ARCHS = ("Unet", "UnetPlusPlus", "MAnet")
MODEL_INFO = "keysynth.json"  # a model folder's spec, threshold, strategy and provenance
MODEL_FORMAT = "keysynth-model/1"
SHIPPED_MODEL = Path(__file__).resolve().parents[1] / "models" / "keysynth-unet"

__all__ = [
    "ARCHITECTURES",
    "DEFAULT_ENCODER",
    "decoder_channels",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "default_model_spec",
    "build_model",
    "load_checkpoint",
    "read_checkpoint",
    "save_model_dir",
    "is_model_dir",
    "read_model_info",
    "shipped_model_dir",
    "write_calibration",
    "to_input_tensor",
]


def default_model_spec(
    *,
    arch: str = "Unet",
    encoder_name: str = DEFAULT_ENCODER,
    encoder_weights: str | None = None,
    image_size: int = DEFAULT_IMAGE_SIZE,
    decoder_width: int = DEFAULT_DECODER_WIDTH,
) -> dict[str, Any]:
    """A complete ``model_spec`` dict with ImageNet normalisation (see module docstring)."""
    return {
        "arch": arch,
        "encoder_name": encoder_name,
        "encoder_weights": encoder_weights,
        "in_channels": 3,
        "classes": 1,
        "image_size": int(image_size),
        "decoder_width": int(decoder_width),
        "mean": list(IMAGENET_MEAN),
        "std": list(IMAGENET_STD),
    }


def decoder_channels(width: int) -> tuple[int, ...]:
    """The five U-Net decoder widths for a first-block ``width``: halving per block, at least 8.

    Raises:
        ValueError: ``width`` below 8.
    """
    if int(width) < 8:
        raise ValueError(f"decoder_width={width!r} must be >= 8 (256 is smp's default U-Net decoder)")
    return tuple(max(8, int(width) >> i) for i in range(5))


def build_model(model_spec: dict[str, Any]):
    """Build an smp model (un-trained unless ``encoder_weights`` is set) from ``model_spec``
    with ``smp.create_model``.

    Raises:
        ValueError: unknown ``arch`` (the message lists :data:`ARCHITECTURES`), unknown encoder
            (the message lists smp's encoders) or a ``decoder_width`` below 8.
    """
    import segmentation_models_pytorch as smp

    arch = model_spec.get("arch", "Unet")
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown arch {arch!r}; valid names: {', '.join(ARCHITECTURES)}")
    encoder = model_spec.get("encoder_name", DEFAULT_ENCODER)
    valid = smp.encoders.get_encoder_names()
    if encoder not in valid:
        raise ValueError(f"unknown encoder_name {encoder!r}; valid names: {', '.join(sorted(valid))}")
    extra = {}
    width = model_spec.get("decoder_width")  # absent in specs written before the field existed: smp default
    if width is not None and arch in _DECODER_CHANNELS_ARCHS:
        extra["decoder_channels"] = decoder_channels(width)
    return smp.create_model(arch, encoder_name=encoder, encoder_weights=model_spec.get("encoder_weights"),
                            in_channels=int(model_spec.get("in_channels", 3)),
                            classes=int(model_spec.get("classes", 1)), **extra)


def read_checkpoint(path: str | Path, device: str = "cpu") -> dict:
    """Read a keysynth ``.pt`` checkpoint dict with ``torch.load(weights_only=True)``: tensors and
    plain containers only, so a file with a pickled code payload is refused, never run.

    Raises:
        FileNotFoundError: ``path`` does not exist (a run folder is pointed to its checkpoint).
        ValueError: unreadable, truncated, holding objects other than tensors and plain data, or
            missing the ``model`` / ``model_spec`` entries.
    """
    import torch

    path = Path(path)
    if path.is_dir():
        hint = next((str(p) for p in (path / "checkpoints" / "best.pt", path / "checkpoints" / "last.pt",
                                      path / "best.pt", path / "last.pt") if p.is_file()), None)
        raise FileNotFoundError(f"checkpoint {path} is a folder, not a checkpoint file; pass "
                                f"{hint or 'RUN_DIR/checkpoints/last.pt'}")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist; pass --checkpoint RUN_DIR/checkpoints/last.pt")
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # truncated, not a torch file, or a pickle with code in it
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "weights_only" in first or "Weights only load failed" in first:  # torch's advice would be unsafe here
            first = "it holds objects that only an unsafe pickle load would build"
        raise ValueError(f"checkpoint {path} cannot be read safely ({first}); it is truncated, not a keysynth "
                         f"checkpoint, or holds objects other than tensors and plain data") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt or "model_spec" not in ckpt:
        raise ValueError(f"{path} is not a keysynth checkpoint: it needs 'model' and 'model_spec' entries")
    return ckpt


def is_model_dir(path: str | Path) -> bool:
    """True when ``path`` is a model folder written by :func:`save_model_dir`."""
    p = Path(path)
    return p.is_dir() and (p / MODEL_INFO).is_file() and (p / "model.safetensors").is_file()


def shipped_model_dir() -> Path:
    """The model used when no checkpoint is given: ``$KEYSYNTH_MODEL`` if set, else the
    ``models/keysynth-unet`` folder of the source tree.

    Raises:
        FileNotFoundError: that folder holds no model (the message says how to get one).
    """
    env = os.environ.get("KEYSYNTH_MODEL")
    p = Path(env) if env else SHIPPED_MODEL
    if not is_model_dir(p):
        raise FileNotFoundError(f"no model at {p} (it needs {MODEL_INFO} and model.safetensors); pass --checkpoint, "
                                f"set KEYSYNTH_MODEL to a model folder, or train one with `keysynth train`")
    return p


def read_model_info(path: str | Path) -> dict[str, Any]:
    """The ``keysynth.json`` of a model folder (plain JSON: spec, threshold, strategy, provenance).

    Raises:
        ValueError: not valid JSON, or no ``model_spec`` object in it.
    """
    f = Path(path) / MODEL_INFO
    try:
        info = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"model info {f} cannot be read ({exc}); re-save the model folder") from None
    if not isinstance(info, dict) or not isinstance(info.get("model_spec"), dict):
        raise ValueError(f"model info {f} has no 'model_spec' object; it was not written by keysynth")
    return info


def save_model_dir(model, model_spec: dict[str, Any], out_dir: str | Path, info: dict[str, Any] | None = None) -> Path:
    """Write a model folder: ``model.safetensors`` + ``config.json`` (smp's ``save_pretrained``,
    loadable with ``smp.from_pretrained``) and ``keysynth.json`` = ``{"model_spec", **info}``.

    The folder is written beside ``out_dir`` first and renamed into place, so a reader never
    sees a half-written model; files of ``out_dir`` that are not written here (a model card) stay.
    Returns ``out_dir``.
    """
    import shutil
    import tempfile

    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{out.name}-", dir=out.parent))
    try:
        model.save_pretrained(str(tmp))
        (tmp / "README.md").unlink(missing_ok=True)  # the hub template; the model card is ours
        data = {"format": MODEL_FORMAT, "model_spec": dict(model_spec), **(info or {})}
        (tmp / MODEL_INFO).write_text(json.dumps(data, indent=2, sort_keys=False), encoding="utf-8")
        os.chmod(tmp, 0o755)  # mkdtemp's 0700 would make a shared model folder private
        for f in tmp.iterdir():
            if f.is_file():
                os.chmod(f, 0o644)
        if out.is_dir():
            for f in out.iterdir():
                if not (tmp / f.name).exists():
                    (shutil.copytree if f.is_dir() else shutil.copy2)(f, tmp / f.name)
            old = out.with_name(f".old-{out.name}-{os.getpid()}")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


_DECISION_KEYS = ("threshold", "strategy", "calibration", "source")


def write_calibration(checkpoint: str | Path | None, model, model_spec: dict[str, Any], result: dict[str, Any], *,
                      out: str | Path | None = None, calibration_set: str | None = None) -> Path:
    """Store a :func:`real_eval.calibrate.calibrate` result in a model.

    ``out`` given: a model folder there (:func:`save_model_dir`, keeping the provenance of a
    folder ``checkpoint``). Else in place: a folder's ``keysynth.json`` or a ``.pt`` checkpoint's
    ``model_spec`` (``None`` = the shipped model), each rewritten atomically. Returns the path written.
    """
    import torch

    cal = {"threshold": float(result["threshold"]), "strategy": str(result["strategy"]),
           "calibration": {"set": calibration_set, "n_images": int(result["n_images"]),
                           "mean_iou": float(result["mean_iou"]), "table": result["table"],
                           "hashes": list(result["hashes"])}}
    src = shipped_model_dir() if checkpoint is None else Path(checkpoint)
    clean = {k: v for k, v in model_spec.items() if k not in _DECISION_KEYS}
    if out is not None or is_model_dir(src):
        info = {k: v for k, v in read_model_info(src).items() if k not in ("format", "model_spec")} if is_model_dir(src) else {}
        return save_model_dir(model, clean, src if out is None else out, {**info, **cal})
    ckpt = read_checkpoint(src, "cpu")
    ckpt["model_spec"] = {**clean, **cal}
    with atomic_open(src) as fh:
        torch.save(ckpt, fh)
    return src


def load_checkpoint(path: str | Path | None = None, device: str = "cpu"):
    """Load a model and return ``(model in eval mode on device, model_spec)``.

    ``path`` is a keysynth ``.pt`` checkpoint, a model folder (:func:`save_model_dir`), or
    ``None`` for :func:`shipped_model_dir`. The spec also carries the calibrated ``threshold``,
    ``strategy`` and ``calibration`` (set size, content hashes) when the model has them, and a
    folder's spec its ``source`` and, for a model trained on real cut-outs, the content hashes of
    the photos they came from (``cutout_source_hashes``).

    Raises:
        FileNotFoundError / ValueError: see :func:`read_checkpoint` and :func:`read_model_info`.
    """
    path = shipped_model_dir() if path is None else Path(path)
    if is_model_dir(path):
        from safetensors.torch import load_file

        info = read_model_info(path)
        spec = dict(info["model_spec"])
        for key in ("threshold", "strategy", "calibration"):
            if info.get(key) is not None:
                spec[key] = info[key]
        spec["source"] = str(path)
        spec["encoder_weights"] = None
        trained_on = (info.get("training") or {}).get("cutout_source_hashes")
        if trained_on:  # photos its training cut-outs came from: never an honest evaluation set
            spec["cutout_source_hashes"] = [str(h) for h in trained_on]
        model = build_model(spec)
        try:
            model.load_state_dict(load_file(str(path / "model.safetensors"), device=str(device)))
        except Exception as exc:
            raise ValueError(f"model folder {path}: model.safetensors does not fit its keysynth.json "
                             f"({str(exc).splitlines()[0]}); re-save the folder") from None
        return model.to(device).eval(), spec
    ckpt = read_checkpoint(path, device)
    spec = dict(ckpt["model_spec"])
    spec["encoder_weights"] = None  # the state dict carries the weights; never download
    model = build_model(spec)
    model.load_state_dict(ckpt["model"])
    model.to(device).eval()
    return model, spec


def to_input_tensor(images: np.ndarray, model_spec: dict[str, Any]):
    """uint8 RGB (N, H, W, 3) or (H, W, 3) -> normalised float32 torch tensor (N, 3, H, W)."""
    import torch

    arr = np.asarray(images)
    if arr.dtype != np.uint8 or arr.shape[-1] != 3 or arr.ndim not in (3, 4):
        raise ValueError(f"expected uint8 RGB (N, H, W, 3) or (H, W, 3), got {arr.dtype} {arr.shape}")
    if arr.ndim == 3:
        arr = arr[None]
    mean = np.asarray(model_spec.get("mean", IMAGENET_MEAN), np.float32)
    std = np.asarray(model_spec.get("std", IMAGENET_STD), np.float32)
    x = (arr.astype(np.float32) / 255.0 - mean) / std
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
