"""Pieces of ``srash quantify`` that need no catalog: groups, truth re-rendering,
multi-stream derived runs."""

from __future__ import annotations

import numpy as np
import pytest

from ml.io.publish import publish_run
from ml.ldquant.workflow import COMPARISONS, group_of
from srash_ophyd.simtruth import render_field_truth


@pytest.mark.parametrize("phenotype, groups", [
    ("normal", ("normal", None)), ("NOA-SPT", ("NOA", "SPT")), ("NOA-SPG", ("NOA", "SPG")),
    ("NOA-SCO", ("SCO", None)), (None, (None, None)), ("cells", (None, None))])
def test_groups_follow_the_paper(phenotype, groups):
    """SCO counts as NOA but is excluded from the subtype comparison."""
    assert group_of(phenotype) == groups


def test_comparisons_are_the_four_panels():
    assert [(i, a, b) for i, a, b, _ in COMPARISONS] == [
        ("ld_mean_intensity", "normal", "NOA"), ("ld_area_percent", "normal", "NOA"),
        ("ld_mean_intensity", "SPT", "SPG"), ("ld_area_percent", "SPT", "SPG")]


def test_rerendered_truth_equals_the_simulated_fields_truth():
    from simulators.instrument import build_simulator
    from simulators.specimens import make_specimen

    spec = make_specimen("testis", 21, phenotype="NOA-SPT")
    x0, x1, y0, y1 = spec.extent_um
    cx, cy = (x0 + x1) / 2 + 13.7, (y0 + y1) / 2 - 41.2
    sim = build_simulator(spec, x_um=cx, y_um=cy, pixels=160, fov_um=96.0)
    win = sim.window()
    comp = spec.render(win)
    start = {"specimen": "testis", "specimen_seed": 21, "phenotype": "NOA-SPT"}
    labels, inst = render_field_truth(start, x_um=sim.stage.position["x"],
                                      y_um=sim.stage.position["y"], nx=160, ny=160,
                                      pixel_um=0.6)
    assert np.array_equal(labels, comp.labels) and np.array_equal(inst, comp.instance)
    assert render_field_truth({"specimen": "testis"}, x_um=0, y_um=0, nx=4, ny=4,
                              pixel_um=1.0) is None  # real hardware: no seed, no truth


def test_publish_run_writes_every_stream_and_row_in_order():
    docs = []
    uid = publish_run(lambda name, doc: docs.append((name, doc)), {"analysis": "x"},
                      {"a": ({"v": {"source": "t", "dtype": "number", "shape": []}},
                             [{"v": 1.0}, {"v": 2.0}]),
                       "b": ({"w": {"source": "t", "dtype": "string", "shape": []}},
                             [{"w": "z"}])})
    names = [n for n, _ in docs]
    assert names == ["start", "descriptor", "event", "event", "descriptor", "event", "stop"]
    assert docs[0][1]["uid"] == uid and docs[-1][1]["exit_status"] == "success"
    assert [d["data"]["v"] for n, d in docs if n == "event" and "v" in d["data"]] == [1, 2]
    assert [d["seq_num"] for n, d in docs if n == "event"] == [1, 2, 1]
