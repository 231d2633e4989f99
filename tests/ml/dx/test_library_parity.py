"""Our Grad-CAM and augmentations against the libraries that define them.

Grad-CAM (``ml.dx.gradcam``) must give captum's ``LayerGradCam`` maps, after the same
ReLU and bilinear upsampling; the augmentation primitives (``ml.dx.augment``) must give
torchvision's ``transforms.v2.functional`` results. captum and torchvision are test-only
dependencies; each test is skipped where its library does not import (torchvision's
PyPI wheels need their own matching torch build).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from ml.dx.gradcam import grad_cam
from ml.dx.lbnet import LiteBlendNet

seeds = st.integers(0, 2**32 - 1)


class SmallNet(nn.Module):
    """A small conv net with batch norm and dropout: the CAM layer is its second block."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU())
        self.cam_layer = nn.Sequential(nn.Conv2d(6, 8, 3, stride=2, padding=1), nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.5),
                                  nn.Linear(8, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.cam_layer(self.stem(x)))


def _captum_maps(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    from captum.attr import LayerAttribution, LayerGradCam

    model.eval()
    lgc = LayerGradCam(model, model.cam_layer)
    layer_map = lgc.attribute(x, target=target, relu_attributions=True)
    up = LayerAttribution.interpolate(layer_map, tuple(x.shape[-2:]),
                                      interpolate_mode="bilinear")
    return up[:, 0].detach().numpy()


@settings(deadline=None, max_examples=15)
@given(seeds, st.integers(1, 3), st.integers(8, 24), st.integers(8, 24))
def test_grad_cam_equals_captum_layer_grad_cam(seed, n, h, w):
    pytest.importorskip("captum")
    torch.manual_seed(seed % 2**31)
    model = SmallNet()
    x = torch.randn(n, 3, h, w)
    target = torch.randint(0, 3, (n,))
    ours = grad_cam(model, x, target_class=target, normalize=False)
    ref = _captum_maps(model, x, target)
    scale = max(float(np.abs(ref).max()), 1e-12)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-5 * scale)


def test_grad_cam_equals_captum_on_lbnet():
    pytest.importorskip("captum")
    torch.manual_seed(0)
    model = LiteBlendNet()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        pred = model.eval()(x).argmax(dim=1)
    ours = grad_cam(model, x, normalize=False)         # the predicted class by default
    ref = _captum_maps(model, x, pred)
    assert ref.max() > 0
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-5 * float(ref.max()))


# ----------------------------------------------------------------------------- augment
def _tvf():
    pytest.importorskip("torchvision")
    from torchvision.transforms.v2 import functional as tvf

    return tvf


@settings(deadline=None, max_examples=25)
@given(seeds, st.floats(0.0, 2.0), st.integers(4, 20), st.integers(4, 20))
def test_colour_ops_and_flips_equal_torchvision(seed, factor, h, w):
    tvf = _tvf()
    from ml.dx.augment import (
        adjust_brightness,
        adjust_contrast,
        adjust_saturation,
        grayscale,
        hflip,
        vflip,
    )

    x = torch.rand(3, h, w, generator=torch.Generator().manual_seed(seed % 2**63))
    for ours, theirs in ((adjust_brightness(x, factor), tvf.adjust_brightness(x, factor)),
                         (adjust_contrast(x, factor), tvf.adjust_contrast(x, factor)),
                         (adjust_saturation(x, factor), tvf.adjust_saturation(x, factor)),
                         (grayscale(x), tvf.rgb_to_grayscale(x)),
                         (hflip(x), tvf.horizontal_flip(x)),
                         (vflip(x), tvf.vertical_flip(x))):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)


@settings(deadline=None, max_examples=25)
@given(seeds, st.floats(-45.0, 45.0), st.integers(8, 24))
def test_rotation_equals_torchvision(seed, angle, size):
    tvf = _tvf()
    from torchvision.transforms import InterpolationMode

    from ml.dx.augment import rotate

    x = torch.rand(3, size, size, generator=torch.Generator().manual_seed(seed % 2**63))
    ours = rotate(x, angle)
    # fill=None: zero padding inside grid_sample, as ours does for fill 0 (torchvision's
    # fill=0 would also multiply each border pixel by its inside fraction a second time)
    theirs = tvf.rotate(x, angle, interpolation=InterpolationMode.BILINEAR, fill=None)
    # same sampling grid (pixel centres about the image centre, counter-clockwise) and
    # bilinear weights; float32 rounding of the grid only
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-4)
