"""Hybrid-UNet, its baselines and the Dice metrics (torch, CPU)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ml.common.dice import dice_per_class, soft_dice_loss
from ml.common.nn import count_parameters
from ml.seg.hybrid_unet import (
    MIN_BANDS,
    MSR3D,
    AttentionSpectralPool,
    HybridUNet,
    PlainBlock3D,
    SegInputError,
    SpectralCompression,
    SpectralMean,
    UNet2D,
    UNet3D,
)

seeds = st.integers(0, 2**31 - 1)
FLAGS = list(itertools.product([True, False], repeat=3))


def _stack(seed: int, n: int = 1, b: int = 16, h: int = 32, w: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, b, h, w, generator=g)


# ---------------------------------------------------------------- models: shapes, ablation

@pytest.mark.parametrize("msr,comp,attn", FLAGS)
def test_hybrid_shapes_and_ablation_flags_remove_modules(msr, comp, attn):
    torch.manual_seed(0)
    m = HybridUNet(msr=msr, spectral_compression=comp, attention_skips=attn).eval()
    with torch.inference_mode():
        y = m(_stack(1, n=2))
    assert y.shape == (2, 2, 32, 32) and torch.isfinite(y).all()
    kinds = [type(mod) for mod in m.modules()]
    assert (MSR3D in kinds) == msr and (PlainBlock3D in kinds) == (not msr)
    assert (SpectralCompression in kinds) == comp
    assert (AttentionSpectralPool in kinds) == attn
    assert (SpectralMean in kinds) == (not comp or not attn)
    assert m.flags == {"msr": msr, "spectral_compression": comp, "attention_skips": attn}


def test_ablations_shrink_the_model():
    full = count_parameters(HybridUNet())
    for flags in FLAGS[1:]:
        msr, comp, attn = flags
        assert count_parameters(HybridUNet(msr=msr, spectral_compression=comp,
                                           attention_skips=attn)) < full


def test_baseline_shapes():
    torch.manual_seed(0)
    x = _stack(2, n=2)
    with torch.inference_mode():
        assert UNet3D().eval()(x).shape == (2, 2, 32, 32)
        u2 = UNet2D(16).eval()
        assert u2(x).shape == (2, 2, 32, 32)
        assert u2(x[:, 0]).shape == (2, 2, 32, 32)


@settings(max_examples=8, deadline=None)
@given(st.integers(MIN_BANDS, 40), st.integers(1, 3), st.integers(1, 3), seeds)
def test_3d_models_accept_any_bands_and_multiples_of_16(b, kh, kw, seed):
    torch.manual_seed(0)
    x = _stack(seed, b=b, h=16 * kh, w=16 * kw)
    with torch.inference_mode():
        assert HybridUNet().eval()(x).shape == (1, 2, 16 * kh, 16 * kw)
        assert UNet3D(width=4).eval()(x).shape == (1, 2, 16 * kh, 16 * kw)


@pytest.mark.parametrize("shape", [(1, 1, 16, 24, 32), (1, 1, 16, 32, 40), (1, 16, 32, 32),
                                   (1, 2, 16, 32, 32), (1, 1, MIN_BANDS - 1, 32, 32),
                                   (16, 32, 32)])
def test_bad_input_shapes_raise(shape):
    x = torch.zeros(shape)
    for m in (HybridUNet(), UNet3D(width=4)):
        with pytest.raises(SegInputError):
            m(x)
    with pytest.raises(SegInputError):
        UNet2D(16)(torch.zeros(1, 1, 15, 32, 32))
    with pytest.raises(SegInputError):
        UNet2D(16)(torch.zeros(1, 16, 24, 32))
    assert issubclass(SegInputError, ValueError)


def test_bad_options_raise():
    for kw in ({"width": 1}, {"spectral_stride": 0}, {"spectral_stride": MIN_BANDS + 1}):
        with pytest.raises(SegInputError):
            HybridUNet(**kw)
    with pytest.raises(SegInputError):
        MSR3D(4, spectral_kernels=(3, 4))


def test_any_band_count_uses_the_same_weights():
    m = HybridUNet().eval()
    with torch.inference_mode():
        for b in (MIN_BANDS, 5, 31, 50):
            assert m(_stack(b, b=b, h=16, w=16)).shape == (1, 2, 16, 16)


# ---------------------------------------------------------------- attention pooling

@settings(max_examples=15, deadline=None)
@given(seeds, st.integers(1, 12), st.integers(1, 6))
def test_attention_weights_sum_to_one_and_constant_input_gives_mean(seed, b, c):
    torch.manual_seed(seed % 1000)
    pool = AttentionSpectralPool(c)
    nn_init = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        pool.score.weight.copy_(torch.randn(pool.score.weight.shape, generator=nn_init))
    x = torch.randn(2, c, 5, 4, b, generator=nn_init) * 3  # spectral-last (N, C, H, W, B)
    with torch.no_grad():
        wts = pool.weights(x)
        assert wts.shape == (2, 1, 5, 4, b) and (wts >= 0).all()
        torch.testing.assert_close(wts.sum(dim=-1), torch.ones(2, 1, 5, 4))
        assert pool(x).shape == (2, c, 5, 4)
        const = x[..., :1].expand(-1, -1, -1, -1, b)
        torch.testing.assert_close(pool(const), SpectralMean()(const))
        torch.testing.assert_close(pool(const), x[..., 0])
        torch.testing.assert_close(SpectralMean()(x), x.mean(dim=-1))


# ---------------------------------------------------------------- tiny overfit

def _synthetic(n: int = 2, b: int = 16, size: int = 32, seed: int = 0):
    """Stacks with a lipid-droplet disk (peak at band 3) and a nucleus disk (peak at 11)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    bands = np.arange(b)
    lipid = np.exp(-0.5 * ((bands - 3) / 1.0) ** 2)
    protein = np.exp(-0.5 * ((bands - 11) / 1.5) ** 2)
    xs, ys = [], []
    for _ in range(n):
        cn = rng.uniform(9, 23, 2)
        nuc = (yy - cn[0]) ** 2 + (xx - cn[1]) ** 2 < rng.uniform(5, 8) ** 2
        cd = rng.uniform(5, 27, 2)
        drop = ((yy - cd[0]) ** 2 + (xx - cd[1]) ** 2 < rng.uniform(2.5, 4) ** 2) & ~nuc
        stack = 0.3 * rng.standard_normal((b, size, size))
        stack += 2.0 * protein[:, None, None] * nuc + 2.0 * lipid[:, None, None] * drop
        xs.append(stack[None])
        ys.append(np.stack([nuc, drop]))
    return (torch.tensor(np.stack(xs), dtype=torch.float32),
            torch.tensor(np.stack(ys), dtype=torch.float32))


def test_hybrid_unet_overfits_two_synthetic_stacks():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        x, y = _synthetic()
        model = HybridUNet()
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        bce = torch.nn.BCEWithLogitsLoss()
        for _ in range(60):
            logits = model(x)
            loss = bce(logits, y) + soft_dice_loss(logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.inference_mode():
            pred = (model(x) > 0).numpy()
    finally:
        torch.set_num_threads(threads)
    truth = y.numpy().astype(bool)
    scores = dice_per_class(pred, truth, axis=1)
    assert scores.min() >= 0.8, scores
