"""Metrics. ``roads``: pixel IoU/F1 and relaxed P/R/F1 of road masks; ``apls``: APLS of road graphs;
``inspection``: defect masks and boxes (issue 5).
"""
