"""Losses: road multitask (``roads``), defect segmentation (``segment``), domain generalisation (``domain``)."""
