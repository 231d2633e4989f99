"""Simulator ground truth of a field: the specimen's label map under the scanner's window.

The simulated specimens are deterministic functions of world position, so a field's truth
follows from the simulator's state (while scanning) or from a scan's start document and the
field's recorded window (afterwards). Storing and loading truth runs: :mod:`ml.io.truth`.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
from numpy.typing import NDArray

__all__ = ["field_truth", "render_field_truth"]


def field_truth(sim: Any) -> tuple[NDArray[np.uint8], dict[str, Any]]:
    """Truth labels of the field the simulated scanner rasters now, and its window."""
    win = sim.window()
    comp = sim.specimen.render(win)
    return (np.asarray(comp.labels, np.uint8),
            {"x_um": win.x_um, "y_um": win.y_um, "nx": win.nx, "ny": win.ny,
             "pixel_um": win.pixel_um})



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
