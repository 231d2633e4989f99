"""Simulator ground truth stored in the catalog next to the scan it belongs to.

A simulated scan's per-pixel truth labels (:data:`plans.contract.TRUTH_LABELS` codes)
are published as a small run of their own (``compose_run``)::

    start   plan_name="simulator-truth", truth_for=<scan uid>, sample_id, patient_id,
            specimen, legend {label name: code}, window {x_um, y_um, nx, ny, pixel_um}
    truth   one event: labels (ny, nx) uint8
    stop    exit_status "success"

so Dice can be measured against truth, not only against another method, and the label map
is queryable with the scan (``Key("truth_for") == scan_uid``). Written with
:func:`srash_ophyd.catalog.make_analysis_writer` (arrays as zarr).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np
from numpy.typing import NDArray

from ml.common.errors import MLError
from ml.io.publish import publish_event_run
from plans.contract import TRUTH_LABELS, TRUTH_PLAN

__all__ = ["TRUTH", "TruthError", "publish_truth", "load_truth"]


class TruthError(MLError):
    """A truth label map that cannot be stored (not a 2-D array)."""

TRUTH = TRUTH_PLAN


def publish_truth(publish: Callable[[str, dict], Any], scan_start: Mapping[str, Any],
                  labels: NDArray[np.uint8], *, window: Mapping[str, Any]) -> str:
    """Publish the truth run of ``scan_start``'s scan; returns its uid."""
    lab = np.ascontiguousarray(labels, np.uint8)
    if lab.ndim != 2:
        raise TruthError(f"labels of shape {lab.shape}: expected (ny, nx)")
    md = {k: scan_start.get(k) for k in ("sample_id", "patient_id", "specimen", "cohort",
                                         "split", "specimen_seed")}
    return publish_event_run(
        publish, {"plan_name": TRUTH, "truth_for": scan_start["uid"],
                  **{k: v for k, v in md.items() if v is not None},
                  "legend": dict(TRUTH_LABELS),
                  "window": dict(window)},
        "truth", {"labels": lab},
        {"labels": {"source": "simulator", "dtype": "array", "dtype_numpy": "|u1",
                    "shape": list(lab.shape)}})


def load_truth(client, scan_uid: str) -> tuple[NDArray[np.uint8], dict[str, Any]] | None:
    """``(labels, start metadata)`` of a scan's truth run, or None when it has none (a truth
    run without a stop document, from a killed process, counts as none)."""
    from tiled.queries import Key

    from ml.io.runstate import run_state

    found = [r for r in client.search(Key("truth_for") == scan_uid).values()
             if run_state(r).readable]
    if not found:
        return None
    run = found[-1]
    labels = np.asarray(run["truth"]["labels"].read())[0].astype(np.uint8)
    return labels, dict(run.metadata["start"])
