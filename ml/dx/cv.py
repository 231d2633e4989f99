"""Cross-validation splits by group (sample / patient), never by patch.

The SRASH paper chose its hyperparameters by 9-fold cross-validation "over images", folds
split by sample: every patch of one sample (patient) lands in the same fold, so a test fold
never contains patches of a sample the model was trained on. :func:`group_kfold` builds
such folds; :func:`train_val_split_by_group` carves a validation set (for early stopping)
out of a training set the same way.

``groups`` is any 1-D array of hashable, sortable labels (ints or strings), one per patch.
The folds are scikit-learn's :class:`sklearn.model_selection.StratifiedGroupKFold`: whole
groups are dealt to folds so that each fold's share of every class (``y``, the patient's
label on each of its patches) stays as even as the groups allow, ties going to the fold
with the fewest patches; without ``y`` every patch counts as one class, so the folds are
balanced by patch count. With ``rng`` given, groups of equal class spread are taken in a
shuffled order, so different seeds give different folds; the same seed always gives the
same folds.
"""

from __future__ import annotations

import warnings
from typing import Union

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.model_selection import StratifiedGroupKFold

from ml.common.errors import MLError

__all__ = ["CVError", "group_kfold", "split_patients", "train_val_split_by_group"]

RngLike = Union[None, int, np.random.Generator]


class CVError(MLError):
    """Impossible split: too few groups, bad fraction or fold count, malformed groups."""


def _groups(groups: ArrayLike) -> tuple[NDArray, NDArray[np.int64], NDArray[np.int64]]:
    g = np.asarray(groups)
    if g.ndim != 1:
        raise CVError(f"groups of shape {g.shape}: expected a 1-D array, one label per patch")
    if g.size == 0:
        raise CVError("groups is empty: expected one group label per patch")
    if g.dtype.kind == "f" and not np.all(np.isfinite(g)):
        raise CVError("groups contain NaN/inf: expected finite labels")
    uniq, inverse, counts = np.unique(g, return_inverse=True, return_counts=True)
    return uniq, inverse.astype(np.int64).reshape(-1), counts.astype(np.int64)


def _rng(rng: RngLike) -> np.random.Generator | None:
    if rng is None or isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise CVError(f"rng {rng!r}: expected None, an int seed or a numpy Generator")


def _seed(rng: RngLike) -> int | None:
    """The int ``random_state`` scikit-learn takes (None: no shuffling)."""
    if rng is None:
        return None
    if isinstance(rng, np.random.Generator):
        return int(rng.integers(0, 2**32))
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool) \
            and 0 <= int(rng) < 2**32:
        return int(rng)
    raise CVError(f"rng {rng!r}: expected None, an int seed in [0, 2**32) or a numpy "
                  "Generator")


def group_kfold(groups: ArrayLike, n_splits: int = 9, *, y: ArrayLike | None = None,
                rng: RngLike = None) -> list[tuple[NDArray[np.int64], NDArray[np.int64]]]:
    """K folds split by group: each group lies entirely in exactly one test fold.

    Parameters
    ----------
    groups : array_like
        ``(n,)`` group label (sample / patient id) of each patch.
    n_splits : int
        Number of folds (default 9, the paper's); 2 <= n_splits <= number of groups.
    y : array_like, keyword-only
        ``(n,)`` class label of each patch (the patient's label); folds are stratified by
        it. None (default): one class, folds balanced by patch count only.
    rng : None, int or numpy.random.Generator, keyword-only
        Shuffles the order of groups of equal class spread before dealing; ``None`` keeps
        label order. Deterministic for a given seed.

    Returns
    -------
    list of (train_idx, test_idx)
        ``n_splits`` pairs of sorted int64 patch indices; test folds are disjoint, cover all
        ``n`` patches, and ``train_idx`` is the complement.

    Raises
    ------
    CVError
        ``n_splits`` < 2 or larger than the number of distinct groups; ``n_splits`` larger
        than the patch count of every class; ``y`` not one label per patch; malformed
        groups; a fold left without any group.
    """
    if isinstance(n_splits, bool) or not isinstance(n_splits, (int, np.integer)):
        raise CVError(f"n_splits {n_splits!r}: expected an integer >= 2")
    k = int(n_splits)
    if k < 2:
        raise CVError(f"n_splits {k}: expected >= 2")
    uniq, inverse, _ = _groups(groups)
    if k > uniq.size:
        raise CVError(f"n_splits {k} exceeds the number of groups ({uniq.size}): every fold "
                      f"needs at least one whole group; use n_splits <= {uniq.size}")
    n = inverse.size
    if y is None:
        labels = np.zeros(n, np.int64)
    else:
        labels = np.asarray(y)
        if labels.shape != (n,):
            raise CVError(f"y of shape {labels.shape} for {n} patches: expected one class "
                          "label per patch")
        _, counts = np.unique(labels, return_counts=True)
        if (counts < k).all():
            raise CVError(f"n_splits {k} exceeds the patch count of every class "
                          f"({', '.join(str(int(c)) for c in counts)}): use fewer folds")
    seed = _seed(rng)
    cv = StratifiedGroupKFold(n_splits=k, shuffle=seed is not None, random_state=seed)
    with warnings.catch_warnings():
        # a class with fewer patches than folds cannot be in every fold; that is expected
        # for small classes and the folds stay valid
        warnings.filterwarnings("ignore", message="The least populated class in y",
                                category=UserWarning)
        splits = list(cv.split(np.zeros((n, 1)), labels, inverse))
    out = []
    for train, test in splits:
        if test.size == 0:
            raise CVError(f"{k} folds over {uniq.size} groups: the class-balanced dealing "
                          "left a fold empty (it can when n_splits is close to the number of "
                          "groups); use fewer folds or another rng seed")
        out.append((np.sort(train).astype(np.int64), np.sort(test).astype(np.int64)))
    return out


def train_val_split_by_group(groups: ArrayLike, val_fraction: float = 0.2,
                             rng: RngLike = None) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Split patches into train / validation by whole groups.

    Groups are taken in a random order (``rng``; label order if ``None``) into the
    validation set until it holds at least ``val_fraction`` of the patches; at least one
    group goes to each side.

    Parameters
    ----------
    groups : array_like
        ``(n,)`` group label of each patch; at least 2 distinct groups.
    val_fraction : float
        Target fraction of patches for validation, in (0, 1).
    rng : None, int or numpy.random.Generator
        Group order; deterministic for a given seed.

    Returns
    -------
    train_idx, val_idx : numpy.ndarray
        Sorted, disjoint int64 patch indices covering all patches; no group on both sides.

    Raises
    ------
    CVError
        Fewer than 2 groups, ``val_fraction`` outside (0, 1), malformed groups.
    """
    try:
        frac = float(val_fraction)
    except (TypeError, ValueError):
        raise CVError(f"val_fraction {val_fraction!r}: expected a number in (0, 1)") from None
    if not 0.0 < frac < 1.0:
        raise CVError(f"val_fraction {val_fraction!r}: expected a number in (0, 1)")
    uniq, inverse, counts = _groups(groups)
    if uniq.size < 2:
        raise CVError(f"{uniq.size} group: a split by group needs at least 2 distinct groups")
    gen = _rng(rng)
    order = gen.permutation(uniq.size) if gen is not None else np.arange(uniq.size)
    target = frac * inverse.size
    is_val = np.zeros(uniq.size, bool)
    taken = 0
    for gi in order[:-1]:  # the last group always stays in training
        is_val[gi] = True
        taken += int(counts[gi])
        if taken >= target:
            break
    val_mask = is_val[inverse]
    return (np.flatnonzero(~val_mask).astype(np.int64),
            np.flatnonzero(val_mask).astype(np.int64))


def split_patients(groups: np.ndarray, y: np.ndarray, val_fraction: float, *, seed: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) patch masks: per class, ``round(val_fraction * n_patients)``
    patients (at least 1, and at least 1 left for training) go to validation, chosen with
    ``seed``. A patient is never on both sides; every class is on both sides."""
    rng = np.random.default_rng(seed)
    val = np.zeros(len(y), bool)
    for k in np.unique(y):
        pats = sorted(set(groups[y == k].tolist()))
        if len(pats) < 2:
            raise CVError(f"class {k} has {len(pats)} patient(s): need >= 2 to hold one "
                             "back for validation")
        n_val = min(max(1, int(round(val_fraction * len(pats)))), len(pats) - 1)
        chosen = set(rng.choice(np.array(pats, dtype=object), size=n_val, replace=False))
        val |= np.isin(groups, list(chosen))
    return ~val, val
