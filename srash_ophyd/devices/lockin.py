"""Lock-in amplifier demodulating the photodiode at the EOM frequency.

Backend: :class:`simulators.parts.lockin.LockInSim`. Components:

=================== ============================================= ====== =====
component           what                                          kind   egu
=================== ============================================= ====== =====
time_constant       filter time constant (1e-7-1 s)               config s
filter_order        cascaded RC stages (1-8)                      config
sensitivity         full scale, 1-2-5 sequence 1 uV-1 V           config V
phase               reference phase (-360-360 deg)                config deg
output              X, Y, R or theta                              config
reference_frequency follows the EOM frequency (read-only)         config Hz
overload            last frame had overloaded pixels (status)     normal
overload_px         number of overloaded pixels in the last frame normal
=================== ============================================= ====== =====
"""

from __future__ import annotations

from ophyd import Component as Cpt

from simulators.errors import check_range
from simulators.parts.lockin import SENSITIVITIES_V, LockInSim

from ._sim import SimBackedSignal, SimBackedSignalRO, SimDevice

__all__ = ["LockInAmplifier"]


def _set_phase(dev: "LockInAmplifier", value: float) -> None:
    dev.backend.phase_deg = check_range("lock-in phase", value, -360.0, 360.0, "deg")


class LockInAmplifier(SimDevice):
    """Lock-in amplifier; its analog output, sampled per pixel, is the SRS frame (V)."""

    default_labels = ("amplifiers",)

    _sim_part = "lockin"

    time_constant = Cpt(SimBackedSignal, getter=lambda d: float(d.backend.tau_s),
                        setter=lambda d, v: d.backend.set_time_constant(float(v)),
                        limits=(1e-7, 1.0), egu="s", kind="config")
    filter_order = Cpt(SimBackedSignal, getter=lambda d: int(d.backend.order),
                       setter=lambda d, v: d.backend.set_time_constant(d.backend.tau_s, v),
                       limits=(1, 8), kind="config")
    sensitivity = Cpt(SimBackedSignal, getter=lambda d: float(d.backend.sensitivity_v),
                      setter=lambda d, v: d.backend.set_sensitivity(float(v)),
                      limits=(min(SENSITIVITIES_V), max(SENSITIVITIES_V)), egu="V",
                      kind="config")
    phase = Cpt(SimBackedSignal, getter=lambda d: float(d.backend.phase_deg), setter=_set_phase,
                limits=(-360.0, 360.0), egu="deg", kind="config")
    output = Cpt(SimBackedSignal, getter=lambda d: str(d.backend.output),
                 setter=lambda d, v: d.backend.set_output(str(v)), kind="config")
    reference_frequency = Cpt(SimBackedSignalRO, getter=lambda d: float(d.backend.reference_hz),
                              egu="Hz", kind="config")
    overload = Cpt(SimBackedSignalRO, getter=lambda d: d._overload_px > 0, kind="normal")
    overload_px = Cpt(SimBackedSignalRO, getter=lambda d: int(d._overload_px), kind="normal")

    def __init__(self, prefix: str = "", *, name: str, **kwargs):
        self._overload_px = 0
        super().__init__(prefix, name=name, **kwargs)

    def _default_backend(self) -> LockInSim:
        return LockInSim()

    def _record_frame(self, faults: dict) -> None:
        """Called by the detector after each frame."""
        self._overload_px = int(faults.get("lockin_overload_px", 0) or 0)
        self.overload.get()
        self.overload_px.get()
