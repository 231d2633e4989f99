"""What an acquisition returns: one raster (:class:`FrameResult`) or one field of several
Raman channels (:class:`FieldResult`), and the fault bookkeeping shared by both."""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np
from numpy.typing import NDArray

from simulators.specimens.base import Composition, Window


@dataclasses.dataclass
class FrameResult:
    """One raster at one pump wavelength: SRS (lock-in output, V) and SHG (PMT, V).

    Arrays are float32 (ny, nx). ``shg`` is None when not recorded. ``faults`` counts
    overloaded/saturated pixels and flags frame-level faults; ``time_s`` is what the real
    instrument would spend (s) by step; ``registration_px`` the raster's registration error
    (dy, dx) in pixels relative to the first raster of its field.
    """

    srs: NDArray[np.float32]
    shg: NDArray[np.float32] | None
    pump_nm: float
    stokes_nm: float
    raman_shift_cm1: float
    pump_mw: float
    stokes_mw: float
    faults: dict[str, Any]
    time_s: dict[str, float]
    window: Window
    truth: Composition
    registration_px: tuple[float, float] = (0.0, 0.0)


@dataclasses.dataclass
class FieldResult:
    """A SRASH field: one SRS frame per Raman channel plus SHG (with the first frame).

    ``raw``: float32 (C, ny, nx), channels ``channel_names`` (SRS..., then SHG);
    ``registration_px``: (dy, dx) pixels of each SRS frame (the SHG shares the first's).
    """

    raw: NDArray[np.float32]
    channel_names: list[str]
    raman_shifts_cm1: list[float]
    nominal_shifts_cm1: list[float]
    pump_nm: list[float]
    stokes_nm: float
    pump_mw: list[float]
    stokes_mw: list[float]
    faults: dict[str, Any]
    time_s: dict[str, float]
    window: Window
    truth: Composition
    settings: dict[str, Any]
    registration_px: list[tuple[float, float]] = dataclasses.field(default_factory=list)

    @property
    def instrument_time_s(self) -> float:
        return float(sum(self.time_s.values()))

    @property
    def pixel_um(self) -> float:
        return self.window.pixel_um


def merge_faults(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Combine per-frame fault dicts: counts add, flags OR."""
    out: dict[str, Any] = {}
    for f in items:
        for k, v in f.items():
            if v is None:
                out.setdefault(k, None)
            elif isinstance(v, bool):
                out[k] = bool(out.get(k, False)) or v
            elif isinstance(v, (int, float)):
                out[k] = (out.get(k) or 0) + v
            else:
                out[k] = v
    return out
