"""bench/ablate.py trains one model per variant and scores each on a real set (tiny budget here)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from test_cli import _tiny_real_set

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_ablation_script_trains_and_scores_each_variant(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("ablate", ROOT / "bench" / "ablate.py")
    ablate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ablate)
    real = _tiny_real_set(tmp_path / "real")
    out = tmp_path / "ablate"
    args = ["--real", str(real), "--backgrounds", "procedural", "--out", str(out), "--steps", "2", "--batch-size", "2",
            "--size", "64", "--workers", "0", "--encoder", "resnet18", "--variants", "full", "no_camera"]
    assert ablate.main(args) == 0
    rows = json.loads((out / "ablation.json").read_text())
    assert [r["variant"] for r in rows] == ["full", "no_camera"]
    assert all(0.0 <= r["micro"]["iou"] <= 1.0 and r["steps"] == 2 for r in rows)
    saved = (out / "no_camera" / "synth.yaml").read_text()
    assert "camera: false" in saved
    table = capsys.readouterr().out
    assert "| no_camera |" in table
    # a finished variant is not re-run
    mtime = (out / "full" / "result.json").stat().st_mtime
    assert ablate.main(args) == 0
    assert (out / "full" / "result.json").stat().st_mtime == mtime
