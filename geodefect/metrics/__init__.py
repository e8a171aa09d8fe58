"""Streaming metrics: segmentation and roads (``segmentation``), classification and ROC (``classify``)."""
