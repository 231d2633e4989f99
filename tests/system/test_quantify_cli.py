"""``srash quantify`` end to end: catalog selection, per-tubule table, statistics, figure,
analysis run, truth scoring, and its error messages (issue 7)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from srash_ophyd.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings(
    "ignore:Using `httpx` with `starlette.testclient` is deprecated")]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    data = tmp_path_factory.mktemp("q") / "d"
    assert main(["cohort", "--name", "q", "--patients", "normal=2,NOA-SPT=2,NOA-SPG=2",
                 "--grid", "1x1", "--seed-base", "7000", "--data-dir", str(data), "--quiet",
                 "--json"]) == 0
    return data


def test_quantify_writes_table_summary_figure_and_run(cohort, tmp_path, capsys):
    capsys.readouterr()
    out = tmp_path / "qout"
    assert main(["quantify", "--cohort", "q", "--data-dir", str(cohort), "--out", str(out),
                 "--overlays", "1", "--quiet", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["runs"] == 6 and s["fields"] <= 6 and s["tubules"] >= 6
    assert set(s["groups"]) >= {"normal", "NOA", "SPT", "SPG"}
    assert s["groups"]["NOA"]["tubules"] == (s["groups"]["SPT"]["tubules"]
                                             + s["groups"]["SPG"]["tubules"])
    assert len(s["tests"]) == 4
    for t in s["tests"]:
        assert "error" in t or (0.0 <= t["p_value"] <= 1.0 and t["test"] in (
            "mannwhitney-u", "student-t", "student-t-one-tailed"))
    seg = s["tubule_segmentation_vs_truth"]
    assert seg and 0.0 <= seg["min_dice"] <= seg["mean_dice"] <= 1.0
    import pandas as pd

    df = pd.read_csv(s["table"])
    assert len(df) == s["tubules"] and set(df["phenotype"]) <= {"normal", "NOA-SPT",
                                                                  "NOA-SPG"}
    assert ((df["ld_area_percent"] >= 0) & (df["ld_area_percent"] <= 100)).all()
    assert (df.loc[df["ld_count"] == 0, "ld_mean_intensity"].isna()).all()
    for path in [s["images"]["figure"], *s["images"]["overlays"]]:
        with open(path, "rb") as fh:
            assert fh.read(4) == b"\x89PNG"
    from tiled.queries import Key

    from srash_ophyd.catalog import close_catalog, open_catalog

    c = open_catalog(cohort)
    try:
        run = c[s["analysis_uid"]]
        st = run.metadata["start"]
        assert st["analysis"] == "ld-quantification" and sorted(st["scan_uids"]) == sorted(
            s["scan_uids"])
        area = np.asarray(run["tubules"]["ld_area_percent"].read())
        np.testing.assert_allclose(np.sort(area), np.sort(df["ld_area_percent"].to_numpy()))
        assert len(c.search(Key("analysis") == "ld-quantification")) == 1
    finally:
        close_catalog(c)


def test_quantify_selection_and_errors(cohort, tmp_path, capsys):
    capsys.readouterr()
    # one phenotype only: the comparisons lack a group and say so, nothing crashes
    assert main(["quantify", "--cohort", "q", "--phenotype", "normal", "--data-dir",
                 str(cohort), "--out", str(tmp_path / "n"), "--no-store", "--no-truth",
                 "--overlays", "0", "--quiet", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["runs"] == 2 and s["analysis_uid"] is None
    assert s["tubule_segmentation_vs_truth"] is None
    assert all("error" in t and "at least 3" in t["error"] for t in s["tests"])
    assert s["images"]["figure"] is None  # no test ran: no figure, and no crash
    # nothing selected: a clear message, exit status 2
    assert main(["quantify", "--cohort", "nope", "--data-dir", str(cohort), "--quiet"]) == 2
    assert "no mosaic runs match" in capsys.readouterr().err
    assert main(["quantify", "--cohort", "q", "--ld-threshold", "-1", "--data-dir",
                 str(cohort), "--quiet"]) == 2
    assert "--ld-threshold -1: expected a positive" in capsys.readouterr().err
    assert main(["quantify", "--diagnosis", "normal", "--patient", "x", "--data-dir",
                 str(tmp_path / "empty"), "--quiet"]) == 2
    capsys.readouterr()
