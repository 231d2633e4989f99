"""Dice on masks and label maps, and the soft Dice loss (numpy, torch on the CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.metrics import f1_score

from ml.common.dice import DiceError, dice, dice_per_class, soft_dice_loss

seeds = st.integers(0, 2**31 - 1)


masks = st.integers(1, 200).flatmap(
    lambda n: st.tuples(arrays(np.bool_, n), arrays(np.bool_, n)))


@given(masks)
def test_dice_properties(ab):
    a, b = ab
    d = dice(a, b)
    assert 0.0 <= d <= 1.0
    assert d == dice(b, a)
    assert dice(a, a) == 1.0
    if a.sum() + b.sum():
        assert d == pytest.approx(2 * (a & b).sum() / (a.sum() + b.sum()))
        assert d == pytest.approx(f1_score(b.ravel(), a.ravel(), zero_division=1.0))
    else:
        assert d == 1.0 and dice(a, b, empty=0.0) == 0.0
    if a.any() and (~a).any():
        assert dice(a, ~a) == 0.0


def test_dice_errors_and_per_class():
    with pytest.raises(DiceError):
        dice(np.zeros(3, bool), np.zeros(4, bool))
    with pytest.raises(DiceError):
        dice(np.array([0.5, 1.0]), np.array([1.0, 1.0]))
    assert dice(np.array([0, 1, 1]), np.array([0, 1, 0])) == pytest.approx(2 / 3)
    pred = np.array([[0, 1, 2], [2, 2, 0]])
    truth = np.array([[0, 1, 1], [2, 2, 3]])
    got = dice_per_class(pred, truth)
    np.testing.assert_allclose(got, [dice(pred == k, truth == k) for k in (1, 2, 3)])
    np.testing.assert_allclose(dice_per_class(pred, truth, labels=[2]), [0.8])
    stacked_p = np.stack([pred == 1, pred == 2])
    stacked_t = np.stack([truth == 1, truth == 2])
    np.testing.assert_allclose(dice_per_class(stacked_p, stacked_t), got[:2])
    np.testing.assert_allclose(
        dice_per_class(stacked_p[None], stacked_t[None], axis=1), got[:2])
    with pytest.raises(DiceError):
        dice_per_class(stacked_p, stacked_t, labels=[1])
    with pytest.raises(DiceError):
        dice_per_class(pred.astype(float) / 2, truth.astype(float))


@given(seeds)
def test_soft_dice_loss_near_zero_for_perfect_logits(seed):
    g = torch.Generator().manual_seed(seed)
    t = (torch.rand(2, 2, 8, 8, generator=g) > 0.5).float()
    assert soft_dice_loss((2 * t - 1) * 30, t).item() < 1e-6
    assert soft_dice_loss(-(2 * t - 1) * 30, t).item() > 0.9
    with pytest.raises(DiceError):
        soft_dice_loss(t, t[:1])
    with pytest.raises(DiceError):
        soft_dice_loss(t, t, eps=0.0)


def test_soft_dice_loss_decreases_while_training():
    torch.manual_seed(0)
    t = (torch.rand(1, 2, 8, 8) > 0.5).float()
    logits = torch.zeros_like(t, requires_grad=True)
    opt = torch.optim.Adam([logits], lr=0.3)
    losses = []
    for _ in range(40):
        loss = soft_dice_loss(logits, t)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.02 * losses[0] and all(b <= a + 1e-7 for a, b in zip(losses, losses[1:]))
