"""The two-band rule: the simplest segmentation a hyperspectral stack must beat.

Two frames of the stack only, the ones nearest 2850 cm^-1 (CH2 symmetric stretch, lipid)
and 2960 cm^-1 (CH3 asymmetric stretch, high in nucleic acid and protein relative to
lipid), each smoothed with a 3 x 3 mean filter:

* lipid droplet: ``I2850 > t_droplet``;
* nucleus: not droplet, ``I2850 > t_cell`` and ``I2960 / I2850 > t_ratio``;
* cytoplasm: the rest with ``I2850 > t_cell``; background below.

The three thresholds (units of the stack, i.e. power-normalised volts, and a ratio) are
fitted by grid search on training stacks only (:func:`fit_two_band`): ``t_droplet`` for
the best mean droplet Dice, then ``(t_cell, t_ratio)`` for the best mean nucleus Dice. The
rule is evaluated as a baseline next to the phasor and the networks so that the difficulty
of the phantom is measured with every evaluation (issue 15).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

from ml.common.dice import dice
from ml.common.errors import MLError
from plans.contract import TRUTH_LABELS

__all__ = ["TwoBandError", "TwoBandRule", "fit_two_band", "two_band_features"]

BACKGROUND: int = TRUTH_LABELS["background"]
CYTOPLASM: int = TRUTH_LABELS["cytoplasm"]
NUCLEUS: int = TRUTH_LABELS["nucleus"]
LIPID_DROPLET: int = TRUTH_LABELS["lipid_droplet"]

#: Bands of the rule (cm^-1) and the farthest a stack's nearest frame may lie from them.
LIPID_CM1, RATIO_CM1, MAX_OFFSET_CM1 = 2850.0, 2960.0, 10.0


class TwoBandError(MLError):
    """Bad input to the two-band rule (stack shape, Raman axis, thresholds)."""


def two_band_features(stack: ArrayLike, raman_cm1: ArrayLike
                      ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``(I2850, I2960 / I2850)`` of a ``(K, H, W)`` stack after 3 x 3 mean smoothing of
    each band (the ratio is 0 where the smoothed 2850 signal is not positive)."""
    x = np.asarray(stack, np.float64)
    r = np.asarray(raman_cm1, np.float64)
    if x.ndim != 3 or r.shape != (x.shape[0],):
        raise TwoBandError(f"stack {x.shape} and Raman axis {r.shape}: expected (K, H, W) "
                           "and (K,)")
    out = []
    for target in (LIPID_CM1, RATIO_CM1):
        k = int(np.argmin(np.abs(r - target)))
        if abs(r[k] - target) > MAX_OFFSET_CM1:
            raise TwoBandError(f"no frame within {MAX_OFFSET_CM1:g} cm^-1 of {target:g} "
                               f"cm^-1 (axis {r.min():g}-{r.max():g}); the rule needs both")
        out.append(ndimage.uniform_filter(x[k], size=3, mode="nearest"))
    a, b = out
    ratio = np.divide(b, a, out=np.zeros_like(a), where=a > 0)
    return a, ratio


@dataclasses.dataclass(frozen=True)
class TwoBandRule:
    """Thresholds of the two-band rule (module docstring): ``t_cell`` and ``t_droplet`` in
    the stack's units (2850 cm^-1 signal), ``t_ratio`` dimensionless."""

    t_cell: float
    t_ratio: float
    t_droplet: float

    def __post_init__(self) -> None:
        if not (np.isfinite([self.t_cell, self.t_ratio, self.t_droplet]).all()
                and self.t_droplet > self.t_cell >= 0 and self.t_ratio > 0):
            raise TwoBandError(f"thresholds {self}: expected finite, 0 <= t_cell < "
                               "t_droplet and t_ratio > 0")

    def labels_from_features(self, a: NDArray, ratio: NDArray) -> NDArray[np.uint8]:
        lab = np.full(a.shape, BACKGROUND, np.uint8)
        cell = a > self.t_cell
        lab[cell] = CYTOPLASM
        lab[cell & (ratio > self.t_ratio)] = NUCLEUS
        lab[a > self.t_droplet] = LIPID_DROPLET
        return lab

    def segment(self, stack: ArrayLike, raman_cm1: ArrayLike) -> NDArray[np.uint8]:
        """Label map (truth-label codes) of one ``(K, H, W)`` stack."""
        return self.labels_from_features(*two_band_features(stack, raman_cm1))


def fit_two_band(stacks: Sequence[ArrayLike], raman_cm1: Sequence[ArrayLike],
                 labels: Sequence[ArrayLike]) -> TwoBandRule:
    """Grid-search the thresholds on training stacks against their label maps (module
    docstring). Grids: ``t_droplet`` and ``t_cell`` log-spaced over the 2850 signal's
    0.5-99.9 percentile range of the training pixels (40 and 30 values), ``t_ratio``
    0.5-4.0 (36 values)."""
    if not stacks or not (len(stacks) == len(raman_cm1) == len(labels)):
        raise TwoBandError("expected at least one stack, with one Raman axis and one label "
                           "map each")
    feats = [two_band_features(s, r) for s, r in zip(stacks, raman_cm1)]
    labs = [np.asarray(lb) for lb in labels]
    for (a, _), lb in zip(feats, labs):
        if lb.shape != a.shape:
            raise TwoBandError(f"label map {lb.shape} does not match the stack {a.shape}")
    allv = np.concatenate([a.ravel() for a, _ in feats])
    lo, hi = np.percentile(allv, [0.5, 99.9])
    lo = max(float(lo), 1e-6)
    hi = max(float(hi), 2 * lo)
    grid_a = np.geomspace(lo, hi, 40)
    best_d, t_d = -1.0, float(grid_a[-1])
    for t in grid_a:
        d = float(np.mean([dice(a > t, lb == LIPID_DROPLET) for (a, _), lb in zip(feats, labs)]))
        if d > best_d:
            best_d, t_d = d, float(t)
    best_n, t_c, t_r = -1.0, float(grid_a[0]), 1.0
    for tc in np.geomspace(lo, hi, 30):
        if tc >= t_d:
            break
        for tr in np.linspace(0.5, 4.0, 36):
            d = float(np.mean([dice((a > tc) & (q > tr) & ~(a > t_d), lb == NUCLEUS)
                               for (a, q), lb in zip(feats, labs)]))
            if d > best_n:
                best_n, t_c, t_r = d, float(tc), float(tr)
    return TwoBandRule(t_cell=t_c, t_ratio=t_r, t_droplet=t_d)
