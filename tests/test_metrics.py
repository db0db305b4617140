"""Metrics against tiny cases worked out by hand (see the comments next to each expectation)."""

from __future__ import annotations

import numpy as np
import pytest

from real_eval.metrics import (
    boundary_f1,
    boundary_iou,
    boundary_pixels,
    confusion_counts,
    image_metrics,
    region_metrics,
    summarize,
)

GT = np.array([[0, 0, 0, 0],
               [0, 1, 1, 0],
               [0, 1, 1, 0],
               [0, 0, 0, 0]], np.uint8)
PRED = np.array([[0, 0, 0, 0],
                 [0, 1, 1, 1],
                 [0, 0, 0, 0],
                 [0, 0, 0, 0]], bool)


def test_region_metrics_by_hand():
    # TP = (1,1),(1,2) = 2; FP = (1,3) = 1; FN = (2,1),(2,2) = 2.
    c = confusion_counts(PRED, GT)
    assert (c["tp"], c["fp"], c["fn"], c["tn"], c["n_ignore"]) == (2, 1, 2, 11, 0)
    m = region_metrics(c["tp"], c["fp"], c["fn"])
    assert m["iou"] == pytest.approx(2 / 5)        # 2 / (2+1+2)
    assert m["dice"] == pytest.approx(4 / 7)       # 2*2 / (2*2+1+2)
    assert m["precision"] == pytest.approx(2 / 3)  # 2 / (2+1)
    assert m["recall"] == pytest.approx(1 / 2)     # 2 / (2+2)


def test_ignore_pixels_are_excluded():
    gt = GT.copy()
    gt[1, 3] = 255  # the only false positive now lies in the ignore region
    gt[3, 0] = 255
    c = confusion_counts(PRED, gt)
    assert (c["tp"], c["fp"], c["fn"], c["n_ignore"]) == (2, 0, 2, 2)
    m = image_metrics(PRED, gt, tol_px=0)
    assert m["iou"] == pytest.approx(2 / 4)
    assert m["precision"] == 1.0
    # predicted boundary pixel (1,3) lies in the ignore region and is not counted
    assert m["bp_total"] == 1 + 1  # (1,1) and (1,2) both touch background above/below


def test_empty_conventions():
    z = np.zeros((3, 3), np.uint8)
    both = image_metrics(np.zeros((3, 3), bool), z, tol_px=1)
    for k in ("iou", "dice", "precision", "recall", "boundary_f1", "boundary_iou"):
        assert both[k] == 1.0, k
    fp_only = image_metrics(np.ones((3, 3), bool) & (np.arange(9).reshape(3, 3) == 4), z, tol_px=1)
    assert (fp_only["iou"], fp_only["dice"], fp_only["precision"], fp_only["recall"]) == (0.0, 0.0, 0.0, 1.0)
    assert fp_only["boundary_f1"] == 0.0
    gt = z.copy()
    gt[1, 1] = 1
    miss = image_metrics(np.zeros((3, 3), bool), gt, tol_px=1)
    assert (miss["iou"], miss["dice"], miss["precision"], miss["recall"]) == (0.0, 0.0, 1.0, 0.0)
    assert miss["boundary_f1"] == 0.0 and miss["boundary_iou"] == 0.0


def test_boundary_pixels_frame_is_not_a_boundary():
    m = np.zeros((5, 5), bool)
    m[1:4, 0:2] = True
    b = boundary_pixels(m)
    # (2,0): neighbours up/down/right are key, left is outside the image -> not boundary.
    expected = np.zeros((5, 5), bool)
    expected[[1, 3, 1, 2, 3], [0, 0, 1, 1, 1]] = True
    assert np.array_equal(b, expected)
    sq = np.zeros((5, 5), bool)
    sq[1:4, 1:4] = True
    assert boundary_pixels(sq).sum() == 8 and not boundary_pixels(sq)[2, 2]


def test_boundary_f1_shifted_square_by_hand():
    gt = np.zeros((6, 6), np.uint8)
    gt[1:4, 1:4] = 1
    pred = np.zeros((6, 6), bool)
    pred[1:4, 2:5] = True
    # Boundaries: 8 px each; common pixels (1,2),(1,3),(3,2),(3,3) -> P = R = 4/8 at tolerance 0.
    r0 = boundary_f1(pred, gt, tol_px=0)
    assert (r0["bp_total"], r0["bg_total"], r0["bp_matched"], r0["bg_matched"]) == (8, 8, 4, 4)
    assert r0["boundary_f1"] == pytest.approx(0.5)
    # Every boundary pixel is within 1 px of the other boundary -> F1 = 1 at tolerance 1.
    assert boundary_f1(pred, gt, tol_px=1)["boundary_f1"] == pytest.approx(1.0)
    # Tolerance as a fraction of the diagonal: 6*sqrt(2) * 0.1 = 0.85 px -> same as 0 px here.
    rf = boundary_f1(pred, gt, tol_px=None, tol_frac=0.1)
    assert rf["tol_px"] == pytest.approx(0.1 * np.hypot(6, 6))
    assert rf["boundary_f1"] == pytest.approx(0.5)


def test_boundary_iou_by_hand():
    gt = np.zeros((6, 6), np.uint8)
    gt[1:5, 1:5] = 1            # 4x4 square: band (d=1) = 16 - inner 2x2 = 12 px
    pred = np.zeros((6, 6), bool)
    pred[1:4, 1:4] = True       # 3x3 square: band = 9 - centre = 8 px
    r = boundary_iou(pred, gt, d_px=1)
    # intersection: (1,1),(1,2),(1,3),(2,1),(3,1) = 5; union = 12 + 8 - 5 = 15.
    assert (r["biou_inter"], r["biou_union"]) == (5, 15)
    assert r["boundary_iou"] == pytest.approx(1 / 3)
    assert boundary_iou(gt.astype(bool), gt, d_px=1)["boundary_iou"] == 1.0
    # Cheng et al.'s reference counts the image border as contour: a full 5x5 mask has a 16 px band.
    full = np.ones((5, 5), np.uint8)
    assert boundary_iou(full.astype(bool), full, d_px=1)["biou_union"] == 16
    # d from the diagonal: round(0.02 * hypot(100, 100)) = round(2.83) = 3
    assert boundary_iou(np.zeros((100, 100), bool), np.zeros((100, 100), np.uint8))["d_px"] == 3


def test_summarize_micro_vs_mean_and_bootstrap():
    a = image_metrics(np.array([[1, 0]], bool), np.array([[1, 1]], np.uint8), tol_px=1)        # IoU 1/2
    b = image_metrics(np.array([[1, 1, 1, 1]], bool), np.array([[1, 1, 1, 0]], np.uint8), tol_px=1)  # IoU 3/4
    s = summarize([a, b], n_boot=200, seed=3)
    assert s["mean"]["iou"] == pytest.approx((0.5 + 0.75) / 2)
    assert s["micro"]["iou"] == pytest.approx(4 / 6)  # TP 1+3, FP 0+1, FN 1+0
    lo, hi = s["mean_ci"]["iou"]
    assert 0.5 <= lo <= s["mean"]["iou"] <= hi <= 0.75
    assert summarize([a, b], n_boot=200, seed=3)["mean_ci"] == s["mean_ci"]  # explicit seed -> reproducible
    assert summarize([], n_boot=10)["n_images"] == 0


def test_bad_gt_values_are_rejected():
    with pytest.raises(ValueError, match="0, 1 or 255"):
        confusion_counts(np.zeros((2, 2), bool), np.full((2, 2), 7, np.uint8))
    with pytest.raises(ValueError, match="same"):
        confusion_counts(np.zeros((2, 3), bool), np.zeros((2, 2), np.uint8))
