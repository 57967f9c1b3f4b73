"""EfficientNet-Lite0/1/2 in plain PyTorch, module for module as timm's ``tf_efficientnet_lite*``.

The embedded models are built here rather than by timm so that ``featviz render`` does not
import timm (and, through it, torchvision and ``torch._dynamo``): about 2 s of every
command's start-up. Names, order and shapes of modules and tensors are timm's
(``conv_stem``, ``bn1``, ``blocks.N.M.conv_dw``, ``conv_head``, ``bn2``, ``global_pool``,
``classifier``), so layer names, run records and state dicts stay interchangeable; a test
checks that both give the same logits on the same weights.

Convolutions with stride 2 pad like TensorFlow's ``SAME`` (more on the bottom and right when
the total is odd), as the weights were trained; stride 1 pads symmetrically.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# (kernel, stride, expansion) of the seven stages, then per model the stages' depths and widths
_STAGES = ((3, 1, 1), (3, 2, 6), (5, 2, 6), (3, 2, 6), (5, 1, 6), (5, 2, 6), (3, 1, 6))
ARCHS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "efficientnet_lite0": ((1, 2, 2, 3, 3, 4, 1), (16, 24, 40, 80, 112, 192, 320)),
    "efficientnet_lite1": ((1, 3, 3, 4, 4, 5, 1), (16, 24, 40, 80, 112, 192, 320)),
    "efficientnet_lite2": ((1, 3, 3, 4, 4, 5, 1), (16, 24, 48, 88, 120, 208, 352)),
}
_STEM, _HEAD = 32, 1280


class Conv2dSame(nn.Conv2d):
    """A convolution padded as TensorFlow's ``SAME`` for the input it gets."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        before, after = [], []
        for size, k, s, d in zip(x.shape[-2:], self.kernel_size, self.stride, self.dilation, strict=True):
            total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
            before.append(total // 2)
            after.append(total - total // 2)
        if before == after:
            return F.conv2d(x, self.weight, self.bias, self.stride, tuple(before), self.dilation, self.groups)
        if self.dilation == (1, 1):
            # One more row (column) of padding after than before: the same as a kernel one larger,
            # its first row (column) zero, padded ``after`` on both sides. No padded copy of the
            # input, forward or backward (3-6 ms of a 60 ms step on a CPU).
            (bh, bw), (ah, aw) = before, after
            weight = F.pad(self.weight, [aw - bw, 0, ah - bh, 0])
            return F.conv2d(x, weight, self.bias, self.stride, (ah, aw), 1, self.groups)
        pads = [before[1], after[1], before[0], after[0]]
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class Conv2dPointwise(nn.Conv2d):
    """A 1x1 convolution, computed as the matrix product it is when the input is channels-last
    (as in a render, :func:`featviz.models.speed.fast_inference`): pixels by input channels
    times the weight, with no layout conversion. On a CPU it is a fifth faster than the
    convolution kernels for Lite0's shapes, forward and input-gradient backward together, and
    spares the copies of the small maps (8x8, 16x16) that PyTorch sends down its reference path."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or not x.is_contiguous(memory_format=torch.channels_last):
            return super().forward(x)
        weight = self.weight.view(self.out_channels, self.in_channels)
        return F.linear(x.permute(0, 2, 3, 1), weight, self.bias).permute(0, 3, 1, 2)


def _conv(cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    if stride > 1:
        return Conv2dSame(cin, cout, k, stride, groups=groups, bias=False)
    if k == 1 and groups == 1:
        return Conv2dPointwise(cin, cout, 1, bias=False)
    return nn.Conv2d(cin, cout, k, stride, padding=(k - 1) // 2, groups=groups, bias=False)


class BatchNormAct2d(nn.BatchNorm2d):
    """Batch norm, then ``drop`` and ``act`` as children (timm's layout: hooks and folding
    see the activation as ``bn.act``)."""

    def __init__(self, channels: int, act: bool = True) -> None:
        super().__init__(channels, eps=1e-3)
        self.drop = nn.Identity()
        self.act: nn.Module = nn.ReLU6() if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.drop(super().forward(x)))


class DepthwiseSeparableConv(nn.Module):
    """Stage 0: depthwise 3x3, pointwise projection (no expansion, no skip)."""

    def __init__(self, cin: int, cout: int, k: int) -> None:
        super().__init__()
        self.conv_dw = _conv(cin, cin, k, groups=cin)
        self.bn1 = BatchNormAct2d(cin)
        self.aa, self.se = nn.Identity(), nn.Identity()
        self.conv_pw = _conv(cin, cout)
        self.bn2 = BatchNormAct2d(cout, act=False)
        self.drop_path = nn.Identity()
        self.has_skip = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.se(self.aa(self.bn1(self.conv_dw(x))))
        return self.drop_path(self.bn2(self.conv_pw(x)))


class InvertedResidual(nn.Module):
    """MBConv without squeeze-excitation: expand 1x1, depthwise kxk, project 1x1, skip when
    the shape allows."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        self.conv_pw = _conv(cin, mid)
        self.bn1 = BatchNormAct2d(mid)
        self.conv_dw = _conv(mid, mid, k, stride, groups=mid)
        self.bn2 = BatchNormAct2d(mid)
        self.aa, self.se = nn.Identity(), nn.Identity()
        self.conv_pwl = _conv(mid, cout)
        self.bn3 = BatchNormAct2d(cout, act=False)
        self.drop_path = nn.Identity()
        self.has_skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv_dw(self.bn1(self.conv_pw(x))))
        y = self.bn3(self.conv_pwl(self.se(self.aa(y))))
        return self.drop_path(y) + x if self.has_skip else y


class SelectAdaptivePool2d(nn.Module):
    """Global average pooling, then flatten."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.flatten(self.pool(x))


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite: ReLU6, no squeeze-excitation, stem and head fixed at 32 and 1280."""

    def __init__(self, arch: str = "efficientnet_lite0", num_classes: int = 1000) -> None:
        super().__init__()
        depths, widths = ARCHS[arch]
        self.num_classes = num_classes
        self.conv_stem = _conv(3, _STEM, 3, 2)
        self.bn1 = BatchNormAct2d(_STEM)
        stages, cin = [], _STEM
        for (k, stride, expand), depth, cout in zip(_STAGES, depths, widths, strict=True):
            blocks: list[nn.Module] = []
            for i in range(depth):
                s = stride if i == 0 else 1
                block = (
                    DepthwiseSeparableConv(cin, cout, k) if expand == 1 else InvertedResidual(cin, cout, k, s, expand)
                )
                blocks.append(block)
                cin = cout
            stages.append(nn.Sequential(*blocks))
        self.blocks = nn.Sequential(*stages)
        # Its stages, as timm's feature_info names a model's (timm lists only the five where
        # the resolution halves; a Microscope of every stage wants all seven block groups).
        self.feature_info = [{"module": f"blocks.{i}"} for i in range(len(stages))]
        self.conv_head = _conv(cin, _HEAD)
        self.bn2 = BatchNormAct2d(_HEAD)
        self.global_pool = SelectAdaptivePool2d()
        self.classifier = nn.Linear(_HEAD, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.bn1(self.conv_stem(x)))
        return self.classifier(self.global_pool(self.bn2(self.conv_head(x))))
