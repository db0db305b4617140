"""Every registered effect: keeps shape/dtype, does not mutate input, deterministic, mask intact."""

import numpy as np
import pytest

from synth import functional as F
from synth.config import SynthConfig
from synth.effects import EFFECTS, build_effects


def _image(seed=0, s=96):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (s, s, 3), dtype=np.uint8)
    img[: s // 2] = (img[: s // 2] // 4) + 100  # some structure
    return img


def _mask(s=96, ignore=False):
    m = np.zeros((s, s), np.uint8)
    m[20:60, 30:70] = 1
    if ignore:
        m[20, 30:70] = 255
    return m


@pytest.mark.parametrize("name", sorted(EFFECTS))
def test_effect_has_test_params(name):
    cls = EFFECTS[name]
    assert isinstance(cls.test_params, dict) and cls.test_params, f"{name} has no test_params"


@pytest.mark.parametrize("name", sorted(EFFECTS))
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_apply_keeps_shape_dtype_and_input(name, dtype):
    cls = EFFECTS[name]
    img = _image().astype(dtype)
    before = img.copy()
    out = cls.apply(img, **cls.test_params)
    assert out.shape == img.shape and out.dtype == img.dtype
    assert np.array_equal(img, before), "input mutated"
    assert not np.array_equal(out, img), f"{name} test_params had no effect"
    assert out.min() >= 0 and out.max() <= 255


@pytest.mark.parametrize("name", sorted(EFFECTS))
@pytest.mark.parametrize("ignore", [False, True])
def test_sampled_call_deterministic_mask_values(name, ignore):
    eff = EFFECTS[name].from_config(SynthConfig()) if EFFECTS[name].config_fields else EFFECTS[name]()
    eff.p = 1.0
    img, mask = _image(1), _mask(ignore=ignore)
    mask_before = mask.copy()
    o1, m1, p1 = eff(img, mask, np.random.default_rng(7))
    o2, m2, p2 = eff(img, mask, np.random.default_rng(7))
    assert p1 == p2 and p1 is not None
    assert np.array_equal(o1, o2) and np.array_equal(m1, m2)
    assert set(np.unique(m1)) <= ({0, 1, 255} if ignore else {0, 1})
    assert np.array_equal(mask, mask_before)


def test_probability_zero_skips():
    eff = EFFECTS["jpeg"](p=0.0)
    img = _image()
    out, _, params = eff(img, _mask(), np.random.default_rng(0))
    assert params is None and out is img


def test_build_effects_order_and_unknown():
    cfg = SynthConfig()
    assert [e.name for e in build_effects(cfg)] == list(cfg.camera_effects)
    with pytest.raises(ValueError, match="valid"):
        SynthConfig(camera_effects=("jpeg", "tilt_shift_xyz"))


def test_noise_statistics_match_model():
    flat = np.full((256, 256, 3), 100, np.float32)
    out = F.sensor_noise(flat, shot=0.0, read=5.0, grain=1.0, chroma=1.0, oy=3, ox=9, flip=0)
    assert abs(float((out - flat).std()) - 5.0) < 0.3
    out2 = F.sensor_noise(flat, shot=1.0, read=0.0, grain=1.0, chroma=1.0, oy=3, ox=9, flip=0)
    assert abs(float((out2 - flat).std()) - 10.0) < 0.6  # sqrt(1 * 100)


def test_motion_kernel_normalised():
    for L, a in [(3, 0), (7.5, 33), (15, 90)]:
        k = F.motion_kernel(L, a)
        assert abs(float(k.sum()) - 1.0) < 1e-5 and k.shape[0] % 2 == 1
