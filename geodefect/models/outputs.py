"""Named model outputs (never bare tuples).

``RoadOutput`` is what every road model returns and what the loss, the metrics, the
training loop's sample plots and the road predictor (``geodefect.inference``) consume.
"""

from __future__ import annotations

from typing import Any, NamedTuple


class RoadOutput(NamedTuple):
    """Outputs of a multitask road model, all logits at the input's height and width.

    Attributes:
        road: ``(B, 1, H, W)`` float logits of "road" (``sigmoid`` gives the probability).
        orientation: ``(B, n_classes, H, W)`` float logits of the orientation classes,
            class 0 = background, class ``k >= 1`` = angle bin ``k`` (``softmax`` over dim 1).
        aux: intermediate outputs for deep supervision, each a ``RoadOutput`` of the same
            shapes (stacked hourglass: one per earlier stack). Only filled in training mode;
            empty in eval mode, so inference sees just ``road`` and ``orientation``.
    """

    road: Any
    orientation: Any
    aux: tuple = ()

    def all_outputs(self) -> tuple[RoadOutput, ...]:
        """This output followed by its intermediate ones (the order the loss sums them in)."""
        return (self, *self.aux)

    def probabilities(self) -> dict[str, Any]:
        """``{"road": (B,1,H,W) sigmoid, "orientation": (B,K,H,W) softmax}`` float tensors."""
        return {"road": self.road.sigmoid(), "orientation": self.orientation.softmax(dim=1)}
