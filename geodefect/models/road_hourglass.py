"""``road_hourglass``: the stacked multitask hourglass of Batra et al. (CVPR 2019).

Structure (``w`` = ``width``, features at 1/4 resolution; Batra use 128):

* stem: 7x7 conv stride 2 -> residual -> max-pool -> 2 residuals  (1/4 resolution)
* ``stacks`` hourglasses (recursive: residual skip + pool -> ... -> nearest upsample, ``depth``
  levels), each followed by a road head (1 logit) and an orientation head (``n_classes``
  logits) at 1/4 resolution; between stacks the features and both predictions are merged
  back into the next stack's input (Newell et al. 2016)
* a decoder of two stride-2 transposed convolutions (kernel 4: no checkerboard) + a residual brings the last stack's
  features to full resolution for the final road and orientation heads.

Intermediate supervision: in training mode the output's ``aux`` holds every stack's
1/4-resolution predictions, upsampled bilinearly to the input size, and the loss averages over
them with equal weight (:class:`geodefect.losses.RoadLoss`; Batra sums them). In eval mode ``aux`` is empty.

Deviations from Batra's code (documented in DESIGN.md, section 10 "Training"): one shared hourglass
decoder per stack feeds both heads (theirs splits each hourglass's upsampling path into a
road and an orientation branch), intermediate outputs are upsampled to the labels instead
of supervising against downsampled labels, and ``depth`` defaults to 3 (stride 32) instead
of 4 (stride 64) so small chips keep a spatial extent at the bottleneck.
"""

from __future__ import annotations

import functools

from geodefect.models.outputs import RoadOutput
from geodefect.models.registry import register_model
from geodefect.models.road_linknet import pad_to_stride


@functools.cache
def _classes():
    import torch.nn.functional as F
    from torch import nn

    def conv_bn_relu(cin: int, cout: int, k: int = 1, stride: int = 1) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    class Residual(nn.Module):
        """Pre-activation bottleneck residual (BN-ReLU-conv 1x1, 3x3, 1x1), 1x1 projection if needed."""

        def __init__(self, cin: int, cout: int) -> None:
            super().__init__()
            mid = max(cout // 2, 1)
            self.body = nn.Sequential(
                nn.BatchNorm2d(cin), nn.ReLU(inplace=True), nn.Conv2d(cin, mid, 1, bias=False),
                nn.BatchNorm2d(mid), nn.ReLU(inplace=True), nn.Conv2d(mid, mid, 3, padding=1, bias=False),
                nn.BatchNorm2d(mid), nn.ReLU(inplace=True), nn.Conv2d(mid, cout, 1),
            )
            self.skip = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)

        def forward(self, x):
            return self.body(x) + self.skip(x)

    class Hourglass(nn.Module):
        def __init__(self, depth: int, width: int) -> None:
            super().__init__()
            self.up = Residual(width, width)
            self.down = Residual(width, width)
            self.inner = Hourglass(depth - 1, width) if depth > 1 else Residual(width, width)
            self.out = Residual(width, width)

        def forward(self, x):
            low = self.out(self.inner(self.down(F.max_pool2d(x, 2))))
            return self.up(x) + F.interpolate(low, scale_factor=2, mode="nearest")

    class RoadHourglass(nn.Module):
        def __init__(self, *, in_channels: int, n_classes: int, width: int, stacks: int, depth: int) -> None:
            super().__init__()
            half = max(width // 2, 1)
            self.stem = nn.Sequential(conv_bn_relu(in_channels, half, 7, 2), Residual(half, width), nn.MaxPool2d(2),
                                      Residual(width, width), Residual(width, width))
            self.hourglasses = nn.ModuleList(Hourglass(depth, width) for _ in range(stacks))
            self.features = nn.ModuleList(nn.Sequential(Residual(width, width), conv_bn_relu(width, width))
                                          for _ in range(stacks))
            self.road_heads = nn.ModuleList(nn.Conv2d(width, 1, 1) for _ in range(stacks))
            self.orientation_heads = nn.ModuleList(nn.Conv2d(width, n_classes, 1) for _ in range(stacks))
            self.merge_features = nn.ModuleList(nn.Conv2d(width, width, 1) for _ in range(stacks - 1))
            self.merge_road = nn.ModuleList(nn.Conv2d(1, width, 1) for _ in range(stacks - 1))
            self.merge_orientation = nn.ModuleList(nn.Conv2d(n_classes, width, 1) for _ in range(stacks - 1))
            self.decoder = nn.Sequential(
                nn.ConvTranspose2d(width, half, 4, 2, 1, bias=False), nn.BatchNorm2d(half),
                nn.ReLU(inplace=True), Residual(half, half),
                nn.ConvTranspose2d(half, half, 4, 2, 1, bias=False), nn.BatchNorm2d(half),
                nn.ReLU(inplace=True),
            )
            self.road_final = nn.Conv2d(half, 1, 3, padding=1)
            self.orientation_final = nn.Conv2d(half, n_classes, 3, padding=1)
            self.stride = 4 * 2**depth

        def forward(self, x) -> RoadOutput:
            """``x``: ``(B, C, H, W)`` -> :class:`RoadOutput` at ``(H, W)`` (``aux`` only in training mode)."""
            x, (h, w) = pad_to_stride(x, self.stride)
            size = x.shape[-2:]
            y = self.stem(x)
            aux = []
            for i, hourglass in enumerate(self.hourglasses):
                feat = self.features[i](hourglass(y))
                last = i == len(self.hourglasses) - 1
                if self.training or not last:
                    road, orient = self.road_heads[i](feat), self.orientation_heads[i](feat)
                    aux.append((road, orient))
                if not last:
                    y = y + self.merge_features[i](feat) + self.merge_road[i](road) + self.merge_orientation[i](orient)
            up = self.decoder(feat)
            final = RoadOutput(self.road_final(up)[..., :h, :w], self.orientation_final(up)[..., :h, :w])
            if not self.training:
                return final
            return final._replace(aux=tuple(RoadOutput(_upsample(r, size)[..., :h, :w], _upsample(o, size)[..., :h, :w])
                                            for r, o in aux))

    def _upsample(t, size):
        return F.interpolate(t, size=tuple(size), mode="bilinear", align_corners=False)

    return RoadHourglass


@register_model("road_hourglass")
def road_hourglass(*, in_channels: int = 3, n_classes: int = 19, width: int = 64, stacks: int = 2, depth: int = 3):
    """Build the stacked multitask hourglass.

    Args:
        in_channels: image bands.
        n_classes: orientation classes = 360 / bin_deg + 1 (class 0 = background).
        width: feature channels at 1/4 resolution (Batra: 128; 64 default for CPU budgets; 8 in tests).
        stacks: number of hourglasses (Batra: 2), each supervised.
        depth: pooling levels per hourglass; inputs are padded to multiples of ``4 * 2**depth``.
    """
    from geodefect.errors import ConfigError

    if width < 2 or stacks < 1 or not 1 <= depth <= 6:
        raise ConfigError(f"road_hourglass needs width >= 2, stacks >= 1, depth in 1..6; got {width}, {stacks}, {depth}")
    return _classes()(in_channels=in_channels, n_classes=n_classes, width=width, stacks=stacks, depth=depth)
