"""The two-band rule baseline (ml.seg.twoband): labels are truth codes, fitting on a
separable synthetic stack recovers it exactly, bad input raises TwoBandError."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml.seg.twoband import TwoBandError, TwoBandRule, fit_two_band

AXIS = np.arange(2800.0, 3050.1, 10.0)


def _synthetic(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    lab = np.zeros((48, 48), np.uint8)
    lab[8:40, 8:40] = 2
    lab[14:26, 14:26] = 3
    lab[30:36, 30:36] = 4
    k2850, k2960 = np.argmin(abs(AXIS - 2850)), np.argmin(abs(AXIS - 2960))
    x = np.full((AXIS.size, 48, 48), 0.01) + rng.normal(0, 1e-3, (AXIS.size, 48, 48))
    level = {0: (0.01, 0.01), 2: (0.3, 0.3), 3: (0.2, 0.5), 4: (3.0, 1.0)}
    for c, (a, b) in level.items():
        x[k2850][lab == c] = a
        x[k2960][lab == c] = b
    return x, lab


def test_fit_recovers_a_separable_stack():
    pairs = [_synthetic(s) for s in (1, 2)]
    rule = fit_two_band([p[0] for p in pairs], [AXIS, AXIS], [p[1] for p in pairs])
    x, lab = _synthetic(3)
    pred = rule.segment(x, AXIS)
    inner = np.zeros_like(lab, bool)
    inner[2:-2, 2:-2] = True
    # 3x3 smoothing moves edges by at most one pixel
    for c in (3, 4):
        assert abs(int((pred == c).sum()) - int((lab == c).sum())) <= 4 * 12 + 4
        core = (lab == c) & inner
        core = core & np.roll(core, 1, 0) & np.roll(core, -1, 0) & np.roll(core, 1, 1) \
            & np.roll(core, -1, 1)
        assert np.all(pred[core] == c)


@settings(max_examples=20, deadline=None)
@given(tc=st.floats(0.0, 1.0), dr=st.floats(0.1, 5.0), td=st.floats(0.01, 5.0))
def test_labels_are_truth_codes(tc, dr, td):
    rule = TwoBandRule(t_cell=tc, t_ratio=dr, t_droplet=tc + td)
    x, _ = _synthetic(0)
    assert set(np.unique(rule.segment(x, AXIS))) <= {0, 2, 3, 4}


def test_bad_input_raises():
    with pytest.raises(TwoBandError):
        TwoBandRule(t_cell=1.0, t_ratio=1.0, t_droplet=0.5)
    with pytest.raises(TwoBandError, match="no frame within"):
        TwoBandRule(0.1, 1.0, 1.0).segment(np.ones((3, 4, 4)), [3000.0, 3010.0, 3020.0])
    with pytest.raises(TwoBandError):
        fit_two_band([], [], [])
