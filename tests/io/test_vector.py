"""Reading centerlines and AOIs: reprojection, repair, explode, and each bad input."""

from __future__ import annotations

import json
import logging

import geopandas as gpd
import numpy as np
import pytest
import shapely
from pyproj import Transformer

from geodefect.errors import InputError, InputFileNotFoundError
from geodefect.io.vector import read_aoi, read_lines, read_vector

LON, LAT = 2.35, 48.85


def _geojson(path, geometries, *, crs_member=None, props=None):
    features = [{"type": "Feature", "properties": (props or [{}] * len(geometries))[i],
                 "geometry": shapely.geometry.mapping(g)} for i, g in enumerate(geometries)]
    doc = {"type": "FeatureCollection", "features": features}
    if crs_member:
        doc["crs"] = {"type": "name", "properties": {"name": crs_member}}
    path.write_text(json.dumps(doc))
    return path


def test_geojson_without_crs_member_is_wgs84_and_is_reprojected(tmp_path):
    line = shapely.LineString([(LON, LAT), (LON + 0.001, LAT)])
    path = _geojson(tmp_path / "lines.geojson", [line])
    gdf = read_lines(path, to_crs="EPSG:32631")
    assert gdf.crs.to_epsg() == 32631
    (x0, y0), (x1, y1) = shapely.get_coordinates(gdf.geometry.iloc[0])
    assert 440_000 < x0 < 460_000 and 5_400_000 < y0 < 5_420_000
    assert x1 > x0  # digitising direction kept
    assert gdf.geometry.iloc[0].length == pytest.approx(73.3, abs=0.5)


def test_multilines_are_exploded_with_their_attributes(tmp_path):
    multi = shapely.MultiLineString([[(LON, LAT), (LON + 0.001, LAT)], [(LON, LAT + 0.001), (LON, LAT + 0.002)]])
    single = shapely.LineString([(LON, LAT), (LON, LAT - 0.001)])
    path = _geojson(tmp_path / "m.geojson", [multi, single], props=[{"road": "a"}, {"road": "b"}])
    gdf = read_lines(path)
    assert gdf.geom_type.tolist() == ["LineString"] * 3
    assert gdf["road"].tolist() == ["a", "a", "b"]
    assert gdf.index.tolist() == [0, 1, 2]


def test_other_formats_and_crs(tmp_path):
    gdf = gpd.GeoDataFrame({"id": [1]}, geometry=[shapely.LineString([(452_000, 5_412_000), (452_100, 5_412_000)])],
                           crs="EPSG:32631")
    gdf.to_file(tmp_path / "lines.gpkg", driver="GPKG")
    back = read_lines(tmp_path / "lines.gpkg", to_crs="EPSG:4326")
    assert back.crs.to_epsg() == 4326
    expected = Transformer.from_crs("EPSG:32631", "EPSG:4326", always_xy=True).transform(452_000, 5_412_000)
    assert back.geometry.iloc[0].coords[0] == pytest.approx(expected, abs=1e-9)
    assert read_vector(tmp_path / "lines.gpkg").crs.to_epsg() == 32631


def test_layers_of_a_geopackage(tmp_path):
    path = tmp_path / "two.gpkg"
    line = shapely.LineString([(LON, LAT), (LON + 0.001, LAT)])
    gpd.GeoDataFrame({"k": [1]}, geometry=[line], crs=4326).to_file(path, layer="roads")
    gpd.GeoDataFrame({"k": [2]}, geometry=[shapely.box(LON, LAT, LON + 1e-3, LAT + 1e-3)], crs=4326).to_file(
        path, layer="aoi")
    assert read_lines(path, layer="roads")["k"].tolist() == [1]
    assert read_aoi(path, layer="aoi").area > 0
    with pytest.raises(InputError, match="no layer 'rails'; available: roads, aoi"):
        read_lines(path, layer="rails")


def test_invalid_geometries_are_repaired_with_a_warning(tmp_path, caplog):
    bowtie = shapely.Polygon([(LON, LAT), (LON + 0.01, LAT + 0.01), (LON + 0.01, LAT), (LON, LAT + 0.01)])
    assert not bowtie.is_valid
    path = _geojson(tmp_path / "aoi.geojson", [bowtie])
    with caplog.at_level(logging.WARNING):
        aoi = read_aoi(path, to_crs="EPSG:32631")
    assert aoi.is_valid and aoi.area > 0
    assert "repaired 1 invalid" in caplog.text


def test_degenerate_lines_are_dropped_with_a_warning(tmp_path, caplog):
    good = shapely.LineString([(LON, LAT), (LON + 0.001, LAT)])
    degenerate = shapely.LineString([(LON, LAT), (LON, LAT)])
    path = _geojson(tmp_path / "l.geojson", [good, degenerate])
    with caplog.at_level(logging.WARNING):
        gdf = read_lines(path)
    assert len(gdf) == 1
    assert "invalid" in caplog.text or "non-line" in caplog.text


def test_aoi_is_the_union_of_polygons(tmp_path):
    a = shapely.box(LON, LAT, LON + 0.01, LAT + 0.01)
    b = shapely.box(LON + 0.005, LAT, LON + 0.02, LAT + 0.01)
    aoi = read_aoi(_geojson(tmp_path / "a.geojson", [a, b]))
    assert aoi.area == pytest.approx(0.02 * 0.01)


def test_missing_file(tmp_path):
    with pytest.raises(InputFileNotFoundError, match="does not exist"):
        read_lines(tmp_path / "nope.geojson")


def test_directory_is_not_a_vector_file(tmp_path):
    with pytest.raises(InputError, match="directory"):
        read_lines(tmp_path)


@pytest.mark.parametrize("content", [b"this is not json", bytes(range(256)) * 4])
def test_not_a_vector_file(tmp_path, content):
    path = tmp_path / "bad.geojson"
    path.write_bytes(content)
    with pytest.raises(InputError, match="not a readable vector file"):
        read_lines(path)


def test_a_raster_is_not_a_vector_file(tmp_path):
    import rasterio

    path = tmp_path / "image.tif"
    with rasterio.open(path, "w", driver="GTiff", width=4, height=4, count=1, dtype="uint8") as dst:
        dst.write(np.zeros((1, 4, 4), np.uint8))
    with pytest.raises(InputError, match="not a readable vector file"):
        read_lines(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.geojson"
    path.write_text('{"type": "FeatureCollection", "features": []}')
    with pytest.raises(InputError, match="no features"):
        read_lines(path)


def test_file_without_crs_gets_the_fix(tmp_path):
    gdf = gpd.GeoDataFrame(geometry=[shapely.LineString([(0, 0), (10, 0)])])  # no CRS
    gdf.to_file(tmp_path / "nocrs.shp")
    with pytest.raises(InputError, match="no CRS.*ogr2ogr -a_srs"):
        read_lines(tmp_path / "nocrs.shp")


def test_geojson_with_projected_coordinates_but_no_crs(tmp_path):
    path = _geojson(tmp_path / "utm.geojson", [shapely.LineString([(452_000, 5_412_000), (452_100, 5_412_000)])])
    with pytest.raises(InputError, match="not degrees"):
        read_lines(path)


def test_geojson_with_a_crs_member_is_honoured(tmp_path):
    line = shapely.LineString([(452_000, 5_412_000), (452_100, 5_412_000)])
    path = _geojson(tmp_path / "utm.geojson", [line], crs_member="urn:ogc:def:crs:EPSG::32631")
    assert read_lines(path).crs.to_epsg() == 32631


def test_lines_file_without_lines_and_aoi_without_polygons(tmp_path):
    points = _geojson(tmp_path / "p.geojson", [shapely.Point(LON, LAT)])
    with pytest.raises(InputError, match="no LineString"):
        read_lines(points)
    lines = _geojson(tmp_path / "l.geojson", [shapely.LineString([(LON, LAT), (LON + 1e-3, LAT)])])
    with pytest.raises(InputError, match="no polygons"):
        read_aoi(lines)


def test_single_vertex_lines_are_dropped_with_a_count(tmp_path, caplog):
    feats = [{"type": "Feature", "properties": {}, "geometry": {"type": "LineString", "coordinates": c}}
             for c in ([[LON, LAT]], [[LON, LAT], [LON + 0.001, LAT]], [[LON, LAT]])]
    path = tmp_path / "one_vertex.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    with caplog.at_level(logging.WARNING):
        gdf = read_lines(path)
    assert len(gdf) == 1
    assert "dropped 2 features" in caplog.text


def test_z_coordinates_are_dropped_and_the_crs_made_2d(tmp_path):
    line = shapely.LineString([(LON, LAT, 35.0), (LON + 0.001, LAT, 36.0)])
    path = _geojson(tmp_path / "osm.geojson", [line])
    gdf = read_lines(path, to_crs="EPSG:32631")
    assert not gdf.has_z.any()
    assert shapely.get_coordinates(gdf.geometry.values, include_z=True).shape[1] == 3
    assert np.isnan(shapely.get_coordinates(gdf.geometry.values, include_z=True)[:, 2]).all()
    aoi = read_aoi(_geojson(tmp_path / "aoi.geojson", [shapely.box(LON, LAT, LON + 0.01, LAT + 0.01).buffer(0)]))
    assert not aoi.has_z


def test_a_plain_table_is_not_an_aoi(tmp_path):
    path = tmp_path / "aoi.csv"
    path.write_text("name,area\nsite,12\n")
    with pytest.raises(InputError, match="no geometry column"):
        read_aoi(path)
