"""Frozen section of human seminiferous tubules (testis biopsy): :class:`TestisSection`."""

from __future__ import annotations

from simulators.specimens.testis.render import (FWHM_Z_UM, GERM_CELLS, MAX_DROPLET_DENSITY,
                                                PHENOTYPES, TestisConfig, TestisSection,
                                                Tubule, noise_grid, noise_points,
                                                stamp_ellipses)

__all__ = ["FWHM_Z_UM", "GERM_CELLS", "MAX_DROPLET_DENSITY", "PHENOTYPES", "TestisConfig",
           "TestisSection", "Tubule", "noise_grid", "noise_points", "stamp_ellipses"]
