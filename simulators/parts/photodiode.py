"""Large-area Si photodiode detecting the transmitted pump (stimulated Raman loss)."""

from __future__ import annotations

import dataclasses
import math

from simulators.config import ConfigMixin
from simulators.errors import check_positive, check_range

ELEMENTARY_CHARGE_C = 1.602176634e-19


@dataclasses.dataclass(frozen=True)
class PhotodiodeConfig(ConfigMixin):
    """Responsivity (A/W at ~800 nm), fraction of the pump reaching the diode through the
    condenser and filter, DC photocurrent at which the diode/bias saturates (mA), laser RIN
    at f_mod (dBc/Hz) and input-referred electronic current noise (pA/sqrt(Hz)).
    Defaults give 10 mA at 40 mW pump (docs/physics-notes.md, SRS signal chain)."""

    responsivity_a_per_w: float = 0.5
    collection_efficiency: float = 0.5
    saturation_ma: float = 25.0
    rin_dbc_per_hz: float = -160.0
    electronic_noise_pa_per_rthz: float = 3.0

    def __post_init__(self) -> None:
        check_range("responsivity", self.responsivity_a_per_w, 0.01, 1.0, "A/W")
        check_range("collection efficiency", self.collection_efficiency, 0.0, 1.0)
        check_positive("saturation current", self.saturation_ma, "mA")
        check_range("RIN", self.rin_dbc_per_hz, -200.0, -80.0, "dBc/Hz")
        check_positive("electronic noise", self.electronic_noise_pa_per_rthz, "pA/rtHz",
                       allow_zero=True)


class PhotodiodeSim:
    """State: ``bias_v`` (reverse bias, V). Converts detected pump power to photocurrent."""

    def __init__(self, config: PhotodiodeConfig | None = None, *, bias_v: float = 12.0) -> None:
        self.config = config or PhotodiodeConfig()
        self.bias_v = check_range("photodiode bias", bias_v, 0.0, 30.0, "V")

    def dc_current_a(self, pump_at_sample_mw: float) -> float:
        """DC photocurrent (A) for a pump power at the sample (mW), before saturation."""
        c = self.config
        return c.responsivity_a_per_w * c.collection_efficiency * pump_at_sample_mw * 1e-3

    def saturated(self, pump_at_sample_mw: float) -> bool:
        """True when the DC photocurrent exceeds the saturation current."""
        return self.dc_current_a(pump_at_sample_mw) > self.config.saturation_ma * 1e-3

    def compression(self, pump_at_sample_mw: float) -> float:
        """Small-signal gain factor (<= 1) of the diode/front end: ``1 / (1 + (I/I_sat)^10)``.

        Linear to better than 1 % below 0.6 I_sat, half gain at I_sat.
        """
        i = self.dc_current_a(pump_at_sample_mw)
        isat = self.config.saturation_ma * 1e-3
        return 1.0 / (1.0 + (i / isat) ** 10)

    def noise_density_a_per_rthz(self, pump_at_sample_mw: float) -> float:
        """One-sided current-noise density (A/sqrt(Hz)) at f_mod: shot + RIN + electronic.

        .. math:: i_n^2 = 2 e I + 10^{RIN/10} I^2 + i_{el}^2
        """
        c = self.config
        i = self.dc_current_a(pump_at_sample_mw)
        return math.sqrt(2 * ELEMENTARY_CHARGE_C * i + 10 ** (c.rin_dbc_per_hz / 10) * i * i
                         + (c.electronic_noise_pa_per_rthz * 1e-12) ** 2)
