"""Output formats: WebDataset shards and COCO instance JSON, read back with their own libraries."""

from __future__ import annotations

import json
import tarfile

import cv2
import numpy as np
import pytest

from synth.writers import WRITERS, make_writer
from synth.writers.coco import instance_annotations
from synth.writers.encoding import encode_jpeg, encode_png
from test_generate import FakeRenderer, run, tree_bytes

SEED = 7
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools")


def decode_png(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)


# ---------------------------------------------------------------------------------- webdataset


def test_webdataset_shards_read_back_with_tarfile(tmp_path):
    out = tmp_path / "wds"
    summary = run(out, n=25, fmt="webdataset", shard_size=10)
    assert "shard-{000000..000002}.tar" in summary["files"]
    shards = sorted(out.glob("shard-*.tar"))
    assert [p.name for p in shards] == ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    ref = FakeRenderer()
    seen = []
    for k, shard in enumerate(shards):
        with tarfile.open(shard) as tar:
            members = tar.getmembers()
            assert all(m.mtime == 0 and m.uid == 0 and m.mode == 0o444 for m in members)
            keys = sorted({m.name.split(".")[0] for m in members})
            assert keys == [f"{i:08d}" for i in range(10 * k, min(25, 10 * k + 10))]  # shard k = [kS, (k+1)S)
            for key in keys:
                i = int(key)
                sample = ref.render(i, SEED)
                np.testing.assert_array_equal(decode_png(tar.extractfile(key + ".png").read()), sample["mask"])
                assert json.loads(tar.extractfile(key + ".json").read()) == sample["meta"]
                image = cv2.imdecode(np.frombuffer(tar.extractfile(key + ".jpg").read(), np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
                assert np.abs(image.astype(int) - sample["image"]).mean() < 4
                seen.append(i)
    assert seen == list(range(25))


def test_webdataset_shards_read_back_with_the_webdataset_package(tmp_path):
    wds = pytest.importorskip("webdataset")
    out = tmp_path / "wds"
    run(out, n=12, fmt="webdataset", shard_size=5)
    urls = [str(p) for p in sorted(out.glob("shard-*.tar"))]
    ref = FakeRenderer()
    keys = []
    for sample in wds.WebDataset(urls, shardshuffle=False, empty_check=False):
        i = int(sample["__key__"])
        keys.append(i)
        expected = ref.render(i, SEED)
        np.testing.assert_array_equal(decode_png(sample["png"]), expected["mask"])
        assert json.loads(sample["json"]) == expected["meta"]
        assert sample["jpg"] == encode_jpeg(expected["image"])
    assert keys == list(range(12))


def test_webdataset_bytes_identical_across_workers_and_resume_per_shard(tmp_path):
    run(tmp_path / "a", n=30, fmt="webdataset", shard_size=8, workers=1)
    run(tmp_path / "b", n=30, fmt="webdataset", shard_size=8, workers=2)
    reference = tree_bytes(tmp_path / "a")
    assert reference == tree_bytes(tmp_path / "b")
    (tmp_path / "b" / "shard-000002.tar").unlink()  # a lost shard is redone, nothing else
    renderer = FakeRenderer()
    run(tmp_path / "b", n=30, fmt="webdataset", shard_size=8, renderer=renderer)
    assert sorted(renderer.calls) == list(range(16, 24))
    assert tree_bytes(tmp_path / "b") == reference


# ---------------------------------------------------------------------------------------- COCO


def _coco_masks(out):
    from pycocotools.coco import COCO

    coco = COCO(str(out / "annotations.json"))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["key"]
    return coco


@pytest.mark.parametrize("segmentation", ["rle", "polygon"])
def test_coco_read_back_with_pycocotools_matches_instances(tmp_path, segmentation):
    out = tmp_path / "coco"
    run(out, n=16, fmt="coco", coco_segmentation=segmentation)
    coco = _coco_masks(out)
    ref = FakeRenderer()
    assert sorted(coco.getImgIds()) == list(range(1, 17))
    n_poly = n_rle = 0
    for img_id in coco.getImgIds():
        info = coco.loadImgs(img_id)[0]
        i = img_id - 1
        assert info["file_name"] == f"images/{i:08d}.jpg" and (out / info["file_name"]).is_file()
        assert (info["height"], info["width"]) == (48, 48)
        sample = ref.render(i, SEED)
        inst, mask = sample["instances"], sample["mask"]
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img_id))
        labels = [a["instance"] for a in anns]
        assert labels == sorted(int(v) for v in np.unique(inst) if v)  # every visible key, once
        if i % 4 == 0:
            assert 1 not in labels  # fully covered key dropped (Simple Copy-Paste rule)
        union = np.zeros(mask.shape, np.uint8)
        for ann in anns:
            truth = inst == ann["instance"]
            decoded = coco.annToMask(ann)
            assert ann["area"] == int(truth.sum())
            ys, xs = np.nonzero(truth)
            assert ann["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
            assert not np.any(union & decoded), "visible instance masks overlap"
            union |= decoded
            if isinstance(ann["segmentation"], dict):
                n_rle += 1
            else:
                n_poly += 1
            # RLE is pixel-exact; polygons trace pixel outlines so they decode to the same pixels
            np.testing.assert_array_equal(decoded.astype(bool), truth)
        np.testing.assert_array_equal(union.astype(bool), inst > 0)
        outside_band = mask != 255
        np.testing.assert_array_equal(union[outside_band], mask[outside_band])  # union == mask
    if segmentation == "rle":
        assert n_poly == 0 and n_rle > 16
    else:
        assert n_poly > 0 and n_rle > 0  # discs as polygons, the holed ring as RLE


def test_coco_polygon_mode_uses_rle_for_holes_and_splits_pieces():
    inst = np.zeros((40, 40), np.uint16)
    cv2.circle(inst, (12, 12), 8, 1, -1)
    cv2.circle(inst, (12, 12), 3, 0, -1)  # bow hole
    inst[25:35, 2:8] = 2
    inst[25:35, 20:30] = 2  # key 2 cut in two pieces by an occluder
    anns = instance_annotations(inst, segmentation="polygon")
    assert [a["instance"] for a in anns] == [1, 2]
    assert isinstance(anns[0]["segmentation"], dict) and set(anns[0]["segmentation"]) == {"size", "counts"}
    assert isinstance(anns[1]["segmentation"], list) and len(anns[1]["segmentation"]) == 2
    assert anns[1]["area"] == 160 and anns[1]["bbox"] == [2.0, 25.0, 28.0, 10.0]
    with pytest.raises(ValueError, match="valid: polygon, rle"):
        instance_annotations(inst, segmentation="mask")


def test_folder_with_coco_flag_matches_coco_format(tmp_path):
    run(tmp_path / "a", n=10, fmt="coco")
    run(tmp_path / "b", n=10, fmt="folder", coco=True)
    assert (tmp_path / "a" / "annotations.json").read_bytes() == (tmp_path / "b" / "annotations.json").read_bytes()
    assert not (tmp_path / "c").exists()
    run(tmp_path / "c", n=4, fmt="folder")
    assert not (tmp_path / "c" / "annotations.json").exists()


def test_coco_needs_instances(tmp_path):
    class NoInstances(FakeRenderer):
        def render(self, index, run_seed):
            sample = super().render(index, run_seed)
            del sample["instances"]
            return sample

    with pytest.raises(ValueError, match="instances"):
        run(tmp_path / "x", n=4, fmt="coco", renderer=NoInstances())


# ------------------------------------------------------------------------------ registry/encoding


def test_registry_errors_list_valid_names():
    assert set(WRITERS) == {"folder", "webdataset", "coco"}
    with pytest.raises(ValueError, match="valid formats: folder, webdataset, coco"):
        make_writer("parquet")
    with pytest.raises(ValueError, match="--format coco"):
        make_writer("webdataset", coco=True)


def test_encoders_are_deterministic_and_lossless_for_masks():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)
    mask = rng.choice(np.array([0, 1, 255], np.uint8), size=(32, 40))
    assert encode_jpeg(image) == encode_jpeg(image.copy())
    assert encode_png(mask) == encode_png(mask.copy())
    np.testing.assert_array_equal(decode_png(encode_png(mask)), mask)
    with pytest.raises(ValueError, match="uint8"):
        encode_jpeg(image.astype(np.float32))
    with pytest.raises(ValueError, match="0, 1 or 255"):
        from synth.writers.encoding import check_sample

        check_sample({"image": image, "mask": (mask % 7).astype(np.uint8) + 2, "meta": {"seed": 1}}, 3)


def test_mask_and_instances_must_agree(tmp_path):
    class Inconsistent(FakeRenderer):
        def render(self, index, run_seed):
            sample = super().render(index, run_seed)
            sample["instances"][0, 0] = 9 if sample["mask"][0, 0] == 0 else 0
            return sample

    with pytest.raises(ValueError, match="mask and instances disagree"):
        run(tmp_path / "x", n=2, fmt="coco", renderer=Inconsistent())
