"""Asset bank: cached geometry re-lit per sample; bytes never depend on the cache."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from synth import SampleRenderer, SynthConfig
from synth.distractors import DISTRACTOR_KINDS, render_distractor_asset
from synth.keys import ProceduralKeys
from backgrounds.cache import LRUCache
from synth.keys.bank import canonical_affine, size_bucket
from synth.keys.geometry import Shape, rounded_rect_pts
from synth.keys.materials import sample_material
from synth.keys.render import build_relief, shade_relief

LIGHT = (0.6, -0.3, 0.74)


def test_size_bucket_covers_and_is_monotone():
    prev = -1
    for L in np.geomspace(8, 900, 200):
        k, Lb = size_bucket(L)
        assert Lb >= L - 1e-9 and Lb < L * math.sqrt(2) + 1e-6
        assert k >= prev
        prev = k


def test_canonical_affine_box_contains_rotated_corners():
    for ang in (0, 30, 90, 137, 250):
        A, (h, w) = canonical_affine((20, 60), ang, 0.8)
        pts = np.array([[0, 0, 1], [59, 0, 1], [59, 19, 1], [0, 19, 1]], float) @ A.T
        assert (pts >= -0.5).all() and (pts[:, 0] <= w - 0.5).all() and (pts[:, 1] <= h - 0.5).all()


def test_cache_lru_budget_and_counts():
    c = LRUCache(budget_mib=1)
    big = np.zeros(400_000, np.uint8)
    for i in range(5):
        assert c.get(i, lambda: (big, i))[1] == i
    assert c.nbytes <= 2**20 and len(c) == 2  # LRU keeps what fits
    assert c.get(4, lambda: pytest.fail("should be cached"))[1] == 4
    assert c.hits == 1 and c.misses == 5
    c.set_budget(0)
    assert len(c) == 0


def _scene_bytes(r, i):
    s = r.render(i, 3)
    return s["image"].tobytes() + s["mask"].tobytes()


def test_sample_bytes_do_not_depend_on_cache_state():
    cfg = SynthConfig(size=96, asset_bank_size=4, distractor_bank_size=2, n_distractors_range=(2, 4))
    r = SampleRenderer(cfg, backgrounds=_flat_bg())
    cold = [_scene_bytes(r, i) for i in (5, 6)]
    assert r.asset_cache.misses > 0
    for i in range(20):  # fill and reuse the cache
        r.render(100 + i, 3)
    assert r.asset_cache.hits > 0
    assert [_scene_bytes(r, i) for i in (5, 6)] == cold
    nothing = SampleRenderer(cfg.replace(asset_cache_mib=0), backgrounds=_flat_bg())  # nothing cached at all
    assert [_scene_bytes(nothing, i) for i in (5, 6)] == cold
    assert len(nothing.asset_cache) == 0 and nothing.asset_cache.hits == 0
    assert len(r.asset_cache) > 0, "each renderer owns its cache: the other one's stays as it was"


def test_a_pickled_renderer_starts_with_an_empty_cache_and_renders_the_same():
    import copy
    import pickle

    cfg = SynthConfig(size=64, asset_bank_size=2, distractor_bank_size=1, asset_cache_mib=7)
    r = SampleRenderer(cfg)  # the default backgrounds: a picklable source
    before = _scene_bytes(r, 4)
    assert len(r.asset_cache) > 0
    for other in (pickle.loads(pickle.dumps(r)), copy.deepcopy(r)):
        assert len(other.asset_cache) == 0 and other.asset_cache.budget == 7 << 20
        assert _scene_bytes(other, 4) == before


def test_meta_handed_out_is_not_the_cache():
    cfg = SynthConfig(size=64, asset_bank_size=1, distractor_bank_size=1, empty_prob=0.0, n_distractors_range=(1, 2))
    r = SampleRenderer(cfg, backgrounds=_flat_bg())
    first = r.render(0, 1)["meta"]
    first["keys"][0]["params"]["POISON"] = 1
    for n in first["negatives"]:
        n["params"]["POISON"] = 1
    for i in range(1, 6):
        m = r.render(i, 1)["meta"]
        assert all("POISON" not in k["params"] for k in m["keys"])
        assert all("POISON" not in n["params"] for n in m["negatives"])


def test_bank_generations_and_meta():
    cfg = SynthConfig(size=96, asset_bank_size=2, asset_bank_refresh=10, empty_prob=0.0)
    r = SampleRenderer(cfg, backgrounds=_flat_bg())
    seeds = {}
    for i in (0, 9, 10, 25):
        m = r.render(i, 3)["meta"]
        assert m["keys"], "empty_prob=0 renders keys"
        seeds[i] = {k["asset"]["bank_seed"] for k in m["keys"]}
        assert all(0 <= k["asset"]["id"] < 2 for k in m["keys"])
    assert seeds[0] == seeds[9] and seeds[0] != seeds[10] and seeds[10] != seeds[25]
    off = SampleRenderer(cfg.replace(asset_bank_size=0, distractor_bank_size=0), backgrounds=_flat_bg())
    assert all("asset" not in k for k in off.render(0, 3)["meta"]["keys"])


def test_same_asset_id_same_shape_other_appearance():
    pk = ProceduralKeys()
    a = pk.sample_asset(np.random.default_rng(1), length_px=100, angle_deg=0, light_dir=LIGHT, bank_seed=7, bank_size=1)
    b = pk.sample_asset(np.random.default_rng(2), length_px=100, angle_deg=0, light_dir=LIGHT, bank_seed=7, bank_size=1)
    assert a[2]["asset"] == b[2]["asset"] and a[2]["params"] == b[2]["params"]
    assert np.array_equal(a[0][..., 3], b[0][..., 3]) and np.array_equal(a[1], b[1])  # same geometry
    assert not np.array_equal(a[0][..., :3], b[0][..., :3])  # re-lit / re-coloured
    c = pk.sample_asset(np.random.default_rng(1), length_px=100, angle_deg=0, light_dir=LIGHT, bank_seed=8, bank_size=1)
    assert c[2]["params"] != a[2]["params"] or not np.array_equal(c[0][..., 3], a[0][..., 3])


@pytest.mark.parametrize("kind", sorted(DISTRACTOR_KINDS))
def test_distractor_assets_render(kind):
    rgba, meta, A, (h, w) = render_distractor_asset(np.random.default_rng(0), kind, size_px=60, angle_deg=33,
                                                    light_dir=LIGHT, bank_seed=1, bank_size=3)
    assert rgba.dtype == np.uint8 and rgba.shape[2] == 4 and (rgba[..., 3] > 0).any()
    assert A.shape == (2, 3) and h > 0 and w > 0 and meta["kind"] == kind and "asset" in meta


def _plate() -> Shape:
    s = Shape()  # a round bar (cylinder relief): its normals sweep across the width
    s.poly("cyl", rounded_rect_pts(60, 0, 60, 16, 6))
    return s


@pytest.mark.parametrize("angle", [40.0, 135.0, 250.0])
def test_relit_canonical_relief_matches_direct_render(angle):
    """A canonical relief lit with ``normal_rotation_deg`` and warped by the rotation looks like the
    relief rasterised at that angle: the light stays consistent with the on-screen orientation."""
    metal = sample_material(np.random.default_rng(0), "nickel")
    metal["scratches"] = 0.0

    def lit(relief, rot):
        return shade_relief(np.random.default_rng(5), relief, length_px=120, light_dir=LIGHT, env=None,
                            shading=True, metal=metal, plastic=None, normal_rotation_deg=rot)[0]

    flat = (0.0, 0.0, 0.0, 0.0)  # no random bend: it is drawn in canvas axes, which differ
    direct = lit(build_relief(np.random.default_rng(3), _plate(), length_px=120, angle_deg=angle, side_p=0,
                              bend_sigma=flat), 0.0)
    canon = build_relief(np.random.default_rng(3), _plate(), length_px=120, angle_deg=0.0, side_p=0, bend_sigma=flat)

    def placed(rot):
        rgba = lit(canon, rot)
        A, (h, w) = canonical_affine(rgba.shape[:2], angle, 1.0)
        return cv2.warpAffine(rgba, A, (w, h), flags=cv2.INTER_LINEAR)

    def interior_err(img):
        # align the two boxes on their alpha centroids, compare fully covered interior pixels
        def cen(a):
            ys, xs = np.nonzero(a[..., 3] > 127)
            return int(round(ys.mean())), int(round(xs.mean()))
        (cy0, cx0), (cy1, cx1) = cen(direct), cen(img)
        r = 14
        a = direct[cy0 - r:cy0 + r, cx0 - r:cx0 + r].astype(float)
        b = img[cy1 - r:cy1 + r, cx1 - r:cx1 + r].astype(float)
        m = (a[..., 3] == 255) & (b[..., 3] == 255)
        return np.abs(a[..., :3] - b[..., :3])[m].mean()

    good, wrong = interior_err(placed(angle)), interior_err(placed(0.0))
    assert good < 6.0, good
    assert wrong > 2 * good, (good, wrong)


def _flat_bg():
    class Flat:
        def sample(self, rng, size):
            return np.full((*size, 3), 120, np.uint8), {"source": "flat"}
    return Flat()


def test_banked_procedural_backgrounds_pure_and_varied():
    from backgrounds import ProceduralBackgrounds, default_backgrounds

    src = ProceduralBackgrounds()
    draw = lambda s: src.sample_banked(np.random.default_rng(s), (48, 48), bank_seed=9, bank_size=2)  # noqa: E731
    cold = [draw(s)[0].tobytes() for s in range(6)]
    assert src.texture_cache.misses <= 2 and src.texture_cache.hits >= 4
    assert [draw(s)[0].tobytes() for s in range(6)] == cold
    src.texture_cache.set_budget(0)
    assert [draw(s)[0].tobytes() for s in range(6)] == cold
    assert len(set(cold)) == 6  # 2 textures, but orientation + gains differ per sample
    img, meta = draw(0)
    assert img.shape == (48, 48, 3) and img.dtype == np.uint8 and meta["bank"]["id"] in (0, 1)
    img, meta = src.sample_banked(np.random.default_rng(0), (40, 64), bank_seed=9, bank_size=2)
    assert img.shape == (40, 64, 3)  # non-square: flips only
    img, meta = default_backgrounds().sample_banked(np.random.default_rng(3), (32, 32), bank_seed=1, bank_size=4)
    assert img.shape == (32, 32, 3) and "mixed_index" in meta
    with pytest.raises(ValueError, match="bank_size"):
        src.sample_banked(np.random.default_rng(0), (32, 32), bank_seed=1, bank_size=0)


def test_old_bank_generations_are_dropped_from_the_cache():
    cfg = SynthConfig(size=64, asset_bank_size=2, distractor_bank_size=1, asset_bank_refresh=3, empty_prob=0.0)
    r = SampleRenderer(cfg, backgrounds=_flat_bg())
    seen = set()
    for i in range(12):  # generations 0..3
        r.render(i, 5)
        gens = {k[0] for k in r.asset_cache._d}
        seen |= gens
        assert len(gens) <= 2, "only the two most recent generations stay cached"
    assert len(seen) == 4
    c = LRUCache(1)
    c.get((1, "a"), lambda: np.zeros(10))
    c.get((2, "a"), lambda: np.zeros(10))
    assert c.retain(lambda k: k[0] == 2) == 1 and len(c) == 1
    for gen in (1, 2, 3):  # the cache's own generation book-keeping
        c.enter_generation(gen)
        c.get((gen, "b"), lambda: np.zeros(10))
    assert {k[0] for k in c._d} == {2, 3}


def test_cache_generations_hold_under_threads():
    import threading

    c, errors = LRUCache(4), []

    def work(k):
        try:
            for gen in range(40):
                c.enter_generation(gen)
                c.get((gen, k), lambda: np.zeros(16))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    c.enter_generation(99)
    assert {k[0] for k in c._d} <= {39}  # the previous generation only; 99 has no entry yet
