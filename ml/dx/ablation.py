"""Channel ablations of the SRASH paper: LBNet trained on subsets of the three channels.

Channels of a composite: R = SRS 2930 cm^-1 (protein), G = SRS 2850 cm^-1 (lipid),
B = SHG. :data:`CHANNEL_SUBSETS` are the seven non-empty subsets, named by their letters in
R, G, B order ("R", "G", "B", "RG", "RB", "GB", "RGB").

A dropped channel is *zeroed* in the [0, 1] composite (:func:`mask_channels`): 0 is the
composites' "no signal" value, and the network keeps its three inputs, so the same
LiteBlendNet and the same augmentation serve every subset. After
:func:`ml.dx.preprocess.normalize` a dropped channel is the constant ``-MEAN[c] / STD[c]``
(-2.12 for R, -2.04 for G, -1.80 for B), identically for training, validation and test
patches.

Augmentation would otherwise leak the dropped channels back in: the paper's contrast and
saturation jitter mix the channels (``(x - gray(x)) * s + gray(x)`` gives a zeroed channel
``(1 - s) gray(x)``, an image of the kept ones). :func:`run_ablation` therefore wraps each
model in :class:`ChannelMask`, which re-imposes that constant on the dropped channels of
every z-scored batch *inside* the forward pass, after augmentation; on masked test patches
it changes nothing.

Every subset's model starts from the same initial weights (``torch.manual_seed(seed)``
before ``model_factory()``, inside ``torch.random.fork_rng``); shuffling, augmentation
and dropout follow ``config.seed`` (:func:`ml.dx.train.train_model`).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from torch import nn

from ml.common.metrics import patch_metrics, roc_curve
from ml.dx.channels import (
    CHANNEL_SUBSETS,
    CHANNELS,
    AblationError,
    ChannelMask,
    check_subset,
    mask_channels,
)
from ml.dx.lbnet import LiteBlendNet
from ml.dx.predict import predict_proba
from ml.dx.preprocess import MEAN, STD, check_composite
from ml.dx.train import TrainConfig, train_model

__all__ = ["CHANNELS", "CHANNEL_SUBSETS", "AblationError", "check_subset", "mask_channels",
           "ChannelMask", "run_ablation"]

def _check_split(x: Any, y: Any, name: str) -> tuple[NDArray, NDArray[np.int64]]:
    xa = np.asarray(x)
    if xa.ndim != 4 or xa.shape[1] != 3:
        raise AblationError(f"x_{name} of shape {xa.shape}: expected (N, 3, H, W) [0, 1] "
                            "composites")
    ya = np.asarray(y)
    if ya.shape != (xa.shape[0],):
        raise AblationError(f"y_{name} of shape {ya.shape}: expected ({xa.shape[0]},), one "
                            "label per patch")
    if ya.dtype.kind not in "iub" or not np.isin(ya, (0, 1)).all():
        raise AblationError(f"y_{name}: expected integer labels 0 (negative) / 1 (positive)")
    return xa, ya.astype(np.int64)


def _prepare(x: NDArray, keep: str) -> NDArray[np.float32]:
    """``normalize(mask_channels(x, keep))`` (bit-identical), z-scored in place on the one
    masked copy: peak memory one copy of ``x``, not two."""
    a = mask_channels(x, keep)
    check_composite(a)
    a -= np.asarray(MEAN, np.float32).reshape(3, 1, 1)
    a /= np.asarray(STD, np.float32).reshape(3, 1, 1)
    return a


def run_ablation(x_train: ArrayLike, y_train: ArrayLike, x_val: ArrayLike, y_val: ArrayLike,
                 x_test: ArrayLike, y_test: ArrayLike, *, config: TrainConfig,
                 subsets: Sequence[str] = CHANNEL_SUBSETS,
                 model_factory: Callable[[], nn.Module] | None = None, seed: int = 0,
                 threshold: float = 0.5,
                 progress: Callable[[str, dict[str, float]], None] | None = None,
                 ) -> dict[str, dict[str, Any]]:
    """Train one model per channel subset and score it on the test patches.

    Parameters
    ----------
    x_train, x_val, x_test : array_like
        ``(N, 3, S, S)`` [0, 1] composites (not z-scored); each subset's models see
        ``ml.dx.preprocess.normalize(mask_channels(x, subset))`` (computed on one copy).
    y_train, y_val, y_test : array_like
        ``(N,)`` labels in {0, 1}; ``y_train`` must hold both classes.
    config : TrainConfig, keyword-only
        Training settings for every subset (epochs, augmentation... are the caller's).
    subsets : sequence of str, keyword-only
        Channel subsets to run, in this order (default all seven).
    model_factory : callable, keyword-only
        ``() -> nn.Module`` with 3 input channels and 2 classes (default
        ``LiteBlendNet(2)``); wrapped in :class:`ChannelMask`.
    seed : int, keyword-only
        Torch seed before each ``model_factory()`` call (same initial weights per subset).
    threshold : float, keyword-only
        Class 1 when its probability is ``>= threshold`` (patch metrics).
    progress : callable, keyword-only
        ``progress(subset, epoch_record)`` after every epoch.

    Returns
    -------
    dict
        ``{subset: {"metrics": ml.common.metrics.patch_metrics(...).as_dict(), "proba": (n_test,)
        probability of class 1, "roc": (fpr, tpr, auc) or None (one test class),
        "best_epoch", "epochs_run", "seconds", "history"}}`` in the order of ``subsets``.

    Raises
    ------
    AblationError
        Bad or repeated subsets, shapes, labels, threshold.
    ml.dx.preprocess.PreprocessError
        Patches not in [0, 1].
    ml.dx.train.TrainError
        Raised by :func:`ml.dx.train.train_model`.
    """
    names = [check_subset(s) for s in subsets]
    if not names or len(set(names)) != len(names):
        raise AblationError(f"subsets {list(subsets)!r}: expected distinct, non-empty subsets")
    if not isinstance(threshold, (int, float, np.number)) or not np.isfinite(threshold):
        raise AblationError(f"threshold {threshold!r}: expected a finite number")
    xt, yt = _check_split(x_train, y_train, "train")
    xv, yv = _check_split(x_val, y_val, "val")
    xs, ys = _check_split(x_test, y_test, "test")
    if yt.min() == yt.max():
        raise AblationError(f"y_train holds only class {int(yt[0])}: training needs both "
                            "0 and 1")
    factory = model_factory or (lambda: LiteBlendNet(2))
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            model = ChannelMask(factory(), name)
        cb = None if progress is None else (lambda rec, _n=name: progress(_n, rec))
        res = train_model(model, _prepare(xt, name), yt, _prepare(xv, name), yv,
                          config=config, progress=cb)
        proba = predict_proba(res.model, _prepare(xs, name),
                              batch_size=int(config.eval_batch_size))[:, 1]
        metrics = patch_metrics(ys, proba, threshold).as_dict()
        roc = None
        if ys.min() != ys.max():
            fpr, tpr, _ = roc_curve(ys, proba)
            roc = (fpr, tpr, metrics["roc_auc"])
        out[name] = {"metrics": metrics, "proba": proba, "roc": roc,
                     "best_epoch": res.best_epoch, "epochs_run": res.epochs_run,
                     "seconds": res.seconds, "history": res.history}
    return out
