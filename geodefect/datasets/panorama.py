"""Stage-2 inputs of the stacked panorama CNN as a map-style dataset."""

from __future__ import annotations

import numpy as np


class HeatmapDataset:
    """Map-style dataset of stage-2 inputs: ``{"image": (C, h, w) float32, "label": int64}``."""

    def __init__(self, inputs: np.ndarray, labels: np.ndarray):
        self.inputs, self.labels = inputs, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        import torch

        return {"image": torch.from_numpy(self.inputs[i]), "label": torch.tensor(int(self.labels[i]))}
