"""The HTML report is self-contained and renders in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from real_eval.evaluate import evaluate_model
from real_eval.model_io import build_model, default_model_spec

try:
    from test_real_eval import tiny_samples  # pytest puts tests/ on sys.path (prepend mode)
except ImportError:  # pragma: no cover
    from tests.test_real_eval import tiny_samples

torch.set_num_threads(1)


def _chromium() -> str | None:
    for name in ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name) if not name.startswith("/") else (name if Path(name).exists() else None)
        if path:
            return path
    return None


def _browser_args(chromium: str, profile: Path) -> list[str]:
    return [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", f"--user-data-dir={profile}"]


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("eval")
    spec = default_model_spec(encoder_name="resnet18", image_size=64)
    torch.manual_seed(0)
    evaluate_model(build_model(spec), spec, tiny_samples(), out_dir=out, n_boot=20)
    return out / "report.html"


def test_report_is_self_contained(report):
    text = report.read_text(encoding="utf-8")
    for section in ("id='summary'", "id=\"sweep\"", "id='by-size'", "id='worst'", "id='per-image'"):
        assert section in text, section
    srcs = re.findall(r"""(?:src|href)=["']([^"']+)""", text)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert text.count("<img") >= 4  # sweep plot + 3 overlays


def test_report_renders_in_headless_chromium(report, tmp_path):
    chromium = _chromium()
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    url = report.resolve().as_uri()
    dom = subprocess.run(_browser_args(chromium, tmp_path / "p1") + ["--dump-dom", url], capture_output=True,
                         text=True, timeout=180)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'id="summary"' in dom.stdout and "Boundary IoU" in dom.stdout and 'id="sweep"' in dom.stdout
    shot = tmp_path / "shot.png"
    run = subprocess.run(_browser_args(chromium, tmp_path / "p2") + [f"--screenshot={shot}", "--window-size=1200,1400",
                         "--hide-scrollbars", url], capture_output=True, text=True, timeout=180)
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    img = cv2.imread(str(shot))
    assert img is not None and img.shape[:2] == (1400, 1200)
    assert img.std() > 10  # not blank: text, tables and images rendered
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 50  # the embedded plot / overlays show colours
