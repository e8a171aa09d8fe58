"""The slim VGG19-based FCN for rail surface defects (Kim et al.).

Layers (``width_mult`` scales every width, 1.0 = the paper)::

    block1  conv3x3 64, 64                 + maxpool   -> 1/2
    block2  conv3x3 128, 128               + maxpool   -> 1/4   (pool2)
    block3  conv3x3 256 x4                 + maxpool   -> 1/8   (pool3)
    block4  conv3x3 512 x4                 + maxpool   -> 1/16
    fc6     conv1x1 1024 + ReLU + dropout 0.5
    fc7     conv1x1 1024 + ReLU + dropout 0.5
    score   conv1x1 num_classes (2)
    up2_a   transposed conv x2 (1/16 -> 1/8)  + score_pool3 (conv1x1 on pool3)
    up2_b   transposed conv x2 (1/8 -> 1/4)   + score_pool2 (conv1x1 on pool2)
    up4     transposed conv x4 (1/4 -> 1)

Convolutions start with VGG's He-normal initialisation (fan_out), transposed convolutions as
bilinear upsampling and the skip heads at zero (as FCN-8s does). Inputs of any size
(narrow strips such as 100x160 and 100x55) are padded (replicate) to a multiple of 16 and
the logits cropped back: ``(B, C, H, W)`` -> ``(B, num_classes, H, W)``. Train with softmax
cross-entropy (class 1 = defect).
"""

from __future__ import annotations

from geodefect.errors import InputError
from geodefect.models.registry import register_model

VGG19_BLOCKS = ((64, 2), (128, 2), (256, 4), (512, 4))


def _bilinear_kernel(channels: int, kernel_size: int):
    import torch

    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    og = torch.arange(kernel_size, dtype=torch.float32)
    filt = 1 - (og - center).abs() / factor
    kernel = filt[:, None] * filt[None, :]
    weight = torch.zeros(channels, channels, kernel_size, kernel_size)
    for c in range(channels):
        weight[c, c] = kernel
    return weight


def _build(in_channels: int, num_classes: int, width_mult: float, dropout: float, batch_norm: bool = False):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    def width(n: int) -> int:
        return max(4, int(round(n * width_mult)))

    class RailVGGFCN(nn.Module):
        def __init__(self):
            super().__init__()
            channels = in_channels
            for i, (n, reps) in enumerate(VGG19_BLOCKS, start=1):
                layers = []
                for _ in range(reps):
                    layers += [nn.Conv2d(channels, width(n), 3, padding=1)]
                    layers += [nn.BatchNorm2d(width(n))] if batch_norm else []
                    layers += [nn.ReLU(inplace=True)]
                    channels = width(n)
                layers.append(nn.MaxPool2d(2, 2))
                setattr(self, f"block{i}", nn.Sequential(*layers))
            fc = width(1024)
            # element-wise dropout as Caffe's FCN on fc6/fc7 (Dropout2d, whole channels, was far noisier)
            self.fc6 = nn.Sequential(nn.Conv2d(channels, fc, 1), nn.ReLU(inplace=True), nn.Dropout(dropout))
            self.fc7 = nn.Sequential(nn.Conv2d(fc, fc, 1), nn.ReLU(inplace=True), nn.Dropout(dropout))
            self.score = nn.Conv2d(fc, num_classes, 1)
            self.score_pool3 = nn.Conv2d(width(256), num_classes, 1)
            self.score_pool2 = nn.Conv2d(width(128), num_classes, 1)
            self.up2_a = nn.ConvTranspose2d(num_classes, num_classes, 4, stride=2, padding=1, bias=False)
            self.up2_b = nn.ConvTranspose2d(num_classes, num_classes, 4, stride=2, padding=1, bias=False)
            self.up4 = nn.ConvTranspose2d(num_classes, num_classes, 8, stride=4, padding=2, bias=False)
            for m in self.modules():  # VGG's initialisation (torchvision): He normal, fan_out
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                    nn.init.zeros_(m.bias)
            with torch.no_grad():
                for up in (self.up2_a, self.up2_b, self.up4):
                    up.weight.copy_(_bilinear_kernel(num_classes, up.kernel_size[0]))
                for head in (self.score_pool3, self.score_pool2):
                    nn.init.zeros_(head.weight)
                    nn.init.zeros_(head.bias)

        def forward(self, x):
            h, w = x.shape[-2:]
            ph, pw = (-h) % 16, (-w) % 16
            if ph or pw:
                x = F.pad(x, (0, pw, 0, ph), mode="replicate")
            pool1 = self.block1(x)
            pool2 = self.block2(pool1)
            pool3 = self.block3(pool2)
            pool4 = self.block4(pool3)
            score = self.score(self.fc7(self.fc6(pool4)))
            score = self.up2_a(score) + self.score_pool3(pool3)
            score = self.up2_b(score) + self.score_pool2(pool2)
            return self.up4(score)[..., :h, :w]

    return RailVGGFCN()


@register_model("rail_vgg_fcn")
def rail_vgg_fcn(
    *, in_channels: int = 1, num_classes: int = 2, width_mult: float = 1.0, dropout: float = 0.5, batch_norm: bool = False
):
    """Rail defect FCN: ``(B, in_channels, H, W)`` float -> ``(B, num_classes, H, W)`` logits.

    Args:
        in_channels: 1 for grayscale line-scan images (RSDDs, rail400), 3 for RGB.
        width_mult: scales all widths (1.0 = paper; 0.125 for tests).
        dropout: dropout probability after fc6 and fc7 (paper: 0.5), element-wise.
        batch_norm: BatchNorm after every 3x3 convolution (VGG19-BN; not in the paper). Off
            here; ``geodefect train`` turns it on for ``rail_segment`` because without
            ImageNet weights the plain net does not leave "all background" on a CPU budget.
    """
    if not 0 < width_mult <= 4:
        raise InputError(f"`width_mult` must be in (0, 4], got {width_mult!r}")
    if num_classes < 2:
        raise InputError(f"`num_classes` must be >= 2 (softmax over background/defect), got {num_classes!r}")
    return _build(in_channels, num_classes, width_mult, dropout, batch_norm)
