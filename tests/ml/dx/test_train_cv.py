"""Group cross-validation (scikit-learn's StratifiedGroupKFold behind our checks) and the
LBNet training loop / weights I/O (torch, CPU)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from sklearn.model_selection import StratifiedGroupKFold

from ml.common.weights import WeightsError, load_weights, save_weights
from ml.dx.cv import CVError, group_kfold, train_val_split_by_group
from ml.dx.lbnet import LiteBlendNet
from ml.dx.predict import predict_proba
from ml.dx.preprocess import normalize
from ml.dx.train import (
    TrainConfig,
    TrainError,
    compute_loss,
    l1_penalty,
    make_optimizer,
    train_model,
)

# ----------------------------------------------------------------------------- cv

group_lists = st.lists(st.integers(0, 30), min_size=1, max_size=200)


@given(group_lists, st.integers(2, 12), st.one_of(st.none(), st.integers(0, 2**32 - 1)))
def test_group_kfold_partitions_by_group(groups, k, seed):
    g = np.asarray(groups)
    n_groups = np.unique(g).size
    if k > n_groups:
        with pytest.raises(CVError, match="exceeds the number of groups"):
            group_kfold(g, k, rng=seed)
        return
    folds = group_kfold(g, k, rng=seed)
    assert len(folds) == k
    tests = [t for _, t in folds]
    # union of test folds = all patches, each exactly once
    assert np.array_equal(np.sort(np.concatenate(tests)), np.arange(g.size))
    seen: dict[int, int] = {}
    for f, (train, test) in enumerate(folds):
        assert test.size > 0 and test.dtype == np.int64
        assert np.intersect1d(train, test).size == 0
        assert np.array_equal(np.union1d(train, test), np.arange(g.size))
        # no group on both sides, and no group in two test folds
        assert not set(g[train]) & set(g[test])
        for grp in set(g[test].tolist()):
            assert seen.setdefault(grp, f) == f
    # deterministic
    again = group_kfold(g, k, rng=seed)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again))


def test_group_kfold_balances_counts_and_errors():
    groups = np.repeat(np.arange(18), 10)  # 18 equal groups -> 9 folds of 20 patches
    folds = group_kfold(groups, 9, rng=0)
    assert [t.size for _, t in folds] == [20] * 9
    assert all(np.unique(groups[t]).size == 2 for _, t in folds)
    # different seeds -> (generally) different folds; same seed -> same folds
    a = [tuple(np.unique(groups[t])) for _, t in group_kfold(groups, 9, rng=1)]
    b = [tuple(np.unique(groups[t])) for _, t in group_kfold(groups, 9, rng=2)]
    assert a != b
    # string labels work
    assert len(group_kfold(np.array(["p1", "p2", "p1", "p3"]), 3)) == 3
    with pytest.raises(CVError, match="exceeds the number of groups"):
        group_kfold([0, 0, 1], 9)
    with pytest.raises(CVError, match="n_splits"):
        group_kfold([0, 1, 2], 1)
    with pytest.raises(CVError, match="1-D"):
        group_kfold(np.zeros((2, 2)), 2)
    with pytest.raises(CVError, match="empty"):
        group_kfold([], 2)


# patients: (number of patches, label) each
patient_lists = st.lists(st.tuples(st.integers(1, 15), st.integers(0, 1)), min_size=2,
                         max_size=30)


@given(patient_lists, st.integers(2, 9), st.one_of(st.none(), st.integers(0, 2**32 - 1)))
def test_stratified_group_kfold_invariants(patients, k, seed):
    sizes = [n for n, _ in patients]
    groups = np.repeat(np.arange(len(patients)) * 7 + 3, sizes)   # arbitrary patient ids
    y = np.repeat([lab for _, lab in patients], sizes)
    if k > len(patients):
        with pytest.raises(CVError, match="exceeds the number of groups"):
            group_kfold(groups, k, y=y, rng=seed)
        return
    per_class = np.bincount(y, minlength=2)
    if (per_class[per_class > 0] < k).all():
        with pytest.raises(CVError, match="patch count of every class"):
            group_kfold(groups, k, y=y, rng=seed)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ref = [np.sort(t) for _, t in StratifiedGroupKFold(
            k, shuffle=seed is not None, random_state=seed).split(np.zeros((y.size, 1)), y,
                                                                  groups)]
    if any(t.size == 0 for t in ref):   # the heuristic can leave a fold empty: refused
        with pytest.raises(CVError, match="left a fold empty"):
            group_kfold(groups, k, y=y, rng=seed)
        return
    folds = group_kfold(groups, k, y=y, rng=seed)
    assert len(folds) == k
    # every patch in exactly one test fold; train is the complement
    assert np.array_equal(np.sort(np.concatenate([t for _, t in folds])), np.arange(y.size))
    owner: dict[int, int] = {}
    for f, (train, test) in enumerate(folds):
        assert test.size > 0
        assert np.array_equal(np.union1d(train, test), np.arange(y.size))
        assert np.intersect1d(train, test).size == 0
        for grp in set(groups[test].tolist()):      # no patient in two folds
            assert owner.setdefault(grp, f) == f
    # class balance: a class with at least k patients is in every test fold ...
    for c in (0, 1):
        if len({g for g, lab in zip(groups.tolist(), y.tolist()) if lab == c}) >= k:
            assert all((y[t] == c).any() for _, t in folds)
    # ... and the folds are exactly StratifiedGroupKFold's
    for (_, t), rt in zip(folds, ref):
        np.testing.assert_array_equal(t, rt)


def test_empty_fold_is_refused():
    # a case where StratifiedGroupKFold's dealing leaves one of 8 folds without a patient
    sizes, labels = [7, 5, 12, 1, 8, 2, 9, 12], [1, 0, 0, 1, 1, 0, 0, 1]
    groups, y = np.repeat(np.arange(8), sizes), np.repeat(labels, sizes)
    with pytest.raises(CVError, match="left a fold empty"):
        group_kfold(groups, 8, y=y, rng=459786576)
    assert len(group_kfold(groups, 4, y=y, rng=459786576)) == 4


def test_group_kfold_y_errors():
    with pytest.raises(CVError, match="one class label per patch"):
        group_kfold([0, 1, 2], 2, y=[0, 1])
    with pytest.raises(CVError, match="rng"):
        group_kfold([0, 1, 2], 2, rng=-1)


@given(st.lists(st.integers(0, 10), min_size=2, max_size=100),
       st.floats(0.05, 0.95), st.integers(0, 2**32 - 1))
def test_train_val_split_by_group(groups, frac, seed):
    g = np.asarray(groups)
    if np.unique(g).size < 2:
        with pytest.raises(CVError, match="at least 2"):
            train_val_split_by_group(g, frac, seed)
        return
    tr, va = train_val_split_by_group(g, frac, seed)
    assert tr.size > 0 and va.size > 0
    assert np.array_equal(np.sort(np.concatenate([tr, va])), np.arange(g.size))
    assert not set(g[tr]) & set(g[va])
    tr2, va2 = train_val_split_by_group(g, frac, seed)
    assert np.array_equal(va, va2)


def test_train_val_split_errors():
    with pytest.raises(CVError, match="val_fraction"):
        train_val_split_by_group([0, 1], 1.0, 0)
    with pytest.raises(CVError, match="rng"):
        train_val_split_by_group([0, 1], 0.5, "seed")


# ----------------------------------------------------------------------------- data

_YY, _XX = np.mgrid[:64, :64]


def _dataset(n: int, seed: int, *, random_labels: bool = False):
    """64 x 64 composites; class 1 has a bright blob in the lipid (G) channel."""
    r = np.random.default_rng(seed)
    x = r.uniform(0.1, 0.4, (n, 3, 64, 64)).astype(np.float32)
    y = np.arange(n) % 2
    r.shuffle(y)
    for i in np.flatnonzero(y):
        cy, cx = r.integers(16, 48, 2)
        x[i, 1] += 0.5 * np.exp(-((_YY - cy) ** 2 + (_XX - cx) ** 2) / (2 * 6.0 ** 2))
    if random_labels:
        y = r.integers(0, 2, n)
    return normalize(np.clip(x, 0, 1)), y.astype(np.int64)


def _model(seed: int = 0, width: int = 8) -> LiteBlendNet:
    torch.manual_seed(seed)
    return LiteBlendNet(2, width=width)


@pytest.fixture(scope="module")
def trained():
    xt, yt = _dataset(120, 0)
    xv, yv = _dataset(40, 1)
    cfg = TrainConfig(max_epochs=20, patience=8, seed=0)
    records = []
    res = train_model(_model(0), xt, yt, xv, yv, config=cfg, progress=records.append)
    return res, xv, yv, records


# ----------------------------------------------------------------------------- training

def test_config_defaults_are_the_papers():
    c = TrainConfig()
    assert (c.lr, c.betas, c.eps, c.batch_size) == (8e-4, (0.6, 0.999), 1e-8, 40)
    assert (c.lr_step_epochs, c.lr_gamma) == (10, 0.8)
    assert c.l1 > 0 and c.patience >= 1 and c.augment and c.device == "auto"
    with pytest.raises(TrainError, match="lr"):
        TrainConfig(lr=0)
    with pytest.raises(TrainError, match="device"):
        TrainConfig(device="tpu")


def test_learns_separable_blobs(trained):
    res, xv, yv, records = trained
    h = res.history
    assert max(h["val_acc"]) >= 0.9
    assert res.best_epoch == int(np.argmin(h["val_loss"])) + 1
    assert not res.model.training and res.device == "cpu"
    assert len(records) == res.epochs_run and records[0]["epoch"] == 1
    # the returned model holds the best epoch's weights
    p = predict_proba(res.model, xv)
    assert p.shape == (40, 2) and np.allclose(p.sum(1), 1)
    assert np.mean(p.argmax(1) == yv) >= 0.9
    ce = float(F.nll_loss(torch.log(torch.from_numpy(p)), torch.from_numpy(yv)))
    assert ce == pytest.approx(res.best_val_loss, rel=1e-4, abs=1e-6)


def test_early_stopping_restores_best_weights():
    xt, yt = _dataset(80, 2)
    xv, yv = _dataset(40, 3, random_labels=True)  # val loss rises as the model gets sure
    cfg = TrainConfig(max_epochs=40, patience=3, seed=1, augment=False)
    res = train_model(_model(1), xt, yt, xv, yv, config=cfg)
    h = res.history
    assert res.stopped_early and res.epochs_run < 40
    assert res.epochs_run == res.best_epoch + 3
    assert res.best_val_loss == min(h["val_loss"]) < h["val_loss"][-1]
    p = predict_proba(res.model, xv)
    ce = float(F.nll_loss(torch.log(torch.from_numpy(p)), torch.from_numpy(yv)))
    assert ce == pytest.approx(res.best_val_loss, rel=1e-4, abs=1e-6)


def test_steplr_schedule():
    model = _model(0, width=4)
    opt, sched = make_optimizer(model, TrainConfig())
    lrs = []
    for _ in range(25):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()  # no gradients: a no-op, but keeps the scheduler's order check happy
        sched.step()
    assert lrs[:10] == [8e-4] * 10
    assert lrs[10] == pytest.approx(8e-4 * 0.8) and lrs[19] == pytest.approx(8e-4 * 0.8)
    assert lrs[20] == pytest.approx(8e-4 * 0.8 ** 2)
    g = opt.param_groups[0]
    assert g["betas"] == (0.6, 0.999) and g["eps"] == 1e-8


def test_same_seed_same_history_and_lr_in_history():
    xt, yt = _dataset(16, 4)
    xv, yv = _dataset(8, 5)
    cfg = TrainConfig(max_epochs=11, patience=100, seed=7, batch_size=6)
    runs = [train_model(_model(3, width=4), xt, yt, xv, yv, config=cfg) for _ in range(2)]
    for key in ("train_loss", "train_acc", "val_loss", "val_acc", "lr"):
        assert runs[0].history[key] == runs[1].history[key], key
    assert runs[0].history["lr"][9] == pytest.approx(8e-4)
    assert runs[0].history["lr"][10] == pytest.approx(8e-4 * 0.8)
    other = train_model(_model(3, width=4), xt, yt, xv, yv,
                        config=TrainConfig(max_epochs=2, seed=8, batch_size=6))
    assert other.history["train_loss"] != runs[0].history["train_loss"][:2]
    # the caller's global RNG is untouched
    m = _model(3, width=4)
    torch.manual_seed(123)
    a = torch.rand(3)
    torch.manual_seed(123)
    train_model(m, xt, yt, xv, yv, config=TrainConfig(max_epochs=1))
    assert torch.equal(torch.rand(3), a)


def test_l1_term():
    model = _model(0, width=4)
    with torch.no_grad():
        expect = float(sum(p.abs().sum() for p in model.parameters() if p.ndim >= 2))
        assert float(l1_penalty(model)) == pytest.approx(expect, rel=1e-6)
        lin = torch.nn.Linear(3, 2)
        torch.nn.init.constant_(lin.bias, 5.0)
        assert float(l1_penalty(lin)) == pytest.approx(float(lin.weight.abs().sum()))
        x = torch.from_numpy(_dataset(4, 0)[0])
        y = torch.tensor([0, 1, 0, 1])
        model.eval()
        logits = model(x)
        base = float(compute_loss(model, logits, y, 0.0))
        assert base == pytest.approx(float(F.cross_entropy(logits, y)))
        with_l1 = float(compute_loss(model, logits, y, 1e-3))
    assert with_l1 - base == pytest.approx(1e-3 * expect, rel=1e-5)
    assert with_l1 > base


def test_input_validation():
    xt, yt = _dataset(8, 0)
    m = _model(0, width=4)
    with pytest.raises(TrainError, match="float32"):
        train_model(m, xt.astype(np.float64), yt, xt, yt, config=TrainConfig(max_epochs=1))
    with pytest.raises(TrainError, match="labels"):
        train_model(m, xt, yt + 5, xt, yt, config=TrainConfig(max_epochs=1))
    with pytest.raises(TrainError, match="channels"):
        train_model(m, xt[:, :2], yt, xt[:, :2], yt, config=TrainConfig(max_epochs=1))
    if not torch.cuda.is_available():
        with pytest.raises(TrainError, match="CUDA"):
            train_model(m, xt, yt, xt, yt, config=TrainConfig(max_epochs=1, device="cuda"))


# ----------------------------------------------------------------------------- weights I/O

def test_save_load_roundtrip(trained, tmp_path):
    res, xv, _, _ = trained
    meta = {"model": {"num_classes": 2, "width": 8}, "task": "normal-vs-NOA", "seed": 0}
    path = save_weights(res.model, tmp_path / "w.pt", meta=meta)
    model, meta2 = load_weights(path, model_factory=lambda m: LiteBlendNet(**m["model"]))
    assert meta2 == meta and not model.training
    np.testing.assert_array_equal(predict_proba(model, xv), predict_proba(res.model, xv))


def test_load_errors(trained, tmp_path):
    res = trained[0]
    factory = lambda m: LiteBlendNet(**m["model"])  # noqa: E731
    with pytest.raises(WeightsError, match="does not exist"):
        load_weights(tmp_path / "missing.pt", model_factory=factory)
    bad = tmp_path / "garbage.pt"
    bad.write_bytes(b"\x00not a torch file" * 10)
    with pytest.raises(WeightsError, match="could not be read"):
        load_weights(bad, model_factory=factory)
    good = save_weights(res.model, tmp_path / "w.pt", meta={"model": {"width": 8}})
    trunc = tmp_path / "trunc.pt"
    trunc.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(WeightsError, match="could not be read"):
        load_weights(trunc, model_factory=factory)
    with pytest.raises(WeightsError, match="does not fit"):
        load_weights(good, model_factory=lambda m: LiteBlendNet(2, width=4))
    other = tmp_path / "other.pt"
    torch.save({"a": torch.zeros(2)}, other)
    with pytest.raises(WeightsError, match="is not a"):
        load_weights(other, model_factory=factory)
    with pytest.raises(WeightsError, match="JSON"):
        save_weights(res.model, tmp_path / "x.pt", meta={"bad": math.nan})
    with pytest.raises(WeightsError, match="JSON"):
        save_weights(res.model, tmp_path / "x.pt", meta={"bad": object()})
