"""Visual explanations of inspection models (Score-CAM)."""

from geodefect.explain.scorecam import heatmap_overlay, layer_names, score_cam

__all__ = ["heatmap_overlay", "layer_names", "score_cam"]
