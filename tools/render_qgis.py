"""Render a GeoPackage (all its vector layers, with their stored default styles) over a raster to PNG.

Checks what a user sees on opening the files in QGIS: the ``layer_styles`` default style is
applied by QGIS itself when the layer is loaded, and layers are reprojected on the fly to
the raster's CRS. Runs with the system Python that has PyQGIS, headless:

    QT_QPA_PLATFORM=offscreen /usr/bin/python3 tools/render_qgis.py \\
        --raster image.tif --vector out/roads.gpkg [--vector errors.gpkg] -o render.png [--width-px 1200]

Prints, per layer, its CRS, feature count and renderer type (``singleSymbol`` /
``categorizedSymbol`` means the stored style was applied; QGIS's default for a fresh layer
is a random-colour ``singleSymbol``, so the renderer's symbol colour is printed too).
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from qgis.core import QgsApplication

    app = QgsApplication([], False)
    app.initQgis()
    try:
        return _render(args)
    finally:
        app.exitQgis()


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--raster", help="background raster (GeoTIFF); optional")
    p.add_argument("--vector", required=True, action="append",
                   help="GeoPackage (every vector layer is drawn) or any vector file; repeat for more (the first on top)")
    p.add_argument("-o", "--output", required=True, help="PNG to write")
    p.add_argument("--width-px", type=int, default=1200, help="image width; height follows the extent")
    return p.parse_args(argv)


def _render(args) -> int:
    from qgis.core import QgsMapSettings, QgsProject, QgsRasterLayer, QgsRectangle
    from qgis.PyQt.QtCore import QSize
    from qgis.PyQt.QtGui import QColor

    project = QgsProject.instance()
    vectors = [layer for path in args.vector for layer in _load_vectors(path)]
    if not vectors:
        print(f"no vector layer could be loaded from {args.vector}", file=sys.stderr)
        return 1
    layers = list(vectors)
    raster = None
    if args.raster:
        raster = QgsRasterLayer(args.raster, "raster")
        if not raster.isValid():
            print(f"raster {args.raster} could not be loaded", file=sys.stderr)
            return 1
        layers.append(raster)  # drawn last = at the bottom
    for layer in layers:
        project.addMapLayer(layer)
    for layer in vectors:
        _describe(layer)
    settings = QgsMapSettings()
    settings.setLayers(layers)
    settings.setBackgroundColor(QColor(255, 255, 255))
    crs = raster.crs() if raster is not None else vectors[0].crs()
    settings.setDestinationCrs(crs)
    extent = QgsRectangle(raster.extent()) if raster is not None else _union_extent(vectors, settings)
    if extent.isEmpty():
        extent = QgsRectangle(raster.extent()) if raster is not None else QgsRectangle(0, 0, 1, 1)
    height = max(1, round(args.width_px * extent.height() / max(extent.width(), 1e-12)))
    settings.setOutputSize(QSize(args.width_px, height))
    settings.setExtent(extent)
    _run_job(settings).save(args.output, "png")
    print(f"wrote {args.output} ({args.width_px}x{height}, CRS {crs.authid() or crs.description()})")
    return 0


def _load_vectors(path: str):
    """Every vector layer of the file, loaded as QGIS would (stored default style applied)."""
    from qgis.core import QgsProviderRegistry, QgsVectorLayer

    sublayers = QgsProviderRegistry.instance().providerMetadata("ogr").querySublayers(path)
    names = [s.name() for s in sublayers] or [None]
    out = []
    for name in names:
        if name == "layer_styles":
            continue
        uri = f"{path}|layername={name}" if name else path
        layer = QgsVectorLayer(uri, name or os.path.basename(path), "ogr")
        if layer.isValid() and layer.isSpatial():
            out.append(layer)
    # points on top of lines
    return sorted(out, key=lambda lyr: lyr.geometryType())


def _describe(layer) -> None:
    renderer = layer.renderer()
    kind = renderer.type() if renderer else "none"
    detail = ""
    if kind == "singleSymbol":
        sym = renderer.symbol()
        detail = f" colour={sym.color().name()} width/size={_symbol_size(sym)}"
    elif kind == "categorizedSymbol":
        detail = f" by {renderer.classAttribute()!r}: " + ", ".join(c.value() for c in renderer.categories())
    print(f"layer {layer.name()}: {layer.featureCount()} features, CRS {layer.crs().authid()}, renderer {kind}{detail}")


def _symbol_size(sym) -> str:
    for attr in ("width", "size"):
        if hasattr(sym, attr):
            return f"{getattr(sym, attr)():g}"
    return "?"


def _union_extent(layers, settings):
    from qgis.core import QgsRectangle

    extent = QgsRectangle()
    for layer in layers:
        extent.combineExtentWith(settings.layerExtentToOutputExtent(layer, layer.extent()))
    extent.scale(1.05)
    return extent


def _run_job(settings):
    from qgis.core import QgsMapRendererSequentialJob

    job = QgsMapRendererSequentialJob(settings)
    job.start()
    job.waitForFinished()
    return job.renderedImage()


if __name__ == "__main__":
    sys.exit(main())
