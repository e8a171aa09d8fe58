"""Inputs that do not match a model trained on pan-sharpened 11-bit imagery: clear error or warning."""

from __future__ import annotations

import logging

import pytest

from geodefect.errors import InputError
from geodefect.inference.geo import check_bit_depth, select_bands

RECIPE = {"bands": [1, 2, 3], "pan_sharpen": {"mul_bands": [5, 3, 2]},
          "stretch": {"mode": "stretch", "percentiles": [2.0, 98.0], "per": "scene", "source_dtype": ["uint16"]}}


def test_a_pan_image_alone_asks_for_its_multispectral_pair():
    with pytest.raises(InputError, match="pan-sharpened from multispectral bands 5,3,2; pass .*--pan-sharpen MUL.tif"):
        select_bands("PAN.tif", 1, RECIPE, None)
    assert select_bands("ps.vrt", 3, RECIPE, None) == [1, 2, 3]


def test_8_bit_imagery_for_a_16_bit_model_warns_with_the_fix(caplog):
    with caplog.at_level(logging.WARNING, logger="geodefect"):
        check_bit_depth("rgb.tif", "uint8", RECIPE)
    assert "trained on uint16" in caplog.text and "--pan-sharpen" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="geodefect"):
        check_bit_depth("ps.vrt", "uint16", RECIPE)
        check_bit_depth("old.tif", "uint8", {"bands": [1, 2, 3]})  # recipes without `stretch`: no opinion
    assert caplog.text == ""


def test_pretrained_names_resolve_and_unknown_names_list_them(tmp_path):
    from geodefect.errors import InputFileNotFoundError
    from geodefect.models.pretrained import PRETRAINED_DIR, resolve_model

    (tmp_path / "m.pt").write_bytes(b"x")
    assert resolve_model(tmp_path / "m.pt") == tmp_path / "m.pt"
    with pytest.raises(InputFileNotFoundError, match="one of: spacenet3-roads"):
        resolve_model("no-such-model")
    if (PRETRAINED_DIR / "spacenet3-roads.pt").is_file():
        assert resolve_model("spacenet3-roads") == PRETRAINED_DIR / "spacenet3-roads.pt"
