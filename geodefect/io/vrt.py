"""A GDAL VRT mosaic of block rasters: one virtual raster over the files of many work units.

GDAL's VRT driver does the mosaicking (read on demand, block by block); what is written here is
the small XML document that lists the sources (``SimpleSource``: source file, source and
destination rectangles), as ``gdalbuildvrt`` would — GDAL's Python bindings, which offer
``gdal.BuildVRT``, are not a dependency (rasterio brings GDAL without them). The band's nodata,
tags, scale and colour table are then set through GDAL on the VRT itself.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from rasterio.windows import Window

#: numpy dtype -> GDAL data type name (the dtypes of the project's output rasters)
GDAL_TYPES = {"uint8": "Byte", "uint16": "UInt16", "int16": "Int16", "uint32": "UInt32", "int32": "Int32",
              "float32": "Float32", "float64": "Float64"}


def write_mosaic_vrt(path: Path, sources: list[tuple[Path, Window]], *, shape_hw: tuple[int, int], transform, crs,
                     spec) -> Path:
    """Write a single-band VRT of ``shape_hw`` on ``transform``/``crs`` with each source file at its window.

    Args:
        path: the ``.vrt`` to write (sources are referenced by absolute path).
        sources: ``(single-band raster, window of the mosaic it covers)``; the file's size is the window's.
        spec: the output's :class:`~geodefect.inference.geo.OutputSpec` (dtype, nodata, tags, colours).

    Pixels no source covers read as the spec's nodata.
    """
    import rasterio

    from geodefect.inference.geo import _style_band

    h, w = shape_hw
    root = ET.Element("VRTDataset", rasterXSize=str(w), rasterYSize=str(h))
    ET.SubElement(root, "SRS", dataAxisToSRSAxisMapping="1,2").text = crs.to_wkt()
    ET.SubElement(root, "GeoTransform").text = ", ".join(repr(float(v)) for v in transform.to_gdal())
    band = ET.SubElement(root, "VRTRasterBand", dataType=GDAL_TYPES[str(spec.dtype)], band="1")
    ET.SubElement(band, "NoDataValue").text = repr(float(spec.nodata))
    for src, win in sources:
        simple = ET.SubElement(band, "SimpleSource")
        ET.SubElement(simple, "SourceFilename", relativeToVRT="0").text = str(Path(src).resolve())
        ET.SubElement(simple, "SourceBand").text = "1"
        size = {"xSize": str(int(win.width)), "ySize": str(int(win.height))}
        ET.SubElement(simple, "SrcRect", xOff="0", yOff="0", **size)
        ET.SubElement(simple, "DstRect", xOff=str(int(win.col_off)), yOff=str(int(win.row_off)), **size)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8")
    with rasterio.open(path, "r+") as dst:
        _style_band(dst, spec)
    return Path(path)
