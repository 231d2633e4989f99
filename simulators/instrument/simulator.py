"""The simulated SRASH instrument: the parts, and ONE acquisition primitive, :meth:`frame`.

Stages (each public, so a scientist can stop after any one and look; microsim style):

1. :meth:`SRASHSimulator.composition`   specimen window -> concentration maps
   (:mod:`~simulators.instrument.render`)
2. :meth:`SRASHSimulator.srs_modulation` / :meth:`~SRASHSimulator.shg_photons`  SRS pump
   modulation depth dI/I and SHG photons after their PSFs (:mod:`~.contrast`)
3. :meth:`SRASHSimulator.srs_detect` / ``pmt.detect``  raster timing, registration error,
   lock-in filter, detector noise, overload -> frames in detector units (:mod:`~.detection`)

Every raster goes through :meth:`SRASHSimulator.frame`: the detector of a scan calls it once
per trigger, :meth:`~SRASHSimulator.field` and :meth:`~SRASHSimulator.stack` call it once
per Raman channel. The registration error (frame jitter) is scanner state
(:meth:`simulators.parts.scanner.GalvoScannerSim.next_registration`), so every caller gets
it: the first raster of a field defines the field, later rasters of the same field are
displaced.

Every random draw uses the ``numpy.random.Generator`` passed in, in a fixed order per raster
(delivered pump and Stokes power, registration error, the PMT's own generator, lock-in
noise), whether or not SHG is kept: the same seeds and the same operations give the same
frames. The session's state (SRS gain, SHG yield, slow drifts: :mod:`.acquisition`) is drawn
once from the session stream of the noise seed, never from the frame generator; the
drifts are evaluated on the instrument's clock (:attr:`SRASHSimulator.clock_s`: raster and
tuning time since the session started). Averaging is simulated exactly in distribution:
Gaussian noise of N averaged passes is one draw with sigma/sqrt(N) (the lock-in filter is
linear) and the PMT's compound Poisson-Gamma charge of N passes is one Poisson-Gamma draw
with N times the rate.
"""

from __future__ import annotations

import math
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Sequence

import numpy as np
from numpy.typing import NDArray

from simulators.errors import SettingsError, check_positive
from simulators.instrument import contrast, detection
from simulators.instrument.acquisition import (
    AcquisitionConfig,
    AcquisitionSession,
    draw_session,
    field_focus_offset,
    noise_seed_of,
    overlap_widths,
)
from simulators.instrument.focus import FocalPlane
from simulators.instrument.render import CompositionCache, margin_px
from simulators.instrument.response import ResponseConfig
from simulators.instrument.results import FieldResult, FrameResult, merge_faults
from simulators.optics import Objective
from simulators.parts.eom import EOMSim
from simulators.parts.lasers import (
    PumpLaserSim,
    StokesLaserConfig,
    StokesLaserSim,
    check_power_safety,
)
from simulators.parts.lockin import LockInSim
from simulators.parts.photodiode import ELEMENTARY_CHARGE_C, PhotodiodeSim
from simulators.parts.pmt import PMTSim
from simulators.parts.scanner import GalvoScannerSim, ScannerConfig
from simulators.parts.stage import XYZStageSim
from simulators.specimens.base import Composition, Specimen, Window
from simulators.spectra import pump_nm_for_shift, raman_shift_cm1


def noise_generators(noise_seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    """The instrument's two independent generators for a noise seed: ``(frames, motion)``.

    ``frames`` feeds :meth:`SRASHSimulator.frame` (detector noise, power drift,
    registration error); ``motion`` the stage's repeatability. Everything that acquires
    (the detector of a scan, ``srash simulate``) derives them here, so the same
    ``noise_seed`` gives the same frames. The third child of the seed is the session stream
    (:func:`simulators.instrument.acquisition.session_seed_sequence`).
    """
    frame_ss, motion_ss = np.random.SeedSequence(int(noise_seed)).spawn(2)
    return np.random.default_rng(frame_ss), np.random.default_rng(motion_ss)


class SRASHSimulator:
    """The simulated instrument: specimen + objective + one simulator per part.

    The part objects are public attributes (``pump``, ``stokes``, ``eom``, ``photodiode``,
    ``lockin``, ``pmt``, ``scanner``, ``stage``) holding the state that the ophyd devices
    set; acquisition methods read that state.

    ``acquisition``: the session-to-session and within-session variability (default
    :class:`~.acquisition.AcquisitionConfig`, realistic; ``AcquisitionConfig.ideal()`` for
    none). ``session_seed``: the noise seed whose session this is; when None, the session of
    the noise seed of the first generator the instrument acquires or calibrates with
    (:func:`~.acquisition.noise_seed_of`), or of noise seed 0 if something reads it first.
    """

    def __init__(self, specimen: Specimen, *, objective: Objective | None = None,
                 pump: PumpLaserSim | None = None, stokes: StokesLaserSim | None = None,
                 eom: EOMSim | None = None, photodiode: PhotodiodeSim | None = None,
                 lockin: LockInSim | None = None, pmt: PMTSim | None = None,
                 scanner: GalvoScannerSim | None = None, stage: XYZStageSim | None = None,
                 response: ResponseConfig | None = None, cache_size: int = 2,
                 acquisition: AcquisitionConfig | None = None,
                 session_seed: int | None = None) -> None:
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
        self._cache = CompositionCache(cache_size)
        self._pool: ThreadPoolExecutor | None = None
        self.acquisition = acquisition or AcquisitionConfig()
        self._session: AcquisitionSession | None = None
        self._raster_s = 0.0
        self._tuning_s0 = self.pump.tuning_s
        if session_seed is not None:
            self.start_session(session_seed)

    # ------------------------------------------------------------------ session
    def start_session(self, noise_seed: int) -> AcquisitionSession:
        """Start the session of ``noise_seed``: draw its state from the seed's session
        stream and set the clock to 0."""
        o, pump, stokes = self.objective, self.pump, self.stokes
        widths, pulse = overlap_widths(o.ipsf_fwhm_um(pump.wavelength_nm),
                                       o.ipsf_fwhm_um(stokes.wavelength_nm),
                                       pump.config.pulse_ps, stokes.config.pulse_ps)
        self._session = draw_session(self.acquisition, noise_seed, widths_um=widths,
                                     pulse_sigma_ps=pulse)
        self._raster_s = 0.0
        self._tuning_s0 = self.pump.tuning_s
        return self._session

    @property
    def session(self) -> AcquisitionSession:
        """This session's state (drawn for noise seed 0 if no session was started)."""
        if self._session is None:
            return self.start_session(0)
        return self._session

    def _session_for(self, rng: np.random.Generator) -> AcquisitionSession:
        if self._session is None:
            return self.start_session(noise_seed_of(rng))  # type: ignore[arg-type]
        return self._session

    @property
    def clock_s(self) -> float:
        """Instrument time (s) since the session started: rasters (all averages) and pump
        tuning; stage moves are not counted."""
        return self._raster_s + (self.pump.tuning_s - self._tuning_s0)

    def wait(self, seconds: float) -> None:
        """Let ``seconds`` of instrument time pass without rastering (the drifts go on)."""
        self._raster_s += check_positive("waiting time", seconds, "s", allow_zero=True)

    # ------------------------------------------------------------------ geometry
    def window(self, x_um: float | None = None, y_um: float | None = None) -> Window:
        """The field the scanner rasters now: centred on the stage's actual position."""
        x = self.stage.position["x"] if x_um is None else x_um
        y = self.stage.position["y"] if y_um is None else y_um
        return Window.centered(x, y, self.scanner.fov_um, self.scanner.pixels)

    def margin_px(self, pixel_um: float) -> int:
        """Render margin (px) so PSF blur and registration never see the window edge."""
        return margin_px(self.objective, self.stokes.wavelength_nm, pixel_um)

    def focal_plane(self, window: Window) -> FocalPlane:
        """Where the focus sits over ``window`` (heights in um; 0: the mid-plane of the
        specimen's nominal section): the stage's z plus the session's focus error of this
        field at the field's centre, tilted by the session's slide tilt
        (docs/physics-notes.md, Focus and section thickness). Before a session is started
        (nothing acquired or calibrated yet) the focus is exactly at the stage's z: reading
        the composition does not fix the session, which the first acquisition adopts."""
        c = window.center_um
        ses = self._session
        if ses is None:
            return FocalPlane(z_um=self.stage.position["z"], center_um=c)
        z = self.stage.position["z"] + field_focus_offset(ses, c)
        return FocalPlane(z_um=z, slope_x=ses.tilt[0], slope_y=ses.tilt[1], center_um=c)

    def axial_fwhm_um(self) -> tuple[float, float]:
        """(SRS, SHG amplitude) axial FWHMs (um) that weight the section's thickness: the
        SRS PSF and the pump's one-photon illumination PSF, at the CH2 channel's pump
        (2850 cm^-1) for the current Stokes wavelength (the ~1 % change across the CH band
        is neglected, so one render serves every channel of a field)."""
        pump = float(pump_nm_for_shift(2850.0, self.stokes.wavelength_nm))
        return (self.objective.srs_fwhm_um(pump, self.stokes.wavelength_nm)[1],
                self.objective.ipsf_fwhm_um(pump)[1])

    # ------------------------------------------------------------------ stage 1
    def composition(self, window: Window) -> tuple[Composition, NDArray[np.float32]]:
        """Ground truth of ``window`` padded by :meth:`margin_px` at the field's focal plane
        (:meth:`focal_plane`), and its XPM edge map.

        Cached (LRU) per window and focus: the channels of one field reuse the rendering.
        """
        return self._cache.get(self.specimen, window, self.margin_px(window.pixel_um),
                               self.focal_plane(window), self.axial_fwhm_um())

    # ------------------------------------------------------------------ stage 2
    def srs_modulation(self, window: Window, shift_cm1: float) -> NDArray[np.float32]:
        """In-phase pump modulation depth dI/I (pp) at the reference Stokes power, after the
        SRS PSF, on the padded window (float32); see :func:`.contrast.srs_modulation`."""
        comp, edges = self.composition(window)
        fwhm = self.objective.srs_fwhm_um(self.pump.wavelength_nm, self.stokes.wavelength_nm)[0]
        return contrast.srs_modulation(comp, edges, shift_cm1, self.response,
                                       lockin_phase_deg=self.lockin.phase_deg,
                                       psf_fwhm_um=fwhm, pixel_um=window.pixel_um)

    def shg_photons(self, window: Window, pump_mw: float, stokes_mw: float) -> NDArray[np.float32]:
        """Mean photons at the SHG PMT's cathode per pixel per pass (padded window): SHG
        times the session's SHG yield, plus the pigment's two-photon autofluorescence that
        leaks through the SHG filter.

        Scales as P^2 / (f_rep tau) and with dwell; see :func:`.contrast.shg_photons` and
        :func:`.contrast.autofluorescence_photons`.
        """
        return self._shg_cathode(*self._shg_inputs(window, pump_mw, stokes_mw),
                                 objective=self.objective, pixel_um=window.pixel_um,
                                 response=self.response)

    def _shg_inputs(self, window: Window, pump_mw: float, stokes_mw: float
                    ) -> tuple[Composition, list[tuple[float, float]], float,
                               NDArray[np.float32], float, float]:
        """The composition (padded window: its chi2, fibre directions and rho), SHG sources,
        dense-collagen photons per pass (times the session's SHG yield), the pigment map,
        autofluorescence photons per pass per unit pigment and the pump wavelength, read
        from the instrument's current state."""
        comp, _ = self.composition(window)
        c = self.pump.config
        pulse = (2.0 / c.pulse_ps) * (80.0 / c.rep_rate_mhz) * self.pump.peak_power_factor
        dwell = self.scanner.dwell_s / 10e-6
        sources = contrast.shg_sources(
            self.response, pump_nm=self.pump.wavelength_nm, stokes_nm=self.stokes.wavelength_nm,
            pump_mw=pump_mw, stokes_mw=stokes_mw,
            stokes_mean_square=self.eom.modulated_mean_square())
        ses = self.session
        af = (ses.af_photons_per_pigment * (pump_mw / self.response.ref_pump_mw) ** 2
              * pulse * dwell)
        return (comp, sources, self.response.shg_photons_dense * pulse * dwell
                * ses.shg_yield, comp.pigment, af, self.pump.wavelength_nm)

    @staticmethod
    def _shg_cathode(comp: Composition, sources: Sequence[tuple[float, float]],
                     photons_per_pass: float, pigment: NDArray[np.float32], af_per_pass: float,
                     pump_nm: float, *, objective: Objective, pixel_um: float,
                     response: ResponseConfig) -> NDArray[np.float32]:
        chi2 = oriented_chi2(comp, response)
        photons = contrast.shg_photons(chi2, sources, photons_per_pass=photons_per_pass,
                                       objective=objective, pixel_um=pixel_um)
        if af_per_pass > 0 and pigment.any():
            photons = photons + contrast.autofluorescence_photons(
                pigment, af_per_pass, psf_fwhm_um=objective.shg_fwhm_um(pump_nm)[0],
                pixel_um=pixel_um)
        return photons

    # ------------------------------------------------------------------ stage 3
    def srs_detect(self, modulation: NDArray, pump_mw: float, stokes_mw: float,
                   rng: np.random.Generator, srs_gain: float = 1.0
                   ) -> tuple[NDArray[np.float32], dict[str, Any]]:
        """Lock-in output frame (V) for an (ny, nx) in-phase modulation map
        (:func:`.detection.lockin_frame` with this instrument's parts); ``srs_gain``: the
        beam-overlap factor of the session at the raster's time."""
        return detection.lockin_frame(
            modulation, pump_mw=pump_mw, stokes_mw=stokes_mw,
            ref_stokes_mw=self.response.ref_stokes_mw,
            peak_power_factor=self.pump.peak_power_factor, scanner=self.scanner,
            lockin=self.lockin, photodiode=self.photodiode, eom=self.eom, rng=rng,
            srs_gain=srs_gain)

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="srash-shg")
        return self._pool

    def _srs_frame(self, rng: np.random.Generator, win: Window, pump_mw: float,
                   stokes_mw: float, shift_px: tuple[float, float], srs_gain: float
                   ) -> tuple[NDArray[np.float32], dict[str, Any], float]:
        m = self.margin_px(win.pixel_um)
        shift = float(raman_shift_cm1(self.pump.wavelength_nm, self.stokes.wavelength_nm))
        mod = detection.register(self.srs_modulation(win, shift), m, shift_px)
        srs, faults = self.srs_detect(mod, pump_mw, stokes_mw, rng, srs_gain)
        faults["modelock_lost"] = not self.pump.mode_locked
        return srs, faults, shift

    def _shg_job(self, rng: np.random.Generator, win: Window, pump_mw: float,
                 stokes_mw: float, shift_px: tuple[float, float]
                 ) -> Callable[[], tuple[NDArray[np.float32], dict[str, Any]]]:
        """The SHG (PMT) raster as a job for the worker thread. Everything it needs of the
        instrument is read now, so the result does not depend on when the job runs (the
        pump may be retuned for the next channel meanwhile)."""
        inputs = self._shg_inputs(win, pump_mw, stokes_mw)
        m = self.margin_px(win.pixel_um)
        objective, dwell_s, averages, pmt = (self.objective, self.scanner.dwell_s,
                                             self.scanner.averages, self.pmt)
        response = self.response
        vignetting = self.scanner.vignetting()

        def job() -> tuple[NDArray[np.float32], dict[str, Any]]:
            photons = self._shg_cathode(*inputs, objective=objective, pixel_um=win.pixel_um,
                                        response=response)
            # two-photon excitation: the pump's vignetting squared, the SRS map (P_P P_S)
            photons = detection.register(photons, m, shift_px) * vignetting
            return pmt.detect(photons, dwell_s, averages, rng)

        return job

    # ------------------------------------------------------------------ acquisition
    def frame(self, rng: np.random.Generator, *, with_shg: bool = True) -> FrameResult:
        """Raster the current field once at the current settings (all averages): THE
        acquisition primitive.

        Draws, in this order: the delivered pump and Stokes powers, the raster's
        registration error (scanner state: none for the first raster of a field), a
        generator for the PMT, the lock-in noise. The SHG frame (PMT) is recorded during the
        same raster, on a worker thread, when ``with_shg``; the draws do not depend on it.
        The session's slow drifts are taken at the middle of the raster (instrument clock);
        the delivered powers, as recorded, include the power drifts.
        """
        result, shg = self._raster(rng, with_shg=with_shg)
        if shg is not None:
            _collect_shg(result, shg)
        return result

    def _raster(self, rng: np.random.Generator, *, with_shg: bool
                ) -> tuple[FrameResult, Future | None]:
        """:meth:`frame` with the SHG still running: the frame (``shg`` None) and the
        worker's future, for :func:`_collect_shg`."""
        check_power_safety(self.pump.power_mw, self.stokes.power_mw,
                           self.response.safety_limit_mw)
        win = self.window()
        ses = self._session_for(rng)
        t_mid = self.clock_s + 0.5 * self.scanner.acquisition_time_s
        pump_mw = self.pump.delivered_power_mw(rng) * ses.pump_drift(t_mid)
        stokes_mw = self.stokes.delivered_power_mw(rng) * ses.stokes_drift(t_mid)
        srs_gain = ses.srs_factor(t_mid)
        self._raster_s += self.scanner.acquisition_time_s
        shift_px = self.scanner.next_registration(win, rng)
        pmt_rng = np.random.default_rng(int(rng.integers(0, 2**63)))
        fut: Future | None = None
        if with_shg:
            fut = self._executor().submit(
                self._shg_job(pmt_rng, win, pump_mw, stokes_mw, shift_px))
        srs, faults, shift = self._srs_frame(rng, win, pump_mw, stokes_mw, shift_px, srs_gain)
        comp, _ = self.composition(win)
        result = FrameResult(
            srs=srs, shg=None, pump_nm=self.pump.wavelength_nm,
            stokes_nm=self.stokes.wavelength_nm, raman_shift_cm1=shift, pump_mw=pump_mw,
            stokes_mw=stokes_mw, faults=faults,
            time_s={"scan": self.scanner.acquisition_time_s}, window=win,
            truth=comp.crop(self.margin_px(win.pixel_um)), registration_px=shift_px)
        return result, fut

    def tune_to(self, *, shift_cm1: float | None = None, pump_nm: float | None = None) -> float:
        """Tune the pump to a Raman shift or wavelength; returns the tuning time (s)."""
        if (shift_cm1 is None) == (pump_nm is None):
            raise SettingsError("give exactly one of shift_cm1 or pump_nm")
        if pump_nm is None:
            assert shift_cm1 is not None  # exactly one of the two is given (checked above)
            lam = float(pump_nm_for_shift(shift_cm1, self.stokes.wavelength_nm))
        else:
            lam = float(pump_nm)
        return self.pump.tune(lam)

    def field(self, rng: np.random.Generator, *, shifts_cm1: Sequence[float] | None = None,
              pump_nm: Sequence[float] | None = None, with_shg: bool = True,
              progress: Callable[[int, int], None] | None = None) -> FieldResult:
        """Acquire one SRASH field: tune, then :meth:`frame` per Raman channel; SHG is kept
        from the first.

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
        shg: Future | None = None
        for i, lam in enumerate(lams):
            t_tune += self.pump.tune(lam)
            # the frame's SHG keeps running on the worker while the next channel rasters
            result, fut = self._raster(rng, with_shg=with_shg and i == 0)
            frames.append(result)
            shg = fut if fut is not None else shg
            if progress is not None:
                progress(i + 1, len(lams))
        if shg is not None:
            _collect_shg(frames[0], shg)
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
            window=frames[0].window, truth=frames[0].truth, settings=self.settings(),
            registration_px=[f.registration_px for f in frames])

    def stack(self, rng: np.random.Generator, shifts_cm1: Sequence[float],
              progress: Callable[[int, int], None] | None = None) -> FieldResult:
        """Hyperspectral SRS stack at one position: one frame per Raman shift (no SHG).

        Each frame has its own OPO power (tuning curve, ripple, drift) and registration
        error, as on the real instrument (docs/physics-notes.md, scanner).
        """
        shifts = [float(s) for s in shifts_cm1]
        if len(shifts) < 2:
            raise SettingsError("a hyperspectral stack needs at least 2 Raman shifts")
        return self.field(rng, shifts_cm1=shifts, with_shg=False, progress=progress)

    # ------------------------------------------------------------------ calibration
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
        2853 peak = 1) at the given (default: reference) powers, on axis, as measured on the
        lipid standard at the start of the session: includes the session's SRS gain
        (beam overlap) at clock 0, not its later drift."""
        r = self.response
        p = r.ref_pump_mw if pump_mw is None else pump_mw
        s = r.ref_stokes_mw if stokes_mw is None else stokes_mw
        li, pd = self.lockin, self.photodiode
        return (10.0 / li.sensitivity_v * li.config.frontend_gain_v_per_a
                * self.eom.fundamental_rms_factor * self.eom.effective_depth * pd.dc_current_a(p)
                * pd.compression(p) * (s / r.ref_stokes_mw) * r.srs_k
                * math.cos(math.radians(li.phase_deg))) * self.session.srs_factor(0.0)

    def shg_volts_per_unit(self) -> float:
        """Mean PMT output (V above offset) for dense collagen (chi2 = 1) at reference power,
        on axis, in this session (includes its SHG yield)."""
        c = self.pmt.config
        pe = (self.response.shg_photons_dense * (self.scanner.dwell_s / 10e-6) * c.qe
              * self.session.shg_yield)
        return pe * self.pmt.gain * ELEMENTARY_CHARGE_C / self.scanner.dwell_s * \
            c.transimpedance_v_per_a

    def calibration(self, rng: np.random.Generator) -> dict[str, Any]:
        """The calibration record at the current settings: dark levels (a shutters-closed
        frame, drawn from ``rng``), volts per unit of pure lipid / dense collagen at the
        reference powers, the reference powers and the spectral resolution.

        The volts per unit are a measurement on the reference standards: this session's
        true values (:meth:`srs_volts_per_unit`, :meth:`shg_volts_per_unit`) x the
        session's calibration ratios (a record from an earlier alignment, and the
        standards' measurement error: :class:`~.acquisition.AcquisitionConfig`);
        ``measured`` says which. Exact under :meth:`AcquisitionConfig.ideal`."""
        ses = self._session_for(rng)
        dark = self.dark_levels(rng)
        r = self.response
        return {"srs_dark_v": dark["srs_v"], "shg_dark_v": dark["shg_v"],
                "srs_volts_per_unit": float(self.srs_volts_per_unit()
                                            * ses.calibration_srs_ratio),
                "shg_volts_per_unit": float(self.shg_volts_per_unit()
                                            * ses.calibration_shg_ratio),
                "measured": "earlier alignment" if ses.calibration_stale else "this session",
                "ref_pump_mw": float(r.ref_pump_mw), "ref_stokes_mw": float(r.ref_stokes_mw),
                "irf_fwhm_cm1": float(r.irf_fwhm_cm1)}

    def settings(self) -> dict[str, Any]:
        """JSON-safe dump of every part's configuration and state (run provenance)."""
        sc, li = self.scanner, self.lockin
        return {
            "specimen": self.specimen.describe(),
            "acquisition": {"config": self.acquisition.to_dict(),
                            "session": self.session.to_dict(), "clock_s": self.clock_s,
                            "focal_plane": self.focal_plane(self.window()).to_dict()},
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
                        "bidirectional": sc.bidirectional,
                        "registration_px": list(sc.registration_px)},
            "stage": {"config": self.stage.config.to_dict(),
                      "position_um": dict(self.stage.position)},
        }


def build_simulator(specimen: Specimen, *, pixels: int = 1200, fov_um: float = 360.0,
                    dwell_s: float = 10e-6, averages: int = 3, bidirectional: bool = False,
                    pump_mw: float = 40.0, stokes_mw: float = 40.0, stokes_nm: float = 1031.0,
                    x_um: float = 0.0, y_um: float = 0.0,
                    response: ResponseConfig | None = None,
                    scanner: ScannerConfig | None = None,
                    acquisition: AcquisitionConfig | None = None,
                    session_seed: int | None = None) -> SRASHSimulator:
    """A simulated instrument around ``specimen`` with the paper's defaults, the stage at
    (``x_um``, ``y_um``) and the given scan and power settings (all range-checked).
    ``scanner``: scanner limits and registration error (default :class:`ScannerConfig`);
    ``acquisition``, ``session_seed``: the session's variability and its noise seed
    (:class:`SRASHSimulator`)."""
    resp = response or ResponseConfig()
    check_power_safety(pump_mw, stokes_mw, resp.safety_limit_mw)
    sim = SRASHSimulator(
        specimen,
        stokes=StokesLaserSim(StokesLaserConfig(wavelength_nm=stokes_nm), power_mw=stokes_mw),
        scanner=GalvoScannerSim(scanner, pixels=pixels, fov_um=fov_um, dwell_s=dwell_s,
                                averages=averages, bidirectional=bidirectional),
        response=resp, acquisition=acquisition)
    sim.pump.set_power(pump_mw)
    if session_seed is not None:
        sim.start_session(session_seed)
    sim.stage.move(x=x_um, y=y_um)
    return sim


def oriented_chi2(comp: Composition, response: ResponseConfig) -> NDArray[np.float32]:
    """SHG amplitude of ``comp`` at ``response``'s laser polarisation: ``chi2`` times
    :func:`.contrast.polarisation_amplitude` (``chi2`` itself where the specimen sets no
    fibre direction)."""
    if comp.fibre_angle is None or not comp.chi2.any():
        return comp.chi2
    amp = contrast.polarisation_amplitude(comp.fibre_angle, comp.shg_rho, response.polarization,
                                          response.polarization_deg)
    return np.multiply(comp.chi2, amp, dtype=np.float32)


def _collect_shg(frame: FrameResult, shg: Future) -> None:
    """Wait for a raster's SHG frame and put it, and the PMT's fault flags, into ``frame``."""
    frame.shg, flags = shg.result()
    frame.faults.update(flags)


def _label(shift: float) -> str:
    """The shift in a channel name: 0.1 cm^-1, no trailing zeros (the spelling of
    ``plans.contract.srs_channel``, which this package may not import; the contract's tests
    prove they agree)."""
    return f"{round(float(shift), 1) + 0.0:g}"
