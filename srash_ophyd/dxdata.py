"""Classifier composites of catalog runs (the offline half of LBNet-Dx's input path).

A mosaic run's fields are rebuilt with :func:`srash_ophyd.export.run_tiles` (raw detector
volts + the frame powers and shifts from the event columns), and turned into the
classifier's [0, 1] composite with :func:`ml.composite.field_composite` and the run's
``start["calibration"]`` record. The live callback (:mod:`srash_ophyd.live`) reads the same
files and calls the same function, so both paths give bit-identical composites.

Fields whose pixel size differs from the classifier's (``target_pixel_um``) are resampled
with linear interpolation (:func:`resample`) so that a 300 px patch always spans the same
tissue area (90 um at the paper's 0.3 um/px).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator

import numpy as np
from numpy.typing import NDArray

from ml.composite import Calibration, field_composite

from .export import ExportError, Tile, run_tiles

__all__ = ["FieldComposite", "run_fields", "tile_composite", "resample", "run_label_md",
           "PIXEL_TOLERANCE"]

#: Relative pixel-size difference below which no resampling is done.
PIXEL_TOLERANCE = 0.01


@dataclasses.dataclass
class FieldComposite:
    """One field of a run: its tile (geometry, raw volts) and the classifier composite."""

    tile: Tile
    composite: NDArray[np.float32]
    pixel_um: float


def resample(image: NDArray[np.float32], pixel_um: float, target_pixel_um: float
             ) -> NDArray[np.float32]:
    """Resample a ``(C, H, W)`` image from ``pixel_um`` to ``target_pixel_um`` (linear)."""
    if abs(pixel_um - target_pixel_um) <= PIXEL_TOLERANCE * target_pixel_um:
        return image
    from scipy import ndimage

    z = pixel_um / target_pixel_um
    out = ndimage.zoom(image, (1, z, z), order=1, mode="nearest", grid_mode=True)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def tile_composite(tile: Tile, calibration: Calibration, *,
                   target_pixel_um: float | None = None) -> NDArray[np.float32]:
    """Composite ``(3, H, W)`` of a tile (``tile.data`` in CHANNELS order 2850, 2930, SHG)."""
    if not (np.isfinite(tile.pump_mw).all() and np.isfinite(tile.stokes_mw).all()):
        raise ExportError(f"field {tile.index}: the run does not record the frame laser "
                          "powers, so it cannot be power-normalised")
    c = field_composite(tile.data[0], tile.data[1], tile.data[2], calibration=calibration,
                        shifts_cm1=tile.shifts_cm1, pump_mw=tile.pump_mw,
                        stokes_mw=tile.stokes_mw)
    if target_pixel_um is not None:
        c = resample(c, tile.pixel_um, target_pixel_um)
    return c


def run_fields(run, *, target_pixel_um: float | None = None
               ) -> Iterator[FieldComposite]:
    """Yield the classifier composite of every complete field of a mosaic run, in
    acquisition order. Raises :class:`ml.composite.CalibrationError` when the run has no
    calibration record, :class:`ExportError` when it has no image stream."""
    cal = Calibration.from_dict(run.metadata["start"].get("calibration"))
    tiles, _ = run_tiles(run)
    for t in tiles:
        yield FieldComposite(tile=t, composite=tile_composite(t, cal,
                                                              target_pixel_um=target_pixel_um),
                             pixel_um=target_pixel_um or t.pixel_um)


def run_label_md(start: dict[str, Any]) -> dict[str, Any]:
    """The identifying metadata of a run's start document (what reports and analysis runs
    carry along)."""
    return {k: start.get(k) for k in ("uid", "sample_id", "patient_id", "phenotype",
                                      "diagnosis", "seed", "cohort", "split")}
