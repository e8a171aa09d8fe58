"""CLI end to end on tiny synthetic data with tiny models: synth -> chip -> train -> infer -> evaluate -> explain."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from geodefect.cli.main import cli

TINY_SEG = ["--encoder", "resnet18", "--decoder-channels", "16"]
FAST = ["--epochs", "1", "--batch-size", "4", "--steps-per-epoch", "1", "--device", "cpu"]


def _run(args):
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def crack_run(tmp_path_factory):
    """Synthetic cracks, chipped for both stages, a tiny classifier and segmenter trained briefly."""
    root = tmp_path_factory.mktemp("cracks")
    _run(["synth", "cracks", str(root / "data"), "--n-images", "6", "--height-px", "80", "--width-px", "96"])
    _run(["chip", str(root / "data" / "images"), "--masks", str(root / "data" / "masks"), "--task", "crack_segment",
          "--size-px", "64", "--stride-px", "32", "-o", str(root / "seg_chips")])
    _run(["chip", str(root / "data" / "images"), "--masks", str(root / "data" / "masks"), "--task", "crack_classify",
          "--input-px", "64", "-o", str(root / "cls_chips")])
    _run(["train", str(root / "seg_chips"), "-o", str(root / "seg_run"), *TINY_SEG, *FAST])
    _run(["train", str(root / "cls_chips"), "-o", str(root / "cls_run"), "--variant", "tiny", "--lr-schedule", "step",
          "--step-epochs", "1", *FAST])
    return root


def test_train_writes_packages_with_tasks(crack_run):
    import torch

    for run, task in (("seg_run", "crack_segment"), ("cls_run", "crack_classify")):
        pkg = torch.load(crack_run / run / "model.pt", weights_only=True)
        assert pkg["recipe"]["task"] == task
        assert len(pkg["recipe"]["normalization"]["mean"]) == 3
        assert (crack_run / run / "metrics.csv").is_file()
    assert torch.load(crack_run / "cls_run" / "model.pt", weights_only=True)["recipe"]["input_px"] == 64


def test_two_stage_infer_and_evaluate(crack_run):
    data, out = crack_run / "data", crack_run / "out"
    # threshold 0: stage 1 flags everything, so every image is segmented and stitched
    _run(["infer", str(crack_run / "seg_run" / "model.pt"), str(data / "images"), "--classifier",
          str(crack_run / "cls_run" / "model.pt"), "--threshold", "0", "--size-px", "64", "--stride-px", "48",
          "-o", str(out)])
    with (out / "predictions.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6 and all(0 <= float(r["stage1_prob"]) <= 1 and r["flagged"] == "1" for r in rows)
    for r in rows:
        mask = np.asarray(Image.open(out / "masks" / (r["image"][:-4] + ".png")))
        assert mask.shape == (80, 96)  # stitched at the image's size, not resized
        assert int(r["defect_px"]) == int((mask > 127).sum())
        assert np.asarray(Image.open(out / "overlays" / r["image"])).shape == (80, 96, 3)
    run = json.loads((out / "run.json").read_text())
    assert run["tasks"] == ["crack_classify", "crack_segment"] and run["window"]["size_px"] == 64
    # threshold above 1: nothing is flagged, masks stay empty
    _run(["infer", str(crack_run / "seg_run" / "model.pt"), str(data / "images"), "--classifier",
          str(crack_run / "cls_run" / "model.pt"), "--threshold", "1.0", "-o", str(crack_run / "out_none")])
    masks = list((crack_run / "out_none" / "masks").iterdir())
    assert len(masks) == 6 and all(np.asarray(Image.open(m)).max() == 0 for m in masks)

    text = _run(["evaluate", "--pred", str(out), "--truth", str(data / "masks"), "--json", str(crack_run / "m.json")])
    assert "IoU" in text
    summary = json.loads((crack_run / "m.json").read_text())
    assert summary["n_images"] == 6 and len(summary["per_image"]) == 6
    assert 0 <= summary["overall"]["iou"] <= 1
    pred_px = sum(int(r["defect_px"]) for r in rows)
    assert sum(r["pred_px"] for r in summary["per_image"]) == pred_px
    text = _run(["evaluate", "--model", str(crack_run / "cls_run" / "model.pt"), "--images", str(data / "images"),
                 "--truth", str(data / "labels.csv"), "--json", str(crack_run / "s1.json")])
    stage1 = json.loads((crack_run / "s1.json").read_text())
    assert "frames/s" in text and stage1["n_images"] == 6 and stage1["fps"] > 0
    assert stage1["overall"]["tp"] + stage1["overall"]["fn"] == 3  # 3 of the 6 synthetic images have cracks


def test_explain_cli(crack_run):
    image = sorted((crack_run / "data" / "images").iterdir())[0]
    out = crack_run / "explain"
    _run(["explain", str(crack_run / "cls_run" / "model.pt"), str(image), "--layer", "features.denseblock3",
          "-o", str(out)])
    overlay = np.asarray(Image.open(out / f"{image.stem}_features-denseblock3_scorecam.png"))
    assert overlay.shape == (80, 96, 3)
    result = CliRunner().invoke(cli, ["explain", str(crack_run / "cls_run" / "model.pt"), str(image), "--layer",
                                      "nope", "-o", str(out)])
    assert result.exit_code == 1 and "valid layers" in result.output


def test_infer_rejects_two_classifiers(crack_run):
    result = CliRunner().invoke(cli, ["infer", str(crack_run / "cls_run" / "model.pt"), str(crack_run / "data" / "images"),
                                      "--classifier", str(crack_run / "cls_run" / "model.pt"), "-o", str(crack_run / "x")])
    assert result.exit_code == 1 and "classifier" in result.output


def test_rail_kfold_and_box_metrics(tmp_path):
    _run(["synth", "rail", str(tmp_path / "rail"), "--n-images", "4", "--height-px", "200", "--width-px", "48"])
    _run(["chip", str(tmp_path / "rail" / "images"), "--coco", str(tmp_path / "rail" / "boxes_coco.json"),
          "--coco-category", "defect", "--strip-height-px", "100", "--strip-stride-px", "50", "-o", str(tmp_path / "chips")])
    meta = json.loads((tmp_path / "chips" / "meta.json").read_text())
    assert meta["task"] == "rail_segment" and meta["chip_shape_px"] == [100, 48]
    out = _run(["train", str(tmp_path / "chips"), "-o", str(tmp_path / "cv"), "--folds", "2", "--model", "rail_vgg_fcn", "--width-mult", "0.125",
                "--epochs", "1", "--batch-size", "4", "--steps-per-epoch", "1", "--device", "cpu"])
    assert "mean" in out and "IOU" in out
    with (tmp_path / "cv" / "folds.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["fold"] for r in rows] == ["1", "2", "mean", "std"]
    folds = rows[:2]
    assert sum(int(r["n_val"]) for r in folds) == meta["n_chips"]
    mean_iou = float(rows[2]["iou"])
    assert mean_iou == pytest.approx(np.mean([float(r["iou"]) for r in folds]), abs=1e-9)
    _run(["infer", str(tmp_path / "cv" / "fold_1" / "best.pt"), str(tmp_path / "rail" / "images"), "-o", str(tmp_path / "pred")])
    text = _run(["evaluate", "--pred", str(tmp_path / "pred"), "--coco", str(tmp_path / "rail" / "boxes_coco.json"),
                 "--coco-category", "defect", "--json", str(tmp_path / "m.json")])
    summary = json.loads((tmp_path / "m.json").read_text())
    assert "box" in text and summary["boxes"]["n_boxes"] >= 4 and 0 <= summary["boxes"]["box_recall"] <= 1


def test_explain_target_beyond_the_classes_is_one_line(crack_run):
    image = sorted((crack_run / "data" / "images").iterdir())[0]
    out = crack_run / "explain_target"
    result = CliRunner().invoke(cli, ["explain", str(crack_run / "cls_run" / "model.pt"), str(image), "--layer",
                                      "features.denseblock3", "--target", "5", "-o", str(out)])
    assert result.exit_code == 1 and "`--target` must be a class index in 0..1" in result.output
    assert "Traceback" not in result.output and not out.exists()


def test_segmenter_package_carries_postprocess_chosen_on_validation(crack_run):
    import torch

    recipe = torch.load(crack_run / "seg_run" / "model.pt", weights_only=True)["recipe"]
    assert 0 < recipe["mask_threshold"] < 1 and recipe["min_component_px"] >= 0
    assert recipe["postprocess"]["chosen_on"] == "validation chips" and recipe["postprocess"]["n_chips"] > 0
    data = crack_run / "data" / "images"
    _run(["infer", str(crack_run / "seg_run" / "model.pt"), str(data), "-o", str(crack_run / "pp_default")])
    used = json.loads((crack_run / "pp_default" / "run.json").read_text())["postprocess"]
    assert used == {"mask_threshold": recipe["mask_threshold"], "min_component_px": recipe["min_component_px"]}
    _run(["infer", str(crack_run / "seg_run" / "model.pt"), str(data), "--mask-threshold", "0.99",
          "--min-component-px", "7", "-o", str(crack_run / "pp_flags")])
    used = json.loads((crack_run / "pp_flags" / "run.json").read_text())["postprocess"]
    assert used == {"mask_threshold": 0.99, "min_component_px": 7}
    result = CliRunner().invoke(cli, ["infer", str(crack_run / "seg_run" / "model.pt"), str(data),
                                      "--min-component-px", "-1", "-o", str(crack_run / "pp_bad")])
    assert result.exit_code == 1 and "min_component_px" in result.output
    assert not (crack_run / "pp_bad").exists()


def test_predictions_csv_has_crack_length_and_width(crack_run):
    out = crack_run / "geom"
    _run(["infer", str(crack_run / "seg_run" / "model.pt"), str(crack_run / "data" / "images"), "--mask-threshold", "0.3",
          "--pixel-size-mm", "0.5", "-o", str(out)])
    with (out / "predictions.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        assert float(r["crack_length_mm"]) == pytest.approx(float(r["crack_length_px"]) * 0.5, abs=0.01)
        assert float(r["max_width_mm"]) == pytest.approx(float(r["max_width_px"]) * 0.5, abs=0.01)
        if int(r["defect_px"]) == 0:
            assert float(r["crack_length_px"]) == 0 and float(r["max_width_px"]) == 0
        else:
            assert float(r["max_width_px"]) >= 1


def _outputs(folder):
    """{relative path: bytes} of an infer folder's PNGs, and its CSV rows without the timings."""
    pngs = {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.png"))}
    with (folder / "predictions.csv").open() as fh:
        rows = [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(fh)]
    return pngs, rows


def test_outputs_made_behind_the_model_equal_inline_ones(crack_run, monkeypatch):
    """Each image's PNGs and measurements are made on a helper thread while the next image is
    predicted (when a core is free): the files and figures are those of the inline run."""
    import geodefect.inference.roads as roads

    args = ["infer", str(crack_run / "seg_run" / "model.pt"), str(crack_run / "data" / "images"), "--mask-threshold", "0.3"]
    runs = {}
    for queue in (0, 2):
        monkeypatch.setattr(roads, "write_behind_blocks", lambda device, q=queue: q)
        _run([*args, "-o", str(crack_run / f"behind{queue}")])
        runs[queue] = _outputs(crack_run / f"behind{queue}")
    assert len(runs[2][0]) == 3 * 6 and runs[2] == runs[0]
    assert any(int(r["defect_px"]) > 0 for r in runs[2][1])  # the comparison covers masks with defects


def test_failure_behind_the_model_fails_the_run_and_leaves_nothing(crack_run, monkeypatch):
    import geodefect.inference.roads as roads
    import geodefect.io.image as images

    monkeypatch.setattr(roads, "write_behind_blocks", lambda device: 2)
    written = []

    def failing_png(path, array_chw, **kw):
        written.append(path)
        if len(written) == 7:  # the third image's first PNG: the disk is full
            raise OSError(28, "No space left on device")
        images.write_png.__wrapped__(path, array_chw, **kw)

    failing_png.__wrapped__ = images.write_png
    monkeypatch.setattr(images, "write_png", failing_png)
    out = crack_run / "behind_failed"
    result = CliRunner().invoke(cli, ["infer", str(crack_run / "seg_run" / "model.pt"),
                                      str(crack_run / "data" / "images"), "-o", str(out)])
    assert result.exit_code == 1 and "no space left on the device" in result.output  # the one-line error
    assert not out.exists() and len(written) == 7  # nothing queued after the failure was written


def test_overlays_of_jpeg_photos_are_jpeg_and_of_png_photos_exact_png(crack_run, tmp_path):
    from geodefect.io.image import read_image_uint8
    from geodefect.plots.inspection import mask_overlay

    photos = tmp_path / "jpeg"
    photos.mkdir()
    for png in sorted((crack_run / "data" / "images").iterdir()):
        Image.open(png).convert("RGB").save(photos / f"{png.stem}.JPG", quality=90)
    for images, suffix, out in ((photos, ".jpg", tmp_path / "out_jpeg"),
                                (crack_run / "data" / "images", ".png", tmp_path / "out_png")):
        _run(["infer", str(crack_run / "seg_run" / "model.pt"), str(images), "--mask-threshold", "0.5", "-o", str(out)])
        for photo in sorted(images.iterdir()):
            mask = np.asarray(Image.open(out / "masks" / f"{photo.stem}.png")) > 127
            expected = mask_overlay(read_image_uint8(photo), mask).astype(int)
            got = np.asarray(Image.open(out / "overlays" / f"{photo.stem}{suffix}").convert("RGB")).astype(int)
            assert [p.suffix for p in (out / "overlays").glob(f"{photo.stem}.*")] == [suffix]
            if suffix == ".png":
                assert np.array_equal(got, expected)
            else:
                assert np.abs(got - expected).mean() < 2.0  # quality 95


def test_a_jpeg_overlay_keeps_its_painted_pixels_red(tmp_path):
    from geodefect.io.image import overlay_suffix, write_picture
    from geodefect.plots.inspection import mask_overlay

    rng = np.random.default_rng(0)
    grey = (96 + rng.integers(-8, 8, (1, 120, 160))).astype(np.uint8)
    mask = np.zeros((120, 160), bool)
    mask[40:44, 20:140] = True  # a 4-px crack
    expected = mask_overlay(grey, mask)
    path = tmp_path / f"frame{overlay_suffix(tmp_path / 'frame.JPEG')}"
    write_picture(path, expected.transpose(2, 0, 1))
    got = np.asarray(Image.open(path)).astype(int)
    assert path.suffix == ".jpg" and Image.open(path).format == "JPEG"
    assert np.abs(got - expected.astype(int)).max() <= 12
    red = got[mask]
    assert (red[:, 0] - red[:, 1] > 100).all()  # no chroma subsampling: the 4-px line stays red
    assert (np.abs(got[~mask][:, 0] - got[~mask][:, 1]) <= 12).all()  # and grey stays grey
