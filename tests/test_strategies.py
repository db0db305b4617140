"""Tests for real_eval.strategies / tiling / coarse_to_fine with cheap fake models.

Fake models are 1x1 convolutions: their logits are a fixed per-pixel function of the input, so
they are resolution independent and tiled output must equal whole-image output.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from real_eval.coarse_to_fine import find_regions, predict_coarse_to_fine, resize_probs
from real_eval.model_io import to_input_tensor
from real_eval.strategies import STRATEGIES, capped_tile_scale, predict_probs
from real_eval.tiling import predict_tiles, tile_starts

torch.set_num_threads(1)


def red_model() -> torch.nn.Module:
    """Logit = 2.5 * normalised red - 0.3 (a 1x1 conv of the red channel)."""
    conv = torch.nn.Conv2d(3, 1, 1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 0, 0] = 2.5
        conv.bias.fill_(-0.3)
    return conv.eval()


def brightness_model() -> torch.nn.Module:
    """With mean 0 / std 1: logit = 20 * (grey - 0.5), grey in [0, 1] (a brightness threshold)."""
    conv = torch.nn.Conv2d(3, 1, 1)
    with torch.no_grad():
        conv.weight.fill_(20.0 / 3.0)
        conv.bias.fill_(-10.0)
    return conv.eval()


SPEC = {"image_size": 64, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
PLAIN_SPEC = {"image_size": 256, "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}


def full_image_probs(model, spec, image):
    with torch.no_grad():
        return torch.sigmoid(model(to_input_tensor(image, spec)))[0, 0].numpy()


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.logical_and(a, b).sum() / max(1, np.logical_or(a, b).sum()))


@pytest.mark.parametrize("shape,tile,batch", [((300, 410), 64, 3), ((50, 40), 64, 8), ((64, 200), 64, 1)])
def test_tiles_reassemble_pointwise_model_exactly(shape, tile, batch):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    model = red_model()
    got = predict_probs(model, SPEC, image, strategy="tiles", tile_size=tile, batch_size=batch, overlap=0.25)
    want = full_image_probs(model, SPEC, image)
    assert got.dtype == np.float32 and got.shape == shape
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


def test_tiles_overlap_grid_covers_image():
    starts = tile_starts(1000, 256, 0.25)
    assert starts[0] == 0 and starts[-1] == 1000 - 256
    assert np.all(np.diff(starts) <= 192)  # at least 25 % overlap
    assert list(tile_starts(100, 256, 0.5)) == [0]


def test_tiles_scaled_close_to_full_image_on_smooth_photo():
    yy, xx = np.mgrid[0:333, 0:500]
    image = np.stack([(xx * 255 // 499), (yy * 255 // 332), np.full_like(xx, 90)], -1).astype(np.uint8)
    model = red_model()
    got = predict_tiles(model, SPEC, image, tile_size=64, tile_scale=0.5, overlap=0.3)
    np.testing.assert_allclose(got, full_image_probs(model, SPEC, image), atol=0.02)


def test_tiles_scale_a_photo_above_the_max_side_down_to_it():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (150, 600, 3), dtype=np.uint8)
    model = red_model()
    capped = predict_probs(model, SPEC, image, strategy="tiles", tile_size=64, tile_max_side=300)
    np.testing.assert_array_equal(capped, predict_tiles(model, SPEC, image, tile_size=64, tile_scale=0.5))
    native = predict_probs(model, SPEC, image, strategy="tiles", tile_size=64, tile_max_side=None)
    np.testing.assert_array_equal(native, predict_tiles(model, SPEC, image, tile_size=64, tile_scale=1.0))
    assert np.abs(capped - native).max() > 0.05  # the random texture is blurred by the scaling
    assert capped_tile_scale((150, 600, 3), 1.0, 600) == 1.0 and capped_tile_scale((150, 600), 0.5, 200) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="tile_max_side"):
        predict_probs(model, SPEC, image, strategy="tiles", tile_max_side=0)


def key_photo(h=3000, w=4000, top=1400, left=2100):
    """Dark photo with one bright 120x30 px 'key': a 20 px blade + 10 px of 5 px teeth/gaps."""
    image = np.full((h, w, 3), 40, np.uint8)
    mask = np.zeros((h, w), bool)
    mask[top: top + 20, left: left + 120] = True
    for x in range(left, left + 120, 10):
        mask[top + 20: top + 30, x: x + 5] = True
    image[mask] = 230
    return image, mask


def test_coarse_to_fine_recovers_small_key_in_large_photo():
    image, mask = key_photo()
    model = brightness_model()
    coarse = predict_probs(model, PLAIN_SPEC, image, strategy="resize")
    fine = predict_probs(model, PLAIN_SPEC, image, strategy="coarse-to-fine")
    assert fine.shape == mask.shape and fine.dtype == np.float32
    assert 0.0 <= fine.min() and fine.max() <= 1.0
    iou_coarse, iou_fine = iou(coarse >= 0.5, mask), iou(fine >= 0.5, mask)
    assert iou_fine > 0.9, (iou_coarse, iou_fine)
    assert iou_coarse < 0.8, (iou_coarse, iou_fine)  # resize alone loses the teeth
    regions = find_regions(coarse, image_size=256)
    assert len(regions) == 1
    y0, x0, y1, x1 = regions[0]
    assert y0 <= 1400 and x0 <= 2100 and y1 >= 1430 and x1 >= 2220  # the key lies inside its region
    assert (y1 - y0) * (x1 - x0) < 0.01 * mask.size  # and the region is small
    far = np.ones_like(mask)
    far[y0:y1, x0:x1] = False
    np.testing.assert_array_equal(fine[far], coarse[far])  # outside: the coarse map


def test_coarse_to_fine_two_keys_and_photo_border():
    image, mask = key_photo(h=1500, w=2000, top=0, left=1880)  # touches the top and right border
    _, mask2 = key_photo(h=1500, w=2000, top=1000, left=300)
    image[mask2] = 230
    both = mask | mask2
    model = brightness_model()
    coarse = resize_probs(model, PLAIN_SPEC, image)
    assert len(find_regions(coarse, image_size=256)) == 2
    fine = predict_coarse_to_fine(model, PLAIN_SPEC, image)
    assert iou(fine >= 0.5, both) > 0.9


def test_coarse_to_fine_without_candidates_is_resize():
    image = np.full((400, 600, 3), 30, np.uint8)
    model = brightness_model()
    np.testing.assert_array_equal(
        predict_probs(model, PLAIN_SPEC, image, strategy="coarse-to-fine"),
        predict_probs(model, PLAIN_SPEC, image, strategy="resize"),
    )


def test_find_regions_merges_overlapping_boxes_and_drops_specks():
    coarse = np.zeros((512, 512), np.float32)
    coarse[100:120, 100:160] = 0.9
    coarse[125:140, 150:200] = 0.8  # its grown box overlaps the first one
    coarse[400, 400] = 0.9  # a 1 px speck
    regions = find_regions(coarse, image_size=512, min_region_px=4)
    assert len(regions) == 1
    y0, x0, y1, x1 = regions[0]
    assert y0 <= 100 and x0 <= 100 and y1 >= 140 and x1 >= 200
    assert len(find_regions(coarse, image_size=512, min_region_px=1)) == 2
    assert len(find_regions(coarse, image_size=512, min_region_px=1, max_regions=1)) == 1


def test_unknown_strategy_lists_valid_names():
    image = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError) as err:
        predict_probs(red_model(), SPEC, image, strategy="sliding")
    for name in STRATEGIES:
        assert name in str(err.value)


@pytest.mark.parametrize("kwargs", [{"overlap": 1.0}, {"tile_scale": 0.0}, {"batch_size": 0}])
def test_bad_tile_parameters_raise(kwargs):
    with pytest.raises(ValueError):
        predict_probs(red_model(), SPEC, np.zeros((8, 8, 3), np.uint8), strategy="tiles", **kwargs)


def test_bad_image_and_bad_model_output_raise():
    with pytest.raises(ValueError, match="uint8 RGB"):
        predict_probs(red_model(), SPEC, np.zeros((8, 8), np.uint8), strategy="tiles")
    two_class = torch.nn.Conv2d(3, 2, 1)
    with pytest.raises(ValueError, match="classes=1"):
        predict_probs(two_class, SPEC, np.zeros((8, 8, 3), np.uint8), strategy="tiles")


_MEMORY_SCRIPT = textwrap.dedent(
    """
    import json, resource, sys
    import numpy as np, torch
    torch.set_num_threads(1)
    from real_eval.tiling import predict_tiles
    h, w = 6144, 8192  # 50.3 megapixels
    image = np.zeros((h, w, 3), np.uint8)
    image[:, :, 0] = (np.arange(w) % 256).astype(np.uint8)
    conv = torch.nn.Conv2d(3, 1, 1)
    spec = {"image_size": 256, "mean": [0.5] * 3, "std": [0.25] * 3}
    kw = dict(tile_size=256, tile_scale=0.25, overlap=0.25, batch_size=4)
    predict_tiles(conv, spec, image[:1024, :1024], **kw)  # warm-up: thread pools, allocator
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = predict_tiles(conv, spec, image, **kw)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    ok = out.shape == (h, w) and out.dtype == np.float32 and 0 <= float(out.min()) <= float(out.max()) <= 1
    print(json.dumps({"growth_kb": after - before, "pixels": h * w, "ok": bool(ok)}))
    """
)


def test_tiles_memory_bounded_for_50_megapixel_photo():
    """Peak RSS growth of a 50 MP tiled prediction <= 4 bytes/px (the result) + 64 MB."""
    res = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout.strip().splitlines()[-1])
    assert report["ok"]
    bound_kb = (4 * report["pixels"] + 64 * 2**20) / 1024
    assert report["growth_kb"] <= bound_kb, report


def test_coarse_to_fine_grows_region_to_thin_blade_missed_by_coarse_pass():
    # A 40x40 px bright bow (found by the coarse pass) + a 45x3 px blade (invisible at 1/16 scale).
    image = np.full((3000, 4000, 3), 40, np.uint8)
    bow = np.zeros((3000, 4000), bool)
    bow[1500:1540, 2000:2040] = True
    blade = np.zeros_like(bow)
    blade[1519:1522, 2040:2085] = True
    image[bow | blade] = 230
    model = brightness_model()
    coarse = resize_probs(model, PLAIN_SPEC, image)
    assert (coarse[blade] >= 0.5).mean() < 0.5  # the coarse pass misses most of the blade
    fine = predict_coarse_to_fine(model, PLAIN_SPEC, image)
    assert (fine[blade] >= 0.5).mean() > 0.95
    assert iou(fine >= 0.5, bow | blade) > 0.9


def test_bench_script_runs_every_strategy(tmp_path):
    import importlib.util

    import cv2

    from real_eval.model_io import build_model, default_model_spec

    root = tmp_path / "real"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(2):
        image, mask = key_photo(h=96, w=128, top=30 + 10 * i, left=10)
        cv2.imwrite(str(root / "images" / f"p{i}.png"), image)
        cv2.imwrite(str(root / "masks" / f"p{i}.png"), mask.astype(np.uint8) * 255)
    spec = default_model_spec(image_size=64)
    torch.save({"model": build_model(spec).state_dict(), "model_spec": spec}, tmp_path / "ck.pt")
    path = __import__("pathlib").Path(__file__).resolve().parents[1] / "bench" / "bench_strategies.py"
    mod_spec = importlib.util.spec_from_file_location("bench_strategies", path)
    bench = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(bench)
    out = tmp_path / "b.json"
    assert bench.main(["--checkpoint", str(tmp_path / "ck.pt"), "--real-set", str(root), "--tile-scale", "1", "0.5",
                       "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert {r["strategy"] for r in report["rows"]} == {"resize", "tiles@1", "tiles@0.5", "coarse-to-fine"}
    assert len(report["rows"]) == 8
    assert all(0.0 <= r["iou"] <= 1.0 and r["s_per_mp"] > 0 for r in report["rows"])
    assert report["summary"]["resize"]["all"]["n"] == 2
