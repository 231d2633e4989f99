"""Frozen section of human seminiferous tubules (testis biopsy): :class:`TestisSection`.

Modules: :mod:`.config` (phenotypes, one patient's parameters and their distributions),
:mod:`.geometry` (outline, tears, tubule packing and profiles), :mod:`.contents`
(epithelium, droplets, materials), :mod:`.interstitium` (vessels and red blood cells,
Leydig clusters, macrophages), :mod:`.stamp` (compositing of those and of nuclei),
:mod:`.render` (the specimen).
"""

from __future__ import annotations

from simulators.specimens._raster import noise_grid, noise_points, stamp_ellipses
from simulators.specimens.testis.config import (
                                                GERM_CELLS,
                                                MAX_DROPLET_DENSITY,
                                                PHENOTYPES,
                                                TestisConfig,
)
from simulators.specimens.testis.geometry import Tubule
from simulators.specimens.testis.render import TestisSection

__all__ = ["GERM_CELLS", "MAX_DROPLET_DENSITY", "PHENOTYPES", "TestisConfig", "TestisSection",
           "Tubule", "noise_grid", "noise_points", "stamp_ellipses"]
