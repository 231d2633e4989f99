"""Galvo-galvo raster scanner.

Backend: :class:`simulators.parts.scanner.GalvoScannerSim`. Components (all config):

================ ====================================== =====
component        what                                   egu
================ ====================================== =====
pixels           pixels per side (square frame), 8-4096
fov              field of view                          um
zoom             max FOV / FOV (writing it sets fov)
dwell            pixel dwell                            s
averages         frame averages, 1-64
bidirectional    bidirectional line scan
pixel_size       fov / pixels (read-only)               um
frame_time       one pass incl. flyback (read-only)     s
acquisition_time all averages of one frame (read-only)  s
================ ====================================== =====

Changing ``pixels`` changes the detector's frame shape: do it between runs (or with
``bps.configure`` on the microscope, which emits a new descriptor), not with ``mv`` inside a
run.
"""

from __future__ import annotations

from ophyd import Component as Cpt

from simulators.parts.scanner import GalvoScannerSim

from ._sim import SimBackedSignal, SimBackedSignalRO, SimDevice

__all__ = ["GalvoScanner"]


def _set_bidirectional(dev: "GalvoScanner", value: object) -> None:
    dev.backend.bidirectional = bool(value)


class GalvoScanner(SimDevice):
    """Raster geometry and timing of the SRASH frames."""

    default_labels = ("scanners",)

    _sim_part = "scanner"

    pixels = Cpt(SimBackedSignal, getter=lambda d: int(d.backend.pixels),
                 setter=lambda d, v: d.backend.set_pixels(v),
                 limits=lambda d: (8, int(d.backend.config.max_pixels)), kind="config")
    fov = Cpt(SimBackedSignal, getter=lambda d: float(d.backend.fov_um),
              setter=lambda d, v: d.backend.set_fov(float(v)),
              limits=lambda d: (1.0, float(d.backend.config.max_fov_um)), egu="um",
              kind="config")
    zoom = Cpt(SimBackedSignal, getter=lambda d: float(d.backend.zoom),
               setter=lambda d, v: d.backend.set_zoom(float(v)),
               limits=lambda d: (1.0, float(d.backend.config.max_fov_um)), kind="config")
    dwell = Cpt(SimBackedSignal, getter=lambda d: float(d.backend.dwell_s),
                setter=lambda d, v: d.backend.set_dwell(float(v)),
                limits=lambda d: (float(d.backend.config.min_dwell_s),
                                  float(d.backend.config.max_dwell_s)),
                egu="s", kind="config")
    averages = Cpt(SimBackedSignal, getter=lambda d: int(d.backend.averages),
                   setter=lambda d, v: d.backend.set_averages(v),
                   limits=lambda d: (1, int(d.backend.config.max_averages)), kind="config")
    bidirectional = Cpt(SimBackedSignal, getter=lambda d: bool(d.backend.bidirectional),
                        setter=_set_bidirectional, kind="config")
    pixel_size = Cpt(SimBackedSignalRO, getter=lambda d: float(d.backend.pixel_um), egu="um",
                     kind="config")
    frame_time = Cpt(SimBackedSignalRO, getter=lambda d: float(d.backend.frame_time_s), egu="s",
                     kind="config")
    acquisition_time = Cpt(SimBackedSignalRO,
                           getter=lambda d: float(d.backend.acquisition_time_s), egu="s",
                           kind="config")

    def _default_backend(self) -> GalvoScannerSim:
        return GalvoScannerSim()
