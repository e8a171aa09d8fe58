"""Default QGIS styles for the polygon layers geodefect writes (stored in ``layer_styles``).

``index.gpkg`` (layer ``chips``): chip footprints drawn as outlines only, coloured by
``split`` (train blue, val orange), so the imagery under them stays visible; a filled
default symbol would hide it. ``roads.gpkg`` (layer ``aoi``): the area of interest that was
processed, a dashed magenta outline. The QML/SLD pieces are those of :mod:`geodefect.io.gpkg`.
"""

from __future__ import annotations

import os
from pathlib import Path

from geodefect.io.gpkg import _qml, _sld, _symbol, _symbol_layer, write_layer_styles

CHIPS_LAYER = "chips"
AOI_LAYER = "aoi"

_SPLIT_COLOURS = (("train", "31,120,180,255", "#1f78b4"), ("val", "255,127,0,255", "#ff7f00"))


def _outline(color: str, width_mm: str, style: str = "solid") -> str:
    """A SimpleFill with no brush: only the outline is drawn."""
    return _symbol_layer(
        "SimpleFill",
        {
            "color": "0,0,0,0", "style": "no", "outline_color": color, "outline_style": style,
            "outline_width": width_mm, "outline_width_unit": "MM", "joinstyle": "miter",
            "offset": "0,0", "offset_unit": "MM",
        },
    )


#: chips: outline only, categorised by split
CHIPS_QML = _qml(
    '<renderer-v2 type="categorizedSymbol" attr="split" forceraster="0" symbollevels="0" enableorderby="0">'
    "<categories>"
    + "".join(f'<category render="true" symbol="{i}" value="{s}" label="{s}"/>' for i, (s, _, _) in enumerate(_SPLIT_COLOURS))
    + "</categories><symbols>"
    + "".join(_symbol("fill", str(i), _outline(c, "0.4")) for i, (_, c, _) in enumerate(_SPLIT_COLOURS))
    + "</symbols><rotation/><sizescale/></renderer-v2>",
    geometry_type=2,
)

CHIPS_SLD = _sld(
    CHIPS_LAYER,
    '<se:PolygonSymbolizer><se:Stroke><se:SvgParameter name="stroke">#1f78b4</se:SvgParameter>'
    '<se:SvgParameter name="stroke-width">1</se:SvgParameter></se:Stroke></se:PolygonSymbolizer>',
)

#: aoi: dashed magenta outline
AOI_QML = _qml(
    '<renderer-v2 type="singleSymbol" forceraster="0" symbollevels="0" enableorderby="0">'
    f"<symbols>{_symbol('fill', '0', _outline('230,0,230,255', '0.8', 'dash'))}</symbols>"
    "<rotation/><sizescale/></renderer-v2>",
    geometry_type=2,
)

AOI_SLD = _sld(
    AOI_LAYER,
    '<se:PolygonSymbolizer><se:Stroke><se:SvgParameter name="stroke">#e600e6</se:SvgParameter>'
    '<se:SvgParameter name="stroke-width">2</se:SvgParameter>'
    '<se:SvgParameter name="stroke-dasharray">6 3</se:SvgParameter></se:Stroke></se:PolygonSymbolizer>',
)


def style_chip_index(gpkg_path: str | os.PathLike) -> None:
    """Store the chips style in ``index.gpkg``."""
    write_layer_styles(gpkg_path, {CHIPS_LAYER: (CHIPS_QML, CHIPS_SLD)})


def write_aoi_layer(gpkg_path: str | os.PathLike, aoi, crs) -> Path:
    """Add the layer ``aoi`` (one (Multi)Polygon, in ``crs``) with its style to an existing GeoPackage."""
    import geopandas as gpd
    import pyogrio

    gdf = gpd.GeoDataFrame({"name": ["area processed"]}, geometry=[aoi], crs=crs)
    pyogrio.write_dataframe(gdf, gpkg_path, layer=AOI_LAYER, driver="GPKG", geometry_type="MultiPolygon",
                            promote_to_multi=True)
    write_layer_styles(gpkg_path, {AOI_LAYER: (AOI_QML, AOI_SLD)})
    return Path(gpkg_path)
