"""Dice overlap for segmentation masks (numpy, for evaluation) and a soft Dice loss (torch).

For binary masks ``A`` (prediction) and ``B`` (truth), ``Dice = 2 |A n B| / (|A| + |B|)``,
which equals the F1 score of the pixel classification (precision/recall of foreground
pixels). When both masks are empty the ratio is 0/0; :func:`dice` then returns ``empty``
(default 1.0: predicting "nothing" where there is nothing is a perfect answer).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ml.common.errors import MLError

__all__ = ["DiceError", "dice", "dice_per_class", "soft_dice_loss"]


class DiceError(MLError):
    """Inputs to a Dice computation of the wrong type, shape or value."""


def _as_bool(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype != np.bool_:
        if a.dtype.kind not in "iuf" or not np.isin(a, (0, 1)).all():
            raise DiceError(f"{name} of dtype {a.dtype}: expected a boolean mask (or 0/1 values)")
        a = a.astype(bool)
    return a


def dice(pred: np.ndarray, truth: np.ndarray, *, empty: float = 1.0) -> float:
    """Dice coefficient of two binary masks of the same shape.

    Parameters
    ----------
    pred, truth : ndarray of bool (or 0/1 integers / floats), same shape, any ndim
        Predicted and reference masks.
    empty : float, keyword-only
        Value returned when both masks are empty (0/0); default 1.0.

    Returns
    -------
    float
        ``2 |pred & truth| / (|pred| + |truth|)`` in [0, 1].
    """
    p = _as_bool(pred, "pred")
    t = _as_bool(truth, "truth")
    if p.shape != t.shape:
        raise DiceError(f"pred of shape {p.shape} and truth of shape {t.shape}: "
                        "expected equal shapes")
    denom = int(p.sum()) + int(t.sum())
    if denom == 0:
        return float(empty)
    return 2.0 * int(np.logical_and(p, t).sum()) / denom


def dice_per_class(pred: np.ndarray, truth: np.ndarray, *,
                   labels: Sequence[int] | None = None, axis: int = 0,
                   empty: float = 1.0) -> np.ndarray:
    """Dice of each class, from label maps or from stacked boolean masks.

    Parameters
    ----------
    pred, truth : ndarray, same shape
        Either integer label maps (0 = background) or boolean masks stacked along ``axis``
        (e.g. ``(C, H, W)`` with ``axis=0``, or ``(N, C, H, W)`` with ``axis=1``; the masks
        may overlap).
    labels : sequence of int, keyword-only
        For label maps: the labels to score (default: every non-zero label present in
        either map, ascending). Must be None for boolean masks.
    axis : int, keyword-only
        Channel axis of stacked boolean masks.
    empty : float, keyword-only
        Dice of a class absent from both (see :func:`dice`).

    Returns
    -------
    ndarray of float64, shape (C,)
        One Dice per label (in ``labels`` order) or per channel.
    """
    p = np.asarray(pred)
    t = np.asarray(truth)
    if p.shape != t.shape:
        raise DiceError(f"pred of shape {p.shape} and truth of shape {t.shape}: "
                        "expected equal shapes")
    if p.dtype == np.bool_ and t.dtype == np.bool_:
        if labels is not None:
            raise DiceError("labels given with boolean masks: labels are only for integer "
                            "label maps")
        if p.ndim == 0 or not -p.ndim <= axis < p.ndim:
            raise DiceError(f"axis {axis!r}: expected an axis of the {p.ndim}-d masks")
        p = np.moveaxis(p, axis, 0)
        t = np.moveaxis(t, axis, 0)
        return np.array([dice(p[c], t[c], empty=empty) for c in range(p.shape[0])])
    if p.dtype.kind not in "iub" or t.dtype.kind not in "iub":
        raise DiceError(f"pred/truth of dtypes {p.dtype}/{t.dtype}: expected two integer "
                        "label maps or two boolean mask stacks")
    if labels is None:
        labels = [int(v) for v in np.union1d(np.unique(p), np.unique(t)) if v != 0]
    return np.array([dice(p == lab, t == lab, empty=empty) for lab in labels],
                    dtype=np.float64)


def soft_dice_loss(logits: torch.Tensor, targets: torch.Tensor,
                   eps: float = 1.0) -> torch.Tensor:
    """Soft Dice loss of independent sigmoid masks, averaged over channels.

    ``p = sigmoid(logits)``; per channel ``c``, sums run over the batch and all pixels:
    ``D_c = (2 sum(p t) + eps) / (sum(p) + sum(t) + eps)``; loss ``= 1 - mean_c D_c``.
    ``eps`` (> 0) smooths the ratio and makes an empty channel predicted empty score 1.

    Parameters
    ----------
    logits : Tensor, shape (N, C, ...)
        Raw per-channel mask logits.
    targets : Tensor, same shape
        0/1 (or soft in [0, 1]) target masks.
    eps : float
        Smoothing, > 0.

    Returns
    -------
    Tensor, scalar
        Loss in [0, 1); differentiable in ``logits``.
    """
    if logits.shape != targets.shape:
        raise DiceError(f"logits of shape {tuple(logits.shape)} and targets of shape "
                        f"{tuple(targets.shape)}: expected equal shapes")
    if logits.ndim < 2:
        raise DiceError(f"logits of shape {tuple(logits.shape)}: expected (N, C, ...)")
    if not eps > 0:
        raise DiceError(f"eps {eps!r}: expected > 0")
    p = torch.sigmoid(logits)
    t = targets.to(p.dtype)
    dims = [0] + list(range(2, p.ndim))
    inter = (p * t).sum(dim=dims)
    denom = p.sum(dim=dims) + t.sum(dim=dims)
    return 1.0 - ((2.0 * inter + eps) / (denom + eps)).mean()
