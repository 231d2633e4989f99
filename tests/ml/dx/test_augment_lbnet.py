"""Augmentations and LiteBlendNet (torch, CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from ml.common.nn import count_macs, count_parameters
from ml.dx.augment import (
    SESSION_GAIN_SIGMA,
    AugmentConfig,
    adjust_brightness,
    adjust_contrast,
    adjust_saturation,
    augment,
    hflip,
    rotate,
    session_gain,
    vflip,
)
from ml.dx.lbnet import BlendModule, LiteBlendNet

seeds = st.integers(0, 2**31 - 1)


def _batch(seed: int, n: int = 3, h: int = 24, w: int = 24) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, h, w, generator=g)


@given(seeds)
def test_flips_are_involutions(seed):
    x = _batch(seed)
    assert torch.equal(hflip(hflip(x)), x) and torch.equal(vflip(vflip(x)), x)
    assert torch.equal(hflip(x)[..., 0], x[..., -1])
    assert torch.equal(vflip(x)[..., 0, :], x[..., -1, :])


@given(seeds, st.integers(8, 40), st.integers(8, 40))
def test_rotation_by_zero_is_identity(seed, h, w):
    x = _batch(seed, h=h, w=w)
    torch.testing.assert_close(rotate(x, 0.0), x, atol=1e-5, rtol=0)


def test_rotation_by_90_matches_rot90_and_fills_zero():
    x = _batch(1, n=2, h=16, w=16)
    torch.testing.assert_close(rotate(x, 90.0), torch.rot90(x, 1, dims=(-2, -1)), atol=1e-5,
                               rtol=0)
    r = rotate(torch.ones(1, 3, 32, 32), 45.0)
    assert r[0, :, 0, 0].abs().max() < 1e-6           # corner came from outside: tissue-free
    assert r[0, :, 16, 16].sub(1).abs().max() < 1e-5  # centre unchanged
    torch.testing.assert_close(rotate(torch.ones(1, 3, 32, 32), 45.0, fill=0.3)[0, :, 0, 0],
                               torch.full((3,), 0.3), atol=1e-5, rtol=0)


@given(seeds)
def test_jitter_with_magnitude_zero_is_identity(seed):
    x = _batch(seed)
    cfg = AugmentConfig(flip_p=0.0, max_rotation_deg=0.0, brightness=0.0, contrast=0.0,
                        saturation=0.0)
    assert torch.equal(augment(x, generator=torch.Generator().manual_seed(seed), config=cfg), x)
    for op in (adjust_brightness, adjust_contrast, adjust_saturation):
        assert torch.equal(op(x, 1.0), x)


def test_jitter_ops_behave_like_torchvision():
    x = _batch(3)
    torch.testing.assert_close(adjust_brightness(x, 0.5), x * 0.5)
    c0 = adjust_contrast(x, 0.0)                      # constant image = mean luma
    assert torch.allclose(c0, c0.mean(dim=(1, 2, 3), keepdim=True).expand_as(c0), atol=1e-6)
    s0 = adjust_saturation(x, 0.0)                    # grey: all channels equal
    assert torch.allclose(s0[:, 0], s0[:, 1]) and torch.allclose(s0[:, 1], s0[:, 2])


@given(seeds)
def test_augment_is_deterministic_finite_and_in_range(seed):
    x = _batch(seed, n=4, h=32, w=32)
    a = augment(x, generator=torch.Generator().manual_seed(seed))
    b = augment(x, generator=torch.Generator().manual_seed(seed))
    assert torch.equal(a, b)
    assert a.shape == x.shape and torch.isfinite(a).all()
    assert a.min() >= 0 and a.max() <= 1
    assert not torch.equal(augment(x, generator=torch.Generator().manual_seed(seed + 1)), a)


def test_augment_single_image_and_bad_input():
    x = _batch(0, n=1)[0]
    assert augment(x, generator=torch.Generator().manual_seed(0)).shape == x.shape
    with pytest.raises(ValueError):
        augment(torch.zeros(3, 4), generator=torch.Generator())
    with pytest.raises(ValueError):
        AugmentConfig(brightness=-0.1)


@given(seeds, st.floats(0.2, 5.0), st.floats(0.2, 5.0))
def test_session_gain_keeps_the_raman_ratio_and_scales_each_modality(seed, gs, gh):
    x = _batch(seed) * 0.15  # dim enough that a gain up to 5 does not clip
    y = session_gain(x, gs, gh)
    torch.testing.assert_close(y[:, 1] * x[:, 0], x[:, 1] * y[:, 0], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(y[:, :2], (x[:, :2] * gs).clamp(0, 1), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(y[:, 2], (x[:, 2] * gh).clamp(0, 1), atol=1e-6, rtol=1e-5)
    assert torch.equal(session_gain(x, 1.0, 1.0), x)
    with pytest.raises(ValueError, match="> 0"):
        session_gain(x, 0.0, 1.0)


@given(seeds)
def test_session_gain_off_leaves_the_papers_stream_and_on_changes_only_intensity(seed):
    x = _batch(seed, n=6, h=16, w=16)
    geo = dict(brightness=0.0, contrast=0.0, saturation=0.0)
    paper = augment(x, generator=torch.Generator().manual_seed(seed))
    off = augment(x, generator=torch.Generator().manual_seed(seed),
                  config=AugmentConfig(session_gain_sigma=(0.0, 0.0)))
    assert torch.equal(paper, off)
    ident = AugmentConfig(flip_p=0.0, max_rotation_deg=0.0, **geo,
                          session_gain_sigma=SESSION_GAIN_SIGMA)
    y = augment(x * 0.1, generator=torch.Generator().manual_seed(seed), config=ident)
    # a pure gain: per sample, R and G share one factor, B has its own, every pixel alike
    ratio = y / (x * 0.1)
    for c in range(3):
        flat = ratio[:, c].reshape(ratio.shape[0], -1)
        torch.testing.assert_close(flat.amax(1), flat.amin(1), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(ratio[:, 0], ratio[:, 1], atol=1e-4, rtol=1e-4)


def test_session_gain_spread_matches_its_log_sd():
    x = torch.full((20000, 3, 1, 1), 0.01)
    cfg = AugmentConfig(flip_p=0.0, max_rotation_deg=0.0, brightness=0.0, contrast=0.0,
                        saturation=0.0, session_gain_sigma=SESSION_GAIN_SIGMA)
    y = augment(x, generator=torch.Generator().manual_seed(0), config=cfg)
    log_g = torch.log(y[:, :, 0, 0] / 0.01).double()
    assert abs(log_g[:, 0].std().item() - SESSION_GAIN_SIGMA[0]) < 0.01
    assert abs(log_g[:, 2].std().item() - SESSION_GAIN_SIGMA[1]) < 0.01
    assert abs(log_g[:, 0].mean().item()) < 0.01  # median gain 1: no bias in brightness
    with pytest.raises(ValueError, match="session_gain_sigma"):
        AugmentConfig(session_gain_sigma=(0.2,))


@pytest.fixture(scope="module")
def model() -> LiteBlendNet:
    torch.manual_seed(0)
    return LiteBlendNet()


def test_parameter_count_is_about_three_million(model):
    n = count_parameters(model)
    assert 2_500_000 <= n <= 3_500_000, n
    assert count_macs(model, (1, 3, 300, 300)) < 300e6   # the CPU budget of the stem design


@pytest.mark.parametrize("size", [(300, 300), (64, 64), (128, 200)])
def test_output_shape_at_several_sizes(model, size):
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, *size))
    assert out.shape == (2, 2) and torch.isfinite(out).all()


def test_eval_is_deterministic_and_batch_independent(model):
    model.eval()
    x = torch.randn(3, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = model(x), model(x)
        one = model(x[:1])
    assert torch.equal(a, b)
    torch.testing.assert_close(one, a[:1], atol=1e-5, rtol=1e-5)


def test_gradients_reach_the_stem_and_cam_layer_is_exposed():
    torch.manual_seed(1)
    m = LiteBlendNet(num_classes=3, in_channels=2, width=8)
    m.train()
    x = torch.randn(4, 2, 80, 80)
    feats = []
    h = m.cam_layer.register_forward_hook(lambda _m, _i, o: feats.append(o))
    out = m(x)
    h.remove()
    assert out.shape == (4, 3)
    torch.nn.functional.cross_entropy(out, torch.tensor([0, 1, 2, 0])).backward()
    g = m.stem[0][0].weight.grad
    assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0
    assert feats[0].shape == m.forward_features(x).shape
    assert feats[0].shape[1] == 16 * 8


def test_blend_module_is_residual_and_keeps_shape():
    b = BlendModule(8, dilations=(2, 3, 4)).eval()
    x = torch.randn(2, 8, 20, 20)
    assert b(x).shape == x.shape
    assert len(b.branches) == 3
    assert [br[2][0].dilation for br in b.branches] == [(2, 2), (3, 3), (4, 4)]


@pytest.mark.parametrize("kw", [dict(num_classes=1), dict(width=2), dict(dropout=1.0)])
def test_bad_model_settings_raise(kw):
    with pytest.raises(ValueError):
        LiteBlendNet(**kw)


def test_wrong_input_raises(model):
    with pytest.raises(ValueError, match="expected"):
        model(torch.zeros(1, 4, 300, 300))
    with pytest.raises(ValueError, match="64"):
        model(torch.zeros(1, 3, 32, 32))


def test_numpy_patches_through_normalize_and_model(model):
    from ml.dx.patches import extract_patches
    from ml.dx.preprocess import normalize
    field = np.zeros((3, 500, 500), np.float32)
    field[:, :300, :100] = 0.6                    # tissue only in the left 100 px
    ps = extract_patches(field)
    assert ps.n_total == 9 and len(ps) == 3     # only the left column of windows is valid
    assert (ps.origins[:, 1] == 0).all()
    model.eval()
    with torch.no_grad():
        prob = model(normalize(torch.from_numpy(ps.patches))).softmax(1)
    np.testing.assert_allclose(prob.sum(1).numpy(), 1.0, rtol=1e-6)
