"""Grouped folds and bootstrap intervals for comparing models on a handful of real photos."""

import pytest

from real_eval.folds import comparison_table, grouped_folds, mean_interval, paired_bootstrap, photo_group

NAMES = ["key_3", "key_4", "video1_f0009", "video1_f0211", "shelf__a", "shelf__b"]


def test_frames_of_one_video_and_prefixed_photos_form_one_group():
    assert photo_group("video1_f0009") == photo_group("video1_f0211") == "video1"
    assert photo_group("shelf__a") == "shelf" and photo_group("key_3") == "key_3"
    folds = grouped_folds(NAMES)
    assert [g for g, _, _ in folds] == ["key_3", "key_4", "shelf", "video1"]
    for group, held, rest in folds:
        assert not {photo_group(n) for n in rest} & {group}  # a key is never trained and scored at once
        assert sorted(held + rest) == sorted(NAMES)
    with pytest.raises(ValueError, match="at least two groups"):
        grouped_folds(["video1_f0001", "video1_f0002"])


def test_intervals_hold_the_mean_and_pairing_removes_shared_noise():
    m, lo, hi = mean_interval([0.1, 0.9, 0.5, 0.3])
    assert lo <= m <= hi and m == pytest.approx(0.45)
    a = [0.1, 0.9, 0.5, 0.3, 0.7]
    dm, dlo, dhi = paired_bootstrap([x + 0.05 for x in a], a)  # same photos, a constant gain
    assert dm == pytest.approx(0.05) and dlo == pytest.approx(0.05) and dhi == pytest.approx(0.05)
    with pytest.raises(ValueError, match="equally long"):
        paired_bootstrap([0.1], [0.1, 0.2])


def test_comparison_table_rows():
    res = {"base": {"x": 0.2, "y": 0.4}, "new": {"x": 0.3, "y": 0.5}}
    text = comparison_table(res, "base", what="rule", extra={"new": "2 s"})
    assert "| new | 0.400 [0.300, 0.500] | +0.100 [+0.100, +0.100] | 2 s |" in text
    assert "| y | 0.400 | 0.500 |" in text
