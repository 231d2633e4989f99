"""Parameter and MAC counts (torch FlopCounterMode) against closed forms."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from ml.common.nn import count_macs, count_parameters


@settings(deadline=None, max_examples=30)
@given(st.integers(1, 4), st.integers(1, 6), st.integers(1, 8), st.integers(1, 3),
       st.integers(1, 2), st.integers(5, 20), st.integers(5, 20), st.booleans())
def test_conv2d_macs_closed_form(groups, cin_g, cout_g, k, stride, h, w, bias):
    conv = nn.Conv2d(groups * cin_g, groups * cout_g, k, stride=stride, groups=groups,
                     bias=bias)
    ho, wo = (h - k) // stride + 1, (w - k) // stride + 1
    want = 2 * groups * cout_g * ho * wo * k * k * cin_g       # batch 2
    assert count_macs(conv, (2, groups * cin_g, h, w)) == want


@settings(deadline=None, max_examples=20)
@given(st.integers(1, 64), st.integers(1, 64), st.integers(1, 5))
def test_linear_macs_closed_form(fin, fout, n):
    assert count_macs(nn.Linear(fin, fout), (n, fin)) == n * fin * fout


def test_conv3d_and_elementwise_layers():
    c3 = nn.Conv3d(2, 3, 3, padding=1)
    assert count_macs(c3, (1, 2, 4, 5, 6)) == 3 * 4 * 5 * 6 * 27 * 2
    # activations, batch norm and pooling are not multiply-accumulates
    net = nn.Sequential(nn.BatchNorm2d(3), nn.ReLU(), nn.MaxPool2d(2))
    assert count_macs(net, (1, 3, 8, 8)) == 0


def test_mode_restored_and_parameters_counted():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Dropout(0.5), nn.Flatten(),
                        nn.Linear(4 * 6 * 6, 2))
    net.train()
    macs = count_macs(net, (1, 3, 8, 8))
    assert net.training
    assert macs == 4 * 6 * 6 * 27 + 4 * 6 * 6 * 2
    net[0].weight.requires_grad_(False)
    assert count_parameters(net) == count_parameters(net, trainable_only=False) - 4 * 27
    assert count_parameters(net, trainable_only=False) == 4 * 27 + 4 + 144 * 2 + 2
    assert math.isfinite(macs)


def test_mode_restored_when_forward_raises():
    class Boom(nn.Module):
        def forward(self, x):
            raise RuntimeError("boom")

    m = Boom().train()
    with pytest.raises(RuntimeError, match="boom"):
        count_macs(m, (1, 3))
    assert m.training
