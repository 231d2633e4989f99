"""Segmentation training / inference / Dice evaluation (ml.seg.train), CPU, small models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from ml.common.weights import load_weights, save_weights
from ml.seg.hybrid_unet import HybridUNet
from ml.seg.train import (
    SegConfig,
    SegTrainError,
    SegTrainResult,
    evaluate_dice,
    masks_from_labels,
    normalize_stack,
    predict_masks,
    train_segmenter,
)
from simulators.specimens.base import Label

NUC, LD = int(Label.NUCLEUS), int(Label.LIPID_DROPLET)


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _synthetic(n: int, b: int = 16, size: int = 48, seed: int = 0):
    """Stacks (offset 1, noise 0.3) with nucleus disks (protein peak at band 11) and
    lipid-droplet disks (peak at band 3); simulator label maps (3 / 4, 0 elsewhere)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    bands = np.arange(b)
    lipid = np.exp(-0.5 * ((bands - 3) / 1.0) ** 2)
    protein = np.exp(-0.5 * ((bands - 11) / 1.5) ** 2)
    stacks, labels = [], []
    for _ in range(n):
        lab = np.zeros((size, size), np.int64)
        for _ in range(2):
            c, r = rng.uniform(10, size - 10, 2), rng.uniform(5, 8)
            lab[(yy - c[0]) ** 2 + (xx - c[1]) ** 2 < r * r] = NUC
        for _ in range(3):
            c, r = rng.uniform(5, size - 5, 2), rng.uniform(2.5, 4)
            lab[((yy - c[0]) ** 2 + (xx - c[1]) ** 2 < r * r) & (lab == 0)] = LD
        st = 1.0 + 0.3 * rng.standard_normal((b, size, size))
        st += 2.0 * protein[:, None, None] * (lab == NUC) + 2.0 * lipid[:, None, None] * (lab == LD)
        stacks.append(st.astype(np.float32))
        labels.append(lab)
    return stacks, labels


def _small_model() -> HybridUNet:
    torch.manual_seed(0)
    return HybridUNet(width=8, width3d=4)


# ---------------------------------------------------------------- data preparation

def test_masks_from_labels():
    lab = np.array([[0, 1, 2, NUC], [LD, NUC, 5, LD]], dtype=np.uint8)
    m = masks_from_labels(lab)
    assert m.dtype == np.float32 and m.shape == (2, 2, 4)
    np.testing.assert_array_equal(m[0], lab == NUC)
    np.testing.assert_array_equal(m[1], lab == LD)
    assert masks_from_labels(lab.astype(float)).tolist() == m.tolist()
    for bad in (np.zeros(4, int), np.zeros((2, 2, 2), int), np.full((2, 2), 0.5),
                np.zeros((0, 3), int)):
        with pytest.raises(SegTrainError):
            masks_from_labels(bad)


def test_normalize_stack_is_gain_invariant():
    s, _ = _synthetic(1)
    a, b = normalize_stack(s[0]), normalize_stack(7.5 * s[0])
    assert a.dtype == np.float32 and a.shape == s[0].shape
    np.testing.assert_allclose(a, b, rtol=1e-5)
    assert np.percentile(a.mean(axis=0), 99) == pytest.approx(1.0, rel=1e-5)
    assert not normalize_stack(np.zeros((4, 3, 3))).any()
    z = normalize_stack(np.random.default_rng(0).standard_normal((8, 10, 10)))
    assert np.isfinite(z).all() and np.abs(z).max() > 0.5
    with pytest.raises(SegTrainError):
        normalize_stack(np.zeros((3, 8, 8)))  # too few bands
    with pytest.raises(SegTrainError):
        normalize_stack(np.full((4, 8, 8), np.nan))


# ---------------------------------------------------------------- inference

def test_predict_masks_any_size_and_mode_restored():
    model = _small_model()
    model.train()
    stack = np.random.default_rng(1).random((6, 40, 50)).astype(np.float32)
    pred = predict_masks(model, stack)
    assert pred.shape == (2, 40, 50) and pred.dtype == np.bool_
    assert model.training  # mode restored
    model.eval()
    assert predict_masks(model, stack, threshold=0.5).shape == (2, 40, 50)
    with pytest.raises(SegTrainError):
        predict_masks(model, stack, threshold=1.0)
    with pytest.raises(SegTrainError):
        predict_masks(model, stack[:3])


# ---------------------------------------------------------------- training

def test_training_reaches_dice_and_weights_round_trip(tmp_path):
    stacks, labels = _synthetic(2, seed=0)
    val_stacks, val_labels = _synthetic(2, seed=1)
    model = _small_model()
    seen = []
    cfg = SegConfig(lr=1e-2, epochs=12, batch_size=4, crop_size=32, crops_per_stack=16, seed=0)
    res = train_segmenter(model, stacks, labels, val_stacks, val_labels, config=cfg,
                          progress=seen.append)
    assert isinstance(res, SegTrainResult) and len(res.history) == 12 and seen == res.history
    assert {"epoch", "train_loss", "val_dice_nucleus", "val_dice_lipid_droplet",
            "val_mean_dice"} <= set(res.history[0])
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
    best = max(res.history, key=lambda r: r["val_mean_dice"])
    assert res.best_epoch == best["epoch"]
    # the model holds the best epoch's weights
    scores = evaluate_dice(model, val_stacks, val_labels)
    assert scores["nucleus"] >= 0.8 and scores["lipid_droplet"] >= 0.8, scores
    assert scores["nucleus"] == pytest.approx(best["val_dice_nucleus"])
    assert scores["lipid_droplet"] == pytest.approx(best["val_dice_lipid_droplet"])
    assert len(scores["per_stack"]) == 2
    path = save_weights(model, tmp_path / "seg.pt",
                        meta={"model": {"width": 8, "width3d": 4}})
    loaded, meta = load_weights(path, model_factory=lambda m: HybridUNet(**m["model"]))
    np.testing.assert_array_equal(predict_masks(loaded, val_stacks[0]),
                                  predict_masks(model, val_stacks[0]))


def test_training_is_deterministic():
    stacks, labels = _synthetic(2, seed=2)
    cfg = SegConfig(epochs=2, batch_size=2, crop_size=16, crops_per_stack=3, seed=5)
    h1 = train_segmenter(_small_model(), stacks, labels, stacks, labels, config=cfg).history
    h2 = train_segmenter(_small_model(), stacks, labels, stacks, labels, config=cfg).history
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(h1) == strip(h2)
    h3 = train_segmenter(_small_model(), stacks, labels, stacks, labels,
                         config=SegConfig(epochs=2, batch_size=2, crop_size=16,
                                          crops_per_stack=3, seed=6)).history
    assert strip(h3) != strip(h1)


def test_training_leaves_global_rng_alone():
    stacks, labels = _synthetic(1, seed=3)
    model = _small_model()
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    train_segmenter(model, stacks, labels, stacks, labels,
                    config=SegConfig(epochs=1, batch_size=2, crop_size=16, crops_per_stack=2))
    assert torch.equal(state, torch.random.get_rng_state())


# ---------------------------------------------------------------- bad input

def test_bad_inputs_raise():
    stacks, labels = _synthetic(2, size=32, seed=4)
    model = _small_model()
    cfg = SegConfig(epochs=1, batch_size=2, crop_size=16, crops_per_stack=1)
    assert issubclass(SegTrainError, ValueError)
    cases = [
        ([], [], stacks, labels),                                # empty training list
        (stacks, labels, [], []),                                # empty validation list
        (stacks, labels[:1], stacks, labels),                    # unequal lengths
        (stacks, [labels[0][:30], labels[1]], stacks, labels),   # label shape mismatch
        (stacks, labels, [stacks[0][:, :, :20]], labels[:1]),    # val shape mismatch
        ([stacks[0][:2]], labels[:1], stacks, labels),           # too few bands
        ([stacks[0][:, :8, :8]], [labels[0][:8, :8]], stacks, labels),  # smaller than crop
    ]
    for s, lab, vs, vl in cases:
        with pytest.raises(SegTrainError):
            train_segmenter(model, s, lab, vs, vl, config=cfg)
    for kw in ({"crop_size": 40}, {"crop_size": 0}, {"batch_size": 1}, {"lr": 0.0},
               {"epochs": 0}, {"dice_weight": -1.0}, {"bce_weight": 0.0, "dice_weight": 0.0},
               {"threshold": 0.0}, {"lr_schedule": "step"}):
        with pytest.raises(SegTrainError):
            SegConfig(**kw)
    with pytest.raises(SegTrainError):
        evaluate_dice(model, [], [])
    with pytest.raises(SegTrainError):
        evaluate_dice(model, stacks, labels[:1])


@given(st.floats(1e-5, 1e-1), st.integers(1, 200))
def test_cosine_schedule_decays_from_lr_to_its_floor(lr, epochs):
    """Cosine: epoch 1 at lr, never rising, never below lr / 100, at lr / 100 + (a last
    step's worth) at the end; constant: lr throughout."""
    from ml.seg.train import COSINE_LR_FLOOR

    cos = SegConfig(lr=lr, epochs=epochs, lr_schedule="cosine")
    rates = [cos.epoch_lr(e) for e in range(1, epochs + 1)]
    assert rates[0] == pytest.approx(lr, rel=1e-12)
    assert all(b <= a * (1 + 1e-12) for a, b in zip(rates, rates[1:]))
    assert min(rates) >= lr * COSINE_LR_FLOOR * (1 - 1e-12)
    if epochs >= 10:
        assert rates[-1] < 0.05 * lr
    const = SegConfig(lr=lr, epochs=epochs)
    assert {const.epoch_lr(e) for e in range(1, epochs + 1)} == {lr}


def test_training_sets_the_scheduled_rate_on_the_optimiser(monkeypatch):
    """The rate Adam steps with follows the schedule (read back from the optimiser)."""
    seen = []
    real_step = torch.optim.Adam.step

    def step(self, *a, **k):
        seen.append(self.param_groups[0]["lr"])
        return real_step(self, *a, **k)

    monkeypatch.setattr(torch.optim.Adam, "step", step)
    stacks, labels = _synthetic(2, seed=2)
    cfg = SegConfig(lr=1e-2, epochs=3, batch_size=2, crop_size=16, crops_per_stack=2,
                    lr_schedule="cosine")
    train_segmenter(_small_model(), stacks, labels, stacks, labels, config=cfg)
    per_epoch = sorted(set(seen), reverse=True)
    assert per_epoch == pytest.approx([cfg.epoch_lr(e) for e in (1, 2, 3)])
