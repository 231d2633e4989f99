"""Pump (tunable ps OPO) and Stokes (1031 nm) lasers.

Backend: :class:`simulators.parts.lasers.PumpLaserSim` / ``StokesLaserSim``.

Components of :class:`PumpLaser` (data keys are ``<name>_<component>``):

=============== ============================== ========= ===== ==============================
component       what                           kind      egu   EPICS suffix (EpicsPumpLaser)
=============== ============================== ========= ===== ==============================
wavelength      tuning axis (readback named    normal    nm    ``Wavelength-RB`` /
                like the axis, ``setpoint``)                   ``Wavelength-SP``
power           power setpoint at the sample   config    mW    ``Power-SP``
shutter         shutter open (True/False)      config          ``Shutter``
mode_locked     mode-lock status (fault hook)  normal          ``ModeLocked-RB``
pulse_ps        pulse duration                 config    ps    ``PulseWidth-RB``
rep_rate_mhz    repetition rate                config    MHz   ``RepRate-RB``
=============== ============================== ========= ===== ==============================

Tuning takes ``tune_settle_s + |d lambda| / rate`` of instrument time (scaled by
``time_scale``). A wavelength outside 700-990 nm raises :class:`~ophyd.utils.LimitError`
before anything moves; a power above what the OPO delivers there, too. A total power (pump +
Stokes) above the safety limit is refused with
:class:`~srash_ophyd.devices._sim.LaserSafetyError` when the laser is part of a microscope
(its ``check_power_safety`` is the interlock).

:class:`StokesLaser`: ``wavelength`` (read-only, config), ``power``, ``shutter``.
"""

from __future__ import annotations

from typing import Any

from ophyd import Component as Cpt
from ophyd.utils import LimitError

from simulators.parts.lasers import PumpLaserSim, StokesLaserSim

from ._sim import SimAxis, SimBackedSignal, SimBackedSignalRO, SimDevice

__all__ = ["EpicsPumpLaser", "EpicsPumpWavelength", "PumpLaser", "PumpWavelengthAxis",
           "StokesLaser"]


class PumpWavelengthAxis(SimAxis):
    """The pump's tuning axis (nm) on a :class:`PumpLaserSim` backend."""

    _sim_part = "pump"
    _default_egu = "nm"

    def _default_backend(self) -> PumpLaserSim:
        return PumpLaserSim()

    def _read_position(self) -> float:
        return float(self.backend.wavelength_nm)

    def _default_limits(self) -> tuple[float, float]:
        c = self.backend.config
        return (float(c.min_nm), float(c.max_nm))

    def _validate_move(self, position: float) -> None:
        p = self.backend
        avail = p.available_power_mw(position)
        if p.power_mw > avail + 1e-9:
            raise LimitError(
                f"{self.name}: pump power {p.power_mw:g} mW not available at {position:g} nm "
                f"(at most {avail:.1f} mW there); lower the power first")

    def _move_time_s(self, position: float) -> float:
        return self.backend.tune_time_s(position)

    def _apply_move(self, position: float) -> None:
        self.backend.tune(position)


def _check_safety(device: Any, **powers: float) -> None:
    check = device.find_up("check_power_safety")
    if check is not None:
        check(**powers)


def _set_pump_power(dev: "PumpLaser", value: float) -> None:
    _check_safety(dev, pump_mw=float(value))
    dev.backend.set_power(float(value))


def _set_stokes_power(dev: "StokesLaser", value: float) -> None:
    _check_safety(dev, stokes_mw=float(value))
    dev.backend.set_power(float(value))


def _set_shutter(dev: Any, value: Any) -> None:
    dev.backend.shutter_open = bool(value)


class PumpLaser(SimDevice):
    """Tunable ps pump laser (OPO), 700-990 nm."""

    default_labels = ("lasers",)

    _sim_part = "pump"

    wavelength = Cpt(PumpWavelengthAxis, kind="normal")
    power = Cpt(SimBackedSignal, getter=lambda d: float(d.backend.power_mw),
                setter=_set_pump_power,
                limits=lambda d: (0.0, float(d.backend.config.max_power_mw)),
                egu="mW", kind="config")
    shutter = Cpt(SimBackedSignal, getter=lambda d: bool(d.backend.shutter_open),
                  setter=_set_shutter, kind="config")
    mode_locked = Cpt(SimBackedSignalRO, getter=lambda d: bool(d.backend.mode_locked),
                      kind="normal")
    pulse_ps = Cpt(SimBackedSignalRO, getter=lambda d: float(d.backend.config.pulse_ps),
                   egu="ps", kind="config")
    rep_rate_mhz = Cpt(SimBackedSignalRO, getter=lambda d: float(d.backend.config.rep_rate_mhz),
                       egu="MHz", kind="config")

    def __init__(self, prefix: str = "", *, name: str, **kwargs: Any):
        super().__init__(prefix, name=name, **kwargs)
        self.wavelength.readback.kind = "normal"  # plots hint the Raman shift, not nm

    def _default_backend(self) -> PumpLaserSim:
        return PumpLaserSim()


class StokesLaser(SimDevice):
    """Fixed-wavelength ps Stokes laser (1031 nm)."""

    default_labels = ("lasers",)

    _sim_part = "stokes"

    wavelength = Cpt(SimBackedSignalRO, getter=lambda d: float(d.backend.wavelength_nm),
                     egu="nm", kind="config")
    power = Cpt(SimBackedSignal, getter=lambda d: float(d.backend.power_mw),
                setter=_set_stokes_power,
                limits=lambda d: (0.0, float(d.backend.config.max_power_mw)),
                egu="mW", kind="config")
    shutter = Cpt(SimBackedSignal, getter=lambda d: bool(d.backend.shutter_open),
                  setter=_set_shutter, kind="config")

    def _default_backend(self) -> StokesLaserSim:
        return StokesLaserSim()


# ---------------------------------------------------------------------------- EPICS
# the EPICS variants live with the other EPICS devices (re-exported here for old imports)
from .epics import EpicsPumpLaser, EpicsPumpWavelength  # noqa: E402
