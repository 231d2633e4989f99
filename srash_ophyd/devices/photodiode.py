"""Large-area Si photodiode detecting the transmitted pump (stimulated Raman loss).

Backend: :class:`simulators.parts.photodiode.PhotodiodeSim`. Components:

============== ================================== ====== =====
component      what                               kind   egu
============== ================================== ====== =====
responsivity   responsivity at ~800 nm            config A/W
bias           reverse bias (0-30 V)              config V
saturated      DC photocurrent above saturation   normal
               in the last frame (status)
============== ================================== ====== =====
"""

from __future__ import annotations

from ophyd import Component as Cpt

from simulators.errors import check_range
from simulators.parts.photodiode import PhotodiodeSim

from ._sim import SimBackedSignal, SimBackedSignalRO, SimDevice

__all__ = ["Photodiode"]


def _set_bias(dev: "Photodiode", value: float) -> None:
    dev.backend.bias_v = check_range("photodiode bias", value, 0.0, 30.0, "V")


class Photodiode(SimDevice):
    """SRS detector photodiode (its frames are read through the lock-in)."""

    default_labels = ("sensors",)

    _sim_part = "photodiode"

    responsivity = Cpt(SimBackedSignalRO,
                       getter=lambda d: float(d.backend.config.responsivity_a_per_w),
                       egu="A/W", kind="config")
    bias = Cpt(SimBackedSignal, getter=lambda d: float(d.backend.bias_v), setter=_set_bias,
               limits=(0.0, 30.0), egu="V", kind="config")
    saturated = Cpt(SimBackedSignalRO, getter=lambda d: bool(d._saturated), kind="normal")

    def __init__(self, prefix: str = "", *, name: str, **kwargs):
        self._saturated = False
        super().__init__(prefix, name=name, **kwargs)

    def _default_backend(self) -> PhotodiodeSim:
        return PhotodiodeSim()

    def _record_frame(self, faults: dict) -> None:
        """Called by the detector after each frame."""
        self._saturated = bool(faults.get("photodiode_saturated", False))
        self.saturated.get()
