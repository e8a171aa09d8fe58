"""``road_linknet``: LinkNet decoder on an smp encoder with a road head and an orientation head.

Batra et al. (2019) use LinkNet34 as one of their multitask baselines; this is smp's
LinkNet decoder (5 blocks, 32 pre-final channels) shared by two 1x1-conv heads. Inputs whose
height/width are not multiples of the encoder stride (32) are padded (reflect) and the
outputs cropped back.
"""

from __future__ import annotations

import functools

from geodefect.models.outputs import RoadOutput
from geodefect.models.registry import register_model


def pad_to_stride(x, stride: int):
    """Pad ``(B,C,H,W)`` at the bottom/right to multiples of ``stride``. Returns ``(padded, (H, W))``."""
    import torch.nn.functional as F

    h, w = x.shape[-2:]
    ph, pw = -h % stride, -w % stride
    if ph == 0 and pw == 0:
        return x, (h, w)
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode), (h, w)


@functools.cache
def _module_class():
    import torch

    from geodefect._torch import import_smp

    smp = import_smp()
    from segmentation_models_pytorch.base import SegmentationHead
    from segmentation_models_pytorch.decoders.linknet.decoder import LinknetDecoder

    from geodefect.models.encoder_weights import build_encoder

    class RoadLinkNet(torch.nn.Module):
        """LinkNet with heads ``road`` (1 logit) and ``orientation`` (``n_classes`` logits)."""

        def __init__(self, *, encoder: str, in_channels: int, n_classes: int, encoder_depth: int,
                     encoder_weights: str | None) -> None:
            super().__init__()
            self.encoder = build_encoder(encoder, in_channels=in_channels, depth=encoder_depth, weights=encoder_weights)
            self.decoder = LinknetDecoder(encoder_channels=self.encoder.out_channels, n_blocks=encoder_depth,
                                          prefinal_channels=32)
            self.road_head = SegmentationHead(32, 1, kernel_size=1)
            self.orientation_head = SegmentationHead(32, n_classes, kernel_size=1)
            smp.base.initialization.initialize_decoder(self.decoder)
            smp.base.initialization.initialize_head(self.road_head)
            smp.base.initialization.initialize_head(self.orientation_head)
            self.stride = 2**encoder_depth

        def forward(self, x) -> RoadOutput:
            """``x``: ``(B, C, H, W)`` float normalised image -> :class:`RoadOutput` logits at ``(H, W)``."""
            x, (h, w) = pad_to_stride(x, self.stride)
            features = self.decoder(self.encoder(x))
            return RoadOutput(self.road_head(features)[..., :h, :w], self.orientation_head(features)[..., :h, :w])

    return RoadLinkNet


@register_model("road_linknet")
def road_linknet(*, encoder: str = "resnet34", in_channels: int = 3, n_classes: int = 19, encoder_depth: int = 5,
                 encoder_weights: str | None = None):
    """Build the multitask LinkNet.

    Args:
        encoder: any smp encoder name (resnet18/34/50/101/152, efficientnet-b0, tu-efficientnet_lite0, ...).
        in_channels: image bands.
        n_classes: orientation classes = 360 / bin_deg + 1 (class 0 = background); 19 for 20° bins.
        encoder_depth: encoder stages (3..5); the stride inputs are padded to is ``2**encoder_depth``.
        encoder_weights: None, ``"imagenet"`` or a local weights file
            (see :mod:`geodefect.models.encoder_weights`). Packages store None: their own weights win.
    """
    return _module_class()(encoder=encoder, in_channels=in_channels, n_classes=n_classes,
                           encoder_depth=encoder_depth, encoder_weights=encoder_weights)
