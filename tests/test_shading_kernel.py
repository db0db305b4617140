"""The compiled shading kernel (synth.keys.kernels) against the NumPy reference model
(synth.keys.shading.shade_surface), and its table decoding."""

from __future__ import annotations

import numpy as np
import pytest

from synth.keys.geometry import Shape, rounded_rect_pts
from synth.keys.kernels import PARAMS, Q_CAVITY, Q_TEXTURE, Q_UNIT, dequantize, pack_params, params_vector, quantize
from synth.keys.materials import sample_material, sample_plastic
from synth.keys.render import SurfaceDetail, build_relief, shade_relief
from synth.keys.shading import check_light, default_env, light_xyz, shade_surface
from synth.keys.render import _planar96

LIGHT = (0.5, -0.4, 0.77)


def test_fixed_point_round_trip_and_saturation():
    x = np.random.default_rng(0).normal(0, 3, 5000).astype(np.float32)
    q = quantize(x, Q_TEXTURE)
    assert q.dtype == np.int16 and not q.flags.writeable
    np.testing.assert_allclose(dequantize(q, Q_TEXTURE), np.clip(x, -8, 8), atol=Q_TEXTURE / 2 + 1e-6)
    u = np.array([-2.0, -1.0, 0.0, 0.25, 1.0, 2.0], np.float32)
    assert quantize(u, Q_UNIT).tolist() == [-32767, -32767, 0, 8192, 32767, 32767]  # saturates at +-1
    assert dequantize(quantize(np.array([63.9], np.float32), Q_CAVITY), Q_CAVITY)[0] == pytest.approx(63.9, abs=1e-3)
    assert quantize(q, Q_TEXTURE) is q  # codes pass through
    w = q.copy()
    assert np.shares_memory(quantize(w, Q_TEXTURE), w) and w.flags.writeable  # a read-only view
    assert quantize(None, Q_UNIT).size == 0 and dequantize(None, Q_UNIT) is None


def test_params_vector_names():
    v = params_vector(lx=0.25, p_env=0.5)
    assert v.shape == (len(PARAMS),) and v[PARAMS.index("lx")] == 0.25 and v[PARAMS.index("p_env")] == 0.5
    assert np.array_equal(params_vector({"lx": 0.25}, p_env=0.5), v)
    with pytest.raises(KeyError, match="not_a_param"):
        params_vector(not_a_param=1.0)


def _relief(plastic: bool, length: float):
    s = Shape()
    s.poly("cyl", rounded_rect_pts(length / 2, 0, length, length / 4, length / 10))
    if plastic:
        s.poly("plastic", rounded_rect_pts(length / 5, 0, length / 3, length / 3, length / 12))
    return build_relief(np.random.default_rng(3), s, length_px=length, side_p=0, has_plastic=plastic,
                        bend_sigma=(0.0, 0.0, 0.0, 0.0))


def _fx(a, scale=Q_UNIT):
    """The kernel's view of a float array: rounded to its int16 fixed-point codes and back."""
    return dequantize(quantize(a, scale), scale)


class _Reference:
    """The NumPy model with the kernel's inputs: ``shade_relief``'s draws (env centre, then
    brightness) replayed from the same seed, fixed-point-rounded relief arrays."""

    def __init__(self, relief, env_u8, seed=7):
        r = np.random.default_rng(seed)
        self.centre = tuple(r.uniform(0.3, 0.7, 2))
        self.bright = r.uniform(0.85, 1.15)
        self.env = _planar96(env_u8.astype(np.float32) / 255.0)
        self.n = tuple(_fx(a) for a in relief.normals)

    def shade(self, material, metallic):
        return shade_surface(self.n, np.asarray(material["albedo"], np.float32), check_light(LIGHT), self.env,
                             diffuse=material["diffuse"], specular=material["specular"],
                             shininess=material["shininess"], env_strength=material["env"], metallic=metallic,
                             env_centre=self.centre)


def _env_u8():
    return np.round(default_env(np.random.default_rng(2), check_light(LIGHT)) * 255).astype(np.uint8)


def _max_err(rgba, relief, col):
    ref = np.clip(col * 255.0 + 0.5, 0, 255).astype(np.uint8)  # (3, N)
    got = rgba[..., :3].reshape(-1, 3)[relief.out_idx].T
    return int(np.abs(got.astype(int) - ref.astype(int)).max())


def test_pack_params_is_params_vector_by_position():
    """The renderer's positional packing equals the named one, metal / plastic / both / neither."""
    metal = tuple(0.01 * (i + 1) for i in range(14))
    plastic = tuple(0.1 * (i + 1) for i in range(7))
    lx, ly, lz = light_xyz(LIGHT)
    hn = (lx * lx + ly * ly + (lz + 1.0) ** 2) ** 0.5
    common = dict(r00=0.6, r01=0.8, r10=-0.8, r11=0.6, lx=lx, ly=ly, lz=lz, hx=lx / hn, hy=ly / hn, hz=(lz + 1.0) / hn,
                  env_cx=0.4, env_cy=0.6, env_gain=0.8, ambient=0.25, brightness=1.1)
    m_names = ("m_r", "m_g", "m_b", "m_streak", "m_wear", "rust_r", "rust_g", "rust_b", "m_diffuse", "m_specular",
               "m_shininess", "m_env", "scratch_amount", "cavity_coef")
    p_names = ("p_r", "p_g", "p_b", "p_diffuse", "p_specular", "p_shininess", "p_env")
    for m in (None, metal):
        for p in (None, plastic):
            named = dict(common)
            if m is not None:
                named.update(metal=1.0, **dict(zip(m_names, m)))
            if p is not None:
                named.update(plastic=1.0, **dict(zip(p_names, p)))
            got = pack_params((0.6, 0.8, -0.8, 0.6), (lx, ly, lz), (0.4, 0.6), 1.1, m, p)
            assert np.array_equal(got, params_vector(named))
    with pytest.raises(ValueError, match="14"):
        pack_params((1.0, 0.0, 0.0, 1.0), (0.0, 0.0, 1.0), (0.5, 0.5), 1.0, metal[:3])


def test_light_xyz_fast_path_equals_checked_array():
    for light in [LIGHT, (0.0, 0.0, 1.0), (1.0, 0.0, 0.0), (0.3, 0.4, -0.2)]:
        fast = light_xyz(light)
        slow = light_xyz(np.array(light))  # the generic (array) path
        assert all(type(v) is float for v in fast) and np.allclose(fast, slow, rtol=0, atol=1e-15)
        assert np.array_equal(check_light(light), np.array(fast)) and fast[2] > 0.049  # z raised to 0.05, then renormalised
    with pytest.raises(ValueError, match="light_dir"):
        light_xyz((0.0, 0.0, 0.0))


@pytest.mark.parametrize("plastic", [False, True])
@pytest.mark.parametrize("length", [40.0, 160.0])  # under / over the kernel's power-table threshold
def test_kernel_matches_numpy_reference(plastic, length):
    """Same relief, material, light and environment: the kernel's cut-out equals the NumPy
    Blinn-Phong + sphere-map model within 2 DN (fixed-point inputs, power table vs exact power)."""
    relief = _relief(plastic, length)
    rng = np.random.default_rng(1)
    metal = sample_material(rng, "brass")
    metal["scratches"] = 0.0
    plas = sample_plastic(rng) if plastic else None
    zero = np.zeros(relief.idx.size, np.int16)
    detail = SurfaceDetail(zero, zero, None)  # no streaks / tarnish: albedo = the base colour
    env_u8 = _env_u8()
    rgba, _, _ = shade_relief(np.random.default_rng(7), relief, length_px=length, light_dir=LIGHT, env=env_u8,
                              shading=True, metal=metal, plastic=plas, detail=detail)
    ref = _Reference(relief, env_u8)
    col = ref.shade(metal, True)
    if relief.cavity is not None:
        col = col * np.exp(_fx(relief.cavity, Q_CAVITY) * (-0.18 / relief.bevel_px))
    if plastic:
        col = col + (ref.shade(plas, False) - col) * _fx(relief.plastic_w)
    assert _max_err(rgba, relief, col * ref.bright) <= 2
    assert (rgba[..., 3] == relief.alpha).all()
    outside = np.ones(rgba.shape[0] * rgba.shape[1], bool)
    outside[relief.out_idx] = False
    assert not rgba[..., :3].reshape(-1, 3)[outside].any()  # nothing written off the object


def test_plastic_only_object_with_side_wall_matches_reference():
    """A plastic-only object (e.g. a rubber fob distractor) with a side wall: the wall pixels are the
    plastic colour darkened by the wall factor, never black (regression: they once were)."""
    s = Shape()
    s.poly("plastic", rounded_rect_pts(60, 0, 120, 40, 10))
    relief = build_relief(np.random.default_rng(4), s, length_px=120, side_p=1.0, has_metal=False,
                          has_plastic=True, bend_sigma=(0.0, 0.0, 0.0, 0.0))
    assert relief.top_ratio is not None and (_fx(relief.top_ratio) < 0.5).any()  # a wall exists
    plas = sample_plastic(np.random.default_rng(1), dark_p=0.0)
    env_u8 = _env_u8()
    rgba, _, _ = shade_relief(np.random.default_rng(7), relief, length_px=120, light_dir=LIGHT, env=env_u8,
                              shading=True, metal=None, plastic=plas)
    ref = _Reference(relief, env_u8)
    col = ref.shade(plas, False) * ref.bright * (0.4 + 0.6 * _fx(relief.top_ratio))
    assert _max_err(rgba, relief, col) <= 2
