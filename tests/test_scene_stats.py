"""Scene statistics (real_eval.scene_stats) and the ``keysynth stats`` command."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from real_eval.scene_stats import compare_table, photo_stats, set_stats


def test_photo_stats_on_a_hand_made_photo():
    img = np.full((100, 200, 3), 50, np.uint8)
    m = np.zeros((100, 200), np.uint8)
    m[20:30, 20:100] = 1  # 80 x 10 key, centroid (59.5, 24.5)
    img[m == 1] = (200, 150, 100)  # luma 0.299*200 + 0.587*150 + 0.114*100 = 159.25
    m[80, 150] = 1  # a 1-px speck: not a key
    s = photo_stats(img, m)
    assert s["keys"] == [1.0]
    assert s["length"] == [pytest.approx(80 / 200)]
    assert s["x"][0] == pytest.approx(59.5 / 200, abs=1e-3) and s["y"][0] == pytest.approx(24.5 / 100, abs=1e-2)
    assert s["brightness"][0] == pytest.approx(159.25, abs=1.0)
    assert s["warmth"][0] == pytest.approx(100.0)
    assert s["edge_contrast"][0] == pytest.approx(159.25 - 50, abs=1.5)
    assert s["key_share"][0] == pytest.approx(801 / 20000)
    with pytest.raises(ValueError, match="uint8"):
        photo_stats(img.astype(np.float32), m)


def test_set_stats_and_table():
    img = np.zeros((40, 40, 3), np.uint8)
    m = np.zeros((40, 40), np.uint8)
    m[5:15, 5:25] = 1
    a = set_stats([(img, m), (img, np.zeros_like(m))])
    assert a["keys"].tolist() == [1.0, 0.0] and a["length"].size == 1
    table = compare_table(a, a, ("one", "two"))
    assert "| length | 0.5 [0.5, 0.5] (1) |" in table


def test_stats_and_preview_write_the_comparison(tmp_path, capsys):
    from keysynth.cli import main

    real = tmp_path / "real"
    (real / "images").mkdir(parents=True)
    (real / "masks").mkdir()
    img = np.full((60, 80, 3), 120, np.uint8)
    m = np.zeros((60, 80), np.uint8)
    m[10:50, 30:40] = 255
    cv2.imwrite(str(real / "images" / "a.png"), img)
    cv2.imwrite(str(real / "masks" / "a.png"), m)
    assert main(["stats", str(real), "--out", str(tmp_path / "s.png"), "--n", "4", "--size", "64",
                 "--backgrounds", "procedural"]) == 0
    assert (tmp_path / "s.png").stat().st_size > 1000
    assert "| length |" in capsys.readouterr().out
    assert main(["preview", "--out", str(tmp_path / "p.png"), "--n", "4", "--size", "64",
                 "--backgrounds", "procedural", "--real", str(real)]) == 0
    assert (tmp_path / "p_stats.png").stat().st_size > 1000 and (tmp_path / "p.png").is_file()
    assert "| edge_contrast |" in capsys.readouterr().out
    assert main(["preview", "--out", str(tmp_path / "q.png"), "--n", "2", "--size", "64",
                 "--backgrounds", "procedural", "--real", str(tmp_path / "missing")]) == 2
    assert not (tmp_path / "q.png").exists()
