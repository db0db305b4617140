"""Every annotation reader: write a tiny set with a known mask in the tool's own format, read it
back, compare exactly; plus each format's quirks, unsafe paths and malformed files."""

from __future__ import annotations

import base64
import json
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from real_eval.dataset import load_real_set
from real_eval.readers import READERS, detect_format
from real_eval.readers.base import AnnotationError, is_key_class
from real_eval.readers.cvat import decode_cvat_rle, encode_cvat_rle

H, W = 10, 12


def write_image(path: Path, seed: int = 0, h: int = H, w: int = W) -> np.ndarray:
    rgb = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return rgb


def png_bytes(arr: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", arr)
    assert ok
    return buf.tobytes()


def square(r0, r1, c0, c1, h=H, w=W, value=1) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    m[r0:r1, c0:c1] = value
    return m


# --------------------------------------------------------------------------------------- masks
def test_mask_folder_values_and_errors(tmp_path):
    img = write_image(tmp_path / "images" / "a.png")
    write_image(tmp_path / "images" / "b.png", 1)
    (tmp_path / "masks").mkdir()
    cv2.imwrite(str(tmp_path / "masks" / "a.png"), square(2, 5, 3, 7, value=255))
    cv2.imwrite(str(tmp_path / "masks" / "b.png"), square(0, 2, 0, 2, value=1))
    s = load_real_set(tmp_path)
    assert detect_format(tmp_path) == "masks"
    assert [x.name for x in s] == ["a", "b"]
    assert np.array_equal(s[0].image, img)
    assert np.array_equal(s[0].mask, square(2, 5, 3, 7))
    assert np.array_equal(s[1].mask, square(0, 2, 0, 2))
    # value 7 -> error naming the file and the value
    cv2.imwrite(str(tmp_path / "masks" / "b.png"), square(0, 2, 0, 2, value=7))
    with pytest.raises(ValueError, match=r"b\.png.*value 7"):
        load_real_set(tmp_path)
    # size mismatch -> names both files
    cv2.imwrite(str(tmp_path / "masks" / "b.png"), np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match=r"masks/b\.png.*images/b\.png"):
        load_real_set(tmp_path)
    # images without masks -> listed
    (tmp_path / "masks" / "b.png").unlink()
    write_image(tmp_path / "images" / "c.png", 2)
    with pytest.raises(ValueError, match=r"2 image\(s\).*b\.png, c\.png"):
        load_real_set(tmp_path)


def test_mask_folder_ignore_folder_and_synth_convention(tmp_path):
    write_image(tmp_path / "images" / "a.png")
    (tmp_path / "masks").mkdir()
    synth = square(2, 5, 3, 7)
    synth[0, 0] = 255
    cv2.imwrite(str(tmp_path / "masks" / "a.png"), synth)  # 0/1/255: 1 key, 255 ignore
    assert np.array_equal(load_real_set(tmp_path)[0].mask, synth)
    cv2.imwrite(str(tmp_path / "masks" / "a.png"), square(2, 5, 3, 7, value=255))
    (tmp_path / "ignore").mkdir()
    cv2.imwrite(str(tmp_path / "ignore" / "a.png"), square(9, 10, 0, 12, value=255))
    m = load_real_set(tmp_path)[0].mask
    assert (m == 255).sum() == 12 and (m == 1).sum() == 12


# ---------------------------------------------------------------------------------------- coco
def make_coco(root: Path, file_name="a.png") -> tuple[np.ndarray, np.ndarray]:
    from pycocotools import mask as mu

    img = write_image(root / "images" / "a.png")
    rle_mask = np.zeros((H, W), np.uint8)
    rle_mask[6:9, 8:11] = 1
    comp = mu.encode(np.asfortranarray(rle_mask))
    # Uncompressed RLE by hand (column-major, background first): pixels (0,1) and (1,1) ->
    # column 0: 10 background; column 1: 2 key then 8 background; rest background.
    counts = [10, 2, 8 + 10 * (W - 2)]
    doc = {
        "images": [{"id": 7, "file_name": file_name, "height": H, "width": W}],
        "categories": [{"id": 1, "name": "key"}, {"id": 2, "name": "key_ring"}, {"id": 3, "name": "__ignore__"}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 1, "iscrowd": 0, "area": 999, "segmentation": [[2, 2, 6, 2, 6, 6, 2, 6]]},
            {"id": 2, "image_id": 7, "category_id": 1, "iscrowd": 1, "area": 0,
             "segmentation": {"size": [H, W], "counts": comp["counts"].decode("ascii")}},
            {"id": 3, "image_id": 7, "category_id": 1, "iscrowd": 1, "segmentation": {"size": [H, W], "counts": counts}},
            {"id": 4, "image_id": 7, "category_id": 2, "iscrowd": 0, "segmentation": [[0, 8, 4, 8, 4, 10, 0, 10]]},
            {"id": 5, "image_id": 7, "category_id": 3, "iscrowd": 0, "segmentation": [[9, 0, 12, 0, 12, 2, 9, 2]]},
        ],
    }
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / "instances.json").write_text(json.dumps(doc))
    expected = np.zeros((H, W), np.uint8)
    expected[2:6, 2:6] = 1          # polygon, pixel-corner coordinates
    expected[6:9, 8:11] = 1         # compressed RLE, iscrowd=1
    expected[0:2, 1] = 1            # uncompressed RLE, column-major
    expected[0:2, 9:12] = 255       # __ignore__
    return img, expected            # key_ring (rows 8-9, cols 0-3) excluded


def test_coco_round_trip(tmp_path):
    img, expected = make_coco(tmp_path)
    assert detect_format(tmp_path) == "coco"
    [s] = load_real_set(tmp_path)
    assert np.array_equal(s.image, img)
    assert np.array_equal(s.mask, expected)
    [only_ring] = load_real_set(tmp_path, classes=("KEY_RING",))
    assert (only_ring.mask == 1).sum() == 8 and (only_ring.mask == 255).sum() == 6


def test_coco_errors(tmp_path):
    make_coco(tmp_path, file_name="../a.png")
    with pytest.raises(AnnotationError, match=r"instances\.json.*images\[0\]\.file_name.*outside"):
        load_real_set(tmp_path)
    make_coco(tmp_path)
    doc = json.loads((tmp_path / "annotations" / "instances.json").read_text())
    doc["annotations"][2]["segmentation"]["counts"] = [5, 5]
    (tmp_path / "annotations" / "instances.json").write_text(json.dumps(doc))
    with pytest.raises(AnnotationError, match=r"instances\.json.*annotations\[2\]\.segmentation\.counts"):
        load_real_set(tmp_path)
    del doc["annotations"][0]["segmentation"]
    doc["annotations"][2]["segmentation"]["counts"] = [H * W]
    (tmp_path / "annotations" / "instances.json").write_text(json.dumps(doc))
    with pytest.raises(AnnotationError, match=r"annotations\[0\]\.segmentation"):
        load_real_set(tmp_path)


# ---------------------------------------------------------------------------------------- cvat
CVAT_TASK_META = "<meta><task><id>1</id><name>t</name><mode>annotation</mode><labels><label><name>key</name></label></labels></task></meta>"


def cvat_xml(images: str, meta: str = CVAT_TASK_META) -> str:
    return f'<?xml version="1.0" encoding="utf-8"?>\n<annotations><version>1.1</version>{meta}{images}</annotations>'


def test_cvat_rle_is_row_major_starting_with_background():
    # width 3, height 2: runs 1 bg, 2 key, 3 bg -> row 0 = [0, 1, 1], row 1 = [0, 0, 0]
    m = decode_cvat_rle("1, 2, 3", 3, 2)
    assert np.array_equal(m, np.array([[0, 1, 1], [0, 0, 0]], bool))
    assert encode_cvat_rle(m) == "1, 2, 3"
    starts_with_key = np.array([[1, 0], [0, 1]], bool)
    assert encode_cvat_rle(starts_with_key) == "0, 1, 2, 1"
    assert np.array_equal(decode_cvat_rle(encode_cvat_rle(starts_with_key), 2, 2), starts_with_key)
    with pytest.raises(AnnotationError, match="rle"):
        decode_cvat_rle("1, 2", 3, 2)


def test_cvat_task_round_trip(tmp_path):
    img = write_image(tmp_path / "images" / "a.png")
    shapes = (
        '<polygon label="key" source="manual" occluded="0" points="2.00,2.00;6.00,2.00;6.00,6.00;2.00,6.00" z_order="0"/>'
        '<mask label="key" source="manual" occluded="0" rle="1, 2, 3" left="8" top="7" width="3" height="2" z_order="0"/>'
        '<box label="__ignore__" source="manual" occluded="0" xtl="9" ytl="0" xbr="12" ybr="2" z_order="0"/>'
        '<polyline label="key" source="manual" occluded="0" points="0,9;11,9" z_order="0"/>'
        '<points label="key" source="manual" occluded="0" points="0,0" z_order="0"/>'
        '<tag label="key" source="manual"/>'
        '<box label="ring" source="manual" occluded="0" xtl="0" ytl="7" xbr="3" ybr="10" z_order="0"/>'
    )
    (tmp_path / "annotations.xml").write_text(cvat_xml(f'<image id="0" name="a.png" width="{W}" height="{H}">{shapes}</image>'))
    assert detect_format(tmp_path) == "cvat"
    [s] = load_real_set(tmp_path)
    expected = np.zeros((H, W), np.uint8)
    expected[2:6, 2:6] = 1
    expected[7, 9:11] = 1        # rle row 0 of the box at (top 7, left 8): [0, 1, 1]
    expected[0:2, 9:12] = 255
    assert np.array_equal(s.image, img)
    assert np.array_equal(s.mask, expected)


def test_cvat_project_export_and_ellipse(tmp_path):
    img = write_image(tmp_path / "images" / "Train" / "sub" / "a.png", h=40, w=40)
    meta = ("<meta><project><id>1</id><name>p</name><labels><label><name>Key</name></label></labels>"
            "<tasks><task><id>3</id><name>t</name></task></tasks></project></meta>")
    ell = '<ellipse label="Key" source="manual" occluded="0" cx="20" cy="20" rx="10" ry="5" rotation="90" z_order="0"/>'
    (tmp_path / "annotations.xml").write_text(
        cvat_xml(f'<image id="0" name="sub/a.png" subset="Train" task_id="3" width="40" height="40">{ell}</image>', meta))
    [s] = load_real_set(tmp_path)
    assert s.name == "sub__a" and np.array_equal(s.image, img)
    ys, xs = np.nonzero(s.mask == 1)
    assert abs(len(ys) - np.pi * 10 * 5) < 12           # area of the ellipse
    assert np.ptp(ys) + 1 >= 19 and np.ptp(xs) + 1 <= 11  # rotated by 90 degrees: tall, narrow


def test_cvat_errors(tmp_path):
    write_image(tmp_path / "images" / "a.png")
    bad = '<mask label="key" rle="1, 2" left="0" top="0" width="3" height="2"/>'
    (tmp_path / "annotations.xml").write_text(cvat_xml(f'<image id="0" name="a.png" width="{W}" height="{H}">{bad}</image>'))
    with pytest.raises(AnnotationError, match=r"annotations\.xml.*image\[0\]/mask\[0\]@rle"):
        load_real_set(tmp_path)
    (tmp_path / "annotations.xml").write_text(cvat_xml(f'<image id="0" name="../a.png" width="{W}" height="{H}"></image>'))
    with pytest.raises(AnnotationError, match="outside"):
        load_real_set(tmp_path)
    (tmp_path / "annotations.xml").write_text(cvat_xml(f'<image id="0" name="a.png" width="{W + 1}" height="{H}"></image>'))
    with pytest.raises(AnnotationError, match=r"image\[0\]@width/height"):
        load_real_set(tmp_path)


# --------------------------------------------------------------------------------- supervisely
def sly_bitmap(mask: np.ndarray, rgba: bool) -> str:
    if rgba:  # colour channels garbage-free but irrelevant: foreground is the alpha channel
        arr = np.dstack([np.full(mask.shape, 200, np.uint8)] * 3 + [mask.astype(np.uint8) * 255])
    else:
        arr = mask.astype(np.uint8)
    return base64.b64encode(zlib.compress(png_bytes(arr))).decode()


def make_supervisely(root: Path, layout: str) -> tuple[np.ndarray, np.ndarray]:
    img = write_image(root / "ds1" / "img" / "a.png", h=12, w=12)
    write_image(root / "ds1" / "img" / "bad.png", 1, h=12, w=12)
    patch = np.array([[1, 1, 0], [0, 1, 1]], bool)
    objs = [
        {"classTitle": "house_key", "geometryType": "bitmap", "bitmap": {"data": sly_bitmap(patch, True), "origin": [9, 10]}},
        {"classTitle": "house_key", "geometryType": "polygon",
         "points": {"exterior": [[1, 1], [8, 1], [8, 8], [1, 8]], "interior": [[[3, 3], [6, 3], [6, 6], [3, 6]]]}},
        {"classTitle": "ignore", "geometryType": "rectangle", "points": {"exterior": [[10, 0], [11, 2]], "interior": []}},
        {"classTitle": "keychain", "geometryType": "rectangle", "points": {"exterior": [[0, 9], [3, 11]], "interior": []}},
    ]
    classes = [{"title": "house_key", "shape": "bitmap"}, {"title": "ignore", "shape": "rectangle"},
               {"title": "keychain", "shape": "rectangle"}]
    if layout == "old":  # shape only in meta.json; polygon class needs its own title there
        objs[1]["classTitle"] = "house_key_poly"
        classes.append({"title": "house_key_poly", "shape": "polygon"})
        for o in objs:
            del o["geometryType"]
    (root / "meta.json").write_text(json.dumps({"classes": classes, "tags": []}))
    ann = {"description": "", "size": {"height": 12, "width": 12}, "tags": [], "objects": objs}
    bad = {"size": {"height": 12, "width": 12}, "tags": [{"name": "bad_image", "value": None}], "objects": []}
    (root / "ds1" / "ann").mkdir(parents=True)
    suffix = ".png.json" if layout == "new" else ".json"
    (root / "ds1" / "ann" / f"a{suffix}").write_text(json.dumps(ann))
    (root / "ds1" / "ann" / f"bad{suffix}").write_text(json.dumps(bad))
    expected = np.zeros((12, 12), np.uint8)
    expected[1:9, 1:9] = 1
    expected[3:7, 3:7] = 0                  # hole incl. its outline (SDK: fillPoly(interior, 0))
    expected[10, 9:11] = 1                  # bitmap row 0 at origin x=9, y=10
    expected[11, 10:12] = 1
    expected[0:3, 10:12] = 255              # rectangle, inclusive corners
    return img, expected


@pytest.mark.parametrize("layout", ["new", "old"])
def test_supervisely_round_trip(tmp_path, layout):
    img, expected = make_supervisely(tmp_path, layout)
    assert detect_format(tmp_path) == "supervisely"
    samples = load_real_set(tmp_path, classes=None if layout == "new" else ("house_key", "house_key_poly"))
    assert [s.name for s in samples] == ["a"]  # bad_image excluded
    assert np.array_equal(samples[0].image, img)
    assert np.array_equal(samples[0].mask, expected)
    assert len(load_real_set(tmp_path, fmt="supervisely", exclude_tags=())) == 2


def test_supervisely_greyscale_bitmap_and_errors(tmp_path):
    make_supervisely(tmp_path, "new")
    ann_path = tmp_path / "ds1" / "ann" / "a.png.json"
    ann = json.loads(ann_path.read_text())
    ann["objects"] = [{"classTitle": "key", "geometryType": "bitmap",
                       "bitmap": {"data": sly_bitmap(np.ones((2, 2), bool), False), "origin": [0, 0]}}]
    ann_path.write_text(json.dumps(ann))
    [s] = load_real_set(tmp_path)
    assert np.array_equal(s.mask, square(0, 2, 0, 2, 12, 12))
    ann["objects"][0]["bitmap"]["data"] = "!!not base64 zlib!!"
    ann_path.write_text(json.dumps(ann))
    with pytest.raises(AnnotationError, match=r"a\.png\.json.*objects\[0\]\.bitmap\.data"):
        load_real_set(tmp_path)


# ------------------------------------------------------------------------------------- labelme
def test_labelme_round_trip_windows_path_ignore_and_shapes(tmp_path):
    img = write_image(tmp_path / "images" / "a.png", h=12, w=12)
    mask_patch = np.array([[0, 1], [1, 1]], np.uint8) * 255
    shapes = [
        {"label": "key", "shape_type": "polygon", "points": [[1, 1], [4, 1], [4, 3], [1, 3]]},
        {"label": "Key", "shape_type": "rectangle", "points": [[8, 5], [6, 4]]},
        {"label": "key", "shape_type": "circle", "points": [[5, 9], [5, 7]]},
        {"label": "key", "shape_type": "mask", "points": [[10, 10], [11, 11]], "mask": base64.b64encode(png_bytes(mask_patch)).decode()},
        {"label": "key", "shape_type": "points", "points": [[0, 0], [11, 0]]},
        {"label": "__ignore__", "shape_type": "rectangle", "points": [[0, 5], [1, 6]]},
        {"label": "key_ring", "shape_type": "rectangle", "points": [[9, 0], [11, 1]]},
    ]
    doc = {"version": "5.5.0", "flags": {}, "shapes": shapes, "imagePath": "..\\images\\a.png", "imageData": None,
           "imageHeight": 12, "imageWidth": 12}
    (tmp_path / "ann").mkdir()
    (tmp_path / "ann" / "a.json").write_text(json.dumps(doc))
    assert detect_format(tmp_path) == "labelme"
    [s] = load_real_set(tmp_path)
    assert np.array_equal(s.image, img)
    expected = np.zeros((12, 12), np.uint8)
    expected[1:4, 1:5] = 1                     # PIL polygon with outline: vertices included
    expected[4:6, 6:9] = 1                     # rectangle, corners in any order, inclusive
    circle = np.zeros((12, 12), np.uint8)      # radius |(5,9)-(5,7)| = 2 -> bbox [3, 7, 7, 11]
    circle[7, 4:7] = circle[8:11, 3:8] = circle[11, 4:7] = 1
    expected |= circle
    expected[10, 11] = expected[11, 10:12] = 1  # mask shape pasted at [10:12, 10:12]
    expected[5:7, 0:2] = 255
    assert np.array_equal(s.mask, expected)


def test_labelme_image_data_and_errors(tmp_path):
    rgb = np.random.default_rng(5).integers(0, 256, (6, 7, 3), dtype=np.uint8)
    data = base64.b64encode(png_bytes(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))).decode()
    doc = {"shapes": [{"label": "key", "shape_type": "rectangle", "points": [[0, 0], [1, 1]]}], "imagePath": None,
           "imageData": data, "imageHeight": 6, "imageWidth": 7}
    (tmp_path / "x.json").write_text(json.dumps(doc))
    [s] = load_real_set(tmp_path)
    assert np.array_equal(s.image, rgb) and s.mask.sum() == 4 and s.source is None
    doc["imagePath"], doc["imageData"] = "../../etc/passwd", None
    (tmp_path / "x.json").write_text(json.dumps(doc))
    with pytest.raises(AnnotationError, match=r"x\.json.*imagePath.*outside"):
        load_real_set(tmp_path)
    doc["imageData"] = data
    doc["imagePath"] = None
    doc["shapes"][0]["shape_type"] = "hexagon"
    (tmp_path / "x.json").write_text(json.dumps(doc))
    with pytest.raises(AnnotationError, match=r"x\.json.*shapes\[0\]\.shape_type.*hexagon"):
        load_real_set(tmp_path)


# ------------------------------------------------------------------------------------- general
def test_detect_format_error_lists_names(tmp_path):
    (tmp_path / "nothing.txt").write_text("x")
    with pytest.raises(ValueError, match="masks, coco, cvat, supervisely, labelme"):
        detect_format(tmp_path)
    with pytest.raises(ValueError, match="valid names"):
        load_real_set(tmp_path, fmt="yolo")
    assert set(READERS) == {"masks", "coco", "cvat", "supervisely", "labelme"}


@pytest.mark.parametrize("label,expected", [("key", True), ("Keys", True), ("house_key", True), ("Car Key", True),
                                            ("DoorKey", True), ("key_ring", False), ("keychain", False),
                                            ("keyboard", False), ("key fob", False), ("monkey", False),
                                            ("__ignore__", False)])
def test_default_key_class_rule(label, expected):
    assert is_key_class(label) is expected


def test_dev_set_if_present():
    root = Path(__file__).resolve().parents[2] / "shared" / "data" / "real_keys_dev"
    if not root.is_dir():
        pytest.skip("shared dev set not present")
    samples = load_real_set(root)
    assert len(samples) == 8
    for s in samples:
        assert s.mask.shape == s.image.shape[:2]
        assert set(np.unique(s.mask).tolist()) == {0, 1}
    assert {s.name: int(s.mask.sum()) for s in samples}["key_4"] == 79593  # notes.md: mask px


# ------------------------------------------------- fixtures written the way the real tools write
def _cvat_core_mask2rle(mask: np.ndarray) -> list[int]:
    """cvat-core ``mask2Rle`` (cvat-core/src/object-utils.ts), transcribed: row-major flat mask,
    first run = background (``[0, ...]`` when the first pixel is set)."""
    acc: list[int] = []
    flat = [int(v) for v in mask.ravel()]
    for idx, val in enumerate(flat):
        if idx == 0:
            acc.extend([0, 1] if val > 0 else [1])
        elif flat[idx - 1] == val:
            acc[-1] += 1
        else:
            acc.append(1)
    return acc


def test_cvat_real_exporter_layout(tmp_path):
    """Mirrors cvat/apps/dataset_manager/formats/cvat.py ``dump_as_cvat_annotation``: mask
    ``rle`` = ``f"{list(...)}"[1:-1]``, ``width = right - left + 1``; skeleton with ``<points>``
    children; ``<attribute>`` children; rotated box; image name with a sub-folder; plus a video
    task frame (``frame_000000`` in the XML, ``images/frame_000000.PNG`` on disk)."""
    img = write_image(tmp_path / "images" / "photos" / "k1.png", h=20, w=20)
    write_image(tmp_path / "images" / "frame_000000.PNG", 1, h=20, w=20)
    patch = np.zeros((3, 4), np.uint8)          # box left=5, top=10, right=8, bottom=12
    patch[0, 0] = patch[1, 1:3] = patch[2, 3] = 1
    rle = f"{list(int(v) for v in _cvat_core_mask2rle(patch))}"[1:-1]
    assert rle.startswith("0, 1, ")            # first pixel set -> leading empty background run
    left, top, right, bottom = 5, 10, 8, 12
    shapes = (
        f'\n    <mask label="key" source="manual" occluded="0" rle="{rle}" left="{left}" top="{top}" '
        f'width="{right - left + 1}" height="{bottom - top + 1}" z_order="0">\n'
        '      <attribute name="material">brass</attribute>\n    </mask>'
        '\n    <box label="key" source="manual" occluded="1" xtl="1.00" ytl="1.00" xbr="5.00" ybr="3.00" '
        'rotation="90.00" z_order="1"/>'
        '\n    <skeleton label="key" source="manual" z_order="0">\n'
        '      <points label="1" source="manual" outside="0" occluded="0" points="15.00,15.00"/>\n    </skeleton>'
        '\n    <tag label="key" source="manual"/>'
    )
    xml = ('<?xml version="1.0" encoding="utf-8"?>\n<annotations>\n  <version>1.1</version>\n  '
           + CVAT_TASK_META +
           f'\n  <image id="0" name="photos/k1.png" width="20" height="20">{shapes}\n  </image>'
           '\n  <image id="1" name="frame_000000" width="20" height="20">\n  </image>\n</annotations>\n')
    (tmp_path / "annotations.xml").write_text(xml)
    by_name = {x.name: x for x in load_real_set(tmp_path)}
    s0, s1 = by_name["photos__k1"], by_name["frame_000000"]
    assert np.array_equal(s0.image, img)
    expected = np.zeros((20, 20), np.uint8)
    expected[top:bottom + 1, left:right + 1] = patch
    # box 1..5 x 1..3 rotated 90 deg about (3, 2) -> x 2..4, y 0..4 (pixel-corner coordinates)
    expected[0:4, 2:4] = 1
    assert np.array_equal(s0.mask, expected)
    assert s1.source.endswith("frame_000000.PNG") and not s1.mask.any()


def test_cvat_project_export_default_subset(tmp_path):
    """Project export: every <image> carries subset (``default`` when the task has none) and
    task_id; images are saved under images/<subset>/<frame path>."""
    write_image(tmp_path / "images" / "default" / "a.png")
    meta = "<meta><project><id>1</id><name>p</name><labels><label><name>key</name></label></labels></project></meta>"
    poly = '<polygon label="key" source="manual" occluded="0" points="0.00,0.00;4.00,0.00;4.00,3.00;0.00,3.00" z_order="0"/>'
    (tmp_path / "annotations.xml").write_text(
        cvat_xml(f'<image id="0" name="a.png" subset="default" task_id="7" width="{W}" height="{H}">{poly}</image>', meta))
    [s] = load_real_set(tmp_path)
    assert s.name == "a" and np.array_equal(s.mask, square(0, 3, 0, 4))


def _sly_sdk_bitmap(mask: np.ndarray) -> str:
    """supervisely.geometry.bitmap.Bitmap.data_2_base64, transcribed."""
    import io

    from PIL import Image

    img_pil = Image.fromarray(np.array(mask, dtype=np.uint8))
    img_pil.putpalette([0, 0, 0, 255, 255, 255])
    bio = io.BytesIO()
    img_pil.save(bio, format="PNG", transparency=0, optimize=0)
    return base64.b64encode(zlib.compress(bio.getvalue())).decode("utf-8")


def _sly_sdk_alpha(mask: np.ndarray) -> str:
    """supervisely.geometry.alpha_mask.AlphaMask.data_2_base64, transcribed."""
    import io

    from PIL import Image

    img_pil = Image.fromarray(np.array(mask, dtype=np.uint8), mode="L")
    bio = io.BytesIO()
    img_pil.save(bio, format="PNG", transparency=0, optimize=0)
    return base64.b64encode(zlib.compress(bio.getvalue())).decode("utf-8")


def test_supervisely_sdk_encodings_and_polygon_holes(tmp_path):
    write_image(tmp_path / "ds" / "img" / "a.jpg.png", h=16, w=16)  # file name may contain dots
    bm = np.array([[1, 1, 0], [0, 1, 1]], bool)
    alpha = np.array([[0, 40], [255, 0]], np.uint8)
    raw_png = base64.b64encode(png_bytes(np.array([[255, 0]], np.uint8))).decode()  # no zlib
    objs = [
        {"id": 1, "classId": 11, "classTitle": "key", "geometryType": "bitmap", "tags": [], "description": "",
         "bitmap": {"data": _sly_sdk_bitmap(bm), "origin": [12, 0]}},
        {"classTitle": "key", "geometryType": "alpha_mask", "bitmap": {"data": _sly_sdk_alpha(alpha), "origin": [0, 14]}},
        {"classTitle": "key", "geometryType": "bitmap", "bitmap": {"data": raw_png, "origin": [5, 15]}},
        {"classTitle": "key", "geometryType": "polygon",
         "points": {"exterior": [[1, 1], [9, 1], [9, 9], [1, 9]], "interior": [[[3, 3], [6, 3], [6, 6], [3, 6]]]}},
        {"classTitle": "key", "geometryType": "point", "points": {"exterior": [[15, 15]], "interior": []}},
    ]
    (tmp_path / "meta.json").write_text(json.dumps({"classes": [{"id": 11, "title": "key", "shape": "any", "color": "#FF0000"}],
                                                    "tags": [], "projectType": "images"}))
    (tmp_path / "ds" / "ann").mkdir(parents=True)
    (tmp_path / "ds" / "ann" / "a.jpg.png.json").write_text(json.dumps(
        {"description": "", "tags": [], "size": {"height": 16, "width": 16}, "objects": objs}))
    [s] = load_real_set(tmp_path)
    exp = np.zeros((16, 16), np.uint8)
    exp[0:2, 12:15] = bm
    exp[14:16, 0:2] = alpha > 0                 # alpha_mask: any non-zero opacity
    exp[15, 5] = 1                              # uncompressed base64 PNG
    exp[1:10, 1:10] = 1
    exp[3:7, 3:7] = 0                           # Polygon._draw_impl: fillPoly(interior, 0)
    assert np.array_equal(s.mask, exp)


def _labelme_img_arr_to_b64(arr: np.ndarray) -> str:
    """labelme.utils.image.img_arr_to_b64, transcribed (a bool array -> mode '1' PNG)."""
    import io

    from PIL import Image

    f = io.BytesIO()
    Image.fromarray(arr).save(f, format="PNG")
    return base64.b64encode(f.getvalue()).decode("utf-8")


def test_labelme_ai_mask_at_border_lines_points_and_outside_path(tmp_path):
    """Mask shape as labelme's canvas stores it: ``imgviz.instances.masks_to_bboxes`` (y2/x2 =
    last + 1) then ``mask[y1:y2+1, x1:x2+1]`` -> cropped by the image border; lines and points
    (even labelled key / __ignore__) give no area and are ignored."""
    h, w = 20, 24
    write_image(tmp_path / "a.png", h=h, w=w)
    full = np.zeros((h, w), bool)
    full[15:20, 20:24] = True                   # touches the bottom-right border
    full[17, 21] = False
    where = np.argwhere(full)
    (y1, x1), (y2, x2) = where.min(0), where.max(0) + 1
    stored = full[y1:y2 + 1, x1:x2 + 1]
    assert stored.shape == (5, 4)               # not (y2-y1+1, x2-x1+1) = (6, 5)
    shapes = [
        {"label": "key", "points": [[float(x1), float(y1)], [float(x2), float(y2)]], "group_id": None,
         "description": "", "shape_type": "mask", "flags": {}, "mask": _labelme_img_arr_to_b64(stored)},
        {"label": "key", "points": [[2.0, 3.0], [12.0, 3.0]], "group_id": None, "description": "",
         "shape_type": "line", "flags": {}, "mask": None},
        {"label": "__ignore__", "points": [[5.0, 14.0]], "group_id": None, "description": "",
         "shape_type": "point", "flags": {}, "mask": None},
    ]
    doc = {"version": "5.5.0", "flags": {}, "shapes": shapes, "imagePath": "a.png", "imageData": None,
           "imageHeight": h, "imageWidth": w}
    (tmp_path / "a.json").write_text(json.dumps(doc))
    [s] = load_real_set(tmp_path)
    assert np.array_equal(s.mask, full.astype(np.uint8))
    # imagePath outside the dataset folder but imageData embedded: labelme uses imageData
    rgb = np.random.default_rng(2).integers(0, 256, (h, w, 3), dtype=np.uint8)
    doc["imagePath"] = "../elsewhere/a.png"
    doc["imageData"] = base64.b64encode(png_bytes(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))).decode()
    (tmp_path / "a.json").write_text(json.dumps(doc))
    [s] = load_real_set(tmp_path)
    assert s.source is None and np.array_equal(s.image, rgb)


def test_coco_cvat_style_box_only_multi_polygon_and_subfolder(tmp_path):
    """CVAT/datumaro COCO export: a rectangle becomes ``segmentation: []`` + ``bbox``; an object
    may have several polygons; ``file_name`` may contain a sub-folder."""
    write_image(tmp_path / "images" / "sub" / "a.png")
    doc = {
        "licenses": [{"name": "", "id": 0, "url": ""}], "info": {},
        "categories": [{"id": 1, "name": "key", "supercategory": ""}],
        "images": [{"id": 1, "width": W, "height": H, "file_name": "sub/a.png", "license": 0,
                    "flickr_url": "", "coco_url": "", "date_captured": 0}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [], "area": 6.0,
             "bbox": [8.0, 0.0, 3.0, 2.0], "iscrowd": 0, "attributes": {"occluded": False}},
            {"id": 2, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 8.0, "bbox": [0, 4, 6, 2],
             "segmentation": [[0.0, 4.0, 2.0, 4.0, 2.0, 6.0, 0.0, 6.0], [4.0, 4.0, 6.0, 4.0, 6.0, 6.0, 4.0, 6.0]]},
        ],
    }
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances_default.json").write_text(json.dumps(doc))
    [s] = load_real_set(tmp_path)
    exp = square(0, 2, 8, 11) | square(4, 6, 0, 2) | square(4, 6, 4, 6)
    assert s.name == "sub__a" and np.array_equal(s.mask, exp)
    del doc["annotations"][0]["bbox"]
    (tmp_path / "annotations" / "instances_default.json").write_text(json.dumps(doc))
    with pytest.raises(AnnotationError, match=r"instances_default\.json.*annotations\[0\]\.segmentation.*bbox"):
        load_real_set(tmp_path)
