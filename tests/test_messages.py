"""Messages that name the real problem: a tiny but valid photo is not called corrupt, a negative
CVAT run is not reported as a bad sum, a truncated JSON or XML export is not an unknown format."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from real_eval.readers import detect_format
from real_eval.readers.base import AnnotationError
from real_eval.readers.cvat import decode_cvat_rle


def test_a_valid_1x1_background_is_too_small_not_corrupt(tmp_path):
    from backgrounds.folder import BackgroundError, FolderBackgrounds

    cv2.imwrite(str(tmp_path / "tiny.png"), np.zeros((1, 1, 3), np.uint8))
    bg = FolderBackgrounds(tmp_path)
    with pytest.raises(BackgroundError) as exc:
        bg.sample(np.random.default_rng(0), (32, 32))
    msg = str(exc.value)
    assert "tiny.png" in msg and "1x1 px, too small" in msg and "corrupt" not in msg


def test_negative_cvat_run_is_named_as_negative():
    with pytest.raises(AnnotationError, match=r"run 1 is negative \(-2\)"):
        decode_cvat_rle("4, -2, 14", 4, 4)  # sums to 16 = 4 x 4: a sum check alone would pass it
    with pytest.raises(AnnotationError, match="sum to 15, expected width\\*height = 16"):
        decode_cvat_rle("4, 11", 4, 4)


def test_a_truncated_json_export_is_reported_as_truncated(tmp_path):
    p = tmp_path / "instances.json"
    p.write_text('{"images": [{"id": 1, "file_name": "a.png"')
    with pytest.raises(ValueError, match="instances.json is not valid JSON.*line 1.*truncated") as exc:
        detect_format(p)
    assert "cannot detect" not in str(exc.value)
    with pytest.raises(ValueError, match="not valid JSON"):
        detect_format(tmp_path)  # a folder holding the truncated file


def test_a_truncated_cvat_export_is_reported_as_truncated(tmp_path):
    from real_eval.dataset import load_real_set

    p = tmp_path / "annotations.xml"
    p.write_text('<annotations><version>1.1</version><image id="0"')
    with pytest.raises(ValueError, match="annotations.xml.*not well-formed XML.*truncated"):
        load_real_set(p)


def test_a_file_of_another_kind_is_still_an_unknown_format(tmp_path):
    p = tmp_path / "notes.json"
    p.write_text('{"hello": 1}')
    with pytest.raises(ValueError, match="cannot detect the annotation format"):
        detect_format(p)


@pytest.mark.parametrize("content", [b"", bytes(range(256)) * 12])
def test_resume_from_an_empty_or_random_file_is_a_clear_error(tmp_path, capsys, content):
    from keysynth.cli import main

    bad = tmp_path / "bad.pt"
    bad.write_bytes(content)
    rc = main(["train", "--out", str(tmp_path / "run"), "--resume", str(bad), "--steps", "1", "--image-size", "64",
               "--backgrounds", "procedural", "--num-workers", "0", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "bad.pt cannot be read safely" in err and "Traceback" not in err
    assert "weights_only` set to `False`" not in err  # never the advice to load it unsafely
