"""Uniform reference standard (oil / lipid calibration chamber) for power and noise tests.

A rectangle (default 10 x 10 mm centred on (0, 0)) filled with a uniform lipid-like medium:
``lipid`` and ``water`` concentrations exactly constant inside, no texture, no chi2, label
``STANDARD`` and instance 1. Outside it is water medium (1.0), label ``BACKGROUND``. The
rectangle's edges are anti-aliased (pixel-area coverage, separable), computed on the global
pixel lattice (:func:`~._raster.lattice_of`) so overlapping windows agree exactly.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from simulators.config import ConfigMixin
from simulators.errors import SettingsError, check_positive, check_range
from simulators.specimens._raster import PHASE_QUANTUM, lattice_of
from simulators.specimens.base import Composition, Label, Specimen, Window


@dataclasses.dataclass(frozen=True)
class ReferenceConfig(ConfigMixin):
    """Settings of :class:`ReferenceStandard`: concentrations inside the standard (``lipid``,
    ``water``, each 0-1, sum <= 1) and the rectangle (``width_um`` x ``height_um`` centred on
    ``(center_x_um, center_y_um)``)."""

    lipid: float = 1.0
    water: float = 0.0
    width_um: float = 10_000.0
    height_um: float = 10_000.0
    center_x_um: float = 0.0
    center_y_um: float = 0.0

    def __post_init__(self) -> None:
        check_range("standard lipid concentration", self.lipid, 0.0, 1.0)
        check_range("standard water concentration", self.water, 0.0, 1.0)
        if self.lipid + self.water > 1.0 + 1e-9:
            raise SettingsError(f"standard lipid + water = {self.lipid + self.water:g} must be"
                                " <= 1")
        check_positive("standard width", self.width_um, "um")
        check_positive("standard height", self.height_um, "um")
        check_range("standard centre x", self.center_x_um, -1e6, 1e6, "um")
        check_range("standard centre y", self.center_y_um, -1e6, 1e6, "um")


class ReferenceStandard(Specimen):
    """A uniform lipid standard (see module docstring)."""

    kind = "reference"

    def __init__(self, seed: int = 0, config: ReferenceConfig | None = None) -> None:
        super().__init__(seed)
        if config is None:
            config = ReferenceConfig()
        if not isinstance(config, ReferenceConfig):
            raise SettingsError(f"config must be a ReferenceConfig, got {type(config).__name__}")
        self.config = config

    @property
    def extent_um(self) -> tuple[float, float, float, float]:
        c = self.config
        return (c.center_x_um - c.width_um / 2, c.center_x_um + c.width_um / 2,
                c.center_y_um - c.height_um / 2, c.center_y_um + c.height_um / 2)

    def render(self, window: Window) -> Composition:
        """Ground truth of ``window``: constant inside the standard, water medium outside."""
        c = self.config
        gx, gy, qx, qy = lattice_of(window)
        p = window.pixel_um
        x0, x1, y0, y1 = self.extent_um
        xs = ((np.arange(gx, gx + window.nx) + 0.5) + qx / PHASE_QUANTUM) * p
        ys = ((np.arange(gy, gy + window.ny) + 0.5) + qy / PHASE_QUANTUM) * p
        cx = np.clip(np.minimum(xs - x0, x1 - xs) / p + 0.5, 0.0, 1.0)
        cy = np.clip(np.minimum(ys - y0, y1 - ys) / p + 0.5, 0.0, 1.0)
        cov = (cy[:, None] * cx[None, :]).astype(np.float32)
        comp = Composition.empty(window)
        comp.concentrations["lipid"][:] = np.float32(c.lipid) * cov
        comp.concentrations["water"][:] = 1.0 + cov * np.float32(c.water - 1.0)
        inside = cov >= 0.5
        comp.labels[inside] = Label.STANDARD
        comp.instance[inside] = 1
        return comp
