"""Readers and writers: rasters (rasterio), plain images (Pillow), vectors (geopandas/pyogrio)."""
