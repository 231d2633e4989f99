"""Grad-CAM (per patch, per field, overlay PNG) and the ResNet-50-sized reference network."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ml.common.nn import count_parameters
from ml.dx.gradcam import GradCamError, field_cam, grad_cam, overlay_png, paste_maps
from ml.dx.lbnet import LiteBlendNet
from ml.dx.patches import extract_patches
from ml.dx.refnets import ResNet50Ref


class RedDetector(nn.Module):
    """Hand-made CNN: class 1's evidence is the red channel, class 0's is its absence.

    ``cam_layer`` = conv 3x3 stride 2 (channel 0 averages the red input channel) + ReLU, so
    the feature map is half the input resolution and Grad-CAM must upsample it.
    """

    def __init__(self) -> None:
        super().__init__()
        conv = nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=True)
        with torch.no_grad():
            conv.weight.zero_()
            conv.bias.zero_()
            conv.weight[0, 0] = 1.0 / 9.0            # red detector
            conv.weight[1, 1] = 1.0 / 9.0            # green (irrelevant to the classes)
        self.cam_layer = nn.Sequential(conv, nn.ReLU())
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 2)
        with torch.no_grad():
            self.fc.weight.zero_()
            self.fc.bias.zero_()
            self.fc.weight[1, 0] = 1.0
            self.fc.weight[0, 0] = -1.0
        self.drop = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(self.gap(self.cam_layer(x)).flatten(1)))


def _quadrant_batch(h: int = 32, w: int = 32) -> tuple[torch.Tensor, list[tuple[slice, slice]]]:
    """4 images, red evidence in quadrant i of image i, a green background everywhere."""
    x = torch.zeros(4, 3, h, w)
    x[:, 1] = 0.5
    quads = [(slice(0, h // 2), slice(0, w // 2)), (slice(0, h // 2), slice(w // 2, w)),
             (slice(h // 2, h), slice(0, w // 2)), (slice(h // 2, h), slice(w // 2, w))]
    for i, (rs, cs) in enumerate(quads):
        x[i, 0, rs, cs] = 1.0
    return x, quads


def test_cam_peaks_in_the_evidence_quadrant():
    model = RedDetector()
    x, quads = _quadrant_batch()
    cams = grad_cam(model, x, target_class=1)
    assert cams.shape == (4, 32, 32) and cams.dtype == np.float32
    assert cams.min() >= 0.0 and cams.max() <= 1.0
    for i, (rs, cs) in enumerate(quads):
        inside = cams[i][rs, cs].mean()
        outside_mask = np.ones((32, 32), bool)
        outside_mask[rs, cs] = False
        assert inside > 0.8 and cams[i][outside_mask].mean() < 0.2 * inside
        r, c = np.unravel_index(np.argmax(cams[i]), cams[i].shape)
        assert rs.start <= r < rs.stop and cs.start <= c < cs.stop
    # predicted class (argmax) is class 1 here, same maps
    np.testing.assert_allclose(grad_cam(model, x), cams, atol=1e-6)
    # class 0's evidence is the absence of red: negative weights -> ReLU -> all zero
    assert np.all(grad_cam(model, x, target_class=0) == 0.0)


def test_per_sample_targets_and_raw_maps():
    model = RedDetector()
    x, _ = _quadrant_batch()
    cams = grad_cam(model, x, target_class=[1, 0, 1, 0])
    assert cams[0].max() == pytest.approx(1.0) and cams[1].max() == 0.0
    raw = grad_cam(model, x, target_class=1, normalize=False)
    assert raw.max() > 0 and np.all(raw >= 0)
    np.testing.assert_allclose(raw / raw.max(axis=(1, 2), keepdims=True),
                               grad_cam(model, x, target_class=1), atol=1e-5)
    with pytest.raises(GradCamError):
        grad_cam(model, x, target_class=[1, 0])
    with pytest.raises(GradCamError):
        grad_cam(model, x, target_class=2)


def test_lbnet_maps_shape_range_mode_and_hooks_restored():
    torch.manual_seed(0)
    model = LiteBlendNet(2, width=8)
    model.train()
    x = torch.randn(2, 3, 96, 80)
    cams = grad_cam(model, x)
    assert cams.shape == (2, 96, 80) and cams.dtype == np.float32
    assert cams.min() >= 0.0 and cams.max() <= 1.0
    assert model.training                                       # mode restored
    assert len(model.cam_layer._forward_hooks) == 0
    assert len(model.cam_layer._backward_hooks) == 0
    assert all(p.grad is None for p in model.parameters())      # no side effect on .grad
    model.eval()
    grad_cam(model, x, target_class=0)
    assert not model.training


def test_hooks_removed_and_mode_restored_on_error():
    model = LiteBlendNet(2, width=8)
    model.train()
    with pytest.raises(ValueError):
        grad_cam(model, torch.randn(1, 3, 32, 32))              # LBNet needs >= 64 px
    assert model.training and len(model.cam_layer._forward_hooks) == 0
    with pytest.raises(GradCamError):
        grad_cam(model, torch.randn(3, 96, 96))                 # not a batch
    with pytest.raises(GradCamError):
        grad_cam(nn.Sequential(nn.Conv2d(3, 2, 1)), torch.randn(1, 3, 8, 8))  # no cam_layer


def test_frozen_model_still_gives_maps():
    model = RedDetector()
    for p in model.parameters():
        p.requires_grad_(False)
    x, quads = _quadrant_batch()
    cams = grad_cam(model, x, target_class=1)
    rs, cs = quads[3]
    assert cams[3][rs, cs].mean() > 0.8


def test_paste_maps_averages_overlaps_at_origins():
    maps = np.stack([np.full((4, 4), 1.0), np.full((4, 4), 3.0)])
    out = paste_maps(maps, [(0, 0), (2, 2)], (8, 10))
    assert out.shape == (8, 10) and out.dtype == np.float32
    assert np.all(out[0:2, 0:4] == 1.0) and np.all(out[0:4, 0:2] == 1.0)
    assert np.all(out[2:4, 2:4] == 2.0)                         # overlap: mean of 1 and 3
    assert np.all(out[4:6, 2:6] == 3.0) and np.all(out[2:6, 4:6] == 3.0)
    assert np.all(out[6:, :] == 0.0) and np.all(out[:, 6:] == 0.0)
    with pytest.raises(GradCamError):
        paste_maps(maps, [(0, 0), (6, 6)], (8, 8))


def test_field_cam_places_patch_maps_at_origins():
    model = RedDetector()
    field = np.zeros((3, 60, 60), np.float32)
    field[1] = 0.4                                              # tissue everywhere
    field[0, 42:52, 6:16] = 1.0                                 # red evidence, bottom left
    ps = extract_patches(field, size=20, stride=10)
    assert len(ps) == 25
    cam = field_cam(model, field, ps, target_class=1, batch_size=7)
    assert cam.shape == (60, 60) and cam.dtype == np.float32
    assert cam.min() >= 0.0 and cam.max() == pytest.approx(1.0)
    r, c = np.unravel_index(np.argmax(cam), cam.shape)
    assert 40 <= r < 54 and 4 <= c < 18
    assert cam[:30, 30:].max() < 0.05                           # no evidence top right
    # equals pasting the per-patch raw maps by hand
    from ml.dx.preprocess import normalize
    raw = grad_cam(model, torch.from_numpy(normalize(ps.patches)), target_class=1,
                   normalize=False)
    manual = paste_maps(raw, ps.origins, (60, 60))
    np.testing.assert_allclose(cam, manual / manual.max(), atol=1e-5)
    with pytest.raises(GradCamError):
        field_cam(model, field[:, :50], ps, target_class=1)


def test_overlay_png_writes_a_png(tmp_path):
    rgb = np.random.default_rng(0).random((24, 30, 3))
    cam = np.linspace(0, 1, 24 * 30).reshape(24, 30)
    out = overlay_png(tmp_path / "cam.png", rgb, cam)
    with open(out, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    from matplotlib.image import imread
    img = imread(out)
    assert img.shape[:2] == (24, 30)
    with pytest.raises(GradCamError):
        overlay_png(tmp_path / "bad.png", rgb, cam[:, :10])
    with pytest.raises(GradCamError):
        overlay_png(tmp_path / "bad.png", rgb, cam, alpha=1.5)


def test_resnet50_reference_size_and_forward():
    m = ResNet50Ref(2)
    n = count_parameters(m)
    assert 23_000_000 <= n <= 26_000_000
    assert n == 23_512_130
    assert [len(s) for s in (m.layer1, m.layer2, m.layer3, m.layer4)] == [3, 4, 6, 3]
    m.eval()
    with torch.no_grad():
        assert m(torch.zeros(1, 3, 64, 64)).shape == (1, 2)
        assert m.forward_features(torch.zeros(1, 3, 64, 64)).shape == (1, 2048, 2, 2)
    with pytest.raises(ValueError):
        ResNet50Ref(1)
