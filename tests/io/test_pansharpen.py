"""Pan-sharpening through GDAL's VRTPansharpenedDataset (geodefect.io.pansharpen) on tiny rasters.

MUL bands are spatially constant, so that GDAL's resampling of them is exact whatever its
kernel, and the weighted Brovey result has a closed form: with the default equal weights
over the k chosen bands, output band i = MUL[b_i] * PAN / mean(MUL[b_1..b_k]).
"""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from geodefect.errors import InputError
from geodefect.io.pansharpen import pansharpened_path, resolve_mul_bands
from geodefect.testing.tiny import write_tiny_geotiff

MUL_LEVELS = (100, 200, 300, 400, 500, 600, 700, 800)


def _pair(tmp_path, *, n_mul=8, pan_zero_rows=0):
    rng = np.random.default_rng(0)
    pan = rng.integers(200, 1800, size=(1, 64, 64)).astype(np.uint16)
    pan[:, :pan_zero_rows] = 0
    mul = np.stack([np.full((16, 16), v, np.uint16) for v in MUL_LEVELS[:n_mul]])
    write_tiny_geotiff(tmp_path / "pan.tif", pan, pixel_size_m=0.5)
    write_tiny_geotiff(tmp_path / "mul.tif", mul, pixel_size_m=2.0)
    return tmp_path / "pan.tif", tmp_path / "mul.tif", pan[0].astype(np.float64)


def test_output_is_on_the_pan_grid_with_the_chosen_bands_in_order(tmp_path):
    pan_path, mul_path, _ = _pair(tmp_path)
    vrt = pansharpened_path(pan_path, mul_path, "5,3,2")
    with rasterio.open(vrt) as ds, rasterio.open(pan_path) as pan:
        assert (ds.count, ds.height, ds.width) == (3, pan.height, pan.width)
        assert ds.crs == pan.crs and ds.transform == pan.transform
        assert ds.dtypes[0] == "uint16"


def test_values_follow_gdal_weighted_brovey(tmp_path):
    pan_path, mul_path, pan = _pair(tmp_path)
    bands = [5, 3, 2]
    with rasterio.open(pansharpened_path(pan_path, mul_path, bands)) as ds:
        out = ds.read().astype(np.float64)
    levels = np.array([MUL_LEVELS[b - 1] for b in bands], float)
    expected = levels[:, None, None] * pan[None] / levels.mean()
    assert np.abs(out - expected).max() <= 1.0  # rounding to uint16
    assert np.corrcoef(out[0].ravel(), pan.ravel())[0, 1] > 0.99  # the PAN detail is carried over


def test_zero_is_nodata_in_and_out(tmp_path):
    pan_path, mul_path, _ = _pair(tmp_path, pan_zero_rows=10)
    with rasterio.open(pansharpened_path(pan_path, mul_path)) as ds:
        assert ds.nodata == 0
        mask = ds.dataset_mask()
    assert not mask[:10].any() and mask[10:].all()


def test_same_inputs_give_the_same_path_and_names_resolve(tmp_path):
    pan_path, mul_path, _ = _pair(tmp_path)
    assert pansharpened_path(pan_path, mul_path, "red,green,blue") == pansharpened_path(pan_path, mul_path, [5, 3, 2])
    assert pansharpened_path(pan_path, mul_path).endswith("/pan.vrt")
    assert resolve_mul_bands("rgb", mul_path) == [5, 3, 2]
    assert resolve_mul_bands("nir1,red", mul_path) == [7, 5]
    with pytest.raises(InputError, match="coastal"):
        resolve_mul_bands("purple", mul_path)
    with pytest.raises(InputError, match="1..8"):
        resolve_mul_bands("9", mul_path)


def test_four_band_mul_defaults_to_its_rgb(tmp_path):
    pan_path, mul_path, _ = _pair(tmp_path, n_mul=4)
    assert resolve_mul_bands(None, mul_path) == [3, 2, 1]


def test_chip_cli_pan_sharpens_a_pan_image(tmp_path):
    from click.testing import CliRunner
    from shapely.geometry import LineString

    from geodefect.cli.main import cli
    from geodefect.testing.tiny import TINY_ORIGIN, write_lines

    pan_path, mul_path, _ = _pair(tmp_path)
    x0, y0 = TINY_ORIGIN
    lines = write_lines(tmp_path / "roads.geojson", [LineString([(x0, y0 - 10), (x0 + 32, y0 - 10)])])
    out = tmp_path / "chips"
    res = CliRunner().invoke(cli, ["chip", str(pan_path), "--pan-sharpen", str(mul_path), "--bands", "red,green,blue",
                                    "--centerlines", str(lines), "--size-px", "32", "--stride-px", "32",
                                    "--keep-empty", "1", "--val-fraction", "0", "-o", str(out)])
    assert res.exit_code == 0, res.output
    import json

    meta = json.loads((out / "meta.json").read_text())
    assert meta["pan_sharpen"] == {"mul_bands": [5, 3, 2]} and meta["bands"] == [1, 2, 3]
    assert meta["stretch"]["source_dtype"] == ["uint16"] and meta["stretch"]["percentiles"] == [2.0, 98.0]
    first = sorted((out / "images").glob("*.tif"))[0]
    assert first.name.startswith("pan_")
    with rasterio.open(first) as ds:
        assert ds.count == 3 and ds.dtypes[0] == "uint8"


def test_messages_name_the_panchromatic_file_not_the_vsimem_vrt(tmp_path):
    from geodefect.io.pansharpen import display_path

    pan_path, mul_path, _ = _pair(tmp_path)
    vrt = pansharpened_path(pan_path, mul_path, "5,3,2")
    assert vrt.startswith("/vsimem/") and display_path(vrt) == str(pan_path)
    assert display_path(tmp_path / "plain.tif") == str(tmp_path / "plain.tif")
