"""Group statistics and the figure of the lipid-droplet (LD) quantification study.

The SRASH paper (Fig. 2J-M) compares two per-tubule indexes between groups of seminiferous
tubules -- normal vs NOA (non-obstructive azoospermia), and SPT vs SPG:

* ``ld_mean_intensity`` -- mean lipid intensity of the tubule's LDs, in units of pure
  lipid (pure lipid = 1, dimensionless);
* ``ld_area_percent`` -- LD area as a percentage of the tubule area (%).

Its statistics: "Outliers excluded by the interquartile-range rule; each group tested for
normality; a Mann-Whitney U test where non-Gaussian, otherwise a one-tailed Student's
t-test; p < 0.05 significant. Plots: each point one tubule, mean +/- SEM, significance
stars." This module implements that recipe:

* :func:`iqr_outliers` -- Tukey's fences, ``Q1 - k IQR`` / ``Q3 + k IQR``.
* :func:`is_normal` -- Shapiro-Wilk normality test.
* :func:`compare_groups` -- outlier exclusion per group, then Student's t-test or
  Mann-Whitney U; returns a :class:`GroupTest`.
* :func:`stars` -- significance stars (GraphPad Prism "GP" scheme).
* :func:`quant_figure_png` -- strip plots with mean +/- SEM and significance brackets.

Statistics come from :mod:`scipy.stats`; figures are drawn on a bare
:class:`matplotlib.figure.Figure` with the Agg canvas (pyplot is never imported) and
written atomically (:func:`ml.common.fileio.atomic_write`). Bad input raises :class:`StatsError`
(a :class:`ValueError`).

Example
-------
>>> normal = [0.62, 0.71, 0.58, 0.66, 0.69, 0.64, 0.60, 0.73]   # doctest: +SKIP
>>> noa = [0.81, 0.92, 0.88, 0.79, 0.95, 0.86, 0.90, 2.5]         # doctest: +SKIP
>>> t = compare_groups(normal, noa, index="ld_mean_intensity",     # doctest: +SKIP
...                    names=("normal", "NOA"), alternative="less")
>>> quant_figure_png("fig2.png", [(normal, noa, t)])               # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ml.common.errors import MLError
from ml.common.plotting import new_figure, save_png

__all__ = ["StatsError", "GroupTest", "INDEX_LABELS", "TESTS", "ALTERNATIVES",
           "Resampled", "cohens_d", "compare_groups", "iqr_outliers", "is_normal",
           "quant_figure_png", "resample_comparison", "stars"]

#: y-axis labels (with units) of the study's per-tubule indexes.
INDEX_LABELS: dict[str, str] = {
    "ld_mean_intensity": "LD mean intensity (pure lipid = 1)",
    "ld_area_percent": "LD area (% of tubule)",
}

#: Names of the tests :func:`compare_groups` can run (``GroupTest.test``).
TESTS: tuple[str, ...] = ("mannwhitney-u", "student-t", "student-t-one-tailed")

#: Allowed ``alternative`` hypotheses (``a`` relative to ``b``), as in :mod:`scipy.stats`.
ALTERNATIVES: tuple[str, ...] = ("two-sided", "greater", "less")

_TEST_LABELS = {"mannwhitney-u": "Mann-Whitney U", "student-t": "Student's t",
                "student-t-one-tailed": "Student's t"}
_JITTER_SEED = 0
_MIN_N = 3


class StatsError(MLError):
    """Input the statistics or the figure cannot use: NaN, too few tubules, bad options."""


# ----------------------------------------------------------------------------- helpers

def _values(values: ArrayLike, what: str, *, allow_inf: bool = False) -> NDArray[np.float64]:
    try:
        x = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise StatsError(f"{what}: expected a 1-D sequence of numbers") from None
    if x.ndim != 1:
        raise StatsError(f"{what} of shape {x.shape}: expected a 1-D sequence of numbers")
    if np.isnan(x).any():
        raise StatsError(f"{what} contains {int(np.isnan(x).sum())} NaN value(s): remove "
                         "missing tubules before the statistics")
    if not allow_inf and np.isinf(x).any():
        raise StatsError(f"{what} contains infinite value(s): expected finite numbers")
    return x


def _real(v: Any, what: str) -> float:
    if isinstance(v, (bool, np.bool_)):
        raise StatsError(f"{what} = {v!r}: expected a number")
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise StatsError(f"{what} = {v!r}: expected a number") from None
    return f


def _check_k(k: Any) -> float:
    kf = _real(k, "k")
    if not (math.isfinite(kf) and kf >= 0):
        raise StatsError(f"k = {k!r}: expected a finite fence multiplier >= 0 (Tukey: 1.5)")
    return kf


def _check_alpha(alpha: Any) -> float:
    a = _real(alpha, "alpha")
    if not 0 < a < 1:
        raise StatsError(f"alpha = {alpha!r}: expected a significance level in (0, 1)")
    return a


# ----------------------------------------------------------------------------- outliers

def iqr_outliers(values: ArrayLike, /, *, k: float = 1.5) -> NDArray[np.bool_]:
    """Outliers by the interquartile-range rule (Tukey's fences).

    A value is an outlier when it lies strictly outside the fences,
    ``x < Q1 - k * IQR`` or ``x > Q3 + k * IQR``, ``IQR = Q3 - Q1``. Values on a fence are
    kept.

    Quartile convention: ``Q1, Q3 = np.percentile(finite, [25, 75])`` with numpy's default
    ``method="linear"`` (Hyndman & Fan type 7, as R's ``quantile`` default and Excel's
    ``QUARTILE.INC``): the quantile at ``q`` interpolates linearly between the sorted
    values at positions ``q (n - 1)``. Other conventions (e.g. Tukey's hinges, GraphPad
    Prism's) can give other quartiles for small ``n``.

    Parameters
    ----------
    values : array_like
        1-D per-tubule values (any unit; the rule is invariant to affine rescaling
        ``c x + d`` with ``c > 0``). ``+-inf`` is allowed and always an outlier; the
        quartiles are computed from the finite values.
    k : float, keyword-only
        Fence multiplier, finite and >= 0 (1.5: Tukey's "outlier"; 3: "far out").

    Returns
    -------
    ndarray of bool
        Same shape as ``values``; True marks an outlier. Empty input gives an empty mask.

    Raises
    ------
    StatsError
        NaN values, not 1-D, no finite value in a non-empty input, bad ``k``.

    Examples
    --------
    >>> iqr_outliers([1, 2, 3, 4, 100]).tolist()   # Q1 2, Q3 4, fences -1 and 7
    [False, False, False, False, True]
    """
    x = _values(values, "values", allow_inf=True)
    kf = _check_k(k)
    if x.size == 0:
        return np.zeros(0, dtype=bool)
    finite = x[np.isfinite(x)]
    if finite.size == 0:
        raise StatsError("values has no finite value: the quartiles are undefined")
    q1, q3 = np.percentile(finite, [25.0, 75.0])
    iqr = q3 - q1
    return (x < q1 - kf * iqr) | (x > q3 + kf * iqr)


# ----------------------------------------------------------------------------- normality

def is_normal(values: ArrayLike, /, *, alpha: float = 0.05) -> tuple[bool, float]:
    """Shapiro-Wilk test of normality (:func:`scipy.stats.shapiro`).

    Parameters
    ----------
    values : array_like
        1-D finite values, at least 3 (any unit).
    alpha : float, keyword-only
        Significance level in (0, 1). The sample counts as normal when ``p >= alpha``
        (normality is not rejected).

    Returns
    -------
    normal : bool
        ``p >= alpha``; always False for constant data (see Notes).
    p : float
        Shapiro-Wilk p-value; NaN for constant data.

    Raises
    ------
    StatsError
        Fewer than 3 values, NaN or infinite values, not 1-D, bad ``alpha``.

    Notes
    -----
    Constant data (range zero, the case where scipy warns "Input data has range zero" and
    returns a meaningless ``p = 1``) cannot be tested: :func:`is_normal` returns
    ``(False, nan)`` without calling into that warning, so :func:`compare_groups` sends a
    constant group to the Mann-Whitney U test (a t-test needs a non-zero variance).
    Scipy's other warning (``n > 5000``: p-value approximate) is passed through.
    """
    x = _values(values, "values")
    a = _check_alpha(alpha)
    if x.size < _MIN_N:
        raise StatsError(f"{x.size} value(s): the Shapiro-Wilk test needs at least "
                         f"{_MIN_N}")
    if np.ptp(x) == 0:
        return False, math.nan
    from scipy import stats

    with warnings.catch_warnings():
        # scipy's own "range zero" test (range below ~1e-19): treat as constant.
        warnings.filterwarnings("error", message=".*range zero", category=UserWarning)
        try:
            p = float(stats.shapiro(x).pvalue)
        except UserWarning:
            return False, math.nan
    return bool(p >= a), p


# ----------------------------------------------------------------------------- stars

def stars(p: float, /) -> str:
    """Significance stars of a p-value, GraphPad Prism's "GP" scheme.

    ======================  =========
    p                       stars
    ======================  =========
    ``p < 0.0001``          ``****``
    ``0.0001 <= p < 0.001`` ``***``
    ``0.001 <= p < 0.01``   ``**``
    ``0.01 <= p < 0.05``    ``*``
    ``p >= 0.05``           ``ns``
    ======================  =========

    The boundaries are strict (``p = 0.05`` is "ns", consistent with "p < 0.05
    significant"), as in the Prism guide's table ("< 0.0001", ..., "≥ 0.05 ns"); some
    GraphPad FAQ pages write "P ≤ 0.05" instead, which differs only at exactly 0.05, 0.01,
    0.001 and 0.0001.

    Raises
    ------
    StatsError
        ``p`` not a number in [0, 1] (NaN included).
    """
    pf = _real(p, "p")
    if not 0 <= pf <= 1:
        raise StatsError(f"p = {p!r}: expected a p-value in [0, 1]")
    for limit, s in ((1e-4, "****"), (1e-3, "***"), (1e-2, "**"), (0.05, "*")):
        if pf < limit:
            return s
    return "ns"


# ----------------------------------------------------------------------------- tests

@dataclass(frozen=True)
class GroupTest:
    """Result of :func:`compare_groups` (group ``a`` against group ``b``).

    Attributes
    ----------
    index : str
        Name of the per-tubule index (e.g. ``"ld_area_percent"``).
    group_a, group_b : str
        Group names.
    n_a, n_b : int
        Tubules kept after IQR outlier exclusion.
    n_outliers_a, n_outliers_b : int
        Tubules excluded as outliers.
    mean_a, mean_b, sem_a, sem_b, median_a, median_b : float
        Of the kept values, in the unit of the index; SEM = ``std(ddof=1) / sqrt(n)``
        (:func:`scipy.stats.sem`).
    normal_a, normal_b : bool
        Shapiro-Wilk ``p >= alpha`` (False for a constant group).
    shapiro_p_a, shapiro_p_b : float
        Shapiro-Wilk p-values (NaN for a constant group).
    test : str
        ``"student-t"``, ``"student-t-one-tailed"`` or ``"mannwhitney-u"``.
    alternative : str
        ``"two-sided"``, ``"greater"`` (a > b) or ``"less"`` (a < b).
    statistic : float
        t (Student) or U of group ``a`` (Mann-Whitney, scipy's ``U1``).
    p_value : float
        p-value of ``test`` under ``alternative``.
    significant : bool
        ``p_value < alpha``.
    stars : str
        :func:`stars` of ``p_value`` when significant, else ``"ns"`` (identical to
        ``stars(p_value)`` for ``alpha = 0.05``).
    alpha : float
        Significance level used for normality and significance.
    k : float
        IQR fence multiplier used for the outlier exclusion.
    cohens_d, d_low, d_high : float
        Cohen's d of the kept values (a - b, pooled SD) and its 95 % confidence interval
        (:func:`cohens_d`).
    """

    index: str
    group_a: str
    group_b: str
    n_a: int
    n_b: int
    n_outliers_a: int
    n_outliers_b: int
    mean_a: float
    mean_b: float
    sem_a: float
    sem_b: float
    median_a: float
    median_b: float
    normal_a: bool
    normal_b: bool
    shapiro_p_a: float
    shapiro_p_b: float
    test: str
    alternative: str
    statistic: float
    p_value: float
    significant: bool
    stars: str
    alpha: float = 0.05
    k: float = 1.5
    cohens_d: float = float("nan")
    d_low: float = float("nan")
    d_high: float = float("nan")

    def to_dict(self) -> dict[str, Any]:
        """Fields as a JSON-safe dict (plain Python types; NaN and +-inf -> None)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, (float, np.floating)):
                v = float(v) if math.isfinite(v) else None
            elif isinstance(v, np.bool_):
                v = bool(v)
            elif isinstance(v, np.integer):
                v = int(v)
            out[f.name] = v
        return out


def compare_groups(a: ArrayLike, b: ArrayLike, /, *, index: str = "",
                   names: tuple[str, str] = ("A", "B"), alternative: str = "two-sided",
                   alpha: float = 0.05, k: float = 1.5) -> GroupTest:
    """Compare one per-tubule index between two groups, as in the SRASH paper.

    Decision rule, in order:

    1. Outliers are excluded within each group separately by :func:`iqr_outliers`
       (factor ``k``), once (the rule is not re-applied to the kept values).
    2. Each group must keep at least 3 tubules, else :class:`StatsError`.
    3. Each kept group is tested with Shapiro-Wilk (:func:`is_normal`, level ``alpha``).
    4. Both normal (``p >= alpha`` for both) -> Student's t-test with pooled variance,
       ``scipy.stats.ttest_ind(a, b, alternative=alternative, equal_var=True)``; named
       ``"student-t-one-tailed"`` for ``alternative`` "greater" / "less" (the paper's
       one-tailed test) and ``"student-t"`` for "two-sided".
       Otherwise (either group non-normal or constant) -> Mann-Whitney U,
       ``scipy.stats.mannwhitneyu(a, b, alternative=alternative, method="auto")``
       (exact p for small samples without ties, normal approximation with tie and
       continuity corrections otherwise), named ``"mannwhitney-u"``.
    5. Significant when ``p < alpha``.

    Parameters
    ----------
    a, b : array_like
        1-D per-tubule values of the two groups (e.g. ``ld_mean_intensity`` in units of
        pure lipid, or ``ld_area_percent`` in %), finite.
    index : str, keyword-only
        Name of the index (stored; :data:`INDEX_LABELS` gives the figure's axis label).
    names : (str, str), keyword-only
        Names of groups ``a`` and ``b`` (e.g. ``("normal", "NOA")``).
    alternative : {"two-sided", "greater", "less"}, keyword-only
        Alternative hypothesis for ``a`` relative to ``b``: "greater" tests a > b, "less"
        tests a < b (one-tailed). Choose the direction before looking at the data.
    alpha : float, keyword-only
        Level in (0, 1) for both the normality tests and the significance.
    k : float, keyword-only
        IQR fence multiplier (>= 0).

    Returns
    -------
    GroupTest

    Raises
    ------
    StatsError
        NaN or infinite values (naming the group), fewer than 3 tubules left in a group
        after exclusion, unknown ``alternative``, bad ``names``, ``alpha`` or ``k``.
    """
    from scipy import stats

    if alternative not in ALTERNATIVES:
        raise StatsError(f"alternative = {alternative!r}: expected one of {ALTERNATIVES}")
    a_level = _check_alpha(alpha)
    kf = _check_k(k)
    if isinstance(names, str) or len(names) != 2 or \
            not all(isinstance(n, str) for n in names):
        raise StatsError(f"names = {names!r}: expected two group names (str, str)")
    if not isinstance(index, str):
        raise StatsError(f"index = {index!r}: expected a str")

    kept: list[NDArray[np.float64]] = []
    n_out: list[int] = []
    for values, name in zip((a, b), names):
        x = _values(values, f"group {name!r}")
        mask = iqr_outliers(x, k=kf)
        keep = x[~mask]
        if keep.size < _MIN_N:
            raise StatsError(f"group {name!r} has n = {keep.size} tubule(s) after "
                             f"excluding {int(mask.sum())} IQR outlier(s) (k = {kf:g}): "
                             f"at least {_MIN_N} tubules are needed")
        kept.append(keep)
        n_out.append(int(mask.sum()))
    xa, xb = kept
    normal_a, sp_a = is_normal(xa, alpha=a_level)
    normal_b, sp_b = is_normal(xb, alpha=a_level)
    if normal_a and normal_b:
        res = stats.ttest_ind(xa, xb, alternative=alternative, equal_var=True)
        test = "student-t" if alternative == "two-sided" else "student-t-one-tailed"
    else:
        res = stats.mannwhitneyu(xa, xb, alternative=alternative, method="auto")
        test = "mannwhitney-u"
    stat, p = float(res.statistic), float(res.pvalue)
    significant = bool(p < a_level)
    d, d_lo, d_hi = cohens_d(xa, xb)
    return GroupTest(
        index=index, group_a=names[0], group_b=names[1],
        n_a=int(xa.size), n_b=int(xb.size), n_outliers_a=n_out[0], n_outliers_b=n_out[1],
        mean_a=float(np.mean(xa)), mean_b=float(np.mean(xb)),
        sem_a=float(stats.sem(xa, ddof=1)), sem_b=float(stats.sem(xb, ddof=1)),
        median_a=float(np.median(xa)), median_b=float(np.median(xb)),
        normal_a=normal_a, normal_b=normal_b, shapiro_p_a=sp_a, shapiro_p_b=sp_b,
        test=test, alternative=alternative, statistic=stat, p_value=p,
        significant=significant, stars=stars(p) if significant else "ns",
        alpha=a_level, k=kf, cohens_d=d, d_low=d_lo, d_high=d_hi)


def cohens_d(a: ArrayLike, b: ArrayLike, /, *, confidence: float = 0.95
             ) -> tuple[float, float, float]:
    """Cohen's d of ``a`` against ``b`` and its confidence interval.

    ``d = (mean(a) - mean(b)) / s_p`` with the pooled standard deviation
    ``s_p = sqrt(((n_a - 1) s_a^2 + (n_b - 1) s_b^2) / (n_a + n_b - 2))`` (``ddof = 1``).
    The interval is the large-sample normal one of Hedges & Olkin (1985, *Statistical
    Methods for Meta-Analysis*, eq. 5.14): ``d +- z se`` with
    ``se = sqrt((n_a + n_b) / (n_a n_b) + d^2 / (2 (n_a + n_b)))``.

    Returns ``(d, low, high)``; NaN for all three when a group has fewer than 2 values or
    both groups are constant. :class:`StatsError` for NaN / infinite values or a
    ``confidence`` outside (0, 1).
    """
    from scipy import stats

    if not (isinstance(confidence, (int, float)) and 0.0 < confidence < 1.0):
        raise StatsError(f"confidence = {confidence!r}: expected a level in (0, 1)")
    xa, xb = _values(a, "group a"), _values(b, "group b")
    na, nb = xa.size, xb.size
    nan = float("nan")
    if na < 2 or nb < 2:
        return nan, nan, nan
    sp2 = ((na - 1) * xa.var(ddof=1) + (nb - 1) * xb.var(ddof=1)) / (na + nb - 2)
    if not sp2 > 0:
        return nan, nan, nan
    d = float((xa.mean() - xb.mean()) / math.sqrt(sp2))
    se = math.sqrt((na + nb) / (na * nb) + d * d / (2.0 * (na + nb)))
    z = float(stats.norm.ppf(0.5 + confidence / 2.0))
    return d, d - z * se, d + z * se


@dataclass(frozen=True)
class Resampled:
    """What a comparison gives at a fixed sample size (:func:`resample_comparison`).

    ``n_a``, ``n_b``: tubules drawn per replicate; ``reps``: replicates that ran (a
    replicate whose groups keep fewer than 3 tubules after the IQR rule is not counted,
    ``failed``); ``p_values`` and ``d`` (Cohen's d) per replicate.
    """

    index: str
    group_a: str
    group_b: str
    alternative: str
    n_a: int
    n_b: int
    reps: int
    failed: int
    p_values: NDArray[np.float64]
    d: NDArray[np.float64]

    def summary(self, alpha: float = 0.05) -> dict[str, Any]:
        """JSON-ready: fraction of replicates significant at ``alpha`` and at 0.01, the
        p-value median and 2.5 / 97.5 percentiles, and Cohen's d median and 2.5 / 97.5
        percentiles (None when no replicate ran)."""
        p, d = self.p_values, self.d[np.isfinite(self.d)]

        def q(x: NDArray[np.float64], v: float) -> float | None:
            return float(np.percentile(x, v)) if x.size else None

        return {"index": self.index, "group_a": self.group_a, "group_b": self.group_b,
                "alternative": self.alternative, "n_a": self.n_a, "n_b": self.n_b,
                "reps": self.reps, "failed": self.failed,
                "fraction_p_below_alpha": float(np.mean(p < alpha)) if p.size else None,
                "fraction_p_below_0.01": float(np.mean(p < 0.01)) if p.size else None,
                "p_median": q(p, 50), "p_2.5": q(p, 2.5), "p_97.5": q(p, 97.5),
                "d_median": q(d, 50), "d_2.5": q(d, 2.5), "d_97.5": q(d, 97.5)}


def resample_comparison(a: ArrayLike, b: ArrayLike, /, *, n_a: int, n_b: int,
                        reps: int = 1000, index: str = "", names: tuple[str, str] = ("A", "B"),
                        alternative: str = "two-sided", alpha: float = 0.05, k: float = 1.5,
                        rng: np.random.Generator | int | None = 0) -> Resampled:
    """The comparison of :func:`compare_groups` repeated on ``reps`` samples of ``n_a`` and
    ``n_b`` tubules drawn with replacement from ``a`` and ``b`` (a bootstrap at a fixed
    sample size, e.g. the paper's): how often the result is significant at that n and how
    large the effect is, rather than one p-value that shrinks with every tubule added.

    :class:`StatsError` for ``n_a``/``n_b`` < 3, ``reps`` < 1, an empty group or the
    checks of :func:`compare_groups`.
    """
    for name, v in (("n_a", n_a), ("n_b", n_b)):
        if not isinstance(v, (int, np.integer)) or v < _MIN_N:
            raise StatsError(f"{name} = {v!r}: expected an integer >= {_MIN_N}")
    if not isinstance(reps, (int, np.integer)) or reps < 1:
        raise StatsError(f"reps = {reps!r}: expected an integer >= 1")
    xa, xb = _values(a, f"group {names[0]!r}"), _values(b, f"group {names[1]!r}")
    if xa.size == 0 or xb.size == 0:
        raise StatsError(f"groups of {xa.size} and {xb.size} values: both need tubules")
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    ps, ds, failed = [], [], 0
    for _ in range(int(reps)):
        sa = xa[gen.integers(0, xa.size, int(n_a))]
        sb = xb[gen.integers(0, xb.size, int(n_b))]
        try:
            t = compare_groups(sa, sb, index=index, names=names, alternative=alternative,
                               alpha=alpha, k=k)
        except StatsError:
            failed += 1
            continue
        ps.append(t.p_value)
        ds.append(t.cohens_d)
    return Resampled(index=index, group_a=names[0], group_b=names[1],
                     alternative=alternative, n_a=int(n_a), n_b=int(n_b), reps=len(ps),
                     failed=failed, p_values=np.asarray(ps, float), d=np.asarray(ds, float))


# ----------------------------------------------------------------------------- figure

def _test_label(t: GroupTest) -> str:
    name = _TEST_LABELS.get(t.test, t.test)
    if t.alternative != "two-sided":
        name += ", one-tailed"
    return name


def _p_text(p: float) -> str:
    return "p < 0.0001" if p < 1e-4 else f"p = {p:.2g}" if p < 0.01 else f"p = {p:.3f}"


def _panel_values(raw: ArrayLike, t: GroupTest, which: str, i: int) -> NDArray[np.float64]:
    name = t.group_a if which == "a" else t.group_b
    x = _values(raw, f"panel {i} group {name!r}")
    keep = x[~iqr_outliers(x, k=t.k)]
    n, mean = (t.n_a, t.mean_a) if which == "a" else (t.n_b, t.mean_b)
    n_out = t.n_outliers_a if which == "a" else t.n_outliers_b
    if keep.size != n or x.size != n + n_out or \
            not math.isclose(float(np.mean(keep)), mean, rel_tol=1e-9, abs_tol=1e-12):
        raise StatsError(
            f"panel {i} group {name!r}: {x.size} values keep {keep.size} after the IQR "
            f"rule (k = {t.k:g}), but the GroupTest has n = {n} kept + {n_out} outlier(s), "
            f"mean {mean:.6g}: pass the same raw values that went into compare_groups")
    return keep


def quant_figure_png(path: str | os.PathLike,
                     panels: Sequence[tuple[ArrayLike, ArrayLike, GroupTest]], /, *,
                     title: str = "") -> Path:
    """LD quantification figure (SRASH paper Fig. 2J-M): one strip plot per comparison.

    Each panel shows, for groups ``a`` and ``b`` of a :class:`GroupTest`: every kept
    tubule as a point (horizontal jitter from a fixed seed, so the figure is
    reproducible), a line at the mean with +/- SEM error bars, and a bracket with the
    stars, the p-value and the test's name. The x tick labels give each group's ``n`` and
    the number of excluded outliers; the y label comes from :data:`INDEX_LABELS` (the
    index name itself for other indexes).

    Layout: 1 or 2 panels side by side; 3 or 4 panels on a 2 x 2 grid, row-major (e.g.
    intensity normal vs NOA, area normal vs NOA, intensity SPT vs SPG, area SPT vs SPG).

    Parameters
    ----------
    path : path-like
        Output PNG (parents created, written atomically).
    panels : sequence of (values_a, values_b, GroupTest)
        1 to 4 items. ``values_a`` / ``values_b`` are the *raw* per-tubule values, the same
        that were passed to :func:`compare_groups`; the outliers are dropped here with the
        same rule and the test's ``k``, so the plotted points are exactly those the test
        used (checked: the kept counts, outlier counts and means must match the test).
    title : str, keyword-only
        Figure title.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    StatsError
        No panel or more than 4, a malformed item, values that do not match their test.
    """
    if isinstance(panels, (str, bytes)) or not isinstance(panels, Sequence):
        raise StatsError("panels: expected a sequence of (values_a, values_b, GroupTest)")
    if not 1 <= len(panels) <= 4:
        raise StatsError(f"{len(panels)} panels: expected 1 to 4")
    data = []
    for i, item in enumerate(panels):
        try:
            va, vb, t = item
        except (TypeError, ValueError):
            raise StatsError(f"panel {i}: expected (values_a, values_b, GroupTest)") from None
        if not isinstance(t, GroupTest):
            raise StatsError(f"panel {i}: third item is {type(t).__name__}, expected a "
                             "GroupTest from compare_groups")
        data.append((_panel_values(va, t, "a", i), _panel_values(vb, t, "b", i), t))

    n = len(data)
    rows, cols = (1, n) if n <= 2 else (2, 2)
    fig = new_figure((4.0 * cols, 4.2 * rows))
    if title:
        fig.suptitle(title)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    for ax, (xa, xb, t) in zip(axes, data):
        rng = np.random.default_rng(_JITTER_SEED)
        for pos, x, mean, sem, colour in ((0, xa, t.mean_a, t.sem_a, "tab:blue"),
                                          (1, xb, t.mean_b, t.sem_b, "tab:orange")):
            ax.scatter(pos + rng.uniform(-0.15, 0.15, x.size), x, s=16, color=colour,
                       alpha=0.7, edgecolors="none", zorder=2)
            ax.hlines(mean, pos - 0.25, pos + 0.25, color="k", lw=2, zorder=3)
            ax.errorbar([pos], [mean], yerr=[sem], fmt="none", ecolor="k", elinewidth=1.2,
                        capsize=6, zorder=3)
        lo = float(min(xa.min(), xb.min()))
        hi = float(max(xa.max(), xb.max()))
        span = hi - lo if hi > lo else max(abs(hi), 1.0)
        y = hi + 0.08 * span
        tick = 0.03 * span
        ax.plot([0, 0, 1, 1], [y - tick, y, y, y - tick], color="k", lw=1)
        ax.text(0.5, y + 0.02 * span, f"{t.stars}\n{_p_text(t.p_value)}\n{_test_label(t)}",
                ha="center", va="bottom", fontsize=8)
        ax.set_ylim(lo - 0.08 * span, hi + 0.45 * span)
        ax.set_xlim(-0.6, 1.6)
        labels = []
        for name, k_n, k_out in ((t.group_a, t.n_a, t.n_outliers_a),
                                 (t.group_b, t.n_b, t.n_outliers_b)):
            labels.append(f"{name}\nn = {k_n}" + (f" ({k_out} excl.)" if k_out else ""))
        ax.set_xticks([0, 1], labels)
        ax.set_ylabel(INDEX_LABELS.get(t.index, t.index or "value"))
        ax.set_title(f"{t.group_a} vs {t.group_b}", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    return save_png(fig, path)
