"""The torch adapter: a model + its normalisation as a sliding-engine predictor.

``TorchPredictor(model, mean=..., std=...)`` is a callable ``(B, C, h, w) float32 array ->
{name: (B, K, h, w) float32 probabilities}`` (the protocol of :mod:`geodefect.sliding`).

* Normalisation: ``(x - mean) / std`` per channel, on the 0..255 scale of the recipe.
* Device ``auto``: CUDA with fp16 autocast when available; otherwise CPU in fp32 with
  ``channels_last`` (measured ~20% faster on this CPU; bf16 autocast on CPUs without bf16
  hardware is ~100x slower, so it is never used).
* Outputs: the tensor fields of a :class:`~geodefect.models.outputs.RoadOutput` (or any
  NamedTuple), a dict of logits or a single tensor get ``sigmoid`` (1 channel) or ``softmax``
  over channels (K > 1) unless ``activations`` says otherwise (``"sigmoid"``, ``"softmax"``
  or ``"none"``) — for RoadOutput that is exactly its ``probabilities()``; other objects with a
  ``probabilities()`` method give their own. On channels_last outputs the softmax runs over
  the NHWC view (2-3x faster) and the arrays come back as ``(B, K, h, w)`` views of NHWC memory,
  which the stitcher (channels-last sums) adds without a transpose.
* Classifier logits ``(B, K)`` work too (softmax over K, ``(B, K)`` back); only dense
  ``(B, K, h, w)`` outputs can go through the sliding engine.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from geodefect.errors import InputError

log = logging.getLogger(__name__)

ACTIVATIONS = ("sigmoid", "softmax", "none")


from geodefect._torch import resolve_device  # noqa: E402,F401  (the one resolver; re-exported)


class TorchPredictor:
    """Wrap a torch model as a predictor for the sliding-window engine.

    Args:
        model: a ``torch.nn.Module`` (set to eval mode and moved to the device here).
        mean, std: per-channel normalisation on the input's scale (0..255 for imagery).
        device: ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N``.
        output_name: name of a single-tensor output (default ``"out"``).
        activations: per output name, ``sigmoid`` | ``softmax`` | ``none`` (overrides the default
            rule: sigmoid for 1 channel, softmax for more).
        amp: fp16 autocast (default: True on CUDA, never on CPU).
        channels_last: memory format of inputs and model (default: True on CPU).
    """

    def __init__(
        self,
        model,
        *,
        mean: Sequence[float],
        std: Sequence[float],
        device: str | None = "auto",
        output_name: str = "out",
        activations: Mapping[str, str] | None = None,
        amp: bool | None = None,
        channels_last: bool | None = None,
    ) -> None:
        import torch

        self.device = resolve_device(device)
        self.amp = self.device.startswith("cuda") if amp is None else bool(amp and self.device.startswith("cuda"))
        self.channels_last = (self.device == "cpu") if channels_last is None else bool(channels_last)
        self.output_name = output_name
        self.activations = dict(activations or {})
        for name, act in self.activations.items():
            if act not in ACTIVATIONS:
                raise InputError(f"activation for {name!r} must be one of {', '.join(ACTIVATIONS)}, got {act!r}")
        if len(mean) != len(std) or any(s <= 0 for s in std):
            raise InputError(f"normalisation needs one positive std per mean, got mean={list(mean)} std={list(std)}")
        self.n_channels = len(mean)
        self._mean = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        self._inv_std = 1.0 / torch.tensor(std, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        model = model.eval().to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model

    @classmethod
    def from_package(cls, path, *, device: str | None = "auto", **kwargs: Any) -> tuple[TorchPredictor, dict]:
        """Load a model package; normalisation comes from its recipe. Returns ``(predictor, recipe)``."""
        from geodefect.models.checkpoint import load_package

        dev = resolve_device(device)
        model, recipe = load_package(path, device=dev)
        norm = recipe.get("normalization") or {}
        n_bands = len(recipe.get("bands") or []) or 3
        mean = norm.get("mean") or [0.0] * n_bands
        std = norm.get("std") or [255.0] * n_bands
        return cls(model, mean=mean, std=std, device=dev, **kwargs), recipe

    def __call__(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """``(B, C, h, w)`` array (any real dtype, 0..255 scale) -> name -> float32 probabilities."""
        import torch

        if batch.ndim != 4 or batch.shape[1] != self.n_channels:
            raise InputError(
                f"predictor expects (B, {self.n_channels}, h, w) input, got shape {tuple(batch.shape)}"
            )
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device, non_blocking=True)
        x = (x - self._mean) * self._inv_std
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast(device_type="cuda", dtype=torch.float16, enabled=self.amp):
            probs = self.to_probabilities(self.model(x))
        return {name: p.float().cpu().numpy() for name, p in probs.items()}

    def to_probabilities(self, out) -> dict[str, Any]:
        """Model output (RoadOutput, dict or tensor of logits) -> name -> probability tensor."""
        if hasattr(out, "_asdict"):  # RoadOutput or another NamedTuple: its tensor fields
            # (RoadOutput.probabilities() gives the same sigmoid/softmax, but its softmax over
            # dim 1 takes the slow path on channels_last tensors)
            out = {k: v for k, v in out._asdict().items() if hasattr(v, "shape")}
        elif hasattr(out, "probabilities") and not self.activations:
            return dict(out.probabilities())
        if not isinstance(out, Mapping):
            out = {self.output_name: out}
        return {name: self._activate(name, logits) for name, logits in out.items()}

    def _activate(self, name: str, logits):
        import torch

        act = self.activations.get(name) or ("sigmoid" if logits.shape[1] == 1 else "softmax")
        logits = logits.float()
        if act == "sigmoid":
            return logits.sigmoid()
        if act == "softmax":
            if logits.ndim == 4 and not logits.is_contiguous() and logits.is_contiguous(memory_format=torch.channels_last):
                # channels_last output: softmax over the contiguous last dim of the NHWC view is
                # ~2-3x faster than over dim 1; the result stays an NHWC-strided (B, K, h, w) view
                return logits.permute(0, 2, 3, 1).softmax(dim=-1).permute(0, 3, 1, 2)
            return logits.softmax(dim=1)
        return logits


class TimedPredictor:
    """A predictor wrapper that adds up the time spent in the model."""

    def __init__(self, predictor) -> None:
        self.predictor, self.seconds = predictor, 0.0
        # what the engine reads of a predictor: channel counts, outputs given as logits
        self.output_channels = getattr(predictor, "output_channels", None)
        self.deferred_softmax = tuple(getattr(predictor, "deferred_softmax", ()))

    def __call__(self, batch):
        import time

        t = time.perf_counter()
        out = self.predictor(batch)
        self.seconds += time.perf_counter() - t
        return out
