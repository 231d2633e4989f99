"""The LBNet-Dx workflows (ml.dx.workflow) on small synthetic data: the cross-validation
partitions patches by patient, the out-of-fold threshold is an observed score, training
writes weights and report with no patient on both sides, and evaluation's counts add up."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from ml.common.errors import MLError
from ml.dx.data import FieldComposite, PatchDataset
from ml.dx.lbnet import LiteBlendNet
from ml.dx.predict import LBNetDx, get_task
from ml.dx.preprocess import normalize
from ml.dx.workflow import (
    DxEvalSettings,
    DxTrainSettings,
    WorkflowError,
    cross_validate,
    evaluate_dx,
    permute_inplace,
    sample_summary,
    train_dx,
    zscore_inplace,
)
from ml.io.frames import ReadFaults
from ml.io.runs import Tile

TASK = get_task("normal-vs-noa")
PNG = b"\x89PNG"


def is_png(path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(4) == PNG


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def patches(n_patients: int = 6, per_patient: int = 4, size: int = 64, seed: int = 0
            ) -> PatchDataset:
    """[0, 1] patches of ``n_patients`` patients (alternating labels 0 / 1), class 1
    brighter in the first channel; one field per patient."""
    rng = np.random.default_rng(seed)
    xs, ys, gs, fs, fields = [], [], [], [], []
    for p in range(n_patients):
        label = p % 2
        x = rng.uniform(0.1, 0.5, (per_patient, 3, size, size)).astype(np.float32)
        x[:, 0] += 0.4 * label
        xs.append(x)
        ys.append(np.full(per_patient, label, np.int64))
        gs.append(np.full(per_patient, f"P{p}", object))
        fs.append(np.full(per_patient, p, np.int64))
        fields.append({"run_uid": f"run{p}", "specimen_seed": 100 + p, "patient_id": f"P{p}",
                       "label": label})
    return PatchDataset(x=np.concatenate(xs), y=np.concatenate(ys),
                        weights=np.ones(n_patients * per_patient), groups=np.concatenate(gs),
                        field=np.concatenate(fs), fields=fields)


SMALL = dict(epochs=1, patience=1, width=4, device="cpu")


# ----------------------------------------------------------------------------- training
def test_zscore_inplace_equals_normalize():
    ds = patches(2, 2)
    expected = normalize(ds.x)
    out = zscore_inplace(ds.x)
    assert out is ds.x
    np.testing.assert_allclose(ds.x, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1])
def test_cross_validation_puts_every_patch_in_one_fold_and_each_patient_in_one(seed):
    ds = patches(6, 4)
    zscore_inplace(ds.x)
    cv = cross_validate(ds, TASK, DxTrainSettings(cv_folds=3, seed=seed, **SMALL))
    assert len(cv.folds) == len(cv.val_indices) == 3
    every = np.sort(np.concatenate(cv.val_indices))
    assert np.array_equal(every, np.arange(len(ds)))             # each patch exactly once
    fold_of = {}
    for i, idx in enumerate(cv.val_indices):
        for g in set(ds.groups[idx].tolist()):
            assert fold_of.setdefault(g, i) == i                    # a patient in one fold
        # stratified by label: 3 patients per class over 3 folds -> both classes per fold
        assert set(ds.y[idx].tolist()) == {0, 1}
    assert [f["n_val"] for f in cv.folds] == [idx.size for idx in cv.val_indices]
    assert np.isfinite(cv.oof_scores).all()
    assert cv.threshold in cv.oof_scores                              # an observed score
    assert 0.0 <= cv.youden_j <= 1.0
    rep = cv.as_report()
    assert rep["youden_threshold_oof"] == cv.threshold
    assert min(f["accuracy"] for f in cv.folds) <= rep["accuracy_mean"] <= max(
        f["accuracy"] for f in cv.folds)


def test_train_writes_weights_and_report_without_a_patient_on_both_sides(tmp_path):
    ds = patches(6, 4)
    raw = ds.x.copy()
    seen: list[str] = []
    res = train_dx(ds, TASK, settings=DxTrainSettings(cv_folds=2, cohort="c", **SMALL),
                   weights_path=tmp_path / "w.pt", report_dir=tmp_path / "rep",
                   report_extra={"load_seconds": 1.5, "skipped_runs": []},
                   progress=lambda stage, rec: seen.append(stage))
    # z-scored and reordered in place (training patients first): every patch is still
    # there once, with its own label, patient and field
    before = {normalize(raw)[i].tobytes(): i for i in range(len(raw))}
    order = np.array([before[p.tobytes()] for p in ds.x]) if len(before) == len(raw) else None
    assert order is not None and sorted(order.tolist()) == list(range(len(raw)))
    ref = patches(6, 4)
    assert np.array_equal(ds.y, ref.y[order]) and np.array_equal(ds.field, ref.field[order])
    assert np.array_equal(ds.groups, ref.groups[order])
    assert seen == ["fold 1/2", "fold 2/2", "final"]                 # one epoch each
    rep = res.report
    n_tr = rep["n_patches_train"]
    assert set(ds.groups[:n_tr]) == set(rep["patients_train"])      # training ones first
    assert set(ds.groups[n_tr:]) == set(rep["patients_val"])
    assert not set(rep["patients_train"]) & set(rep["patients_val"])
    assert set(rep["patients_train"]) | set(rep["patients_val"]) == set(ds.groups.tolist())
    assert rep["n_patches_train"] + rep["n_patches_val"] == len(ds)
    assert 0.0 <= rep["threshold"] <= 1.0
    assert rep["cv"]["youden_threshold_oof"] in res.cv.oof_scores
    assert rep["load_seconds"] == 1.5 and rep["skipped_runs"] == []
    on_disk = json.loads((tmp_path / "rep" / "train.json").read_text())
    assert on_disk["task"] == "normal-vs-noa" and "report" not in on_disk
    for key in ("learning_curves", "roc"):  # both classes are on the validation side
        assert is_png(rep["images"][key])
    dx = LBNetDx.load(tmp_path / "w.pt")
    assert dx.patch_threshold == rep["threshold"]
    t = dx.meta["train"]
    assert t["specimen_seeds"] == [100, 101, 102, 103, 104, 105] and t["cohort"] == "c"
    assert t["cv"]["folds"] == json.loads(json.dumps(rep["cv"]["folds"]))


def test_a_channel_subset_model_never_sees_the_dropped_channels(tmp_path):
    """Full-length ablation: trained on G + B, stored as a bare LiteBlendNet with its
    channels in the metadata; loaded back, what the R channel holds changes nothing."""
    from ml.dx.channels import CHANNEL_SUBSETS
    from ml.dx.predict import _CHANNEL_SUBSETS

    assert _CHANNEL_SUBSETS == CHANNEL_SUBSETS
    ds = patches(6, 4)
    test_x = ds.x.copy()
    res = train_dx(ds, TASK, settings=DxTrainSettings(channels="BG", **SMALL),
                   weights_path=tmp_path / "gb.pt", report_dir=tmp_path / "rep")
    assert res.meta["dx"]["channels"] == "GB"
    dx = LBNetDx.load(tmp_path / "gb.pt")
    assert dx.channels == "GB"
    other = test_x.copy()
    other[:, 0] = np.random.default_rng(0).uniform(0, 1, other[:, 0].shape)
    np.testing.assert_allclose(dx.predict(test_x), dx.predict(other), atol=1e-6)
    other[:, 1] *= 0.2  # a kept channel does matter
    assert np.abs(dx.predict(test_x) - dx.predict(other)).max() > 1e-4
    assert LBNetDx.load(tmp_path / "gb.pt", channels="RGB").channels == "RGB"
    import torch

    from ml.dx.gradcam import grad_cam  # through the mask, to the bare model's CAM layer
    cam = grad_cam(dx.model, torch.from_numpy(normalize(test_x[:1])))
    assert np.isfinite(np.asarray(cam)).all()


@pytest.mark.parametrize("bad", [dict(cv_folds=1), dict(cv_folds=-2), dict(epochs=0),
                                 dict(val_fraction=1.0), dict(width=300),
                                 dict(channels="RX")])
def test_bad_training_settings_are_ml_errors(bad):
    with pytest.raises(MLError):
        DxTrainSettings(**bad)


@given(st.integers(1, 40), st.integers(0, 2**32 - 1))
def test_permute_inplace_equals_fancy_indexing_for_every_array(n, seed):
    ds = patches(n, 1, size=4, seed=seed % 1000)
    ref = patches(n, 1, size=4, seed=seed % 1000)
    order = np.random.default_rng(seed).permutation(n)
    permute_inplace(ds, order)
    for name in ("x", "y", "weights", "groups", "field"):
        assert np.array_equal(getattr(ds, name), getattr(ref, name)[order])
    with pytest.raises(MLError, match="permutation"):
        permute_inplace(ds, np.zeros(n, dtype=np.int64) if n > 1 else np.array([1]))


def test_session_gain_setting_reaches_the_training_config_and_its_record():
    from ml.dx.augment import SESSION_GAIN_SIGMA

    assert DxTrainSettings().train_config().augment_config is None  # the paper's recipe
    cfg = DxTrainSettings(session_gain=True).train_config()
    assert cfg.augment_config.session_gain_sigma == SESSION_GAIN_SIGMA
    assert tuple(cfg.to_dict()["augment_config"]["session_gain_sigma"]) == SESSION_GAIN_SIGMA


# ----------------------------------------------------------------------------- evaluation
@given(st.lists(st.sampled_from(["correct", "unidentifiable", "wrong"]), max_size=30))
def test_sample_summary_counts_add_up(outcomes):
    s = sample_summary([{"outcome": o} for o in outcomes])
    assert s["correct"] + s["unidentifiable"] + s["wrong"] == s["n_samples"] == len(outcomes)
    assert s["all_correct_or_unidentifiable"] == (s["wrong"] == 0)
    if outcomes:
        assert s["accuracy"] == s["correct"] / len(outcomes)


def _field(composite: np.ndarray, info: dict, index: int = 0):
    tile = Tile(index=index, x_um=0.0, y_um=0.0, pixel_um=0.3,
                data=np.zeros((3, 1, 1), np.float32), events=(0, 1),
                shifts_cm1=(2850.0, 2930.0))
    return info, FieldComposite(tile=tile, composite=composite, pixel_um=0.3)


def _held_out(seed: int = 0):
    """Two samples per class, one tissue field each (4 valid patches), and one blank
    field (no valid patch)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(4):
        label = i % 2
        comp = rng.uniform(0.2, 0.6, (3, 400, 400)).astype(np.float32)
        comp[0] += 0.3 * label
        info = {"run_uid": f"r{i}", "sample_id": f"S{i}", "patient_id": f"P{i}",
                "phenotype": "normal" if label == 0 else "NOA-SPT", "label": label,
                "specimen_seed": 9000 + i, "field_index": 0, "x_um": 0.0, "y_um": 0.0}
        out.append(_field(comp, info))
    blank = dict(out[0][0], field_index=1)
    out.append(_field(np.zeros((3, 400, 400), np.float32), blank, index=1))
    return out


def _dx():
    torch.manual_seed(0)
    return LBNetDx(LiteBlendNet(2, width=4), task=TASK, patch_threshold=0.5,
                   meta={"train": {"cohort": "tr"}, "path": "w.pt"})


def test_evaluation_counts_add_up_and_every_figure_is_written(tmp_path):
    # baselines' thresholds are fitted out of fold, grouped by patient: 3 patients a class
    train = patches(6, 6, size=300, seed=1)
    faults = ReadFaults()
    rep = evaluate_dx(_dx(), _held_out(), settings=DxEvalSettings(mc_trials=500, cohort="ho"),
                      report_dir=tmp_path, n_runs=4, baseline_train=train, faults=faults)
    pm, s = rep["patch"], rep["sample"]
    assert rep["n_fields"] == 5 and rep["n_runs"] == 4 and rep["cohort"] == "ho"
    assert [f["field_vote"] for f in rep["fields"]].count(None) == 1   # the blank field
    assert pm["n_patches"] == sum(sm["n_patches"] for sm in rep["samples"]) == 16
    assert np.sum(rep["confusion_patches"]) == pm["n_patches"]
    assert s["n_samples"] == 4 and s["correct"] + s["unidentifiable"] + s["wrong"] == 4
    assert np.sum(rep["confusion_samples_identified"]) == 4 - s["unidentifiable"]
    assert set(rep["baselines"]) == {"SVM", "KNN", "DecisionTree", "GradientBoosting"}
    for b in rep["baselines"].values():  # own threshold, LBNet's vote over the 4 samples
        bs = b["sample"]
        assert bs["correct"] + bs["wrong"] + bs["unidentifiable"] == bs["n"] == 4
        assert 0.0 <= b["threshold"] <= 1.0
        assert b["metrics"]["threshold"] == b["threshold"]
        assert b["metrics_at_lbnet_threshold"]["threshold"] == rep["patch_threshold"]
    for c in rep["montecarlo"]["curve"]:
        assert c["accuracy"] + c["unidentifiable"] + c["wrong"] == pytest.approx(1.0)
    assert rep["montecarlo"]["n_patches_range"] == [4, 4]
    cams = [k for k in rep["images"] if k.startswith("gradcam_")]
    assert len(cams) == 2                                 # one sample per class (gradcam=1)
    for path in rep["images"].values():
        assert is_png(path)
    on_disk = json.loads((tmp_path / "evaluation.json").read_text())
    assert on_disk["sample"]["n_samples"] == 4 and on_disk["skipped_runs"] == []


def test_evaluation_without_a_valid_patch_or_training_data_is_an_ml_error(tmp_path):
    blank = [f for f in _held_out() if f[1].composite.max() == 0]
    with pytest.raises(WorkflowError, match="no valid patch"):
        evaluate_dx(_dx(), blank, settings=DxEvalSettings(baselines=False, mc_trials=10),
                    report_dir=tmp_path, n_runs=1)
    with pytest.raises(WorkflowError, match="ablation_train"):
        evaluate_dx(_dx(), blank, settings=DxEvalSettings(baselines=False, ablations=True),
                    report_dir=tmp_path, n_runs=1)
    with pytest.raises(MLError):
        DxEvalSettings(mc_trials=0)
