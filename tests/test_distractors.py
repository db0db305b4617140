"""Distractor objects: every kind renders, deterministic, bad names rejected."""

from __future__ import annotations

import json

import numpy as np
import pytest

from synth.distractors import DISTRACTOR_KINDS, render_distractor

LIGHT = (0.3, -0.6, 0.74)


@pytest.mark.parametrize("kind", sorted(DISTRACTOR_KINDS))
def test_every_kind_renders_and_is_deterministic(kind):
    for seed in range(3):
        kw = dict(size_px=120.0, angle_deg=25.0, light_dir=LIGHT)
        rgba, meta = render_distractor(np.random.default_rng(seed), kind, **kw)
        assert rgba.dtype == np.uint8 and rgba.ndim == 3 and rgba.shape[2] == 4
        a = rgba[..., 3]
        assert (a == 0).any() and (a == 255).sum() > 30
        assert meta["kind"] == kind
        json.dumps(meta)
        again, meta2 = render_distractor(np.random.default_rng(seed), kind, **kw)
        assert again.tobytes() == rgba.tobytes() and meta2 == meta
        flat, _ = render_distractor(np.random.default_rng(seed), kind, **kw | {"shading": False})
        assert np.array_equal(flat[..., 3], a)
    ys, xs = np.nonzero(render_distractor(np.random.default_rng(0), kind, size_px=120, angle_deg=0,
                                          light_dir=LIGHT)[0][..., 3])
    assert max(np.ptp(xs), np.ptp(ys)) < 1.15 * 120


def test_unknown_kind_lists_names():
    with pytest.raises(ValueError, match="coin"):
        render_distractor(np.random.default_rng(0), "banana", size_px=50, angle_deg=0, light_dir=LIGHT)


def test_key_ring_is_an_open_annulus():
    rgba, _ = render_distractor(np.random.default_rng(1), "key_ring", size_px=100, angle_deg=0, light_dir=LIGHT)
    a = rgba[..., 3]
    h, w = a.shape
    assert a[h // 2, w // 2] == 0 and (a == 255).mean() < 0.5


def test_ball_chain_is_a_row_of_separate_beads():
    rgba, meta = render_distractor(np.random.default_rng(4), "ball_chain", size_px=200.0, angle_deg=0.0, light_dir=LIGHT)
    p = meta["params"]
    assert p["n_beads"] >= 10 and p["pitch"] > 2 * p["bead_r"]
    a = rgba[..., 3] > 127
    profile = a.sum(0)[a.any(0)]  # object height per column along the chain
    assert profile.max() >= 2 * p["bead_r"] - 1 and profile.min() < profile.max() / 2  # beads and thin wire between


def test_distractor_kinds_knob_limits_the_kinds_drawn():
    from synth import SampleRenderer, SynthConfig

    r = SampleRenderer(SynthConfig(size=96, distractor_kinds=("coin", "ball_chain"), n_distractors_range=(2, 4)))
    kinds = {n["kind"] for i in range(12) for n in r.render(i, 3)["meta"]["negatives"]}
    assert kinds == {"coin", "ball_chain"}
    with pytest.raises(ValueError, match="spoon.*valid"):
        SynthConfig(distractor_kinds=("coin", "spoon"))
    with pytest.raises(ValueError, match="empty"):
        SynthConfig(distractor_kinds=())
