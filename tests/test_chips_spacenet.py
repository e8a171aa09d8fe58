"""Chip export on the real SpaceNet Vegas tile (EPSG:4326, ~0.3 m); skipped without ../shared/data."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterio.windows import from_bounds
from rasterio.windows import transform as window_transform

from geodefect.chips.geo import chip as _geo_chip
from geodefect.labels import angle_to_bin


def chip(*args, **kwargs):  # the road task names its chips
    return _geo_chip(*args, task="roads", **kwargs)



@pytest.fixture(scope="module")
def vegas(shared_data, tmp_path_factory):
    d = shared_data / "spacenet_vegas_rgb"
    image, lines = d / "RGB-PanSharpen_AOI_2_Vegas_img0.tif", d / "AOI_2_Vegas_img0_roads.geojson"
    out = tmp_path_factory.mktemp("vegas") / "chips"
    chip([image], out, centerlines=lines, overrides={"bands": "1,2,3", "keep_empty": 1.0,
                                                        "val_fraction": 0.0})  # every window kept
    return image, lines, out


def test_vegas_chips_georeferenced_like_source(vegas):
    image, _, out = vegas
    idx = gpd.read_file(out / "index.gpkg", layer="chips")
    assert len(idx) == 16  # 1300 px: offsets 0, 384, 768, 788 on each axis
    with rasterio.open(image) as src:
        assert src.crs.to_epsg() == 4326
        for row in idx.itertuples():
            with rasterio.open(out / row.image) as c:
                win = from_bounds(*c.bounds, transform=src.transform).round_offsets().round_lengths()
                assert c.crs == src.crs and c.count == 3
                assert c.transform.almost_equals(window_transform(win, src.transform), precision=1e-15)
                np.testing.assert_array_equal(c.read(), src.read([1, 2, 3], window=win))


def test_vegas_masks_and_bins_on_centerlines(vegas):
    _, lines_path, out = vegas
    lines = gpd.read_file(lines_path).to_crs("EPSG:4326").explode(ignore_index=True)
    inside = bin_ok = total = 0
    for path in sorted((out / "labels").glob("*.tif")):
        with rasterio.open(path) as lab, rasterio.open(out / "orientation" / path.name) as ori:
            mask, bins, t = lab.read(1), ori.read(1), lab.transform
            for geom in lines.geometry:
                coords = np.asarray(geom.coords)[:, :2]
                for (x0, y0), (x1, y1) in zip(coords[:-1], coords[1:], strict=True):
                    c0, r0 = ~t @ (x0, y0)
                    c1, r1 = ~t @ (x1, y1)
                    n = int(max(abs(c1 - c0), abs(r1 - r0)) * 2) + 1
                    # interior points only: the ends of segments are junctions/bends
                    f = np.linspace(0, 1, n)[n // 10: n - n // 10] if n > 10 else np.array([])
                    cc, rr = c0 + f * (c1 - c0), r0 + f * (r1 - r0)
                    ok = (cc >= 0) & (cc < 512) & (rr >= 0) & (rr < 512)
                    ci, ri = cc[ok].astype(int), rr[ok].astype(int)
                    total += ok.sum()
                    inside += mask[ri, ci].sum()
                    expected = angle_to_bin(np.degrees(np.arctan2(-(r1 - r0), c1 - c0)), bin_deg=20)
                    bin_ok += (bins[ri, ci] == expected).sum()
    print(f'centerline points: {total}, inside mask {inside / total:.3f}, bin agrees {bin_ok / total:.3f}')
    assert total > 5000
    assert inside / total >= 0.95, inside / total
    assert bin_ok / total >= 0.85, bin_ok / total


def test_vegas_road_pixels_darker_than_masked_out(vegas):
    """Roads in the Vegas tile are dark asphalt; the mask must sit on them, not beside."""
    _, _, out = vegas
    road, other = [], []
    for path in sorted((out / "labels").glob("*.tif")):
        with rasterio.open(path) as lab, rasterio.open(out / "images" / path.name) as img:
            m = lab.read(1).astype(bool)
            grey = img.read().mean(axis=0)
            if m.any():
                road.append(grey[m].mean())
                other.append(grey[~m].mean())
    assert np.mean(road) < np.mean(other)
