"""Monte-Carlo study: sample-level accuracy of the Dx vote versus patch-level accuracy.

The paper ran 1e6 simulated samples to show how the weighted vote with a 0.8 reporting
threshold turns a patch-level accuracy ``p`` into a sample-level accuracy. The model here
(binary task, numpy only, every draw from the ``numpy.random.Generator`` passed in):

1. Each sample has ``n`` valid patches, ``n`` uniform on the integers
   ``[n_min, n_max]`` (default 30-90, the paper's range of valid patches per field).
2. Each patch is *correct* (its argmax is the true class) independently with probability
   ``p``.
3. Its confidence -- the probability of the class it picks -- is
   ``c = 0.5 + 0.5 B`` with ``B ~ Beta(a, b)`` (default ``a = 4, b = 1``: mean confidence
   0.9, a confident but not saturated classifier), the same distribution for correct and
   wrong patches. So the true-class probability is ``c`` for a correct patch and ``1 - c``
   for a wrong one.
4. Each patch has a vote weight uniform in ``[w_min, w_max]`` (default 0.2-1.0; weights
   from :mod:`ml.dx.patches` lie in (0, 1]).
5. The vote is the weighted mean of the true-class probabilities ``P`` (binary, so the
   other class gets ``1 - P``): *correct* when ``P > threshold``, *wrong* when
   ``1 - P > threshold``, else *unidentifiable* (threshold 0.8).

Samples are simulated in chunks of fixed memory (``chunk`` samples x ``n_max`` patches,
float32 draws), so 1e6 samples take a few seconds and any ``n_trials`` fits in memory.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
from numpy.typing import ArrayLike

from ml.common.errors import MLError

__all__ = ["MonteCarloError", "MonteCarloResult", "simulate_votes", "accuracy_curve"]


class MonteCarloError(MLError):
    """Invalid Monte-Carlo settings."""


@dataclasses.dataclass(frozen=True)
class MonteCarloResult:
    """Sample-level outcome rates at one patch-level accuracy.

    ``accuracy + unidentifiable + wrong == 1``; rates are fractions of ``n_trials``.
    """

    patch_accuracy: float
    accuracy: float
    unidentifiable: float
    wrong: float
    n_trials: int

    def as_dict(self) -> dict:
        """Plain, JSON-ready dict."""
        return dataclasses.asdict(self)


def _beta(rng: np.random.Generator, a: float, b: float, shape: tuple[int, int]) -> np.ndarray:
    # fast exact inverse-CDF paths for the common one-sided shapes
    if b == 1.0:
        return rng.random(shape, dtype=np.float32) ** np.float32(1.0 / a)
    if a == 1.0:
        return 1.0 - rng.random(shape, dtype=np.float32) ** np.float32(1.0 / b)
    return rng.beta(a, b, size=shape).astype(np.float32)


def simulate_votes(patch_accuracy: float, *, n_trials: int, rng: np.random.Generator,
                   n_patches: tuple[int, int] = (30, 90),
                   confidence: tuple[float, float] = (4.0, 1.0),
                   weight_range: tuple[float, float] = (0.2, 1.0), threshold: float = 0.8,
                   chunk: int = 20_000) -> MonteCarloResult:
    """Simulate ``n_trials`` samples and vote each (module docstring for the model).

    Parameters
    ----------
    patch_accuracy : float
        Probability ``p`` in [0, 1] that a patch's argmax is the true class.
    n_trials : int, keyword-only
        Number of simulated samples (the paper: 1e6).
    rng : numpy.random.Generator, keyword-only
        The only source of randomness.
    n_patches : (int, int), keyword-only
        Inclusive range of valid patches per sample.
    confidence : (float, float), keyword-only
        Beta ``(a, b)`` of ``B`` in ``c = 0.5 + 0.5 B``.
    weight_range : (float, float), keyword-only
        Patch weights are uniform in this range, ``0 < w_min <= w_max``.
    threshold : float, keyword-only
        Reporting threshold of the vote, in [0.5, 1).
    chunk : int, keyword-only
        Samples per vectorised chunk (memory ~ ``16 * chunk * n_max`` bytes).

    Returns
    -------
    MonteCarloResult
    """
    p = float(patch_accuracy)
    if not 0.0 <= p <= 1.0:
        raise MonteCarloError(f"patch_accuracy {patch_accuracy!r}: expected a value in [0, 1]")
    if int(n_trials) != n_trials or n_trials < 1:
        raise MonteCarloError(f"n_trials {n_trials!r}: expected an integer >= 1")
    lo, hi = (int(v) for v in n_patches)
    if not 1 <= lo <= hi:
        raise MonteCarloError(f"n_patches {n_patches!r}: expected 1 <= min <= max")
    a, b = (float(v) for v in confidence)
    if not (a > 0 and b > 0 and np.isfinite(a) and np.isfinite(b)):
        raise MonteCarloError(f"confidence {confidence!r}: Beta parameters must be > 0")
    w0, w1 = (float(v) for v in weight_range)
    if not 0.0 < w0 <= w1 < np.inf:
        raise MonteCarloError(f"weight_range {weight_range!r}: expected 0 < min <= max")
    if not 0.5 <= float(threshold) < 1.0:
        raise MonteCarloError(f"threshold {threshold!r}: expected a value in [0.5, 1)")
    if int(chunk) < 1:
        raise MonteCarloError(f"chunk {chunk!r}: expected >= 1")
    n_trials, chunk = int(n_trials), int(chunk)
    cols = np.arange(hi)
    correct = wrong = 0
    done = 0
    while done < n_trials:
        m = min(chunk, n_trials - done)
        n = rng.integers(lo, hi + 1, size=m)
        present = cols[None, :] < n[:, None]                            # (m, hi)
        ok = rng.random((m, hi), dtype=np.float32) < np.float32(p)
        conf = np.float32(0.5) + np.float32(0.5) * _beta(rng, a, b, (m, hi))
        q = np.where(ok, conf, np.float32(1.0) - conf)                  # true-class prob
        w = np.float32(w0) + np.float32(w1 - w0) * rng.random((m, hi), dtype=np.float32)
        w *= present
        vote = (w * q).sum(axis=1, dtype=np.float64) / w.sum(axis=1, dtype=np.float64)
        correct += int(np.count_nonzero(vote > threshold))
        wrong += int(np.count_nonzero(1.0 - vote > threshold))
        done += m
    return MonteCarloResult(patch_accuracy=p, accuracy=correct / n_trials,
                            unidentifiable=(n_trials - correct - wrong) / n_trials,
                            wrong=wrong / n_trials, n_trials=n_trials)


def accuracy_curve(patch_accuracies: ArrayLike | Sequence[float], *, n_trials: int,
                   rng: np.random.Generator, **options) -> list[MonteCarloResult]:
    """:func:`simulate_votes` at each patch-level accuracy (same generator, in order).

    ``options`` are the keyword-only options of :func:`simulate_votes`.
    """
    ps = np.atleast_1d(np.asarray(patch_accuracies, dtype=np.float64))
    if ps.ndim != 1:
        raise MonteCarloError("patch_accuracies must be a 1-D sequence")
    return [simulate_votes(float(v), n_trials=n_trials, rng=rng, **options) for v in ps]
