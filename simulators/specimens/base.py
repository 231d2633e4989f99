"""Specimen interface: procedural ground truth in world (stage) micrometres.

A specimen is generated from a seed and rendered for any :class:`Window` on demand; the
same world point always renders the same tissue, whatever the window (overlapping fields of
a mosaic agree). Rendering returns a :class:`Composition`: per-species concentration maps,
SHG-active collagen density and its in-plane fibre orientation, a transient-absorption
(pigment) map and per-pixel truth labels.

Coordinates: image columns run along +x, rows along +y (stage frame); pixel ``(r, c)`` of a
window has its centre at ``(x0 + (c + 0.5) p, y0 + (r + 0.5) p)``.
"""

from __future__ import annotations

import abc
import dataclasses
import enum
import math
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from simulators.config import ConfigMixin
from simulators.errors import SettingsError, check_positive
from simulators.spectra import SPECIES


class Label(enum.IntEnum):
    """Per-pixel truth classes (uint8 in :attr:`Composition.labels`)."""

    BACKGROUND = 0  #: no tissue (glass / mounting medium)
    LUMEN = 1  #: tubule lumen (fluid)
    CYTOPLASM = 2  #: cell bodies (epithelium, interstitial cells, exfoliated cells)
    NUCLEUS = 3
    LIPID_DROPLET = 4
    COLLAGEN = 5  #: lamina propria, fibrosis, collagen beads (SHG active)
    PROTEIN_DROPLET = 6  #: dense protein bodies (high 2930, low 2850 cm^-1)
    INTERSTITIUM = 7  #: loose connective tissue between tubules
    STANDARD = 8  #: uniform calibration standard (reference specimen)
    VESSEL = 9  #: blood vessel: endothelial wall, plasma and red blood cells


#: ``chi_zzz / chi_zxx`` of fibrillar collagen when a specimen does not set its own
#: (:attr:`Composition.shg_rho`): the middle of the 1.3-2.6 reported for type-I collagen
#: (docs/physics-notes.md, SHG polarisation).
DEFAULT_SHG_RHO: float = 1.8


@dataclasses.dataclass(frozen=True)
class Window(ConfigMixin):
    """A rectangular raster in world coordinates.

    ``x_um``, ``y_um``: world position (um) of the window's top-left *corner* (pixel edge);
    ``nx``, ``ny``: pixels along x (columns) and y (rows); ``pixel_um``: pixel pitch (um).
    """

    x_um: float
    y_um: float
    nx: int
    ny: int
    pixel_um: float

    def __post_init__(self) -> None:
        check_positive("pixel size", self.pixel_um, "um")
        if int(self.nx) != self.nx or int(self.ny) != self.ny or self.nx < 1 or self.ny < 1:
            raise SettingsError(f"window pixels must be integers >= 1, got {self.nx}x{self.ny}")
        if not (math.isfinite(self.x_um) and math.isfinite(self.y_um)):
            raise SettingsError("window position must be finite")

    @classmethod
    def centered(cls, x_um: float, y_um: float, fov_um: float, pixels: int,
                 fov_y_um: float | None = None, pixels_y: int | None = None) -> "Window":
        """Square (or rectangular) window of ``fov_um`` centred on ``(x_um, y_um)``."""
        check_positive("field of view", fov_um, "um")
        fy = fov_um if fov_y_um is None else fov_y_um
        py = pixels if pixels_y is None else pixels_y
        p = fov_um / pixels
        return cls(x_um - fov_um / 2, y_um - fy / 2, int(pixels), int(py), p)

    @property
    def shape(self) -> tuple[int, int]:
        """(ny, nx)."""
        return (self.ny, self.nx)

    @property
    def extent_um(self) -> tuple[float, float, float, float]:
        """(x_min, x_max, y_min, y_max) of the window edges in um."""
        return (self.x_um, self.x_um + self.nx * self.pixel_um,
                self.y_um, self.y_um + self.ny * self.pixel_um)

    @property
    def center_um(self) -> tuple[float, float]:
        x0, x1, y0, y1 = self.extent_um
        return ((x0 + x1) / 2, (y0 + y1) / 2)

    def xs(self) -> NDArray[np.floating]:
        """World x (um) of each column centre, shape (nx,)."""
        return self.x_um + (np.arange(self.nx) + 0.5) * self.pixel_um

    def ys(self) -> NDArray[np.floating]:
        """World y (um) of each row centre, shape (ny,)."""
        return self.y_um + (np.arange(self.ny) + 0.5) * self.pixel_um

    def padded(self, margin_px: int) -> "Window":
        """The same grid grown by ``margin_px`` pixels on every side."""
        m = int(margin_px)
        p = self.pixel_um
        return Window(self.x_um - m * p, self.y_um - m * p, self.nx + 2 * m, self.ny + 2 * m, p)

    def pixel_slices(self, x0: float, x1: float, y0: float, y1: float
                     ) -> tuple[slice, slice] | None:
        """Row/column slices of the pixels whose centres may fall in a world box (um).

        Returns ``None`` when the box misses the window.
        """
        p = self.pixel_um
        c0 = max(0, int(math.floor((x0 - self.x_um) / p - 0.5)))
        c1 = min(self.nx, int(math.ceil((x1 - self.x_um) / p + 0.5)))
        r0 = max(0, int(math.floor((y0 - self.y_um) / p - 0.5)))
        r1 = min(self.ny, int(math.ceil((y1 - self.y_um) / p + 0.5)))
        if c0 >= c1 or r0 >= r1:
            return None
        return slice(r0, r1), slice(c0, c1)


@dataclasses.dataclass
class Composition:
    """Ground truth of one window (all maps float32, shape (ny, nx)).

    ``concentrations[species]``: local mass fraction relative to the pure reference
    (pure triglyceride lipid = 1, dense protein = 1, ...), already including the axial
    partial-volume factor of sub-micrometre objects. ``chi2``: density of SHG-active,
    aligned collagen (1 = dense fibrillar collagen, amplitude units: SHG intensity goes as
    its square). ``pigment``: transient-absorption strength (lipofuscin), relative to lipid
    SRS. ``labels``: :class:`Label` per pixel (uint8). ``instance``: id of the top-level
    object (tubule, cell) covering the pixel, 0 for none (int32). ``heme``: haemoglobin
    in focus, relative to the inside of a red blood cell (1 = a cell filling the axial
    PSF); its pump-probe (transient absorption) signal has its own strength and phase and,
    unlike ``pigment``, no autofluorescence. Optional: zeros of the labels' shape when not
    given.

    ``fibre_angle``: in-plane direction (radians, image frame: from +x towards +y, i.e.
    columns towards rows; defined modulo pi) of the collagen fibres' projection on the
    section plane, float32; NaN where the collagen has no preferred direction (its SHG does
    not depend on the laser polarisation). None (the default, e.g. beads, cells, reference
    standards): NaN everywhere. ``shg_rho``: ``chi_zzz / chi_zxx`` of the window's aligned
    collagen (dimensionless; :data:`DEFAULT_SHG_RHO`). ``chi2`` keeps its meaning: the
    SHG amplitude averaged over fibre orientations under linear polarisation
    (docs/physics-notes.md, SHG polarisation).
    """

    window: Window
    concentrations: dict[str, NDArray[np.float32]]
    chi2: NDArray[np.float32]
    pigment: NDArray[np.float32]
    labels: NDArray[np.uint8]
    instance: NDArray[np.int32]
    heme: NDArray[np.float32] = dataclasses.field(
        default_factory=lambda: np.zeros((0, 0), np.float32))
    fibre_angle: NDArray[np.float32] | None = None
    shg_rho: float = DEFAULT_SHG_RHO

    def __post_init__(self) -> None:
        if self.heme.shape != self.labels.shape:
            self.heme = np.zeros(self.labels.shape, np.float32)

    @classmethod
    def empty(cls, window: Window) -> "Composition":
        shape = window.shape
        return cls(
            window=window,
            concentrations={s: np.zeros(shape, np.float32) for s in SPECIES},
            chi2=np.zeros(shape, np.float32),
            pigment=np.zeros(shape, np.float32),
            labels=np.zeros(shape, np.uint8),
            instance=np.zeros(shape, np.int32),
            heme=np.zeros(shape, np.float32),
        )

    def crop(self, margin_px: int) -> "Composition":
        """Drop ``margin_px`` pixels on every side (inverse of :meth:`Window.padded`)."""
        m = int(margin_px)
        if m == 0:
            return self
        sl = (slice(m, -m), slice(m, -m))
        w = self.window
        win = Window(w.x_um + m * w.pixel_um, w.y_um + m * w.pixel_um, w.nx - 2 * m,
                     w.ny - 2 * m, w.pixel_um)
        return Composition(win, {k: v[sl] for k, v in self.concentrations.items()},
                           self.chi2[sl], self.pigment[sl], self.labels[sl], self.instance[sl],
                           fibre_angle=None if self.fibre_angle is None else self.fibre_angle[sl],
                           shg_rho=self.shg_rho,
                           heme=self.heme[sl])

    def label_fraction(self, label: Label) -> float:
        """Fraction of pixels with truth ``label``."""
        return float(np.mean(self.labels == label))


class Specimen(abc.ABC):
    """A procedural specimen. Subclasses set :attr:`kind` and implement :meth:`render`."""

    kind: ClassVar[str] = "specimen"

    def __init__(self, seed: int) -> None:
        if int(seed) != seed or seed < 0:
            raise SettingsError(f"specimen seed must be an integer >= 0, got {seed!r}")
        self.seed = int(seed)

    @abc.abstractmethod
    def render(self, window: Window) -> Composition:
        """Ground truth of ``window``. Deterministic in (seed, world position)."""

    @property
    @abc.abstractmethod
    def extent_um(self) -> tuple[float, float, float, float]:
        """(x_min, x_max, y_min, y_max) of the specimen's tissue in world um."""

    def default_center_um(self) -> tuple[float, float]:
        """A field centre (x, y) um with something to see, when the user names none: the
        middle of :attr:`extent_um` (specimens with sparse objects override this)."""
        x0, x1, y0, y1 = self.extent_um
        return (x0 + x1) / 2, (y0 + y1) / 2

    def thickness_map(self, window: Window) -> NDArray[np.float32] | None:
        """Local thickness (um) of the specimen's slab on the window's pixels, lying on the
        glass from height ``-nominal_thickness_um / 2`` (height 0: the focal plane at stage
        z = 0). None (the default): a specimen thicker than any focus error, whose
        composition is the same at every focus (docs/physics-notes.md, Focus and section
        thickness)."""
        return None

    def thickness_floor_um(self, window: Window) -> float | None:
        """A cheap lower bound (um) of :meth:`thickness_map` over the window, or None
        (unknown: the map is computed wherever the focus might be near a surface)."""
        return None

    @property
    def nominal_thickness_um(self) -> float | None:
        """Nominal slab thickness (um) that stage z = 0 focuses in the middle of; None with
        :meth:`thickness_map` None."""
        return None

    def describe(self) -> dict[str, Any]:
        """JSON-safe provenance (kind, seed, config) for run metadata."""
        cfg = getattr(self, "config", None)
        return {"kind": self.kind, "seed": self.seed,
                "config": cfg.to_dict() if cfg is not None else {}}

    def rng_for(self, *keys: int) -> np.random.Generator:
        """Independent deterministic generator for a sub-object (tile, tubule, cell...)."""
        return keyed_rng(self.seed, *keys)


def keyed_rng(seed: int, *keys: int) -> np.random.Generator:
    """Deterministic generator of sub-object ``keys`` (ints, taken modulo 2**32) of a
    specimen with ``seed``: :meth:`Specimen.rng_for`."""
    return np.random.default_rng([int(seed), *[int(k) & 0xFFFFFFFF for k in keys]])
