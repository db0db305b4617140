"""Training loop (train/trainer.py), config and CLI (train/config.py, train/commands.py)."""

import argparse
import csv

import numpy as np
import pytest
import torch

from train.config import TrainConfig
from train.toy import ToyDiscRenderer
from train.trainer import train

torch.set_num_threads(1)


def _cfg(tmp_path, **kw):
    base = dict(out=str(tmp_path / "run"), image_size=64, encoder_name="mobilenet_v2", batch_size=4, steps=30, lr=3e-3,
                warmup=3, num_workers=0, eval_every=0, val_size=4, log_every=1, checkpoint_every=0, progress=False)
    base.update(kw)
    return TrainConfig(**base)


def test_tiny_training_run_loss_falls_and_writes_outputs(tmp_path):
    cfg = _cfg(tmp_path, steps=30, checkpoint_every=10, keep_last_n=1, image_size=32)
    s = train(cfg, producer=ToyDiscRenderer(32))
    losses = [r["loss"] for r in s["history"]]
    assert len(losses) == 30
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5, losses
    assert s["metrics"]["val_iou"] > 0.3
    ck = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in ck.glob("ckpt-*.pt")) == ["ckpt-0000030.pt"]  # rotation
    assert (ck / "last.pt").is_file() and (ck / "best.pt").is_file()
    assert (tmp_path / "run" / "config.yaml").is_file()
    state = torch.load(ck / "last.pt", weights_only=True)
    assert state["step"] == 30 and state["config"]["encoder_name"] == "mobilenet_v2"
    assert state["model_spec"]["image_size"] == 32 and state["model_spec"]["arch"] == "Unet"
    assert {"model", "optimizer", "scheduler", "rng", "stream"} <= set(state)
    from real_eval.model_io import load_checkpoint

    model, spec = load_checkpoint(ck / "last.pt")
    assert spec["encoder_name"] == "mobilenet_v2"
    with open(tmp_path / "run" / "log.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 30


def test_resume_gives_same_next_batch_and_loss(tmp_path):
    steps, r = 6, ToyDiscRenderer(32)
    full = train(_cfg(tmp_path / "a", steps=steps, image_size=32), producer=r)
    part = train(_cfg(tmp_path / "b", steps=steps, image_size=32), producer=r, should_stop=lambda step: step >= 3)
    assert part["stopped_early"] and part["step"] == 3
    rest = train(_cfg(tmp_path / "b", steps=steps, image_size=32, resume="auto"), producer=r)
    a = {r["step"]: r for r in full["history"]}
    b = {r["step"]: r for r in part["history"] + rest["history"]}
    assert sorted(b) == list(range(1, steps + 1))
    for st in range(1, steps + 1):
        assert a[st]["batch_id"] == b[st]["batch_id"], f"step {st}: different batch"
        assert a[st]["loss"] == pytest.approx(b[st]["loss"], rel=1e-5, abs=1e-6), f"step {st}"
    with open(tmp_path / "b" / "run" / "log.csv") as fh:
        assert [int(r["step"]) for r in csv.DictReader(fh)] == list(range(1, steps + 1))


def test_async_stream_training_runs(tmp_path):
    cfg = _cfg(tmp_path, steps=4, num_workers=1, buffer_size=8, max_reuse=2, log_every=2, image_size=32,
               boundary_loss="edge_bce")
    s = train(cfg, producer=ToyDiscRenderer(32))
    assert s["step"] == 4 and s["stream"]["consumed"] == 16
    assert all(r["loss"] == r["loss"] for r in s["history"])


def test_config_yaml_and_cli_overrides(tmp_path):
    from train.commands import config_from_args, register

    cfg = TrainConfig(lr=2e-3, batch_size=3, real_dir=None)
    path = cfg.to_yaml(tmp_path / "c.yaml")
    assert TrainConfig.from_yaml(path) == cfg
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["train", "--config", str(path), "--lr", "1e-4", "--no-channels-last",
                              "--encoder-weights", "none", "--out", str(tmp_path / "o")])
    got = config_from_args(args)
    assert got.lr == 1e-4 and got.batch_size == 3 and got.channels_last is False and got.encoder_weights is None
    assert got.out == str(tmp_path / "o")
    with pytest.raises(ValueError, match="valid fields"):
        TrainConfig.from_dict({"lrr": 1})
    with pytest.raises(ValueError, match="valid names"):
        TrainConfig(boundary_loss="hausdorff").validate()
    with pytest.raises(ValueError, match="image_size"):
        TrainConfig(image_size=100).validate()


def test_live_synth_stream_run_stores_the_resolved_synth_config(tmp_path):
    """Two steps on the real generator; the resolved SynthConfig lands next to the run and in the
    checkpoint, so every output records what produced its training data."""
    from synth import SynthConfig

    scfg = tmp_path / "synth.yaml"
    SynthConfig.default().replace(empty_prob=0.5, shading=False).to_yaml(scfg)
    s = train(_cfg(tmp_path, steps=2, batch_size=2, synth_config=str(scfg), backgrounds="procedural"))
    saved = SynthConfig.from_yaml(tmp_path / "run" / "synth_config.yaml")
    assert saved.size == 64 and saved.empty_prob == 0.5 and saved.shading is False
    state = torch.load(s["last"], weights_only=True)
    assert state["synth_config"]["empty_prob"] == 0.5 and state["synth_config"]["size"] == 64


def test_a_fresh_run_refuses_an_existing_run_folder_unless_overwrite(tmp_path):
    train(_cfg(tmp_path, steps=2, image_size=32), producer=ToyDiscRenderer(32))
    ck = tmp_path / "run" / "checkpoints"
    (ck / ".tmp-last.pt-999").write_bytes(b"partial")  # what a killed save leaves
    with pytest.raises(FileExistsError, match="--resume.*--overwrite"):
        train(_cfg(tmp_path, steps=2, image_size=32), producer=ToyDiscRenderer(32))
    assert (ck / "last.pt").is_file()
    s = train(_cfg(tmp_path, steps=3, image_size=32, overwrite=True), producer=ToyDiscRenderer(32))
    assert s["step"] == 3 and not list(ck.glob(".tmp-*"))
    assert torch.load(ck / "last.pt", weights_only=True)["step"] == 3


def test_sigterm_during_training_leaves_a_resumable_checkpoint(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    code = ("import sys; from train.config import TrainConfig; from train.toy import ToyDiscRenderer; "
            "from train.trainer import train; "
            f"train(TrainConfig(out={str(out)!r}, image_size=32, batch_size=2, steps=100000, num_workers=0, "
            "eval_every=0, val_size=2, log_every=1, checkpoint_every=0, progress=False, threads=1), "
            "producer=ToyDiscRenderer(32))")
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    log = out / "log.csv"
    deadline = time.time() + 120
    while time.time() < deadline and not (log.is_file() and len(log.read_text().splitlines()) > 5):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode != 0, err
    state = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert state["step"] >= 5
    s = train(TrainConfig(out=str(out), image_size=32, batch_size=2, steps=state["step"] + 2, num_workers=0,
                          eval_every=0, val_size=2, log_every=1, checkpoint_every=0, progress=False, resume="auto"),
              producer=ToyDiscRenderer(32))
    assert s["step"] == state["step"] + 2


def _tiny_real_set(root, shade):
    import cv2
    import numpy as np

    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    img = np.full((40, 50, 3), shade, np.uint8)
    m = np.zeros((40, 50), np.uint8)
    m[10:30, 20:26] = 255
    cv2.imwrite(str(root / "images" / "a.png"), img)
    cv2.imwrite(str(root / "masks" / "a.png"), m)


def test_real_train_crops_join_batches_and_the_eval_set_must_differ(tmp_path):
    from real_eval.calibrate import OverlapError

    _tiny_real_set(tmp_path / "rt", 80)
    _tiny_real_set(tmp_path / "ev", 160)
    s = train(_cfg(tmp_path, steps=3, image_size=32, real_train=str(tmp_path / "rt"), real_fraction=0.5,
                   real_dir=str(tmp_path / "ev")), producer=ToyDiscRenderer(32))
    assert s["step"] == 3
    with pytest.raises(OverlapError, match="--real-train"):
        train(_cfg(tmp_path / "b", steps=2, image_size=32, real_train=str(tmp_path / "rt"),
                   real_dir=str(tmp_path / "rt")), producer=ToyDiscRenderer(32))


def test_init_from_a_model_folder_starts_from_its_weights(tmp_path):
    from real_eval.model_io import build_model, default_model_spec, save_model_dir

    spec = default_model_spec(image_size=32, encoder_name="mobilenet_v2")
    torch.manual_seed(5)
    src = build_model(spec)
    folder = save_model_dir(src, spec, tmp_path / "m")
    s = train(_cfg(tmp_path, steps=1, image_size=32, lr=1e-12, warmup=1, init=str(folder)), producer=ToyDiscRenderer(32))
    state = torch.load(s["last"], weights_only=True)["model"]
    w = "encoder.features.0.0.weight"
    assert torch.allclose(state[w], src.state_dict()[w], atol=1e-6)
    with pytest.raises(ValueError, match="do not fit"):
        train(_cfg(tmp_path / "b", steps=1, image_size=32, decoder_width=16, init=str(folder)),
              producer=ToyDiscRenderer(32))


def test_synthetic_validation_picks_the_threshold_an_underconfident_model_needs():
    """A model right about where keys are but under-confident (key 0.32, background 0.08) finds no
    key at 0.5; the threshold read off the synthetic validation samples recovers them, and the
    checkpointed model spec carries it, saying where it came from."""
    import argparse

    from real_eval.commands import _decision
    from real_eval.model_io import default_model_spec
    from train.checkpointing import with_synthetic_threshold
    from train.evaluation import SimpleSample, evaluate_synthetic

    conv = torch.nn.Conv2d(3, 1, 1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 0, 0] = 0.3865  # logit = w * normalised red + b: red 255 -> 0.32, red 0 -> 0.08
        conv.bias.fill_(-1.623)
    spec = default_model_spec(image_size=32)
    samples = []
    for i in range(4):
        mask = np.zeros((32, 32), np.uint8)
        mask[4 + i:20 + i, 6:14 + 2 * i] = 1
        image = np.zeros((32, 32, 3), np.uint8)
        image[..., 0] = mask * 255
        samples.append(SimpleSample(f"s{i}", image, mask))
    res = evaluate_synthetic(conv, spec, samples, "cpu")
    assert res["iou"] == 0.0
    assert res["threshold"] == pytest.approx(0.30) and res["iou_at_threshold"] == pytest.approx(1.0)
    metrics = {f"val_{k}": v for k, v in res.items()}
    cal = with_synthetic_threshold(spec, metrics)
    assert cal["threshold"] == pytest.approx(0.30) and cal["calibration"]["set"] == "synthetic validation"
    assert "threshold" not in spec and with_synthetic_threshold(spec, {}) is spec
    args = argparse.Namespace(strategy=None, threshold=None)
    said = _decision(args, cal)
    assert args.threshold == pytest.approx(0.30) and "synthetic validation samples" in said
