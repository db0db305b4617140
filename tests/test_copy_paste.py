"""Copy-paste of real cut-outs: instance extraction, mixed key sources, re-lighting and blend modes."""

from __future__ import annotations

import dataclasses
import json

import cv2
import numpy as np
import pytest

from backgrounds import make_backgrounds
from real_eval.dataset import RealSample
from real_eval.extract_cutouts import extract_cutouts, instance_cutouts
from synth import SampleRenderer, SynthConfig
from synth.keysources import BLEND_MODES, MixedKeys, blend_layer, parse_key_sources, poisson_colour, sample_blend


def _photo():
    """A 60 x 90 photo with two keys (one touching the right border) and a 3-px speck."""
    img = np.full((60, 90, 3), 30, np.uint8)
    m = np.zeros((60, 90), np.uint8)
    m[10:20, 5:40] = 1  # 350 px
    m[30:50, 70:90] = 1  # 400 px, cut by the border
    m[55, 10:13] = 1  # speck
    img[m == 1] = (200, 180, 90)
    return img, m


def test_one_cutout_per_instance_with_alpha_and_provenance(tmp_path):
    img, m = _photo()
    cuts, skipped = instance_cutouts(img, m, min_area=10, margin=2)
    assert skipped == 1 and len(cuts) == 2
    (big, info_big), (small, info_small) = cuts
    assert info_big == {"box": [70, 30, 90, 50], "area": 400, "truncated": True}
    assert info_small == {"box": [5, 10, 40, 20], "area": 350, "truncated": False}
    assert small.shape == (14, 39, 4) and (small[..., 3] == 255).sum() == 350
    assert (small[2:-2, 2:-2, 3] == 255).all() and (small[0, :, 3] == 0).all()
    assert np.array_equal(small[2:-2, 2:-2, :3], img[10:20, 5:40])
    res = extract_cutouts([RealSample("p", img, m, source="/x/p.jpg")], tmp_path / "c", min_area=10)
    assert res["cutouts"] == 2 and res["skipped_small"] == 1 and res["truncated"] == 1
    rows = [json.loads(x) for x in (tmp_path / "c" / "cutouts.jsonl").read_text().splitlines()]
    assert [r["file"] for r in rows] == ["p_k0.png", "p_k1.png"] and rows[0]["source"] == "/x/p.jpg"
    png = cv2.imread(str(tmp_path / "c" / "p_k1.png"), cv2.IMREAD_UNCHANGED)
    assert png.shape[2] == 4 and (png[..., 3] == 255).sum() == 350
    with pytest.raises(FileExistsError, match="--overwrite"):
        extract_cutouts([RealSample("p", img, m)], tmp_path / "c")


def test_key_source_mix_parsing():
    assert parse_key_sources("procedural") == [("procedural", 1.0)]
    assert parse_key_sources("procedural:3, /d/c:1") == [("procedural", 0.75), ("/d/c", 0.25)]
    for bad, match in (("procedural:-1", "finite number"), ("a:0,b:0", "all weights"), (":1", "empty")):
        with pytest.raises(ValueError, match=match):
            parse_key_sources(bad)


def test_source_weights_are_honoured():
    mk = MixedKeys(["a", "b", "c"], [0.2, 0.3, 0.5], ["a", "b", "c"])
    rng = np.random.default_rng(0)
    n = 20000
    counts = np.bincount([mk.pick(rng)[0] for _ in range(n)], minlength=3)
    for got, p in zip(counts, (0.2, 0.3, 0.5)):
        assert abs(got - n * p) < 4 * np.sqrt(n * p * (1 - p))  # within 4 standard errors


@pytest.mark.parametrize("mode", BLEND_MODES[:3])
def test_blends_keep_the_label_equal_to_the_cutout_alpha(mode):
    rng = np.random.default_rng(1)
    a = np.zeros((30, 40), np.float32)
    a[8:22, 5:35] = 1.0
    a[8:22, 5] = 0.4  # a soft edge column
    rgba = np.dstack([np.full((30, 40, 3), 150, np.float32) * a[..., None], a])
    p = {"mode": mode, "sigma": 1.5, "length": 7.0, "angle": 30.0}
    out, lab, pad = blend_layer(rgba.copy(), None, p)
    assert np.array_equal(lab[pad:pad + 30, pad:pad + 40], a)  # label = visible alpha, never blurred
    assert lab.sum() == pytest.approx(a.sum())
    if mode == "hard":
        assert set(np.unique(out[..., 3])) <= {0.0, 1.0}
    else:
        assert (out[..., 3] > 0).sum() > (a > 0).sum()  # the edge spreads in the pixels
    assert sample_blend(rng, (0, 0, 0, 1))["mode"] == "poisson"


def test_poisson_blend_takes_the_background_tone_but_keeps_the_shape():
    canvas = np.full((64, 64, 3), 40.0, np.float32)
    canvas[:, 32:] = 200.0
    a = np.zeros((20, 30), np.float32)
    a[5:15, 5:25] = 1.0
    rgba = np.dstack([np.full((20, 30, 3), 120, np.float32) * a[..., None], a])
    new = poisson_colour(canvas, rgba, 20, 20)
    assert new is not None and np.array_equal(new[..., 3], a)
    assert new[10, 6, 0] < new[10, 24, 0]  # left part darker (dark background), right part brighter


@pytest.fixture
def cutout_dir(tmp_path):
    img, m = _photo()
    extract_cutouts([RealSample("p", img, m)], tmp_path / "cuts", min_area=10)
    return tmp_path / "cuts"


def test_mixed_sources_render_labels_equal_to_visible_keys(cutout_dir):
    cfg = dataclasses.replace(SynthConfig.default(), size=64, key_source=f"procedural:0.5,{cutout_dir}:0.5",
                              occluders=False, camera=False, empty_prob=0.0)
    r = SampleRenderer(cfg, backgrounds=make_backgrounds("procedural"))
    sources, modes = [], []
    for i in range(30):
        s = r.render(i, 5, debug=True)
        for k in s["meta"]["keys"]:
            sources.append(k["source"])
            if k.get("kind") == "cutout":
                modes.append(k["blend"]["mode"])
        assert np.array_equal(s["mask"] == 1, s["coverage"] >= 0.5) or s["meta"]["n_keys_visible"] < len(s["meta"]["keys"])
    assert {"procedural", str(cutout_dir)} == set(sources)
    assert len(set(modes)) >= 3


def test_cutout_samples_are_byte_identical_for_1_and_2_workers(cutout_dir, tmp_path):
    from synth.generate import build_renderer, generate_dataset

    cfg = dataclasses.replace(SynthConfig.default(), size=64, key_source=f"procedural:0.5,{cutout_dir}:0.5")
    trees = []
    for w in (1, 2):
        out = tmp_path / f"w{w}"
        generate_dataset(out, n=6, run_seed=3, config=cfg, backgrounds_spec="procedural", workers=w, chunk_size=1,
                         renderer=build_renderer(cfg, "procedural"), progress=False)
        trees.append({p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
                      if p.is_file() and p.parent.name in ("images", "masks")})
    assert len(trees[0]) == 12 and trees[0] == trees[1]
    meta = [json.loads(x) for x in (tmp_path / "w1" / "meta.jsonl").read_text().splitlines()]
    assert any(k.get("kind") == "cutout" for m in meta for k in m["keys"])


def test_trainer_refuses_scoring_photos_the_cutouts_came_from(cutout_dir):
    from real_eval.calibrate import OverlapError
    from train.run_setup import check_cutout_overlap

    img, m = _photo()
    other = RealSample("other", np.full((60, 90, 3), 99, np.uint8), m)
    same_pixels = RealSample("renamed_copy", img, m)
    mix = f"procedural:0.5,{cutout_dir}:0.5"
    check_cutout_overlap([other], mix)  # disjoint: fine
    with pytest.raises(OverlapError, match="renamed_copy.*--allow-overlap"):
        check_cutout_overlap([other, same_pixels], mix)
    check_cutout_overlap([same_pixels], mix, allow=True)


def test_real_crops_are_reproducible_augmented_and_mixed_at_the_asked_rate():
    from train.realcrops import RealCrops, crops_per_batch

    img, m = _photo()
    rc = RealCrops([RealSample("p", img, m)], 32, seed=4)
    a, b = rc.crop(7, 1), rc.crop(7, 1)
    assert a[0].tobytes() == b[0].tobytes() and a[1].tobytes() == b[1].tobytes()
    assert a[0].shape == (32, 32, 3) and a[1].shape == (32, 32) and set(np.unique(a[1])) <= {0, 1, 255}
    crops = [rc.crop(s, 0)[1] for s in range(40)]
    assert sum((c == 1).any() for c in crops) >= 20  # most crops hold key pixels (positive-biased)
    assert sum(crops_per_batch(12, 0.1, s) for s in range(100)) == 120  # 10% of 1,200 samples
