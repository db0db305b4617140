"""Build segmentation models from a ``model_spec`` and load keysynth checkpoints.

This is the single place that constructs models: the trainer calls :func:`build_model`, the
evaluator and predictor call :func:`load_checkpoint`. Architectures come from
segmentation_models_pytorch (smp); pretrained weights are never downloaded unless the spec asks
for them (``encoder_weights="imagenet"``), because most machines here are offline.

``model_spec`` (a plain dict, stored in every checkpoint)::

    {"arch": "Unet", "encoder_name": "resnet18", "encoder_weights": None,
     "in_channels": 3, "classes": 1, "image_size": 256,
     "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}

The model takes float32 NCHW ``x = (rgb / 255 - mean) / std`` and returns logits (N, 1, H, W).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

ARCHITECTURES = ("Unet", "UnetPlusPlus", "FPN", "DeepLabV3Plus", "Linknet", "PSPNet", "MAnet", "PAN")

__all__ = [
    "ARCHITECTURES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "default_model_spec",
    "build_model",
    "load_checkpoint",
    "to_input_tensor",
]


def default_model_spec(
    *,
    arch: str = "Unet",
    encoder_name: str = "resnet18",
    encoder_weights: str | None = None,
    image_size: int = 256,
) -> dict[str, Any]:
    """A complete ``model_spec`` dict with ImageNet normalisation (see module docstring)."""
    return {
        "arch": arch,
        "encoder_name": encoder_name,
        "encoder_weights": encoder_weights,
        "in_channels": 3,
        "classes": 1,
        "image_size": int(image_size),
        "mean": list(IMAGENET_MEAN),
        "std": list(IMAGENET_STD),
    }


def build_model(model_spec: dict[str, Any]):
    """Build an smp model (un-trained unless ``encoder_weights`` is set) from ``model_spec``.

    Raises:
        ValueError: unknown ``arch`` (the message lists :data:`ARCHITECTURES`) or unknown encoder
            (the message lists smp's encoders).
    """
    import segmentation_models_pytorch as smp

    arch = model_spec.get("arch", "Unet")
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown arch {arch!r}; valid names: {', '.join(ARCHITECTURES)}")
    encoder = model_spec.get("encoder_name", "resnet18")
    valid = smp.encoders.get_encoder_names()
    if encoder not in valid:
        raise ValueError(f"unknown encoder_name {encoder!r}; valid names: {', '.join(sorted(valid))}")
    cls = getattr(smp, arch)
    return cls(
        encoder_name=encoder,
        encoder_weights=model_spec.get("encoder_weights"),
        in_channels=int(model_spec.get("in_channels", 3)),
        classes=int(model_spec.get("classes", 1)),
    )


def load_checkpoint(path: str | Path, device: str = "cpu"):
    """Load a keysynth checkpoint and return ``(model in eval mode on device, model_spec)``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a keysynth checkpoint (no ``model`` / ``model_spec`` entry).
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist; pass --checkpoint RUN_DIR/checkpoints/last.pt")
    try:
        ckpt = torch.load(path, map_location=device, weights_only=False)
    except Exception as exc:  # truncated / not a torch file
        raise ValueError(f"checkpoint {path} cannot be read ({exc}); was it fully written?") from exc
    if not isinstance(ckpt, dict) or "model" not in ckpt or "model_spec" not in ckpt:
        raise ValueError(f"{path} is not a keysynth checkpoint: it needs 'model' and 'model_spec' entries")
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
