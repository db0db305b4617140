"""write_preview writes a contact sheet with green contours and a histogram figure."""

import cv2
import pytest

from backgrounds import ProceduralBackgrounds
from synth import SynthConfig
from synth.occluders import FallbackKeys
from synth.preview import flatten_numeric, write_preview


def test_write_preview(tmp_path):
    out, hist = tmp_path / "p.png", tmp_path / "h.png"
    cfg = SynthConfig(size=64, empty_prob=0.0, key_length_range=(0.3, 0.6), key_length_typical_range=(0.3, 0.6))
    write_preview(out, n=4, config=cfg, run_seed=1, backgrounds=ProceduralBackgrounds(("paper",)),
                  hist_png=hist, keys=FallbackKeys())
    img = cv2.imread(str(out))
    assert img is not None and img.shape[0] >= 128 and img.shape[1] >= 128
    green = (img[..., 1] == 255) & (img[..., 0] == 0) & (img[..., 2] == 0)
    assert green.sum() > 20  # mask contours drawn
    h = cv2.imread(str(hist))
    assert h is not None and h.shape[0] > 100
    assert not list(tmp_path.glob(".*tmp*"))  # atomic writes left no temp files


def test_preview_bad_folder(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        write_preview(tmp_path / "no" / "p.png", n=1, config=SynthConfig(size=32))


def test_flatten_numeric():
    d = flatten_numeric({"seed": 5, "a": {"b": 1.5, "c": True, "d": "x"}, "keys": [{"L": 1}, {"L": 2}]})
    assert d == {"a.b": [1.5], "keys.L": [1.0, 2.0]}
