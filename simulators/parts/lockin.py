"""Lock-in amplifier: demodulation at f_mod, cascaded RC low-pass, sensitivity, overload.

Outputs are RMS-scaled as on commercial instruments and mapped to a +-10 V analog output
(``10 V x X_in / sensitivity``) digitised by a 16-bit ADC; the image is the output sampled
at the end of each pixel dwell (docs/physics-notes.md, SRS signal chain).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import overload

import numpy as np
from numpy.typing import NDArray
from scipy.signal import lfilter

from simulators.config import ConfigMixin
from simulators.errors import SettingsError, check_positive, check_range

#: Full-scale sensitivities (V rms) in the usual 1-2-5 sequence, 1 uV ... 1 V.
SENSITIVITIES_V: tuple[float, ...] = tuple(
    round(m * 10.0**e, 12) for e in range(-6, 0) for m in (1, 2, 5)) + (1.0,)
OUTPUTS = ("X", "Y", "R", "theta")
OUTPUT_FULL_SCALE_V = 10.0
ADC_BITS = 16


def enbw_hz(tau_s: float, order: int) -> float:
    """Equivalent noise bandwidth (Hz) of ``order`` cascaded RC stages of time constant tau.

    .. math:: \\mathrm{ENBW} = \\frac{(2n-2)!}{((n-1)!)^2\\,2^{2n-1}}\\,\\frac{1}{2\\tau}
    (1/(4 tau) for n = 1, 1/(8 tau) for n = 2, 5/(64 tau) for n = 4).
    """
    n = int(order)
    coeff = math.factorial(2 * n - 2) / (math.factorial(n - 1) ** 2 * 2 ** (2 * n - 1))
    return coeff / (2.0 * tau_s)


def f3db_hz(tau_s: float, order: int) -> float:
    """-3 dB bandwidth (Hz): sqrt(2^(1/n) - 1) / (2 pi tau)."""
    return math.sqrt(2 ** (1.0 / order) - 1.0) / (2 * math.pi * tau_s)


@dataclasses.dataclass(frozen=True)
class LockInConfig(ConfigMixin):
    """Fixed properties: resonant front-end transimpedance (V/A) at f_mod, input range
    (V peak), output offset (V, what a dark frame measures), ADC quantisation on/off."""

    frontend_gain_v_per_a: float = 1000.0
    input_range_v: float = 1.0
    output_offset_v: float = 0.02
    quantize: bool = True

    def __post_init__(self) -> None:
        check_positive("front-end gain", self.frontend_gain_v_per_a, "V/A")
        check_positive("input range", self.input_range_v, "V")


@functools.lru_cache(maxsize=64)
def _discrete_filter(a: float, order: int) -> tuple[NDArray, NDArray, float]:
    """(b, a) of ``order`` exact-discretised RC stages and the filter's white-noise gain."""
    b = np.array([(1.0 - a) ** order])
    den = np.array([1.0])
    for _ in range(order):
        den = np.polymul(den, [1.0, -a])
    n = 64 * order + int(20.0 / max(1e-6, 1.0 - a))
    imp = np.zeros(min(n, 200000))
    imp[0] = 1.0
    h = lfilter(b, den, imp)
    return b, den, float(np.sqrt(np.sum(h * h)))


class LockInSim:
    """State: ``tau_s``, ``order`` (1-8), ``sensitivity_v`` (1-2-5 sequence), ``phase_deg``,
    ``reference_hz`` (follows the EOM), ``output`` (X, Y, R, theta)."""

    def __init__(self, config: LockInConfig | None = None, *, tau_s: float = 3e-6,
                 order: int = 2, sensitivity_v: float = 2e-3, phase_deg: float = 0.0,
                 reference_hz: float = 20e6, output: str = "X") -> None:
        self.config = config or LockInConfig()
        self.set_time_constant(tau_s, order)
        self.set_sensitivity(sensitivity_v)
        self.phase_deg = check_range("lock-in phase", phase_deg, -360.0, 360.0, "deg")
        self.reference_hz = check_positive("reference frequency", reference_hz, "Hz")
        self.set_output(output)

    def set_time_constant(self, tau_s: float, order: int | None = None) -> None:
        self.tau_s = check_range("lock-in time constant", tau_s, 1e-7, 1.0, "s")
        if order is not None:
            if int(order) != order or not 1 <= order <= 8:
                raise SettingsError(f"lock-in filter order {order!r} not allowed: use 1-8")
            self.order = int(order)

    def set_sensitivity(self, sensitivity_v: float) -> None:
        s = float(sensitivity_v)
        match = [v for v in SENSITIVITIES_V if math.isclose(v, s, rel_tol=1e-6)]
        if not match:
            raise SettingsError(
                f"lock-in sensitivity {s:g} V not available: use one of 1, 2, 5 x 10^k V "
                "from 1e-06 to 1 V")
        self.sensitivity_v = match[0]

    def set_output(self, output: str) -> None:
        if output not in OUTPUTS:
            raise SettingsError(f"lock-in output {output!r} unknown: use one of {OUTPUTS}")
        self.output = output

    @property
    def enbw_hz(self) -> float:
        return enbw_hz(self.tau_s, self.order)

    def settle_time_s(self) -> float:
        """~99 % settling: 5 tau (1st order) ... 10 tau (4th and higher)."""
        return self.tau_s * min(10.0, 5.0 + 5.0 * (self.order - 1) / 3.0)

    @overload
    def volts_out(self, x_in_v: NDArray) -> NDArray: ...
    @overload
    def volts_out(self, x_in_v: float) -> float: ...

    def volts_out(self, x_in_v: NDArray | float) -> NDArray | float:
        """Analog output (V) for an input-referred rms amplitude (V) incl. the offset."""
        return OUTPUT_FULL_SCALE_V * np.asarray(x_in_v) / self.sensitivity_v + \
            self.config.output_offset_v

    def filter_time_series(self, samples: NDArray, dwell_s: float) -> NDArray:
        """Apply the cascaded RC filter along the last axis (time), one sample per pixel.

        Exact discretisation for piecewise-constant input: each stage is
        ``y[k] = a y[k-1] + (1 - a) x[k]`` with ``a = exp(-dwell / tau)``; the output is the
        filter state at the end of each dwell.
        """
        a = math.exp(-float(dwell_s) / self.tau_s)
        b, den, _ = _discrete_filter(round(a, 12), self.order)
        return lfilter(b, den, samples, axis=-1).astype(samples.dtype, copy=False)

    def noise_gain(self, dwell_s: float) -> float:
        """RMS of the discrete filter's response to unit white noise (per sample)."""
        a = math.exp(-float(dwell_s) / self.tau_s)
        return _discrete_filter(round(a, 12), self.order)[2]

    def digitize(self, volts: NDArray) -> tuple[NDArray, int]:
        """Clip to +-10 V (counting overloaded samples) and quantise to 16 bits.

        Returns ``(volts, n_overloaded)``; overload is reported, never silent.
        """
        fs = OUTPUT_FULL_SCALE_V
        n_over = int(np.count_nonzero(np.abs(volts) >= fs))
        out = np.clip(volts, -fs, fs)
        if self.config.quantize:
            lsb = 2 * fs / 2**ADC_BITS
            if isinstance(out, np.ndarray) and out.dtype.kind == "f":
                out /= lsb  # in place: the same numbers as below, fewer copies
                np.round(out, out=out)
                out *= lsb
            else:
                out = np.round(out / lsb) * lsb
        return out.astype(np.float32, copy=False), n_over
