"""keysynth convert: every source format -> masks / COCO, read back exactly (with ignore)."""

from __future__ import annotations

import argparse
import json

import cv2
import numpy as np
import pytest

from real_eval import commands
from real_eval.convert import convert_dataset
from real_eval.dataset import load_real_set
try:
    from test_readers import make_coco, make_supervisely  # pytest puts tests/ on sys.path (prepend mode)
except ImportError:  # pragma: no cover - run as a package
    from tests.test_readers import make_coco, make_supervisely


def _run(argv):
    parser = argparse.ArgumentParser(prog="keysynth")
    commands.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.mark.parametrize("make", [make_coco, lambda root: make_supervisely(root, "new")])
@pytest.mark.parametrize("to", ["masks", "coco"])
def test_convert_round_trip(tmp_path, make, to):
    src, out = tmp_path / "src", tmp_path / "out"
    make(src)
    original = load_real_set(src)
    summary = convert_dataset(src, out, to=to)
    assert summary["n_images"] == len(original)
    back = load_real_set(out)
    assert [s.name for s in back] == [s.name for s in original]
    for a, b in zip(original, back):
        assert np.array_equal(a.image, b.image)
        assert np.array_equal(a.mask, b.mask)  # key and ignore regions survive exactly
        assert (b.mask == 255).any()


def test_mask_folder_output_values(tmp_path):
    make_coco(tmp_path / "src")
    convert_dataset(tmp_path / "src", tmp_path / "out", to="masks")
    m = cv2.imread(str(tmp_path / "out" / "masks" / "a.png"), cv2.IMREAD_UNCHANGED)
    ign = cv2.imread(str(tmp_path / "out" / "ignore" / "a.png"), cv2.IMREAD_UNCHANGED)
    assert m.dtype == np.uint8 and m.ndim == 2 and set(np.unique(m).tolist()) == {0, 255}
    assert set(np.unique(ign).tolist()) == {0, 255} and not np.any((m == 255) & (ign == 255))
    # images are copied byte for byte
    assert (tmp_path / "out" / "images" / "a.png").read_bytes() == (tmp_path / "src" / "images" / "a.png").read_bytes()
    assert not list((tmp_path / "out").rglob("*.tmp*"))


def test_coco_output_is_compressed_rle(tmp_path):
    make_coco(tmp_path / "src")
    convert_dataset(tmp_path / "src", tmp_path / "out", to="coco")
    doc = json.loads((tmp_path / "out" / "annotations.json").read_text())
    assert {c["name"] for c in doc["categories"]} == {"key", "__ignore__"}
    key_ann = [a for a in doc["annotations"] if a["category_id"] == 1][0]
    assert isinstance(key_ann["segmentation"]["counts"], str)
    assert key_ann["area"] == 16 + 9 + 2  # polygon 4x4 + RLE 3x3 + 2 px


def test_convert_cli_with_classes_and_from(tmp_path):
    make_coco(tmp_path / "src")
    rc = _run(["convert", str(tmp_path / "src"), "--to", "masks", "--out", str(tmp_path / "out"),
               "--from", "coco", "--classes", "key_ring"])
    assert rc == 0
    [s] = load_real_set(tmp_path / "out")
    assert (s.mask == 1).sum() == 8
    with pytest.raises(ValueError, match="valid names"):
        _run(["convert", str(tmp_path / "src"), "--to", "masks", "--out", str(tmp_path / "o2"), "--from", "voc"])
