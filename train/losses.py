"""Segmentation losses: soft Dice + BCE + a selectable boundary term, all honouring ``ignore_index``.

Shapes: ``logits`` float (N, 1, H, W) (any float dtype; computed in float32); ``target`` uint8 or
int (N, H, W) or (N, 1, H, W) with values {0, 1} and ``ignore_index`` (default 255) for pixels that
count nowhere; ``dist`` float (N, H, W) signed distance maps from
:func:`train.distmaps.signed_distance_map`.

Boundary terms (``BOUNDARY_LOSSES``):
- ``"surface"``: Kervadec et al., "Boundary loss for highly unbalanced segmentation", MIDL 2019:
  ``mean_valid(sigmoid(logits) * dist)``, dist in px, negative inside the object. Its minimum is
  reached when exactly the object is predicted; it is used *with* a region loss, the boundary
  weight ramped up over training (Kervadec's alpha schedule; see :func:`boundary_weight_at`).
- ``"edge_bce"``: BCE with extra weight on a band of the given thickness around the mask edges
  (morphological gradient = dilation - erosion of the mask, computed on the device with max-pool),
  as the portrait-matting projects weight BCE on Canny edges of the mask.
- ``"none"``: no boundary term.

Optional IoU surrogate: the Lovasz hinge (Berman et al., "The Lovasz-Softmax loss: a tractable
surrogate for the optimization of the intersection-over-union measure", CVPR 2018), per image, from
``segmentation_models_pytorch.losses.LovaszLoss``; weight ``lovasz_weight`` (0 = off).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from train.distmaps import signed_distance_map

__all__ = [
    "BOUNDARY_LOSSES",
    "soft_dice_loss",
    "masked_bce_loss",
    "surface_loss",
    "edge_band",
    "edge_bce_loss",
    "boundary_weight_at",
    "lovasz_hinge_loss",
    "segmentation_loss",
    "signed_distance_map",
]

BOUNDARY_LOSSES = ("surface", "edge_bce", "none")


def _prep(logits: torch.Tensor, target: torch.Tensor, ignore_index: int):
    """-> (logits float32 (N,H,W), target float32 {0,1} (N,H,W), valid float32 (N,H,W))."""
    if logits.ndim == 4:
        if logits.shape[1] != 1:
            raise ValueError(f"binary losses expect logits (N, 1, H, W), got {tuple(logits.shape)}")
        logits = logits[:, 0]
    if target.ndim == 4:
        target = target[:, 0]
    if logits.shape != target.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and target {tuple(target.shape)} differ in N/H/W")
    valid = (target != ignore_index).float()
    y = (target == 1).float()
    return logits.float(), y, valid


def _smp_inputs(logits: torch.Tensor, target: torch.Tensor, ignore_index: int):
    """-> (logits float32 (N, H, W), target int64 (N, H, W) with ``ignore_index`` kept): what smp's
    losses take; shapes checked as in :func:`_prep`."""
    z, _, _ = _prep(logits, target, ignore_index)
    return z, (target[:, 0] if target.ndim == 4 else target).long()


def soft_dice_loss(logits, target, ignore_index: int = 255, smooth: float = 1.0) -> torch.Tensor:
    """Batch soft Dice loss ``1 - (2 sum(p y) + s) / (sum(p) + sum(y) + s)`` over valid pixels.

    Source: Milletari et al., V-Net (3DV 2016), computed by smp's ``DiceLoss`` (binary mode, sums
    over the whole batch so images without a key do not dominate; smp's ``smooth`` is ``s / 2`` in
    this form). ``p = sigmoid(logits)``. A batch with no key pixel at all gives 0, as in smp.
    Returns a scalar in [0, 1]; ~0 for a confident perfect prediction.
    """
    from segmentation_models_pytorch.losses import DiceLoss

    z, t = _smp_inputs(logits, target, ignore_index)
    return DiceLoss(mode="binary", from_logits=True, smooth=smooth / 2, ignore_index=ignore_index)(z[:, None], t)


def masked_bce_loss(logits, target, ignore_index: int = 255, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Binary cross-entropy with logits, averaged over valid pixels (weighted mean if ``weight``).

    ``weight``: optional float (N, H, W) per-pixel weights (>= 0). Returns a scalar >= 0.
    """
    z, y, valid = _prep(logits, target, ignore_index)
    w = valid if weight is None else valid * weight.float()
    bce = F.binary_cross_entropy_with_logits(z, y, reduction="none")
    return (bce * w).sum() / w.sum().clamp_min(1.0)


def surface_loss(logits, dist, target, ignore_index: int = 255) -> torch.Tensor:
    """Kervadec et al. (MIDL 2019) boundary loss: ``mean over valid pixels of sigmoid(z) * dist``.

    ``dist``: float (N, H, W) signed distance in px (> 0 outside, <= 0 inside). Negative when the
    prediction covers the object and nothing else; positive terms penalise far false positives
    more than near ones. Returns a scalar (unbounded sign).
    """
    z, _, valid = _prep(logits, target, ignore_index)
    if dist.ndim == 4:
        dist = dist[:, 0]
    if dist.shape != z.shape:
        raise ValueError(f"distance maps {tuple(dist.shape)} do not match logits {tuple(z.shape)}")
    return (torch.sigmoid(z) * dist.float() * valid).sum() / valid.sum().clamp_min(1.0)


def edge_band(target, thickness: int = 3, ignore_index: int = 255) -> torch.Tensor:
    """Morphological gradient of the mask: 1.0 on a band ~``thickness`` px wide around edges.

    Dilation and erosion with a square structuring element via ``max_pool2d`` (Serra's
    morphological gradient, dilate(m) - erode(m)). Returns float32 (N, H, W) in {0, 1}.
    """
    if target.ndim == 4:
        target = target[:, 0]
    y = (target == 1).float()[:, None]
    r = max(1, (int(thickness) + 1) // 2)  # radius: band = r px outside + r px inside the edge
    dil = F.max_pool2d(y, 2 * r + 1, stride=1, padding=r)
    ero = -F.max_pool2d(-y, 2 * r + 1, stride=1, padding=r)
    return (dil - ero)[:, 0]


def edge_bce_loss(logits, target, ignore_index: int = 255, thickness: int = 3, edge_weight: float = 5.0):
    """BCE weighted ``1 + edge_weight`` on the :func:`edge_band` pixels, 1 elsewhere (valid only)."""
    w = 1.0 + float(edge_weight) * edge_band(target, thickness, ignore_index)
    return masked_bce_loss(logits, target, ignore_index, weight=w)


def lovasz_hinge_loss(logits, target, ignore_index: int = 255) -> torch.Tensor:
    """Binary Lovasz hinge per image, averaged (smp's ``LovaszLoss``, Berman et al., CVPR 2018): a
    convex surrogate of 1 - IoU of the thresholded prediction; ``ignore_index`` pixels count nowhere."""
    from segmentation_models_pytorch.losses import LovaszLoss

    z, t = _smp_inputs(logits, target, ignore_index)
    return LovaszLoss(mode="binary", per_image=True, ignore_index=ignore_index, from_logits=True)(z, t)


def boundary_weight_at(step: int, total_steps: int, final_weight: float, ramp: float) -> float:
    """Linear ramp of the boundary weight from 0 to ``final_weight`` over ``ramp * total_steps``.

    Kervadec et al. (2019) rebalance region and boundary terms over training (alpha schedule);
    this is the additive form: the region terms keep weight 1 and the boundary term grows.
    ``ramp == 0`` gives the final weight from step 0.
    """
    n = ramp * total_steps
    if n <= 0:
        return float(final_weight)
    return float(final_weight) * min(1.0, step / n)


def segmentation_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    dist: torch.Tensor | None = None,
    *,
    boundary_loss: str = "surface",
    boundary_weight: float = 0.01,
    dice_weight: float = 1.0,
    bce_weight: float = 1.0,
    edge_thickness: int = 3,
    edge_weight: float = 5.0,
    ignore_index: int = 255,
    lovasz_weight: float = 0.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total loss ``dice_w * Dice + bce_w * BCE + boundary_weight * boundary (+ lovasz_weight *
    Lovasz hinge, per image)``, plus its parts.

    Returns ``(total scalar tensor, {"loss", "dice", "bce", "boundary"} detached 0-d tensors)``;
    parts stay tensors so logging does not force a device sync every step.

    Raises:
        ValueError: unknown ``boundary_loss`` (lists :data:`BOUNDARY_LOSSES`), or ``"surface"``
            without ``dist`` maps.
    """
    if boundary_loss not in BOUNDARY_LOSSES:
        raise ValueError(f"unknown boundary_loss {boundary_loss!r}; valid names: {', '.join(BOUNDARY_LOSSES)}")
    dice = soft_dice_loss(logits, target, ignore_index)
    bce = masked_bce_loss(logits, target, ignore_index)
    if boundary_loss == "surface":
        if dist is None:
            raise ValueError("boundary_loss='surface' needs distance maps (the stream computes them when asked)")
        bnd = surface_loss(logits, dist, target, ignore_index)
    elif boundary_loss == "edge_bce":
        bnd = edge_bce_loss(logits, target, ignore_index, edge_thickness, edge_weight)
    else:
        bnd = logits.new_zeros((), dtype=torch.float32)
    total = dice_weight * dice + bce_weight * bce + boundary_weight * bnd
    if lovasz_weight > 0:
        total = total + lovasz_weight * lovasz_hinge_loss(logits, target, ignore_index)
    parts = {"loss": total.detach(), "dice": dice.detach(), "bce": bce.detach(), "boundary": bnd.detach()}
    return total, parts
