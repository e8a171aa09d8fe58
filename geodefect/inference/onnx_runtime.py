"""The ONNX Runtime adapter: an exported ``.onnx`` model as a sliding-engine predictor.

A geodefect ``.onnx`` (written by ``geodefect export``, :mod:`geodefect.export.onnx_export`)
holds, in one file:

* the graph: input ``image`` ``(B, C, S, S) float32`` = band values / 255 (0..1, what QGIS's
  Deepness plugin feeds), the recipe's normalisation and the activations inside, named
  probability outputs (``road``, ``orientation``; ``defect``; ``class_probabilities``);
* ``metadata_props``: ``geodefect_recipe`` (the package's full recipe as JSON, so inference
  runs exactly as with the ``.pt``), ``geodefect_outputs`` (ONNX output name -> predictor key)
  and Deepness's keys (``model_type``, ``class_names``, ``resolution``, ``tiles_size``, ...).

``OnnxPredictor(path)`` is a callable ``(B, C, S, S) array on the 0..255 scale -> {name: (B, K,
S, S) float32}``, the same protocol and keys as :class:`~geodefect.inference.predictor.TorchPredictor`.
onnxruntime is an optional extra (``pip install geodefect[onnx]``); without it every entry
point here raises one :class:`~geodefect.errors.MissingExtraError` line naming the extra.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from geodefect.errors import (
    InputError,
    InputFileNotFoundError,
    MissingExtraError,
    ModelPackageError,
)

#: metadata key of the geodefect recipe inside an exported .onnx
RECIPE_KEY = "geodefect_recipe"
#: metadata key of the {ONNX output name: predictor key} map
OUTPUTS_KEY = "geodefect_outputs"
#: the graph's input: band values / INPUT_SCALE
INPUT_SCALE = 255.0


def require_onnxruntime():
    """The ``onnxruntime`` module, or a one-line MissingExtraError naming the extra."""
    try:
        import onnxruntime
    except ImportError:
        raise MissingExtraError(
            "ONNX models need onnxruntime, which is not installed; install the extra: pip install 'geodefect[onnx]'"
        ) from None
    return onnxruntime


def open_session(path: str | Path, *, options=None, providers=None):
    """An ``onnxruntime.InferenceSession`` of ``path``, with clear errors for a missing or non-ONNX file."""
    ort = require_onnxruntime()
    p = Path(path)
    if not p.is_file():
        raise InputFileNotFoundError(f"model file {str(p)!r} does not exist; check the path")
    try:
        return ort.InferenceSession(str(p), sess_options=options, providers=providers or ["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 — ORT raises its own Fail/InvalidProtobuf types
        raise ModelPackageError(f"{str(p)!r} is not a readable ONNX model ({str(exc).splitlines()[0][:120]}); "
                                "re-export it with `geodefect export MODEL.pt -o model.onnx`") from None


def read_onnx_metadata(path: str | Path) -> dict[str, str]:
    """``metadata_props`` of an ``.onnx`` file as a dict: parsed by the ``onnx`` package where it is
    installed (the protobuf alone: ~3 ms for the shipped road model, against 15–80 ms for an ONNX
    Runtime session), else from a session without graph optimisation (0.1 s instead of 0.9 s for
    a ResNet-34 LinkNet)."""
    ort = require_onnxruntime()
    try:
        import onnx
    except ImportError:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        return dict(open_session(path, options=options).get_modelmeta().custom_metadata_map)
    p = Path(path)
    if not p.is_file():
        raise InputFileNotFoundError(f"model file {str(p)!r} does not exist; check the path")
    try:
        model = onnx.load(str(p), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 — protobuf's DecodeError and onnx's own
        raise ModelPackageError(f"{str(p)!r} is not a readable ONNX model ({str(exc).splitlines()[0][:120]}); "
                                "re-export it with `geodefect export MODEL.pt -o model.onnx`") from None
    return {prop.key: prop.value for prop in model.metadata_props}


def recipe_from_metadata(meta: dict[str, str], path: str | Path) -> dict[str, Any]:
    """The geodefect recipe stored in ONNX metadata; a clear error when it is not there."""
    if RECIPE_KEY not in meta:
        raise ModelPackageError(
            f"{str(path)!r} is an ONNX model but not a geodefect export: its metadata has no {RECIPE_KEY!r} "
            "(the task, bands, normalisation and tile size inference needs); export the model package with "
            "`geodefect export MODEL.pt -o model.onnx`"
        )
    try:
        recipe = json.loads(meta[RECIPE_KEY])
    except json.JSONDecodeError:
        raise ModelPackageError(f"{str(path)!r}: metadata {RECIPE_KEY!r} is not valid JSON; re-export the model") from None
    if not isinstance(recipe, dict) or "task" not in recipe or "onnx" not in recipe:
        raise ModelPackageError(f"{str(path)!r}: metadata {RECIPE_KEY!r} lacks 'task' or 'onnx'; re-export the model")
    return recipe


def read_onnx_recipe(path: str | Path) -> dict[str, Any]:
    """The recipe of a geodefect ``.onnx`` (ModelPackageError for any other ONNX file)."""
    return recipe_from_metadata(read_onnx_metadata(path), path)


def ort_providers(device: str | None) -> list[str]:
    """ORT execution providers for ``device``: CUDA first when asked for (or ``auto``) and present."""
    ort = require_onnxruntime()
    device = (device or "auto").lower()
    have_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    if device.startswith("cuda") and not have_cuda:
        raise InputError(f"`device` {device!r} asked for CUDA but onnxruntime has no CUDA provider here; "
                         "use --device cpu or auto (or install onnxruntime-gpu)")
    if device not in ("auto", "cpu") and not device.startswith("cuda"):
        raise InputError(f"`device` must be auto, cpu, cuda or cuda:N, got {device!r}")
    return ["CUDAExecutionProvider", "CPUExecutionProvider"] if have_cuda and device != "cpu" else ["CPUExecutionProvider"]


class OnnxPredictor:
    """Run a geodefect ``.onnx`` with ONNX Runtime as a predictor for the sliding engine.

    Args:
        path: the ``.onnx`` file written by ``geodefect export``.
        device: ``auto`` | ``cpu`` | ``cuda`` (CUDA provider when onnxruntime has one).
        threads: intra-op threads on CPU (None = onnxruntime's default, one per core).
    """

    def __init__(self, path: str | Path, *, device: str | None = "auto", threads: int | None = None) -> None:
        ort = require_onnxruntime()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads is not None:
            if int(threads) < 1:
                raise InputError(f"`threads` must be >= 1, got {threads}")
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        self.session = open_session(path, options=options, providers=ort_providers(device))
        meta = dict(self.session.get_modelmeta().custom_metadata_map)
        self.recipe = recipe_from_metadata(meta, path)
        self.keys: dict[str, str] = json.loads(meta.get(OUTPUTS_KEY, "{}"))
        self.device = "cuda" if "CUDAExecutionProvider" in self.session.get_providers() else "cpu"
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.n_channels, self.size_px = int(inp.shape[1]), int(inp.shape[2])
        self.output_names = [o.name for o in self.session.get_outputs()]
        # outputs the graph gives as logits, their softmax left to the engine (int8 exports: quantize.defer_softmax)
        deferred = set(self.recipe["onnx"].get("deferred_softmax") or ())
        self.deferred_softmax = tuple(self.keys.get(n, n) for n in self.output_names if n in deferred)
        # the sliding engine sizes its buffers from these instead of predicting a probe window
        channels = {self.keys.get(o.name, o.name): o.shape[1] for o in self.session.get_outputs()}
        self.output_channels = channels if all(isinstance(k, int) for k in channels.values()) else None
        self._check_recipe(path)

    def _check_recipe(self, path) -> None:
        want = len(self.recipe.get("bands") or []) or int(self.recipe.get("channels") or 0)
        if want and want != self.n_channels:
            raise ModelPackageError(f"{str(path)!r}: the graph takes {self.n_channels} bands but its recipe lists {want}; "
                                    "re-export the model")

    def check_window(self, size_px: int) -> None:
        """Raise InputError unless windows of ``size_px`` fit the graph's fixed input size."""
        if int(size_px) != self.size_px:
            raise InputError(f"`size_px` {size_px} differs from the ONNX model's fixed tile size {self.size_px}; "
                             f"drop --size-px (or pass {self.size_px}), or re-export the .pt for another size")

    def __call__(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """``(B, C, S, S)`` array (0..255 scale) -> output key -> ``(B, K, S, S)`` float32 probabilities
        (logits for the outputs in :attr:`deferred_softmax`: the engine takes their softmax)."""
        if batch.ndim != 4 or batch.shape[1] != self.n_channels:
            raise InputError(f"predictor expects (B, {self.n_channels}, h, w) input, got shape {tuple(batch.shape)}")
        if batch.shape[2:] != (self.size_px, self.size_px):
            raise InputError(f"the ONNX model takes {self.size_px}x{self.size_px} windows, got {batch.shape[2]}x{batch.shape[3]}; "
                             "drop --size-px, or re-export the .pt for another size")
        x = np.ascontiguousarray(batch, dtype=np.float32) * np.float32(1.0 / INPUT_SCALE)
        outs = self.session.run(self.output_names, {self.input_name: x})
        return {self.keys.get(n, n): o for n, o in zip(self.output_names, outs, strict=True)}

