"""Classical baselines of the SRASH paper (SVM, KNN, decision tree, gradient tree boosting).

The paper compares LBNet-Dx with scikit-learn's SVM, k-nearest neighbours, decision tree
and gradient tree boosting. Here they see the *same* patches as LBNet: [0, 1] composites
``(N, 3, S, S)`` float32 (R = SRS 2930 cm^-1 protein, G = SRS 2850 cm^-1 lipid, B = SHG;
S = 300 px normally), reduced to a fixed-length feature vector by :func:`patch_features`.

Features (``F = C * (grid**2 + 8)``; 324 for 3 channels and ``grid=10``), per channel ``c``
in channel order, concatenated:

1. ``grid**2`` block means: the patch split into ``grid x grid`` blocks (block edges at
   ``(k * S) // grid`` px, so blocks differ by at most 1 px when ``grid`` does not divide
   ``S``; 30 x 30 px blocks for S = 300), the mean of each block, row-major -- a coarse
   image;
2. 8 statistics over all ``S x S`` pixels: mean, standard deviation (population, ``ddof=0``),
   the 10th, 50th, 90th and 99th percentiles (linear interpolation), the fraction of
   pixels ``> 0.5`` and the maximum.

:func:`intensity_features` keeps only the 8 statistics per channel (``F = 8 C``, 24 for 3
channels): the "simple per-patch intensity features" of the paper's comparison, with no
spatial layout; :func:`intensity_columns` says where they sit among
:func:`patch_features`' columns, so both sets come from one pass over the patches.

:func:`feature_names` lists them (``"R:block[3,7]"``, ``"G:p90"``...). Nothing is rotation-
or flip-invariant except the statistics; LBNet's augmentation has no counterpart here.

Models (:data:`BASELINES`), all ``sklearn`` estimators fitted on the features:

* ``"SVM"``: ``StandardScaler -> SVC(kernel="rbf")`` (C = 1, gamma = "scale"), with
  probabilities by Platt scaling from 5-fold cross-validated decision values
  (``CalibratedClassifierCV(method="sigmoid", cv=5, ensemble=False)``, the replacement of
  the deprecated ``SVC(probability=True)``);
* ``"KNN"``: ``StandardScaler -> KNeighborsClassifier(n_neighbors=5)`` (uniform weights;
  probabilities are fractions of the 5 neighbours, so they take 6 values);
* ``"DecisionTree"``: ``DecisionTreeClassifier(min_samples_leaf=5)`` (ours: the default of 1
  gives 0/1 leaves and a degenerate ROC);
* ``"GradientBoosting"``: ``HistGradientBoostingClassifier`` (scikit-learn's histogram
  gradient tree boosting, defaults: 100 iterations, learning rate 0.1, 31 leaves, no early
  stopping below 10 000 samples) -- our stand-in for "gradient tree boosting"; the exact
  ``GradientBoostingClassifier`` (100 depth-3 trees) was much slower on the same
  features (measured: see docs/measured/dx.md).

Every model gets ``random_state=seed`` where it has one; results are deterministic. Fits
and predictions run with one OpenMP thread (``threadpoolctl``): on a 2-core machine shared
with another busy process, HistGradientBoosting's many short parallel regions stalled with
two threads.

Timings and memory of :func:`patch_features` and of each model's fit + predict (measured:
see docs/measured/dx.md).
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ml.common.errors import MLError
from ml.common.metrics import patch_metrics, roc_curve

__all__ = ["BASELINES", "BaselineError", "PERCENTILES", "patch_features", "feature_names",
           "intensity_features", "intensity_columns", "make_baseline", "fit_baselines",
           "fit_baselines_features"]

#: Baseline names, in the order they are fitted and reported.
BASELINES: tuple[str, ...] = ("SVM", "KNN", "DecisionTree", "GradientBoosting")
#: Percentiles of each channel's pixel values among the features.
PERCENTILES: tuple[float, ...] = (10.0, 50.0, 90.0, 99.0)
_STATS = ("mean", "std", *(f"p{q:g}" for q in PERCENTILES), "frac>0.5", "max")
_CHANNELS = ("R", "G", "B")
_CHUNK = 64  # patches per vectorised chunk in patch_features (memory ~ 2 x chunk x patch)


class BaselineError(MLError):
    """Unusable baseline input: shapes, labels, unknown model name, bad grid."""


def _check_grid(grid: Any) -> int:
    if (isinstance(grid, bool) or not isinstance(grid, (int, np.integer)) or grid < 1):
        raise BaselineError(f"grid {grid!r}: expected an integer >= 1")
    return int(grid)


def _check_patches(x: Any, name: str, grid: int) -> NDArray[np.float32]:
    a = np.asarray(x)
    if a.ndim != 4:
        raise BaselineError(f"{name} of shape {a.shape}: expected (N, C, S, S) patches")
    if a.shape[1] < 1 or a.shape[0] < 1:
        raise BaselineError(f"{name} of shape {a.shape}: expected N >= 1 and C >= 1")
    if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
        raise BaselineError(f"{name} has dtype {a.dtype}: expected real numbers")
    if a.shape[2] < grid or a.shape[3] < grid:
        raise BaselineError(f"{name} of shape {a.shape}: patches smaller than the "
                            f"{grid} x {grid} feature grid")
    return a


def _percentiles_sorted(srt: NDArray[np.float32]) -> NDArray[np.float64]:
    """:data:`PERCENTILES` of sorted rows (last axis), numpy's default "linear" method."""
    n = srt.shape[-1]
    pos = np.asarray(PERCENTILES) / 100.0 * (n - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    a, b = srt[..., lo].astype(np.float64), srt[..., hi].astype(np.float64)
    return a + (b - a) * (pos - lo)


def patch_features(patches: ArrayLike, *, grid: int = 10) -> NDArray[np.float32]:
    """Feature vectors of patches (module docstring for the exact definition).

    Parameters
    ----------
    patches : array_like
        ``(N, C, H, W)`` [0, 1] composites (C = 3: protein, lipid, SHG), H, W >= ``grid``.
    grid : int, keyword-only
        Block-mean grid per side (default 10: 100 block means per channel).

    Returns
    -------
    numpy.ndarray
        float32 ``(N, C * (grid**2 + 8))``, features of patch ``i`` in row ``i``.

    Raises
    ------
    BaselineError
        Not 4-D, empty, patches smaller than the grid, non-finite values, bad ``grid``.
    """
    grid = _check_grid(grid)
    a = _check_patches(patches, "patches", grid)
    n, c, h, w = a.shape
    r_edges = (np.arange(grid) * h) // grid
    c_edges = (np.arange(grid) * w) // grid
    area = np.diff(np.r_[r_edges, h])[:, None] * np.diff(np.r_[c_edges, w])[None, :]  # px
    out = np.empty((n, c, grid * grid + len(_STATS)), np.float32)
    for s in range(0, n, _CHUNK):
        x = np.asarray(a[s:s + _CHUNK], dtype=np.float32)
        if not np.isfinite(x).all():
            raise BaselineError("patches contain NaN or inf")
        m = x.shape[0]
        # float32 block sums (float64 accumulation costs 10x)
        blocks = np.add.reduceat(np.add.reduceat(x, r_edges, axis=2), c_edges, axis=3)
        out[s:s + m, :, :grid * grid] = (blocks / area).reshape(m, c, -1)
        srt = np.sort(x.reshape(m, c, h * w), axis=2)  # SIMD sort: faster than partition
        st = out[s:s + m, :, grid * grid:]
        st[..., 0] = srt.mean(axis=2, dtype=np.float64)
        st[..., 1] = srt.std(axis=2, dtype=np.float64)
        st[..., 2:2 + len(PERCENTILES)] = _percentiles_sorted(srt)
        st[..., -2] = np.count_nonzero(srt > 0.5, axis=2) / float(h * w)
        st[..., -1] = srt[..., -1]
    return out.reshape(n, -1)


def feature_names(*, grid: int = 10, channels: Sequence[str] = _CHANNELS) -> list[str]:
    """Names of the columns of :func:`patch_features` (``"R:block[i,j]"``, ``"G:p90"``...)."""
    _check_grid(grid)
    return [f"{ch}:{f}" for ch in channels
            for f in [f"block[{i},{j}]" for i in range(grid) for j in range(grid)]
            + list(_STATS)]


def intensity_columns(*, grid: int = 10, n_channels: int = 3) -> NDArray[np.int64]:
    """Column indices of the whole-patch statistics (8 per channel, channel-major) among
    the columns of :func:`patch_features` with this ``grid`` and ``n_channels`` channels:
    ``patch_features(x, grid=g)[:, intensity_columns(grid=g)] == intensity_features(x)``."""
    grid = _check_grid(grid)
    if isinstance(n_channels, bool) or not isinstance(n_channels, (int, np.integer)) \
            or n_channels < 1:
        raise BaselineError(f"n_channels {n_channels!r}: expected an integer >= 1")
    per = grid * grid + len(_STATS)
    return (np.arange(int(n_channels))[:, None] * per + grid * grid
            + np.arange(len(_STATS))[None, :]).ravel().astype(np.int64)


def intensity_features(patches: ArrayLike) -> NDArray[np.float32]:
    """The 8 whole-patch statistics of each channel (mean, std, p10, p50, p90, p99,
    fraction ``> 0.5``, max; module docstring), no block means.

    Parameters
    ----------
    patches : array_like
        ``(N, C, H, W)`` [0, 1] composites.

    Returns
    -------
    numpy.ndarray
        float32 ``(N, 8 C)``, channel-major; names: ``feature_names(grid=1)`` without the
        ``block[0,0]`` entries. Dimensionless (the composite's [0, 1] units).

    Raises
    ------
    BaselineError
        As :func:`patch_features`.
    """
    f = patch_features(patches, grid=1)
    c = np.asarray(patches).shape[1]
    return np.ascontiguousarray(f[:, intensity_columns(grid=1, n_channels=c)])


def make_baseline(name: str, *, seed: int = 0) -> Any:
    """An unfitted scikit-learn classifier for one of :data:`BASELINES` (module docstring)."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC
    from sklearn.tree import DecisionTreeClassifier

    if name == "SVM":
        return CalibratedClassifierCV(
            make_pipeline(StandardScaler(), SVC(kernel="rbf", random_state=seed)),
            method="sigmoid", cv=5, ensemble=False)
    if name == "KNN":
        return make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=5))
    if name == "DecisionTree":
        return DecisionTreeClassifier(min_samples_leaf=5, random_state=seed)
    if name == "GradientBoosting":
        return HistGradientBoostingClassifier(random_state=seed)
    raise BaselineError(f"unknown baseline {name!r}: choose from {list(BASELINES)}")


def _check_labels(y: Any, n: int, name: str) -> NDArray[np.int64]:
    ya = np.asarray(y)
    if ya.shape != (n,):
        raise BaselineError(f"{name} of shape {ya.shape}: expected ({n},), one label per patch")
    if ya.dtype.kind not in "iub":
        raise BaselineError(f"{name} has dtype {ya.dtype}: expected integer labels 0 / 1")
    if not np.isin(ya, (0, 1)).all():
        raise BaselineError(f"{name} holds {sorted(set(np.unique(ya).tolist()))}: "
                            "expected only 0 (negative) and 1 (positive)")
    return ya.astype(np.int64)


def fit_baselines(x_train: ArrayLike, y_train: ArrayLike, x_test: ArrayLike,
                  y_test: ArrayLike, *, seed: int = 0, names: Sequence[str] = BASELINES,
                  threshold: float = 0.5, grid: int = 10) -> dict[str, dict[str, Any]]:
    """Fit each baseline on training patches and score it on test patches.

    Parameters
    ----------
    x_train, x_test : array_like
        ``(N, C, S, S)`` [0, 1] composites (the patches LBNet sees, not z-scored); the same
        C and S in both.
    y_train, y_test : array_like
        ``(N,)`` labels in {0, 1}; ``y_train`` must hold both classes (``y_test`` may not:
        AUC is then NaN and ``roc`` None).
    seed : int, keyword-only
        ``random_state`` of the models.
    names : sequence of str, keyword-only
        Which of :data:`BASELINES` to fit, in this order.
    threshold : float, keyword-only
        Predict class 1 when its probability is ``>= threshold`` (for the patch metrics).
    grid : int, keyword-only
        Block-mean grid of :func:`patch_features`.

    Returns
    -------
    dict
        ``{name: {"proba": (n_test,) float64 probability of class 1, "metrics":
        ml.common.metrics.patch_metrics(...).as_dict() (accuracy, recall, specificity, precision,
        f1, roc_auc, confusion, threshold, n), "roc": (fpr, tpr, auc) or None,
        "seconds": fit + predict wall time}}``; features are computed once, shared by all
        models, their time is not included.

    Raises
    ------
    BaselineError
        Shape mismatches, labels not 1-D / not 0-1 / one class only in training, fewer
        than 5 training patches of a class (SVM) or in all (KNN), unknown or repeated
        model names, non-finite threshold.
    """
    names = tuple(names)
    unknown = [nm for nm in names if nm not in BASELINES]
    if unknown or not names or len(set(names)) != len(names):
        raise BaselineError(f"names {list(names)!r}: expected distinct names from "
                            f"{list(BASELINES)}")
    if not isinstance(threshold, (int, float, np.number)) or not np.isfinite(threshold):
        raise BaselineError(f"threshold {threshold!r}: expected a finite number")
    grid = _check_grid(grid)
    xt = _check_patches(x_train, "x_train", grid)
    xs = _check_patches(x_test, "x_test", grid)
    if xt.shape[1:] != xs.shape[1:]:
        raise BaselineError(f"x_train patches {xt.shape[1:]} and x_test patches "
                            f"{xs.shape[1:]} differ: expected the same (C, S, S)")
    yt = _check_labels(y_train, xt.shape[0], "y_train")
    ys = _check_labels(y_test, xs.shape[0], "y_test")
    if yt.min() == yt.max():
        raise BaselineError(f"y_train holds only class {int(yt[0])}: training needs both "
                            "0 and 1")
    if np.bincount(yt, minlength=2).min() < 5 and "SVM" in names:
        raise BaselineError("SVM's 5-fold Platt calibration needs at least 5 training "
                            "patches of each class")
    if yt.size < 5 and "KNN" in names:
        raise BaselineError(f"{yt.size} training patches: KNN needs at least 5 (k = 5)")
    return fit_baselines_features(patch_features(xt, grid=grid), yt,
                                  patch_features(xs, grid=grid), ys, seed=seed, names=names,
                                  threshold=threshold)


def fit_baselines_features(f_train: ArrayLike, y_train: ArrayLike, f_test: ArrayLike,
                           y_test: ArrayLike, *, seed: int = 0,
                           names: Sequence[str] = BASELINES, threshold: float = 0.5
                           ) -> dict[str, dict[str, Any]]:
    """:func:`fit_baselines` on precomputed :func:`patch_features` (lets a caller stream
    patches field by field instead of holding them all). Same return value."""
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency

    ft = np.asarray(f_train, np.float32)
    fs = np.asarray(f_test, np.float32)
    if ft.ndim != 2 or fs.ndim != 2 or ft.shape[1] != fs.shape[1]:
        raise BaselineError(f"features of shapes {ft.shape} and {fs.shape}: expected "
                            "(N, F) arrays with the same F")
    yt = _check_labels(y_train, ft.shape[0], "y_train")
    ys = _check_labels(y_test, fs.shape[0], "y_test")
    if yt.min() == yt.max():
        raise BaselineError(f"y_train holds only class {int(yt[0])}: training needs both "
                            "0 and 1")
    both = ys.min() != ys.max()
    out: dict[str, dict[str, Any]] = {}
    for nm in names:
        t0 = time.perf_counter()
        # one OpenMP thread (module docstring: two stall on a shared 2-core machine)
        with threadpool_limits(limits=1, user_api="openmp"):
            model = make_baseline(nm, seed=seed).fit(ft, yt)
            classes = list(model.classes_)
            proba = model.predict_proba(fs)[:, classes.index(1)].astype(np.float64)
        seconds = time.perf_counter() - t0
        metrics = patch_metrics(ys, proba, threshold).as_dict()
        roc = None
        if both:
            fpr, tpr, _ = roc_curve(ys, proba)
            roc = (fpr, tpr, metrics["roc_auc"])
        out[nm] = {"proba": proba, "metrics": metrics, "roc": roc, "seconds": seconds}
    return out
