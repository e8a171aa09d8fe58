"""Score-CAM (Wang et al., CVPR-W 2020): gradient-free class activation maps.

For a chosen layer with activations ``A`` of shape ``(K, h, w)`` on input ``X``:

1. each map ``A_k`` is upsampled to the input size and min-max normalised to ``H_k`` in [0, 1];
2. the model scores the masked inputs ``X * H_k`` (X is the *normalised* input, so masked-out
   pixels become the dataset mean);
3. the weights are ``alpha = softmax_k(score_k)`` (the paper's Algorithm 1) and the map is
   ``ReLU(sum_k alpha_k A_k)``, upsampled and scaled to [0, 1].

The score of a masked input:

* classifier (``(B, N)`` logits): the logit of ``target`` (default: class 1 = crack/defect);
* segmenter (``(B, 1, H, W)`` logits, or ``(B, N, H, W)`` softmax logits): the mean logit of the
  target channel over the pixels the model predicts as defect on the *unmasked* image
  (probability > 0.5); over the whole image if it predicts none.

Deviation for speed: with ``max_maps`` (default 128) only the ``max_maps`` channels with the
largest mean activation are scored (``max_maps=0`` scores all, as the paper). Score-CAM costs
one forward pass per scored channel.
"""

from __future__ import annotations

import numpy as np

from geodefect.errors import InputError


def layer_names(model) -> list[str]:
    """Names of the model's layers that Score-CAM can use (modules with parameters or pooling):
    all down to three levels, and blocks (modules with children) down to five levels — any
    name from ``model.named_modules()`` is accepted too."""
    names = []
    for name, module in model.named_modules():
        depth = name.count(".")
        is_block = any(True for _ in module.children())
        if not name or depth > 4 or (depth > 2 and not is_block):
            continue
        if any(True for _ in module.parameters()) or "Pool" in type(module).__name__:
            names.append(name)
    return names


def get_layer(model, name: str):
    """The submodule called ``name``; an unknown name lists valid ones."""
    modules = dict(model.named_modules())
    if name not in modules or not name:
        valid = layer_names(model)
        shown = ", ".join(valid[:60]) + (f", ... ({len(valid)} in all)" if len(valid) > 60 else "")
        raise InputError(f"`layer` {name!r} is not a layer of this model; valid layers: {shown}")
    return modules[name]


def _capture(model, layer, x):
    import torch

    store = {}

    def hook(_module, _inp, out):
        store["act"] = out

    handle = layer.register_forward_hook(hook)
    try:
        with torch.no_grad():
            out = model(x)
    finally:
        handle.remove()
    act = store.get("act")
    if act is None or not hasattr(act, "ndim") or act.ndim != 4:
        shape = None if act is None else tuple(getattr(act, "shape", ()))
        raise InputError(f"`layer` output must be a (B, K, h, w) feature map, got {shape}; pick a convolutional layer")
    return out, act


def _score_fn(out, target: int):
    """Return ``fn(out_batch) -> (B,) scores`` for the model's kind of output."""
    import torch

    if out.ndim == 2:
        return lambda o: o[:, target]
    if out.ndim != 4:
        raise InputError(f"model output must be (B, N) or (B, N, H, W), got {tuple(out.shape)}")
    if out.shape[1] == 1:
        region = torch.sigmoid(out[0, 0]) > 0.5
        channel = 0
    else:
        region = torch.softmax(out[0], 0)[target] > 0.5
        channel = target
    if not bool(region.any()):
        region = torch.ones_like(region)
    weight = region.float() / region.float().sum()
    return lambda o: (o[:, channel] * weight).sum(dim=(1, 2))


def score_cam(
    model,
    image,
    *,
    layer: str,
    target: int = 1,
    max_maps: int = 128,
    batch_size: int = 16,
) -> np.ndarray:
    """Score-CAM map of one image.

    Args:
        model: torch module in eval mode (classifier or segmenter, see module docstring).
        image: ``(1, C, H, W)`` float32 tensor, normalised as the model expects.
        layer: module name (see :func:`layer_names`).
        target: class index scored (default 1: crack / defect).
        max_maps: score only the channels with the largest mean activation (0 = all).
        batch_size: masked inputs per forward pass.

    Returns:
        ``(H, W) float32`` in [0, 1] (all zeros if the map is flat).
    """
    import torch
    import torch.nn.functional as F

    if image.ndim != 4 or image.shape[0] != 1:
        raise InputError(f"`image` must be a (1, C, H, W) tensor, got {tuple(image.shape)}")
    out, act = _capture(model, get_layer(model, layer), image)
    h, w = image.shape[-2:]
    act = act[0]
    if max_maps and act.shape[0] > max_maps:
        act = act[act.mean(dim=(1, 2)).topk(max_maps).indices]
    up = F.interpolate(act[None], size=(h, w), mode="bilinear", align_corners=False)[0]
    lo = up.flatten(1).min(1).values[:, None, None]
    hi = up.flatten(1).max(1).values[:, None, None]
    masks = torch.where(hi > lo, (up - lo) / (hi - lo).clamp_min(1e-12), torch.zeros_like(up))
    score = _score_fn(out, target)
    scores = []
    with torch.no_grad():
        for i in range(0, masks.shape[0], batch_size):
            scores.append(score(model(image * masks[i : i + batch_size, None])))
    alpha = torch.softmax(torch.cat(scores).float(), 0)
    cam = F.relu((alpha[:, None, None] * up).sum(0))
    cam = cam - cam.min()
    peak = float(cam.max())
    return (cam / peak if peak > 0 else cam).cpu().numpy().astype(np.float32)


def heatmap_overlay(image_hwc: np.ndarray, heat: np.ndarray, *, alpha: float = 0.5) -> np.ndarray:
    """Blend a [0, 1] heatmap (jet colours) over an image.

    Args:
        image_hwc: ``(H, W, 3)`` or ``(H, W)`` uint8.
        heat: ``(H, W)`` float in [0, 1].

    Returns:
        ``(H, W, 3)`` uint8.
    """
    from matplotlib import colormaps

    base = image_hwc if image_hwc.ndim == 3 else np.repeat(image_hwc[..., None], 3, axis=2)
    colours = colormaps["jet"](np.clip(heat, 0, 1))[..., :3] * 255
    return np.clip(base[..., :3] * (1 - alpha) + colours * alpha, 0, 255).astype(np.uint8)
