"""Photomultiplier (GaAsP, analog mode) of the SHG channel.

Backend: :class:`simulators.parts.pmt.PMTSim`. Components:

============= ============================================== ====== =====
component     what                                           kind   egu
============= ============================================== ====== =====
voltage       high voltage (sets the gain), 300-900 V        config V
gain          gain at this voltage (read-only)               config
enabled       high voltage on                                config
tripped       overlight protection tripped (status, latches) normal
saturated_px  pixels compressed/clipped in the last frame    normal
reset         write 1 to re-arm after a trip                 omitted
============= ============================================== ====== =====
"""

from __future__ import annotations

from ophyd import Component as Cpt

from simulators.parts.pmt import PMTSim

from ._sim import SimBackedSignal, SimBackedSignalRO, SimDevice

__all__ = ["PMT"]


def _set_enabled(dev: "PMT", value: object) -> None:
    dev.backend.enabled = bool(value)


def _reset(dev: "PMT", value: object) -> None:
    if value:
        dev.backend.reset_trip()


class PMT(SimDevice):
    """SHG photomultiplier; its analog output per pixel is the SHG frame (V)."""

    default_labels = ("sensors",)

    _sim_part = "pmt"

    voltage = Cpt(SimBackedSignal, getter=lambda d: float(d.backend.voltage),
                  setter=lambda d, v: d.backend.set_voltage(float(v)),
                  limits=lambda d: (float(d.backend.config.min_voltage),
                                    float(d.backend.config.max_voltage)),
                  egu="V", kind="config")
    gain = Cpt(SimBackedSignalRO, getter=lambda d: float(d.backend.gain), kind="config")
    enabled = Cpt(SimBackedSignal, getter=lambda d: bool(d.backend.enabled),
                  setter=_set_enabled, kind="config")
    tripped = Cpt(SimBackedSignalRO, getter=lambda d: bool(d.backend.tripped), kind="normal")
    saturated_px = Cpt(SimBackedSignalRO, getter=lambda d: int(d._saturated_px), kind="normal")
    reset = Cpt(SimBackedSignal, getter=lambda d: 0, setter=_reset, kind="omitted")

    def __init__(self, prefix: str = "", *, name: str, **kwargs):
        self._saturated_px = 0
        super().__init__(prefix, name=name, **kwargs)

    def _default_backend(self) -> PMTSim:
        return PMTSim()

    def reset_trip(self) -> None:
        """Re-arm the overlight protection (same as ``reset.put(1)``)."""
        self.reset.put(1)

    def _record_frame(self, faults: dict) -> None:
        """Called by the detector after each frame."""
        self._saturated_px = int(faults.get("pmt_saturated_px", 0) or 0)
        self.saturated_px.get()
        self.tripped.get()
