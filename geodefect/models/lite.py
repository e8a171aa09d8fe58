"""EfficientNet-Lite0/1/2 with offline ImageNet weights, and the ONE input adapter for pretrained trunks.

Pretrained trunks expect 3 bands normalised as their weights were trained (the Lite weights:
RGB as ``(v - 127) / 128`` on the 0..255 scale). geodefect's data pipeline normalises every
chip with the chips' own per-band mean/std (``meta.json``; the recipe's ``normalization``,
applied again by ``geodefect infer``). :class:`PretrainedInput` sits at the front of the model
and turns that input into what the weights expect:

    out_k = (x_c * std_c + mean_c - M_k) / S_k      (c = 0 for 1-band input, repeated to 3; c = k for RGB)

with the chip statistics (``input_mean``/``input_std``, stored in the model kwargs of the
recipe and as buffers) and the weights' ``M``/``S``. Training and inference then apply exactly
the same transform (it is part of the model, so ONNX exports carry it too), grayscale frames
(rail, grayscale pavement cameras) need no special case anywhere else, and a model trained from
scratch (``--encoder-weights none``) has the same architecture as a pretrained one.

Builders here are used by ``crack_densenet169`` (``variant=efficientnet_lite0|1|2``), the
patch classifiers (``classifier_efficientnet_lite0|1|2``) and ``crack_deeplabv3plus`` with a
``tu-efficientnet_lite*`` encoder.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from geodefect.errors import InputError
from geodefect.models import encoder_weights as ew

LITE_VARIANTS = tuple(ew.LITE_PACKAGES)  # efficientnet_lite0, efficientnet_lite1, efficientnet_lite2
LITE_FEATURES = 1280  # width of the Lite trunks' pooled features (conv_head)


class PretrainedInput(nn.Module):
    """``(B, C, H, W)`` chip-normalised input (C = 1 or 3) -> ``(B, 3, H, W)`` as the weights expect.

    Args:
        mean, std: per-band statistics the input was normalised with (0..255 scale; C values).
            None: the input is already normalised as the weights expect (bands only repeated).
        target_mean, target_std: the weights' own normalisation (3 values, 0..255 scale).
    """

    def __init__(self, mean: Sequence[float] | None, std: Sequence[float] | None, *, in_channels: int = 3,
                 target_mean: Sequence[float] = ew.LITE_INPUT_MEAN, target_std: Sequence[float] = ew.LITE_INPUT_STD):
        super().__init__()
        big_m = torch.tensor(target_mean, dtype=torch.float32)
        big_s = torch.tensor(target_std, dtype=torch.float32)
        if mean is None or std is None:
            mean, std = ([float(v) for v in target_mean][:in_channels], [float(v) for v in target_std][:in_channels])
        if len(mean) != in_channels or len(std) != in_channels or in_channels not in (1, 3):
            raise InputError(f"pretrained trunks take 1-band (grey) or 3-band (RGB) images, got {in_channels} bands "
                             f"with {len(mean)} means / {len(std)} stds; chip 1 or 3 bands")
        m = torch.tensor(mean, dtype=torch.float32).expand(3)
        s = torch.tensor(std, dtype=torch.float32).expand(3)
        self.in_channels = in_channels
        self.register_buffer("scale", (s / big_s).view(1, 3, 1, 1))
        self.register_buffer("offset", ((m - big_m) / big_s).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.in_channels:
            raise InputError(f"the model takes {self.in_channels}-band input, got {x.shape[1]} bands")
        if self.in_channels == 1:
            x = x.expand(-1, 3, -1, -1)
        return x * self.scale + self.offset


def check_variant(name: str) -> str:
    if name not in LITE_VARIANTS:
        raise InputError(f"unknown EfficientNet-Lite variant {name!r}; available: {', '.join(LITE_VARIANTS)}")
    return name


def lite_trunk(name: str, *, weights: str | None = None) -> nn.Module:
    """timm ``name`` without classifier: ``(B, 3, H, W)`` -> ``(B, 1280)`` pooled features.

    Args:
        weights: None (random), ``imagenet`` (offline, from the optional Lite package) or a
            local state dict of the same trunk (``timm.create_model(name, num_classes=0)``).
    """
    from geodefect._torch import import_timm

    trunk = import_timm().create_model(check_variant(name), pretrained=False, num_classes=0)
    weights = ew.normalize_weights_option(weights)
    if weights == "imagenet":
        trunk.load_state_dict(ew.lite_model_state(name), strict=True)
    elif weights is not None:
        ew.load_encoder_state(trunk, ew.read_state_dict(weights), source=weights)
    return trunk


def lite_features(name: str, *, in_channels: int, input_mean=None, input_std=None, weights: str | None = None) -> nn.Module:
    """Adapter + trunk: ``(B, in_channels, H, W)`` chip-normalised -> ``(B, 1280)`` features."""
    adapter = PretrainedInput(input_mean, input_std, in_channels=in_channels)
    return nn.Sequential(OrderedDict(input=adapter, trunk=lite_trunk(name, weights=weights)))


def lite_classifier(name: str, *, in_channels: int, num_classes: int, input_mean=None, input_std=None,
                    weights: str | None = None) -> nn.Module:
    """Adapter + trunk + ``Linear(1280, num_classes)``: ``(B, C, H, W)`` -> ``(B, num_classes)`` logits.

    Score-CAM layers: ``trunk.blocks.6`` (last block), ``trunk.conv_head``.
    """
    features = lite_features(name, in_channels=in_channels, input_mean=input_mean, input_std=input_std, weights=weights)
    return nn.Sequential(OrderedDict(input=features.input, trunk=features.trunk,
                                     head=nn.Linear(LITE_FEATURES, num_classes)))


def uses_input_adapter(name: str, kwargs: dict) -> bool:
    """True when registered model ``name`` with ``kwargs`` builds a Lite trunk (it then takes ``input_mean``/``input_std``)."""
    return bool(ew.lite_name(kwargs.get("variant")) or ew.lite_name(kwargs.get("encoder"))
                or ew.lite_name(name.removeprefix("classifier_")))
