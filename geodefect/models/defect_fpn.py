"""``defect_fpn``: smp FPN with a (pretrained) encoder, a fully convolutional defect segmenter.

Why beside ``crack_deeplabv3plus``: DeepLabV3+'s ASPP has an image-pooling branch, a global
average over the whole input. Rail models train on 100 x 384 strips but ``geodefect infer``
slides square windows (384 x 384 on the railhead band), so the pooled feature — and the
output — changed with the window: on rail400 validation frames the DeepLabV3+ / Lite0 model
that scored pixel IoU 0.37 on its strips marked 45 % of the band as defect (IoU 0.11) through
the sliding engine. FPN (as the FCN) has no global pooling: a pixel's output depends on its
neighbourhood only, so strips and windows agree.

``(B, in_channels, H, W)`` -> ``(B, 1, H, W)`` defect logits; sides that are not multiples of
32 are padded (reflect) inside and cropped back. With ``input_mean``/``input_std`` (the tasks
pass them for EfficientNet-Lite encoders) the pretrained-input adapter of
:mod:`geodefect.models.lite` turns 1-band (grey) or 3-band chip-normalised input into what the
ImageNet weights expect.
"""

from __future__ import annotations

from geodefect.models.crack import smp_segmenter
from geodefect.models.registry import register_model


@register_model("defect_fpn")
def defect_fpn(
    *,
    encoder: str = "tu-efficientnet_lite0",
    in_channels: int = 3,
    classes: int = 1,
    decoder_channels: int = 64,
    encoder_weights: str | None = None,
    input_mean: list[float] | None = None,
    input_std: list[float] | None = None,
):
    """FPN segmenter (see module docstring).

    Args:
        encoder: any smp encoder (``tu-efficientnet_lite0|1|2`` have offline ImageNet weights).
        decoder_channels: width of the FPN's segmentation branch (its pyramid is 2x this).
        encoder_weights: None, ``imagenet`` (offline for the Lite encoders) or a local state dict.
        input_mean, input_std: the chips' per-band statistics (0..255) for the pretrained-input adapter.
    """
    from geodefect._torch import import_smp

    smp = import_smp()

    def make_net(bands: int):
        return smp.FPN(encoder_name=encoder, encoder_weights=None, in_channels=bands, classes=classes,
                       decoder_pyramid_channels=2 * decoder_channels, decoder_segmentation_channels=decoder_channels)

    return smp_segmenter(make_net, encoder=encoder, in_channels=in_channels, input_mean=input_mean,
                         input_std=input_std, encoder_weights=encoder_weights, what="defect_fpn", arch="FPN",
                         hint="tu-efficientnet_lite0, resnet18")
