"""Composite normalisation and sliding-window patches (numpy only)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ml.dx.patches import PatchError, background_mask, extract_patches, patch_grid
from ml.dx.preprocess import MEAN, STD, PreprocessError, denormalize, normalize, to_chw


def test_package_and_numpy_modules_do_not_import_torch_or_devices():
    code = ("import sys, ml, ml.common, ml.io, ml.dx, ml.seg, ml.ldquant, ml.dx.preprocess, "
            "ml.dx.patches, ml.dx.vote, ml.common.metrics, ml.dx.montecarlo, ml.dx.predict, "
            "ml.common.weights, ml.common.processing, ml.io.composite, ml.io.processed;"
            "bad = [m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'srash_ophyd', 'plans', 'bluesky', 'ophyd') "
            "and m not in ('plans', 'plans.contract')];"  # the contract is allowed
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_normalize_uses_the_paper_constants(rng):
    img = rng.random((3, 8, 9), dtype=np.float32)
    out = normalize(img)
    for c in range(3):
        np.testing.assert_allclose(out[c], (img[c] - MEAN[c]) / STD[c], rtol=1e-6)
    assert out.dtype == np.float32 and out.shape == (3, 8, 9)
    np.testing.assert_allclose(denormalize(out), img, atol=1e-6)


def test_hwc_and_chw_give_the_same_result(rng):
    img = rng.random((3, 10, 7), dtype=np.float32)
    np.testing.assert_array_equal(normalize(np.moveaxis(img, 0, -1)), normalize(img))
    np.testing.assert_array_equal(to_chw(np.moveaxis(img, 0, -1), layout="hwc"), img)


def test_normalize_tensor_matches_numpy(rng):
    torch = pytest.importorskip("torch")
    img = rng.random((2, 3, 5, 6), dtype=np.float32)
    np.testing.assert_allclose(normalize(torch.from_numpy(img)).numpy(), normalize(img),
                               rtol=1e-6)


@pytest.mark.parametrize("bad, match", [
    (np.zeros((4, 8, 8)), "expected"),
    (np.zeros((8, 8)), "expected"),
    (np.zeros((8, 8, 2)), "expected"),
    (np.full((3, 8, 8), np.nan), "NaN"),
    (np.full((3, 8, 8), 255.0), r"\[0, 1\]"),
    (np.full((3, 8, 8), -1.0), r"\[0, 1\]"),
])
def test_bad_composites_raise_named_error(bad, match):
    with pytest.raises(PreprocessError, match=match):
        normalize(bad)


def test_preprocess_error_is_a_value_error():
    assert issubclass(PreprocessError, ValueError)
    assert issubclass(PatchError, PreprocessError)


def test_paper_field_has_100_patches():
    assert patch_grid((1200, 1200)).shape == (100, 2)


@given(st.integers(1, 60), st.integers(1, 60), st.integers(1, 25), st.integers(1, 12))
def test_grid_count_and_coverage(h, w, size, stride):
    if h < size or w < size:
        with pytest.raises(PatchError):
            patch_grid((h, w), size=size, stride=stride)
        return
    o = patch_grid((h, w), size=size, stride=stride)
    nr, nc = (h - size) // stride + 1, (w - size) // stride + 1
    assert o.shape == (nr * nc, 2)
    covered = np.zeros((h, w), bool)
    for r, c in o:
        assert 0 <= r <= h - size and 0 <= c <= w - size
        covered[r:r + size, c:c + size] = True
    # everything up to the last window's far edge is covered (windows overlap or touch
    # when stride <= size), nothing is padded
    last_r, last_c = (nr - 1) * stride + size, (nc - 1) * stride + size
    if stride <= size:
        assert covered[:last_r, :last_c].all()
    assert not covered[last_r:].any() and not covered[:, last_c:].any()
    if stride <= size and (h - size) % stride == 0 and (w - size) % stride == 0:
        assert covered.all()


@given(st.integers(0, 2**32 - 1), st.floats(0.0, 1.0))
def test_weights_and_validity_match_brute_force(seed, tissue_fraction):
    r = np.random.default_rng(seed)
    img = r.random((3, 40, 50), dtype=np.float32)
    img[:, r.random((40, 50)) > tissue_fraction] = 0.0
    img[1, r.random((40, 50)) < 0.3] = 0.0               # some channel-wise zeros
    ps = extract_patches(img, size=20, stride=10)
    bg = background_mask(img)
    assert ps.n_total == 3 * 4
    for k, (rr, cc) in enumerate(ps.grid_origins):
        frac = bg[rr:rr + 20, cc:cc + 20].mean()
        assert ps.background_fraction[k] == pytest.approx(frac)
        assert ps.valid[k] == (frac <= 0.9)
    assert len(ps) == ps.valid.sum()
    for k, (rr, cc) in enumerate(ps.origins):
        win = img[:, rr:rr + 20, cc:cc + 20]
        np.testing.assert_array_equal(ps.patches[k], win)
        assert ps.weights[k] == pytest.approx((win > 0).sum() / (3 * 400))
        assert 0.1 / 3 - 1e-12 <= ps.weights[k] <= 1.0


@given(st.integers(20, 70), st.integers(20, 70), st.integers(5, 20), st.integers(1, 9))
def test_all_background_field_has_no_valid_patch(h, w, size, stride):
    ps = extract_patches(np.zeros((h, w, 3), np.float32), size=size, stride=stride)
    assert len(ps) == 0 and ps.patches.shape == (0, 3, size, size)
    assert not ps.valid.any()


def test_full_tissue_field_keeps_everything_with_weight_one():
    ps = extract_patches(np.full((3, 1200, 1200), 0.5, np.float32))
    assert len(ps) == 100 and ps.patches.shape == (100, 3, 300, 300)
    np.testing.assert_array_equal(ps.weights, 1.0)
    np.testing.assert_array_equal(ps.origins, patch_grid((1200, 1200)))


def test_ninety_percent_rule_is_strict():
    img = np.zeros((3, 10, 10), np.float32)
    img[0, 0, :] = 1.0                                    # exactly 90 % background: valid
    assert extract_patches(img, size=10, stride=10).valid.tolist() == [True]
    img[0, 0, 9] = 0.0                                    # 91 % background: invalid
    assert extract_patches(img, size=10, stride=10).valid.tolist() == [False]


def test_background_level_raises_the_floor():
    img = np.full((3, 10, 10), 0.01, np.float32)
    assert extract_patches(img, size=10, stride=10).valid.all()
    assert not extract_patches(img, size=10, stride=10, background_level=0.02).valid.any()


@pytest.mark.parametrize("kw", [dict(size=0), dict(stride=0), dict(size=2.5),
                                dict(max_background_fraction=1.5), dict(size=11)])
def test_bad_patch_settings_raise(kw):
    with pytest.raises(PatchError):
        extract_patches(np.zeros((3, 10, 10), np.float32), **kw)
