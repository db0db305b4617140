"""predict_resize, evaluate_model and the eval / predict commands on a tiny real checkpoint."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from real_eval import commands
from real_eval.dataset import RealSample, load_real_set
from real_eval.evaluate import evaluate_model
from real_eval.metrics import image_metrics
from real_eval.model_io import build_model, default_model_spec
from real_eval.predict import predict_resize, predict_resize_batch

torch.set_num_threads(1)


def tiny_checkpoint(path: Path) -> tuple[torch.nn.Module, dict]:
    """A checkpoint following docs/DESIGN.md's contract (un-trained resnet18 Unet, 64 px)."""
    torch.manual_seed(0)
    spec = default_model_spec(encoder_name="resnet18", image_size=64)
    model = build_model(spec).eval()
    torch.save({"model": model.state_dict(), "optimizer": {}, "scheduler": {}, "step": 0, "config": {},
                "model_spec": spec}, path)
    return model, spec


def tiny_samples(n: int = 3) -> list[RealSample]:
    rng = np.random.default_rng(0)
    out = []
    for i, (h, w) in enumerate([(40, 56), (48, 48), (30, 70)][:n]):
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        m = np.zeros((h, w), np.uint8)
        m[h // 4: h // 2, w // 4: w // 2] = 1
        if i == 1:
            m[0:3, :] = 255
        out.append(RealSample(f"s{i}", img, m))
    return out


class ConstantLogit(torch.nn.Module):
    """Logit = (red channel value) so probabilities follow the input image (hand-checkable)."""

    def forward(self, x):
        return x[:, :1] * 4.0


def test_predict_resize_shapes_and_pad_geometry():
    spec = default_model_spec(image_size=32)
    spec["mean"], spec["std"] = [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]
    img = np.zeros((20, 40, 3), np.uint8)
    img[:, 20:] = 255  # right half white
    prob = predict_resize(ConstantLogit().eval(), spec, img)
    assert prob.shape == (20, 40) and prob.dtype == np.float32
    assert 0.0 <= prob.min() and prob.max() <= 1.0
    # x = (rgb/255 - .5)/.5: white -> logit 4 -> 0.982; black -> logit -4 -> 0.018. The zero pad is
    # at the bottom only (40x40 square, content rows 0-19), so the top-left corner stays black and
    # only the last rows blend with the pad after linear upsampling.
    assert prob[:18, 30:].min() > 0.97 and prob[:, :10].max() < 0.03
    assert prob[0, 39] > 0.97 and 0.5 < prob[-1, 35] < prob[0, 35]
    batch = predict_resize_batch(ConstantLogit().eval(), spec, [img, img[:10, :7]], batch_size=2)
    assert np.allclose(batch[0], prob) and batch[1].shape == (10, 7)
    with pytest.raises(ValueError, match="uint8"):
        predict_resize(ConstantLogit(), spec, img.astype(np.float32))


def test_evaluate_model_on_tiny_checkpoint(tmp_path):
    model, spec = tiny_checkpoint(tmp_path / "c.pt")
    model.train()
    samples = tiny_samples()
    res = evaluate_model(model, spec, samples, threshold=0.5, n_boot=50, seed=1)
    assert model.training  # mode restored for the trainer
    assert len(res["per_image"]) == 3 and res["overall"]["n_images"] == 3
    for key in ("iou", "dice", "precision", "recall", "boundary_f1", "boundary_iou"):
        assert 0.0 <= res["overall"]["micro"][key] <= 1.0
        lo, hi = res["overall"]["mean_ci"][key]
        assert lo <= res["overall"]["mean"][key] + 1e-12 and res["overall"]["mean"][key] <= hi + 1e-12
    # per-image values agree with metrics on the same prediction
    prob = predict_resize(model.eval(), spec, samples[1].image)
    direct = image_metrics(prob >= 0.5, samples[1].mask)
    assert res["per_image"][1]["iou"] == pytest.approx(direct["iou"])
    assert res["per_image"][1]["n_ignore"] == 3 * 48
    json.dumps(res)  # JSON-serialisable


def test_threshold_sweep_matches_direct_thresholding(monkeypatch):
    samples = tiny_samples(2)
    rng = np.random.default_rng(3)
    probs = {s.name: rng.random(s.mask.shape).astype(np.float32) for s in samples}
    monkeypatch.setattr("real_eval.evaluate.predict_probs", lambda m, spec, image, **kw: probs[
        next(s.name for s in samples if s.image is image)])
    res = evaluate_model(torch.nn.Identity(), {"image_size": 64}, samples, n_boot=10)
    sw = res["sweep"]
    assert sw["thresholds"][0] == pytest.approx(0.05) and sw["thresholds"][-1] == pytest.approx(0.95)
    for t_idx in (0, 9, 18):
        t = sw["thresholds"][t_idx]
        tp = fp = fn = 0
        for s in samples:
            c = image_metrics(probs[s.name] >= t, s.mask)
            tp, fp, fn = tp + c["tp"], fp + c["fp"], fn + c["fn"]
        assert sw["micro_iou"][t_idx] == pytest.approx(tp / (tp + fp + fn))
    assert res["per_image"][0]["iou"] == pytest.approx(image_metrics(probs["s0"] >= 0.5, samples[0].mask)["iou"])


def _run(argv):
    parser = argparse.ArgumentParser(prog="keysynth")
    commands.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def _write_mask_set(root: Path, samples) -> None:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for s in samples:
        cv2.imwrite(str(root / "images" / f"{s.name}.png"), cv2.cvtColor(s.image, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(root / "masks" / f"{s.name}.png"), s.mask)


def test_eval_command_writes_outputs(tmp_path):
    tiny_checkpoint(tmp_path / "c.pt")
    _write_mask_set(tmp_path / "real", tiny_samples())
    rc = _run(["eval", "--checkpoint", str(tmp_path / "c.pt"), "--real", str(tmp_path / "real"), "--out",
               str(tmp_path / "ev"), "--device", "cpu", "--n-boot", "20", "--quiet"])
    assert rc == 0
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["overall"]["n_images"] == 3
    rows = list(csv.DictReader((tmp_path / "ev" / "per_image.csv").open()))
    assert [r["name"] for r in rows] == ["s0", "s1", "s2"]
    ov = cv2.imread(str(tmp_path / "ev" / "overlays" / "s2.png"))
    assert ov.shape == (30, 70, 3)
    assert (tmp_path / "ev" / "report.html").stat().st_size > 1000
    with pytest.raises(ValueError, match="valid names"):
        _run(["eval", "--checkpoint", str(tmp_path / "c.pt"), "--real", str(tmp_path / "real"), "--out",
              str(tmp_path / "ev2"), "--strategy", "magic"])


def test_predict_command_masks_and_cutouts(tmp_path):
    tiny_checkpoint(tmp_path / "c.pt")
    photos = tmp_path / "photos"
    photos.mkdir()
    for s in tiny_samples():
        cv2.imwrite(str(photos / f"{s.name}.jpg"), cv2.cvtColor(s.image, cv2.COLOR_RGB2BGR))
    rc = _run(["predict", str(photos), "--checkpoint", str(tmp_path / "c.pt"), "--out", str(tmp_path / "p"),
               "--device", "cpu", "--quiet", "--threshold", "0.5"])
    assert rc == 0
    m = cv2.imread(str(tmp_path / "p" / "masks" / "s2.png"), cv2.IMREAD_UNCHANGED)
    cut = cv2.imread(str(tmp_path / "p" / "cutouts" / "s2.png"), cv2.IMREAD_UNCHANGED)
    assert m.shape == (30, 70) and set(np.unique(m).tolist()) <= {0, 255}
    assert cut.shape == (30, 70, 4) and np.array_equal(cut[:, :, 3], m)


def test_real_dev_set_evaluates_if_present(tmp_path):
    root = Path(__file__).resolve().parents[2] / "shared" / "data" / "real_keys_dev"
    if not root.is_dir():
        pytest.skip("shared dev set not present")
    samples = load_real_set(root)
    assert len(samples) == 8 and all(set(np.unique(s.mask).tolist()) <= {0, 1} for s in samples)
    model, spec = tiny_checkpoint(tmp_path / "c.pt")
    res = evaluate_model(model, spec, samples[-2:], n_boot=20)
    assert res["overall"]["n_images"] == 2
    assert all(0 < r["key_share"] < 0.1 for r in res["per_image"])
