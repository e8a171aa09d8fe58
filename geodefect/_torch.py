"""One place that imports torch, torchvision, timm and segmentation-models-pytorch.

Why this exists: the only torchvision that pins the CPU build of torch 2.13.0 on the
package registry (torchvision 0.28.0) ships compiled ops built for CUDA torch. Its
``_C`` library then fails to load beside CPU torch, and ``import torchvision`` dies in
``torchvision/_meta_registrations.py`` with ``operator torchvision::nms does not exist``
(which also breaks ``import timm`` and ``import segmentation_models_pytorch``).

geodefect uses no compiled torchvision op (no NMS, no RoIAlign), so when, and only when,
torchvision's own library fails to load, we define the two operator *schemas* that its
Python code registers fake kernels for. Calling those ops would still raise (no kernel);
on a machine with a matching torchvision build nothing here runs.

Everything that needs torchvision, timm or smp imports them through :func:`import_smp`,
:func:`import_torchvision` or :func:`import_timm`.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from pathlib import Path

log = logging.getLogger(__name__)

_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_LIBRARY = None  # keeps the torch.library.Library alive (its definitions die with it)


@functools.cache
def _patch_torchvision_ops() -> bool:
    """Define torchvision's op schemas if its compiled library cannot load. Returns True if patched."""
    global _LIBRARY
    import torch

    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        return False
    libs = sorted(Path(spec.origin).parent.glob("_C*.so"))
    if libs:
        try:
            torch.ops.load_library(str(libs[0]))
            return False  # a matching build: its own ops are registered
        except (OSError, RuntimeError) as exc:
            log.debug("torchvision's compiled ops do not load (%s); defining schemas", exc)
    missing = [name for name in _SCHEMAS if not _has_op(name)]
    if not missing:
        return False
    _LIBRARY = torch.library.Library("torchvision", "DEF")  # noqa: PLW0603
    for name in missing:
        _LIBRARY.define(_SCHEMAS[name])
    return True


def _has_op(name: str) -> bool:
    import torch

    try:
        getattr(torch.ops.torchvision, name)
        return True
    except (AttributeError, RuntimeError):
        return False


def import_torchvision():
    """Import torchvision (patching its op schemas first if its compiled ops cannot load)."""
    _patch_torchvision_ops()
    import torchvision

    return torchvision


def import_timm():
    """Import timm (which imports torchvision)."""
    import_torchvision()
    import timm

    return timm


def import_smp():
    """Import segmentation_models_pytorch (which imports torchvision and timm)."""
    import_torchvision()
    import segmentation_models_pytorch as smp

    return smp


def set_threads(threads: int | None) -> None:
    """Use ``threads`` CPU threads for torch (0/None = torch's default, one per core).

    On a CPU shared with other jobs 1 is often fastest: OpenMP threads that wait for busy cores
    slow a forward pass several times (measured 3.3x for ``geodefect infer``).
    """
    if threads:
        import torch

        torch.set_num_threads(int(threads))


def resolve_device(device: str | None = "auto") -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``; ``cpu``, ``cuda``, ``cuda:N`` are checked.

    The one device resolver of geodefect (training, inference, evaluation).

    Raises:
        ConfigError: an unknown device, or CUDA asked for where torch sees no GPU.
    """
    import re

    import torch

    from geodefect.errors import ConfigError

    device = (device or "auto").lower()
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not re.fullmatch(r"cpu|cuda(:\d+)?", device):
        raise ConfigError(f"`device` must be auto, cpu, cuda or cuda:N, got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"`device` {device!r} asked for CUDA but torch sees no GPU here; use --device cpu or auto")
    return device

