"""Classical baselines, channel ablations and report figures / JSON (CPU, small data)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from ml.common.fileio import to_jsonable, write_json
from ml.common.plotting import ReportError, bars_png, confusion_png, roc_png
from ml.dx.ablation import (
    CHANNEL_SUBSETS,
    AblationError,
    ChannelMask,
    _prepare,
    check_subset,
    mask_channels,
    run_ablation,
)
from ml.dx.baselines import (
    BASELINES,
    PERCENTILES,
    BaselineError,
    feature_names,
    fit_baselines,
    make_baseline,
    patch_features,
)
from ml.dx.lbnet import LiteBlendNet
from ml.dx.montecarlo import accuracy_curve
from ml.dx.preprocess import MEAN, STD, PreprocessError, normalize
from ml.dx.report import montecarlo_png
from ml.dx.train import TrainConfig

seeds = st.integers(0, 2**32 - 1)


def _droplets(rng: np.random.Generator, n: int, size: int, *, p1: float = 0.5
              ) -> tuple[np.ndarray, np.ndarray]:
    """[0, 1] composites on a dim random texture; class 1 adds 10 bright lipid (G) droplets
    (Gaussian, sigma 2 px, peak 0.7)."""
    y = (rng.random(n) < p1).astype(np.int64)
    x = rng.random((n, 3, size, size), dtype=np.float32) * np.float32(0.3)
    yy, xx = np.mgrid[:size, :size]
    for i in np.flatnonzero(y):
        for cy, cx in rng.uniform(3, size - 3, (10, 2)):
            x[i, 1] += 0.7 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 2.0 ** 2))
    return np.clip(x, 0, 1).astype(np.float32), y


# ----------------------------------------------------------------------------- features

@given(seeds, st.integers(1, 6), st.integers(1, 5), st.integers(5, 23))
def test_features_permute_with_patches(seed, n, grid, size):
    r = np.random.default_rng(seed)
    x = r.random((n, 3, size, size), dtype=np.float32)
    f = patch_features(x, grid=grid)
    assert f.shape == (n, 3 * (grid * grid + 8)) and f.dtype == np.float32
    assert len(feature_names(grid=grid)) == f.shape[1]
    perm = r.permutation(n)
    np.testing.assert_array_equal(patch_features(x[perm], grid=grid), f[perm])


@given(seeds, st.integers(1, 4), st.integers(10, 40))
def test_features_match_their_definition(seed, grid, size):
    r = np.random.default_rng(seed)
    x = r.random((2, 3, size, size + 3), dtype=np.float32)
    f = patch_features(x, grid=grid).reshape(2, 3, -1)
    names = feature_names(grid=grid)
    assert names[0] == "R:block[0,0]" and names[-1] == "B:max"
    re = np.r_[(np.arange(grid) * size) // grid, size]
    ce = np.r_[(np.arange(grid) * (size + 3)) // grid, size + 3]
    for i in range(2):
        for c in range(3):
            v = x[i, c]
            blocks = [v[re[a]:re[a + 1], ce[b]:ce[b + 1]].mean()
                      for a in range(grid) for b in range(grid)]
            want = [*blocks, v.mean(), v.std(), *np.percentile(v, PERCENTILES),
                    (v > 0.5).mean(), v.max()]
            np.testing.assert_allclose(f[i, c], want, rtol=1e-5, atol=1e-6)


@given(st.floats(0.0, 1.0, width=32), st.integers(1, 10))
def test_constant_patch_has_zero_spread(value, grid):
    x = np.full((1, 3, 30, 30), value, np.float32)
    f = patch_features(x, grid=grid).reshape(3, -1)
    names = [n.split(":")[1] for n in feature_names(grid=grid)[:f.shape[1]]]
    std = names.index("std")
    assert np.all(f[:, std] == 0.0)
    others = [k for k, nm in enumerate(names) if nm not in ("std", "frac>0.5")]
    np.testing.assert_allclose(f[:, others], value, rtol=1e-6, atol=1e-7)
    assert np.all(f[:, names.index("frac>0.5")] == float(np.float32(value) > 0.5))


def test_feature_errors():
    with pytest.raises(BaselineError, match="expected \\(N, C, S, S\\)"):
        patch_features(np.zeros((3, 8, 8), np.float32))
    with pytest.raises(BaselineError, match="smaller than the 10 x 10"):
        patch_features(np.zeros((1, 3, 8, 8), np.float32))
    with pytest.raises(BaselineError, match="grid"):
        patch_features(np.zeros((1, 3, 8, 8), np.float32), grid=0)
    with pytest.raises(BaselineError, match="grid"):
        patch_features(np.zeros((1, 3, 8, 8), np.float32), grid=2.5)
    bad = np.zeros((1, 3, 12, 12), np.float32)
    bad[0, 1, 3, 3] = np.nan
    with pytest.raises(BaselineError, match="NaN"):
        patch_features(bad)
    with pytest.raises(BaselineError, match="unknown baseline"):
        make_baseline("RandomForest")


# ----------------------------------------------------------------------------- baselines

def test_baselines_separate_droplets_and_fail_on_shuffled_labels():
    r = np.random.default_rng(7)
    xt, yt = _droplets(r, 120, 32)
    xs, ys = _droplets(r, 200, 32)
    res = fit_baselines(xt, yt, xs, ys, seed=0)
    assert list(res) == list(BASELINES)
    for name, out in res.items():
        m = out["metrics"]
        assert out["proba"].shape == (200,) and np.all((0 <= out["proba"]) & (out["proba"] <= 1))
        assert m["accuracy"] >= 0.9 and m["roc_auc"] >= 0.9, (name, m)
        assert m["n"] == 200 and m["threshold"] == 0.5
        fpr, tpr, auc = out["roc"]
        assert auc == m["roc_auc"] and fpr[0] == 0 and tpr[-1] == 1
    # deterministic
    again = fit_baselines(xt, yt, xs, ys, seed=0, names=("SVM", "GradientBoosting"))
    for name in again:
        np.testing.assert_array_equal(again[name]["proba"], res[name]["proba"])
    # labels unrelated to the patches: chance level
    shuffled = fit_baselines(xt, r.permutation(yt), xs, r.permutation(ys), seed=0)
    for name, out in shuffled.items():
        assert 0.3 <= out["metrics"]["accuracy"] <= 0.7, (name, out["metrics"])
        assert 0.3 <= out["metrics"]["roc_auc"] <= 0.7, (name, out["metrics"])


def test_baselines_one_test_class_and_errors():
    r = np.random.default_rng(1)
    xt, yt = _droplets(r, 40, 16)
    xs, _ = _droplets(r, 6, 16)
    out = fit_baselines(xt, yt, xs, np.ones(6, np.int64), names=("KNN",))
    with pytest.raises(BaselineError, match="KNN needs at least 5"):
        fit_baselines(xt[:4], np.array([0, 1, 0, 1]), xs, np.ones(6, np.int64), names=("KNN",))
    assert out["KNN"]["roc"] is None and math.isnan(out["KNN"]["metrics"]["roc_auc"])
    cases = [
        (dict(y_train=yt[:, None]), "expected \\(40,\\)"),
        (dict(y_train=yt[:-1]), "expected \\(40,\\)"),
        (dict(y_train=np.zeros(40, np.int64)), "only class 0"),
        (dict(y_train=yt * 2), "only 0 \\(negative\\) and 1"),
        (dict(y_train=yt.astype(float)), "integer labels"),
        (dict(y_test=np.zeros((6, 1), np.int64)), "expected \\(6,\\)"),
        (dict(x_test=xs[:, :2]), "differ"),
        (dict(x_test=xs[0]), "expected \\(N, C, S, S\\)"),
        (dict(names=("SVM", "LDA")), "expected distinct names"),
        (dict(names=("SVM", "SVM")), "expected distinct names"),
        (dict(names=()), "expected distinct names"),
        (dict(threshold=float("nan")), "threshold"),
        (dict(threshold="0.5"), "threshold"),
        (dict(grid=0), "grid"),
        (dict(y_train=np.r_[np.zeros(37), np.ones(3)].astype(np.int64)), "at least 5"),
    ]
    base = dict(x_train=xt, y_train=yt, x_test=xs, y_test=np.ones(6, np.int64))
    for change, msg in cases:
        kw = {**base, **change}
        args = [kw.pop(k) for k in ("x_train", "y_train", "x_test", "y_test")]
        with pytest.raises(BaselineError, match=msg):
            fit_baselines(*args, **kw)


# ----------------------------------------------------------------------------- ablation

@pytest.fixture
def one_torch_thread():
    """Width-4 nets on 64 px patches gain nothing from 2 threads, and on a shared 2-core
    machine torch's 2-thread barriers stall behind any other busy process (measured 5 s vs
    0.03 s per epoch here)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_channel_subsets():
    assert CHANNEL_SUBSETS == ("R", "G", "B", "RG", "RB", "GB", "RGB")
    assert check_subset("BGR") == "RGB" and check_subset("GR") == "RG"
    for bad in ("", "X", "RR", "rgb", "RGBX", None, 3):
        with pytest.raises(AblationError, match="channel subset"):
            check_subset(bad)


@given(seeds, st.sampled_from(CHANNEL_SUBSETS), st.booleans(), st.integers(1, 3))
def test_mask_channels_zeroes_exactly_the_dropped_channels(seed, keep, shuffle, n):
    r = np.random.default_rng(seed)
    x = r.random((n, 3, 9, 7), dtype=np.float32)
    before = x.copy()
    name = "".join(r.permutation(list(keep))) if shuffle else keep
    out = mask_channels(x, name)
    np.testing.assert_array_equal(x, before)  # input untouched
    assert out.dtype == np.float32 and out.shape == x.shape
    for i, c in enumerate("RGB"):
        if c in keep:
            assert np.array_equal(out[:, i], x[:, i])
        else:
            assert not out[:, i].any()
    np.testing.assert_array_equal(mask_channels(x[0], keep), out[0])
    # the in-place z-score of run_ablation is normalize() bit for bit
    np.testing.assert_array_equal(_prepare(x, keep), normalize(out))


def test_mask_errors():
    with pytest.raises(AblationError, match="expected \\(3, H, W\\)"):
        mask_channels(np.zeros((2, 4, 8, 8), np.float32), "R")
    with pytest.raises(AblationError, match="channel subset"):
        mask_channels(np.zeros((3, 8, 8), np.float32), "Q")


def test_channel_mask_erases_what_augmentation_leaks(one_torch_thread):
    torch.manual_seed(0)
    net = LiteBlendNet(2, width=4).eval()
    wrapped = ChannelMask(net, "RB").eval()
    assert wrapped.num_classes == 2 and wrapped.in_channels == 3
    r = np.random.default_rng(3)
    x = r.random((2, 3, 64, 64), dtype=np.float32)
    clean = torch.from_numpy(normalize(mask_channels(x, "RB")))
    leaked = clean.clone()
    leaked[:, 1] = torch.from_numpy(r.standard_normal((2, 64, 64), dtype=np.float32))
    with torch.no_grad():
        ref = net(clean)
        assert torch.equal(wrapped(clean), ref)  # identity on masked input
        assert torch.equal(wrapped(leaked), ref)
    fill = torch.tensor(-np.float32(MEAN[1]) / np.float32(STD[1]))
    assert torch.all(clean[:, 1] == fill)


def test_run_ablation_tiny(one_torch_thread):
    r = np.random.default_rng(11)
    x, y = _droplets(r, 20, 64)
    y[:10], y[10:] = np.arange(10) % 2, np.arange(10) % 2  # both classes in every split
    xt, yt, xv, yv, xs, ys = x[:10], y[:10], x[10:14], y[10:14], x[14:], y[14:]
    cfg = TrainConfig(max_epochs=2, batch_size=5, device="cpu", eval_batch_size=8)
    seen: list[tuple[str, int]] = []
    res = run_ablation(xt, yt, xv, yv, xs, ys, config=cfg,
                       model_factory=lambda: LiteBlendNet(2, width=4), seed=0,
                       progress=lambda s, rec: seen.append((s, int(rec["epoch"]))))
    assert list(res) == list(CHANNEL_SUBSETS)
    assert seen == [(s, e) for s in CHANNEL_SUBSETS for e in (1, 2)]
    for name, out in res.items():
        m = out["metrics"]
        assert m["n"] == 6 and out["proba"].shape == (6,)
        for k in ("accuracy", "recall", "specificity", "precision", "f1", "roc_auc"):
            assert math.isfinite(m[k]) and 0 <= m[k] <= 1, (name, k, m[k])
        assert 1 <= out["best_epoch"] <= out["epochs_run"] <= 2
        assert out["roc"][2] == m["roc_auc"]
    # same seed, same data: same numbers (one subset in a different order too)
    again = run_ablation(xt, yt, xv, yv, xs, ys, config=cfg, subsets=("BG",),
                         model_factory=lambda: LiteBlendNet(2, width=4), seed=0)
    np.testing.assert_array_equal(again["GB"]["proba"], res["GB"]["proba"])


def test_run_ablation_errors(one_torch_thread):
    r = np.random.default_rng(2)
    x, y = _droplets(r, 8, 64)
    y[:] = np.arange(8) % 2
    cfg = TrainConfig(max_epochs=1, device="cpu")
    args = (x, y, x, y, x, y)
    with pytest.raises(AblationError, match="distinct"):
        run_ablation(*args, config=cfg, subsets=("RG", "GR"))
    with pytest.raises(AblationError, match="distinct"):
        run_ablation(*args, config=cfg, subsets=())
    with pytest.raises(AblationError, match="channel subset"):
        run_ablation(*args, config=cfg, subsets=("RGBA",))
    with pytest.raises(AblationError, match="only class 1"):
        run_ablation(x, np.ones(8, np.int64), x, y, x, y, config=cfg)
    with pytest.raises(AblationError, match="y_val of shape"):
        run_ablation(x, y, x, y[:3], x, y, config=cfg)
    with pytest.raises(AblationError, match="x_test of shape"):
        run_ablation(x, y, x, y, x[:, :2], y, config=cfg)
    with pytest.raises(AblationError, match="threshold"):
        run_ablation(*args, config=cfg, threshold=None)
    with pytest.raises(AblationError, match="labels 0"):
        run_ablation(x, y, x, y, x, y + 1, config=cfg)
    with pytest.raises(PreprocessError, match="expected \\[0, 1\\]"):
        run_ablation(x * 3, y, x, y, x, y, config=cfg, subsets=("G",))


# ----------------------------------------------------------------------------- report

def _assert_png(path):
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    assert img[..., :3].std() > 0.05  # not a blank canvas
    assert not list(path.parent.glob("*.tmp"))


def test_report_figures(tmp_path):
    f = np.array([0.0, 0.1, 0.5, 1.0])
    t = np.array([0.0, 0.6, 0.9, 1.0])
    p = roc_png(tmp_path / "a" / "roc.png", {"LBNet": (f, t, 0.9), "SVM": (f, f, float("nan"))},
                title="ROC", points={"LBNet": (0.1, 0.6)})
    assert p == tmp_path / "a" / "roc.png"
    _assert_png(p)
    _assert_png(confusion_png(tmp_path / "cm.png", ((50, 3), (7, 0)), ["normal", "NOA"],
                              title="test"))
    _assert_png(confusion_png(tmp_path / "cm0.png", np.zeros((3, 3), int), "abc"))
    _assert_png(bars_png(tmp_path / "b.png",
                         {"SVM": {"accuracy": 0.8, "roc_auc": np.float64("nan")},
                          "LBNet": {"accuracy": 0.95, "roc_auc": 0.98}},
                         metric_labels={"roc_auc": "AUC"}, title="baselines"))
    _assert_png(bars_png(tmp_path / "b1.png", dict(zip(CHANNEL_SUBSETS, np.linspace(0.5, 1, 7))),
                         title="ablation", ylabel="accuracy"))
    # names as long as a weights file's path (two weights of one model) keep the axes
    # (warnings are errors: matplotlib warns when constrained layout collapses them)
    long = "/tmp/pytest-of-someone/pytest-123/popen-gw1/test_train_then_evaluate0/w.pt"
    _assert_png(bars_png(tmp_path / "b2.png",
                         {"phasor": {"nucleus": 0.9, "lipid_droplet": 0.8},
                          "hybrid-unet": {"nucleus": 0.9, "lipid_droplet": 0.8},
                          long: {"nucleus": 0.9, "lipid_droplet": 0.8}}, title="Dice"))
    res = accuracy_curve(np.linspace(0.5, 1.0, 6), n_trials=500, rng=np.random.default_rng(0))
    _assert_png(montecarlo_png(tmp_path / "mc.png", res, observed=0.87))
    _assert_png(montecarlo_png(tmp_path / "mc2.png", [r.as_dict() for r in res[::-1]],
                               observed=0.2))


def test_report_errors(tmp_path):
    out = tmp_path / "x.png"
    f = np.array([0.0, 1.0])
    for curves, msg in [({}, "empty"), ({"a": (f, f[:1], 0.5)}, "1-D array of >= 2"),
                        ({"a": (f, np.array([0, 0.5, 1]), 0.5)}, "differ"),
                        ({"a": (f, f * 2, 0.5)}, "\\[0, 1\\]"), ({"a": (f, f)}, "expected")]:
        with pytest.raises(ReportError, match=msg):
            roc_png(out, curves)
    with pytest.raises(ReportError, match="point"):
        roc_png(out, {"a": (f, f, 0.5)}, points={"a": (2, 0)})
    with pytest.raises(ReportError, match="square"):
        confusion_png(out, np.zeros((2, 3)), "ab")
    with pytest.raises(ReportError, match="non-negative integer"):
        confusion_png(out, [[1, -1], [0, 2]], "ab")
    with pytest.raises(ReportError, match="class names"):
        confusion_png(out, np.eye(2), ["a"])
    with pytest.raises(ReportError, match="empty"):
        bars_png(out, {})
    with pytest.raises(ReportError, match="mixes"):
        bars_png(out, {"a": 0.5, "b": {"acc": 0.5}})
    with pytest.raises(ReportError, match="lacks"):
        bars_png(out, {"a": {"acc": 0.5, "auc": 0.6}, "b": {"acc": 0.5}})
    with pytest.raises(ReportError, match="numbers"):
        bars_png(out, {"a": "high"})
    with pytest.raises(ReportError, match="ylim"):
        bars_png(out, {"a": 0.5}, ylim=(1, 0))
    with pytest.raises(ReportError, match="empty"):
        montecarlo_png(out, [])
    with pytest.raises(ReportError, match="MonteCarloResult"):
        montecarlo_png(out, [{"accuracy": 0.5}])
    res = accuracy_curve([0.8, 0.9], n_trials=10, rng=np.random.default_rng(0))
    with pytest.raises(ReportError, match="observed"):
        montecarlo_png(out, res, observed=1.5)
    assert not out.exists() and not list(tmp_path.iterdir())


@given(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), max_size=6),
       st.integers(-2**40, 2**40))
def test_write_json_round_trip(tmp_path_factory, floats, big):
    path = tmp_path_factory.mktemp("json") / "sub" / "r.json"
    arr = np.asarray(floats, dtype=np.float64)
    obj = {"f": arr, "f32": arr.astype(np.float32), "i": np.int64(big), "u": np.uint8(7),
           "b": np.bool_(True), "t": (1, "x", None), 3: np.arange(4).reshape(2, 2),
           "nan": float("nan"), "nested": [{"m": np.float32(0.25)}], "path": path.parent}
    assert write_json(path, obj) == path
    back = json.loads(path.read_text())
    fin = [v if math.isfinite(v) else None for v in arr.tolist()]
    assert back["f"] == fin
    assert back["f32"] == [v if math.isfinite(v) else None
                           for v in arr.astype(np.float32).tolist()]
    assert back["i"] == big and back["u"] == 7 and back["b"] is True
    assert back["t"] == [1, "x", None] and back["3"] == [[0, 1], [2, 3]]
    assert back["nan"] is None and back["nested"] == [{"m": 0.25}]
    assert back["path"] == str(path.parent)
    assert "NaN" not in path.read_text() and "Infinity" not in path.read_text()
    assert not list(path.parent.glob("*.tmp"))


def test_to_jsonable_rejects_unknown_types(tmp_path):
    assert to_jsonable({"r": accuracy_curve([0.9], n_trials=5,
                                            rng=np.random.default_rng(0))[0]})["r"]["n_trials"] == 5
    with pytest.raises(ReportError, match=r"obj\['a'\]\[1\]: object is not JSON"):
        to_jsonable({"a": [1, object()]})
    with pytest.raises(ReportError, match="dtype"):
        write_json(tmp_path / "x.json", np.array(["a"], dtype=object))
    assert not list(tmp_path.iterdir())
