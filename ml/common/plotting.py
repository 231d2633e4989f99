"""Figures (PNG, matplotlib) shared by the ml applications.

Figures are drawn on a bare :class:`matplotlib.figure.Figure` with the Agg canvas: pyplot
is never imported, so no global backend is selected or changed and nothing opens a
window. Every writer creates the parent folders, writes to a temporary file in the target
folder and ``os.replace``\\ s it onto ``path`` (a reader never sees a half-written file),
and returns ``path`` as a :class:`pathlib.Path`.

* :func:`roc_png` -- ROC curves with their AUC (e.g. LBNet vs the baselines).
* :func:`confusion_png` -- confusion matrix, counts annotated, colour = row fraction.
* :func:`bars_png` -- grouped bars of metrics (baselines vs LBNet, channel ablations).
* :func:`new_figure` / :func:`save_png` -- a bare figure and its atomic PNG write, for the
  applications' own figures.

Bad input raises :class:`ReportError` (a :class:`ValueError`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ml.common.errors import ReportError
from ml.common.fileio import atomic_write

__all__ = ["ReportError", "new_figure", "save_png", "save_rgb_png", "roc_png", "confusion_png",
           "bars_png"]


def new_figure(size: tuple[float, float], *, dpi: int = 120) -> Any:
    """A matplotlib ``Figure`` (inches, constrained layout) on an Agg canvas, without pyplot
    state (safe in threads and callbacks)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Any, path: str | os.PathLike) -> Path:
    """Write ``fig`` as a PNG atomically (the parent folder is created); returns the path."""
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))


def save_rgb_png(path: str | os.PathLike, rgb: Any) -> Path:
    """Write a ``(y, x, 3)`` image (float in [0, 1], or uint8) as an RGB PNG atomically."""
    from PIL import Image

    from ml.common.processing import to_uint8

    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ReportError(f"an RGB image must have shape (y, x, 3), not {arr.shape}")
    arr = arr if arr.dtype == np.uint8 else to_uint8(arr)
    return atomic_write(path, lambda tmp: Image.fromarray(arr).save(tmp, format="PNG"))


def _rate_array(v: Any, what: str) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    if a.ndim != 1 or a.size < 2:
        raise ReportError(f"{what} of shape {a.shape}: expected a 1-D array of >= 2 points")
    if not np.all(np.isfinite(a)) or a.min() < 0 or a.max() > 1:
        raise ReportError(f"{what}: expected finite rates in [0, 1]")
    return a


def roc_png(path: str | os.PathLike, curves: Mapping[str, tuple[ArrayLike, ArrayLike, float]],
            *, title: str = "ROC", points: Mapping[str, tuple[float, float]] | None = None,
            ) -> Path:
    """ROC curves on one axes, with the chance diagonal and each AUC in the legend.

    Parameters
    ----------
    path : path-like
        Output PNG.
    curves : mapping
        ``{name: (fpr, tpr, auc)}``, ``fpr`` / ``tpr`` 1-D rates in [0, 1] of equal length
        (e.g. :func:`ml.common.metrics.roc_curve`), ``auc`` a number (NaN shown as "n/a").
    title : str, keyword-only
    points : mapping, keyword-only
        ``{name: (fpr, tpr)}`` operating points (e.g. at Youden's threshold), drawn as
        markers in the colour of the curve of the same name (if any).

    Raises
    ------
    ReportError
        No curves, mismatched or out-of-range rates, points outside [0, 1].
    """
    if not curves:
        raise ReportError("curves is empty: expected {name: (fpr, tpr, auc)}")
    fig = new_figure((5.0, 4.6))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], ls="--", color="0.6", lw=1, label="chance")
    colours: dict[str, Any] = {}
    for name, item in curves.items():
        try:
            fpr, tpr, auc = item
        except (TypeError, ValueError):
            raise ReportError(f"curve {name!r}: expected (fpr, tpr, auc)") from None
        f = _rate_array(fpr, f"curve {name!r} fpr")
        t = _rate_array(tpr, f"curve {name!r} tpr")
        if f.shape != t.shape:
            raise ReportError(f"curve {name!r}: fpr {f.shape} and tpr {t.shape} differ")
        auc = float(auc) if auc is not None else math.nan
        label = f"{name} (AUC {auc:.3f})" if math.isfinite(auc) else f"{name} (AUC n/a)"
        (line,) = ax.plot(f, t, lw=1.6, label=label)  # straight segments: trapezoidal AUC
        colours[name] = line.get_color()
    for name, pt in (points or {}).items():
        try:
            x, y = (float(v) for v in pt)
        except (TypeError, ValueError):
            raise ReportError(f"point {name!r}: expected (fpr, tpr)") from None
        if not (0 <= x <= 1 and 0 <= y <= 1):
            raise ReportError(f"point {name!r} = ({x}, {y}): expected rates in [0, 1]")
        ax.plot([x], [y], marker="o", ms=7, mec="k", color=colours.get(name, "k"),
                ls="none", label=f"{name} operating point")
    ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), xlabel="False positive rate (1 - specificity)",
           ylabel="True positive rate (sensitivity)", title=title, aspect="equal")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return save_png(fig, path)


def confusion_png(path: str | os.PathLike, matrix: ArrayLike, class_names: Sequence[str], *,
                  title: str = "Confusion matrix") -> Path:
    """Confusion matrix: rows true class, columns predicted; colour = fraction of the row,
    text = count (and row percentage).

    Parameters
    ----------
    matrix : array_like
        ``(K, K)`` non-negative integer counts (e.g. ``PatchMetrics.confusion``).
    class_names : sequence of str
        ``K`` names.

    Raises
    ------
    ReportError
        Not square, negative / non-integer counts, wrong number of class names.
    """
    m = np.asarray(matrix)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] < 1:
        raise ReportError(f"matrix of shape {m.shape}: expected a square (K, K) array")
    if not np.issubdtype(m.dtype, np.number) or not np.all(np.isfinite(m)) or \
            np.any(m < 0) or np.any(m != np.round(m)):
        raise ReportError("matrix: expected non-negative integer counts")
    names = [str(c) for c in class_names]
    if len(names) != m.shape[0]:
        raise ReportError(f"{len(names)} class names for a {m.shape[0]} x {m.shape[0]} matrix")
    m = m.astype(np.int64)
    rows = m.sum(axis=1, keepdims=True)
    frac = np.divide(m, rows, out=np.zeros(m.shape), where=rows > 0)
    k = m.shape[0]
    fig = new_figure((1.4 * k + 2.2, 1.2 * k + 1.6))
    ax = fig.add_subplot()
    im = ax.imshow(frac, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{m[i, j]}\n({100 * frac[i, j]:.1f} %)", ha="center",
                    va="center", fontsize=9, color="white" if frac[i, j] > 0.6 else "black")
    ax.set_xticks(range(k), names)
    ax.set_yticks(range(k), names)
    ax.set(xlabel="Predicted", ylabel="True", title=title)
    fig.colorbar(im, ax=ax, label="fraction of true class", shrink=0.8)
    return save_png(fig, path)


#: longest bar label shown whole (characters); longer ones show their end
_TICK_CHARS = 24


def bars_png(path: str | os.PathLike, values: Mapping[str, float | Mapping[str, float]], *,
             metrics: Sequence[str] | None = None,
             metric_labels: Mapping[str, str] | None = None, title: str = "",
             ylabel: str = "", ylim: tuple[float, float] | None = (0.0, 1.0)) -> Path:
    """Bar chart, one group per name, one bar per metric, each labelled with its value.

    Parameters
    ----------
    values : mapping
        ``{name: value}`` (one bar per name) or ``{name: {metric: value}}`` (grouped), e.g.
        ``{"SVM": {"accuracy": .81, "roc_auc": .88}, "LBNet": {...}}``. NaN values get no
        bar and an "n/a" label.
    metrics : sequence of str, keyword-only
        Which metrics, in which order (grouped form; default: the first entry's keys, in
        order). Every name must have them all.
    metric_labels : mapping, keyword-only
        Display names of metrics (legend), e.g. ``{"roc_auc": "AUC"}``.
    title, ylabel : str, keyword-only
    ylim : (float, float) or None, keyword-only
        y-axis range (None: automatic).

    Raises
    ------
    ReportError
        Empty, mixed flat / grouped values, missing metrics, non-numeric values.
    """
    if not values:
        raise ReportError("values is empty: expected {name: value} or {name: {metric: value}}")
    grouped = [isinstance(v, Mapping) for v in values.values()]
    if any(grouped) and not all(grouped):
        raise ReportError("values mixes numbers and {metric: value} mappings")
    if all(grouped):
        first = next(iter(values.values()))
        mets = list(metrics) if metrics is not None else list(first)
        if not mets:
            raise ReportError("no metrics to show")
        table = {}
        for name, d in values.items():
            missing = [m for m in mets if m not in d]
            if missing:
                raise ReportError(f"{name!r} lacks metric(s) {missing}: every name needs "
                                  f"{mets}")
            table[name] = [d[m] for m in mets]
    else:
        mets = [""]
        table = {name: [v] for name, v in values.items()}
    try:
        data = np.array([[np.nan if v is None else float(v) for v in row]
                         for row in table.values()], dtype=np.float64)
    except (TypeError, ValueError):
        raise ReportError("values must be numbers (or None / NaN for n/a)") from None
    names = list(table)
    labels = [(metric_labels or {}).get(m, m) for m in mets]
    n, k = data.shape
    width = 0.8 / k
    fig = new_figure((max(4.0, 0.35 + n * (0.35 + 0.42 * k)), 4.0))
    ax = fig.add_subplot()
    x = np.arange(n)
    for j in range(k):
        pos = x - 0.4 + width * (j + 0.5)
        col = data[:, j]
        bars = ax.bar(pos, np.nan_to_num(col, nan=0.0), width * 0.92,
                      label=labels[j] or None)
        texts = ["n/a" if not np.isfinite(v) else f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
                 for v in col]
        ax.bar_label(bars, texts, fontsize=7, padding=1, rotation=90 if k > 3 else 0)
    # long names (a weights file's path) would squeeze the axes to nothing: keep the end
    ticks = [nm if len(nm) <= _TICK_CHARS else "\u2026" + nm[-(_TICK_CHARS - 1):]
             for nm in names]
    tilt = (n > 4 and max(len(nm) for nm in ticks) > 5) or max(len(nm) for nm in ticks) > 12
    ax.set_xticks(x, ticks, rotation=30 if tilt else 0, ha="right" if tilt else "center")
    if ylim is not None:
        lo, hi = (float(v) for v in ylim)
        if not lo < hi:
            raise ReportError(f"ylim {ylim!r}: expected (low, high) with low < high")
        ax.set_ylim(lo, hi + 0.08 * (hi - lo))  # room for the value labels
    ax.set(title=title, ylabel=ylabel)
    ax.grid(axis="y", alpha=0.3)
    if k > 1 or labels[0]:
        fig.legend(fontsize=8, ncols=min(k, 4), loc="outside lower center")
    return save_png(fig, path)
