"""LBNet-Dx report figures: the Monte-Carlo study of the sample vote.

* :func:`montecarlo_png` -- :func:`ml.dx.montecarlo.accuracy_curve` results.

ROC curves, confusion matrices and bar charts are generic: :mod:`ml.common.plotting`. Bad
input raises :class:`~ml.common.errors.ReportError`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ml.common.errors import ReportError
from ml.common.plotting import new_figure, save_png

__all__ = ["montecarlo_png"]


def _mc_rows(results: Sequence[Any]) -> np.ndarray:
    keys = ("patch_accuracy", "accuracy", "unidentifiable", "wrong")
    rows = []
    for r in results:
        d = r.as_dict() if hasattr(r, "as_dict") else r
        if not isinstance(d, Mapping) or any(k not in d for k in keys):
            raise ReportError(f"Monte-Carlo result {r!r}: expected ml.dx.montecarlo."
                              f"MonteCarloResult or a mapping with {list(keys)}")
        rows.append([float(d[k]) for k in keys])
    a = np.asarray(rows, dtype=np.float64).reshape(-1, len(keys))
    if a.shape[0] < 1:
        raise ReportError("results is empty: expected ml.dx.montecarlo.accuracy_curve output")
    if not np.all(np.isfinite(a)) or a.min() < 0 or a.max() > 1:
        raise ReportError("Monte-Carlo rates must be finite and in [0, 1]")
    return a[np.argsort(a[:, 0], kind="stable")]


def montecarlo_png(path: str | os.PathLike, results: Sequence[Any], *,
                   title: str = "Sample-level vs patch-level accuracy",
                   observed: float | None = None) -> Path:
    """Sample-level outcome rates of the Dx vote against patch-level accuracy.

    Parameters
    ----------
    results : sequence
        :func:`ml.dx.montecarlo.accuracy_curve` output (``MonteCarloResult``\\ s, or their
        ``as_dict()`` mappings, e.g. read back from JSON), any order.
    observed : float, keyword-only
        A measured patch-level accuracy in [0, 1], marked with a vertical line and the
        interpolated sample-level accuracy.

    Raises
    ------
    ReportError
        Empty or malformed results, rates outside [0, 1].
    """
    a = _mc_rows(results)
    p = a[:, 0]
    fig = new_figure((5.4, 4.0))
    ax = fig.add_subplot()
    ax.plot(p, a[:, 1], "o-", ms=3, label="sample correct")
    ax.plot(p, a[:, 2], "s-", ms=3, label="unidentifiable")
    ax.plot(p, a[:, 3], "^-", ms=3, label="sample wrong")
    ax.plot([0, 1], [0, 1], ls=":", color="0.6", lw=1, label="sample = patch accuracy")
    if observed is not None:
        o = float(observed)
        if not 0 <= o <= 1:
            raise ReportError(f"observed {observed!r}: expected a patch accuracy in [0, 1]")
        ax.axvline(o, color="k", lw=1, ls="--")
        if p.size > 1 and p[0] <= o <= p[-1]:
            s = float(np.interp(o, p, a[:, 1]))
            ax.plot([o], [s], "k*", ms=10,
                    label=f"observed {o:.3f} -> sample {s:.3f}")
        else:
            ax.plot([], [], "k--", lw=1, label=f"observed {o:.3f}")
    ax.set(xlim=(min(0.5, p.min()) - 0.01, 1.01), ylim=(-0.02, 1.02),
           xlabel="Patch-level accuracy", ylabel="Fraction of samples", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return save_png(fig, path)
