"""SampleRenderer: determinism, label correctness after occlusion, meta, instances, families."""

import json
import pickle
import sys

import numpy as np
import pytest

from backgrounds import ProceduralBackgrounds
from synth import SampleRenderer, SynthConfig
from synth.occluders import FallbackKeys
from synth.seeding import sample_seed

BG = ProceduralBackgrounds(("gradient", "wood", "tiles"))


def _renderer(**kw):
    cfg = SynthConfig(size=kw.pop("size", 128), **kw)
    return SampleRenderer(cfg, backgrounds=BG, keys=kw.pop("keys", FallbackKeys()))


def _check_contract(s, size):
    assert s["image"].shape == (size, size, 3) and s["image"].dtype == np.uint8
    assert s["mask"].shape == (size, size) and s["mask"].dtype == np.uint8
    assert s["instances"].shape == (size, size) and s["instances"].dtype == np.uint16
    json.dumps(s["meta"])


def test_same_seed_same_bytes_different_index_differs():
    r = _renderer()
    a, b = r.render(3, 11), pickle.loads(pickle.dumps(r)).render(3, 11)
    assert a["image"].tobytes() == b["image"].tobytes() and np.array_equal(a["mask"], b["mask"])
    assert a["meta"] == b["meta"]
    c = r.render(4, 11)
    assert a["image"].tobytes() != c["image"].tobytes()


def test_a_sampled_scene_renders_without_a_random_draw():
    """render = render_scene(sample_scene): the scene holds every random choice, so rendering it
    twice gives the same bytes, and its meta shows the scene's shadows and camera parameters."""
    r = _renderer(size=96, n_keys_range=(2, 3), empty_prob=0.0, n_distractors_range=(2, 3), hand_prob=1.0)
    for i in range(4):
        whole = r.render(i, 11)
        sc = r.sample_scene(i, 11)
        a, b = r.render_scene(sc), r.render_scene(sc)
        for k in ("image", "mask", "instances"):
            assert np.array_equal(a[k], whole[k]) and np.array_equal(b[k], whole[k])
        assert a["meta"] == b["meta"] == whole["meta"]
        assert len(sc.shadows["keys"]) == len(sc.keys) and len(sc.shadows["under"]) == len(sc.under_d)
        assert [k["shadow"] for k in whole["meta"]["keys"]] == [None if sh is None else
                                                               pytest.approx(sh.meta(), abs=1e-4) for sh in sc.shadows["keys"]]
        assert set(whole["meta"]["camera"]) == set(sc.camera)


def test_shadows_fall_away_from_the_light_and_switch_off_without_a_draw():
    from synth.spec import sample_shadow

    on = SynthConfig(shadow_prob=1.0)
    sh = sample_shadow(np.random.default_rng(0), on, (0.6, 0.0, 0.8), 50.0)
    assert sh.shift[0] < 0 and sh.shift[1] == 0 and sh.contact_blur_px is not None
    lifted = sample_shadow(np.random.default_rng(0), on, (0.6, 0.0, 0.8), 50.0, lift=2.0)
    assert lifted.contact_blur_px is None and lifted.contact_strength == 0.0 and lifted.offset_px > sh.offset_px
    rng = np.random.default_rng(0)
    assert sample_shadow(rng, on.replace(shadows=False), (0.6, 0.0, 0.8), 50.0) is None
    assert rng.random() == np.random.default_rng(0).random()  # nothing was drawn


def test_contract_meta_and_instances():
    r = _renderer()
    for i in range(12):
        s = r.render(i, 5)
        _check_contract(s, 128)
        m = s["meta"]
        assert m["seed"] == sample_seed(5, i) and m["index"] == i and m["run_seed"] == 5
        assert set(np.unique(s["mask"])) <= {0, 1}
        assert np.array_equal(s["mask"] == 1, s["instances"] > 0)
        ids = set(np.unique(s["instances"])) - {0}
        assert ids == {k["instance_id"] for k in m["keys"] if k["instance_id"] > 0}
        for k in m["keys"]:
            if k["instance_id"]:
                assert int((s["instances"] == k["instance_id"]).sum()) == k["visible_px"]
        assert "camera" in m and "light" in m and "background" in m


def test_empty_samples_have_empty_masks():
    r = _renderer(empty_prob=1.0)
    for i in range(4):
        s = r.render(i, 0)
        assert s["meta"]["mode"] == "empty" and not s["mask"].any() and not s["instances"].any()


def test_keys_present_when_not_empty():
    r = _renderer(empty_prob=0.0, key_length_range=(0.2, 0.5), key_length_typical_range=(0.2, 0.5))
    assert all(r.render(i, 0)["mask"].sum() > 20 for i in range(6))


def test_mask_is_visible_coverage_after_occlusion():
    kw = dict(empty_prob=0.0, hand_prob=1.0, blob_occluder_prob=0.5, min_visible_px=1,
              key_length_range=(0.25, 0.5), key_length_typical_range=(0.25, 0.5), camera=False)
    on, off = _renderer(occluders=True, **kw), _renderer(occluders=False, **kw)
    removed = 0
    for i in range(8):
        a, b = on.render(i, 2, debug=True), off.render(i, 2, debug=True)
        # label == thresholded visible coverage, never more than the unoccluded key
        assert np.array_equal(a["mask"] == 1, a["coverage"] >= 0.5)
        assert np.all(a["coverage"] <= a["key_alpha"] + 1e-6)
        # same key layout with occluders off: occluded pixels are exactly the ones removed
        assert np.array_equal(a["key_alpha"], b["key_alpha"])
        assert np.array_equal(b["mask"] == 1, b["key_alpha"] >= 0.5)
        assert not np.any((a["mask"] == 1) & (b["mask"] == 0))
        gone = (b["mask"] == 1) & (a["mask"] == 0)
        assert np.all(a["coverage"][gone] < 0.5)
        removed += int(gone.sum())
    assert removed > 50  # fingers did cover key pixels


def test_ignore_band():
    r = _renderer(ignore_band=True, empty_prob=0.0, key_length_range=(0.3, 0.5), key_length_typical_range=(0.3, 0.5))
    s = r.render(0, 0)
    vals = set(np.unique(s["mask"]))
    assert 255 in vals and vals <= {0, 1, 255}
    inside = s["mask"] != 255
    assert np.array_equal((s["mask"] == 1)[inside], (s["instances"] > 0)[inside])


def test_family_switches_change_only_their_part():
    shadow = _renderer(camera=False, shadows=True, occluders=False, shadow_prob=1.0, empty_prob=0.0)
    b = shadow.render(1, 0)
    # shadows darken only, never change labels
    a2 = _renderer(camera=False, shadows=False, occluders=False, empty_prob=0.0).render(1, 0)
    assert np.array_equal(a2["mask"], b["mask"])
    assert b["image"].astype(int).sum() < a2["image"].astype(int).sum()


def test_flat_shading_prob_draws_flat_scenes():
    """A flat scene is exactly the ``shading=False`` rendering of the same sample;
    the share of flat scenes follows ``flat_shading_prob``; meta records the draw."""
    cfg = dict(size=96, backgrounds="procedural")
    always = SampleRenderer(SynthConfig(flat_shading_prob=1.0, **cfg))
    flat = SampleRenderer(SynthConfig(shading=False, **cfg))
    shaded = SampleRenderer(SynthConfig(**cfg))
    for i in range(3):
        a, f, s = always.render(i, 2), flat.render(i, 2), shaded.render(i, 2)
        assert np.array_equal(a["image"], f["image"]) and np.array_equal(a["mask"], f["mask"])
        assert a["meta"]["shading"] is False and s["meta"]["shading"] is True
    half = SampleRenderer(SynthConfig(flat_shading_prob=0.5, **cfg))
    n_flat = sum(not half.render(i, 3)["meta"]["shading"] for i in range(60))
    assert 15 <= n_flat <= 45  # Binomial(60, 0.5): 30 +- 3.9 sd

@pytest.mark.parametrize("size", [64, 256])
def test_default_sources_render(size):
    """Default config with the real key renderer (synth.keys) and default backgrounds."""
    r = SampleRenderer(SynthConfig(size=size))
    for i in range(3):
        s = r.render(i, 1)
        _check_contract(s, size)
        assert set(np.unique(s["mask"])) <= {0, 1}


def test_yaml_round_trip_and_unknown_keys(tmp_path):
    cfg = SynthConfig.default()
    p = tmp_path / "c.yaml"
    cfg.to_yaml(p)
    assert SynthConfig.from_yaml(p) == cfg
    with pytest.raises(ValueError, match="valid keys"):
        SynthConfig.from_dict({"sizee": 3})
    with pytest.raises(ValueError, match="low > high"):
        SynthConfig(defocus_sigma_range=(3.0, 1.0))
    p.write_text("size: 64\njpeg_quality_range: [50, 60]\n")
    c2 = SynthConfig.from_yaml(p)
    assert c2.size == 64 and c2.jpeg_quality_range == (50, 60)


def test_synth_imports_no_torch():
    import subprocess

    code = ("import sys, synth, synth.scene, synth.preview, synth.effects, synth.camera, synth.compose; "
            "synth.SampleRenderer(synth.SynthConfig(size=32)).render(0, 0); "
            "bad=[m for m in sys.modules if m.split('.')[0] in ('torch','train','real_eval','keysynth') and m not in ('keysynth','keysynth.common')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_imgaug_backend_deterministic_and_no_global_rng():
    state = np.random.get_state()
    r = _renderer(camera_backend="imgaug", size=64)
    a, b = r.render(2, 9), pickle.loads(pickle.dumps(r)).render(2, 9)
    after = np.random.get_state()
    assert a["image"].tobytes() == b["image"].tobytes() and a["meta"] == b["meta"]
    assert "imgaug_camera" in a["meta"]["camera"] and "jpeg" not in a["meta"]["camera"]
    assert np.array_equal(state[1], after[1]) and state[2:] == after[2:]
    _check_contract(a, 64)


def test_allocator_tuning_keeps_bytes():
    import subprocess

    code = ("import numpy as np, synth.scene as sc, synth.workers as w; from backgrounds import ProceduralBackgrounds as P; "
            "{tune}r = sc.SampleRenderer(sc.SynthConfig(size=96), backgrounds=P()); "
            "print(r.render(1, 3)['image'].sum())")
    outs = [subprocess.run([sys.executable, "-c", code.format(tune=t)], check=True, capture_output=True,
                           text=True).stdout for t in ("w.tune_allocator(); ", "")]
    assert outs[0] == outs[1] and outs[0].strip()


def test_seed_words_equal_seedsequence_of_ints():
    """The uint32 entropy words of derive_seed give the same SeedSequence state as the list of Python ints."""
    from keysynth.common import _entropy

    for v in ([0, 0], [1, 2**40], [2**63 - 1, 5], [2**70 + 3, 0, 7], [12345, 2**32]):
        a = np.random.SeedSequence(v).generate_state(4)
        assert np.array_equal(a, np.random.SeedSequence(_entropy(v)).generate_state(4)), v


def test_child_stream_seed_is_the_blake2b_of_seed_and_name():
    """child_rng(seed, stream) = PCG64 seeded from BLAKE2b(seed as 8 LE bytes + stream), by hand."""
    import hashlib

    from synth.seeding import StreamSeed, child_rng

    seed = 2**62 + 11
    d = hashlib.blake2b(seed.to_bytes(8, "little") + b"camera", digest_size=32).digest()
    words = [int.from_bytes(d[i:i + 8], "little") for i in range(0, 32, 8)]
    assert StreamSeed(seed, "camera").generate_state(4, np.uint64).tolist() == words
    d16 = hashlib.blake2b(seed.to_bytes(8, "little") + b"camera", digest_size=16).digest()
    assert StreamSeed(seed, "camera").generate_state(4).tolist() == [int.from_bytes(d16[i:i + 4], "little")
                                                                    for i in range(0, 16, 4)]
    ref = np.random.Generator(np.random.PCG64(StreamSeed(seed, "camera")))
    assert np.array_equal(child_rng(seed, "camera").random(4), ref.random(4))
    draws = {name: child_rng(seed, name).random(3).tolist() for name in ("camera", "keys", "layout")}
    draws["other seed"] = child_rng(seed + 1, "camera").random(3).tolist()
    assert len({tuple(v) for v in draws.values()}) == 4  # distinct streams
    with pytest.raises(ValueError, match="uint32 or uint64"):
        StreamSeed(seed, "camera").generate_state(2, np.int64)


def test_rect_to_quad_matches_opencv_and_matmul3():
    import cv2

    from synth.compose import matmul3, rect_to_quad

    rng = np.random.default_rng(0)
    for _ in range(200):
        w, h = rng.uniform(5, 300, 2)
        rect = [[0, 0], [w, 0], [w, h], [0, h]]
        quad = (np.array(rect) + rng.uniform(-0.2, 0.2, (4, 2)) * max(w, h)).tolist()
        M = np.array(rect_to_quad(w, h, quad))
        for (x, y), q in zip(rect, quad):
            p = M @ [x, y, 1.0]
            assert abs(p[0] / p[2] - q[0]) < 1e-8 and abs(p[1] / p[2] - q[1]) < 1e-8
        R = cv2.getPerspectiveTransform(np.float32(rect), np.float32(quad))  # float32 corners: a looser match
        np.testing.assert_allclose(M / M[2, 2], R / R[2, 2], rtol=1e-4, atol=1e-6)
    para = rect_to_quad(4.0, 2.0, [[1, 1], [5, 1], [5, 3], [1, 3]])  # a pure shift: affine branch
    assert para == [[1.0, 0.0, 1], [0.0, 1.0, 1], [0.0, 0.0, 1.0]]
    with pytest.raises(ValueError, match="degenerate"):
        rect_to_quad(4.0, 2.0, [[0, 0], [1, 1], [2, 2], [3, 3]])
    a, b = rng.random((3, 3)).tolist(), rng.random((2, 3)).tolist()
    assert np.allclose(matmul3(a, b), np.array(a) @ np.vstack([b, [0, 0, 1]]))
    assert np.allclose(matmul3(a, a), np.array(a) @ np.array(a))


def test_round4_rounds_to_four_decimals_and_is_stable():
    from synth.meta import jsonable, round4

    rng = np.random.default_rng(1)
    xs = (rng.random(20000) * 20 - 10).tolist() + [0.0, 1e12, -3.5e-5, 0.12345, 2.00005]
    for x in xs:
        r = round4(x)
        assert abs(r - x) <= 0.5e-4 + 1e-12 and round4(r) == r and float(f"{r:.4f}") == r
    assert round4(float("inf")) == float("inf")
    assert jsonable({"a": [np.float32(0.123456), 1.98765432]}) == {"a": [0.1235, 1.9877]}


def test_rendering_leaves_the_process_allocator_alone():
    """glibc's malloc tuning is an opt-in of generator workers, never a side effect of render()."""
    import subprocess
    import sys

    code = ("import synth.workers as sc\n"
            "from synth import SampleRenderer, SynthConfig\n"
            "from backgrounds import make_backgrounds\n"
            "SampleRenderer(SynthConfig(size=64), backgrounds=make_backgrounds('procedural')).render(0, 0)\n"
            "print(sc._ALLOC_TUNED)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"
