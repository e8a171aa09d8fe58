"""Chip export: GeoTIFF chips from rasters (``geo``, ``export``), image-folder chips (``images``), one meta reader (``meta``)."""
