"""``keysynth export``: a keysynth checkpoint -> ONNX, checked against onnxruntime.

The graph takes ``image`` float32 (N, 3, H, W), normalised like the checkpoint's model_spec
(``(rgb / 255 - mean) / std``), and returns ``logits`` float32 (N, 1, H, W) (apply a sigmoid for
probabilities). Batch, height and width are dynamic axes; smp encoder-decoders need H and W
divisible by the encoder's output stride (32 for Unet/resnet), which the predictors ensure by
resizing to ``image_size``. The model_spec is stored in the ONNX metadata (``keysynth_model_spec``,
JSON). Exported with the TorchScript-based exporter (``dynamo=False``: it needs no onnxscript).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["export_onnx", "check_onnx_parity"]


def export_onnx(model, model_spec: dict[str, Any], out: str | os.PathLike, *, opset: int = 17, dynamic: bool = True) -> Path:
    """Export ``model`` (eval mode is set) to ``out`` atomically; returns the path.

    Raises:
        ValueError: the exporter fails (message carries the exporter's reason).
    """
    import onnx
    import torch

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    size = int(model_spec.get("image_size", 256))
    model = model.eval().to("cpu")
    dummy = torch.zeros(1, int(model_spec.get("in_channels", 3)), size, size)
    axes = {"image": {0: "batch", 2: "height", 3: "width"}, "logits": {0: "batch", 2: "height", 3: "width"}} if dynamic else None
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, dummy, str(tmp), input_names=["image"], output_names=["logits"],
                              dynamic_axes=axes, opset_version=opset, dynamo=False)
        proto = onnx.load(str(tmp))
        meta = proto.metadata_props.add()
        meta.key, meta.value = "keysynth_model_spec", json.dumps(model_spec)
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise ValueError(f"ONNX export of {model_spec.get('arch')}/{model_spec.get('encoder_name')} failed: {exc}") from exc
    os.replace(tmp, out)
    return out


def check_onnx_parity(model, onnx_path: str | os.PathLike, shapes=((1, 3, 64, 64),), *, seed: int = 0) -> float:
    """Max |logits_torch - logits_onnxruntime| over random inputs of the given NCHW shapes."""
    import onnxruntime as ort
    import torch

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    worst = 0.0
    model = model.eval().to("cpu")
    for shape in shapes:
        x = rng.standard_normal(shape).astype(np.float32)
        with torch.inference_mode():
            ref = model(torch.from_numpy(x)).numpy()
        got = sess.run(["logits"], {"image": x})[0]
        if got.shape != ref.shape:
            raise ValueError(f"ONNX output {got.shape} differs from torch {ref.shape} for input {shape}")
        worst = max(worst, float(np.abs(got - ref).max()))
    return worst
