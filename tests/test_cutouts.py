"""Folder cut-outs: RGBA PNGs and image + mask pairs, resize/rotate, clear errors."""

from __future__ import annotations

import pickle

import cv2
import numpy as np
import pytest

from synth.cutouts import CutoutError, FolderCutouts


def _write(path, img):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img)


@pytest.fixture
def folder(tmp_path):
    rgba = np.zeros((60, 140, 4), np.uint8)
    rgba[..., :3] = (40, 160, 220)
    rgba[20:40, 10:130, 3] = 255  # 120 x 20 key
    _write(tmp_path / "bar.png", rgba)
    img = np.full((80, 80, 3), 200, np.uint8)
    mask = np.zeros((80, 80), np.uint8)
    mask[10:70, 35:45] = 1  # 10 x 60 vertical key, 0/1 mask
    _write(tmp_path / "images" / "pair.jpg", img)
    _write(tmp_path / "masks" / "pair.png", mask)
    return tmp_path


def _sample_named(src, name, **kw):
    for seed in range(50):
        rgba, key, meta = src.sample_layers(np.random.default_rng(seed), **kw)
        if meta["name"] == name:
            return rgba, key, meta
    raise AssertionError(f"{name} never sampled")


def test_rgba_png_and_pair(folder):
    src = FolderCutouts(folder)
    assert len(src) == 2
    rgba, key, meta = _sample_named(src, "bar", length_px=60, angle_deg=0, light_dir=(0, 0, 1))
    ys, xs = np.nonzero(rgba[..., 3] > 127)
    assert abs(np.ptp(xs) + 1 - 60) <= 2 and abs(np.ptp(ys) + 1 - 10) <= 2
    assert np.array_equal(key, rgba[..., 3])
    rgba, key, meta = _sample_named(src, "images/pair", length_px=120, angle_deg=90, light_dir=(0, 0, 1))
    ys, xs = np.nonzero(rgba[..., 3] > 127)
    assert abs(np.ptp(xs) + 1 - 120) <= 3 and abs(np.ptp(ys) + 1 - 20) <= 3  # 60 px tall -> 120, rotated 90
    assert rgba[..., 3].max() == 255 and (rgba[..., 3] == 0).any()


def test_small_cut_outs_are_never_enlarged_beyond_max_upscale(folder):
    src = FolderCutouts(folder)
    rgba, _, meta = _sample_named(src, "images/pair", length_px=300, angle_deg=90, max_upscale=1.5)
    ys, xs = np.nonzero(rgba[..., 3] > 127)
    assert abs(np.ptp(xs) + 1 - 90) <= 3  # 60 px key: 1.5x, not 5x
    assert meta["upscale_capped"] and meta["length_px"] == 90.0
    _, _, meta = _sample_named(src, "images/pair", length_px=80, angle_deg=0, max_upscale=1.5)
    assert "upscale_capped" not in meta and meta["length_px"] == 80.0


def test_the_scene_places_a_capped_cut_out_at_the_length_drawn(folder):
    from synth import SampleRenderer, SynthConfig

    cfg = SynthConfig(size=256, key_source=str(folder), backgrounds="procedural", n_keys_range=(1, 1), empty_prob=0.0,
                      key_length_range=(0.7, 0.8), key_length_typical_range=(0.7, 0.8), tiny_key_prob=0.0,
                      occluders=False, camera=False, cutout_max_upscale=1.2)
    r = SampleRenderer(cfg)
    for i in range(6):
        key = r.render(i, 0)["meta"]["keys"][0]
        assert key["length_px"] <= 1.2 * 120 + 1e-6 and key.get("upscale_capped")
        assert r.render(i, 0)["mask"].sum() > 0


def test_deterministic_and_picklable(folder):
    src = FolderCutouts(folder)
    a = src.sample(np.random.default_rng(3), length_px=80, angle_deg=30)[0]
    b = pickle.loads(pickle.dumps(src)).sample(np.random.default_rng(3), length_px=80, angle_deg=30)[0]
    assert a.tobytes() == b.tobytes()


def test_errors_name_the_file(tmp_path):
    with pytest.raises(CutoutError, match="empty"):
        FolderCutouts(tmp_path).sample(np.random.default_rng(0), length_px=50, angle_deg=0)
    with pytest.raises(CutoutError, match="does not exist"):
        len(FolderCutouts(tmp_path / "nope"))
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(CutoutError, match="broken.png"):
        FolderCutouts(tmp_path).sample(np.random.default_rng(0), length_px=50, angle_deg=0)
    (tmp_path / "broken.png").unlink()
    _write(tmp_path / "rgb.png", np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(CutoutError, match="rgb.png.*alpha"):
        FolderCutouts(tmp_path).sample(np.random.default_rng(0), length_px=50, angle_deg=0)
    (tmp_path / "rgb.png").unlink()
    _write(tmp_path / "images" / "lonely.jpg", np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(CutoutError, match="lonely"):
        len(FolderCutouts(tmp_path))


def test_cutouts_flagged_truncated_are_left_out(tmp_path):
    import json

    rgba = np.zeros((20, 40, 4), np.uint8)
    rgba[5:15, 2:38, 3] = 255
    for name in ("whole_k0", "cut_k0"):
        _write(tmp_path / f"{name}.png", rgba)
    rows = [{"file": "whole_k0.png", "truncated": False}, {"file": "cut_k0.png", "truncated": True}]
    (tmp_path / "cutouts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    src = FolderCutouts(tmp_path)
    assert [e[0] for e in src.entries()] == ["whole_k0"] and src.n_truncated == 1
    (tmp_path / "cutouts.jsonl").write_text(json.dumps({"file": "whole_k0.png", "truncated": True}) + "\n"
                                           + json.dumps({"file": "cut_k0.png", "truncated": True}) + "\n")
    assert len(FolderCutouts(tmp_path)) == 2  # only truncated ones: used rather than none
    (tmp_path / "cutouts.jsonl").write_text("{not json\n")
    with pytest.raises(CutoutError, match="cutouts.jsonl line 1"):
        FolderCutouts(tmp_path).entries()
