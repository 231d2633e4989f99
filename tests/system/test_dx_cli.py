"""LBNet-Dx from the command line, end to end on a tiny simulated cohort (issue 5):
``srash cohort`` -> ``srash train`` -> ``srash evaluate`` (held-out seeds) -> ``srash demo``.

Fields are 600 px at 0.3 um (the classifier's pixel size; 16 windows each) and the model is
LiteBlendNet(width=4) trained for one epoch: this checks the plumbing and the reports, not
accuracy (the shipped weights' accuracy is in docs/model_card.md).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from srash_ophyd.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings(
    "ignore:Using `httpx` with `starlette.testclient` is deprecated")]

SMALL = ["--grid", "1x1", "--pixels", "600", "--fov-um", "180", "--averages", "1", "--quiet"]


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("dx")
    data = d / "data"
    for args in (["--name", "tr", "--patients", "normal=2,NOA-SPT=2,NOA-SPG=2",
                  "--seed-base", "100"],
                 ["--name", "ho", "--split", "test", "--patients",
                  "normal=1,NOA-SPT=1,NOA-SPG=1", "--seed-base", "90000"]):
        assert main(["cohort", *args, *SMALL, "--data-dir", str(data), "--json"]) == 0
    for task in ("normal-vs-noa", "spt-vs-spg"):
        assert main(["train", "--task", task, "--cohort", "tr", "--epochs", "1", "--width",
                     "4", "--patches-per-field", "8", "--val-fraction", "0.5", "--out",
                     str(d / f"{task}.pt"), "--report-dir", str(d / f"rep-{task}"),
                     "--data-dir", str(data), "--quiet", "--json"]) == 0
    return d, data


def test_train_writes_weights_with_provenance_and_a_report(trained):
    from ml.dx.predict import LBNetDx

    d, _ = trained
    dx = LBNetDx.load(d / "normal-vs-noa.pt")
    t = dx.meta["train"]
    assert t["cohort"] == "tr" and len(t["runs"]) == 6
    assert sorted(t["specimen_seeds"]) == [100, 101, 1100, 1101, 2100, 2101]
    assert not set(t["patients_train"]) & set(t["patients_val"])
    assert 0.0 <= dx.patch_threshold <= 1.0
    rep = json.loads((d / "rep-normal-vs-noa" / "train.json").read_text())
    assert rep["task"] == "normal-vs-noa" and len(rep["history"]["epoch"]) == 1
    assert (d / "rep-normal-vs-noa" / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"
    sub = LBNetDx.load(d / "spt-vs-spg.pt")
    assert sub.task.name == "spt-vs-spg" and len(sub.meta["train"]["runs"]) == 4


def test_evaluate_reports_everything_on_held_out_seeds(trained, capsys):
    d, data = trained
    out = d / "ev"
    code, stdout, err = run(capsys, "evaluate", "--task", "normal-vs-noa", "--weights",
                            d / "normal-vs-noa.pt", "--cohort", "ho", "--ablations",
                            "--ablation-epochs", "1", "--ablation-patches", "4",
                            "--mc-trials", "2000", "--out", out, "--data-dir", data,
                            "--quiet", "--json")
    assert code == 0, err
    rep = json.loads(stdout)
    assert rep["n_runs"] == 3 and rep["sample"]["n_samples"] == 3
    pm = rep["patch"]
    assert pm["n_patches"] == sum(s["n_patches"] for s in rep["samples"])
    assert 0 <= pm["accuracy"] <= 1 and np.sum(rep["confusion_patches"]) == pm["n_patches"]
    s = rep["sample"]
    assert s["correct"] + s["unidentifiable"] + s["wrong"] == 3
    assert set(rep["baselines"]) == {"SVM", "KNN", "DecisionTree", "GradientBoosting"}
    assert set(rep["ablations"]) == {"R", "G", "B", "RG", "RB", "GB", "RGB"}
    curve = rep["montecarlo"]["curve"]
    assert all(abs(c["accuracy"] + c["unidentifiable"] + c["wrong"] - 1) < 1e-9
               for c in curve)
    for key in ("roc", "confusion_patches", "confusion_samples", "baselines", "ablations",
                "montecarlo"):
        assert (out / f"{key}.png").read_bytes()[:4] == b"\x89PNG", key
    assert any(k.startswith("gradcam_") for k in rep["images"])
    assert json.loads((out / "evaluation.json").read_text())["task"] == "normal-vs-noa"


def test_one_pass_patch_sets_equal_separate_loads(trained):
    from ml.dx.data import load_patch_sets, load_patches, select_runs
    from ml.dx.predict import get_task
    from srash_ophyd.catalog import close_catalog, open_catalog, search_runs

    _, data = trained
    task = get_task("normal-vs-noa")
    c = open_catalog(data)
    try:
        runs = select_runs(search_runs(c, plan="mosaic", cohort="tr").values(), task)
        sets = load_patch_sets(runs, task, [(8, 0), (3, 1)], progress=False)
        for ds, (ppf, seed) in zip(sets, [(8, 0), (3, 1)]):
            one = load_patches(runs, task, patches_per_field=ppf, seed=seed, progress=False)
            assert np.array_equal(ds.x, one.x) and np.array_equal(ds.y, one.y)
            assert np.array_equal(ds.weights, one.weights)
            assert list(ds.groups) == list(one.groups)
    finally:
        close_catalog(c)


def test_evaluate_refuses_training_seeds(trained, capsys):
    d, data = trained
    code, _, err = run(capsys, "evaluate", "--weights", d / "normal-vs-noa.pt", "--cohort",
                       "tr", "--split", "", "--no-baselines", "--out", d / "ev2",
                       "--data-dir", data, "--quiet")
    assert code == 2 and "seeds seen in training" in err


def test_train_on_an_empty_query_says_what_to_do(trained, capsys):
    d, data = trained
    code, _, err = run(capsys, "train", "--cohort", "nope", "--out", d / "x.pt",
                       "--data-dir", data, "--quiet")
    assert code == 2 and "srash cohort" in err


def test_demo_json_has_the_promised_keys_and_images(trained, capsys):
    d, data = trained
    code, stdout, err = run(capsys, "demo", "--phenotype", "NOA-SPG", "--seed", "77",
                            "--grid", "1x1", "--weights", d / "normal-vs-noa.pt",
                            "--subtype-weights", d / "spt-vs-spg.pt", "--data-dir", data,
                            "--out", d / "demo", "--quiet", "--json")
    assert code == 0, err
    res = json.loads(stdout)
    for key in ("scan_uid", "analysis_uid", "fields", "diagnosis", "probabilities", "images"):
        assert key in res, key
    assert res["diagnosis"] in ("normal", "NOA", "NOA-SPT", "NOA-SPG", "unidentifiable")
    assert len(res["fields"]) == 1 and res["fields"][0]["n_patches"] > 0
    assert abs(sum(res["probabilities"].values()) - 1) < 1e-9
    for path in res["images"].values():
        with open(path, "rb") as fh:
            assert fh.read(4) == b"\x89PNG"
    # the analysis run is in the catalog, linked to the scan
    from tiled.queries import Key

    from srash_ophyd.catalog import close_catalog, open_catalog

    c = open_catalog(data)
    try:
        found = list(c.search(Key("scan_uid") == res["scan_uid"]).values())
        assert {r.metadata["start"]["uid"] for r in found} >= {res["analysis_uid"]}
    finally:
        close_catalog(c)


def test_demo_without_weights_is_a_clear_error(tmp_path, capsys):
    code, _, err = run(capsys, "demo", "--weights", tmp_path / "none.pt", "--data-dir",
                       tmp_path / "d", "--quiet")
    assert code == 2 and "srash train" in err
