"""Metrics: road masks and graphs (``roads``: pixel IoU/F1, relaxed P/R/F1; ``apls``: APLS)."""
