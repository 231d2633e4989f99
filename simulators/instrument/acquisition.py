"""How one imaging session differs from the next, and how the instrument drifts within it
(docs/physics-notes.md, Acquisition variability).

:class:`AcquisitionConfig` holds the distributions; :func:`draw_session` draws one
session's state (:class:`AcquisitionSession`) from the session stream of a noise seed
(:func:`session_seed_sequence`, the third child of the seed; the frame and motion streams of
:func:`~simulators.instrument.simulator.noise_generators` are the first two), so the frame
noise is drawn exactly as before and the same noise seed is the same session on every
acquisition path.

Per session: an SRS gain <= 1 from the misalignment of the pump and Stokes foci (lateral and
axial offsets) and pulses (delay / chirp mismatch), and an SHG yield (PMT gain at its set
voltage, polarisation state), lognormal. Within a session: slow, smooth drifts of the pump
and Stokes powers (measured: the delivered powers recorded with each frame follow them) and
of the beam overlap (not measured: it scales the SRS signal only). Per instrument: the
leak of two-photon autofluorescence of pigment (lipofuscin) through the SHG filter. Focus:
the slide's tilt per session, and a focus error per field (:func:`field_focus_offset`,
keyed by the session's seed and the field's centre), docs/physics-notes.md, Focus and
section thickness.
:meth:`AcquisitionConfig.ideal` switches all of it off.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from simulators.config import ConfigMixin
from simulators.errors import SettingsError, check_positive, check_range

#: Index of the session stream among the children of a noise seed's SeedSequence
#: (0: frames, 1: motion; :func:`simulators.instrument.simulator.noise_generators`).
SESSION_STREAM = 2
_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


@dataclasses.dataclass(frozen=True)
class AcquisitionConfig(ConfigMixin):
    """Distributions of the session-to-session and within-session variability.

    ``overlap_lateral_um``, ``overlap_axial_um``: 1-sigma offset (per lateral axis, and
    axial) between the pump and Stokes foci after a day's alignment; ``overlap_delay_ps``:
    1-sigma residual pump-Stokes delay (chirp mismatch folded in as an equivalent delay).
    The session SRS gain is the overlap of Gaussian foci and pulses,
    ``exp(-d^2 / 2 s_xy^2) exp(-dz^2 / 2 s_z^2) exp(-dt^2 / 2 s_t^2)`` with ``s^2`` the
    sum of the two beams' intensity variances (1 = perfect overlap).
    ``shg_yield_sigma``: lognormal sigma (natural log, median 1) of the session SHG yield
    (PMT gain at the set voltage, laser polarisation state).
    ``pump_drift_rms``, ``stokes_drift_rms``: relative rms of the slow power drift of each
    beam at the sample (seen by the power meter, recorded); ``overlap_drift_rms``: relative
    rms of the slow drift of the SRS gain (beam pointing, not measured).
    ``drift_periods_s``: (shortest, longest) period of the drift components;
    ``drift_terms``: number of sinusoidal components per drift.
    ``af_photons_per_pigment``: two-photon autofluorescence photons reaching the SHG PMT per
    10 us pixel per pass per unit of the specimen's pigment map at 40 mW pump, 2 ps, 80 MHz.
    Calibration (the record the analysis divides by is a measurement): ``calibration_stale_
    probability``: chance that the session's record was measured on the reference standards
    in an earlier alignment (not re-measured after this session's alignment); ``calibration_
    srs_error`` / ``calibration_shg_error``: lognormal sigma of one measurement of the lipid
    / collagen standard (focus depth in the standard, its temperature, laser warm-up).
    ``focus_offset_um``: 1-sigma error of the focus of a field about the commanded plane
    (autofocus / focus drift); ``slide_tilt_deg``: 1-sigma tilt of the slide per axis, per
    session.
    """

    overlap_lateral_um: float = 0.10
    overlap_axial_um: float = 0.30
    overlap_delay_ps: float = 0.40
    shg_yield_sigma: float = 0.18
    pump_drift_rms: float = 0.02
    stokes_drift_rms: float = 0.02
    overlap_drift_rms: float = 0.03
    drift_periods_s: tuple[float, float] = (600.0, 3600.0)
    drift_terms: int = 4
    af_photons_per_pigment: float = 150.0
    calibration_stale_probability: float = 0.5
    calibration_srs_error: float = 0.03
    calibration_shg_error: float = 0.08
    focus_offset_um: float = 0.7
    slide_tilt_deg: float = 0.1

    def __post_init__(self) -> None:
        check_range("lateral overlap error", self.overlap_lateral_um, 0.0, 2.0, "um")
        check_range("axial overlap error", self.overlap_axial_um, 0.0, 5.0, "um")
        check_range("pump-Stokes delay error", self.overlap_delay_ps, 0.0, 10.0, "ps")
        check_range("SHG yield sigma", self.shg_yield_sigma, 0.0, 1.0)
        for name in ("pump_drift_rms", "stokes_drift_rms", "overlap_drift_rms"):
            check_range(name.replace("_", " "), getattr(self, name), 0.0, 0.1)
        lo, hi = (float(v) for v in self.drift_periods_s)
        if not 0 < lo <= hi:
            raise SettingsError(f"drift periods {self.drift_periods_s!r} s: need 0 < shortest "
                                "<= longest")
        object.__setattr__(self, "drift_periods_s", (lo, hi))
        if int(self.drift_terms) != self.drift_terms or not 1 <= self.drift_terms <= 64:
            raise SettingsError(f"drift_terms {self.drift_terms!r}: an integer 1-64")
        check_positive("autofluorescence leak", self.af_photons_per_pigment, "photons",
                       allow_zero=True)
        check_range("stale calibration probability", self.calibration_stale_probability,
                    0.0, 1.0)
        check_range("SRS calibration error", self.calibration_srs_error, 0.0, 0.5)
        check_range("SHG calibration error", self.calibration_shg_error, 0.0, 0.5)
        check_range("focus error", self.focus_offset_um, 0.0, 20.0, "um")
        check_range("slide tilt", self.slide_tilt_deg, 0.0, 5.0, "deg")

    @classmethod
    def ideal(cls) -> "AcquisitionConfig":
        """No variability: perfect overlap, nominal SHG yield, no drift, no leak, an exact
        calibration of this session, focus exactly at the commanded plane, no tilt."""
        return cls(overlap_lateral_um=0.0, overlap_axial_um=0.0, overlap_delay_ps=0.0,
                   shg_yield_sigma=0.0, pump_drift_rms=0.0, stokes_drift_rms=0.0,
                   overlap_drift_rms=0.0, af_photons_per_pigment=0.0,
                   calibration_stale_probability=0.0, calibration_srs_error=0.0,
                   calibration_shg_error=0.0, focus_offset_um=0.0, slide_tilt_deg=0.0)


@dataclasses.dataclass(frozen=True)
class SlowDrift(ConfigMixin):
    """A smooth relative drift ``f(t) = sum_k a_k cos(w_k t + phi_k)`` (t in s since the
    session started); the factor on the drifting quantity is ``1 + f(t) - f(0)``: 1 at the
    start of the session, when the powers are set with the power meter and the beams
    aligned.

    ``|f'(t)| <= sum_k |a_k w_k|`` (:attr:`max_rate_per_s`) and
    ``|f(t) - f(0)| <= 2 sum_k |a_k|`` (:attr:`max_excursion`).
    """

    amplitudes: tuple[float, ...] = ()
    omegas_rad_s: tuple[float, ...] = ()
    phases_rad: tuple[float, ...] = ()

    def __call__(self, t_s: float) -> float:
        return 1.0 + sum(a * (math.cos(w * t_s + p) - math.cos(p)) for a, w, p in
                         zip(self.amplitudes, self.omegas_rad_s, self.phases_rad))

    @property
    def max_rate_per_s(self) -> float:
        """Bound on the relative rate of change |d f / dt| (1/s)."""
        return float(sum(abs(a * w) for a, w in zip(self.amplitudes, self.omegas_rad_s)))

    @property
    def max_excursion(self) -> float:
        """Bound on ``|f(t) - f(0)|``."""
        return 2.0 * float(sum(abs(a) for a in self.amplitudes))

    @classmethod
    def draw(cls, rms: float, periods_s: tuple[float, float], terms: int,
             rng: np.random.Generator) -> "SlowDrift":
        """``terms`` components of equal amplitude ``rms sqrt(2 / terms)`` (total rms
        ``rms``), periods log-uniform in ``periods_s``, phases uniform. Always draws the
        same number of values, so the other draws of a session do not depend on ``rms``."""
        lo, hi = periods_s
        periods = np.exp(rng.uniform(math.log(lo), math.log(hi), terms))
        phases = rng.uniform(0.0, 2.0 * math.pi, terms)
        if rms == 0:
            return cls()
        a = rms * math.sqrt(2.0 / terms)
        return cls(tuple([a] * terms), tuple(float(v) for v in 2.0 * math.pi / periods),
                   tuple(float(v) for v in phases))


@dataclasses.dataclass(frozen=True)
class AcquisitionSession(ConfigMixin):
    """One session's drawn state: ``seed`` (the noise seed it was drawn for), the overlap
    errors (``offset_um`` lateral (dx, dy), ``defocus_um``, ``delay_ps``) and the SRS gain
    they give (``srs_gain``, 1 = perfect overlap), ``shg_yield`` (1 = nominal), the slow
    drifts of pump power, Stokes power and overlap, ``af_photons_per_pigment``, the slide's
    ``tilt`` (dz/dx, dz/dy) and ``focus_offset_um`` (1-sigma focus error of a field).
    Calibration: ``calibration_stale`` (the record comes from an earlier alignment),
    ``calibration_srs_ratio`` / ``calibration_shg_ratio``: the recorded volts per unit over
    this session's true ones at its start (1 = exact)."""

    seed: int
    srs_gain: float = 1.0
    shg_yield: float = 1.0
    offset_um: tuple[float, float] = (0.0, 0.0)
    defocus_um: float = 0.0
    delay_ps: float = 0.0
    pump_drift: SlowDrift = SlowDrift()
    stokes_drift: SlowDrift = SlowDrift()
    overlap_drift: SlowDrift = SlowDrift()
    af_photons_per_pigment: float = 0.0
    calibration_stale: bool = False
    calibration_srs_ratio: float = 1.0
    calibration_shg_ratio: float = 1.0
    tilt: tuple[float, float] = (0.0, 0.0)
    focus_offset_um: float = 0.0

    def srs_factor(self, t_s: float) -> float:
        """SRS gain at ``t_s`` s into the session: session gain x overlap drift."""
        return self.srs_gain * self.overlap_drift(t_s)


def session_seed_sequence(noise_seed: int | list[int]) -> np.random.SeedSequence:
    """The session stream of a noise seed: child ``SESSION_STREAM`` of its SeedSequence."""
    return np.random.SeedSequence(noise_seed, spawn_key=(SESSION_STREAM,))


def noise_seed_of(rng: np.random.Generator) -> int | list[int]:
    """The noise seed a generator was made from (the entropy of its SeedSequence: the seed
    of ``default_rng(seed)`` and of both :func:`noise_generators` streams); 0 when it has
    none."""
    ss = getattr(rng.bit_generator, "seed_seq", None)
    entropy = getattr(ss, "entropy", None)
    if entropy is None:
        return 0
    return [int(v) for v in entropy] if isinstance(entropy, (list, tuple)) else int(entropy)


def draw_session(config: AcquisitionConfig, noise_seed: int | list[int], *,
                 widths_um: tuple[float, float], pulse_sigma_ps: float) -> AcquisitionSession:
    """Draw one session's state from the session stream of ``noise_seed``.

    ``widths_um``: (lateral, axial) 1-sigma width of the pump-Stokes overlap,
    ``sqrt(s_P^2 + s_S^2)`` of the one-photon intensity profiles at focus;
    ``pulse_sigma_ps``: the same for the pulses in time. The draws (and their order) are the
    same whatever the config, so switching one source off leaves the others as they were.
    """
    c = config
    rng = np.random.default_rng(session_seed_sequence(noise_seed))
    z = rng.standard_normal(5)  # dx, dy, dz, dt (unit normal), ln SHG yield
    dx, dy = float(z[0]) * c.overlap_lateral_um, float(z[1]) * c.overlap_lateral_um
    dz, dt = float(z[2]) * c.overlap_axial_um, float(z[3]) * c.overlap_delay_ps
    sxy, sz = widths_um
    gain = math.exp(-(dx * dx + dy * dy) / (2 * sxy * sxy) - dz * dz / (2 * sz * sz)
                    - dt * dt / (2 * pulse_sigma_ps ** 2))
    shg = math.exp(c.shg_yield_sigma * float(z[4]))
    drifts = [SlowDrift.draw(rms, c.drift_periods_s, c.drift_terms, rng) for rms in
              (c.pump_drift_rms, c.stokes_drift_rms, c.overlap_drift_rms)]
    slope = math.tan(math.radians(c.slide_tilt_deg))
    tilt = rng.standard_normal(2) * slope  # drawn after the drifts: earlier draws unchanged
    seed = noise_seed if isinstance(noise_seed, int) else int(noise_seed[0])
    stale, srs_ratio, shg_ratio = _draw_calibration(c, noise_seed, gain, shg, widths_um,
                                                    pulse_sigma_ps)
    return AcquisitionSession(seed=seed, srs_gain=gain, shg_yield=shg, offset_um=(dx, dy),
                              defocus_um=dz, delay_ps=dt, pump_drift=drifts[0],
                              stokes_drift=drifts[1], overlap_drift=drifts[2],
                              af_photons_per_pigment=c.af_photons_per_pigment,
                              calibration_stale=stale, calibration_srs_ratio=srs_ratio,
                              calibration_shg_ratio=shg_ratio,
                              tilt=(float(tilt[0]), float(tilt[1])),
                              focus_offset_um=c.focus_offset_um)


def _overlap_gain(z: np.ndarray, c: AcquisitionConfig, widths_um: tuple[float, float],
                  pulse_sigma_ps: float) -> float:
    """SRS gain of unit-normal overlap errors ``z`` = (dx, dy, dz, dt)."""
    sxy, sz = widths_um
    dx, dy = float(z[0]) * c.overlap_lateral_um, float(z[1]) * c.overlap_lateral_um
    dz, dt = float(z[2]) * c.overlap_axial_um, float(z[3]) * c.overlap_delay_ps
    return math.exp(-(dx * dx + dy * dy) / (2 * sxy * sxy) - dz * dz / (2 * sz * sz)
                    - dt * dt / (2 * pulse_sigma_ps ** 2))


def _draw_calibration(c: AcquisitionConfig, noise_seed: int | list[int], gain: float,
                      shg: float, widths_um: tuple[float, float], pulse_sigma_ps: float
                      ) -> tuple[bool, float, float]:
    """(stale, SRS ratio, SHG ratio) of the session's calibration record, from its own
    child of the session stream (so the session's other draws are as before).

    Fresh: the standards are imaged after this session's alignment, so the record sees its
    gain and yield. Stale: it was measured in an earlier alignment, an independent draw of
    the same overlap and yield distributions. Either way one measurement error (lognormal).
    """
    rng = np.random.default_rng(np.random.SeedSequence(
        noise_seed, spawn_key=(SESSION_STREAM, CALIBRATION_KEY)))
    u = float(rng.uniform())
    z = rng.standard_normal(7)  # earlier alignment (dx, dy, dz, dt, ln yield), 2 errors
    stale = u < c.calibration_stale_probability
    g_cal, y_cal = gain, shg
    if stale:
        g_cal = _overlap_gain(z[:4], c, widths_um, pulse_sigma_ps)
        y_cal = math.exp(c.shg_yield_sigma * float(z[4]))
    srs_ratio = g_cal / gain * math.exp(c.calibration_srs_error * float(z[5]))
    shg_ratio = y_cal / shg * math.exp(c.calibration_shg_error * float(z[6]))
    return stale, float(srs_ratio), float(shg_ratio)


#: Spawn keys (under the session stream) of the per-field focus errors and of the
#: calibration record's draws.
FOCUS_KEY = 1
CALIBRATION_KEY = 2


def field_focus_offset(session: AcquisitionSession, center_um: tuple[float, float]) -> float:
    """Focus error (um) of the field centred at ``center_um`` in ``session``: normal with
    sd ``session.focus_offset_um``, deterministic in the session's seed and the field's
    centre (quantised to 1 nm), so every raster of a field, on every acquisition path, sees
    the same focus."""
    if session.focus_offset_um == 0:
        return 0.0
    q = [int(round(v * 1000.0)) & 0xFFFFFFFFFFFFFFFF for v in center_um]
    key = (SESSION_STREAM, FOCUS_KEY, *[w for v in q for w in (v >> 32, v & 0xFFFFFFFF)])
    rng = np.random.default_rng(np.random.SeedSequence(session.seed, spawn_key=key))
    return session.focus_offset_um * float(rng.standard_normal())


def overlap_widths(ipsf_pump_um: tuple[float, float], ipsf_stokes_um: tuple[float, float],
                   pump_pulse_ps: float, stokes_pulse_ps: float
                   ) -> tuple[tuple[float, float], float]:
    """((lateral, axial) um, time ps) 1-sigma widths of the pump-Stokes overlap from the
    beams' one-photon illumination PSF FWHMs and pulse FWHMs."""
    def comb(a: float, b: float) -> float:
        return math.hypot(a, b) / _FWHM_PER_SIGMA

    return ((comb(ipsf_pump_um[0], ipsf_stokes_um[0]), comb(ipsf_pump_um[1], ipsf_stokes_um[1])),
            comb(pump_pulse_ps, stokes_pulse_ps))
