"""Stage 3 of the forward model: raster + lock-in (SRS) -> frames in detector volts.

:func:`register` cuts the scanned field out of the padded window of stages 1-2, displaced
by the raster's registration error; :func:`lockin_frame` runs the raster timing, the
photodiode's noise, the lock-in's filter, output range and ADC. The PMT (SHG) is
:meth:`simulators.parts.pmt.PMTSim.detect`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from simulators.parts.eom import EOMSim
from simulators.parts.lockin import LockInSim
from simulators.parts.photodiode import PhotodiodeSim
from simulators.parts.scanner import GalvoScannerSim


def register(img: NDArray, m: int, shift: tuple[float, float] | None) -> NDArray:
    """Crop the ``m``-pixel margin, displaced by a sub-pixel ``shift`` (dy, dx) using
    bilinear interpolation: ``out[i, j] = img[m + i - dy, m + j - dx]``."""
    if shift is None or shift == (0.0, 0.0):
        return img[m:-m, m:-m]
    ny, nx = img.shape[0] - 2 * m, img.shape[1] - 2 * m
    dy, dx = (float(np.clip(v, -(m - 1), m - 1)) for v in shift)
    iy, ix = math.floor(-dy), math.floor(-dx)
    fy, fx = np.float32(-dy - iy), np.float32(-dx - ix)
    r0, c0 = m + iy, m + ix

    def sl(r: int, c: int) -> NDArray:
        return img[r:r + ny, c:c + nx]

    # top (1 - fy) + bot fy with top / bot the rows' x interpolations, in place
    gx = 1 - fx
    top = sl(r0, c0) * gx
    tmp = sl(r0, c0 + 1) * fx
    top += tmp
    bot = sl(r0 + 1, c0) * gx
    np.multiply(sl(r0 + 1, c0 + 1), fx, out=tmp)
    bot += tmp
    top *= 1 - fy
    bot *= fy
    top += bot
    return top.astype(np.float32, copy=False)


def lockin_frame(modulation: NDArray, *, pump_mw: float, stokes_mw: float,
                 ref_stokes_mw: float, peak_power_factor: float, scanner: GalvoScannerSim,
                 lockin: LockInSim, photodiode: PhotodiodeSim, eom: EOMSim,
                 rng: np.random.Generator, srs_gain: float = 1.0
                 ) -> tuple[NDArray[np.float32], dict[str, Any]]:
    """Lock-in output frame (V) for an (ny, nx) in-phase modulation map.

    Photocurrent ``I = R eta P_P``; in-phase amplitude at the lock-in input
    ``X_in = Z (sqrt2/pi) d G I (P_S/P_S0) cos(dphi) g_ov g(r)`` with ``g_ov = srs_gain``
    the beam-overlap factor of the session and ``g(r) = v_P(r) v_S(r)`` the vignetting of
    the two excitation beams (:meth:`GalvoScannerSim.vignetting`); white current noise
    ``i_n sqrt(ENBW) / sqrt(N_avg)`` (shot + RIN + electronic) added per time sample;
    the cascaded RC filter runs causally along the fast axis including flyback; then
    the +-10 V output, 16-bit ADC and the overload count.
    """
    sc, li, pd = scanner, lockin, photodiode
    i_dc = pd.dc_current_a(pump_mw)
    gain = (li.config.frontend_gain_v_per_a * eom.fundamental_rms_factor
            * eom.effective_depth * i_dc * pd.compression(pump_mw)
            * (stokes_mw / ref_stokes_mw) * peak_power_factor
            * math.cos(math.radians(li.phase_deg))) * srs_gain
    signal = modulation * (np.float32(gain) * sc.vignetting())
    samples = sc.to_time_order(signal)
    sigma = (li.config.frontend_gain_v_per_a * pd.noise_density_a_per_rthz(pump_mw)
             * math.sqrt(li.enbw_hz) / math.sqrt(sc.averages))
    noise = rng.standard_normal(samples.shape, dtype=np.float32)
    noise *= np.float32(sigma / li.noise_gain(sc.dwell_s))
    samples += noise
    del noise
    flat = li.filter_time_series(samples.reshape(-1), sc.dwell_s).reshape(samples.shape)
    x_in = sc.from_time_order(flat)
    mag = np.abs(x_in)
    mag *= math.sqrt(2)
    input_over = int(np.count_nonzero(mag > li.config.input_range_v))
    del mag
    if li.output in ("Y", "R", "theta"):
        y_in = sc.from_time_order(li.filter_time_series(
            (np.float32(sigma / li.noise_gain(sc.dwell_s))
             * rng.standard_normal(samples.shape, dtype=np.float32)).reshape(-1),
            sc.dwell_s).reshape(samples.shape))
        if li.output == "Y":
            x_in = y_in
        elif li.output == "R":
            x_in = np.hypot(x_in, y_in)
        else:  # theta, degrees scaled to +-10 V as +-180 deg
            out = (np.degrees(np.arctan2(y_in, x_in)) / 18.0).astype(np.float32)
            v, n = li.digitize(out)
            return v, {"lockin_overload_px": n + input_over}
    v, n_over = li.digitize(li.volts_out(x_in))
    return v, {"lockin_overload_px": n_over + input_over,
               "photodiode_saturated": pd.saturated(pump_mw)}
