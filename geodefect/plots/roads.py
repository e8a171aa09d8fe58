"""``samples.png`` of road training: image | truth road | predicted road | truth orientation | predicted orientation."""

from __future__ import annotations

import numpy as np


def denormalize(image: np.ndarray, mean, std) -> np.ndarray:
    """``(C,H,W)`` normalised float -> ``(H,W,3)`` uint8 for display (first three bands; 1 band as grey)."""
    c = image.shape[0]
    img = image * np.asarray(std, np.float32).reshape(c, 1, 1) + np.asarray(mean, np.float32).reshape(c, 1, 1)
    img = np.clip(img, 0, 255).astype(np.uint8)
    img = np.repeat(img, 3, axis=0) if c == 1 else img[:3]
    return img.transpose(1, 2, 0)


def orientation_rgb(bins: np.ndarray, n_classes: int) -> np.ndarray:
    """Bins -> ``(H,W,3)`` float colours on a cyclic map (hsv); background black."""
    import matplotlib

    cmap = matplotlib.colormaps["hsv"]
    rgb = cmap((bins.astype(np.float64) - 1) / max(n_classes - 1, 1))[..., :3]
    rgb[bins == 0] = 0.0
    return rgb


def plot_road_samples(batch: dict, output, *, mean, std, n: int = 4):
    """A matplotlib Figure with one row per chip (at most ``n``) and five columns."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(n, len(batch["image"]))
    k = output.orientation.shape[1]
    road_prob = output.road.sigmoid().numpy()
    orient_pred = output.orientation.argmax(1).numpy()
    fig, axes = plt.subplots(n, 5, figsize=(12.5, 2.6 * n), squeeze=False)
    titles = ("image", "truth road", "predicted road", "truth orientation", "predicted orientation")
    for i in range(n):
        pred_bins = np.where(road_prob[i, 0] > 0.5, orient_pred[i], 0)
        panels = (
            (denormalize(batch["image"][i].numpy(), mean, std), None),
            (batch["road"][i, 0].numpy(), "gray"),
            (road_prob[i, 0], "gray"),
            (orientation_rgb(batch["orientation"][i].numpy(), k), None),
            (orientation_rgb(pred_bins, k), None),
        )
        for j, (data, cmap) in enumerate(panels):
            ax = axes[i, j]
            ax.imshow(data, cmap=cmap, vmin=0 if cmap else None, vmax=1 if cmap else None, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(titles[j], fontsize=9)
    fig.tight_layout()
    return fig
