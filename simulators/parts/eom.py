"""Electro-optic modulator on the Stokes beam (square-wave intensity modulation)."""

from __future__ import annotations

import dataclasses
import math

from simulators.config import ConfigMixin
from simulators.errors import SettingsError, check_positive, check_range


@dataclasses.dataclass(frozen=True)
class EOMConfig(ConfigMixin):
    """Limits of the modulator: frequency range (Hz)."""

    min_hz: float = 1e5
    max_hz: float = 40e6

    def __post_init__(self) -> None:
        if not 0 < self.min_hz < self.max_hz:
            raise SettingsError("EOM frequency range must satisfy 0 < min_hz < max_hz")


class EOMSim:
    """Square-wave modulation of the Stokes beam.

    ``frequency_hz`` (default 20 MHz = f_rep/4; the paper's "80 MHz" is the repetition
    rate, which cannot be demodulated: docs/physics-notes.md, SRS signal chain),
    ``depth`` (0-1), ``enabled``.
    """

    def __init__(self, config: EOMConfig | None = None, *, frequency_hz: float = 20e6,
                 depth: float = 1.0, rep_rate_hz: float = 80e6) -> None:
        self.config = config or EOMConfig()
        self.rep_rate_hz = check_positive("repetition rate", rep_rate_hz, "Hz")
        self.frequency_hz = 0.0
        self.set_frequency(frequency_hz)
        self.depth = check_range("modulation depth", depth, 0.0, 1.0)
        self.enabled = True

    def set_frequency(self, hz: float) -> None:
        """Set the modulation frequency; must lie in range and below f_rep/2."""
        c = self.config
        f = check_range("EOM modulation frequency", hz, c.min_hz, c.max_hz, "Hz")
        if f > self.rep_rate_hz / 2:
            raise SettingsError(
                f"modulation at {f / 1e6:g} MHz cannot be demodulated with a "
                f"{self.rep_rate_hz / 1e6:g} MHz pulse train: use at most f_rep/2 "
                f"({self.rep_rate_hz / 2e6:g} MHz), typically f_rep/4")
        self.frequency_hz = f

    def set_depth(self, depth: float) -> None:
        self.depth = check_range("modulation depth", depth, 0.0, 1.0)

    @property
    def effective_depth(self) -> float:
        """Modulation depth seen by the lock-in (0 when disabled)."""
        return self.depth if self.enabled else 0.0

    @property
    def fundamental_rms_factor(self) -> float:
        """Lock-in R_rms per unit peak-to-peak modulation: sqrt(2)/pi = 0.45 for a square wave."""
        return math.sqrt(2.0) / math.pi

    def modulated_mean_square(self) -> float:
        """<P^2>/<P>^2 of the modulated Stokes beam (enters the Stokes-SHG average).

        Square wave between P_on and (1 - d) P_on with mean <P>: (1 + (1-d)^2) / (2 - d)^2 x 2.
        """
        d = self.effective_depth
        return 2.0 * (1.0 + (1.0 - d) ** 2) / (2.0 - d) ** 2
