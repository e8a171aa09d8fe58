"""A fixed (untrained) road model for tests and benchmarks: dark pixels are road.

``build_dark_roads``: road logit = gain · (0.3 − mean normalised intensity), so dark roads
(30/255) are road and brighter ground (120..200) is not; orientation logits favour bin 1
everywhere. Deterministic, no training, a few hundred parameters; it returns the same
:class:`~geodefect.models.outputs.RoadOutput` as the real road models.
"""

from __future__ import annotations

N_ORIENT = 19  # 20° bins + background


def build_dark_roads(in_channels: int = 3, gain: float = 20.0):
    """The model above as an ``nn.Module`` taking ``(B, in_channels, H, W)`` normalised images."""
    import torch
    from torch import nn

    from geodefect.models.outputs import RoadOutput

    class DarkRoads(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.road = nn.Conv2d(in_channels, 1, 1)
            self.orientation = nn.Conv2d(in_channels, N_ORIENT, 1)
            with torch.no_grad():
                self.road.weight.fill_(-gain / in_channels)
                self.road.bias.fill_(0.3 * gain)
                self.orientation.weight.zero_()
                self.orientation.bias.zero_()
                self.orientation.bias[1] = 3.0

        def forward(self, x):
            return RoadOutput(road=self.road(x), orientation=self.orientation(x))

    return DarkRoads()
