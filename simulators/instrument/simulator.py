"""Forward model of the SRASH microscope: specimen -> optics -> raster/detectors -> frames.

Stages (each public, so a scientist can stop after any one and look; microsim style):

1. :meth:`SRASHSimulator.composition`   ground truth of the current field (specimen window)
2. :meth:`SRASHSimulator.srs_modulation` pump modulation depth dI/I after the SRS PSF
3. :meth:`SRASHSimulator.shg_photons`    SHG photons at the cathode per pixel per pass
4. :meth:`SRASHSimulator.srs_detect` / ``pmt.detect``  raster timing, lock-in filter,
   detector noise, overload -> frames in detector units (lock-in output V, PMT V)

Every random draw uses the ``numpy.random.Generator`` passed in. Averaging is simulated
exactly in distribution: Gaussian noise of N averaged passes is one draw with sigma/sqrt(N)
(the lock-in filter is linear) and the PMT's compound Poisson-Gamma charge of N passes is one
Poisson-Gamma draw with N times the rate.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Sequence

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from simulators.config import ConfigMixin
from simulators.errors import SettingsError, check_positive, check_range
from simulators.optics import Objective, blur
from simulators.parts.eom import EOMSim
from simulators.processing import (CompositeConfig, composite_rgb, normalize_power,
                                   subtract_background, unmix_lipid_protein)
from simulators.parts.lasers import PumpLaserSim, StokesLaserSim, check_power_safety
from simulators.parts.lockin import LockInSim
from simulators.parts.photodiode import PhotodiodeSim
from simulators.parts.pmt import PMTSim
from simulators.parts.scanner import GalvoScannerSim
from simulators.parts.stage import XYZStageSim
from simulators.specimens.base import Composition, Specimen, Window
from simulators.spectra import SPECIES, pump_nm_for_shift, raman_shift_cm1, species_spectrum

#: Refractive-index increment per unit concentration (for the XPM edge term).
_DN = {"lipid": 0.14, "protein": 0.18, "collagen": 0.18, "dna": 0.20, "water": 0.0}


@dataclasses.dataclass(frozen=True)
class ResponseConfig(ConfigMixin):
    """How the specimen answers the beams (calibratable defaults, physics.md s2 and s4).

    ``srs_k``: dI/I of pure triglyceride at the 2853 cm^-1 peak at the reference powers
    ``ref_pump_mw`` / ``ref_stokes_mw``. ``xpm_rel``: cross-phase-modulation edge contrast
    relative to ``srs_k`` (non-resonant, at refractive-index edges). ``pigment_rel`` and
    ``pigment_phase_deg``: transient absorption of lipofuscin (wavenumber independent,
    its own lock-in phase). ``shg_photons_dense``: SHG photons at the PMT cathode per 10 us
    pixel per pass from dense aligned collagen (chi2 = 1) at ``ref_pump_mw``, 2 ps, 80 MHz.
    ``shg_source``: which beam's SHG the emission filter passes (``pump`` 398 nm,
    ``stokes`` 515 nm, ``both``). ``frame_jitter_px``: registration error between
    sequential frames (1 sigma, pixels). ``irf_fwhm_cm1``: spectral resolution.
    ``safety_limit_mw``: total power refused above this.
    """

    srs_k: float = 3e-4
    ref_pump_mw: float = 40.0
    ref_stokes_mw: float = 40.0
    xpm_rel: float = 0.02
    pigment_rel: float = 0.3
    pigment_phase_deg: float = 60.0
    shg_photons_dense: float = 300.0
    shg_source: str = "pump"
    frame_jitter_px: float = 0.2
    irf_fwhm_cm1: float = 8.0
    safety_limit_mw: float = 150.0

    def __post_init__(self) -> None:
        check_range("SRS gain K", self.srs_k, 0.0, 1e-2)
        check_positive("reference pump power", self.ref_pump_mw, "mW")
        check_positive("reference Stokes power", self.ref_stokes_mw, "mW")
        check_range("XPM amplitude", self.xpm_rel, 0.0, 1.0)
        check_positive("SHG yield", self.shg_photons_dense, "photons", allow_zero=True)
        if self.shg_source not in ("pump", "stokes", "both"):
            raise SettingsError(f"shg_source {self.shg_source!r}: use pump, stokes or both")
        check_range("frame jitter", self.frame_jitter_px, 0.0, 5.0, "px")
        check_positive("instrument line width", self.irf_fwhm_cm1, "cm^-1", allow_zero=True)
        check_positive("safety limit", self.safety_limit_mw, "mW")


@dataclasses.dataclass
class FrameResult:
    """One raster at one pump wavelength: SRS (lock-in output, V) and SHG (PMT, V).

    Arrays are float32 (ny, nx). ``shg`` is None when not recorded. ``faults`` counts
    overloaded/saturated pixels and flags frame-level faults; ``time_s`` is what the real
    instrument would spend (s) by step.
    """

    srs: NDArray[np.float32]
    shg: NDArray[np.float32] | None
    pump_nm: float
    stokes_nm: float
    raman_shift_cm1: float
    pump_mw: float
    stokes_mw: float
    faults: dict[str, Any]
    time_s: dict[str, float]
    window: Window
    truth: Composition


@dataclasses.dataclass
class FieldResult:
    """A SRASH field: one SRS frame per Raman channel plus SHG (with the first frame).

    ``raw``: float32 (C, ny, nx), channels ``channel_names`` (SRS..., then SHG).
    """

    raw: NDArray[np.float32]
    channel_names: list[str]
    raman_shifts_cm1: list[float]
    nominal_shifts_cm1: list[float]
    pump_nm: list[float]
    stokes_nm: float
    pump_mw: list[float]
    stokes_mw: list[float]
    faults: dict[str, Any]
    time_s: dict[str, float]
    window: Window
    truth: Composition
    settings: dict[str, Any]

    @property
    def instrument_time_s(self) -> float:
        return float(sum(self.time_s.values()))

    @property
    def pixel_um(self) -> float:
        return self.window.pixel_um


def merge_faults(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Combine per-frame fault dicts: counts add, flags OR."""
    out: dict[str, Any] = {}
    for f in items:
        for k, v in f.items():
            if v is None:
                out.setdefault(k, None)
            elif isinstance(v, bool):
                out[k] = bool(out.get(k, False)) or v
            elif isinstance(v, (int, float)):
                out[k] = (out.get(k) or 0) + v
            else:
                out[k] = v
    return out


def any_fault(faults: dict[str, Any]) -> bool:
    """True if any flag is set or any counter is non-zero."""
    return any(bool(v) for k, v in faults.items() if not k.endswith("_row"))


class SRASHSimulator:
    """The simulated instrument: specimen + objective + one simulator per part.

    The part objects are public attributes (``pump``, ``stokes``, ``eom``, ``photodiode``,
    ``lockin``, ``pmt``, ``scanner``, ``stage``) holding the state that the ophyd devices
    set; acquisition methods read that state.
    """

    def __init__(self, specimen: Specimen, *, objective: Objective | None = None,
                 pump: PumpLaserSim | None = None, stokes: StokesLaserSim | None = None,
                 eom: EOMSim | None = None, photodiode: PhotodiodeSim | None = None,
                 lockin: LockInSim | None = None, pmt: PMTSim | None = None,
                 scanner: GalvoScannerSim | None = None, stage: XYZStageSim | None = None,
                 response: ResponseConfig | None = None, cache_size: int = 2) -> None:
        self.specimen = specimen
        self.objective = objective or Objective()
        self.pump = pump or PumpLaserSim()
        self.stokes = stokes or StokesLaserSim()
        self.eom = eom or EOMSim(rep_rate_hz=self.pump.config.rep_rate_mhz * 1e6)
        self.photodiode = photodiode or PhotodiodeSim()
        self.lockin = lockin or LockInSim(reference_hz=self.eom.frequency_hz)
        self.pmt = pmt or PMTSim()
        self.scanner = scanner or GalvoScannerSim()
        self.stage = stage or XYZStageSim()
        self.response = response or ResponseConfig()
        self._cache: OrderedDict[Window, tuple[Composition, NDArray]] = OrderedDict()
        self._cache_size = int(cache_size)
        self._pool: ThreadPoolExecutor | None = None

    # ------------------------------------------------------------------ geometry
    def window(self, x_um: float | None = None, y_um: float | None = None) -> Window:
        """The field the scanner rasters now: centred on the stage's actual position."""
        x = self.stage.position["x"] if x_um is None else x_um
        y = self.stage.position["y"] if y_um is None else y_um
        return Window.centered(x, y, self.scanner.fov_um, self.scanner.pixels)

    def margin_px(self, pixel_um: float) -> int:
        """Render margin (px) so PSF blur and jitter never see the window edge."""
        widest = self.objective.ipsf_fwhm_um(self.stokes.wavelength_nm)[0]
        return int(math.ceil(2.0 * widest / pixel_um)) + 3

    # ------------------------------------------------------------------ stage 1
    def composition(self, window: Window) -> tuple[Composition, NDArray[np.float32]]:
        """Ground truth of ``window`` padded by :meth:`margin_px`, and its XPM edge map.

        Cached (LRU) per window: the channels of one field reuse the rendering.
        """
        hit = self._cache.get(window)
        if hit is not None:
            self._cache.move_to_end(window)
            return hit
        m = self.margin_px(window.pixel_um)
        comp = self.specimen.render(window.padded(m))
        n_map = sum(_DN[s] * comp.concentrations[s] for s in SPECIES if _DN[s])
        # XPM: high-pass of the refractive-index map (index minus its ~2 um local mean)
        size = max(3, int(round(2.0 / window.pixel_um)) | 1)
        edges = (n_map - ndimage.uniform_filter(n_map, size)).astype(np.float32)
        self._cache[window] = (comp, edges)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return comp, edges

    # ------------------------------------------------------------------ stage 2
    def srs_modulation(self, window: Window, shift_cm1: float) -> NDArray[np.float32]:
        """In-phase pump modulation depth dI/I (pp) at the reference Stokes power, after the
        SRS PSF, on the padded window (float32).

        .. math:: G = K \\left[\\sum_i c_i \\tilde\\sigma_i(\\Omega) + \\mathrm{XPM}
                  + \\rho_{TA} \\cos\\Delta\\phi_{TA}\\, p\\right] \\otimes \\mathrm{PSF}_{SRS}
        """
        r = self.response
        comp, edges = self.composition(window)
        acc = np.zeros(comp.labels.shape, np.float32)
        for s in SPECIES:
            w = float(species_spectrum(s, shift_cm1, irf_fwhm_cm1=r.irf_fwhm_cm1))
            if w:
                acc += np.float32(w) * comp.concentrations[s]
        acc += np.float32(r.xpm_rel) * edges
        phase_ta = math.radians(r.pigment_phase_deg - self.lockin.phase_deg)
        acc += np.float32(r.pigment_rel * math.cos(phase_ta)) * comp.pigment
        fwhm = self.objective.srs_fwhm_um(self.pump.wavelength_nm, self.stokes.wavelength_nm)[0]
        return (np.float32(r.srs_k) * blur(acc, fwhm, window.pixel_um)).astype(np.float32)

    def shg_photons(self, window: Window, pump_mw: float, stokes_mw: float) -> NDArray[np.float32]:
        """Mean SHG photons at the PMT cathode per pixel per pass (padded window).

        Coherent: amplitude ``chi2 (x) IPSF`` squared, so a point object has the IPSF^2
        width and dense fibrils add quadratically. Scales as P^2 / (f_rep tau) and with dwell.
        """
        r = self.response
        comp, _ = self.composition(window)
        if not comp.chi2.any():
            return np.zeros(comp.chi2.shape, np.float32)
        c = self.pump.config
        pulse = (2.0 / c.pulse_ps) * (80.0 / c.rep_rate_mhz) * self.pump.peak_power_factor
        dwell = self.scanner.dwell_s / 10e-6
        total = np.zeros(comp.chi2.shape, np.float32)
        sources = []
        if r.shg_source in ("pump", "both"):
            sources.append((self.pump.wavelength_nm, (pump_mw / r.ref_pump_mw) ** 2))
        if r.shg_source in ("stokes", "both"):
            lam_ratio = (self.pump.wavelength_nm / self.stokes.wavelength_nm) ** 2
            sources.append((self.stokes.wavelength_nm, (stokes_mw / r.ref_pump_mw) ** 2
                            * self.eom.modulated_mean_square() * lam_ratio))
        for lam, pf in sources:
            if pf == 0:
                continue
            amp = blur(comp.chi2, self.objective.ipsf_fwhm_um(lam)[0], window.pixel_um)
            total += np.float32(r.shg_photons_dense * pulse * dwell * pf) * amp * amp
        return total

    # ------------------------------------------------------------------ stage 3
    def _draw_jitter(self, rng: np.random.Generator) -> tuple[float, float]:
        """Registration error (dy, dx) in pixels of one frame relative to the first."""
        j = self.response.frame_jitter_px
        if j <= 0:
            return (0.0, 0.0)
        d = rng.normal(0.0, j, size=2)
        return float(d[0]), float(d[1])

    @staticmethod
    def _crop_shift(img: NDArray, m: int, shift: tuple[float, float] | None) -> NDArray:
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

        top = sl(r0, c0) * (1 - fx) + sl(r0, c0 + 1) * fx
        bot = sl(r0 + 1, c0) * (1 - fx) + sl(r0 + 1, c0 + 1) * fx
        return (top * (1 - fy) + bot * fy).astype(np.float32, copy=False)

    def srs_detect(self, modulation: NDArray, pump_mw: float, stokes_mw: float,
                   rng: np.random.Generator) -> tuple[NDArray[np.float32], dict[str, Any]]:
        """Lock-in output frame (V) for an (ny, nx) in-phase modulation map.

        Photocurrent ``I = R eta P_P``; in-phase amplitude at the lock-in input
        ``X_in = Z (sqrt2/pi) d G I (P_S/P_S0) cos(dphi) g(r)``; white current noise
        ``i_n sqrt(ENBW) / sqrt(N_avg)`` (shot + RIN + electronic) added per time sample;
        the cascaded RC filter runs causally along the fast axis including flyback; then
        the +-10 V output, 16-bit ADC and the overload count.
        """
        sc, li, pd = self.scanner, self.lockin, self.photodiode
        r = self.response
        pf = self.pump.peak_power_factor
        i_dc = pd.dc_current_a(pump_mw)
        gain = (li.config.frontend_gain_v_per_a * self.eom.fundamental_rms_factor
                * self.eom.effective_depth * i_dc * pd.compression(pump_mw)
                * (stokes_mw / r.ref_stokes_mw) * pf * math.cos(math.radians(li.phase_deg)))
        signal = modulation * (np.float32(gain) * sc.vignetting())
        samples = sc.to_time_order(signal)
        sigma = (li.config.frontend_gain_v_per_a * pd.noise_density_a_per_rthz(pump_mw)
                 * math.sqrt(li.enbw_hz) / math.sqrt(sc.averages))
        noise = rng.standard_normal(samples.shape, dtype=np.float32)
        samples += np.float32(sigma / li.noise_gain(sc.dwell_s)) * noise
        flat = li.filter_time_series(samples.reshape(-1), sc.dwell_s).reshape(samples.shape)
        x_in = sc.from_time_order(flat)
        input_over = int(np.count_nonzero(np.abs(x_in) * math.sqrt(2) > li.config.input_range_v))
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

    # ------------------------------------------------------------------ frames
    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="srash-shg")
        return self._pool

    def _srs_frame(self, rng: np.random.Generator, win: Window, pump_mw: float,
                   stokes_mw: float, jitter: tuple[float, float] | None
                   ) -> tuple[NDArray[np.float32], dict[str, Any], float]:
        m = self.margin_px(win.pixel_um)
        shift = float(raman_shift_cm1(self.pump.wavelength_nm, self.stokes.wavelength_nm))
        mod = self._crop_shift(self.srs_modulation(win, shift), m, jitter)
        srs, faults = self.srs_detect(mod, pump_mw, stokes_mw, rng)
        faults["modelock_lost"] = not self.pump.mode_locked
        return srs, faults, shift

    def _shg_frame(self, rng: np.random.Generator, win: Window, pump_mw: float,
                   stokes_mw: float, jitter: tuple[float, float] | None
                   ) -> tuple[NDArray[np.float32], dict[str, Any]]:
        m = self.margin_px(win.pixel_um)
        photons = self._crop_shift(self.shg_photons(win, pump_mw, stokes_mw), m, jitter)
        return self.pmt.detect(photons, self.scanner.dwell_s, self.scanner.averages, rng)

    def _start_shg(self, rng: np.random.Generator, win: Window, pump_mw: float,
                   stokes_mw: float, jitter: tuple[float, float] | None) -> Future:
        """SHG on the worker thread (the PMT records during the SRS raster), with its own
        generator drawn from ``rng`` so results stay deterministic."""
        self.composition(win)  # render on this thread (cache hit for the worker)
        child = np.random.default_rng(int(rng.integers(0, 2**63)))
        return self._executor().submit(self._shg_frame, child, win, pump_mw, stokes_mw, jitter)

    def frame(self, rng: np.random.Generator, *, with_shg: bool = True,
              jitter: bool = False) -> FrameResult:
        """Raster the current field once at the current settings (all averages).

        ``jitter``: displace this frame by a random registration error (sequential frames
        of one field). The SHG frame (PMT) is recorded during the same raster.
        """
        check_power_safety(self.pump.power_mw, self.stokes.power_mw,
                           self.response.safety_limit_mw)
        win = self.window()
        pump_mw = self.pump.delivered_power_mw(rng)
        stokes_mw = self.stokes.delivered_power_mw(rng)
        shift_px = self._draw_jitter(rng) if jitter else None
        fut = self._start_shg(rng, win, pump_mw, stokes_mw, shift_px) if with_shg else None
        srs, faults, shift = self._srs_frame(rng, win, pump_mw, stokes_mw, shift_px)
        shg = None
        if fut is not None:
            shg, pflags = fut.result()
            faults.update(pflags)
        return self._frame_result(srs, shg, shift, pump_mw, stokes_mw, faults, win)

    def _frame_result(self, srs, shg, shift, pump_mw, stokes_mw, faults, win) -> FrameResult:
        comp, _ = self.composition(win)
        return FrameResult(
            srs=srs, shg=shg, pump_nm=self.pump.wavelength_nm,
            stokes_nm=self.stokes.wavelength_nm, raman_shift_cm1=shift, pump_mw=pump_mw,
            stokes_mw=stokes_mw, faults=faults,
            time_s={"scan": self.scanner.acquisition_time_s}, window=win,
            truth=comp.crop(self.margin_px(win.pixel_um)))

    def tune_to(self, *, shift_cm1: float | None = None, pump_nm: float | None = None) -> float:
        """Tune the pump to a Raman shift or wavelength; returns the tuning time (s)."""
        if (shift_cm1 is None) == (pump_nm is None):
            raise SettingsError("give exactly one of shift_cm1 or pump_nm")
        lam = float(pump_nm_for_shift(shift_cm1, self.stokes.wavelength_nm)) if pump_nm is None \
            else float(pump_nm)
        return self.pump.tune(lam)

    def field(self, rng: np.random.Generator, *, shifts_cm1: Sequence[float] | None = None,
              pump_nm: Sequence[float] | None = None, with_shg: bool = True,
              progress: Callable[[int, int], None] | None = None) -> FieldResult:
        """Acquire one SRASH field: an SRS frame per Raman channel, SHG with the first.

        Give nominal ``shifts_cm1`` (the pump is tuned to give exactly these) or explicit
        ``pump_nm`` (the physical shifts are computed; the paper's 795.9 / 790.9 nm with a
        1031 nm Stokes probe 2865.1 / 2944.5 cm^-1). Default: 2850 and 2930 cm^-1.
        ``progress(i, n)`` is called after each frame.
        """
        if shifts_cm1 is not None and pump_nm is not None:
            raise SettingsError("give shifts_cm1 or pump_nm, not both")
        if pump_nm is None:
            nominal = [float(s) for s in (shifts_cm1 if shifts_cm1 is not None else (2850, 2930))]
            lams = [float(v) for v in pump_nm_for_shift(nominal, self.stokes.wavelength_nm)]
        else:
            lams = [float(v) for v in pump_nm]
            for lam in lams:
                self.pump._check_wavelength(lam)
            nominal = [round(float(raman_shift_cm1(v, self.stokes.wavelength_nm)), 1) for v in lams]
        if not lams:
            raise SettingsError("at least one Raman channel is required")
        check_power_safety(self.pump.power_mw, self.stokes.power_mw, self.response.safety_limit_mw)
        frames: list[FrameResult] = []
        t_tune = 0.0
        fut: Future | None = None
        for i, lam in enumerate(lams):
            t_tune += self.pump.tune(lam)
            win = self.window()
            pump_mw = self.pump.delivered_power_mw(rng)
            stokes_mw = self.stokes.delivered_power_mw(rng)
            shift_px = self._draw_jitter(rng) if i > 0 else None
            if with_shg and i == 0:  # the PMT records during the first raster
                fut = self._start_shg(rng, win, pump_mw, stokes_mw, None)
            srs, faults, shift = self._srs_frame(rng, win, pump_mw, stokes_mw, shift_px)
            frames.append(self._frame_result(srs, None, shift, pump_mw, stokes_mw, faults, win))
            if progress is not None:
                progress(i + 1, len(lams))
        if fut is not None:
            frames[0].shg, pflags = fut.result()
            frames[0].faults.update(pflags)
        srs = [f.srs for f in frames]
        names = [f"SRS_{_label(s)}" for s in nominal]
        if with_shg:
            srs.append(frames[0].shg)  # type: ignore[arg-type]
            names.append("SHG")
        times = {"tuning": t_tune, "scan": sum(f.time_s["scan"] for f in frames)}
        return FieldResult(
            raw=np.stack(srs).astype(np.float32, copy=False), channel_names=names,
            raman_shifts_cm1=[f.raman_shift_cm1 for f in frames], nominal_shifts_cm1=nominal,
            pump_nm=lams, stokes_nm=self.stokes.wavelength_nm,
            pump_mw=[f.pump_mw for f in frames], stokes_mw=[f.stokes_mw for f in frames],
            faults=merge_faults([f.faults for f in frames]), time_s=times,
            window=frames[0].window, truth=frames[0].truth, settings=self.settings())

    def stack(self, rng: np.random.Generator, shifts_cm1: Sequence[float],
              progress: Callable[[int, int], None] | None = None) -> FieldResult:
        """Hyperspectral SRS stack at one position: one frame per Raman shift (no SHG).

        Each frame has its own OPO power (tuning curve, ripple, drift) and a registration
        jitter, as on the real instrument (physics.md s3.4).
        """
        shifts = [float(s) for s in shifts_cm1]
        if len(shifts) < 2:
            raise SettingsError("a hyperspectral stack needs at least 2 Raman shifts")
        return self.field(rng, shifts_cm1=shifts, with_shg=False, progress=progress)

    def dark_levels(self, rng: np.random.Generator) -> dict[str, float]:
        """Mean SRS and SHG outputs (V) with both shutters closed (a background frame).

        Rasters a blank frame through the same detection path (no light: electronic noise,
        lock-in and PMT offsets only).
        """
        sc = self.scanner
        zeros = np.zeros((sc.pixels, sc.pixels), np.float32)
        srs, _ = self.srs_detect(zeros, 0.0, 0.0, rng)
        shg, _ = self.pmt.detect(zeros, sc.dwell_s, sc.averages, rng)
        return {"srs_v": float(srs.mean()), "shg_v": float(shg.mean())}

    def srs_volts_per_unit(self, pump_mw: float | None = None,
                           stokes_mw: float | None = None) -> float:
        """Lock-in output (V above offset) per unit of ``sum c_i sigma_i`` (pure lipid at its
        2853 peak = 1) at the given (default: reference) powers, on axis."""
        r = self.response
        p = r.ref_pump_mw if pump_mw is None else pump_mw
        s = r.ref_stokes_mw if stokes_mw is None else stokes_mw
        li, pd = self.lockin, self.photodiode
        return (10.0 / li.sensitivity_v * li.config.frontend_gain_v_per_a
                * self.eom.fundamental_rms_factor * self.eom.effective_depth * pd.dc_current_a(p)
                * pd.compression(p) * (s / r.ref_stokes_mw) * r.srs_k
                * math.cos(math.radians(li.phase_deg)))

    def shg_volts_per_unit(self) -> float:
        """Mean PMT output (V above offset) for dense collagen (chi2 = 1) at reference power."""
        c = self.pmt.config
        from simulators.parts.photodiode import ELEMENTARY_CHARGE_C

        pe = self.response.shg_photons_dense * (self.scanner.dwell_s / 10e-6) * c.qe
        return pe * self.pmt.gain * ELEMENTARY_CHARGE_C / self.scanner.dwell_s * \
            c.transimpedance_v_per_a

    def settings(self) -> dict[str, Any]:
        """JSON-safe dump of every part's configuration and state (run provenance)."""
        sc, li = self.scanner, self.lockin
        return {
            "specimen": self.specimen.describe(),
            "objective": self.objective.to_dict(),
            "response": self.response.to_dict(),
            "pump": {"config": self.pump.config.to_dict(), "wavelength_nm": self.pump.wavelength_nm,
                     "power_mw": self.pump.power_mw, "mode_locked": self.pump.mode_locked},
            "stokes": {"config": self.stokes.config.to_dict(), "power_mw": self.stokes.power_mw},
            "eom": {"frequency_hz": self.eom.frequency_hz, "depth": self.eom.depth,
                    "enabled": self.eom.enabled},
            "photodiode": {"config": self.photodiode.config.to_dict(),
                           "bias_v": self.photodiode.bias_v},
            "lockin": {"config": li.config.to_dict(), "tau_s": li.tau_s, "order": li.order,
                       "sensitivity_v": li.sensitivity_v, "phase_deg": li.phase_deg,
                       "output": li.output},
            "pmt": {"config": self.pmt.config.to_dict(), "voltage": self.pmt.voltage,
                    "gain": self.pmt.gain},
            "scanner": {"config": sc.config.to_dict(), "pixels": sc.pixels, "fov_um": sc.fov_um,
                        "dwell_s": sc.dwell_s, "averages": sc.averages,
                        "bidirectional": sc.bidirectional},
            "stage": {"config": self.stage.config.to_dict(), "position_um": dict(self.stage.position)},
        }


@dataclasses.dataclass
class ProcessedField:
    """A field after background subtraction and power normalisation (volts at the
    reference powers), with the lipid/protein unmixing and RGB composite when the field has
    a lipid (~2850) and a protein (~2930) channel and SHG."""

    data: NDArray[np.float32]
    channel_names: list[str]
    background_v: dict[str, float]
    references_v: dict[str, float]
    lipid: NDArray[np.float32] | None = None
    protein: NDArray[np.float32] | None = None
    composite: NDArray[np.float32] | None = None


def process_field(sim: SRASHSimulator, field: FieldResult, rng: np.random.Generator, *,
                  composite: CompositeConfig | None = None) -> ProcessedField:
    """The paper's processing of a raw field acquired on ``sim``.

    Background: the mean of a shutters-closed frame at the same settings
    (:meth:`SRASHSimulator.dark_levels`). Power: each SRS channel with its own measured
    pump/Stokes power, SHG with the pump power. References for unmixing and display: the
    instrument's response to pure lipid / dense collagen at the reference powers (what a
    power calibration on the ``reference`` specimen measures).
    """
    r = sim.response
    dark = sim.dark_levels(rng)
    n_srs = len(field.raman_shifts_cm1)
    out = np.empty_like(field.raw)
    refs: dict[str, float] = {}
    g = sim.srs_volts_per_unit()
    for k in range(n_srs):
        out[k] = normalize_power(subtract_background(field.raw[k], dark["srs_v"]),
                                 pump_mw=max(field.pump_mw[k], 1e-9),
                                 stokes_mw=max(field.stokes_mw[k], 1e-9),
                                 ref_pump_mw=r.ref_pump_mw, ref_stokes_mw=r.ref_stokes_mw)
        refs[field.channel_names[k]] = g * float(
            species_spectrum("lipid", field.raman_shifts_cm1[k], irf_fwhm_cm1=r.irf_fwhm_cm1))
    has_shg = len(field.channel_names) > n_srs
    if has_shg:
        out[n_srs] = normalize_power(subtract_background(field.raw[n_srs], dark["shg_v"]),
                                     pump_mw=max(field.pump_mw[0], 1e-9), kind="shg",
                                     ref_pump_mw=r.ref_pump_mw)
        refs["SHG"] = sim.shg_volts_per_unit()
    res = ProcessedField(data=out, channel_names=list(field.channel_names), background_v=dark,
                         references_v=refs)
    nominal = np.asarray(field.nominal_shifts_cm1)
    if n_srs >= 2:
        il = int(np.argmin(np.abs(nominal - 2850)))
        ip = int(np.argmin(np.abs(nominal - 2930)))
        if il != ip and abs(nominal[il] - 2850) <= 25 and abs(nominal[ip] - 2930) <= 25:
            res.lipid, res.protein = unmix_lipid_protein(
                out[il], out[ip], volts_per_unit=g, irf_fwhm_cm1=r.irf_fwhm_cm1,
                shifts_cm1=[field.raman_shifts_cm1[il], field.raman_shifts_cm1[ip]])
            if has_shg:
                names = field.channel_names
                res.composite = composite_rgb(
                    out[ip], out[il], out[n_srs], protein_ref=refs[names[ip]],
                    lipid_ref=refs[names[il]], shg_ref=refs["SHG"], config=composite)
    return res


def build_simulator(specimen: Specimen, *, pixels: int = 1200, fov_um: float = 360.0,
                    dwell_s: float = 10e-6, averages: int = 3, bidirectional: bool = False,
                    pump_mw: float = 40.0, stokes_mw: float = 40.0, stokes_nm: float = 1031.0,
                    x_um: float = 0.0, y_um: float = 0.0,
                    response: ResponseConfig | None = None) -> SRASHSimulator:
    """A simulated instrument around ``specimen`` with the paper's defaults, the stage at
    (``x_um``, ``y_um``) and the given scan and power settings (all range-checked)."""
    from simulators.parts.lasers import StokesLaserConfig

    resp = response or ResponseConfig()
    check_power_safety(pump_mw, stokes_mw, resp.safety_limit_mw)
    sim = SRASHSimulator(
        specimen,
        stokes=StokesLaserSim(StokesLaserConfig(wavelength_nm=stokes_nm), power_mw=stokes_mw),
        scanner=GalvoScannerSim(pixels=pixels, fov_um=fov_um, dwell_s=dwell_s,
                                averages=averages, bidirectional=bidirectional),
        response=resp)
    sim.pump.set_power(pump_mw)
    sim.stage.move(x=x_um, y=y_um)
    return sim


def _label(shift: float) -> str:
    return f"{shift:g}" if float(shift).is_integer() else f"{shift:.1f}"


def timed(fn, *args, **kwargs):
    """(result, wall seconds) of ``fn(*args, **kwargs)``."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0
