"""Pump (tunable ps OPO) and Stokes (1031 nm) laser simulators.

State lives in plain objects that the matching ophyd devices talk to. Powers are average
powers at the sample in mW; wavelengths in nm; times in s.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from simulators.config import ConfigMixin
from simulators.errors import HardwareFault, SettingsError, check_positive, check_range
from simulators.spectra import PUMP_RANGE_NM, STOKES_NM_DEFAULT


@dataclasses.dataclass(frozen=True)
class PumpLaserConfig(ConfigMixin):
    """Tunable ps pump (OPO). Defaults: the paper's 700-990 nm, 2 ps, 80 MHz.

    ``max_power_mw`` is the largest power deliverable at the sample at the tuning-curve peak
    ``peak_nm``; it falls as a Gaussian of ``curve_fwhm_nm`` towards the range edges.
    ``power_ripple`` is the relative wavelength-dependent error of the power setpoint (what
    makes per-channel power normalisation necessary); ``drift`` the frame-to-frame relative
    power noise (std). Tuning takes ``tune_settle_s + |d lambda| / tune_rate_nm_per_s``.
    """

    min_nm: float = PUMP_RANGE_NM[0]
    max_nm: float = PUMP_RANGE_NM[1]
    max_power_mw: float = 250.0
    peak_nm: float = 820.0
    curve_fwhm_nm: float = 450.0
    power_ripple: float = 0.05
    drift: float = 0.005
    pulse_ps: float = 2.0
    rep_rate_mhz: float = 80.0
    tune_rate_nm_per_s: float = 5.0
    tune_settle_s: float = 2.0

    def __post_init__(self) -> None:
        if not self.min_nm < self.max_nm:
            raise SettingsError("pump range must have min_nm < max_nm")
        check_positive("max power", self.max_power_mw, "mW")
        check_positive("pulse duration", self.pulse_ps, "ps")
        check_positive("repetition rate", self.rep_rate_mhz, "MHz")
        check_range("power ripple", self.power_ripple, 0.0, 0.5)
        check_range("power drift", self.drift, 0.0, 0.5)
        check_positive("tuning rate", self.tune_rate_nm_per_s, "nm/s")
        check_positive("tuning settle time", self.tune_settle_s, "s", allow_zero=True)


class PumpLaserSim:
    """State and behaviour of the pump laser.

    ``wavelength_nm`` (setpoint = readback once tuned), ``power_mw`` (setpoint at the
    sample), ``shutter_open``, ``mode_locked`` (a fault hook: :meth:`inject_modelock_loss`).
    """

    def __init__(self, config: PumpLaserConfig | None = None, *,
                 wavelength_nm: float | None = None, power_mw: float = 40.0) -> None:
        self.config = config or PumpLaserConfig()
        if wavelength_nm is None:  # parked at 2850 cm^-1 with the default Stokes
            from simulators.spectra import pump_nm_for_shift

            wavelength_nm = float(pump_nm_for_shift(2850.0, STOKES_NM_DEFAULT))
        self.wavelength_nm = self._check_wavelength(wavelength_nm)
        #: total time (s) spent tuning since construction (the instrument clock counts it)
        self.tuning_s = 0.0
        self.power_mw = 0.0
        self.set_power(power_mw)
        self.shutter_open = True
        self.mode_locked = True

    def _check_wavelength(self, nm: float) -> float:
        c = self.config
        return check_range("pump wavelength", nm, c.min_nm, c.max_nm, "nm")

    def available_power_mw(self, wavelength_nm: float | None = None) -> float:
        """Largest power (mW at the sample) the OPO delivers at ``wavelength_nm``."""
        c = self.config
        lam = self.wavelength_nm if wavelength_nm is None else wavelength_nm
        sig = c.curve_fwhm_nm / (2 * math.sqrt(2 * math.log(2)))
        return c.max_power_mw * math.exp(-0.5 * ((lam - c.peak_nm) / sig) ** 2)

    def tune_time_s(self, wavelength_nm: float) -> float:
        """Time (s) to tune from the current wavelength to ``wavelength_nm`` (0 if equal)."""
        d = abs(float(wavelength_nm) - self.wavelength_nm)
        if d < 1e-6:
            return 0.0
        return self.config.tune_settle_s + d / self.config.tune_rate_nm_per_s

    def tune(self, wavelength_nm: float) -> float:
        """Tune to ``wavelength_nm``; returns the tuning time (s). Range-checked first."""
        lam = self._check_wavelength(wavelength_nm)
        if self.power_mw > self.available_power_mw(lam) + 1e-9:
            raise SettingsError(
                f"pump power {self.power_mw:g} mW not available at {lam:g} nm: at most "
                f"{self.available_power_mw(lam):.1f} mW there; lower the power first")
        t = self.tune_time_s(lam)
        self.wavelength_nm = lam
        self.tuning_s += t
        return t

    def set_power(self, power_mw: float) -> None:
        """Set the power at the sample (mW); refused above what the OPO delivers here."""
        p = check_range("pump power", power_mw, 0.0, self.available_power_mw(), "mW")
        self.power_mw = p

    def ripple_factor(self, wavelength_nm: float | None = None) -> float:
        """Deterministic delivered/setpoint ratio at a wavelength (attenuator calibration)."""
        lam = self.wavelength_nm if wavelength_nm is None else wavelength_nm
        return 1.0 + self.config.power_ripple * math.sin(2 * math.pi * lam / 7.3 + 0.7)

    def delivered_power_mw(self, rng: np.random.Generator | None = None) -> float:
        """Actual average power at the sample (mW) for one frame: setpoint x ripple x drift.

        Zero with the shutter closed. Without mode-lock the pulses are gone (cw leak):
        nonlinear signals vanish although some power arrives; see :attr:`peak_power_factor`.
        """
        if not self.shutter_open:
            return 0.0
        drift = 1.0 + (self.config.drift * float(rng.standard_normal()) if rng is not None else 0.0)
        return self.power_mw * self.ripple_factor() * drift

    @property
    def peak_power_factor(self) -> float:
        """Nonlinear-signal factor: 1 when mode-locked, 0 when mode-lock is lost."""
        return 1.0 if self.mode_locked else 0.0

    def inject_modelock_loss(self) -> None:
        """Fault hook: the OPO loses mode-lock (no pulses, no SRS/SHG)."""
        self.mode_locked = False

    def restore_modelock(self) -> None:
        """Fault hook: mode-lock recovered."""
        self.mode_locked = True

    def require_ok(self) -> None:
        """Raise :class:`HardwareFault` if the laser cannot produce pulses."""
        if not self.mode_locked:
            raise HardwareFault("pump laser lost mode-lock: no ps pulses, SRS/SHG frames invalid")


@dataclasses.dataclass(frozen=True)
class StokesLaserConfig(ConfigMixin):
    """Fixed-wavelength ps Stokes laser (1031 nm, read-only wavelength)."""

    wavelength_nm: float = STOKES_NM_DEFAULT
    max_power_mw: float = 300.0
    drift: float = 0.003
    pulse_ps: float = 2.0

    def __post_init__(self) -> None:
        check_range("Stokes wavelength", self.wavelength_nm, 1000.0, 1100.0, "nm")
        check_positive("max power", self.max_power_mw, "mW")
        check_range("power drift", self.drift, 0.0, 0.5)
        check_positive("pulse duration", self.pulse_ps, "ps")


class StokesLaserSim:
    """State of the Stokes laser: ``power_mw`` at the sample, ``shutter_open``."""

    def __init__(self, config: StokesLaserConfig | None = None, *, power_mw: float = 40.0) -> None:
        self.config = config or StokesLaserConfig()
        self.power_mw = 0.0
        self.set_power(power_mw)
        self.shutter_open = True

    @property
    def wavelength_nm(self) -> float:
        return self.config.wavelength_nm

    def set_power(self, power_mw: float) -> None:
        self.power_mw = check_range("Stokes power", power_mw, 0.0, self.config.max_power_mw, "mW")

    def delivered_power_mw(self, rng: np.random.Generator | None = None) -> float:
        """Average power at the sample (mW) for one frame; 0 with the shutter closed."""
        if not self.shutter_open:
            return 0.0
        drift = 1.0 + (self.config.drift * float(rng.standard_normal()) if rng is not None else 0.0)
        return self.power_mw * drift


def check_power_safety(pump_mw: float, stokes_mw: float, limit_mw: float = 150.0) -> None:
    """Refuse a total power at the sample above ``limit_mw`` (photodamage;
    docs/physics-notes.md, Safety)."""
    from simulators.errors import SafetyLimitError

    total = float(pump_mw) + float(stokes_mw)
    if total > limit_mw:
        raise SafetyLimitError(
            f"total laser power {total:g} mW at the sample exceeds the safety limit of "
            f"{limit_mw:g} mW (pump {pump_mw:g} + Stokes {stokes_mw:g}); the paper uses 40 + 40 mW")
