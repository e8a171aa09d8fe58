"""Pictures for people: training sample sheets and mask / heat overlays of inspection images."""

from __future__ import annotations

import numpy as np

#: colour of predicted defects in overlays (RGB)
DEFECT_RGB = (255, 40, 40)


def to_display(image_chw) -> np.ndarray:
    """A normalised ``(C, H, W)`` tensor/array -> ``(H, W, 3)`` uint8 by per-image min-max."""
    arr = np.asarray(image_chw, dtype=np.float32)
    arr = arr[:3] if arr.shape[0] >= 3 else np.repeat(arr[:1], 3, axis=0)
    lo, hi = float(arr.min()), float(arr.max())
    return ((arr - lo) / max(hi - lo, 1e-6) * 255).astype(np.uint8).transpose(1, 2, 0)


def mask_overlay(image_chw: np.ndarray, mask: np.ndarray, *, alpha: float = 0.6) -> np.ndarray:
    """Paint ``mask`` ((H, W) bool) over a uint8 ``(C, H, W)`` image -> ``(H, W, 3)`` uint8."""
    if image_chw.shape[0] >= 3:
        out = np.array(image_chw[:3].transpose(1, 2, 0), dtype=np.uint8, order="C")  # a copy, always
    else:
        out = np.repeat(np.asarray(image_chw[0], np.uint8)[:, :, None], 3, axis=2)
    painted = out[mask].astype(np.float32) * (1 - alpha) + np.asarray(DEFECT_RGB, np.float32) * alpha
    out[mask] = painted.astype(np.uint8)  # only the defect pixels go through float (a photo is megapixels)
    return out


def _figure(n_rows: int, n_cols: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(n_rows, n_cols, figsize=(3 * n_cols, 2.6 * n_rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    return fig, axes


def plot_segmented(images, masks, probs, *, n: int = 4):
    """image | truth | predicted probability, one row per sample: a Figure (training ``samples.png``)."""
    n = min(n, len(images))
    fig, axes = _figure(n, 3)
    for i in range(n):
        axes[i, 0].imshow(to_display(images[i]))
        axes[i, 1].imshow(np.asarray(masks[i][0]), cmap="gray", vmin=0, vmax=1)
        axes[i, 2].imshow(np.asarray(probs[i][0]), cmap="magma", vmin=0, vmax=1)
    for ax, title in zip(axes[0], ("image", "truth", "prediction"), strict=True):
        ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_classified(images, labels, probs, *, n: int = 8):
    """A row of images titled with truth and crack probability: a Figure (training ``samples.png``)."""
    n = min(n, len(images))
    fig, axes = _figure(1, n)
    for i in range(n):
        axes[0, i].imshow(to_display(images[i]))
        axes[0, i].set_title(f"truth {int(labels[i])}  p={float(probs[i]):.2f}", fontsize=8)
    fig.tight_layout()
    return fig
