"""Reference networks for the SRASH paper's speed comparison, written by hand in PyTorch.

:class:`ResNet50Ref` is a ResNet-50-sized network (He et al. 2016; the torchvision "v1.5"
layout, stride on the 3 x 3 conv of each bottleneck): conv 7 x 7/2 (64) BN ReLU, max-pool
3 x 3/2, bottleneck stages [3, 4, 6, 3] of widths 64, 128, 256, 512 (expansion 4), global
average pooling, a fully connected classifier. With a 2-class head it has 23,512,130
parameters (ResNet-50's 25.6M minus the 1000-class head). It is only used to time
inference against LiteBlendNet on the same inputs; it is not trained here.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ml.common.errors import MLError


class RefNetError(MLError):
    """Settings a reference network cannot be built with."""


__all__ = ["RefNetError", "Bottleneck", "ResNet50Ref"]


class Bottleneck(nn.Module):
    """1x1 (reduce) -> 3x3 (stride) -> 1x1 (expand x4), BN after each, identity/projection skip."""

    expansion = 4

    def __init__(self, cin: int, width: int, *, stride: int = 1) -> None:
        super().__init__()
        cout = width * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        idt = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + idt)


class ResNet50Ref(nn.Module):
    """ResNet-50-sized classifier (module docstring).

    Parameters
    ----------
    num_classes : int
        Output classes (default 2).
    in_channels : int, keyword-only
        Input channels (default 3).
    layers : sequence of int, keyword-only
        Bottlenecks per stage (default ResNet-50's (3, 4, 6, 3)).

    Notes
    -----
    ``cam_layer`` is the last stage (its output is the last conv feature map), so
    :func:`ml.dx.gradcam.grad_cam` works on it too.
    """

    def __init__(self, num_classes: int = 2, *, in_channels: int = 3,
                 layers: Sequence[int] = (3, 4, 6, 3)) -> None:
        super().__init__()
        if num_classes < 2:
            raise RefNetError(f"num_classes {num_classes!r}: expected >= 2")
        if len(layers) != 4 or any(int(n) < 1 for n in layers):
            raise RefNetError(f"layers {tuple(layers)!r}: expected 4 integers >= 1")
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(64), nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2, padding=1))
        cin = 64
        stages = []
        for i, (n, width) in enumerate(zip(layers, (64, 128, 256, 512))):
            blocks = []
            for j in range(int(n)):
                blocks.append(Bottleneck(cin, width, stride=2 if (j == 0 and i > 0) else 1))
                cin = width * Bottleneck.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @property
    def cam_layer(self) -> nn.Module:
        """The last stage, whose output is the Grad-CAM feature map."""
        return self.layer4

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Last convolutional feature map ``(N, 2048, h, w)``."""
        x = self.stem(x)
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.layer4(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes)``."""
        return self.fc(self.gap(self.forward_features(x)).flatten(1))
