"""Losses of the multitask road model (Batra et al. 2019) and reusable segmentation losses.

Road head (one logit channel): ``bce`` (binary cross-entropy = 2-class cross-entropy),
``soft_iou`` (Batra's "mIoU loss": 1 - mean over {road, background} and samples of
Σ p·t / Σ (p + t - p·t), with p the sigmoid), ``dice`` (1 - (2 Σ p·t + 1) / (Σ p + Σ t + 1) per
sample, on the road class), and the sums ``bce_soft_iou`` and ``bce_dice``.

Orientation head: cross-entropy over all pixels, the background class 0 included, as Batra
et al. train it (the network must also say "no road here" in the orientation head); set
``orientation_ignore_background`` to train it on road pixels only.

Deep supervision: :class:`RoadLoss` averages the loss over the final output and every
intermediate output in ``RoadOutput.aux`` with equal weight (Batra's stacked hourglass sums
them; the mean keeps training and validation losses - the latter on the final output only,
as the model returns no ``aux`` in eval mode - on one scale; Adam is insensitive to the factor).
"""

from __future__ import annotations

ROAD_LOSSES = ("bce", "soft_iou", "dice", "bce_soft_iou", "bce_dice")


def soft_iou_loss(logits, target, *, eps: float = 1e-6):
    """Batra's soft mIoU loss for one road logit channel.

    Args:
        logits: ``(B, 1, H, W)`` float road logits.
        target: ``(B, 1, H, W)`` float in {0, 1}.

    Returns:
        Scalar ``1 - mean_{b, c in {road, bg}} I_bc / U_bc``.
    """
    import torch

    p = torch.sigmoid(logits.float()).flatten(1)
    t = target.float().flatten(1)
    inter = torch.stack([(p * t).sum(1), ((1 - p) * (1 - t)).sum(1)], dim=1)
    union = torch.stack([(p + t - p * t).sum(1), ((1 - p) + (1 - t) - (1 - p) * (1 - t)).sum(1)], dim=1)
    return 1 - (inter / (union + eps)).mean()


def dice_loss(logits, target, *, smooth: float = 1.0):
    """``1 - mean_b (2 Σ p t + smooth) / (Σ p + Σ t + smooth)`` on the road class."""
    import torch

    p = torch.sigmoid(logits.float()).flatten(1)
    t = target.float().flatten(1)
    return 1 - ((2 * (p * t).sum(1) + smooth) / (p.sum(1) + t.sum(1) + smooth)).mean()


def bce_loss(logits, target):
    """Mean binary cross-entropy with logits."""
    import torch.nn.functional as F

    return F.binary_cross_entropy_with_logits(logits.float(), target.float())


def road_loss(name: str, logits, target):
    """The road-head loss called ``name`` (one of :data:`ROAD_LOSSES`)."""
    if name == "bce":
        return bce_loss(logits, target)
    if name == "soft_iou":
        return soft_iou_loss(logits, target)
    if name == "dice":
        return dice_loss(logits, target)
    if name == "bce_soft_iou":
        return bce_loss(logits, target) + soft_iou_loss(logits, target)
    if name == "bce_dice":
        return bce_loss(logits, target) + dice_loss(logits, target)
    from geodefect.errors import ConfigError

    raise ConfigError(f"`road_loss` must be one of {', '.join(ROAD_LOSSES)}, got {name!r}")


def orientation_loss(logits, target, *, ignore_background: bool = False):
    """Cross-entropy of ``(B, K, H, W)`` logits against ``(B, H, W)`` bins (0 = background)."""
    import torch.nn.functional as F

    target = target.long()
    if ignore_background:
        target = target.masked_fill(target == 0, -100)
        if not bool((target >= 0).any()):
            return logits.float().sum() * 0.0  # no road pixel in the batch
    return F.cross_entropy(logits.float(), target, ignore_index=-100)


class RoadLoss:
    """``road_weight * mean_outputs road_loss + orientation_weight * mean_outputs orientation CE``.

    Called with a :class:`~geodefect.models.outputs.RoadOutput` and a batch holding
    ``road`` ``(B,1,H,W)`` float and ``orientation`` ``(B,H,W)`` int; returns
    ``(total, {"road": ..., "orientation": ...})`` (the parts unweighted, detached).
    """

    def __init__(self, *, road_loss: str = "bce_soft_iou", road_weight: float = 1.0,
                 orientation_weight: float = 1.0, orientation_ignore_background: bool = False) -> None:
        from geodefect.errors import ConfigError

        if road_loss not in ROAD_LOSSES:
            raise ConfigError(f"`road_loss` must be one of {', '.join(ROAD_LOSSES)}, got {road_loss!r}")
        if road_weight < 0 or orientation_weight < 0 or road_weight + orientation_weight == 0:
            raise ConfigError(
                f"loss weights must be >= 0 and not both 0, got road {road_weight}, orientation {orientation_weight}"
            )
        self.road_loss, self.road_weight = road_loss, road_weight
        self.orientation_weight, self.ignore_background = orientation_weight, orientation_ignore_background

    def __call__(self, output, batch: dict):
        outputs = output.all_outputs()
        road = sum(road_loss(self.road_loss, o.road, batch["road"]) for o in outputs) / len(outputs)
        orient = sum(
            orientation_loss(o.orientation, batch["orientation"], ignore_background=self.ignore_background)
            for o in outputs
        ) / len(outputs)
        total = self.road_weight * road + self.orientation_weight * orient
        return total, {"road": road.detach(), "orientation": orient.detach()}
