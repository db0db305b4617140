"""Hostile or damaged inputs: path escapes, non-finite coordinates, symlinks out of the dataset,
decompression bombs, overwrites, name collisions, unreadable photos, damaged resume outputs."""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import struct
import zlib
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from real_eval import commands
from real_eval.convert import convert_dataset
from real_eval.dataset import RealSample, check_sample_name, load_real_set, output_file
from real_eval.readers.base import AnnotationError, sample_name
from synth.generate import STATE_DIR
from test_generate import FakeRenderer, run, tree_bytes
from test_readers import H, W, cvat_xml, make_coco, png_bytes, sly_bitmap, write_image

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools")


def _cli(argv) -> int:
    parser = argparse.ArgumentParser(prog="keysynth")
    commands.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() or p.is_symlink()}


# ------------------------------------------------------------------------- names and out paths
def _cvat_two_subsets(root: Path, subset: str) -> None:
    """Two subsets; image 0's name climbs back from ``images/<subset>`` to ``images/a.png``, so the
    image is found inside the dataset while the subset alone points far out of it."""
    write_image(root / "images" / "a.png")
    write_image(root / "images" / "b" / "a.png")
    base = os.path.normpath(os.path.abspath(root / "images" / subset.replace("\\", "/")))
    name = os.path.relpath(os.path.abspath(root / "images" / "a.png"), base)
    images = (f'<image id="0" name="{name}" subset="{subset}" width="{W}" height="{H}"></image>'
              f'<image id="1" name="a.png" subset="b" width="{W}" height="{H}"></image>')
    (root / "annotations.xml").write_text(cvat_xml(images))


@pytest.mark.parametrize("subset", ["../../../..", "x/../..", "..", "a\\b"])
@pytest.mark.parametrize("to", ["masks", "coco"])
def test_cvat_subset_that_is_a_path_is_refused_and_nothing_leaves_out(tmp_path, subset, to):
    src, out = tmp_path / "deep" / "er" / "src", tmp_path / "deep" / "er" / "out"
    _cvat_two_subsets(src, subset)
    before = _files(tmp_path)
    with pytest.raises(AnnotationError, match=r"annotations\.xml.*image\[0\]@subset.*not a plain folder name"):
        _cli(["convert", str(src), "--to", to, "--out", str(out)])
    assert _files(tmp_path) == before


def test_sample_names_are_plain_file_names(tmp_path):
    assert sample_name(["ds/x", "..", "a\\b", "", "c\nd"]) == "ds_x__..__a_b__c_d"
    img, m = np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.uint8)
    for bad in ("../x", "a/b", "..", "", "a\\b", "a\x00b"):
        with pytest.raises(ValueError, match="sample name"):
            RealSample(bad, img, m)
    assert check_sample_name("photo.jpg") == "photo.jpg"
    with pytest.raises(ValueError, match="sample name"):
        output_file(tmp_path / "out", "masks", "../../x.png")
    (tmp_path / "out").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "out" / "masks").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ValueError, match="outside the output folder"):
        output_file(tmp_path / "out", "masks", "a.png")


class _RedLogit:
    """Stand-in model: logit = 4 x normalised red channel (torch module built lazily)."""

    @staticmethod
    def build():
        import torch

        class M(torch.nn.Module):
            def forward(self, x):
                return x[:, :1] * 4.0

        return M().eval()


def _spec():
    return {"image_size": 32, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "arch": "test", "encoder_name": "none"}


def test_evaluate_refuses_an_overlay_name_that_leaves_out(tmp_path):
    from real_eval.evaluate import evaluate_model

    s = SimpleNamespace(name="../../escaped", image=np.zeros((8, 8, 3), np.uint8), mask=np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="sample name"):
        evaluate_model(_RedLogit.build(), _spec(), [s], strategy="resize", n_boot=5, out_dir=tmp_path / "a" / "ev")
    assert _files(tmp_path) == set()


# ------------------------------------------------------------------------- non-finite coordinates
def _coco_doc(seg=None, bbox=None) -> dict:
    ann = {"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0}
    if seg is not None:
        ann["segmentation"] = seg
    if bbox is not None:
        ann["bbox"] = bbox
    return {"images": [{"id": 1, "file_name": "a.png", "height": H, "width": W}], "annotations": [ann],
            "categories": [{"id": 1, "name": "key"}]}


def _write_coco(root: Path, doc: dict) -> None:
    write_image(root / "images" / "a.png")
    (root / "ann.json").write_text(json.dumps(doc))  # json writes NaN / Infinity


def _write_cvat(root: Path, shape: str) -> None:
    write_image(root / "images" / "a.png")
    (root / "annotations.xml").write_text(cvat_xml(f'<image id="0" name="a.png" width="{W}" height="{H}">{shape}</image>'))


def _write_labelme(root: Path, points) -> None:
    write_image(root / "a.png")
    doc = {"shapes": [{"label": "key", "shape_type": "polygon", "points": points}], "imagePath": "a.png",
           "imageData": None, "imageHeight": H, "imageWidth": W}
    (root / "a.json").write_text(json.dumps(doc))


def _write_sly(root: Path, obj: dict) -> None:
    write_image(root / "ds" / "img" / "a.png")
    (root / "meta.json").write_text(json.dumps({"classes": [{"title": "key", "shape": "any"}]}))
    (root / "ds" / "ann").mkdir(parents=True)
    ann = {"size": {"height": H, "width": W}, "tags": [], "objects": [dict(obj, classTitle="key")]}
    (root / "ds" / "ann" / "a.png.json").write_text(json.dumps(ann))


NAN, INF = float("nan"), float("inf")
BAD_COORDS = {
    "coco-polygon-nan": (lambda r: _write_coco(r, _coco_doc(seg=[[1, 1, NAN, 1, 5, 5]])), "not a finite"),
    "coco-polygon-far": (lambda r: _write_coco(r, _coco_doc(seg=[[1, 1, 1e12, 1, 5, 5]])), "far outside"),
    "coco-bbox-inf": (lambda r: _write_coco(r, _coco_doc(bbox=[0, 0, INF, 3])), "not a finite"),
    "coco-rle-inf": (lambda r: _write_coco(r, _coco_doc(seg={"size": [H, W], "counts": [INF]})), "non-negative integers"),
    "coco-category-inf": (lambda r: _write_coco(r, dict(_coco_doc(bbox=[0, 0, 2, 2]), annotations=[
        {"id": 1, "image_id": 1, "category_id": INF, "bbox": [0, 0, 2, 2]}])), "category_id"),
    "cvat-polygon-nan": (lambda r: _write_cvat(r, '<polygon label="key" points="1,1;nan,1;5,5"/>'), "not a finite"),
    "cvat-polygon-far": (lambda r: _write_cvat(r, '<polygon label="key" points="1,1;-1e12,1;5,5"/>'), "far outside"),
    "cvat-box-inf": (lambda r: _write_cvat(r, '<box label="key" xtl="0" ytl="0" xbr="inf" ybr="3"/>'), "not a finite"),
    "cvat-ellipse-nan": (lambda r: _write_cvat(r, '<ellipse label="key" cx="3" cy="3" rx="nan" ry="2"/>'), "not a finite"),
    "cvat-rotation-inf": (lambda r: _write_cvat(r, '<box label="key" xtl="0" ytl="0" xbr="3" ybr="3" rotation="inf"/>'),
                          "rotation"),
    "cvat-mask-left-inf": (lambda r: _write_cvat(r, '<mask label="key" rle="0, 1" left="inf" top="0" width="1" height="1"/>'),
                           "left"),
    "cvat-mask-rle-inf": (lambda r: _write_cvat(r, '<mask label="key" rle="0, inf" left="0" top="0" width="1" height="1"/>'),
                          "rle"),
    "labelme-nan": (lambda r: _write_labelme(r, [[1, 1], [NAN, 1], [5, 5]]), "not a finite"),
    "labelme-far": (lambda r: _write_labelme(r, [[1, 1], [1e12, 1], [5, 5]]), "far outside"),
    "sly-polygon-nan": (lambda r: _write_sly(r, {"geometryType": "polygon",
                                                 "points": {"exterior": [[1, 1], [NAN, 1], [5, 5]], "interior": []}}),
                        "not a finite"),
    "sly-rectangle-far": (lambda r: _write_sly(r, {"geometryType": "rectangle",
                                                   "points": {"exterior": [[0, 0], [1e12, 3]], "interior": []}}),
                          "far outside"),
    "sly-origin-inf": (lambda r: _write_sly(r, {"geometryType": "bitmap", "bitmap": {
        "data": sly_bitmap(np.ones((2, 2), bool), False), "origin": [INF, 0]}}), "origin"),
}


@pytest.mark.parametrize("case", sorted(BAD_COORDS))
def test_non_finite_or_far_coordinates_are_clear_errors(tmp_path, case):
    make, expected = BAD_COORDS[case]
    make(tmp_path)
    with pytest.raises(AnnotationError, match=expected) as err:
        load_real_set(tmp_path)
    assert str(tmp_path) in str(err.value)  # names the annotation file


# ------------------------------------------------------------------------- symlinks out of the set
def test_coco_file_name_symlinked_outside_is_refused(tmp_path):
    outside = tmp_path / "private" / "secret.png"
    write_image(outside)
    src = tmp_path / "src"
    make_coco(src)
    (src / "images" / "a.png").unlink()
    (src / "images" / "a.png").symlink_to(outside)
    with pytest.raises(AnnotationError, match=r"images\[0\]\.file_name.*symlink.*outside the dataset folder"):
        load_real_set(src)


def test_symlink_inside_the_dataset_is_accepted(tmp_path):
    src = tmp_path / "src"
    make_coco(src)
    (src / "images" / "a.png").rename(src / "images" / "real.png")
    (src / "images" / "a.png").symlink_to("real.png")
    assert len(load_real_set(src)) == 1


def test_mask_folder_image_or_mask_symlinked_outside_is_refused(tmp_path):
    outside = tmp_path / "private.png"
    write_image(outside)
    root = tmp_path / "set"
    (root / "masks").mkdir(parents=True)
    (root / "images").mkdir()
    cv2.imwrite(str(root / "masks" / "p.png"), np.zeros((H, W), np.uint8))
    (root / "images" / "p.png").symlink_to(outside)
    with pytest.raises(ValueError, match=r"images/p\.png is a symlink.*outside the dataset folder"):
        load_real_set(root, fmt="masks")
    (root / "images" / "p.png").unlink()
    write_image(root / "images" / "p.png")
    (root / "masks" / "p.png").unlink()
    cv2.imwrite(str(tmp_path / "m.png"), np.zeros((H, W), np.uint8))
    (root / "masks" / "p.png").symlink_to(tmp_path / "m.png")
    with pytest.raises(ValueError, match=r"masks/p\.png is a symlink"):
        load_real_set(root, fmt="masks")


# ------------------------------------------------------------------------- decompression bombs
def _png_header_only(w: int, h: int) -> bytes:
    """A PNG claiming w x h (1-bit grey) whose pixel data is never reached: header check only."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def test_supervisely_bitmap_larger_than_its_image_is_refused_before_decoding(tmp_path):
    data = base64.b64encode(zlib.compress(_png_header_only(20000, 20000))).decode()
    _write_sly(tmp_path, {"geometryType": "bitmap", "bitmap": {"data": data, "origin": [0, 0]}})
    with pytest.raises(AnnotationError, match=r"bitmap\.data.*20000x20000 px, larger than the 12x10 image"):
        load_real_set(tmp_path)


def test_supervisely_zlib_bomb_is_refused(tmp_path):
    data = base64.b64encode(zlib.compress(b"\0" * (8 << 20), 9)).decode()
    _write_sly(tmp_path, {"geometryType": "bitmap", "bitmap": {"data": data, "origin": [0, 0]}})
    with pytest.raises(AnnotationError, match="inflates to more than"):
        load_real_set(tmp_path)


def test_cvat_mask_box_larger_than_the_image_is_refused(tmp_path):
    _write_cvat(tmp_path, '<mask label="key" rle="0, 10000000000" left="0" top="0" width="100000" height="100000"/>')
    with pytest.raises(AnnotationError, match=r"mask\[0\]@width/height.*100000x100000 px, larger than the 12x10 image"):
        load_real_set(tmp_path)


def test_labelme_mask_png_larger_than_the_image_is_refused(tmp_path):
    write_image(tmp_path / "a.png")
    big = base64.b64encode(_png_header_only(20000, 20000)).decode()
    doc = {"shapes": [{"label": "key", "shape_type": "mask", "points": [[0, 0], [3, 3]], "mask": big}],
           "imagePath": "a.png", "imageData": None, "imageHeight": H, "imageWidth": W}
    (tmp_path / "a.json").write_text(json.dumps(doc))
    with pytest.raises(AnnotationError, match=r"shapes\[0\]\.mask.*larger than the 12x10 image"):
        load_real_set(tmp_path)


# ------------------------------------------------------------------------- convert --overwrite
def test_convert_refuses_to_overwrite_without_the_flag(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    make_coco(src)
    assert _cli(["convert", str(src), "--to", "masks", "--out", str(out)]) == 0
    [name] = [p.name for p in (out / "masks").iterdir()]
    hand_drawn = png_bytes(np.full((H, W), 255, np.uint8))
    (out / "masks" / name).write_bytes(hand_drawn)
    for to in ("masks", "coco"):
        with pytest.raises(FileExistsError, match=r"already holds .*images/.*--overwrite"):
            _cli(["convert", str(src), "--to", to, "--out", str(out)])
    assert (out / "masks" / name).read_bytes() == hand_drawn and not (out / "annotations.json").exists()
    assert _cli(["convert", str(src), "--to", "masks", "--out", str(out), "--overwrite"]) == 0
    assert (out / "masks" / name).read_bytes() != hand_drawn


def test_convert_into_a_folder_with_unrelated_files_and_stale_ignore(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    make_coco(src)
    (out / "notes").mkdir(parents=True)
    (out / "notes" / "readme.txt").write_text("mine")
    convert_dataset(src, out, to="masks")  # unrelated files do not block
    [s] = load_real_set(src)
    assert (out / "ignore" / f"{s.name}.png").is_file()
    jf = src / "annotations" / "instances.json"
    doc = json.loads(jf.read_text())
    ign = {c["id"] for c in doc["categories"] if c["name"] in ("__ignore__", "ignore")}
    doc["annotations"] = [a for a in doc["annotations"] if a["category_id"] not in ign]
    jf.write_text(json.dumps(doc))
    convert_dataset(src, out, to="masks", overwrite=True)
    assert not (out / "ignore" / f"{s.name}.png").exists()  # the old ignore region would corrupt the set
    [back] = load_real_set(out)
    assert np.array_equal(back.mask, load_real_set(src)[0].mask)
    assert (out / "notes" / "readme.txt").read_text() == "mine"


# ------------------------------------------------------------------------- predict names and failures
def test_output_names_are_unique():
    from real_eval.predict import output_names

    files = [Path("d/photo.jpg"), Path("d/photo.png"), Path("d/Photo.JPG"), Path("e/photo.jpg"), Path("d/x.png"),
             Path("d/photo.jpg.png")]
    names = output_names(files)
    assert len({n.lower() for n in names}) == len(files)
    assert names[1] == "photo.png" and names[4] == "x"


def _patch_model(monkeypatch):
    import real_eval.model_io as model_io

    monkeypatch.setattr(model_io, "load_checkpoint", lambda ckpt, device: (_RedLogit.build(), _spec()))


def test_predict_keeps_photos_whose_stems_collide(tmp_path, monkeypatch, capsys):
    _patch_model(monkeypatch)
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "photo.jpg"), np.full((10, 14, 3), 255, np.uint8))
    cv2.imwrite(str(photos / "photo.png"), np.zeros((8, 6, 3), np.uint8))
    rc = _cli(["predict", str(photos), "--out", str(tmp_path / "p"), "--device", "cpu", "--quiet",
               "--strategy", "resize", "--threshold", "0.5"])
    assert rc == 0 and "wrote 2 masks" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "p" / "masks").iterdir()) == ["photo.jpg.png", "photo.png.png"]
    assert cv2.imread(str(tmp_path / "p" / "masks" / "photo.png.png"), cv2.IMREAD_UNCHANGED).shape == (8, 6)
    assert cv2.imread(str(tmp_path / "p" / "masks" / "photo.jpg.png"), cv2.IMREAD_UNCHANGED).shape == (10, 14)


def test_predict_goes_on_after_an_unreadable_photo(tmp_path, monkeypatch, capsys):
    _patch_model(monkeypatch)
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("a.jpg", "c.jpg"):
        cv2.imwrite(str(photos / name), np.full((9, 9, 3), 200, np.uint8))
    (photos / "b.jpg").write_bytes(b"not a jpeg at all")
    rc = _cli(["predict", str(photos), "--out", str(tmp_path / "p"), "--device", "cpu", "--quiet",
               "--strategy", "resize", "--threshold", "0.5"])
    captured = capsys.readouterr()
    assert rc == 1
    assert "wrote 2 masks" in captured.out
    assert "b.jpg" in captured.err and "1 of 3 photos could not be read" in captured.err
    assert sorted(p.name for p in (tmp_path / "p" / "masks").iterdir()) == ["a.png", "c.png"]


# ------------------------------------------------------------------------- synth resume checks
def test_resume_redoes_chunks_whose_files_were_truncated_or_altered(tmp_path):
    reference, out = tmp_path / "ref", tmp_path / "out"
    run(reference, n=24)
    run(out, n=24)
    marker = json.loads((out / STATE_DIR / "done" / "chunk-00000001.json").read_text())
    assert marker["files"]["images/00000009.jpg"]["size"] == (out / "images" / "00000009.jpg").stat().st_size
    jpg = out / "images" / "00000009.jpg"
    jpg.write_bytes(jpg.read_bytes()[: jpg.stat().st_size // 2])       # truncated: chunk 1
    png = out / "masks" / "00000017.png"
    data = bytearray(png.read_bytes())
    data[-20] ^= 0xFF                                                 # same size, other bytes: chunk 2
    png.write_bytes(bytes(data))
    renderer = FakeRenderer()
    summary = run(out, n=24, renderer=renderer)
    assert sorted(renderer.calls) == list(range(8, 24)) and summary["skipped"] == 8
    assert tree_bytes(out) == tree_bytes(reference)


def test_resume_redoes_a_truncated_webdataset_shard(tmp_path):
    reference, out = tmp_path / "ref", tmp_path / "out"
    run(reference, n=20, fmt="webdataset", shard_size=10)
    run(out, n=20, fmt="webdataset", shard_size=10)
    shard = out / "shard-000000.tar"
    shard.write_bytes(shard.read_bytes()[:-1024])
    renderer = FakeRenderer()
    run(out, n=20, fmt="webdataset", shard_size=10, renderer=renderer)
    assert sorted(renderer.calls) == list(range(10))
    assert tree_bytes(out) == tree_bytes(reference)


# ------------------------------------------------------------------------- dropped objects reported
def test_dropped_annotation_objects_are_reported(tmp_path, caplog):
    doc = _coco_doc(bbox=[1, 1, 3, 3])
    doc["annotations"].append({"id": 2, "image_id": 99, "category_id": 1, "bbox": [0, 0, 2, 2]})
    _write_coco(tmp_path / "coco", doc)
    with caplog.at_level(logging.WARNING, logger="real_eval.readers"):
        load_real_set(tmp_path / "coco")
    assert "ann.json: 1 annotation object(s) dropped: their image_id is not listed" in caplog.text
    caplog.clear()
    _write_cvat(tmp_path / "cvat", '<mask label="key" rle="0, 4" left="40" top="40" width="2" height="2"/>')
    with caplog.at_level(logging.WARNING, logger="real_eval.readers"):
        [s] = load_real_set(tmp_path / "cvat")
    assert not s.mask.any() and "annotations.xml: 1 key/ignore shape(s) cover no pixel" in caplog.text
    with pytest.raises(AnnotationError, match="annotations.xml.*1 key/ignore shape.*without --strict"):
        load_real_set(tmp_path / "cvat", strict=True)
    with pytest.raises(AnnotationError, match="ann.json.*1 annotation object.*dropped: their image_id"):
        load_real_set(tmp_path / "coco", strict=True)
    out = tmp_path / "converted"
    from keysynth.cli import main

    assert main(["convert", str(tmp_path / "coco"), "--to", "masks", "--out", str(out), "--strict"]) == 2
    assert not out.exists() or not any(out.rglob("*.png"))
    assert main(["convert", str(tmp_path / "coco"), "--to", "masks", "--out", str(out)]) == 0


@pytest.mark.parametrize("argv", [["synth", "--n", "2", "--size", "64"], ["train", "--steps", "1"],
                                  ["predict", "x.jpg"], ["convert", "src", "--to", "masks"], ["cutouts", "src"]])
def test_an_out_that_is_a_file_is_a_clear_error_before_any_work(tmp_path, capsys, argv):
    from keysynth.cli import main

    f = tmp_path / "a_file"
    f.write_text("keep me")
    assert main(argv + ["--out", str(f)]) == 2
    err = capsys.readouterr().err
    assert "is a file; pass a folder" in err and "Traceback" not in err
    assert f.read_text() == "keep me"


def test_huge_sizes_are_refused_up_front(capsys):
    from keysynth.cli import main

    assert main(["synth", "--out", "never_written", "--n", "1", "--size", "100000"]) == 2
    assert "outside the valid range [16, 4096] px" in capsys.readouterr().err
    from train.config import TrainConfig

    with pytest.raises(ValueError, match=r"valid range \[32, 2048\] px"):
        TrainConfig(image_size=100000).validate()


def test_an_unwritable_out_is_a_message_not_a_traceback(tmp_path, capsys):
    import os as _os

    from keysynth.cli import main

    if _os.geteuid() == 0:
        blocked = tmp_path / "a_file" / "sub"  # a path under a file: not writable even for root
        (tmp_path / "a_file").write_text("x")
    else:
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        blocked = ro / "sub"
    assert main(["synth", "--out", str(blocked), "--n", "1", "--size", "32", "--backgrounds", "procedural"]) == 2
    err = capsys.readouterr().err
    assert "check that the output path" in err and "Traceback" not in err
