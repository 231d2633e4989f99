"""Galvo-galvo raster scanner: pixels, field of view (zoom), dwell, averaging, flyback, and
the registration error of each raster (frame jitter)."""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Hashable

import numpy as np
from numpy.typing import NDArray

from simulators.config import ConfigMixin
from simulators.errors import SettingsError, check_positive, check_range

#: Registration random-walk step (px per axis per raster) of the long hyperspectral
#: stacks of the cells specimen (issue 15: stage drift and OPO pointing over a ~50-band
#: sweep; ~1.4 px after 51 bands; an estimate, docs/physics-notes.md).
HYPERSPECTRAL_WALK_PX = 0.2


@dataclasses.dataclass(frozen=True)
class ScannerConfig(ConfigMixin):
    """Scanner limits and timing. ``max_fov_um``: field at zoom 1 (the objective's field
    diameter, 442 um for 60x / FN 26.5); ``flyback_fraction``: extra samples per line for
    the retrace (unidirectional); ``turnaround_fraction``: per line in bidirectional mode;
    ``frame_overhead_s``: per frame (sync, settle); ``vignetting_r0_um``: each excitation
    beam's intensity at the focus falls as ``v = (1 + (r/r0)^2)^-1`` with the distance r
    from the optical axis, so SRS (``P_P P_S``) and SHG (``P_P^2``) go as
    ``g = v^2 = (1 + (r/r0)^2)^-2`` (cos^4-like);
    ``registration_jitter_px``: 1-sigma registration error (pixels, per axis) of a raster
    relative to the first raster of the same field (galvo drive and frame-sync timing);
    ``registration_walk_px``: s.d. (pixels, per axis) of each step of a random walk that
    accumulates over the rasters of one field (slow drift: stage drift and beam pointing
    changing with OPO tuning; 0 = none, the default; issue 15)."""

    max_fov_um: float = 441.7
    min_dwell_s: float = 0.5e-6
    max_dwell_s: float = 1e-3
    max_pixels: int = 4096
    max_averages: int = 64
    flyback_fraction: float = 0.10
    turnaround_fraction: float = 0.02
    frame_overhead_s: float = 0.01
    vignetting_r0_um: float = 760.0
    registration_jitter_px: float = 0.2
    registration_walk_px: float = 0.0

    def __post_init__(self) -> None:
        check_positive("max field of view", self.max_fov_um, "um")
        check_range("flyback fraction", self.flyback_fraction, 0.0, 1.0)
        check_range("turnaround fraction", self.turnaround_fraction, 0.0, 1.0)
        check_positive("vignetting radius", self.vignetting_r0_um, "um")
        check_range("frame jitter", self.registration_jitter_px, 0.0, 5.0, "px")
        check_range("registration walk step", self.registration_walk_px, 0.0, 5.0, "px")


class GalvoScannerSim:
    """State: ``pixels`` (square frame, pixels per side), ``fov_um``, ``dwell_s``,
    ``averages`` (frame averages), ``bidirectional``, ``registration_px`` (registration
    error (dy, dx) of the latest raster, pixels). Readbacks: ``pixel_um``, ``zoom``,
    ``frame_time_s`` (one pass), ``acquisition_time_s`` (all averages)."""

    def __init__(self, config: ScannerConfig | None = None, *, pixels: int = 1200,
                 fov_um: float = 360.0, dwell_s: float = 10e-6, averages: int = 3,
                 bidirectional: bool = False) -> None:
        self.config = config or ScannerConfig()
        self.set_pixels(pixels)
        self.set_fov(fov_um)
        self.set_dwell(dwell_s)
        self.set_averages(averages)
        self.bidirectional = bool(bidirectional)
        #: registration error (dy, dx) of the latest raster, pixels
        self.registration_px: tuple[float, float] = (0.0, 0.0)
        self._field: Hashable | None = None
        self._walk: tuple[float, float] = (0.0, 0.0)

    def next_registration(self, field: Hashable, rng: np.random.Generator
                          ) -> tuple[float, float]:
        """Registration error (dy, dx) in pixels of the raster about to start over ``field``.

        The first raster of a field (any hashable key of what is under the scanner: stage
        position, field of view, pixels) defines it: error (0, 0), nothing drawn. Every later
        raster of the same field is displaced by a fresh normal error of
        ``registration_jitter_px`` per axis, drawn from ``rng``. The result is also kept as
        :attr:`registration_px`.
        """
        j = self.config.registration_jitter_px
        walk = self.config.registration_walk_px
        if field != self._field:
            self._field = field
            self._walk = (0.0, 0.0)
            self.registration_px = (0.0, 0.0)
            return self.registration_px
        d = rng.normal(0.0, j, size=2) if j > 0 else np.zeros(2)
        if walk > 0:  # drawn after the jitter: walk 0 keeps the historical draws
            st = rng.normal(0.0, walk, size=2)
            self._walk = (self._walk[0] + float(st[0]), self._walk[1] + float(st[1]))
        self.registration_px = (float(d[0]) + self._walk[0], float(d[1]) + self._walk[1])
        return self.registration_px

    def set_pixels(self, pixels: int) -> None:
        if int(pixels) != pixels or not 8 <= pixels <= self.config.max_pixels:
            raise SettingsError(
                f"scanner pixels {pixels!r} not allowed: integer 8-{self.config.max_pixels}")
        self.pixels = int(pixels)

    def set_fov(self, fov_um: float) -> None:
        self.fov_um = check_range("field of view", fov_um, 1.0, self.config.max_fov_um, "um")

    def set_zoom(self, zoom: float) -> None:
        check_range("zoom", zoom, 1.0, self.config.max_fov_um)
        self.set_fov(self.config.max_fov_um / zoom)

    def set_dwell(self, dwell_s: float) -> None:
        c = self.config
        if not (isinstance(dwell_s, (int, float)) and dwell_s > 0):
            raise SettingsError(f"pixel dwell {dwell_s!r} s not allowed: must be > 0, "
                                f"{c.min_dwell_s * 1e6:g}-{c.max_dwell_s * 1e6:g} us")
        self.dwell_s = check_range("pixel dwell", dwell_s * 1e6, c.min_dwell_s * 1e6,
                                   c.max_dwell_s * 1e6, "us") * 1e-6

    def set_averages(self, averages: int) -> None:
        if int(averages) != averages or not 1 <= averages <= self.config.max_averages:
            raise SettingsError(
                f"averages {averages!r} not allowed: integer 1-{self.config.max_averages}")
        self.averages = int(averages)

    @property
    def pixel_um(self) -> float:
        return self.fov_um / self.pixels

    @property
    def zoom(self) -> float:
        return self.config.max_fov_um / self.fov_um

    @property
    def extra_samples(self) -> int:
        """Samples per line spent outside the image (flyback or turnaround)."""
        f = self.config.turnaround_fraction if self.bidirectional else self.config.flyback_fraction
        return int(math.ceil(f * self.pixels))

    @property
    def line_time_s(self) -> float:
        return (self.pixels + self.extra_samples) * self.dwell_s

    @property
    def frame_time_s(self) -> float:
        """One pass over the frame (s), flyback and frame overhead included."""
        return self.pixels * self.line_time_s + self.config.frame_overhead_s

    @property
    def acquisition_time_s(self) -> float:
        """All averages of one frame (s)."""
        return self.averages * self.frame_time_s

    def to_time_order(self, image: NDArray) -> NDArray:
        """(ny, nx) image -> (ny, nx + extra) samples in acquisition order.

        Flyback/turnaround samples see the mean of their line (the beam sweeps back over
        it); in bidirectional mode odd lines run right to left.
        """
        ny, nx = image.shape
        extra = self.extra_samples
        out = np.empty((ny, nx + extra), image.dtype)
        if self.bidirectional:
            out[0::2, :nx] = image[0::2]
            out[1::2, :nx] = image[1::2, ::-1]
        else:
            out[:, :nx] = image
        if extra:
            out[:, nx:] = image.mean(axis=1, keepdims=True)
        return out

    def from_time_order(self, samples: NDArray) -> NDArray:
        """Inverse of :meth:`to_time_order` (drops the extra samples)."""
        nx = samples.shape[1] - self.extra_samples
        img = np.ascontiguousarray(samples[:, :nx])
        if self.bidirectional:
            img[1::2] = img[1::2, ::-1]
        return img

    def vignetting(self) -> NDArray[np.float32]:
        """Nonlinear-signal gain map (ny, nx) of the field, ``v_P v_S = v_P^2``: 1 on axis,
        symmetric, falling monotonically towards the corners (docs/physics-notes.md,
        Acquisition variability)."""
        return _vignetting(self.pixels, self.fov_um, self.config.vignetting_r0_um)


@functools.lru_cache(maxsize=8)
def _vignetting(pixels: int, fov_um: float, r0_um: float) -> NDArray[np.float32]:
    c = (np.arange(pixels) + 0.5 - pixels / 2) * (fov_um / pixels)
    r2 = c[None, :] ** 2 + c[:, None] ** 2
    g = (1.0 + r2 / r0_um**2) ** -2
    g32 = g.astype(np.float32)
    g32.flags.writeable = False
    return g32
