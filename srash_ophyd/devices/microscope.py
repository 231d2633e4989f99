"""The assembled SRASH microscope: every part device plus the image detector.

:class:`SRASHMicroscope` is itself the image-producing detector (``trigger``, ``stage``,
``collect_asset_docs``, ``get_index`` delegate to its ``detector`` component, see
:mod:`srash_ophyd.devices.detector`), so ``count([mic])``, ``scan([mic], mic.raman, ...)`` and
``grid_scan([mic], mic.xyz.y, ..., mic.xyz.x, ...)`` work as they are; ``mic.detector``
alone is a detector too.

Components: ``pump``, ``stokes``, ``raman`` (pseudo axis over the pump), ``eom``,
``photodiode``, ``lockin``, ``pmt``, ``scanner``, ``xyz`` (the XYZ stage: ``stage`` is
reserved by ophyd for ``Device.stage()``), ``detector``. Reading the
microscope gives each part's normal/hinted signals (Raman shift, pump wavelength, stage x/y,
status signals, fault counts) and the detector's scalars; ``describe()`` also has the
external ``<name>_image`` key. Every config-kind signal (powers, wavelengths, pulse, EOM,
photodiode, lock-in, PMT, scanner settings) is in ``read_configuration()`` and thus in
every descriptor's ``configuration``.

The parts' simulators are those of ``sim`` (:class:`simulators.instrument.SRASHSimulator`);
nothing is shared between two microscopes (each has its own simulator, generators,
data folder).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ophyd import Component as Cpt
from ophyd import Device

from simulators.instrument import SRASHSimulator, noise_generators
from simulators.parts.lasers import check_power_safety as _sim_check_power_safety

from ._shared import DetectorFront
from ._sim import Labelled, LaserSafetyError, check_time_scale
from .detector import SRASHDetector
from .eom import EOM
from .lasers import PumpLaser, StokesLaser
from .lockin import LockInAmplifier
from .photodiode import Photodiode
from .pmt import PMT
from .raman import RamanShiftAxis
from .scanner import GalvoScanner
from .stage import XYZStage

__all__ = ["SRASHMicroscope"]


class SRASHMicroscope(DetectorFront, Labelled, Device):
    """The SRS + SHG microscope on a simulator.

    Parameters
    ----------
    sim : SRASHSimulator
        The simulated instrument (parts, specimen, response).
    data_dir : path
        Folder for the OME-TIFF frames (one sub-folder per staging).
    time_scale : float
        0 = instant (default); > 0 = statuses finish after ``time_scale x`` real time.
    noise_seed : int
        Seeds the frame noise and the stage repeatability (two independent generators).
    """

    default_labels = ("detectors",)

    pump = Cpt(PumpLaser, kind="normal")
    stokes = Cpt(StokesLaser, kind="config")
    raman = Cpt(RamanShiftAxis, kind="hinted")
    eom = Cpt(EOM, kind="config")
    photodiode = Cpt(Photodiode, kind="normal")
    lockin = Cpt(LockInAmplifier, kind="normal")
    pmt = Cpt(PMT, kind="normal")
    scanner = Cpt(GalvoScanner, kind="config")
    xyz = Cpt(XYZStage, kind="hinted")  # "stage" is reserved by ophyd (Device.stage())
    detector = Cpt(SRASHDetector, kind="hinted")

    def __init__(self, prefix: str = "", *, name: str, sim: SRASHSimulator,
                 data_dir: str | Path, time_scale: float = 0.0, noise_seed: int = 0,
                 **kwargs: Any):
        self.sim = sim
        self.data_dir = Path(data_dir)
        self._time_scale = check_time_scale(time_scale)
        self.noise_seed = int(noise_seed)
        self.frame_rng, self.motion_rng = noise_generators(self.noise_seed)
        super().__init__(prefix, name=name, **kwargs)

    # ------------------------------------------------------------------ knobs
    @property
    def time_scale(self) -> float:
        """Simulated-time factor shared by every part (0 = instant)."""
        return self._time_scale

    @time_scale.setter
    def time_scale(self, value: float) -> None:
        self._time_scale = check_time_scale(value)

    @property
    def safety_limit_mw(self) -> float:
        return float(self.sim.response.safety_limit_mw)

    def check_power_safety(self, *, pump_mw: float | None = None,
                           stokes_mw: float | None = None) -> None:
        """Raise :class:`LaserSafetyError` if pump + Stokes (current values where not
        given) exceed the safety limit; the interlock of the lasers' ``power`` signals."""
        p = self.sim.pump.power_mw if pump_mw is None else float(pump_mw)
        s = self.sim.stokes.power_mw if stokes_mw is None else float(stokes_mw)
        try:
            _sim_check_power_safety(p, s, self.safety_limit_mw)
        except Exception as exc:
            raise LaserSafetyError(str(exc)) from exc

    def refresh(self) -> None:
        """Re-read every part's backend signals (runs subscriptions of changed ones)."""
        for attr in ("pump", "stokes", "raman", "eom", "photodiode", "lockin", "pmt", "scanner",
                     "xyz"):
            getattr(self, attr).refresh()

    # ------------------------------------------------------------------ detector
    def trigger(self):
        self.refresh()
        return self.detector.trigger()

    @property
    def faults(self) -> dict[str, Any]:
        """Current status signals of the parts (what suspenders watch)."""
        self.refresh()
        return {"mode_locked": self.pump.mode_locked.get(),
                "lockin_overload": self.lockin.overload.get(),
                "pmt_tripped": self.pmt.tripped.get(),
                "stage_following_error": self.xyz.following_error.get()}

