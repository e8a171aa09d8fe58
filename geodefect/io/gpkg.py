"""Write a road network as a GeoPackage (with a QGIS style) and as GraphML.

``roads.gpkg`` holds two layers, ``roads`` (LineString) and ``nodes`` (Point), in the
network's CRS, and a ``layer_styles`` table exactly as QGIS creates it when a style is saved
"in database": QGIS applies the row with ``useAsDefault = 1`` when the layer is opened, so
roads are drawn as orange 1.2 mm lines and nodes as junction / end / boundary / loop categories.
An empty network still gives a valid file with both (empty) layers of the right type.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from geodefect.io.atomic import atomic_path

ROADS_LAYER = "roads"
NODES_LAYER = "nodes"

_LAYER_STYLES_DDL = (
    "CREATE TABLE IF NOT EXISTS layer_styles ("
    "id INTEGER PRIMARY KEY AUTOINCREMENT, f_table_catalog TEXT(256), f_table_schema TEXT(256), "
    "f_table_name TEXT(256), f_geometry_column TEXT(256), styleName TEXT(30), styleQML TEXT, "
    "styleSLD TEXT, useAsDefault BOOLEAN, description TEXT, owner TEXT(30), ui TEXT(30), "
    "update_time DATETIME DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')))"
)


def write_road_network(path: str | os.PathLike, network, crs=None) -> Path:
    """Write ``network`` to a GeoPackage (layers ``roads`` and ``nodes`` + QGIS styles), atomically.

    Args:
        path: output ``.gpkg`` path (replaced if it exists; callers check ``--overwrite``).
        network: a :class:`geodefect.graph.network.RoadNetwork`.
        crs: CRS to write; defaults to the network's.

    Returns:
        The path written.
    """
    import pyogrio

    roads, nodes = network.to_geodataframes()
    crs = crs if crs is not None else network.crs
    if crs is not None:
        roads = roads.set_crs(crs, allow_override=True)
        nodes = nodes.set_crs(crs, allow_override=True)
    path = Path(path)
    with atomic_path(path) as tmp:
        # GeoPackage 1.2: QGIS 3.22 (GDAL 3.4) warns that 1.4 files "may only be partially supported"
        pyogrio.write_dataframe(roads, tmp, layer=ROADS_LAYER, driver="GPKG", geometry_type="LineString",
                                dataset_options={"VERSION": "1.2"})
        pyogrio.write_dataframe(nodes, tmp, layer=NODES_LAYER, driver="GPKG", geometry_type="Point")
        write_layer_styles(tmp, {ROADS_LAYER: (ROADS_QML, ROADS_SLD), NODES_LAYER: (NODES_QML, NODES_SLD)})
    return path


ERRORS_LAYER = "errors"


def write_road_errors(path: str | os.PathLike, errors) -> Path:
    """Write road errors (``geodefect.evaluation.errors.road_errors``) to a styled GeoPackage, atomically.

    One LineString layer ``errors`` (``error``: false_negative | false_positive, ``length_m``)
    with a default QGIS style: missed truth roads thick red, invented roads dashed purple.
    """
    import pyogrio

    path = Path(path)
    with atomic_path(path) as tmp:
        pyogrio.write_dataframe(errors, tmp, layer=ERRORS_LAYER, driver="GPKG", geometry_type="LineString",
                                dataset_options={"VERSION": "1.2"})
        write_layer_styles(tmp, {ERRORS_LAYER: (ERRORS_QML, ERRORS_SLD)})
    return path


def write_layer_styles(gpkg_path: str | os.PathLike, styles: dict[str, tuple[str, str]]) -> None:
    """Store default QGIS styles in a GeoPackage's ``layer_styles`` table.

    Args:
        gpkg_path: an existing GeoPackage.
        styles: layer name -> (QML text, SLD text).

    The table is registered in ``gpkg_contents`` as an attributes table (as QGIS does), so
    GDAL and QGIS list it; one row per layer with ``useAsDefault = 1``.
    """
    con = sqlite3.connect(gpkg_path)
    try:
        con.execute(_LAYER_STYLES_DDL)
        con.execute(
            "INSERT OR IGNORE INTO gpkg_contents (table_name, data_type, identifier, description, "
            "last_change) VALUES ('layer_styles', 'attributes', 'layer_styles', '', "
            "strftime('%Y-%m-%dT%H:%M:%fZ','now'))"
        )
        geom_cols = dict(con.execute("SELECT table_name, column_name FROM gpkg_geometry_columns"))
        for layer, (qml, sld) in styles.items():
            con.execute("DELETE FROM layer_styles WHERE f_table_name = ?", (layer,))
            con.execute(
                "INSERT INTO layer_styles (f_table_catalog, f_table_schema, f_table_name, "
                "f_geometry_column, styleName, styleQML, styleSLD, useAsDefault, description, owner, ui) "
                "VALUES ('', '', ?, ?, ?, ?, ?, 1, ?, '', '')",
                (layer, geom_cols.get(layer, "geom"), f"geodefect {layer}", qml, sld,
                 f"geodefect default style for {layer}"),
            )
        con.commit()
    finally:
        con.close()


def write_graphml(path: str | os.PathLike, network) -> Path:
    """Write the network as GraphML (networkx), atomically.

    Nodes keep ``x``, ``y`` (CRS units), ``degree``, ``kind``; edges keep ``length_m``,
    ``mean_prob``, ``bridged``, ``n_vertices`` and ``geometry`` as WKT. The graph attribute
    ``crs`` holds the CRS as WKT.
    """
    import networkx as nx

    out = nx.MultiGraph(crs=network.crs.to_wkt() if network.crs is not None else "")
    for n, d in network.graph.nodes(data=True):
        out.add_node(n, **{k: _graphml_value(v) for k, v in d.items()})
    for u, v, d in network.graph.edges(data=True):
        attrs = {k: _graphml_value(val) for k, val in d.items() if k != "geometry"}
        attrs["geometry"] = d["geometry"].wkt
        out.add_edge(u, v, **attrs)
    path = Path(path)
    with atomic_path(path) as tmp:
        nx.write_graphml(out, tmp)
    return path


def _graphml_value(v):
    """GraphML takes str/int/float/bool; numpy scalars become Python ones, NaN stays a float."""
    if hasattr(v, "item"):
        v = v.item()
    return v if isinstance(v, str | int | float | bool) else str(v)


def _symbol_layer(cls: str, props: dict[str, str]) -> str:
    """A QML symbol layer with properties both as <Option> (QGIS >= 3.26) and <prop> (older)."""
    options = "".join(f'<Option type="QString" name="{k}" value="{v}"/>' for k, v in props.items())
    legacy = "".join(f'<prop k="{k}" v="{v}"/>' for k, v in props.items())
    return (
        f'<layer class="{cls}" enabled="1" locked="0" pass="0">'
        f'<Option type="Map">{options}</Option>{legacy}</layer>'
    )


def _symbol(kind: str, name: str, layer_xml: str) -> str:
    return (
        f'<symbol type="{kind}" name="{name}" alpha="1" clip_to_extent="1" force_rhr="0">'
        f"{layer_xml}</symbol>"
    )


def _marker(color: str, size_mm: str) -> str:
    return _symbol_layer(
        "SimpleMarker",
        {
            "name": "circle", "color": color, "size": size_mm, "size_unit": "MM",
            "outline_color": "255,255,255,255", "outline_width": "0.3", "outline_width_unit": "MM",
            "outline_style": "solid", "joinstyle": "round", "angle": "0",
            "scale_method": "diameter", "offset": "0,0", "offset_unit": "MM",
        },
    )


def _qml(renderer: str, geometry_type: int) -> str:
    return (
        "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
        '<qgis version="3.22.0" styleCategories="Symbology">'
        f"{renderer}<blendMode>0</blendMode><featureBlendMode>0</featureBlendMode>"
        f"<layerGeometryType>{geometry_type}</layerGeometryType></qgis>\n"
    )


_ROAD_LINE = _symbol_layer(
    "SimpleLine",
    {
        "line_color": "255,127,0,255", "line_width": "1.2", "line_width_unit": "MM",
        "line_style": "solid", "capstyle": "round", "joinstyle": "round",
        "offset": "0", "offset_unit": "MM", "use_custom_dash": "0",
    },
)

#: roads: orange lines 1.2 mm wide
ROADS_QML = _qml(
    '<renderer-v2 type="singleSymbol" forceraster="0" symbollevels="0" enableorderby="0">'
    f"<symbols>{_symbol('line', '0', _ROAD_LINE)}</symbols><rotation/><sizescale/></renderer-v2>",
    geometry_type=1,
)

_NODE_CATEGORIES = (
    ("junction", "220,30,30,255", "2.4"), ("end", "30,90,220,255", "1.8"),
    ("boundary", "40,170,60,255", "1.6"), ("loop", "120,120,120,255", "1.6"),
)

#: nodes: categorised by ``kind`` (junction red, end (dead end) blue, boundary green, loop grey)
NODES_QML = _qml(
    '<renderer-v2 type="categorizedSymbol" attr="kind" forceraster="0" symbollevels="0" enableorderby="0">'
    "<categories>"
    + "".join(
        f'<category render="true" symbol="{i}" value="{k}" label="{k}"/>' for i, (k, _, _) in enumerate(_NODE_CATEGORIES)
    )
    + "</categories><symbols>"
    + "".join(_symbol("marker", str(i), _marker(c, s)) for i, (_, c, s) in enumerate(_NODE_CATEGORIES))
    + "</symbols><rotation/><sizescale/></renderer-v2>",
    geometry_type=0,
)


def _sld(layer: str, symbolizer: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<StyledLayerDescriptor xmlns="http://www.opengis.net/sld" xmlns:ogc="http://www.opengis.net/ogc" '
        'xmlns:se="http://www.opengis.net/se" version="1.1.0">'
        f"<NamedLayer><se:Name>{layer}</se:Name><UserStyle><se:Name>{layer}</se:Name>"
        f"<se:FeatureTypeStyle><se:Rule>{symbolizer}</se:Rule></se:FeatureTypeStyle>"
        "</UserStyle></NamedLayer></StyledLayerDescriptor>"
    )


ROADS_SLD = _sld(
    ROADS_LAYER,
    '<se:LineSymbolizer><se:Stroke><se:SvgParameter name="stroke">#ff7f00</se:SvgParameter>'
    '<se:SvgParameter name="stroke-width">4</se:SvgParameter></se:Stroke></se:LineSymbolizer>',
)
NODES_SLD = _sld(
    NODES_LAYER,
    "<se:PointSymbolizer><se:Graphic><se:Mark><se:WellKnownName>circle</se:WellKnownName>"
    '<se:Fill><se:SvgParameter name="fill">#dc1e1e</se:SvgParameter></se:Fill></se:Mark>'
    "<se:Size>7</se:Size></se:Graphic></se:PointSymbolizer>",
)


def _line(color: str, width_mm: str, style: str = "solid") -> str:
    return _symbol_layer(
        "SimpleLine",
        {
            "line_color": color, "line_width": width_mm, "line_width_unit": "MM", "line_style": style,
            "capstyle": "round", "joinstyle": "round", "offset": "0", "offset_unit": "MM", "use_custom_dash": "0",
        },
    )


_ERROR_CATEGORIES = (
    ("false_negative", "missed truth road", _line("230,0,40,255", "1.6")),
    ("false_positive", "predicted road with no truth", _line("150,40,200,255", "1.2", "dash")),
)

#: errors: categorised by ``error`` (missed red, invented dashed purple)
ERRORS_QML = _qml(
    '<renderer-v2 type="categorizedSymbol" attr="error" forceraster="0" symbollevels="0" enableorderby="0">'
    "<categories>"
    + "".join(f'<category render="true" symbol="{i}" value="{k}" label="{label}"/>'
              for i, (k, label, _) in enumerate(_ERROR_CATEGORIES))
    + "</categories><symbols>"
    + "".join(_symbol("line", str(i), xml) for i, (_, _, xml) in enumerate(_ERROR_CATEGORIES))
    + "</symbols><rotation/><sizescale/></renderer-v2>",
    geometry_type=1,
)
ERRORS_SLD = _sld(
    ERRORS_LAYER,
    '<se:LineSymbolizer><se:Stroke><se:SvgParameter name="stroke">#e60028</se:SvgParameter>'
    '<se:SvgParameter name="stroke-width">5</se:SvgParameter></se:Stroke></se:LineSymbolizer>',
)
