"""geodefect.io.raster: opening errors, windowed padded reads, stretch, resampling, writers."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from geodefect.errors import InputError, InputFileNotFoundError
from geodefect.io.chip_writer import ChipWriter
from geodefect.io.raster import RasterReader, open_raster, parse_bands, pixel_size_m
from geodefect.io.raster_write import create_tiled_geotiff, write_cog_from_tiled
from geodefect.testing.tiny import write_tiny_geotiff


@pytest.fixture
def ramp_tif(tmp_path):
    """3 bands, 50x70, value = band*1000 + row*70 + col (uint16)."""
    rows, cols = np.mgrid[0:50, 0:70]
    arr = np.stack([b * 1000 + rows * 70 + cols for b in range(3)]).astype("uint16")
    path = tmp_path / "ramp.tif"
    write_tiny_geotiff(path, arr, pixel_size_m=2.0)
    return path, arr


def test_missing_file(tmp_path):
    with pytest.raises(InputFileNotFoundError, match="does not exist"):
        open_raster(tmp_path / "nope.tif")


def test_not_a_raster(tmp_path):
    p = tmp_path / "notes.tif"
    p.write_text("hello, not a raster")
    with pytest.raises(InputError, match="not a raster"):
        open_raster(p)


@pytest.mark.parametrize("tiled", [False, True])
def test_truncated_geotiff(tmp_path, tiled):
    arr = np.random.default_rng(0).integers(0, 255, (3, 300, 300)).astype("uint8")
    full = tmp_path / "full.tif"
    write_tiny_geotiff(full, arr, tiled=tiled, **({"blockxsize": 128, "blockysize": 128} if tiled else {}))
    cut = tmp_path / "cut.tif"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(InputError, match=r"cut\.tif.*truncated"):
        open_raster(cut)
    open_raster(full).close()


def test_no_crs_names_fix(tmp_path):
    p = tmp_path / "nocrs.tif"
    with rasterio.open(p, "w", driver="GTiff", width=8, height=8, count=1, dtype="uint8") as dst:
        dst.write(np.zeros((1, 8, 8), np.uint8))
    with pytest.raises(InputError, match="gdal_edit.py -a_srs EPSG:"):
        open_raster(p)
    open_raster(p, require_crs=False).close()


def test_bands_selection_and_errors(ramp_tif):
    path, arr = ramp_tif
    with RasterReader(path, bands=[3, 1], stretch="raw") as r:
        assert r.shape == (2, 50, 70)
        np.testing.assert_array_equal(r.read(Window(0, 0, 70, 50)), arr[[2, 0]])
    with pytest.raises(InputError, match=r"band\(s\) 4 .* has 3 band"):
        RasterReader(path, bands=[1, 4])
    with pytest.raises(InputError, match="1-based"):
        parse_bands("0,1")
    assert parse_bands("1, 2,3") == [1, 2, 3]


def test_padded_read_matches_array(ramp_tif):
    path, arr = ramp_tif
    with RasterReader(path, stretch="raw") as r:
        for win in [Window(-5, -3, 20, 10), Window(60, 40, 20, 20), Window(100, 100, 4, 4), Window(3, 4, 5, 6)]:
            out = r.read(win)
            assert out.shape == (3, int(win.height), int(win.width))
            expected = np.zeros_like(out)
            r0, c0 = int(win.row_off), int(win.col_off)
            for i in range(out.shape[1]):
                for j in range(out.shape[2]):
                    rr, cc = r0 + i, c0 + j
                    if 0 <= rr < 50 and 0 <= cc < 70:
                        expected[:, i, j] = arr[:, rr, cc]
            np.testing.assert_array_equal(out, expected)
        valid = r.read_valid_mask(Window(-5, -3, 20, 10))
        assert valid.sum() == 15 * 7 and not valid[0, 0] and valid[-1, -1]


def test_nodata_mask(tmp_path):
    arr = np.full((1, 20, 20), 7, np.uint8)
    arr[0, :5] = 0
    p = tmp_path / "nd.tif"
    write_tiny_geotiff(p, arr, nodata=0)
    with RasterReader(p) as r:
        mask = r.read_valid_mask(Window(0, 0, 20, 20))
    assert mask.sum() == 15 * 20 and not mask[:5].any()


def test_percentile_stretch_16bit(tmp_path):
    rng = np.random.default_rng(1)
    arr = rng.integers(1000, 5000, (2, 300, 400)).astype("uint16")
    p = tmp_path / "u16.tif"
    write_tiny_geotiff(p, arr)
    with RasterReader(p) as r:
        assert r.stretch_mode == "stretch" and r.dtype == np.uint8
        out = r.read(Window(0, 0, 400, 300))
        lo, hi = r.stretch_limits[0]
    assert out.dtype == np.uint8
    assert 1000 <= lo < 1200 and 4800 < hi <= 5000
    # ~2% of pixels at or below lo -> 0, ~2% at or above hi -> 255, monotone in between
    assert 0.01 < (out[0] == 0).mean() < 0.04 and 0.01 < (out[0] == 255).mean() < 0.04
    order = np.argsort(arr[0].ravel())
    assert (np.diff(out[0].ravel()[order].astype(int)) >= 0).all()
    with RasterReader(p, stretch=False) as r:
        assert r.read(Window(0, 0, 4, 4)).max() == 255  # clipped


def test_uint8_not_stretched_by_default(tmp_path):
    arr = np.arange(100, dtype=np.uint8).reshape(1, 10, 10)
    p = tmp_path / "u8.tif"
    write_tiny_geotiff(p, arr)
    with RasterReader(p) as r:
        np.testing.assert_array_equal(r.read(Window(0, 0, 10, 10)), arr)


def test_pixel_size_projected_and_geographic():
    from rasterio.crs import CRS
    from rasterio.transform import from_origin

    assert pixel_size_m(CRS.from_epsg(32631), from_origin(0, 0, 0.3, 0.3), 10, 10) == pytest.approx((0.3, 0.3))
    # SpaceNet-like: 2.7e-6 degrees at 36 N: ~0.30 m north-south, ~0.243 m east-west
    x_m, y_m = pixel_size_m(CRS.from_epsg(4326), from_origin(-115.3, 36.2, 2.7e-6, 2.7e-6), 1300, 1300)
    assert y_m == pytest.approx(0.2997, rel=2e-3)
    assert x_m == pytest.approx(0.2997 * np.cos(np.radians(36.2)), rel=5e-3)


def test_resampling_to_cell_size(tmp_path):
    arr = np.random.default_rng(2).integers(0, 255, (3, 120, 160)).astype("uint8")
    p = tmp_path / "fine.tif"
    t = write_tiny_geotiff(p, arr, pixel_size_m=0.5)
    with RasterReader(p, cell_size_m=1.0) as r:
        assert r.shape == (3, 60, 80)
        assert r.transform.a == pytest.approx(1.0) and r.transform.e == pytest.approx(-1.0)
        assert (r.transform.c, r.transform.f) == (t.c, t.f)
        assert r.pixel_size_m == pytest.approx((1.0, 1.0))
        assert r.resampling == "average"
        out = r.read(Window(0, 0, 80, 60))
    # 2x coarser with area averaging: each output pixel is the mean of its 2x2 source block
    np.testing.assert_allclose(out, arr.reshape(3, 60, 2, 80, 2).mean(axis=(2, 4)), atol=1.01)
    with RasterReader(p, cell_size_m=0.4) as r:  # upsampling: bilinear
        assert r.shape == (3, 150, 200) and r.resampling == "bilinear"
        assert r.transform.a == pytest.approx(0.4)
        out = r.read(Window(0, 0, 200, 150))
    assert out.min() >= arr.min() and out.max() <= arr.max()
    assert abs(float(out.mean()) - float(arr.mean())) < 2


def test_chip_writer_roundtrip(tmp_path):
    from rasterio.transform import from_origin

    for crs in ("EPSG:4326", "EPSG:32631", "EPSG:2154"):
        w = ChipWriter(crs)
        arr = np.random.default_rng(3).integers(0, 255, (3, 33, 47)).astype("uint8")
        t = from_origin(600000.25, 6800000.75, 0.3, 0.3)
        w.write(tmp_path / "c.tif", arr, transform=t)
        w.write(tmp_path / "m.tif", arr[0], transform=t)
        with rasterio.open(tmp_path / "c.tif") as src:
            assert src.crs == rasterio.crs.CRS.from_user_input(crs)
            assert src.transform.almost_equals(t, precision=1e-12)
            np.testing.assert_array_equal(src.read(), arr)
        with rasterio.open(tmp_path / "m.tif") as src:
            assert src.count == 1 and (src.read(1) == arr[0]).all()


@pytest.mark.parametrize("width", [1, 7, 8, 9, 47, 512])
def test_chip_writer_bilevel_reads_back_as_uint8_mask(tmp_path, width):
    """1 bit per pixel, rows padded to whole bytes: GDAL reads the same 0/1 uint8 array, NBITS=1."""
    from affine import Affine
    from rasterio.transform import from_origin

    mask = (np.random.default_rng(width).random((13, width)) > 0.6).astype(np.uint8)
    t = from_origin(448000.3, 5412000.6, 0.3, 0.3)
    ChipWriter("EPSG:32631").write(tmp_path / "m.tif", mask, transform=t, bilevel=True)
    with rasterio.open(tmp_path / "m.tif") as src:
        assert src.dtypes == ("uint8",) and src.tags(1, "IMAGE_STRUCTURE")["NBITS"] == "1"
        assert src.transform == t and src.crs.to_epsg() == 32631
        np.testing.assert_array_equal(src.read(1), mask)
    # a rotated transform goes through GDAL (NBITS=1) and reads back the same
    rot = Affine(0.3, 0.1, 448000, 0.1, -0.3, 5412000)
    ChipWriter("EPSG:32631").write(tmp_path / "r.tif", mask, transform=rot, bilevel=True)
    with rasterio.open(tmp_path / "r.tif") as src:
        assert src.tags(1, "IMAGE_STRUCTURE")["NBITS"] == "1"
        np.testing.assert_array_equal(src.read(1), mask)
    with pytest.raises(ValueError, match="uint8"):
        ChipWriter("EPSG:32631").write(tmp_path / "f.tif", mask.astype(np.float32), transform=t, bilevel=True)


def test_tiled_then_cog(tmp_path):
    from rasterio.transform import from_origin

    tiled = tmp_path / "prob_tiled.tif"
    arr = np.random.default_rng(4).random((1, 700, 900)).astype("float32")
    with create_tiled_geotiff(tiled, width=900, height=700, count=1, dtype="float32", crs="EPSG:32631",
                              transform=from_origin(0, 700, 1, 1), block_px=256) as dst:
        for r0 in range(0, 700, 256):
            win = Window(0, r0, 900, min(256, 700 - r0))
            dst.write(arr[:, r0:r0 + int(win.height)], window=win)
    cog = tmp_path / "prob.tif"
    write_cog_from_tiled(tiled, cog, block_px=256)
    with rasterio.open(cog) as src:
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert src.overviews(1), "COG has overviews"
        np.testing.assert_array_equal(src.read(), arr)
    assert not list(tmp_path.glob(".tmp-*"))


def test_default_bands_skip_alpha(tmp_path):
    from rasterio.enums import ColorInterp

    p = tmp_path / "rgba.tif"
    write_tiny_geotiff(p, np.full((4, 8, 8), 9, np.uint8))
    with rasterio.open(p, "r+") as ds:
        ds.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha]
    with RasterReader(p) as r:
        assert r.bands == [1, 2, 3] and r.shape == (3, 8, 8)
    with RasterReader(p, bands=[4]) as r:
        assert r.shape == (1, 8, 8)


@pytest.mark.parametrize(("shape", "dtype"), [((2, 37, 51), "uint16"), ((4, 20, 30), "float32"),
                                              ((1, 5, 7), "int16"), ((3, 1, 1), "uint8")])
def test_chip_writer_dtypes_and_band_counts(tmp_path, shape, dtype):
    from rasterio.transform import from_origin

    arr = (np.random.default_rng(5).random(shape) * 300 - 50).astype(dtype)
    t = from_origin(448000.3, 5412000.6, 0.3, 0.3)
    ChipWriter("EPSG:32631").write(tmp_path / "x.tif", arr, transform=t)
    with rasterio.open(tmp_path / "x.tif") as src:
        assert src.dtypes == (dtype,) * shape[0] and src.transform == t and src.crs.to_epsg() == 32631
        np.testing.assert_array_equal(src.read(), arr)


def test_chip_writer_rotated_transform_falls_back(tmp_path):
    from affine import Affine

    t = Affine(0.3, 0.1, 448000, 0.1, -0.3, 5412000)
    arr = np.ones((1, 4, 4), np.uint8)
    ChipWriter("EPSG:32631").write(tmp_path / "r.tif", arr, transform=t)
    with rasterio.open(tmp_path / "r.tif") as src:
        assert src.transform.almost_equals(t) and (src.read() == 1).all()


def test_corrupt_middle_block_is_an_input_error(tmp_path):
    arr = np.random.default_rng(6).integers(0, 255, (1, 512, 512)).astype("uint8")
    p = tmp_path / "c.tif"
    write_tiny_geotiff(p, arr, tiled=True, blockxsize=256, blockysize=256, compress="deflate")
    with rasterio.open(p) as src:
        offset = int(src.get_tag_item("BLOCK_OFFSET_0_0", "TIFF", bidx=1))
    data = bytearray(p.read_bytes())
    data[offset:offset + 64] = b"\xff" * 64  # garble the first tile's deflate stream
    p.write_bytes(bytes(data))
    with RasterReader(p) as r:  # the last block is intact: opening works
        with pytest.raises(InputError, match=r"c\.tif.*rows 0\.\.100.*corrupt"):
            r.read(Window(0, 0, 100, 100))
