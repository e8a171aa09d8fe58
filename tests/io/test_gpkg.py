"""roads.gpkg: layers, CRS, geometry types, the QGIS layer_styles table; GraphML."""

from __future__ import annotations

import sqlite3
import xml.etree.ElementTree as ET

import networkx as nx
import numpy as np
import pyogrio
import pytest
import shapely
from affine import Affine

from geodefect.graph.vectorize import vectorize_road_mask
from geodefect.io.gpkg import write_graphml, write_road_network

TRANSFORM = Affine(0.5, 0, 600_000, 0, -0.5, 5_000_000)
CRS = "EPSG:32631"


@pytest.fixture(scope="module")
def network():
    mask = np.zeros((120, 200), bool)
    mask[55:65, :] = True
    mask[:, 95:105] = True
    return vectorize_road_mask(mask, TRANSFORM, crs=CRS)


@pytest.fixture(scope="module")
def empty_network():
    return vectorize_road_mask(np.zeros((40, 40), bool), TRANSFORM, crs=CRS)


def test_layers_crs_geometry_types_and_attributes(tmp_path, network):
    path = write_road_network(tmp_path / "roads.gpkg", network)
    layers = {name: gtype for name, gtype in pyogrio.list_layers(path)}
    assert layers["roads"] == "LineString" and layers["nodes"] == "Point"
    roads = pyogrio.read_dataframe(path, layer="roads")
    nodes = pyogrio.read_dataframe(path, layer="nodes")
    assert roads.crs.to_epsg() == 32631 and nodes.crs.to_epsg() == 32631
    assert len(roads) == network.n_edges == 4
    assert {"length_m", "edge_id", "u", "v", "mean_prob", "n_vertices"} <= set(roads.columns)
    np.testing.assert_allclose(roads.length_m, roads.geometry.length)  # projected metres
    assert sorted(nodes.kind) == ["boundary"] * 4 + ["junction"]  # all four roads leave the raster
    assert set(roads.u) | set(roads.v) == set(nodes.node_id)
    assert not list(tmp_path.glob(".tmp-*"))  # written atomically, nothing left behind


def test_layer_styles_rows_are_default_and_qml_parses(tmp_path, network):
    path = write_road_network(tmp_path / "roads.gpkg", network)
    con = sqlite3.connect(path)
    cols = [r[1] for r in con.execute("PRAGMA table_info(layer_styles)")]
    for name in ("f_table_catalog", "f_table_schema", "f_table_name", "f_geometry_column", "styleName",
                 "styleQML", "styleSLD", "useAsDefault", "description", "owner", "ui", "update_time"):
        assert name in cols
    rows = con.execute("SELECT f_table_name, f_geometry_column, useAsDefault, styleQML FROM layer_styles").fetchall()
    registered = con.execute("SELECT data_type FROM gpkg_contents WHERE table_name='layer_styles'").fetchone()
    con.close()
    assert registered == ("attributes",)
    by_layer = {r[0]: r for r in rows}
    assert set(by_layer) == {"roads", "nodes"}
    for _, geom_col, default, _ in rows:
        assert geom_col == "geom" and default == 1
    roads_qml = ET.fromstring(by_layer["roads"][3].split("\n", 1)[1])
    assert roads_qml.find("renderer-v2").get("type") == "singleSymbol"
    assert roads_qml.find(".//prop[@k='line_width']").get("v") == "1.2"
    nodes_qml = ET.fromstring(by_layer["nodes"][3].split("\n", 1)[1])
    assert nodes_qml.find("renderer-v2").get("attr") == "kind"
    assert {c.get("value") for c in nodes_qml.iter("category")} >= {"junction", "end", "boundary"}


def test_empty_network_is_a_valid_gpkg_with_both_layers(tmp_path, empty_network):
    path = write_road_network(tmp_path / "roads.gpkg", empty_network)
    layers = {name: gtype for name, gtype in pyogrio.list_layers(path)}
    assert layers["roads"] == "LineString" and layers["nodes"] == "Point"
    for layer in ("roads", "nodes"):
        info = pyogrio.read_info(path, layer=layer)
        assert info["features"] == 0 and info["crs"] == CRS
    assert len(pyogrio.read_dataframe(path, layer="roads")) == 0


def test_graphml_keeps_coordinates_crs_and_wkt_geometry(tmp_path, network):
    path = write_graphml(tmp_path / "graph.graphml", network)
    g = nx.read_graphml(path)
    assert g.number_of_nodes() == network.n_nodes and g.number_of_edges() == network.n_edges
    assert "32631" in g.graph["crs"]
    xs = sorted(float(d["x"]) for _, d in g.nodes(data=True))
    assert xs == sorted(d["x"] for _, d in network.graph.nodes(data=True))
    for _, _, d in g.edges(data=True):
        assert shapely.from_wkt(d["geometry"]).length == pytest.approx(float(d["length_m"]))


def test_roads_run_from_node_u_to_node_v(tmp_path, network):
    path = write_road_network(tmp_path / "roads.gpkg", network)
    roads = pyogrio.read_dataframe(path, layer="roads")
    nodes = pyogrio.read_dataframe(path, layer="nodes").set_index("node_id")
    for geom, u, v in zip(roads.geometry, roads.u, roads.v, strict=True):
        (x0, y0), (x1, y1) = shapely.get_coordinates(geom)[[0, -1]]
        assert (nodes.geometry[u].x, nodes.geometry[u].y) == pytest.approx((x0, y0))
        assert (nodes.geometry[v].x, nodes.geometry[v].y) == pytest.approx((x1, y1))
