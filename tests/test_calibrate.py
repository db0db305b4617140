"""Calibration of threshold + strategy, model folders (safetensors + JSON), the shipped-model default,
and the refusal of pickled code in checkpoints."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from real_eval import commands
from real_eval.calibrate import OverlapError, calibrate, check_disjoint, content_hash
from real_eval.dataset import RealSample
from real_eval.model_io import (build_model, default_model_spec, is_model_dir, load_checkpoint, read_checkpoint,
                                save_model_dir, shipped_model_dir)

torch.set_num_threads(1)


class RedIsProbability(torch.nn.Module):
    """Key probability = the red channel / 255 of the input (so the best threshold is hand-computable)."""

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        p = (x[:, :1] * 0.5 + 0.5).clamp(1e-4, 1 - 1e-4)  # mean = std = 0.5 undoes the normalisation
        return torch.log(p / (1 - p)) + self.dummy * 0


def red_samples() -> list[RealSample]:
    """Key pixels red 200 (p 0.78); background 40 (p 0.16) with a band at 150 (p 0.59), a near-miss
    that only thresholds above 0.59 reject: IoU is 1 for thresholds in (0.59, 0.78], lower elsewhere."""
    out = []
    for i in range(3):
        img = np.full((64, 64, 3), 40, np.uint8)
        m = np.zeros((64, 64), np.uint8)
        m[10 + i:30 + i, 20:40] = 1
        img[m == 1, 0] = 200
        img[40:50, 5:60, 0] = 150
        out.append(RealSample(f"r{i}", img, m))
    return out


def spec64() -> dict:
    spec = default_model_spec(image_size=64)
    spec["mean"], spec["std"] = [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]
    return spec


def test_calibration_picks_the_iou_maximising_threshold():
    res = calibrate(RedIsProbability().eval(), spec64(), red_samples(), strategies=["resize"])
    assert res["strategy"] == "resize"
    assert 0.59 < res["threshold"] <= 0.78  # the only range where the band is rejected and the key kept
    assert res["threshold"] == pytest.approx(0.6)  # the tie nearest 0.5 on the 0.05 grid
    assert res["mean_iou"] == pytest.approx(1.0)
    assert len(res["hashes"]) == 3 and res["n_images"] == 3


def test_calibration_refuses_an_empty_set_and_unknown_strategies():
    with pytest.raises(ValueError, match="no photos"):
        calibrate(RedIsProbability(), spec64(), [])
    with pytest.raises(ValueError, match="coarse-to-fine"):
        calibrate(RedIsProbability(), spec64(), red_samples(), strategies=["nope"])


def test_overlap_check_names_the_shared_photo():
    s = red_samples()
    with pytest.raises(OverlapError, match="r1"):
        check_disjoint(s[1:2], {content_hash(s[1].image): "cal_1"}, "the calibration set")
    assert check_disjoint(s[1:2], [content_hash(s[1].image)], "x", allow=True) == ["r1"]
    assert check_disjoint(s[:1], [content_hash(s[1].image)], "x") == []


def _model_dir(tmp_path: Path, **info) -> tuple[Path, torch.nn.Module, dict]:
    torch.manual_seed(0)
    spec = default_model_spec(image_size=64, decoder_width=32)
    model = build_model(spec).eval()
    d = save_model_dir(model, spec, tmp_path / "m", info)
    return d, model, spec


def test_model_folder_round_trip_keeps_weights_and_calibration(tmp_path):
    d, model, spec = _model_dir(tmp_path, threshold=0.35, strategy="resize")
    assert is_model_dir(d) and (d / "model.safetensors").is_file() and (d / "config.json").is_file()
    (d / "README.md").write_text("card")
    loaded, lspec = load_checkpoint(d)
    assert lspec["threshold"] == 0.35 and lspec["strategy"] == "resize" and lspec["decoder_width"] == 32
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(x), loaded(x), atol=1e-6)
    save_model_dir(loaded, lspec, d, {"threshold": 0.4})  # re-save keeps the model card
    assert (d / "README.md").read_text() == "card"
    assert not [p for p in d.parent.iterdir() if p.name.startswith((".tmp-", ".old-"))]


def test_predict_uses_the_models_threshold_and_says_so(tmp_path, capsys):
    d, model, spec = _model_dir(tmp_path, threshold=0.0, strategy="resize")  # threshold 0: every pixel is key
    photo = tmp_path / "p.png"
    cv2.imwrite(str(photo), np.full((50, 70, 3), 90, np.uint8))
    args = argparse.Namespace(photos=[str(photo)], checkpoint=str(d), out=str(tmp_path / "pred"), strategy=None,
                              threshold=None, device="cpu", quiet=True)
    assert commands.cmd_predict(args) == 0
    said = capsys.readouterr().out
    assert "threshold 0.0 (calibrated for this model)" in said and "strategy resize (calibrated" in said
    mask = cv2.imread(str(tmp_path / "pred" / "masks" / "p.png"), cv2.IMREAD_GRAYSCALE)
    assert mask.shape == (50, 70) and (mask == 255).all()
    args.threshold, args.out = 1.0, str(tmp_path / "pred2")  # a given threshold wins
    commands.cmd_predict(args)
    assert "threshold 1.0 (given)" in capsys.readouterr().out


def test_calibrate_command_writes_the_model_and_eval_refuses_the_calibration_photos(tmp_path, capsys):
    real = tmp_path / "real"
    for s in red_samples():
        (real / "images").mkdir(parents=True, exist_ok=True)
        (real / "masks").mkdir(exist_ok=True)
        cv2.imwrite(str(real / "images" / f"{s.name}.png"), s.image[:, :, ::-1])
        cv2.imwrite(str(real / "masks" / f"{s.name}.png"), s.mask * 255)
    d, _, _ = _model_dir(tmp_path)
    args = argparse.Namespace(checkpoint=str(d), real=str(real), out=None, strategies="resize", format=None,
                              classes=None, device="cpu", quiet=True)
    assert commands.cmd_calibrate(args) == 0
    info = json.loads((d / "keysynth.json").read_text())
    assert info["strategy"] == "resize" and 0 <= info["threshold"] <= 1 and len(info["calibration"]["hashes"]) == 3
    ev = argparse.Namespace(checkpoint=str(d), real=str(real), out=str(tmp_path / "ev"), strategy=None, threshold=None,
                            allow_overlap=False, format=None, classes=None, boundary_tol_px=None,
                            boundary_tol_frac=0.008, n_boot=10, seed=0, device="cpu", quiet=True)
    with pytest.raises(OverlapError, match="calibration set"):
        commands.cmd_eval(ev)
    ev.allow_overlap = True
    assert commands.cmd_eval(ev) == 0
    assert (tmp_path / "ev" / "metrics.json").is_file()


def test_eval_refuses_the_photos_a_model_was_trained_on_as_cut_outs(tmp_path):
    real = tmp_path / "real"
    (real / "images").mkdir(parents=True)
    (real / "masks").mkdir()
    samples = red_samples()
    for s in samples:
        cv2.imwrite(str(real / "images" / f"{s.name}.png"), s.image[:, :, ::-1])
        cv2.imwrite(str(real / "masks" / f"{s.name}.png"), s.mask * 255)
    d, _, _ = _model_dir(tmp_path, training={"cutout_source_hashes": [content_hash(samples[2].image)]})
    assert load_checkpoint(d)[1]["cutout_source_hashes"] == [content_hash(samples[2].image)]
    ev = argparse.Namespace(checkpoint=str(d), real=str(real), out=str(tmp_path / "ev"), strategy=None, threshold=None,
                            allow_overlap=False, format=None, classes=None, boundary_tol_px=None,
                            boundary_tol_frac=0.008, n_boot=10, seed=0, device="cpu", quiet=True)
    with pytest.raises(OverlapError, match=r"cut-outs were made from: r2;"):
        commands.cmd_eval(ev)


def test_shipped_model_default_and_its_message(tmp_path, monkeypatch):
    monkeypatch.setenv("KEYSYNTH_MODEL", str(tmp_path / "none"))
    with pytest.raises(FileNotFoundError, match="--checkpoint"):
        load_checkpoint(None)
    d, _, _ = _model_dir(tmp_path)
    monkeypatch.setenv("KEYSYNTH_MODEL", str(d))
    assert shipped_model_dir() == d
    _, spec = load_checkpoint(None)
    assert spec["source"] == str(d)


def test_a_pickled_code_payload_in_a_checkpoint_is_refused_not_run(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    spec = default_model_spec(image_size=64)
    path = tmp_path / "evil.pt"
    torch.save({"model": build_model(spec).state_dict(), "model_spec": spec, "x": Payload()}, path)
    with pytest.raises(ValueError, match="cannot be read safely"):
        read_checkpoint(path)
    r = subprocess.run([sys.executable, "-m", "keysynth", "predict", str(path), "--checkpoint", str(path),
                        "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "cannot be read safely" in r.stderr and "Traceback" not in r.stderr
    assert not marker.exists()


def test_a_run_folder_passed_as_checkpoint_names_the_file_to_pass(tmp_path):
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (tmp_path / "run" / "checkpoints" / "last.pt").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="is a folder.*last.pt"):
        load_checkpoint(tmp_path / "run")


def test_the_shipped_model_loads_offline_and_finds_a_synthetic_key(monkeypatch):
    from backgrounds import make_backgrounds
    from real_eval.metrics import image_metrics
    from real_eval.model_io import SHIPPED_MODEL
    from real_eval.strategies import predict_probs
    from synth import SampleRenderer, SynthConfig

    if not is_model_dir(SHIPPED_MODEL):
        pytest.skip(f"no shipped model at {SHIPPED_MODEL}")
    monkeypatch.delenv("KEYSYNTH_MODEL", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # loading must never need the network
    model, spec = load_checkpoint(None)
    assert spec["source"] == str(SHIPPED_MODEL) and 0 < spec["threshold"] < 1
    cfg = SynthConfig.default().replace(size=256, crop_like_prob=1.0, empty_prob=0.0, occluders=False, camera=False)
    r = SampleRenderer(cfg, backgrounds=make_backgrounds("procedural"))
    ious = []
    for i in range(4):
        s = r.render(i, 1)
        pred = predict_probs(model, spec, s["image"], strategy=spec["strategy"]) >= spec["threshold"]
        assert pred.any()
        ious.append(image_metrics(pred, s["mask"])["iou"])
    assert np.mean(ious) > 0.3, ious
