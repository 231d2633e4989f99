"""The shared vocabulary: one spelling, and the simulators' own copies agree with it."""

from __future__ import annotations

import plans.contract as c
from simulators.specimens.base import Label
from simulators.specimens.testis import PHENOTYPES as SIM_PHENOTYPES


def test_simulator_phenotypes_are_the_contracts():
    assert tuple(SIM_PHENOTYPES) == c.PHENOTYPES


def test_simulator_truth_labels_are_the_contracts():
    assert {m.name.lower(): int(m.value) for m in Label} == dict(c.TRUTH_LABELS)


def test_every_phenotype_has_one_diagnosis_and_noa_subtypes_are_noa():
    assert set(c.DIAGNOSIS_OF) == set(c.PHENOTYPES)
    assert set(c.DIAGNOSIS_OF.values()) == set(c.DIAGNOSES)
    assert all(c.diagnosis_of(p) == "NOA" for p in c.NOA_SUBTYPES)
    assert c.diagnosis_of("normal") == "normal" and c.diagnosis_of(None) is None
    assert c.diagnosis_of("unknown") is None


def test_shift_pairing_data_is_consistent():
    assert c.DEFAULT_SHIFTS_CM1 == (c.LIPID_CM1, c.PROTEIN_CM1)
    # the tolerance must separate the two bands, or one frame could pair as both
    assert 0 < 2 * c.PAIR_TOLERANCE_CM1 < c.PROTEIN_CM1 - c.LIPID_CM1
    assert sorted(c.DISPLAY_RGB) == sorted(c.COMPOSITE_CHANNELS)


def test_contract_is_pure_data():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(c))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert imported <= {"__future__", "types", "typing"}
