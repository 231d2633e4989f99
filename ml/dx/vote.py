"""The sample-level Dx vote of LBNet-Dx (numpy only).

Paper: "per-patch weight from the number of valid pixels in each channel; weighted sum of
patch probability vectors, renormalized; a class is reported only above 0.8, else
'unidentifiable'". Here::

    P = sum_i w_i p_i / sum_k sum_i w_i p_ik

with ``p_i`` the (N, K) patch probability vectors (softmax outputs) and ``w_i`` the weights
of :mod:`ml.dx.patches`. The class ``argmax P`` is reported when ``P`` of it is *strictly
greater* than ``threshold`` (default 0.8); otherwise the sample is unidentifiable. The
vote is invariant to the order of the patches and to a common scale of the weights.

The patch-level metrics and Youden's threshold are re-exported from :mod:`ml.common.metrics`.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
from numpy.typing import ArrayLike

from ml.common.errors import MLError
from ml.common.metrics import PatchMetrics, patch_metrics, roc_auc, roc_curve, youden_threshold

__all__ = ["UNIDENTIFIABLE", "DEFAULT_THRESHOLD", "VoteError", "Vote", "dx_vote",
           "PatchMetrics", "patch_metrics", "roc_auc", "roc_curve", "youden_threshold"]

#: Label name reported when no class clears the threshold.
UNIDENTIFIABLE = "unidentifiable"
#: The paper's sample-level reporting threshold.
DEFAULT_THRESHOLD = 0.8


class VoteError(MLError):
    """Unusable vote input (shapes, negative or non-finite values, all weights zero)."""


@dataclasses.dataclass(frozen=True)
class Vote:
    """Result of :func:`dx_vote`.

    Attributes
    ----------
    probabilities : tuple of float
        Renormalised weighted class probabilities, length K, summing to 1.
    label : int or None
        Index of the reported class, or None when unidentifiable.
    label_name : str
        ``class_names[label]`` or ``"unidentifiable"``.
    n_patches : int
        Number of patches that voted (including any with weight 0).
    threshold : float
        The reporting threshold used.
    """

    probabilities: tuple[float, ...]
    label: int | None
    label_name: str
    n_patches: int
    threshold: float

    @property
    def identified(self) -> bool:
        """True when a class was reported."""
        return self.label is not None

    def as_dict(self) -> dict:
        """Plain, JSON-ready dict."""
        return dataclasses.asdict(self)


def dx_vote(probabilities: ArrayLike, weights: ArrayLike, *,
            threshold: float = DEFAULT_THRESHOLD,
            class_names: Sequence[str] | None = None) -> Vote:
    """Weighted vote of patch probability vectors into a sample diagnosis.

    Parameters
    ----------
    probabilities : array_like
        ``(N, K)`` per-patch class probabilities, finite and >= 0 (rows need not sum to
        exactly 1; the weighted sum is renormalised).
    weights : array_like
        ``(N,)`` per-patch weights, finite and >= 0, not all 0.
    threshold : float, keyword-only
        Report a class only when its vote probability is ``> threshold``; in [0, 1).
    class_names : sequence of str, keyword-only
        K names (default ``"class 0"``, ``"class 1"``, ...).

    Returns
    -------
    Vote

    Raises
    ------
    VoteError
        No patches, shape mismatch, negative / NaN / inf values, all weights zero, a
        threshold outside [0, 1), or the wrong number of class names.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise VoteError(f"probabilities of shape {p.shape}: expected (N patches, K >= 2 classes)")
    if p.shape[0] == 0:
        raise VoteError("no patches to vote (a field with no valid patch cannot be classified)")
    if w.shape != (p.shape[0],):
        raise VoteError(f"weights of shape {w.shape}: expected ({p.shape[0]},), one per patch")
    if not (np.isfinite(p).all() and np.isfinite(w).all()):
        raise VoteError("probabilities and weights must be finite (no NaN or inf)")
    if (p < 0).any() or (w < 0).any():
        raise VoteError("probabilities and weights must be >= 0")
    if not 0.0 <= float(threshold) < 1.0:
        raise VoteError(f"threshold {threshold!r}: expected a value in [0, 1)")
    k = p.shape[1]
    names = tuple(class_names) if class_names is not None else tuple(
        f"class {i}" for i in range(k))
    if len(names) != k:
        raise VoteError(f"{len(names)} class names for {k} classes")
    if w.sum() <= 0:
        raise VoteError("all patch weights are zero: no valid pixels to vote with")
    # scale-free: normalise weights first, so huge or tiny weights cannot overflow
    s = (w / w.max()) @ p
    total = s.sum()
    if total <= 0:
        raise VoteError("weighted probabilities sum to zero: every weighted patch is all-zero")
    prob = s / total
    best = int(np.argmax(prob))
    label = best if prob[best] > threshold else None
    return Vote(probabilities=tuple(float(v) for v in prob), label=label,
                label_name=names[best] if label is not None else UNIDENTIFIABLE,
                n_patches=int(p.shape[0]), threshold=float(threshold))
