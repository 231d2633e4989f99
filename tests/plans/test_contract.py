"""The shared vocabulary: one spelling, and the simulators' own copies agree with it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

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


# ------------------------------------------------------------------ SRS channel spelling

def test_srs_channel_spelling():
    assert c.srs_channel(2850) == c.srs_channel(2850.0) == c.srs_channel(2849.99) == "SRS_2850"
    assert c.srs_channel(2865.14) == "SRS_2865.1" and c.srs_channel(2944.5) == "SRS_2944.5"
    assert c.srs_channel(-0.01) == "SRS_0"
    assert c.COMPOSITE_CHANNELS == ("SRS_2850", "SRS_2930", "SHG")
    assert c.srs_channel_shift("SRS_2865.1") == 2865.1
    assert c.srs_channel_shift("SHG") is None and c.srs_channel_shift("SRS_x") is None
    assert dict(c.CHANNEL_COLORMAPS) == {"SRS_2930": "red", "SRS_2850": "green",
                                         "SHG": "blue"}


@given(st.floats(100.0, 4000.0))
def test_srs_channel_names_round_trip_to_a_tenth(shift):
    name = c.srs_channel(shift)
    back = c.srs_channel_shift(name)
    assert back is not None and abs(back - shift) <= 0.05 + 1e-9
    assert c.srs_channel(back) == name


@given(st.floats(100.0, 4000.0))
def test_simulator_channel_names_are_the_contracts(shift):
    from simulators.instrument.simulator import _label

    assert f"SRS_{_label(shift)}" == c.srs_channel(shift)


def test_model_names_are_the_contract_ones():
    """The CLI offers ``--task`` / ``--model`` from the contract without importing torch: the
    LBNet-Dx tasks and the segmenter registry must name exactly those."""
    from ml.dx.predict import TASKS
    from ml.seg.models import SEGMENTERS as MODELS
    from plans.contract import DX_TASKS, SEGMENTERS

    assert list(TASKS) == list(DX_TASKS)
    for name, groups in DX_TASKS.items():
        assert TASKS[name].phenotypes == groups
        assert set(TASKS[name].all_phenotypes) <= set(c.PHENOTYPES)
    assert TASKS["normal-vs-noa"].class_names == c.DIAGNOSES
    assert MODELS == dict(SEGMENTERS)
