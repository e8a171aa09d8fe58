"""``geodefect evaluate``: the inputs given pick what is scored; every mode returns one Summary.

Modes:
  road_network       --pred roads.gpkg|road_mask.tif --truth CENTERLINES [--aoi FILE]
  inspection_masks   --pred INFER_OUT|MASKS_DIR (--truth MASKS_DIR | --coco FILE [--coco-category C])
  inspection_stage1  --model CLASSIFIER.pt --images DIR --truth MASKS_DIR|labels.csv
  model_on_data      --model PACKAGE --data DIR -o OUT   (the package's task scores it)
  damage_lodo        --leave-one-domain-out DATA -o OUT
"""

from __future__ import annotations

from pathlib import Path

from geodefect.errors import InputError
from geodefect.summary import Summary

ROAD_KEYS = ("buffer_m", "apls_snap_m", "grid_m")


def select_mode(given: dict) -> str:
    """The evaluation mode for the options the user gave (an InputError lists the modes)."""
    if given.get("pred") and (given.get("coco") or Path(given["pred"]).is_dir()):
        return "inspection_masks"
    if given.get("model") and given.get("images"):
        return "inspection_stage1"
    if given.get("pred") and given.get("truth"):
        return "road_network"
    if given.get("leave_one_domain_out"):
        return "damage_lodo"
    if given.get("model") and given.get("data"):
        return "model_on_data"
    raise InputError("nothing to evaluate: give --pred PRED --truth CENTERLINES (roads: PRED is roads.gpkg or "
                     "road_mask.tif), --pred DIR --truth MASKS, --model M --images DIR --truth T, --model M --data DIR "
                     "-o OUT, or --leave-one-domain-out DATA -o OUT")


def evaluate(opts: dict) -> Summary:
    """Run the mode that ``opts`` select; ``opts`` are the CLI's options (None = not given)."""
    from geodefect._torch import set_threads

    set_threads(opts.get("threads"))
    mode = select_mode(opts)
    summary = MODES[mode](opts)
    if opts.get("json_out") and mode != "road_network":
        summary.write_json(opts["json_out"])
    return summary


def _roads(opts: dict) -> Summary:
    from geodefect.evaluation.scene import evaluate as evaluate_roads
    from geodefect.evaluation.scene import format_road_metrics

    overrides = {k: opts[k] for k in ROAD_KEYS if opts.get(k) is not None}
    result = evaluate_roads(opts["pred"], opts["truth"], aoi=opts.get("aoi"), json_out=opts.get("json_out"),
                            config_file=opts.get("config_file"), overrides=overrides, overwrite=opts.get("overwrite"),
                            errors_out=opts.get("errors_out"))
    return Summary("evaluate", "", format_road_metrics(result).splitlines(), result)


def _inspection_masks(opts: dict) -> Summary:
    from geodefect.evaluation.inspection_eval import evaluate_masks

    data = evaluate_masks(opts["pred"], opts.get("truth"), coco=opts.get("coco"),
                          coco_category=list(opts.get("coco_category") or []) or None)
    o, m = data["overall"], data["mean"]
    lines = [f"{data['n_images']} images, overall: IoU {o['iou']:.4f} F1 {o['f1']:.4f} precision {o['precision']:.4f} "
             f"recall {o['recall']:.4f}; per-image mean IoU {m['iou']:.4f} F1 {m['f1']:.4f}"]
    if "boxes" in data:
        b = data["boxes"]
        lines.append(f"boxes: recall {b['box_recall']:.4f} ({b['n_boxes']} boxes), precision {b['box_precision']:.4f} "
                     f"({b['n_components']} predicted components)")
    return Summary("evaluate", "", lines, data)


def _inspection_stage1(opts: dict) -> Summary:
    from geodefect.evaluation.inspection_eval import evaluate_classifier

    data = evaluate_classifier(opts["model"], opts["images"], opts.get("truth"), device=opts.get("device") or "auto",
                               backend=opts.get("backend") or "auto")
    s = data["overall"]
    lines = [f"stage 1 on {data['n_images']} images: accuracy {s['accuracy']:.4f} precision {s['precision']:.4f} "
             f"recall {s['recall']:.4f} f1 {s['f1']:.4f}; {data['fps']:.2f} frames/s"]
    return Summary("evaluate", "", lines, data)


def _require_out(opts: dict, mode: str) -> None:
    if not opts.get("out_dir"):
        raise InputError(f"{mode} needs -o/--out-dir for the tables and plots")


def _model_on_data(opts: dict) -> Summary:
    """A model package on a labelled folder, scored by the package's task."""
    from geodefect.inference.backends import read_model_recipe
    from geodefect.tasks import task_for_recipe

    _require_out(opts, "--model/--data")
    task = task_for_recipe(read_model_recipe(opts["model"]))
    overrides = {"domains": opts["domains"]} if opts.get("domains") else {}
    return task.evaluate_model(opts["model"], opts["data"], opts["out_dir"], config_file=opts.get("config_file"),
                               overrides=overrides, overwrite=bool(opts.get("overwrite")))


def _damage_lodo(opts: dict) -> Summary:
    """Leave-one-domain-out training + evaluation: Table II/III as Markdown."""
    from geodefect.tasks.damage_lodo import leave_one_domain_out
    from geodefect.training.config import LoopConfig

    _require_out(opts, "--leave-one-domain-out")
    keys = {"backbone", "losses", "width_mult", "domains", "classes", "dg_weight", "contrastive_weight",
            "temperature", "background_per_image", *LoopConfig.__dataclass_fields__}
    overrides = {k: v for k, v in opts.items() if k in keys and v is not None}
    result = leave_one_domain_out(opts["leave_one_domain_out"], opts["out_dir"], config_file=opts.get("config_file"),
                                  overrides=overrides, overwrite=bool(opts.get("overwrite")))
    return Summary("evaluate", "", result.pop("markdown").splitlines(), result)


MODES = {"road_network": _roads, "inspection_masks": _inspection_masks, "inspection_stage1": _inspection_stage1,
         "model_on_data": _model_on_data, "damage_lodo": _damage_lodo}
