"""The Raman-shift axis: a pseudo positioner over the pump wavelength.

``mv(raman, 2850)`` tunes the pump to ``pump_nm_for_shift(2850, stokes_nm)`` and the axis
reads back the physical shift ``raman_shift_cm1(pump_nm, stokes_nm)`` (cm^-1) from the
pump's actual wavelength. The Stokes wavelength comes from the Stokes laser's part.

Components: ``shift`` (:class:`~ophyd.PseudoSingle`, readback named like the axis,
``<name>`` hinted, cm^-1; limits from the pump range) and ``pump_nm`` (the real axis, a
:class:`~srash_ophyd.devices.lasers.PumpWavelengthAxis` on the same pump part as the microscope's
``pump.wavelength``; omitted from readings, the pump device records it).
"""

from __future__ import annotations

from typing import Any

from ophyd import Component as Cpt
from ophyd import PseudoPositioner, PseudoSingle
from ophyd.pseudopos import pseudo_position_argument, real_position_argument
from ophyd.utils import LimitError

from simulators.parts.lasers import PumpLaserSim, StokesLaserSim
from simulators.spectra import pump_nm_for_shift, raman_shift_cm1

from ._shared import RealMoveFailures
from ._sim import SimDevice
from .lasers import PumpWavelengthAxis

__all__ = ["RamanShiftAxis"]


class RamanShiftAxis(RealMoveFailures, SimDevice, PseudoPositioner):
    """Raman shift (cm^-1) = 1e7/pump_nm - 1e7/stokes_nm, moved by tuning the pump.

    Parameters
    ----------
    backend : PumpLaserSim, optional
        The pump part (inside a microscope: ``sim.pump``).
    stokes : StokesLaserSim, optional
        The Stokes part (inside a microscope: ``sim.stokes``).
    """

    default_labels = ("motors",)

    _sim_part = "pump"

    shift = Cpt(PseudoSingle, egu="cm^-1", kind="hinted")
    pump_nm = Cpt(PumpWavelengthAxis, kind="omitted")

    def __init__(self, prefix: str = "", *, name: str, stokes: StokesLaserSim | None = None,
                 parent: Any = None, **kwargs: Any):
        sim = getattr(parent, "sim", None)
        self.stokes_backend = stokes if stokes is not None else (
            sim.stokes if sim is not None else StokesLaserSim())
        self._move_status = None
        super().__init__(prefix, name=name, parent=parent, **kwargs)
        self.shift.readback.name = self.name
        self.shift._limits = self._shift_limits()

    def _default_backend(self) -> PumpLaserSim:
        return PumpLaserSim()

    @property
    def stokes_nm(self) -> float:
        return float(self.stokes_backend.wavelength_nm)

    def _shift_limits(self) -> tuple[float, float]:
        lo_nm, hi_nm = self.pump_nm.limits
        a = float(raman_shift_cm1(hi_nm, self.stokes_nm))
        b = float(raman_shift_cm1(lo_nm, self.stokes_nm))
        return (min(a, b), max(a, b))

    @pseudo_position_argument
    def forward(self, pseudo_pos):
        return self.RealPosition(
            pump_nm=float(pump_nm_for_shift(pseudo_pos.shift, self.stokes_nm)))

    @real_position_argument
    def inverse(self, real_pos):
        return self.PseudoPosition(shift=float(raman_shift_cm1(real_pos.pump_nm, self.stokes_nm)))

    # live positions: the pump part may be tuned by another device (pump.wavelength)
    @property
    def real_position(self):
        return self.RealPosition(*(r.position for r in self._real))

    def check_value(self, pseudo_pos) -> None:
        pseudo_pos = self.PseudoPosition(*pseudo_pos)
        low, high = self.shift.limits
        v = float(pseudo_pos.shift)
        if not low <= v <= high:
            raise LimitError(f"{self.name}: Raman shift {v:g} cm^-1 outside {low:.1f}-{high:.1f} "
                             f"cm^-1 (pump 700-990 nm with Stokes {self.stokes_nm:g} nm)")
        for real, pos in zip(self._real, self.forward(pseudo_pos)):
            real.check_value(pos)
            real._validate_move(float(pos))

