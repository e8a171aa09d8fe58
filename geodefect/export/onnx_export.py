"""Model package (``.pt``) -> one self-contained ``.onnx`` (weights embedded, metadata inside).

The graph (:class:`ExportWrapper`) takes ``image`` ``(B, C, S, S) float32`` = band values / 255
(0..1, what QGIS's Deepness plugin feeds), applies the recipe's normalisation
``(255 x - mean) / std`` and the activations inside, and returns named probability outputs:

=================  ===============================  ==============================
model kind         ONNX outputs                      predictor keys
=================  ===============================  ==============================
road (roads)       ``road`` (B,1), ``orientation``   ``road``, ``orientation``
segment (crack,    ``defect`` (B,1|2,S,S)            ``out``
rail)
classify (crack    ``class_probabilities`` (B,K)     ``out``
stage 1)
=================  ===============================  ==============================

The kind comes from the recipe (:func:`geodefect.models.checkpoint.model_kind`), not from a task name.

The batch is dynamic, the tile size ``S`` fixed (the tile the task infers with). Metadata
(``metadata_props``, JSON values): ``geodefect_recipe`` (the full recipe plus an ``onnx`` entry),
``geodefect_outputs`` and, for segmenters, Deepness's keys (``model_type`` Segmentor,
``class_names``, ``resolution`` cm/px, ``tiles_size``/``tile_size``, ``tiles_overlap`` %,
``seg_thresh``, identity ``standardization_mean``/``_std`` since normalisation is in the graph).
"""

from __future__ import annotations

import contextlib
import json
import logging
import warnings
from pathlib import Path
from typing import Any

from geodefect.errors import InputError, MissingExtraError
from geodefect.inference.onnx_runtime import INPUT_SCALE, OUTPUTS_KEY, RECIPE_KEY
from geodefect.models.checkpoint import model_kind

#: model kinds that export, with their ONNX output names -> predictor keys (None = from the model)
EXPORT_KINDS: dict[str, dict[str, str] | None] = {
    "road": None,
    "segment": {"defect": "out"},
    "classify": {"class_probabilities": "out"},
}
#: kinds that get QGIS Deepness's segmentation metadata
SEGMENT_KINDS = ("road", "segment")
OPSET = 18


def require_exporter() -> None:
    """One-line MissingExtraError unless onnx + onnxscript (torch's dynamo exporter) import."""
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        raise MissingExtraError("`geodefect export` needs onnx and onnxscript, which are not installed; "
                                "install the extra: pip install 'geodefect[onnx]'") from None


def check_exportable(recipe: dict, path) -> None:
    """InputError unless the package's model is a road model, a segmenter or an image classifier."""
    if model_kind(recipe) not in EXPORT_KINDS:
        raise InputError(f"{str(path)!r} is a {recipe.get('task')!r} model; `geodefect export` handles road models, "
                         "defect segmenters and the crack classifier")


def tile_px(recipe: dict) -> int:
    """The fixed input side of the export: the window the task infers with (see inference)."""
    kind = model_kind(recipe)
    if kind == "classify":
        return int(recipe.get("input_px", 224))
    size = int(recipe.get("size_px") or 512)
    return size if kind == "road" else -(-size // 32) * 32  # inspection Stage2 rounds up to /32


def overlap_percent(recipe: dict, size_px: int) -> int:
    """Window overlap in % of the tile, as geodefect infer slides (package stride, else 1/4)."""
    stride = recipe.get("stride_px") if model_kind(recipe) == "road" else None
    if not stride or stride >= size_px or recipe.get("size_px") != size_px:
        stride = max(1, size_px * 3 // 4)
    return int(round(100 * (size_px - int(stride)) / size_px))


def build_wrapper(model, recipe: dict):
    """``ExportWrapper(model)``: 0..1 input -> normalised -> model -> probabilities, as a tuple."""
    import torch

    norm = recipe.get("normalization") or {}
    n_bands = len(recipe.get("bands") or []) or int(recipe.get("channels") or 3)
    mean = torch.tensor(norm.get("mean") or [0.0] * n_bands, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(norm.get("std") or [255.0] * n_bands, dtype=torch.float32).view(1, -1, 1, 1)

    class ExportWrapper(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model.eval()
            self.register_buffer("scale", INPUT_SCALE / std)
            self.register_buffer("shift", mean / std)

        def forward(self, image):
            out = self.model(image * self.scale - self.shift)
            return tuple(_activate(t) for t in _tensors(out).values())

    return ExportWrapper().eval()


def _tensors(out) -> dict[str, Any]:
    """Model output -> ordered name -> logits tensor (RoadOutput fields, dict items or one tensor)."""
    if hasattr(out, "_asdict"):
        return {k: v for k, v in out._asdict().items() if hasattr(v, "shape")}
    if isinstance(out, dict):
        return dict(out)
    return {"out": out}


def _activate(logits):
    """The predictor's rule: sigmoid for one channel, softmax over channels otherwise.

    The softmax is written out (max, exp, sum, divide over axis 1): ONNX Runtime's ``Softmax`` on a
    non-last axis of NCHW transposes internally and took 21 % of the road model's time (~0.12 s of a
    512² tile's ~0.57 s, orientation head; ~0.02 s written out) — the same values within float error.
    """
    if logits.shape[1] == 1:
        return logits.sigmoid()
    e = (logits - logits.amax(dim=1, keepdim=True)).exp()
    return e / e.sum(dim=1, keepdim=True)


def output_names(model, recipe: dict, size_px: int) -> dict[str, str]:
    """ONNX output name -> predictor key, in the model's output order."""
    import torch

    fixed = EXPORT_KINDS[model_kind(recipe)]
    if fixed is not None:
        return dict(fixed)
    n_bands = len(recipe.get("bands") or []) or 3
    with torch.inference_mode():
        names = list(_tensors(model.eval()(torch.zeros(1, n_bands, size_px, size_px))))
    return {n: n for n in names}


def export_onnx(model, recipe: dict, dest: str | Path, *, source: str = "", subpixel: bool = False) -> dict[str, Any]:
    """Export ``model`` (eval mode, CPU) with ``recipe`` to ``dest``; returns the stored recipe.

    One file: weights embedded (no ``.onnx.data``), dynamic batch, fixed tile ``tile_px(recipe)``.
    ``subpixel``: transposed convolutions as convolution + pixel shuffle (the same function,
    :mod:`geodefect.export.subpixel`): what the int8 quantizer is given, since ONNX Runtime has no
    int8 ConvTranspose; fp32 keeps ConvTranspose (fewer multiplications: faster in fp32).
    """
    import torch

    from geodefect.export.subpixel import rewrite_conv_transposes

    require_exporter()
    size = tile_px(recipe)
    n_bands = len(recipe.get("bands") or []) or int(recipe.get("channels") or 3)
    keys = output_names(model, recipe, size)
    if subpixel:
        model, _ = rewrite_conv_transposes(model)
    wrapper = build_wrapper(model, recipe)
    example = torch.rand(2, n_bands, size, size)
    with _quiet_exporter():
        program = torch.onnx.export(
            wrapper, (example,), dynamo=True, input_names=["image"], output_names=list(keys),
            dynamic_shapes=({0: torch.export.Dim("batch")},), opset_version=OPSET, optimize=True, verbose=False,
        )
    onnx_recipe = {**recipe, "onnx": {"tile_px": size, "input": "image", "input_scale": INPUT_SCALE,
                                      "outputs": keys, "precision": "fp32", "opset": OPSET, "source": source}}
    program.save(str(dest), external_data=False)
    write_metadata(dest, metadata_for(onnx_recipe, keys))
    return onnx_recipe


@contextlib.contextmanager
def _quiet_exporter():
    """The exporter's per-node INFO logs and warnings (hundreds of lines) off during export."""
    names = ("onnxscript", "onnx_ir", "torch.onnx", "torch.export", "torch._export")
    levels = {n: logging.getLogger(n).level for n in names}
    try:
        for n in names:
            logging.getLogger(n).setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for n, level in levels.items():
            logging.getLogger(n).setLevel(level)


def metadata_for(recipe: dict, keys: dict[str, str]) -> dict[str, str]:
    """``metadata_props`` of an export (JSON-encoded values, as Deepness reads them)."""
    meta = {RECIPE_KEY: json.dumps(recipe, default=str), OUTPUTS_KEY: json.dumps(keys)}
    if model_kind(recipe) in SEGMENT_KINDS:
        meta.update({k: json.dumps(v) for k, v in deepness_metadata(recipe).items()})
    elif recipe.get("classes"):
        meta["class_names"] = json.dumps({i: str(c) for i, c in enumerate(recipe["classes"])})
    return meta


def deepness_metadata(recipe: dict) -> dict[str, Any]:
    """QGIS Deepness keys of a segmenter (its docs: "Adding metadata to ONNX model")."""
    size = int(recipe["onnx"]["tile_px"])
    n_bands = len(recipe.get("bands") or []) or 3
    meta: dict[str, Any] = {
        "model_type": "Segmentor", "tiles_size": size, "tile_size": size,
        "tiles_overlap": overlap_percent(recipe, size), "seg_thresh": float(recipe.get("road_threshold", 0.5)),
        "standardization_mean": [0.0] * n_bands, "standardization_std": [1.0] * n_bands,
    }
    if model_kind(recipe) == "road":
        k = int((recipe.get("orientation") or {}).get("n_classes", 0) or 0)
        orient = {0: "background", **{i: f"orientation_{i}" for i in range(1, k)}} if k else {0: "orientation"}
        meta["class_names"] = [{0: "road"}, orient]
        if recipe.get("pixel_size_m"):
            meta["resolution"] = round(float(recipe["pixel_size_m"]) * 100.0, 3)
    else:
        classes = recipe.get("classes") or ["background", "defect"]
        meta["class_names"] = {0: str(classes[-1])}
    return meta


def write_metadata(path: str | Path, meta: dict[str, str]) -> None:
    """Replace ``path``'s ``metadata_props`` with ``meta`` (in place; weights stay embedded)."""
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
