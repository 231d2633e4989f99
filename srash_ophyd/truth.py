"""Simulator ground truth stored in the catalog next to the scan it belongs to.

A simulated scan's per-pixel truth labels (:class:`simulators.specimens.base.Label` codes)
are published as a small run of their own (``compose_run``)::

    start   plan_name="simulator-truth", truth_for=<scan uid>, sample_id, patient_id,
            specimen, legend {label name: code}, window {x_um, y_um, nx, ny, pixel_um}
    truth   one event: labels (ny, nx) uint8
    stop    exit_status "success"

so Dice can be measured against truth, not only against another method, and the label map
is queryable with the scan (``Key("truth_for") == scan_uid``). Written with
:func:`srash_ophyd.live.make_analysis_writer` (arrays as zarr).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np
from numpy.typing import NDArray

from plans.contract import TRUTH_PLAN

from .docruns import publish_event_run

__all__ = ["TRUTH", "publish_truth", "load_truth", "field_truth", "render_field_truth"]

TRUTH = TRUTH_PLAN


def field_truth(sim: Any) -> tuple[NDArray[np.uint8], dict[str, Any]]:
    """Truth labels of the field the simulated scanner rasters now, and its window."""
    win = sim.window()
    comp = sim.specimen.render(win)
    return (np.asarray(comp.labels, np.uint8),
            {"x_um": win.x_um, "y_um": win.y_um, "nx": win.nx, "ny": win.ny,
             "pixel_um": win.pixel_um})


def publish_truth(publish: Callable[[str, dict], Any], scan_start: Mapping[str, Any],
                  labels: NDArray[np.uint8], *, window: Mapping[str, Any]) -> str:
    """Publish the truth run of ``scan_start``'s scan; returns its uid."""
    from simulators.specimens.base import Label

    lab = np.ascontiguousarray(labels, np.uint8)
    if lab.ndim != 2:
        raise ValueError(f"labels of shape {lab.shape}: expected (ny, nx)")
    md = {k: scan_start.get(k) for k in ("sample_id", "patient_id", "specimen", "cohort",
                                         "split", "specimen_seed")}
    return publish_event_run(
        publish, {"plan_name": TRUTH, "truth_for": scan_start["uid"],
                  **{k: v for k, v in md.items() if v is not None},
                  "legend": {m.name.lower(): int(m.value) for m in Label},
                  "window": dict(window)},
        "truth", {"labels": lab},
        {"labels": {"source": "simulator", "dtype": "array", "dtype_numpy": "|u1",
                    "shape": list(lab.shape)}})


def load_truth(client, scan_uid: str) -> tuple[NDArray[np.uint8], dict[str, Any]] | None:
    """``(labels, start metadata)`` of a scan's truth run, or None when it has none (a truth
    run without a stop document, from a killed process, counts as none)."""
    from tiled.queries import Key

    from .runstate import run_state

    found = [r for r in client.search(Key("truth_for") == scan_uid).values()
             if run_state(r).readable]
    if not found:
        return None
    run = found[-1]
    labels = np.asarray(run["truth"]["labels"].read())[0].astype(np.uint8)
    return labels, dict(run.metadata["start"])


def render_field_truth(start: Mapping[str, Any], *, x_um: float, y_um: float, nx: int,
                       ny: int, pixel_um: float
                       ) -> tuple[NDArray[np.uint8], NDArray[np.int32]] | None:
    """Truth ``(labels, instance)`` of one field of a simulated scan, re-rendered.

    The simulated specimens are deterministic functions of world position, so a field's
    truth follows from the scan's start document (``specimen``, ``specimen_seed``,
    ``phenotype``) and the field's recorded centre (stage um, the actual position) and
    pixel grid, without storing it with every mosaic. ``instance`` holds the tubule id per
    pixel (0 outside tubules). None for a scan of real hardware (no ``specimen_seed``).
    """
    from simulators.specimens import make_specimen
    from simulators.specimens.base import Window

    if start.get("specimen_seed") is None or not start.get("specimen"):
        return None
    spec = make_specimen(str(start["specimen"]), int(start["specimen_seed"]),
                         phenotype=start.get("phenotype"))
    comp = spec.render(Window.centered(x_um, y_um, nx * pixel_um, nx,
                                       fov_y_um=ny * pixel_um, pixels_y=ny))
    return np.asarray(comp.labels, np.uint8), np.asarray(comp.instance, np.int32)
