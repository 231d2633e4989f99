"""Procedural specimens in world coordinates: testis sections, exfoliated cells, beads and
a uniform lipid reference. :func:`make_specimen` builds one by name."""

from __future__ import annotations

from simulators.specimens.base import Composition, Label, Specimen, Window

SPECIMEN_KINDS = ("testis", "cells", "beads", "reference")


def make_specimen(kind: str, seed: int = 0, *, phenotype: str | None = None) -> Specimen:
    """Build a specimen by kind. ``phenotype`` applies to ``testis`` only
    (normal, NOA-SPT, NOA-SPG, NOA-SCO; default normal)."""
    from simulators.errors import SettingsError

    if kind not in SPECIMEN_KINDS:
        raise SettingsError(f"unknown specimen {kind!r}; choose one of {', '.join(SPECIMEN_KINDS)}")
    if phenotype is not None and kind != "testis":
        raise SettingsError(f"--phenotype applies to the testis specimen only, not {kind!r}")
    if kind == "testis":
        from simulators.specimens.testis import TestisSection

        return TestisSection(seed, phenotype or "normal")
    if kind == "cells":
        from simulators.specimens.cells import ExfoliatedCells

        return ExfoliatedCells(seed)
    if kind == "beads":
        from simulators.specimens.beads import Beads

        return Beads(seed)
    from simulators.specimens.reference import ReferenceStandard

    return ReferenceStandard(seed)


__all__ = ["Composition", "Label", "Specimen", "Window", "make_specimen", "SPECIMEN_KINDS"]
