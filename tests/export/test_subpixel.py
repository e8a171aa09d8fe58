"""Transposed convolutions rewritten as convolution + pixel shuffle (the int8 export's graph):
the same function, and only for the shapes where that holds."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from geodefect.export.subpixel import SubPixelConvTranspose, rewritable, rewrite_conv_transposes


@pytest.mark.parametrize(("c_in", "c_out", "kernel", "stride", "padding", "bias"), [
    (8, 5, 4, 2, 1, True),    # LinkNet's x2 upsampling
    (3, 4, 8, 4, 2, False),   # the rail FCN's x4
    (4, 4, 2, 2, 0, True),    # no overlap between taps
    (6, 2, 6, 2, 2, True),    # three taps per phase
    (3, 3, 3, 3, 0, True),    # odd stride
])
def test_rewrite_equals_the_transposed_convolution(c_in, c_out, kernel, stride, padding, bias):
    torch.manual_seed(0)
    ct = nn.ConvTranspose2d(c_in, c_out, kernel, stride, padding, bias=bias)
    x = torch.randn(2, c_in, 7, 9)
    assert rewritable(ct)
    with torch.no_grad():
        want, got = ct(x), SubPixelConvTranspose(ct)(x)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("ct", [
    nn.ConvTranspose2d(4, 4, 3, 2, 1, output_padding=1),  # output not exactly stride x input
    nn.ConvTranspose2d(4, 4, 4, 2, 1, groups=2),
    nn.ConvTranspose2d(4, 4, 4, 2, 0),                    # kernel != stride + 2 * padding
    nn.ConvTranspose2d(4, 4, 3, 1, 1),                    # stride 1
], ids=["output_padding", "groups", "crop", "stride1"])
def test_other_shapes_are_left_alone(ct):
    model = nn.Sequential(nn.Conv2d(4, 4, 1), ct)
    copy, n = rewrite_conv_transposes(model)
    assert n == 0 and isinstance(copy[1], nn.ConvTranspose2d)


def test_a_model_copy_is_rewritten_and_the_original_kept():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.ConvTranspose2d(8, 4, 4, 2, 1),
                          nn.ReLU(), nn.ConvTranspose2d(4, 2, 4, 2, 1)).eval()
    copy, n = rewrite_conv_transposes(model)
    assert n == 2 and isinstance(model[2], nn.ConvTranspose2d)
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in copy.modules())
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(copy(x), model(x), atol=1e-5, rtol=0)
