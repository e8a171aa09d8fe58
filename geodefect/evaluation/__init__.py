"""Metrics computed after inference (road graphs and masks; inspection masks and classes)."""
