"""The ``keysynth`` console script: every sub-command has --help, and the demo runs end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from keysynth.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
SUBCOMMANDS = ("synth", "preview", "train", "eval", "convert", "predict", "export", "demo")


def test_every_subcommand_is_registered():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(SUBCOMMANDS) <= set(sub.choices)


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_help_of_each_subcommand(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert "usage: keysynth " + command in capsys.readouterr().out


def test_every_flag_of_every_subcommand_has_help_in_the_fields_terms():
    import argparse

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, sp in sub.choices.items():
        for action in sp._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            text = (action.help or "").strip()
            flag = action.option_strings[0] if action.option_strings else action.dest
            assert text, f"keysynth {name} {flag} has no help text"
            assert "module doc" not in text and "ARCHITECTURES" not in text, f"keysynth {name} {flag}: {text}"


def test_console_script_module_entry_point():
    out = subprocess.run([sys.executable, "-m", "keysynth", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0 and "demo" in out.stdout


def test_bad_input_is_a_clear_error_not_a_traceback(tmp_path, capsys):
    code = main(["demo", "--out", str(tmp_path / "d"), "--backgrounds", str(tmp_path / "missing")])
    err = capsys.readouterr().err
    assert code == 2
    assert str(tmp_path / "missing") in err and "Traceback" not in err


def _tiny_real_set(root: Path) -> Path:
    """Two 'photos' with a bright key-like bar, written as images/ + masks/ (0/255)."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(2):
        img = rng.integers(40, 90, (120, 160, 3), dtype=np.uint8)
        mask = np.zeros((120, 160), np.uint8)
        cv2.rectangle(mask, (30 + 10 * i, 50), (120, 62), 255, -1)
        img[mask > 0] = 200
        cv2.imwrite(str(root / "images" / f"p{i}.jpg"), img)
        cv2.imwrite(str(root / "masks" / f"p{i}.png"), mask)
    return root


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path):
    real = _tiny_real_set(tmp_path / "real")
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--real", str(real), "--steps", "4", "--size", "64", "--heldout", "4",
            "--workers", "1", "--batch-size", "2", "--encoder", "resnet18", "--device", "cpu"]
    assert main(args) == 0
    for name in ("report.md", "preview.png", "predictions.png", "timings.json"):
        assert (out / name).is_file(), name
    report = (out / "report.md").read_text()
    assert "Real photos" in report and "p0" in report and "iou" in report
    metrics = json.loads((out / "eval_real" / "metrics.json").read_text())
    assert 0.0 <= metrics["overall"]["micro"]["iou"] <= 1.0
    assert cv2.imread(str(out / "predictions.png")) is not None
    assert len(list((out / "synth_test" / "images").glob("*.jpg"))) == 4


def test_demo_fits_steps_to_the_time_budget():
    import torch

    from keysynth.demo import steps_for_budget

    torch.set_num_threads(1)
    kw = dict(encoder="resnet18", size=32, batch_size=2, device="cpu")
    short, longer = steps_for_budget(minutes=0.05, **kw), steps_for_budget(minutes=5.0, **kw)
    assert isinstance(short, int) and short >= 10  # never fewer than 10 steps
    assert longer > 20 * short  # ~100x the budget -> many times the steps (timing noise allowed)
