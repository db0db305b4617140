"""Every registered effect: keeps shape/dtype, does not mutate input, deterministic, mask intact."""

import cv2
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
    with pytest.raises(ValueError, match=r"\['jpeg'\] more than once"):
        SynthConfig(camera_effects=("jpeg", "color", "jpeg"))
    from synth.effects import camera_effect_names

    listed = SynthConfig(camera_backend="imgaug", camera_effects=("jpeg", "imgaug_camera"))
    assert camera_effect_names(listed) == ["imgaug_camera"]  # one pass, not a second one for jpeg


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


def test_gain_maps_match_full_effects():
    """The fused low-res gain path reproduces the stand-alone vignette / gradient within 1 DN."""
    img = _image(2, 128).astype(np.float32)
    v = F.vignette(img, 0.4, 0.45, 0.55, 2.0)
    fused = F.apply_gain(img, F.vignette_gain(img.shape, 0.4, 0.45, 0.55, 2.0))
    assert np.abs(v - fused).max() < 1e-3
    # gradient gain is linear: the 32x32 grid upsampled equals the exact per-pixel formula inside
    H = W = 128
    g = cv2.resize(F.gradient_gain((H, W), 0.3, 0.6, -0.8), (W, H), interpolation=cv2.INTER_LINEAR)
    hd = 0.5 * np.hypot(H, W)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    exact = 1 + 0.3 * ((xx - (W - 1) / 2) * 0.6 + (yy - (H - 1) / 2) * -0.8) / hd
    assert np.abs(g - exact)[4:-4, 4:-4].max() < 1e-4


def test_sensor_noise_uint8_matches_float_and_orientations():
    img = _image(3, 80)
    for flip in range(8):
        a = F.sensor_noise(img, 0.5, 3.0, 1.7, 0.5, 11, 900, flip)
        b = F.sensor_noise(img.astype(np.float32), 0.5, 3.0, 1.7, 0.5, 11, 900, flip)
        assert a.shape == img.shape and a.dtype == np.uint8
        assert np.abs(a.astype(np.float32) - b).max() <= 1.0
    rect = np.full((40, 70, 3), 90, np.uint8)
    assert F.sensor_noise(rect, 0.0, 5.0, 1.0, 1.0, 3, 4, 5).shape == rect.shape


def test_camera_chain_fuses_gains_and_is_deterministic():
    from synth.camera import CameraChain

    cfg = SynthConfig(vignette_prob=1.0, noise_prob=0.0, jpeg_prob=0.0, color_prob=0.0, defocus_prob=0.0,
                      motion_blur_prob=0.0)
    img = _image(4, 64).astype(np.float32)
    out, meta = CameraChain(cfg)(img, np.random.default_rng(1))
    ref = F.to_uint8(F.vignette(img, **meta["vignette"]))
    assert out.dtype == np.uint8 and np.abs(out.astype(int) - ref.astype(int)).max() <= 1
    out2, meta2 = CameraChain(cfg)(img, np.random.default_rng(1))
    assert meta == meta2 and np.array_equal(out, out2)


def test_imgaug_backend_replaces_noise_colour_jpeg():
    from synth.effects import camera_effect_names

    cfg = SynthConfig(camera_backend="imgaug")
    assert camera_effect_names(cfg) == ["defocus_blur", "motion_blur", "vignette", "imgaug_camera"]
    assert camera_effect_names(SynthConfig()) == list(SynthConfig().camera_effects)
    with pytest.raises(ValueError, match="camera_backend"):
        SynthConfig(camera_backend="kornia")


def test_imgaug_camera_leaves_numpy_global_rng_alone():
    state = np.random.get_state()
    eff = EFFECTS["imgaug_camera"].from_config(SynthConfig())
    img = _image(5, 64)
    o1, _, p1 = eff(img, _mask(64), np.random.default_rng(3))
    o2, _, p2 = eff(img, _mask(64), np.random.default_rng(3))
    after = np.random.get_state()
    assert p1 == p2 and np.array_equal(o1, o2)
    assert state[0] == after[0] and np.array_equal(state[1], after[1]) and state[2:] == after[2:]


def test_scalar_draw_is_rng_uniform():
    """``effects._u`` returns the very double ``rng.uniform`` would (same stream position)."""
    from synth.effects import _u

    for seed in range(50):
        a, b = np.random.default_rng(seed), np.random.default_rng(seed)
        for r in [(0.4, 3.0), (-18.0, 18.0), (0, 180), (0.85, 1.15), (2.0, 2.0)]:
            assert _u(b, r) == (float(a.uniform(*r)) if r[1] > r[0] else float(r[0]))
        assert a.random() == b.random()


def test_sensor_noise_uint8_is_saturated_rounded_sum():
    """uint8 path == image + the noise term rounded to whole DN (float32 model, half to even),
    saturated to [0, 255]."""
    img = _image(5, 72)
    img[:8] = 0
    img[8:16] = 255
    for flip in (0, 5):
        out = F.sensor_noise(img, 1.1, 5.0, 1.6, 0.7, 40, 700, flip)
        h = w = int(round(72 / 1.6))
        mix = np.eye(3, dtype=np.float32) * np.float32(0.7)
        mix[:, 0] += np.float32(0.3)
        mix *= np.float32(np.sqrt(1.6))
        n = cv2.resize(F._noise_field(h, w, 40, 700, flip, mix), (72, 72), interpolation=cv2.INTER_LINEAR)
        f = img.astype(np.float32)
        term = n.astype(np.float32) * (np.sqrt(f * np.float32(1.1) + np.float32(25.0)) * np.float32(1 / 64))
        ref = np.clip(np.rint(term) + f, 0, 255).astype(np.uint8)
        assert np.array_equal(out, ref)
        assert 0 < np.count_nonzero(out != img)


def test_apply_gain_matches_opencv_upsampling():
    """The in-loop bilinear gain equals cv2.resize (INTER_LINEAR) of the grid times the image,
    rounded: within 1 DN (float rounding of the weights), and exact on a constant gain."""
    img = _image(9, 100).astype(np.float32) * np.float32(1.2)
    gain = F.vignette_gain(img.shape, 0.4, 0.4, 0.6, 2.0) * F.gradient_gain(img.shape, 0.3, 0.6, -0.8)
    ref = cv2.resize(gain, (100, 100), interpolation=cv2.INTER_LINEAR)[..., None] * img
    out = F.apply_gain(img, gain, out_uint8=True)
    assert out.dtype == np.uint8 and np.abs(out.astype(np.float32) - np.clip(ref, 0, 255)).max() <= 0.5 + 1e-3
    outf = F.apply_gain(img, gain)
    assert outf.dtype == np.float32 and np.abs(outf - np.clip(ref, 0, 255)).max() < 1e-3
    flat = F.apply_gain(img, np.full((32, 32), 0.5, np.float32), out_uint8=True)
    assert np.array_equal(flat, np.rint(np.clip(img * np.float32(0.5), 0, 255)).astype(np.uint8))
    u8 = F.to_uint8(np.array([[[-3.0, 0.5, 1.5], [254.5, 255.4, 900.0]]], np.float32))
    assert u8.tolist() == [[[0, 0, 2], [254, 255, 255]]]


def test_jpeg_round_trip_is_rgb():
    """Decoding straight to RGB gives the bytes of a BGR decode + channel swap."""
    img = _image(6, 64)
    img[..., 0] = 200  # strongly red: a channel swap would show
    out = F.jpeg(img, 70)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 70])
    ref = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    assert ok and np.array_equal(out, ref)
    assert float(out[..., 0].mean()) > 150


@pytest.mark.parametrize("sigma", [0.3, 0.8, 1.0, 1.5, 1.99, 2.6])
def test_gaussian_blur_matches_opencv(sigma):
    """Defocus at full resolution is cv2.GaussianBlur (bit-exact fixed point for uint8); float input
    gives the same blur within rounding."""
    img = _image(7, 96)
    out = F.gaussian_blur(img, sigma)
    assert out.shape == img.shape and out.dtype == np.uint8
    if sigma <= 2.0:
        ref = cv2.GaussianBlur(img, (0, 0), sigma)
        assert np.array_equal(out, ref)
    f = F.gaussian_blur(img.astype(np.float32), sigma)
    assert f.dtype == np.float32 and np.abs(f - out).max() <= 2.0


def test_color_transfer_identity_matrix_is_lut_only():
    img = _image(8, 48)
    out = F.color_transfer(img, (1.0, 1.0, 1.0), 1.0, 1.2, 3.0, 0.9)
    x = np.arange(256, dtype=np.float32)
    y = np.clip((1.2 * (x - 128.0) + 128.0 + 3.0) / 255.0, 0, 1) ** (1.0 / 0.9)
    assert np.array_equal(out, cv2.LUT(img, np.clip(y * 255.0 + 0.5, 0, 255).astype(np.uint8)))


def test_gain_grids_equal_numpy_expressions():
    """The compiled vignette / gradient grids give the float32 NumPy expressions they replaced (and
    ``scale`` multiplies after the clamp at 0): the gradient to the byte, the vignette within 1e-6
    (its power function comes from the CPU's math library, which NumPy's may round differently:
    a float32 ulp or two apart on some Xeons; a uint8 level is 4e-3)."""
    rng = np.random.default_rng(11)
    for S in (64, 257, 512):
        ys, xs = F._grid_coords(S, S)
        for _ in range(20):
            s, cx, cy, p = rng.uniform(0.05, 0.9), rng.uniform(0.4, 0.6), rng.uniform(0.4, 0.6), rng.uniform(1.5, 3.0)
            dy, dx = ys - np.float32(cy * (S - 1)), xs - np.float32(cx * (S - 1))
            r = np.sqrt(dy[:, None] ** 2 + dx[None, :] ** 2) * np.float32(1.0 / (0.5 * np.hypot(S, S)))
            ref = np.maximum(1.0 - np.float32(s) * np.minimum(r, np.float32(1.5)) ** np.float32(p), 0.0).astype(np.float32)
            np.testing.assert_allclose(F.vignette_gain((S, S), s, cx, cy, p), ref, rtol=0, atol=1e-6)
            a, gx, gy, k = rng.uniform(0, 3.0), rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(0.7, 1.3)
            n, hd = float(np.hypot(gx, gy)), 0.5 * float(np.hypot(S, S))
            t = ((ys - np.float32((S - 1) / 2)) * np.float32(gy / n / hd))[:, None] + \
                ((xs - np.float32((S - 1) / 2)) * np.float32(gx / n / hd))[None, :]
            ref = np.maximum(1.0 + np.float32(a) * t, 0.0).astype(np.float32) * np.float32(k)
            assert np.array_equal(F.gradient_gain((S, S), a, gx, gy, scale=k), ref)


def test_imgaug_camera_leaves_the_global_rng_alone_after_its_first_use(monkeypatch):
    """Saving and restoring NumPy's global RandomState on every call races with other threads
    (Dask threads render at once): only the first use, under a lock, may touch it."""
    from synth.effects import ImgaugCamera

    img = _image(3, 32)
    ImgaugCamera.apply(img, **ImgaugCamera.test_params)  # first use (warms imgaug)

    def forbidden(*a, **k):
        raise AssertionError("the global RandomState was touched")

    monkeypatch.setattr(np.random, "get_state", forbidden)
    monkeypatch.setattr(np.random, "set_state", forbidden)
    a = ImgaugCamera.apply(img, **ImgaugCamera.test_params)
    b = ImgaugCamera.apply(img, **ImgaugCamera.test_params)
    assert np.array_equal(a, b)
