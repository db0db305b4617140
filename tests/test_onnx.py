"""ONNX export with dynamic batch/H/W, checked against onnxruntime."""

from __future__ import annotations

import argparse
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from real_eval import commands
from real_eval.export import check_onnx_parity, export_onnx

try:
    from test_real_eval import tiny_checkpoint  # pytest puts tests/ on sys.path (prepend mode)
except ImportError:  # pragma: no cover
    from tests.test_real_eval import tiny_checkpoint

torch.set_num_threads(1)


def test_export_parity_and_dynamic_axes(tmp_path):
    model, spec = tiny_checkpoint(tmp_path / "c.pt")
    path = export_onnx(model, spec, tmp_path / "m.onnx")
    proto = onnx.load(str(path))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["keysynth_model_spec"])["image_size"] == 64
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]
    # batch 2 and a non-square size other than the export size: dynamic axes work
    diff = check_onnx_parity(model, path, shapes=((1, 3, 64, 64), (2, 3, 96, 128)))
    assert diff < 1e-3
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = sess.run(["logits"], {"image": np.zeros((3, 3, 32, 64), np.float32)})[0]
    assert out.shape == (3, 1, 32, 64)
    assert not list(tmp_path.glob(".*tmp*"))


def test_export_command(tmp_path, capsys):
    tiny_checkpoint(tmp_path / "c.pt")
    parser = argparse.ArgumentParser(prog="keysynth")
    commands.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["export", "--checkpoint", str(tmp_path / "c.pt"), "--out", str(tmp_path / "model.onnx")])
    assert args.func(args) == 0
    assert (tmp_path / "model.onnx").stat().st_size > 1_000_000
    assert "parity" in capsys.readouterr().out
    args = parser.parse_args(["export", "--checkpoint", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "x.onnx")])
    with pytest.raises(FileNotFoundError):
        args.func(args)
