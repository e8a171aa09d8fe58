"""rail_segment's defaults depend on the model: the pretrained DeepLabV3+ and the paper's FCN."""

from __future__ import annotations

from geodefect.tasks import get_task
from geodefect.tasks.inspection import InspectionOptions


def test_model_dependent_defaults_and_explicit_options_win():
    task = get_task("rail_segment")
    fcn = task.options_for_run(InspectionOptions(model="rail_vgg_fcn"))
    assert (fcn.loss, fcn.batch_norm, fcn.encoder, fcn.defect_oversample) == ("ce_dice", True, None, 0.5)
    lite = task.options_for_run(InspectionOptions(model="crack_deeplabv3plus"))
    assert (lite.loss, lite.encoder, lite.encoder_weights, lite.batch_norm) == (
        "bce_dice", "tu-efficientnet_lite0", "imagenet", None)
    mine = task.options_for_run(InspectionOptions(model="crack_deeplabv3plus", loss="dice", encoder_weights="none"))
    assert (mine.loss, mine.encoder_weights) == ("dice", "none")
    default = task.options_for_run(InspectionOptions())
    assert default.model == task.default_model
    shown = task.option_defaults_shown()
    assert shown["model"] == task.default_model and shown["loss"] == default.loss
    # other tasks are unchanged by the rail entries
    crack = get_task("crack_segment").options_for_run(InspectionOptions())
    assert crack.loss == "dice" and crack.model == "crack_unet" and crack.defect_oversample is None
