"""Where a model file becomes a predictor: one factory for every task.

``read_model_recipe(path)`` and ``load_predictor(path, recipe, backend=..., device=...,
threads=...)`` accept both model formats:

* ``.pt`` packages (``geodefect train``) -> :class:`~geodefect.inference.predictor.TorchPredictor`;
* ``.onnx`` exports (``geodefect export``) -> :class:`~geodefect.inference.onnx_runtime.OnnxPredictor`.

The backend follows the file (``auto``); ``torch`` or ``onnxruntime`` say it explicitly and a
file of the other format is refused with the command that converts it. ``torch-bf16`` runs the
torch model under CPU bf16 autocast, offered only when the CPU has bf16 instructions
(:func:`cpu_bf16_supported`): on AVX2-only CPUs bf16 is emulated and ~100x slower. fp32 stays the
default (BENCHMARKS.md, "Backends": bf16 is 1.8x faster on an AVX-512-BF16 CPU but its probabilities
differ by up to ~4e-3, so outputs would depend on the machine; int8 ONNX is as fast and gated).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from geodefect.errors import InputError

BACKENDS = ("auto", "torch", "onnxruntime", "torch-bf16")


def is_onnx(path: str | Path) -> bool:
    """True for an ``.onnx`` file name (the format is chosen by the suffix, as GDAL drivers are)."""
    return Path(path).suffix.lower() == ".onnx"


def read_model_recipe(path: str | Path) -> dict[str, Any]:
    """The recipe of a ``.pt`` package or a geodefect ``.onnx`` export."""
    if is_onnx(path):
        from geodefect.inference.onnx_runtime import read_onnx_recipe

        return read_onnx_recipe(path)
    from geodefect.models.checkpoint import read_recipe

    return read_recipe(path)


def resolve_backend(path: str | Path, backend: str | None) -> str:
    """``auto`` -> the file's backend; an explicit one must fit the file."""
    backend = (backend or "auto").lower()
    if backend not in BACKENDS:
        raise InputError(f"`backend` must be one of {', '.join(BACKENDS)}, got {backend!r}")
    onnx = is_onnx(path)
    if backend == "auto":
        return "onnxruntime" if onnx else "torch"
    if onnx and backend != "onnxruntime":
        raise InputError(f"`backend` {backend!r} needs a .pt package but {str(path)!r} is ONNX; "
                         "use --backend onnxruntime (or auto), or pass the .pt it was exported from")
    if not onnx and backend == "onnxruntime":
        raise InputError(f"`backend` onnxruntime needs an .onnx model but {str(path)!r} is a package; "
                         f"export it first: geodefect export {path} -o model.onnx")
    if backend == "torch-bf16" and not cpu_bf16_supported():
        raise InputError("`backend` torch-bf16 needs a CPU with bf16 instructions (AVX-512-BF16 or AMX); this CPU "
                         "has none and would emulate bf16 ~100x slower: use --backend torch")
    return backend


def load_predictor(model_path: str | Path, recipe: dict | None = None, *, backend: str | None = "auto",
                   device: str | None = "auto", threads: int | None = None):
    """A sliding-engine predictor for ``model_path`` (``.pt`` or ``.onnx``).

    Args:
        model_path: model package or geodefect ONNX export.
        recipe: its recipe when already read (only used to fill ``predictor.recipe``).
        backend: ``auto`` | ``torch`` | ``onnxruntime`` | ``torch-bf16`` (see module docstring).
        device: ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N``.
        threads: CPU threads of the forward (None = leave the backend's setting).

    Returns:
        The predictor; ``predictor.recipe`` holds the recipe, ``predictor.backend`` the backend.
    """
    backend = resolve_backend(model_path, backend)
    if backend == "onnxruntime":
        from geodefect.inference.onnx_runtime import OnnxPredictor

        predictor = OnnxPredictor(model_path, device=device, threads=threads)
    else:
        predictor = _torch_predictor(model_path, backend=backend, device=device, threads=threads)
        predictor.recipe = recipe or predictor.recipe
    predictor.backend = backend
    return predictor


def _torch_predictor(model_path, *, backend: str, device, threads):
    import torch

    from geodefect.inference.predictor import TorchPredictor

    if threads is not None:
        if int(threads) < 1:
            raise InputError(f"`threads` must be >= 1, got {threads}")
        torch.set_num_threads(int(threads))
    predictor, recipe = TorchPredictor.from_package(model_path, device=device)
    if backend == "torch-bf16":
        if predictor.device != "cpu":
            raise InputError("`backend` torch-bf16 is a CPU mode; on CUDA the torch backend already uses fp16 autocast")
        predictor = CpuBf16Predictor.wrap(predictor)
    predictor.recipe = recipe
    return predictor


def cpu_bf16_supported() -> bool:
    """True when torch detects AVX-512 and oneDNN reports native bf16 (AVX-512-BF16 or AMX)."""
    import torch

    if torch.backends.cpu.get_cpu_capability() not in ("AVX512", "AMX"):
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


class CpuBf16Predictor:
    """A :class:`TorchPredictor` whose forward runs under ``torch.autocast('cpu', bfloat16)``."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.device = inner.device
        self.n_channels = inner.n_channels

    @classmethod
    def wrap(cls, predictor) -> CpuBf16Predictor:
        return cls(predictor)

    def __call__(self, batch):
        import torch

        with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
            return self.inner(batch)
