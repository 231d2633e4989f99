"""Exfoliated epithelial cells (gastric brushing cytology) in water: :class:`ExfoliatedCells`."""

from __future__ import annotations

from simulators.specimens.cells.render import (BLOCK_PX, CellRecord, CellsConfig,
                                               ExfoliatedCells, lattice_of)

__all__ = ["BLOCK_PX", "CellRecord", "CellsConfig", "ExfoliatedCells", "lattice_of"]
