"""geodefect.io.image: (H, W, C) -> (C, H, W) in one place, the image reader protocol."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from rasterio.windows import Window

from geodefect.errors import InputError, InputFileNotFoundError
from geodefect.io.image import ImageReader, open_reader, read_image, to_chw, to_hwc, write_image
from geodefect.io.raster import RasterReader
from geodefect.testing.tiny import write_tiny_geotiff
from geodefect.windows import iter_windows, window_slices


def test_to_chw_and_back():
    hwc = np.arange(5 * 7 * 3).reshape(5, 7, 3)
    chw = to_chw(hwc)
    assert chw.shape == (3, 5, 7) and chw[2, 4, 6] == hwc[4, 6, 2]
    np.testing.assert_array_equal(to_hwc(chw), hwc)
    assert to_chw(np.zeros((5, 7))).shape == (1, 5, 7)
    assert to_hwc(np.zeros((1, 5, 7))).shape == (5, 7)
    assert to_chw(np.zeros((3, 50, 60))).shape == (3, 50, 60)


@pytest.mark.parametrize(("mode", "bands"), [("L", 1), ("RGB", 3), ("RGBA", 4)])
@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_read_image_modes(tmp_path, mode, bands, suffix):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 255, (20, 30, bands) if bands > 1 else (20, 30)).astype(np.uint8)
    p = tmp_path / f"im{suffix}"
    Image.fromarray(arr, mode=mode).save(p)
    out = read_image(p)
    assert out.shape == (bands, 20, 30)
    np.testing.assert_array_equal(to_hwc(out), arr)
    assert read_image(p, grayscale=True).shape == (1, 20, 30)


def test_jpeg_grayscale_and_palette(tmp_path):
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[..., 0] = 200
    Image.fromarray(rgb).save(tmp_path / "a.jpg")
    assert read_image(tmp_path / "a.jpg").shape == (3, 16, 16)
    Image.fromarray(rgb).convert("P").save(tmp_path / "p.png")
    assert read_image(tmp_path / "p.png").shape == (3, 16, 16)


def test_bad_images(tmp_path):
    with pytest.raises(InputFileNotFoundError):
        read_image(tmp_path / "missing.png")
    (tmp_path / "x.png").write_text("not an image")
    with pytest.raises(InputError, match="not an image"):
        read_image(tmp_path / "x.png")


def test_reader_protocol_reassembles_image(tmp_path):
    arr = np.random.default_rng(1).integers(0, 255, (37, 53, 3)).astype(np.uint8)
    Image.fromarray(arr).save(tmp_path / "photo.png")
    reader = open_reader(tmp_path / "photo.png")
    assert isinstance(reader, ImageReader) and reader.shape == (3, 37, 53)
    out = np.zeros(reader.shape, np.uint8)
    for w in iter_windows(37, 53, size_px=16, stride_px=12):
        out[(slice(None), *window_slices(w))] = reader.read(w)
    np.testing.assert_array_equal(out, to_chw(arr))
    padded = reader.read(Window(45, 30, 16, 16))
    assert padded.shape == (3, 16, 16)
    np.testing.assert_array_equal(padded[:, :7, :8], to_chw(arr)[:, 30:, 45:])
    assert (padded[:, 7:] == 0).all() and (padded[:, :, 8:] == 0).all()


def test_open_reader_picks_raster_for_geotiff(tmp_path):
    write_tiny_geotiff(tmp_path / "geo.tif", np.ones((3, 10, 10), np.uint8))
    with open_reader(tmp_path / "geo.tif") as r:
        assert isinstance(r, RasterReader) and r.shape == (3, 10, 10)


def test_write_image_roundtrip(tmp_path):
    chw = np.random.default_rng(2).integers(0, 255, (3, 9, 11)).astype(np.uint8)
    write_image(tmp_path / "o.png", chw)
    np.testing.assert_array_equal(read_image(tmp_path / "o.png"), chw)
    assert not list(tmp_path.glob(".tmp-*"))
