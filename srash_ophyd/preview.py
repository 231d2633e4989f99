"""PNG previews people look at: SRASH composites and hyperspectral-stack summaries."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ml.common.plotting import save_rgb_png as save_png
from ml.io.processed import ProcessedField
from simulators.instrument import FieldResult


def _autoscale(img: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(img, [1.0, 99.7])
    return np.clip((img - lo) / max(hi - lo, 1e-12), 0, 1)


def field_rgb(proc: ProcessedField) -> np.ndarray:
    """(y, x, 3) float image: the paper's composite when available, else the first three
    channels autoscaled (R, G, B in channel order)."""
    if proc.composite is not None:
        return proc.composite
    chans = [_autoscale(c) for c in proc.data[:3]]
    while len(chans) < 3:
        chans.append(np.zeros_like(chans[0]))
    if proc.data.shape[0] == 1:
        chans = [chans[0]] * 3
    return np.stack(chans, axis=-1)


def save_field_png(path: str | Path, proc: ProcessedField) -> Path:
    """Composite preview of a field (R = 2930 protein, G = 2850 lipid, B = SHG)."""
    return save_png(path, field_rgb(proc))


def save_stack_png(path: str | Path, proc: ProcessedField, field: FieldResult) -> Path:
    """Two panels: the band-summed image and the mean spectrum of each truth class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from simulators.specimens.base import Label

    n = len(field.raman_shifts_cm1)
    stack = proc.data[:n]
    fig, (a0, a1) = plt.subplots(1, 2, figsize=(11, 4.8), dpi=100)
    x0, x1, y0, y1 = field.window.extent_um
    a0.imshow(_autoscale(stack.sum(axis=0)), cmap="gray", extent=(x0, x1, y1, y0))
    a0.set_xlabel("x (um)")
    a0.set_ylabel("y (um)")
    a0.set_title(f"sum of {n} bands")
    labels = field.truth.labels
    for lab in Label:
        m = labels == lab
        if m.sum() < 20:
            continue
        a1.plot(field.raman_shifts_cm1, stack[:, m].mean(axis=1), label=lab.name.lower())
    a1.set_xlabel("Raman shift (cm$^{-1}$)")
    a1.set_ylabel("SRS (V at reference power)")
    a1.set_title("mean spectrum per truth class")
    a1.legend(fontsize=8)
    fig.tight_layout()
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p)
    plt.close(fig)
    return p
