"""Photomultiplier (GaAsP) in analog mode for the SHG channel (docs/physics-notes.md, SHG)."""

from __future__ import annotations

import dataclasses

import numpy as np
from numpy.typing import NDArray

from simulators.config import ConfigMixin
from simulators.errors import HardwareFault, check_positive, check_range
from simulators.parts.photodiode import ELEMENTARY_CHARGE_C

#: Photoelectrons per pixel above which the compound Poisson-Gamma charge is drawn from its
#: Gaussian limit (skewness ~ 1/sqrt(lam) < 0.2).
LAMBDA_CLT = 30.0


@dataclasses.dataclass(frozen=True)
class PMTConfig(ConfigMixin):
    """GaAsP PMT module: QE at 400-520 nm, gain law ``G = gain_ref (V / v_ref)^gain_exponent``,
    excess noise factor F (single-photoelectron gain ~ Gamma with shape 1/(F-1)), dark
    count rate (1/s), transimpedance (V/A), electronic noise and offset (V), output range
    (V), linearity limit and overlight-protection limit of the anode current (uA; the
    protection averages over one scan line)."""

    qe: float = 0.40
    gain_ref: float = 1e6
    v_ref: float = 700.0
    gain_exponent: float = 8.0
    min_voltage: float = 300.0
    max_voltage: float = 900.0
    excess_noise: float = 1.3
    dark_rate_hz: float = 100.0
    transimpedance_v_per_a: float = 1e5
    electronic_noise_v: float = 1e-3
    offset_v: float = 5e-3
    output_range_v: float = 2.0
    linear_limit_ua: float = 15.0
    overlight_limit_ua: float = 8.0

    def __post_init__(self) -> None:
        check_range("quantum efficiency", self.qe, 0.0, 1.0)
        check_range("excess noise factor", self.excess_noise, 1.001, 3.0)
        check_positive("dark rate", self.dark_rate_hz, "1/s", allow_zero=True)
        check_positive("transimpedance", self.transimpedance_v_per_a, "V/A")
        check_positive("linearity limit", self.linear_limit_ua, "uA")
        check_positive("overlight limit", self.overlight_limit_ua, "uA")


class PMTSim:
    """State: ``voltage`` (V, sets the gain), ``enabled`` (HV on), ``tripped`` (overlight)."""

    def __init__(self, config: PMTConfig | None = None, *, voltage: float = 700.0) -> None:
        self.config = config or PMTConfig()
        self.set_voltage(voltage)
        self.enabled = True
        self.tripped = False

    def set_voltage(self, voltage: float) -> None:
        c = self.config
        self.voltage = check_range("PMT voltage", voltage, c.min_voltage, c.max_voltage, "V")

    @property
    def gain(self) -> float:
        c = self.config
        return c.gain_ref * (self.voltage / c.v_ref) ** c.gain_exponent

    def reset_trip(self) -> None:
        """Re-arm after an overlight trip."""
        self.tripped = False

    def require_ok(self) -> None:
        if self.tripped:
            raise HardwareFault("SHG PMT overlight protection tripped: reduce light/voltage "
                                "and reset the PMT")

    def detect(self, photons: NDArray, dwell_s: float, averages: int,
               rng: np.random.Generator) -> tuple[NDArray[np.float32], dict]:
        """Analog PMT frame (V) for mean *photons at the cathode* per pixel per pass.

        Per pixel: ``N_pe ~ Poisson(lam)``, ``lam = averages (QE photons + dark dwell)``;
        anode charge ``Q ~ Gamma(N_pe k, G/k)`` with ``k = 1/(F-1)`` (exact sum of N_pe
        single-electron gains); above ``LAMBDA_CLT`` photoelectrons the (then Gaussian) sum
        is drawn from its exact mean ``lam G`` and variance ``lam G^2 F``;
        ``V = Q / (averages dwell) x R_t + offset + N(0, s_el/sqrt(avg))``.
        Faults: overlight trip when a line's mean anode current exceeds the limit (the rest of
        the frame reads the offset only, ``tripped`` latches); pixels above the linearity
        limit or the output range are compressed/clipped and *counted*.
        """
        c = self.config
        ny, nx = photons.shape
        avg = int(averages)
        flags = {"pmt_overlight_trip": False, "pmt_saturated_px": 0, "pmt_trip_row": None}
        if not self.enabled or self.tripped:
            v = c.offset_v + c.electronic_noise_v / np.sqrt(avg) * rng.standard_normal(
                (ny, nx), dtype=np.float32)
            flags["pmt_overlight_trip"] = self.tripped
            return v.astype(np.float32), flags
        lam = photons.astype(np.float64)  # (in place below: the same numbers, fewer copies)
        lam *= avg * c.qe
        lam += avg * c.dark_rate_hz * dwell_s
        q = np.empty((ny, nx), np.float64)
        # bright pixels (>= LAMBDA_CLT photoelectrons): the sum of many single-electron
        # charges is Gaussian to high accuracy; exact mean lam G and variance lam G^2 F
        bright = lam >= LAMBDA_CLT
        nb = int(np.count_nonzero(bright))
        if nb:
            lb = lam[bright]
            q[bright] = self.gain * (lb + np.sqrt(lb * c.excess_noise) * rng.standard_normal(nb))
        # dim pixels: exact compound Poisson-Gamma
        dim = ~bright
        n_pe = rng.poisson(lam[dim])
        k = 1.0 / (c.excess_noise - 1.0)
        qd = np.zeros(n_pe.shape, np.float64)
        hit = n_pe > 0
        qd[hit] = rng.gamma(n_pe[hit] * k, self.gain / k)
        q[dim] = qd
        q *= ELEMENTARY_CHARGE_C
        q /= avg * dwell_s
        current = q  # mean anode current (A)
        # overlight protection (line-averaged expected current)
        line_mean = c.qe * photons.mean(axis=1) * self.gain * ELEMENTARY_CHARGE_C / dwell_s
        over = np.nonzero(line_mean > c.overlight_limit_ua * 1e-6)[0]
        if over.size:
            r = int(over[0])
            current[r:] = 0.0
            self.tripped = True
            flags["pmt_overlight_trip"] = True
            flags["pmt_trip_row"] = r
        # linearity: soft compression above the limit, counted
        ilin = c.linear_limit_ua * 1e-6
        nonlin = current > ilin
        if np.any(nonlin):
            current[nonlin] = ilin * (1 + np.log(current[nonlin] / ilin))
        current *= c.transimpedance_v_per_a
        current += c.offset_v
        v = current
        noise = rng.standard_normal((ny, nx))
        noise *= c.electronic_noise_v / np.sqrt(avg)
        v += noise
        del noise
        clipped = v >= c.output_range_v
        flags["pmt_saturated_px"] = int(np.count_nonzero(nonlin | clipped))
        np.minimum(v, c.output_range_v, out=v)
        return v.astype(np.float32), flags
