"""``srash cohort --specimen cells``: hyperspectral stacks with their truth runs (issue 6)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from srash_ophyd.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings(
    "ignore:Using `httpx` with `starlette.testclient` is deprecated")]


def test_cells_cohort_stores_stacks_and_truth(tmp_path, capsys):
    data = tmp_path / "d"
    code = main(["cohort", "--name", "hc", "--specimen", "cells", "--samples", "1",
                 "--pixels", "64", "--fov-um", "30", "--stack", "2800:3050:25",
                 "--data-dir", str(data), "--json", "--quiet"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["acquired"] == 1 and out["runs"][0]["truth_uid"]
    from ml.io.truth import load_truth
    from srash_ophyd.catalog import close_catalog, open_catalog, search_runs

    c = open_catalog(data)
    try:
        run = c[out["runs"][0]["uid"]]
        assert run.metadata["start"]["plan_name"] == "hyperspectral_stack"
        img = run["primary"]["srash_image"]
        assert img.shape == (11, 2, 64, 64)  # 2800..3050 step 25: 11 bands
        labels, md = load_truth(c, run.metadata["start"]["uid"])
        assert labels.shape == (64, 64) and labels.dtype == np.uint8
        assert md["legend"]["nucleus"] == 3 and md["legend"]["lipid_droplet"] == 4
        assert set(np.unique(labels)) <= set(md["legend"].values())
        assert md["sample_id"] == "hc-cells-000" and md["window"]["nx"] == 64
        from ml.io.stacks import load_stacks, run_stack

        st = run_stack(run)
        hc = search_runs(c, plan="hyperspectral_stack", cohort="hc").values()
        stacks, labs = load_stacks(hc, c)
        assert len(stacks) == 1 and np.array_equal(stacks[0].data, st.data)
        assert np.array_equal(labs[0], labels)
        with pytest.raises(ValueError, match="srash cohort --specimen cells"):
            load_stacks(search_runs(c, plan="hyperspectral_stack", cohort="nope").values(), c)
        assert st.data.shape == (11, 64, 64) and np.all(np.diff(st.raman_cm1) > 0)
        # processed spectra: background ~0; cell pixels carry the CH-stretch band
        bg, cell = labels == 0, labels > 0
        if bg.any() and cell.any():
            assert st.data[:, bg].mean() < 0.2 * st.data[:, cell].mean()
    finally:
        close_catalog(c)
    # srash segment: labels back into the catalog, Dice against the truth run, PNGs
    assert main(["segment", "-1", "--data-dir", str(data), "--out", str(tmp_path / "seg"),
                 "--json"]) == 0
    seg = json.loads(capsys.readouterr().out)
    assert seg["scan_uid"] == out["runs"][0]["uid"] and seg["analysis_uid"]
    assert set(seg["dice"]) == {"nucleus", "lipid_droplet"}
    assert all(0.0 <= v <= 1.0 for v in seg["dice"].values())
    assert sum(seg["pixels"].values()) == 64 * 64
    for path in seg["images"].values():
        with open(path, "rb") as fh:
            assert fh.read(4) == b"\x89PNG"
    c = open_catalog(data)
    try:
        from tiled.queries import Key

        stored = list(c.search(Key("scan_uid") == seg["scan_uid"]).values())
        assert [r.metadata["start"]["analysis"] for r in stored] == ["segmentation"]
        assert np.asarray(stored[0]["labels"]["labels"].read()).shape == (1, 64, 64)
    finally:
        close_catalog(c)
    assert main(["segment", "nonexistent", "--data-dir", str(data)]) == 2
    # a resumed cohort skips the stored sample (the truth run does not count as one)
    assert main(["cohort", "--name", "hc", "--specimen", "cells", "--samples", "1",
                 "--pixels", "64", "--fov-um", "30", "--stack", "2800:3050:25",
                 "--data-dir", str(data), "--json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["skipped_existing"] == 1


@pytest.mark.parametrize("bad", ["2800:3050", "2800:3050:0", "3050:2800:5", "a:b:c",
                                 "0:100000:1"])
def test_bad_stack_ranges_are_refused(bad):
    from simulators.errors import SettingsError
    from srash_ophyd.cli.cohort import parse_stack

    with pytest.raises(SettingsError, match="--stack"):
        parse_stack(bad)


def _cells(data, name, seed_base, samples=3, stack="2800:3050:25", split="train"):
    assert main(["cohort", "--name", name, "--split", split, "--specimen", "cells",
                 "--samples", str(samples), "--seed-base", str(seed_base), "--pixels", "64",
                 "--fov-um", "30", "--stack", stack, "--data-dir", str(data), "--json",
                 "--quiet"]) == 0


def test_train_seg_evaluate_seg_and_segment_hybrid(tmp_path, capsys):
    """train-seg -> weights with provenance; evaluate-seg refuses seen seeds and scores
    phasor + the network; segment --method hybrid-unet stores labels; bad axes refused."""
    data = tmp_path / "d"
    _cells(data, "tr", 1000)
    _cells(data, "te", 50000, samples=2, split="test")
    capsys.readouterr()
    w = tmp_path / "w.pt"
    assert main(["train-seg", "--cohort", "tr", "--epochs", "2", "--crop", "32",
                 "--crops-per-stack", "2", "--batch-size", "2", "--data-dir", str(data),
                 "--out", str(w), "--report-dir", str(tmp_path / "rep"), "--quiet",
                 "--json"]) == 0
    tr = json.loads(capsys.readouterr().out)
    assert tr["stacks"] == {"train": 2, "validation": 1} and tr["bands"] == 11
    assert 1 <= tr["best_epoch"] <= 2 and 0 <= tr["val_dice"]["mean"] <= 1
    from ml.seg.models import load_segmenter

    _, meta = load_segmenter(w)
    assert meta["specimen_seeds"] == [1000, 1001, 1002] and meta["segmenter"] == "hybrid-unet"
    assert len(meta["history"]) == 2 and meta["raman_cm1"][0] == 2800.0
    with open(tr["images"]["learning_curves"], "rb") as fh:
        assert fh.read(4) == b"\x89PNG"
    # seeds seen in training are refused; the held-out cohort is scored
    assert main(["evaluate-seg", "--cohort", "tr", "--split", "train", "--weights", str(w),
                 "--data-dir", str(data), "--quiet"]) == 2
    assert "specimen seeds seen in training" in capsys.readouterr().err
    assert main(["evaluate-seg", "--cohort", "te", "--weights", str(w), "--data-dir",
                 str(data), "--out", str(tmp_path / "ev"), "--quiet", "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["stacks"] == 2 and set(ev["dice"]) == {"phasor", "two_band", "hybrid-unet"}
    assert set(ev["dice_vs_phasor"]) == {"two_band", "hybrid-unet"}  # issue 15, kept apart
    for d in ev["dice"].values():
        for cls in ("nucleus", "lipid_droplet"):
            assert 0.0 <= d[cls]["min"] <= d[cls]["mean"] <= 1.0
    for path in ev["images"].values():
        with open(path, "rb") as fh:
            assert fh.read(4) == b"\x89PNG"
    # segment with the trained network: labels stored, Dice reported
    assert main(["segment", "-1", "--method", "hybrid-unet", "--weights", str(w),
                 "--data-dir", str(data), "--out", str(tmp_path / "seg"), "--json"]) == 0
    seg = json.loads(capsys.readouterr().out)
    assert seg["method"] == "hybrid-unet" and seg["analysis_uid"]
    assert sum(seg["pixels"].values()) == 64 * 64 and set(seg["dice"]) == {
        "nucleus", "lipid_droplet"}
    # a stack whose Raman axis does not cover the training axis: a clear error
    _cells(data, "narrow", 90000, samples=1, stack="2850:3050:25", split="other")
    capsys.readouterr()
    assert main(["segment", "-1", "--method", "hybrid-unet", "--weights", str(w),
                 "--data-dir", str(data), "--no-store"]) == 2
    assert "trained on 2800.0-3050.0" in capsys.readouterr().err
    # LBNet-Dx weights are not a segmenter
    from ml.dx.predict import default_weights_path

    assert main(["segment", "-1", "--method", "hybrid-unet", "--weights",
                 str(default_weights_path("normal-vs-noa")), "--data-dir", str(data),
                 "--no-store"]) == 2
    assert "holds no segmenter" in capsys.readouterr().err
