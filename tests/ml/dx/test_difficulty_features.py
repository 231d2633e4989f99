"""The whole-patch intensity statistics of the classical baselines (issue 14's yardstick)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ml.dx.baselines import (
    PERCENTILES,
    BaselineError,
    feature_names,
    intensity_columns,
    intensity_features,
    patch_features,
)

seeds = st.integers(0, 2**32 - 1)


@given(seeds, st.integers(1, 4), st.integers(1, 4), st.integers(8, 30))
def test_intensity_columns_pick_the_statistics(seed, n, channels, grid):
    x = np.random.default_rng(seed).random((n, channels, 30, 30), dtype=np.float32)
    cols = intensity_columns(grid=grid, n_channels=channels)
    names = feature_names(grid=grid, channels=[f"c{k}" for k in range(channels)])
    assert len(cols) == 8 * channels
    assert not any("block" in names[j] for j in cols)
    np.testing.assert_array_equal(patch_features(x, grid=grid)[:, cols], intensity_features(x))


@given(seeds, st.integers(10, 40))
def test_intensity_features_match_their_definition(seed, size):
    x = np.random.default_rng(seed).random((2, 3, size, size + 1), dtype=np.float32)
    f = intensity_features(x)
    assert f.shape == (2, 24) and f.dtype == np.float32
    for i in range(2):
        for c in range(3):
            v = x[i, c]
            want = [v.mean(), v.std(), *np.percentile(v, PERCENTILES), (v > 0.5).mean(),
                    v.max()]
            np.testing.assert_allclose(f[i, 8 * c:8 * (c + 1)], want, rtol=1e-5, atol=1e-6)


@given(seeds)
def test_intensity_features_ignore_where_the_pixels_are(seed):
    """Unlike the block means, the statistics do not change when pixels move."""
    r = np.random.default_rng(seed)
    x = r.random((3, 3, 20, 20), dtype=np.float32)
    perm = r.permutation(400)
    y = x.reshape(3, 3, 400)[:, :, perm].reshape(3, 3, 20, 20)
    np.testing.assert_allclose(intensity_features(y), intensity_features(x), rtol=1e-6)


def test_bad_channel_count_is_refused():
    with pytest.raises(BaselineError):
        intensity_columns(n_channels=0)
