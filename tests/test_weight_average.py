"""bench/weight_average.py: uniform weight averages and BatchNorm statistics re-estimated on photos."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("weight_average", ROOT / "bench" / "weight_average.py")
wa = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(wa)

SPEC = {"image_size": 32, "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}


def _net() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.Conv2d(4, 1, 1))


def test_average_state_is_the_mean_and_refuses_other_architectures():
    a, b = _net().state_dict(), _net().state_dict()
    avg = wa.average_state([a, b])
    assert torch.allclose(avg["0.weight"], (a["0.weight"] + b["0.weight"]) / 2)
    assert avg["1.num_batches_tracked"].dtype == torch.int64
    _net().load_state_dict(avg)  # loads into the same architecture
    with pytest.raises(ValueError, match="same architecture"):
        wa.average_state([a, torch.nn.Conv2d(3, 1, 1).state_dict()])


def test_adapt_batchnorm_takes_the_statistics_of_the_photos():
    torch.manual_seed(0)
    model = _net().eval()
    bn = model[1]
    before = bn.running_mean.clone()
    bright = np.full((64, 64, 3), 200, np.uint8)
    wa.adapt_batchnorm(model, SPEC, [bright])
    assert not model.training and not torch.allclose(bn.running_mean, before)
    with torch.no_grad():  # a constant photo: every conv output is constant, so its variance is ~0
        feats = model[0](torch.full((1, 3, 32, 32), 200 / 255.0))[..., 1:-1, 1:-1]
    assert torch.allclose(bn.running_mean, feats.mean(dim=(0, 2, 3)), atol=0.05)
    assert bn.momentum == 0.1
