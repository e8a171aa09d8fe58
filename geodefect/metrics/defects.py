"""Streaming metrics of the inspection models: binary classification counts (crack / no crack)
and defect-class pixel counts (with region-level box counts for rail)."""

from __future__ import annotations

from geodefect.losses.defects import defect_logit


class ClassificationCounts:
    """Streaming binary classification counts (class 1 = crack): tp, fp, fn, tn."""

    def __init__(self) -> None:
        import torch

        self.counts = torch.zeros(4, dtype=torch.float64)

    def update(self, output, batch: dict) -> None:
        pred = output.detach().argmax(dim=1).cpu()
        truth = batch["label"].cpu()
        self.add(pred, truth)

    def add(self, pred, truth) -> None:
        import torch

        tp = float(((pred == 1) & (truth == 1)).sum())
        fp = float(((pred == 1) & (truth == 0)).sum())
        fn = float(((pred == 0) & (truth == 1)).sum())
        tn = float(((pred == 0) & (truth == 0)).sum())
        self.counts += torch.tensor([tp, fp, fn, tn], dtype=torch.float64)

    def state(self):
        return self.counts.clone()

    def load_state(self, state) -> None:
        self.counts = state.clone().double().cpu()

    def compute(self) -> dict[str, float]:
        from geodefect.metrics.scores import binary_classification_scores

        return binary_classification_scores(*self.counts.tolist())


class DefectSegmentationCounts:
    """Streaming pixel counts of the defect class from 1-channel (sigmoid) or 2-channel (softmax) logits.

    With ``regions=True`` (rail) also region-level counts per chip, the box metrics of
    :func:`geodefect.evaluation.inspection.box_hits` on chips: ``box_recall`` = truth regions
    (8-connected components of the mask; a weak box mask's region is its box inside the chip)
    with at least one predicted pixel, ``box_precision`` = predicted components touching a truth region.
    """

    def __init__(self, *, regions: bool = False) -> None:
        import torch

        from geodefect.metrics.segmentation import BinarySegmentationMetric

        self.metric = BinarySegmentationMetric(name="defect")
        self.regions = torch.zeros(4 if regions else 0, dtype=torch.float64)

    def update(self, output, batch: dict) -> None:
        logit = defect_logit(output)
        self.metric.update_logits(logit, batch["mask"])
        if len(self.regions):
            self.regions += region_counts(logit.detach()[:, 0] > 0, batch["mask"][:, 0] > 0.5)

    def state(self):
        import torch

        return torch.cat([self.metric.state(), self.regions])

    def load_state(self, state) -> None:
        n = len(state) - len(self.regions)
        self.metric.load_state(state[:n])
        self.regions = state[n:].clone().double()

    def compute(self) -> dict[str, float]:
        from geodefect.evaluation.inspection import box_scores

        scores = self.metric.compute()
        scores["iou"] = scores.pop("defect_iou")
        scores["f1"] = scores["dice"]
        if len(self.regions):
            scores.update(box_scores(*[int(v) for v in self.regions.tolist()]))
        return scores


def region_counts(pred, truth):
    """``[n_truth_regions, regions_found, n_pred_components, components_on_truth]`` summed over a batch.

    Args:
        pred, truth: ``(B, H, W)`` bool tensors.
    """
    import numpy as np
    import torch
    from scipy.ndimage import label

    eight = np.ones((3, 3), bool)
    counts = np.zeros(4)
    for p, t in zip(pred.cpu().numpy(), truth.cpu().numpy(), strict=True):
        regions, n_regions = label(t, structure=eight)
        components, n_comp = label(p, structure=eight)
        found = np.count_nonzero(np.unique(regions[p])) if n_regions else 0
        on_truth = np.count_nonzero(np.unique(components[t])) if n_comp else 0
        counts += [n_regions, found, n_comp, on_truth]
    return torch.from_numpy(counts)
