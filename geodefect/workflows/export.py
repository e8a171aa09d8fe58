"""``geodefect export``: a model package -> one ``.onnx`` (fp32, or int8 behind a quality gate).

Steps: load the package -> export fp32 (:mod:`geodefect.export.onnx_export`) -> check ONNX
Runtime against torch on a random batch -> with ``quantize="int8"``: export again with transposed
convolutions rewritten for the quantizer (:mod:`geodefect.export.subpixel`, checked the same way),
calibrate on the train chips of ``calibration``, quantize (:mod:`geodefect.export.quantize`), score fp32 and int8 on
the validation chips (:mod:`geodefect.export.gate`) and refuse (QualityGateError, nothing
written) when the metric drops by more than ``max_metric_drop`` -> write atomically.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from geodefect.errors import InputError, OutputExistsError, QualityGateError, require_file

#: the gate's metric, by model kind (geodefect.models.checkpoint.model_kind)
METRIC_NAMES = {"road": "road IoU", "segment": "defect IoU", "classify": "accuracy"}
#: max |ORT fp32 - torch| on probabilities accepted at export (measured ~1e-5)
PARITY_TOL = 1e-4


def export(model_path, out_path, *, quantize: str | None = None, calibration=None, validation=None,
           max_metric_drop: float = 0.01, calibration_chips: int = 64, validation_chips: int | None = None,
           overwrite: bool = False) -> dict:
    """Export ``model_path`` to ``out_path``; returns the summary (``text`` = lines for stdout)."""
    from geodefect.export.onnx_export import check_exportable, export_onnx, require_exporter
    from geodefect.models.checkpoint import load_package
    from geodefect.models.pretrained import resolve_model

    model_path = resolve_model(model_path)  # a path, or the name of a model shipped with geodefect
    out = _check_args(model_path, out_path, quantize, calibration, max_metric_drop, overwrite)
    require_exporter()
    model, recipe = load_package(model_path)
    check_exportable(recipe, model_path)
    with tempfile.TemporaryDirectory(prefix="geodefect-export-") as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        onnx_recipe = export_onnx(model, recipe, fp32, source=Path(model_path).name)
        summary = {"model": str(model_path), "out": str(out), "task": recipe["task"],
                   "tile_px": onnx_recipe["onnx"]["tile_px"], "outputs": list(onnx_recipe["onnx"]["outputs"]),
                   "max_abs_diff_vs_torch": check_parity(model, onnx_recipe, fp32)}
        final = fp32
        if quantize == "int8":
            final, pre = Path(tmp) / "int8.onnx", Path(tmp) / "fp32-subpixel.onnx"
            export_onnx(model, recipe, pre, source=Path(model_path).name, subpixel=True)
            check_parity(model, onnx_recipe, pre)
            summary["gate"] = quantize_gated(fp32, final, onnx_recipe, calibration, validation or calibration,
                                             quantize_from=pre,
                                             max_metric_drop=max_metric_drop, n_calibration=calibration_chips,
                                             n_validation=validation_chips)
        _write(final, out)
    summary["precision"] = quantize or "fp32"
    summary["text"] = format_summary(summary)
    return summary


def _check_args(model_path, out_path, quantize, calibration, max_metric_drop, overwrite) -> Path:
    require_file(model_path, what="model package")
    out = Path(out_path)
    if out.suffix.lower() != ".onnx":
        raise InputError(f"`-o/--out` must end in .onnx, got {str(out)!r}")
    if out.exists() and not overwrite:
        raise OutputExistsError(f"output {str(out)!r} already exists; pass --overwrite to replace it")
    if quantize not in (None, "int8"):
        raise InputError(f"`quantize` must be int8 (or absent for fp32), got {quantize!r}")
    if quantize and calibration is None:
        raise InputError("--quantize int8 needs --calibration CHIPS (a chip folder of the model's task)")
    if not 0 <= max_metric_drop <= 1:
        raise InputError(f"`max_metric_drop` must be in [0, 1], got {max_metric_drop}")
    return out


def check_parity(model, recipe: dict, onnx_path: Path) -> float:
    """max |ORT - torch| of the probabilities on a random batch of 2 tiles; refuses above PARITY_TOL."""
    import torch

    from geodefect.export.onnx_export import build_wrapper
    from geodefect.inference.onnx_runtime import OnnxPredictor

    size, n = recipe["onnx"]["tile_px"], len(recipe.get("bands") or []) or 3
    x = np.random.default_rng(0).uniform(0, 255, (2, n, size, size)).astype(np.float32)
    with torch.inference_mode():
        ref = build_wrapper(model, recipe)(torch.from_numpy(x / 255.0))
    got = OnnxPredictor(onnx_path, device="cpu")(x)
    diff = max(float(np.abs(g - r.numpy()).max()) for g, r in zip(got.values(), ref, strict=True))
    if diff > PARITY_TOL:
        raise QualityGateError(f"the exported graph differs from torch by {diff:.2e} (> {PARITY_TOL}); "
                               "this model does not export faithfully: report it, and use the .pt")
    return diff


def quantize_gated(fp32: Path, int8: Path, recipe: dict, calibration, validation, *, max_metric_drop: float,
                   n_calibration: int, n_validation: int | None, quantize_from: Path | None = None) -> dict:
    """Quantize (``quantize_from``, default ``fp32``: the same function in a graph the quantizer
    covers better), score fp32 and int8 on ``validation``'s val chips, refuse a drop > ``max_metric_drop``."""
    from geodefect.export.gate import score
    from geodefect.export.onnx_export import metadata_for, write_metadata
    from geodefect.export.quantize import calibration_tiles, quantize_int8
    from geodefect.inference.onnx_runtime import OnnxPredictor

    tiles = calibration_tiles(calibration, recipe, n_tiles=n_calibration)
    deferred = quantize_int8(quantize_from or fp32, int8, tiles)
    m32 = score(OnnxPredictor(fp32, device="cpu"), validation, recipe, limit=n_validation)
    m8 = score(OnnxPredictor(int8, device="cpu"), validation, recipe, limit=n_validation)
    from geodefect.models.checkpoint import model_kind

    metric = METRIC_NAMES[model_kind(recipe)]
    gate = {"metric": metric, "fp32": round(m32, 4), "int8": round(m8, 4), "drop": round(m32 - m8, 4),
            "max_drop": max_metric_drop, "validation": str(validation), "calibration": str(calibration),
            "n_calibration": len(tiles)}
    if m32 - m8 > max_metric_drop:
        raise QualityGateError(f"int8 refused: validation {metric} fp32 {m32:.4f}, int8 {m8:.4f} (drop {m32 - m8:.4f} > "
                               f"--max-metric-drop {max_metric_drop}); nothing written: export fp32 (no --quantize), "
                               "calibrate on more representative chips, or allow a larger drop")
    int8_recipe = {**recipe, "onnx": {**recipe["onnx"], "precision": "int8", "gate": gate, "deferred_softmax": deferred}}
    write_metadata(int8, metadata_for(int8_recipe, recipe["onnx"]["outputs"]))
    return gate


def _write(src: Path, out: Path) -> None:
    from geodefect.io.atomic import atomic_path

    with atomic_path(out) as tmp:
        shutil.copyfile(src, tmp)


def format_summary(s: dict) -> str:
    lines = [f"exported {s['task']} model {s['model']} -> {s['out']} ({s['precision']}, {s['tile_px']} px tiles, "
             f"outputs {', '.join(s['outputs'])}; fp32 graph vs torch max |diff| {s['max_abs_diff_vs_torch']:.1e})"]
    if "gate" in s:
        g = s["gate"]
        lines.append(f"int8 gate passed: validation {g['metric']} fp32 {g['fp32']:.4f}, int8 {g['int8']:.4f} "
                     f"(drop {g['drop']:.4f} <= {g['max_drop']})")
    return "\n".join(lines)
