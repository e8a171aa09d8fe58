"""``crack_unet``: smp U-Net with a (pretrained) encoder, a full-resolution crack segmenter.

Why beside ``crack_deeplabv3plus``: DeepLabV3+ predicts at 1/4 of the input resolution and
upsamples bilinearly; CrackForest's cracks are 2-5 px wide, so one output cell spans the whole
crack width and the mask's edges are interpolated. The U-Net decoder climbs back to full
resolution through the encoder's stride-2 and stride-1 skips, and has no global pooling (an
output pixel depends on its neighbourhood, so chips and sliding windows agree, as ``defect_fpn``).
Its decoder is narrow (``decoder_channels`` c: stages 8c, 4c, 2c, c, c; c = 16 is smp's width
halved), which keeps a training step below DeepLabV3+'s on the CPU.

``(B, in_channels, H, W)`` -> ``(B, 1, H, W)`` crack logits; sides that are not multiples of 32
are padded (reflect) inside and cropped back. With ``input_mean``/``input_std`` (the tasks pass
them for EfficientNet-Lite encoders) the pretrained-input adapter of :mod:`geodefect.models.lite`
turns 1- or 3-band chip-normalised input into what the ImageNet weights expect.
"""

from __future__ import annotations

from geodefect.errors import InputError
from geodefect.models.crack import smp_segmenter
from geodefect.models.registry import register_model


def unet_decoder_widths(decoder_channels: int) -> tuple[int, ...]:
    """The five U-Net decoder stage widths for base width ``decoder_channels`` (deepest first).

    Raises:
        InputError: a width below 4.
    """
    c = int(decoder_channels)
    if c < 4 or c != decoder_channels:
        raise InputError(f"`decoder_channels` of crack_unet must be an integer >= 4 (stages 8c, 4c, 2c, c, c; "
                         f"e.g. 16), got {decoder_channels!r}")
    return (8 * c, 4 * c, 2 * c, c, c)


@register_model("crack_unet")
def crack_unet(
    *,
    encoder: str = "tu-efficientnet_lite0",
    in_channels: int = 3,
    classes: int = 1,
    decoder_channels: int = 16,
    encoder_weights: str | None = None,
    input_mean: list[float] | None = None,
    input_std: list[float] | None = None,
):
    """U-Net crack segmenter (see module docstring).

    Args:
        encoder: any smp encoder (``tu-efficientnet_lite0|1|2`` have offline ImageNet weights).
        decoder_channels: base decoder width c (stages 8c, 4c, 2c, c, c).
        encoder_weights: None, ``imagenet`` (offline for the Lite encoders) or a local state dict.
        input_mean, input_std: the chips' per-band statistics (0..255) for the pretrained-input adapter.
    """
    from geodefect._torch import import_smp

    smp = import_smp()
    widths = unet_decoder_widths(decoder_channels)

    def make_net(bands: int):
        return smp.Unet(encoder_name=encoder, encoder_weights=None, in_channels=bands, classes=classes,
                        decoder_channels=widths)

    return smp_segmenter(make_net, encoder=encoder, in_channels=in_channels, input_mean=input_mean,
                         input_std=input_std, encoder_weights=encoder_weights, what="crack_unet", arch="Unet",
                         hint="tu-efficientnet_lite0, resnet18")
