"""LD quantification statistics (IQR outliers, Shapiro, t / Mann-Whitney) and figure."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats as ss

from ml.ldquant.stats import (
    GroupTest,
    StatsError,
    compare_groups,
    iqr_outliers,
    is_normal,
    quant_figure_png,
    stars,
)

seeds = st.integers(0, 2**32 - 1)
small_ints = st.lists(st.integers(-50, 50), min_size=0, max_size=20)


def _normal_sample(n: int, loc: float, scale: float, seed: int) -> np.ndarray:
    """Exactly normal-shaped sample: the n normal quantiles, shuffled."""
    q = ss.norm.ppf((np.arange(n) + 0.5) / n)
    return np.random.default_rng(seed).permutation(loc + scale * q)


def _ref_fences(x: list[float], k: float) -> tuple[float, float]:
    """Quartiles by hand: linear interpolation at position q (n - 1) of the sorted data."""
    s = sorted(x)

    def q(p: float) -> float:
        h = p * (len(s) - 1)
        lo = math.floor(h)
        hi = min(lo + 1, len(s) - 1)
        return s[lo] + (h - lo) * (s[hi] - s[lo])

    q1, q3 = q(0.25), q(0.75)
    return q1 - k * (q3 - q1), q3 + k * (q3 - q1)


# ----------------------------------------------------------------------------- outliers

def test_iqr_hand_case():
    # sorted [1, 2, 3, 4, 100]: Q1 = 2, Q3 = 4, IQR = 2, fences -1 and 7
    assert iqr_outliers([1, 2, 3, 4, 100]).tolist() == [False, False, False, False, True]
    assert iqr_outliers([100, 3, 1, 4, 2]).tolist() == [True, False, False, False, False]
    # on the fence is kept, just beyond is excluded
    assert not iqr_outliers([1, 2, 3, 4, 7]).any()
    assert iqr_outliers([1, 2, 3, 4, 7.001]).tolist() == [False] * 4 + [True]
    # [X, 1, 2, 3, 4]: Q1 = 1, Q3 = 3 whatever X < 1, lower fence -2
    assert not iqr_outliers([-2, 1, 2, 3, 4]).any()
    assert iqr_outliers([-2.001, 1, 2, 3, 4]).tolist() == [True] + [False] * 4
    # k scales the fences: k = 0 -> fences at Q1 and Q3
    assert iqr_outliers([1, 2, 3, 4, 5], k=0).tolist() == [True, False, False, False, True]
    assert iqr_outliers([1, 2, 3, 4, 100], k=100).sum() == 0


def test_iqr_quartiles_are_numpy_linear():
    # n = 6, [0, 1, 2, 3, 4, X]: linear quartiles at positions 1.25 and 3.75 -> Q1 1.25,
    # Q3 3.75 (independent of X), IQR 2.5, upper fence 7.5. Tukey's hinges (1 and 4)
    # would put the fence at 8.5 and keep X = 8.
    assert not iqr_outliers([0, 1, 2, 3, 4, 7.5]).any()
    assert iqr_outliers([0, 1, 2, 3, 4, 7.51]).tolist() == [False] * 5 + [True]
    assert iqr_outliers([0, 1, 2, 3, 4, 8]).tolist() == [False] * 5 + [True]


def test_iqr_inf_empty_and_errors():
    m = iqr_outliers([1, 2, 3, np.inf, -np.inf, 4])
    assert m.tolist() == [False, False, False, True, True, False]
    assert iqr_outliers([]).shape == (0,) and iqr_outliers([]).dtype == bool
    with pytest.raises(StatsError, match="NaN"):
        iqr_outliers([1.0, np.nan, 3.0])
    with pytest.raises(StatsError, match="1-D"):
        iqr_outliers([[1, 2], [3, 4]])
    with pytest.raises(StatsError, match="finite"):
        iqr_outliers([np.inf, np.inf])
    for bad in (-1, np.nan, np.inf):
        with pytest.raises(StatsError, match="k ="):
            iqr_outliers([1, 2, 3], k=bad)


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=30),
       st.sampled_from([0.0, 0.5, 1.5, 3.0]))
def test_iqr_matches_hand_fences_and_keeps_the_box(x, k):
    m = iqr_outliers(x, k=k)
    lo, hi = _ref_fences(x, k)
    q1, q3 = np.percentile(x, [25, 75])
    for v, out in zip(x, m):
        if q1 <= v <= q3:
            assert not out                       # inside [Q1, Q3]: never an outlier
        # away from the fences (float rounding), the mask matches the hand fences
        tol = 1e-9 * (1 + abs(lo) + abs(hi))
        if v < lo - tol or v > hi + tol:
            assert out
        elif lo + tol < v < hi - tol:
            assert not out


@given(st.lists(st.integers(-1000, 1000), min_size=1, max_size=30), seeds,
       st.integers(-6, 6), st.integers(-10**6, 10**6), st.sampled_from([0.0, 1.0, 1.5, 3.0]))
def test_iqr_invariant_to_permutation_and_affine_maps(x, seed, log2c, shift, k):
    # dyadic scale and integer shift: every quartile and fence is exact in float64, so the
    # masks must be identical (not merely close)
    x = np.asarray(x, dtype=np.float64)
    m = iqr_outliers(x, k=k)
    perm = np.random.default_rng(seed).permutation(x.size)
    np.testing.assert_array_equal(iqr_outliers(x[perm], k=k), m[perm])
    np.testing.assert_array_equal(iqr_outliers(2.0**log2c * x + shift, k=k), m)


# ----------------------------------------------------------------------------- normality

def test_is_normal():
    ok, p = is_normal(_normal_sample(30, 1.0, 0.2, 0))
    assert ok and p > 0.9
    skew = np.exp(1.5 * ss.norm.ppf((np.arange(40) + 0.5) / 40))
    ok, p = is_normal(skew)
    assert not ok and p == float(ss.shapiro(skew).pvalue) and p < 1e-3
    # alpha is the decision level: p >= alpha is normal
    _, p = is_normal([0, 1, 100])
    assert 0.01 < p < 0.05
    assert is_normal([0, 1, 100], alpha=p)[0] is True
    assert is_normal([0, 1, 100], alpha=np.nextafter(p, 1))[0] is False
    # constant data: not testable -> (False, nan), no scipy warning (warnings are errors)
    ok, p = is_normal([0.4, 0.4, 0.4, 0.4])
    assert ok is False and math.isnan(p)
    with pytest.raises(StatsError, match="at least 3"):
        is_normal([1.0, 2.0])
    with pytest.raises(StatsError, match="NaN"):
        is_normal([1.0, 2.0, np.nan])
    with pytest.raises(StatsError, match="alpha"):
        is_normal([1.0, 2.0, 3.0], alpha=1.0)


# ----------------------------------------------------------------------------- compare

def test_normal_groups_get_students_t():
    a = _normal_sample(25, 0.70, 0.08, 1)
    b = _normal_sample(20, 0.60, 0.08, 2)
    t = compare_groups(a, b, index="ld_mean_intensity", names=("normal", "NOA"),
                       alternative="greater")
    assert t.normal_a and t.normal_b
    assert t.test == "student-t-one-tailed" and t.alternative == "greater"
    ref = ss.ttest_ind(a, b, alternative="greater", equal_var=True)
    assert t.statistic == float(ref.statistic) and t.p_value == float(ref.pvalue)
    assert (t.n_a, t.n_b, t.n_outliers_a, t.n_outliers_b) == (25, 20, 0, 0)
    assert t.mean_a == pytest.approx(0.70) and t.mean_b == pytest.approx(0.60)
    assert t.sem_a == pytest.approx(np.std(a, ddof=1) / 5)
    assert t.median_a == pytest.approx(0.70)
    assert t.significant and t.stars == stars(t.p_value) != "ns"
    assert (t.group_a, t.group_b, t.index) == ("normal", "NOA", "ld_mean_intensity")
    two = compare_groups(a, b)
    assert two.test == "student-t" and two.alternative == "two-sided"
    assert two.statistic == t.statistic > 0
    # one-tailed in the direction of the statistic: half the two-sided p
    assert t.p_value == pytest.approx(two.p_value / 2, rel=1e-12)
    less = compare_groups(a, b, alternative="less")
    assert less.p_value == pytest.approx(1 - two.p_value / 2, rel=1e-12)


def test_skewed_groups_get_mann_whitney():
    r = np.random.default_rng(7)
    a = r.lognormal(0.0, 1.5, 40)
    b = r.lognormal(1.0, 1.5, 40)
    t = compare_groups(a, b, index="ld_area_percent", names=("SPT", "SPG"),
                       alternative="less")
    assert not (t.normal_a and t.normal_b)
    assert t.test == "mannwhitney-u"
    ka, kb = a[~iqr_outliers(a)], b[~iqr_outliers(b)]
    assert (t.n_a, t.n_b) == (ka.size, kb.size) and t.n_outliers_a == 40 - ka.size > 0
    ref = ss.mannwhitneyu(ka, kb, alternative="less", method="auto")
    assert t.statistic == float(ref.statistic) and t.p_value == float(ref.pvalue)
    assert t.mean_a == pytest.approx(ka.mean()) and t.median_b == pytest.approx(np.median(kb))
    # the raw (outlier-containing) data would give another answer
    assert t.p_value != float(ss.mannwhitneyu(a, b, alternative="less").pvalue)


def test_mann_whitney_hand_case():
    # a = [0, 1, 100] is not normal (Shapiro p ~ 0.017); every a is below every b:
    # U_a = 0, exact P(U <= 0) = 1 / C(6, 3) = 1/20 under H0 ("less")
    a, b = [0.0, 1.0, 100.0], [200.0, 300.0, 400.0]
    t = compare_groups(a, b, alternative="less")
    assert t.test == "mannwhitney-u" and not t.normal_a and t.normal_b
    assert t.statistic == 0.0
    assert t.p_value == pytest.approx(1 / 20, rel=1e-12)
    assert not t.significant and t.stars == "ns"          # p = 0.05 is not < 0.05
    assert compare_groups(a, b).p_value == pytest.approx(2 / 20, rel=1e-12)
    g = compare_groups(a, b, alternative="greater")
    assert g.statistic == 0.0 and g.p_value == pytest.approx(1.0)
    # U of b against a is n_a n_b - U_a = 9, same one-tailed p in the mirrored direction
    m = compare_groups(b, a, alternative="greater")
    assert m.statistic == 9.0 and m.p_value == pytest.approx(1 / 20, rel=1e-12)


def test_constant_group_goes_to_mann_whitney():
    # [5, 5, 5, 5, 6]: Q1 = Q3 = 5, IQR 0 -> 6 is an outlier, the kept group is constant
    t = compare_groups([5, 5, 5, 5, 6], _normal_sample(12, 8.0, 1.0, 3), alternative="less")
    assert t.n_a == 4 and t.n_outliers_a == 1
    assert t.normal_a is False and math.isnan(t.shapiro_p_a) and t.sem_a == 0.0
    assert t.test == "mannwhitney-u" and t.significant
    d = t.to_dict()
    assert d["shapiro_p_a"] is None and d["n_outliers_a"] == 1
    json.dumps(d, allow_nan=False)


def test_alpha_sets_normality_and_significance():
    a, b = [0.0, 1.0, 100.0], [200.0, 300.0, 400.0]
    t = compare_groups(a, b, alternative="less", alpha=0.01)   # Shapiro p ~ 0.017 >= 0.01
    assert t.normal_a and t.test == "student-t-one-tailed" and t.alpha == 0.01
    ref = ss.ttest_ind(a, b, alternative="less")
    assert t.p_value == float(ref.pvalue) and t.significant == (ref.pvalue < 0.01)
    # stars follow significance at this alpha: p in [0.01, 0.05) is "ns", not "*"
    q = _normal_sample(10, 0.0, 1.0, 4)
    m = compare_groups(q + 1.0, q, alternative="greater", alpha=0.01)
    assert m.test == "student-t-one-tailed" and 0.01 < m.p_value < 0.05
    assert not m.significant and m.stars == "ns" and stars(m.p_value) == "*"
    assert compare_groups(q + 1.0, q, alternative="greater").stars == "*"


def test_compare_errors():
    ok = [1.0, 2.0, 3.0, 4.0]
    with pytest.raises(StatsError, match=r"'NOA' has n = 2 .*at least 3 tubules are needed"):
        compare_groups(ok, [1.0, 2.0], names=("normal", "NOA"))
    # 4 values, one excluded as an outlier -> 3 kept is enough; 3 with one excluded is not
    assert compare_groups([1, 2, 3, 100], ok).n_outliers_a == 1
    # (with k = 1.5, 3 values never hold an outlier); k = 0: fences at Q1 1.75, Q3 3.25
    with pytest.raises(StatsError, match=r"'SPT' has n = 2 .*excluding 2 IQR outlier"):
        compare_groups([1, 2, 3, 4], [1, 2, 3, 4, 5, 6], names=("SPT", "SPG"), k=0)
    with pytest.raises(StatsError, match=r"group 'B' contains 1 NaN"):
        compare_groups(ok, [1.0, np.nan, 3.0, 4.0])
    with pytest.raises(StatsError, match="infinite"):
        compare_groups([1.0, 2.0, np.inf, 3.0], ok)
    with pytest.raises(StatsError, match="alternative"):
        compare_groups(ok, ok, alternative="bigger")
    with pytest.raises(StatsError, match="names"):
        compare_groups(ok, ok, names=("only one",))
    with pytest.raises(StatsError, match="alpha"):
        compare_groups(ok, ok, alpha=0)
    with pytest.raises(StatsError, match="k ="):
        compare_groups(ok, ok, k=-1)


@given(small_ints, small_ints, st.sampled_from(["two-sided", "greater", "less"]))
def test_compare_matches_scipy_on_the_kept_values(a, b, alternative):
    ka = np.asarray(a, float)[~iqr_outliers(a)]
    kb = np.asarray(b, float)[~iqr_outliers(b)]
    if ka.size < 3 or kb.size < 3:
        with pytest.raises(StatsError, match="at least 3 tubules"):
            compare_groups(a, b, alternative=alternative)
        return
    t = compare_groups(a, b, alternative=alternative)
    na, nb = is_normal(ka)[0], is_normal(kb)[0]
    if na and nb:
        ref = ss.ttest_ind(ka, kb, alternative=alternative, equal_var=True)
        assert t.test == ("student-t" if alternative == "two-sided"
                          else "student-t-one-tailed")
    else:
        ref = ss.mannwhitneyu(ka, kb, alternative=alternative, method="auto")
        assert t.test == "mannwhitney-u"
    assert t.statistic == float(ref.statistic) and t.p_value == float(ref.pvalue)
    assert 0 <= t.p_value <= 1 and t.significant == (t.p_value < 0.05)
    assert (t.n_a, t.n_b) == (ka.size, kb.size)
    assert t.n_outliers_a + t.n_a == len(a) and t.n_outliers_b + t.n_b == len(b)
    # swapping the groups and the direction gives the same p
    mirror = {"two-sided": "two-sided", "greater": "less", "less": "greater"}[alternative]
    s = compare_groups(b, a, alternative=mirror)
    assert s.test == t.test and s.p_value == pytest.approx(t.p_value, rel=1e-9, abs=1e-15)
    json.dumps(t.to_dict(), allow_nan=False)


@given(seeds)
def test_compare_ignores_order(seed):
    r = np.random.default_rng(seed)
    a, b = r.lognormal(0, 1, 15), r.normal(3, 1, 12)
    t = compare_groups(a, b)
    u = compare_groups(r.permutation(a), r.permutation(b))
    assert (u.test, u.n_a, u.n_b) == (t.test, t.n_a, t.n_b)
    assert u.p_value == pytest.approx(t.p_value, rel=1e-9)
    assert u.mean_a == pytest.approx(t.mean_a, rel=1e-12)


# ----------------------------------------------------------------------------- stars

def test_stars_boundaries():
    below = lambda v: float(np.nextafter(v, 0))  # noqa: E731
    assert stars(0.0) == "****" and stars(below(1e-4)) == "****"
    assert stars(1e-4) == "***" and stars(below(1e-3)) == "***"
    assert stars(1e-3) == "**" and stars(below(1e-2)) == "**"
    assert stars(1e-2) == "*" and stars(below(0.05)) == "*"
    assert stars(0.05) == "ns" and stars(1.0) == "ns"
    assert stars(np.float64(0.02)) == "*"
    for bad in (np.nan, -0.1, 1.5, "x", None, True):
        with pytest.raises(StatsError, match="p ="):
            stars(bad)


# ----------------------------------------------------------------------------- figure

def _study(seed: int = 0):
    r = np.random.default_rng(seed)
    groups = {"normal": (0.70, 6.0), "NOA": (0.55, 2.5), "SPT": (0.62, 4.0),
              "SPG": (0.80, 9.0)}
    data = {g: (np.append(r.normal(m, 0.06, 14), 3.0),           # one outlier each
                r.lognormal(np.log(p), 0.6, 15)) for g, (m, p) in groups.items()}
    panels = []
    for ga, gb in (("normal", "NOA"), ("SPT", "SPG")):
        for j, index in enumerate(("ld_mean_intensity", "ld_area_percent")):
            a, b = data[ga][j], data[gb][j]
            panels.append((a, b, compare_groups(a, b, index=index, names=(ga, gb),
                                                alternative="greater" if ga == "normal"
                                                else "less")))
    return panels


def test_quant_figure_png(tmp_path):
    panels = _study()
    assert all(t.n_outliers_a >= 1 for _, _, t in panels)
    p = quant_figure_png(tmp_path / "sub" / "fig2.png", panels, title="LD quantification")
    assert p == tmp_path / "sub" / "fig2.png"
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    one = quant_figure_png(tmp_path / "one.png", panels[1:2])
    assert one.read_bytes()[:4] == b"\x89PNG"
    assert sorted(f.name for f in tmp_path.iterdir()) == ["one.png", "sub"]  # no temp left
    # reproducible (fixed-seed jitter)
    again = quant_figure_png(tmp_path / "again.png", panels[1:2])
    assert again.read_bytes() == one.read_bytes()


def test_quant_figure_errors(tmp_path):
    panels = _study()
    a, b, t = panels[0]
    with pytest.raises(StatsError, match="1 to 4"):
        quant_figure_png(tmp_path / "x.png", panels + panels[:1])
    with pytest.raises(StatsError, match="1 to 4"):
        quant_figure_png(tmp_path / "x.png", [])
    with pytest.raises(StatsError, match="GroupTest"):
        quant_figure_png(tmp_path / "x.png", [(a, b, t.to_dict())])
    with pytest.raises(StatsError, match="values_a, values_b"):
        quant_figure_png(tmp_path / "x.png", [(a, b)])
    # already-cleaned values (outlier dropped) or other data do not match the test
    with pytest.raises(StatsError, match="same raw values"):
        quant_figure_png(tmp_path / "x.png", [(a[~iqr_outliers(a)], b, t)])
    with pytest.raises(StatsError, match="same raw values"):
        quant_figure_png(tmp_path / "x.png", [(a + 0.01, b, t)])
    assert not (tmp_path / "x.png").exists()


def test_group_test_is_frozen_and_json_safe():
    t = compare_groups([1, 2, 3, 4], [2, 3, 4, 5, 6])
    assert isinstance(t, GroupTest)
    with pytest.raises(AttributeError):
        t.p_value = 0.0  # type: ignore[misc]
    d = t.to_dict()
    assert set(d) >= {"index", "group_a", "group_b", "n_a", "n_b", "n_outliers_a",
                      "n_outliers_b", "mean_a", "mean_b", "sem_a", "sem_b", "median_a",
                      "median_b", "normal_a", "normal_b", "shapiro_p_a", "shapiro_p_b",
                      "test", "alternative", "statistic", "p_value", "significant", "stars"}
    assert json.loads(json.dumps(d, allow_nan=False)) == d
    assert all(type(v) in (str, int, float, bool, type(None)) for v in d.values())
