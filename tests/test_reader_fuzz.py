"""Seeded fuzzing of every annotation reader: randomly mutated versions of a valid export (values
swapped for NaN, huge or negative numbers, wrong types, path-like strings; keys and elements
dropped; bytes flipped; files truncated) are converted with ``convert_dataset``. Each case must
end in a clear error (``ValueError`` / ``FileNotFoundError`` with a message) or a valid mask set,
never another exception, never a file written outside the output folder, in bounded time and
memory (address space capped a few GiB above the test process's own)."""

from __future__ import annotations

import copy
import json
import os
import resource
import shutil
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest

from real_eval.convert import convert_dataset
from test_readers import H, W, cvat_xml, make_coco, make_supervisely, write_image

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

CASES = 400  # per format
VALUES = (None, -1, 0, 1, -1e12, 1e12, float("nan"), float("inf"), "x", "", [], {}, True, [0] * 7,
          "../../../outside.png", "/etc/passwd", 2**40, 0.5)


def _make_cvat(root: Path) -> None:
    write_image(root / "images" / "a.png")
    shapes = ('<polygon label="key" points="2.00,2.00;6.00,2.00;6.00,6.00;2.00,6.00" z_order="0"/>'
              '<mask label="key" rle="1, 2, 3" left="8" top="7" width="3" height="2" z_order="0"/>'
              '<box label="__ignore__" xtl="9" ytl="0" xbr="12" ybr="2" z_order="0"/>'
              '<ellipse label="key" cx="5" cy="5" rx="2" ry="1" rotation="30" z_order="0"/>')
    (root / "annotations.xml").write_text(cvat_xml(f'<image id="0" name="a.png" width="{W}" height="{H}">{shapes}</image>'))


def _make_labelme(root: Path) -> None:
    write_image(root / "images" / "a.png", h=12, w=12)
    shapes = [{"label": "key", "shape_type": "polygon", "points": [[1, 1], [4, 1], [4, 3], [1, 3]]},
              {"label": "key", "shape_type": "rectangle", "points": [[8, 5], [6, 4]]},
              {"label": "key", "shape_type": "circle", "points": [[5, 9], [5, 7]]},
              {"label": "__ignore__", "shape_type": "rectangle", "points": [[0, 5], [1, 6]]}]
    doc = {"version": "5.5.0", "flags": {}, "shapes": shapes, "imagePath": "../images/a.png", "imageData": None,
           "imageHeight": 12, "imageWidth": 12}
    (root / "ann").mkdir()
    (root / "ann" / "a.json").write_text(json.dumps(doc))


def _make_masks(root: Path) -> None:
    write_image(root / "images" / "a.png")
    (root / "masks").mkdir()
    m = np.zeros((H, W), np.uint8)
    m[2:6, 3:8] = 255
    cv2.imwrite(str(root / "masks" / "a.png"), m)


FORMATS = {
    "coco": (lambda r: make_coco(r), "annotations/instances.json"),
    "cvat": (_make_cvat, "annotations.xml"),
    "supervisely": (lambda r: make_supervisely(r, "new"), "ds1/ann/a.png.json"),
    "labelme": (_make_labelme, "ann/a.json"),
    "masks": (_make_masks, "masks/a.png"),
}


def _nodes(doc, path=()):
    yield path
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for k, v in items:
        yield from _nodes(v, path + (k,))


def _mutate_json(doc, rng: np.random.Generator):
    doc = copy.deepcopy(doc)
    for _ in range(int(rng.integers(1, 4))):
        paths = [p for p in _nodes(doc) if p]
        path = paths[int(rng.integers(len(paths)))]
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        if rng.random() < 0.2 and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = copy.deepcopy(VALUES[int(rng.integers(len(VALUES)))])
    return json.dumps(doc).encode()


def _mutate_xml(text: str, rng: np.random.Generator) -> bytes:
    root = ET.fromstring(text)
    elems = list(root.iter())
    for _ in range(int(rng.integers(1, 4))):
        el = elems[int(rng.integers(len(elems)))]
        if el.attrib and rng.random() < 0.8:
            key = sorted(el.attrib)[int(rng.integers(len(el.attrib)))]
            val = VALUES[int(rng.integers(len(VALUES)))]
            el.attrib[key] = ",".join(map(str, val)) if isinstance(val, list) else str(val)
        elif len(el):
            el.remove(el[int(rng.integers(len(el)))])
    return ET.tostring(root)


def _mutate_bytes(data: bytes, rng: np.random.Generator) -> bytes:
    b = bytearray(data)
    op = int(rng.integers(3))
    if op == 0:  # truncate
        return bytes(b[: int(rng.integers(len(b)))])
    if op == 1:  # flip bytes
        for i in rng.integers(0, len(b), int(rng.integers(1, 8))):
            b[int(i)] = int(rng.integers(256))
        return bytes(b)
    i = int(rng.integers(len(b)))  # duplicate a span
    return bytes(b[:i] + b[i: i + int(rng.integers(1, 64))] + b[i:])


def _mutated(fmt: str, original: bytes, rng: np.random.Generator) -> bytes:
    if fmt == "masks" or rng.random() < 0.3:
        return _mutate_bytes(original, rng)
    if fmt == "cvat":
        return _mutate_xml(original.decode(), rng)
    return _mutate_json(json.loads(original), rng)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _check_output(out: Path) -> None:
    for p in (out / "masks").glob("*.png"):
        m = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        assert m is not None and m.ndim == 2 and set(np.unique(m)) <= {0, 255}, p


@pytest.fixture
def capped_memory():
    """Cap the address space at the process's current size plus 3 GiB for the test's duration."""
    with open("/proc/self/statm") as fh:
        vsz = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = vsz + (3 << 30)
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_mutated_exports_give_a_clear_error_or_a_valid_mask(tmp_path, fmt, capped_memory):
    make, rel = FORMATS[fmt]
    template = tmp_path / "template"
    template.mkdir()
    make(template)
    original = (template / rel).read_bytes()
    rng = np.random.default_rng(sorted(FORMATS).index(fmt))
    outcomes = {"error": 0, "ok": 0}
    failures = []
    start = time.monotonic()
    for case in range(CASES):
        work = tmp_path / f"case{case}"
        src, out = work / "src", work / "out"
        shutil.copytree(template, src)
        (src / rel).write_bytes(_mutated(fmt, original, rng))
        before = _tree(src)
        t0 = time.monotonic()
        try:
            convert_dataset(src, out, fmt=fmt)
            _check_output(out)
            outcomes["ok"] += 1
        except (ValueError, FileNotFoundError) as exc:
            if not str(exc).strip():
                failures.append((case, f"empty message from {type(exc).__name__}"))
            outcomes["error"] += 1
        except Exception as exc:  # noqa: BLE001 - the point: any other exception is a failure
            failures.append((case, f"{type(exc).__name__}: {exc}"[:300]))
        assert time.monotonic() - t0 < 10, f"{fmt} case {case} took over 10 s"
        assert _tree(src) == before, f"{fmt} case {case} changed the source folder"
        assert {p.name for p in work.iterdir()} <= {"src", "out"}, f"{fmt} case {case} wrote beside --out"
        shutil.rmtree(work)
    assert {p.name for p in tmp_path.iterdir()} == {"template"}
    assert not failures, f"{fmt}: {len(failures)} of {CASES} cases raised: {failures[:5]}"
    assert outcomes["error"] > CASES // 10 and time.monotonic() - start < 120, outcomes
