"""Exfoliated epithelial cells (gastric brushing cytology) in water: :class:`ExfoliatedCells`.

Modules: :mod:`.config` (sizes, densities, compositions), :mod:`.geometry` (one cell's
outline, nucleus, droplets), :mod:`.render` (placement and rendering).
"""

from __future__ import annotations

from simulators.specimens._raster import lattice_of
from simulators.specimens.cells.config import CellsConfig
from simulators.specimens.cells.geometry import CellRecord
from simulators.specimens.cells.render import BLOCK_PX, ExfoliatedCells

__all__ = ["BLOCK_PX", "CellRecord", "CellsConfig", "ExfoliatedCells", "lattice_of"]
