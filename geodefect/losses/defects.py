"""Losses of the defect segmenters (cracks, rail) and the defect logit of 1- or 2-class outputs."""

from __future__ import annotations

from geodefect.errors import ConfigError

SEGMENT_LOSSES = ("dice", "bce", "bce_dice", "ce", "ce_dice")


def pooled_dice_loss(logits, target, *, smooth: float = 1.0):
    """``1 - (2 Σ p t + smooth) / (Σ p + Σ t + smooth)`` over the whole batch (p = sigmoid).

    Pooled over the batch (smp's default) rather than per sample: a strip without defects
    then adds only its false positives to ``Σ p`` instead of scoring 0 on its own.
    """
    import torch

    p = torch.sigmoid(logits.float())
    t = target.float()
    return 1 - (2 * (p * t).sum() + smooth) / (p.sum() + t.sum() + smooth)


def defect_logit(output):
    """``(B, 1, H, W)`` logit of the defect class (for 2 classes: ``l1 - l0``, same decision as softmax)."""
    return output if output.shape[1] == 1 else output[:, 1:2] - output[:, 0:1]


def defect_segmentation_loss(output, mask, *, loss: str, defect_weight: float = 1.0):
    """The segmenter's loss ``loss`` (see :data:`SEGMENT_LOSSES`) and its named parts.

    Args:
        output: ``(B, 1, H, W)`` logits (sigmoid models) or ``(B, 2, H, W)`` (softmax models).
        mask: ``(B, 1, H, W)`` float 0/1 defect mask.
        loss: ``ce``/``ce_dice`` for 2-class models; ``dice``/``bce``/``bce_dice`` for 1-channel ones.
        defect_weight: weight of the defect class in cross-entropy / BCE.
    """
    import torch
    import torch.nn.functional as F

    from geodefect.losses.roads import bce_loss, dice_loss

    two_class = output.shape[1] > 1
    if two_class and loss not in ("ce", "ce_dice"):
        raise ConfigError(f"a {output.shape[1]}-class model trains with loss 'ce' or 'ce_dice', got {loss!r}")
    if not two_class and loss.startswith("ce"):
        raise ConfigError(f"a 1-channel (sigmoid) model trains with loss dice, bce or bce_dice, got {loss!r}")
    weight = output.new_tensor([defect_weight], dtype=torch.float32)
    parts = {}
    if loss.startswith("ce"):
        ce_weight = None if defect_weight == 1.0 else torch.cat([weight.new_ones(1), weight.expand(output.shape[1] - 1)])
        parts["ce"] = F.cross_entropy(output.float(), mask[:, 0].long(), weight=ce_weight)
    if "bce" in loss:
        parts["bce"] = (bce_loss(output, mask) if defect_weight == 1.0 else
                        F.binary_cross_entropy_with_logits(output.float(), mask.float(), pos_weight=weight))
    if loss == "ce_dice":
        parts["dice_loss"] = pooled_dice_loss(defect_logit(output), mask)
    elif "dice" in loss:
        parts["dice_loss"] = dice_loss(output, mask)
    return sum(parts.values()), parts
