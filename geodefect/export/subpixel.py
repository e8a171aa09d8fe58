"""Transposed convolutions rewritten as convolution + pixel shuffle, for the ONNX export.

ONNX Runtime's CPU ``ConvTranspose`` has no int8 kernel (the static quantizer leaves it in fp32
between a dequantize and a quantize) and no blocked-layout one: in the int8 road LinkNet its five
decoder upsamplings took 23 % of the forward. A transposed convolution whose output is exactly
``stride`` times its input (``kernel = stride + 2 * padding``, the x2/x4 upsamplings of LinkNet,
the hourglass and the rail FCN) is the same linear map as a convolution with ``stride²`` times the
output channels followed by a pixel shuffle (sub-pixel convolution, Shi et al. 2016): output phase
``(ry, rx)`` at input position ``(m, n)`` only ever sees input rows ``m - d`` with
``ky = stride * d + ry + padding`` inside the kernel. The weights are rearranged, not learned, so
the exported model computes the same function (checked against torch at every export).

This is the one piece of the export written here rather than taken from a library: neither
torch's exporter nor ONNX Runtime's optimiser rewrites ``ConvTranspose``.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def rewritable(module: nn.Module) -> bool:
    """Whether ``module`` is a ConvTranspose2d this module rewrites exactly."""
    if not isinstance(module, nn.ConvTranspose2d):
        return False
    (sh, sw), (kh, kw), (ph, pw) = module.stride, module.kernel_size, module.padding
    return (sh == sw > 1 and module.groups == 1 and module.dilation == (1, 1)
            and module.output_padding == (0, 0) and kh == sh + 2 * ph and kw == sw + 2 * pw
            and module.padding_mode == "zeros")


def _taps(stride: int, kernel: int, padding: int) -> list[list[tuple[int, int]]]:
    """Per output phase r: the (d, k) pairs, input offset d (row m - d) and kernel tap k."""
    return [[(d, stride * d + r + padding) for d in range(-kernel, kernel + 1)
             if 0 <= stride * d + r + padding < kernel] for r in range(stride)]


class SubPixelConvTranspose(nn.Module):
    """``conv -> pixel_shuffle`` equal to a :func:`rewritable` ConvTranspose2d."""

    def __init__(self, ct: nn.ConvTranspose2d) -> None:
        super().__init__()
        s = ct.stride[0]
        taps_y, taps_x = _taps(s, ct.kernel_size[0], ct.padding[0]), _taps(s, ct.kernel_size[1], ct.padding[1])
        dy = [d for phase in taps_y for d, _ in phase]
        dx = [d for phase in taps_x for d, _ in phase]
        (y_lo, y_hi), (x_lo, x_hi) = (min(dy), max(dy)), (min(dx), max(dx))
        c_in, c_out = ct.in_channels, ct.out_channels
        w = ct.weight.detach()  # (c_in, c_out, kh, kw)
        weight = w.new_zeros(c_out, s, s, c_in, y_hi - y_lo + 1, x_hi - x_lo + 1)
        for ry, phase_y in enumerate(taps_y):
            for rx, phase_x in enumerate(taps_x):
                for d_y, ky in phase_y:
                    for d_x, kx in phase_x:
                        weight[:, ry, rx, :, y_hi - d_y, x_hi - d_x] = w[:, :, ky, kx].t()
        self.pad = (x_hi, -x_lo, y_hi, -y_lo)  # F.pad order: left, right, top, bottom
        symmetric = x_hi == -x_lo and y_hi == -y_lo
        self.conv = nn.Conv2d(c_in, c_out * s * s, weight.shape[-2:], padding=(y_hi, x_hi) if symmetric else 0,
                              bias=ct.bias is not None)
        self.symmetric = symmetric
        self.conv.weight.data.copy_(weight.reshape(c_out * s * s, c_in, *weight.shape[-2:]))
        if ct.bias is not None:
            self.conv.bias.data.copy_(ct.bias.detach().repeat_interleave(s * s))
        self.shuffle = nn.PixelShuffle(s)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.symmetric:
            x = nn.functional.pad(x, self.pad)
        return self.shuffle(self.conv(x))


def rewrite_conv_transposes(model: nn.Module) -> tuple[nn.Module, int]:
    """A copy of ``model`` with every :func:`rewritable` ConvTranspose2d replaced (and how many)."""
    model = copy.deepcopy(model)
    targets = [(name, module) for name, module in model.named_modules() if rewritable(module)]
    for name, module in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, SubPixelConvTranspose(module))
    return model, len(targets)
