"""Losses against hand-computed cases (train/losses.py, train/distmaps.py)."""

import numpy as np
import pytest
import torch

from train.losses import (boundary_weight_at, edge_band, edge_bce_loss, masked_bce_loss, segmentation_loss,
                          signed_distance_map, soft_dice_loss, surface_loss)

torch.set_num_threads(1)


def _square(size=16, lo=4, hi=12):
    m = np.zeros((size, size), np.uint8)
    m[lo:hi, lo:hi] = 1
    return m


def test_dice_perfect_prediction_is_zero_and_opposite_is_one():
    m = torch.from_numpy(_square())[None]
    perfect = (m.float() * 2 - 1)[:, None] * 50  # confident logits
    assert soft_dice_loss(perfect, m).item() < 1e-3
    assert soft_dice_loss(-perfect, m).item() > 0.95


def test_dice_hand_computed_value():
    # p = 0.5 everywhere (logit 0); 4 px target out of 16; smooth 1: 1 - (2*2 + 1) / (8 + 4 + 1)
    y = torch.zeros(1, 4, 4, dtype=torch.uint8)
    y[0, :1] = 1
    loss = soft_dice_loss(torch.zeros(1, 1, 4, 4), y, smooth=1.0)
    assert loss.item() == pytest.approx(1 - 5 / 13, abs=1e-6)


def test_ignore_index_pixels_are_excluded():
    y = torch.from_numpy(_square())[None].clone()
    logits = (y.float() * 2 - 1)[:, None] * 50
    base = (soft_dice_loss(logits, y).item(), masked_bce_loss(logits, y).item())
    # make some pixels ignore and predict them completely wrong: losses must not change
    y2 = y.clone()
    y2[0, 0:3, :] = 255
    bad = logits.clone()
    bad[0, 0, 0:3, :] = 50.0
    assert soft_dice_loss(bad, y2).item() == pytest.approx(base[0], abs=1e-5)
    assert masked_bce_loss(bad, y2).item() == pytest.approx(base[1], abs=1e-5)
    # ... while without the ignore value the wrong pixels do count
    assert masked_bce_loss(bad, y).item() > base[1] + 1.0


def test_signed_distance_map_signs_and_values():
    m = _square()
    d = signed_distance_map(m).astype(np.float32)
    assert d.dtype == np.float32 and d.shape == m.shape
    assert (d[m == 1] <= 0).all() and (d[m == 0] > 0).all()
    assert d[4, 4] == 0.0  # inner boundary row = 0 (Kervadec's reference)
    assert d[8, 8] == -3.0  # 4 px from the background -> -(4 - 1)
    assert d[8, 2] == 2.0  # 2 px left of the square
    assert not signed_distance_map(np.zeros((8, 8), np.uint8)).any()  # no object -> zeros


def test_surface_loss_is_lower_for_correct_prediction_and_negative():
    m = _square()
    d = torch.from_numpy(signed_distance_map(m).astype(np.float32))[None]
    y = torch.from_numpy(m)[None]
    good = (y.float() * 2 - 1)[:, None] * 50
    good_loss = surface_loss(good, d, y).item()
    assert good_loss < 0  # only inside pixels (negative distances) predicted
    assert surface_loss(-good, d, y).item() > 0  # only outside pixels predicted
    fp_far = good.clone()
    fp_far[0, 0, 0, 0] = 50  # one far false positive
    fp_near = good.clone()
    fp_near[0, 0, 3, 8] = 50  # one false positive next to the object
    assert surface_loss(fp_far, d, y).item() > surface_loss(fp_near, d, y).item() > good_loss


def test_surface_loss_ignores_ignore_pixels():
    m = _square()
    d = torch.from_numpy(signed_distance_map(m).astype(np.float32))[None]
    y = torch.from_numpy(m)[None].clone()
    good = (y.float() * 2 - 1)[:, None] * 50
    y[0, 0, 0] = 255
    bad = good.clone()
    bad[0, 0, 0, 0] = 50
    # pixel count changes by one; the far false positive itself must not count
    assert surface_loss(bad, d, y).item() == pytest.approx(surface_loss(good, d, y).item(), rel=0.01)


def test_edge_band_and_edge_bce():
    y = torch.from_numpy(_square())[None]
    band = edge_band(y, thickness=2)
    assert band[0, 4, 8] == 1 and band[0, 3, 8] == 1 and band[0, 8, 8] == 0 and band[0, 0, 0] == 0
    logits = (y.float() * 2 - 1)[:, None] * 3
    wrong_edge = logits.clone()
    wrong_edge[0, 0, 4, 4:12] *= -1  # errors on the edge row
    wrong_in = logits.clone()
    wrong_in[0, 0, 8, 4 + 2:12 - 2] *= -1  # ... same-size errors deep inside (4 px, scaled below)
    wrong_in[0, 0, 7, 6:10] *= -1
    assert masked_bce_loss(wrong_edge, y).item() == pytest.approx(masked_bce_loss(wrong_in, y).item(), rel=1e-5)
    assert edge_bce_loss(wrong_edge, y, edge_weight=5.0).item() > 2 * edge_bce_loss(wrong_in, y, edge_weight=5.0).item()


def test_boundary_weight_ramp_and_total_loss():
    assert boundary_weight_at(0, 100, 0.5, 0.5) == 0.0
    assert boundary_weight_at(25, 100, 0.5, 0.5) == pytest.approx(0.25)
    assert boundary_weight_at(90, 100, 0.5, 0.5) == pytest.approx(0.5)
    assert boundary_weight_at(0, 100, 0.5, 0.0) == 0.5
    y = torch.from_numpy(_square())[None]
    d = torch.from_numpy(signed_distance_map(_square()).astype(np.float32))[None]
    z = torch.zeros(1, 1, 16, 16, requires_grad=True)
    total, parts = segmentation_loss(z, y, d, boundary_loss="surface", boundary_weight=0.1)
    assert total.item() == pytest.approx(parts["dice"].item() + parts["bce"].item() + 0.1 * parts["boundary"].item(), rel=1e-5)
    total.backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()
    with pytest.raises(ValueError, match="valid names"):
        segmentation_loss(z, y, d, boundary_loss="nope")
    with pytest.raises(ValueError, match="distance maps"):
        segmentation_loss(z, y, None, boundary_loss="surface")


def test_lovasz_hinge_zero_when_margins_are_met_and_ignores_ignore_pixels():
    from train.losses import lovasz_hinge_loss

    t = torch.zeros(2, 16, 16, dtype=torch.uint8)
    t[0, 4:10, 4:12] = 1
    t[1, :2] = 255
    perfect = (t.float() * 2 - 1)[:, None] * 3.0  # every pixel on its side with margin >= 1
    assert lovasz_hinge_loss(perfect, t).item() == pytest.approx(0.0, abs=1e-6)
    wrong = -perfect
    assert lovasz_hinge_loss(wrong, t).item() > 1.0
    flipped_ignore = perfect.clone()
    flipped_ignore[1, 0, :2] = 5.0  # confident "key" on the ignore band only
    assert lovasz_hinge_loss(flipped_ignore, t).item() == pytest.approx(0.0, abs=1e-6)
    base, _ = segmentation_loss(wrong, t, boundary_loss="none")
    with_lovasz, _ = segmentation_loss(wrong, t, boundary_loss="none", lovasz_weight=0.5)
    assert with_lovasz.item() == pytest.approx(base.item() + 0.5 * lovasz_hinge_loss(wrong, t).item(), rel=1e-5)
