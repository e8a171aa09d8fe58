"""
Seamless sliding-window prediction
==================================

A model sees a large raster one window at a time; near a window's border it sees less
context and is less reliable. `geodefect.sliding` stitches overlapping windows as a weighted
mean of probabilities. With uniform weights (``mean``) a prediction that depends on the
window's position shows seams; the ``hann`` weights fade each window out towards its
border, so the stitched map has no visible seam. The "model" here is a toy predictor whose
output drifts with the position inside its window, as real border effects do.

Run: ``python examples/plot_sliding_blend.py`` (writes ``sliding_blend.png``).
"""

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from geodefect.sliding import SlidingParams, predict_array

out_dir = Path(os.environ.get("GEODEFECT_EXAMPLES_OUT", "."))


def border_biased_predictor(batch):
    """(B, C, h, w) -> {"road": (B, 1, h, w)}: 0.5 in the window centre, 0.1 lower at its border."""
    b, _, h, w = batch.shape
    yy, xx = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    bias = 0.5 - 0.1 * np.maximum(np.abs(yy), np.abs(xx))
    return {"road": np.broadcast_to(bias, (b, 1, h, w)).astype(np.float32)}


image = np.zeros((3, 400, 400), np.float32)
results = {}
for blend in ("mean", "hann"):
    params = SlidingParams(size_px=128, stride_px=96, batch_size=4, blend=blend)
    prob = predict_array(image, border_biased_predictor, params)["road"][0]
    # seam strength: the largest jump between neighbouring pixels
    results[blend] = float(max(np.abs(np.diff(prob, axis=0)).max(), np.abs(np.diff(prob, axis=1)).max()))
print("largest neighbour jump:", {k: round(v, 4) for k, v in results.items()})

fig, axes = plt.subplots(1, 2, figsize=(9, 4.5))
for ax, blend in zip(axes, ("mean", "hann"), strict=True):
    params = SlidingParams(size_px=128, stride_px=96, batch_size=4, blend=blend)
    ax.imshow(predict_array(image, border_biased_predictor, params)["road"][0], cmap="magma")
    ax.set_title(f"blend={blend}: max jump {results[blend]:.3f}")
    ax.set_axis_off()
fig.savefig(out_dir / "sliding_blend.png", dpi=80, bbox_inches="tight")
