"""LBNet-Dx end to end: field composite -> valid patches -> patch probabilities -> vote.

One :class:`LBNetDx` object is what every consumer uses (the live document-stream callback,
``srash classify`` after the fact, ``srash evaluate``), so live and offline results are the
same numbers. Tasks (:data:`TASKS`):

* ``normal-vs-noa``: classes ``("normal", "NOA")``; every NOA phenotype is class 1.
* ``spt-vs-spg``: classes ``("NOA-SPT", "NOA-SPG")``; other phenotypes are not labelled.

Background (tissue-free) pixels. Composites carry detector noise where there is no tissue
(about 0.1 rms in the R channel), so "value 0" is decided on a smoothed copy: a pixel is
background when the ``smooth_px``-box mean of every channel is ``<= background_level``
(defaults 9 px, 0.06). Validity (> 90 % background is dropped) and the vote weights
(:mod:`ml.dx.patches`) are computed on that smoothed copy; the network sees the unsmoothed
composite.

Patch decision: class 1 when ``p_1 >= patch_threshold`` (Youden's index on the training
results; the paper found 0.393). The sample vote (:func:`ml.dx.vote.dx_vote`) uses the
probability vectors and reports a class only above ``vote_threshold`` (0.8).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

from ml.common.errors import MLError
from ml.common.weights import WEIGHTS_DIR, ParamRange, WeightsMetaError, check_params, load_weights
from ml.dx.patches import (
    MAX_BACKGROUND_FRACTION,
    PATCH_SIZE,
    PATCH_STRIDE,
    PatchSet,
    extract_patches,
)
from ml.dx.preprocess import check_composite, normalize, to_chw
from ml.dx.vote import DEFAULT_THRESHOLD, Vote, dx_vote
from plans.contract import DIAGNOSES, DX_TASKS

__all__ = ["Task", "TASKS", "TaskError", "PredictError", "FieldDx", "SampleVote", "LBNetDx",
           "default_weights_path", "field_patches", "check_dx_meta", "dx_meta_ranges",
           "predict_proba"]


class TaskError(MLError):
    """Unknown task or a phenotype that has no class in it."""


class PredictError(MLError):
    """Patches or options :func:`predict_proba` cannot take (array shape, batch size)."""


@dataclasses.dataclass(frozen=True)
class Task:
    """A classification task: class names and the phenotypes that make each class."""

    name: str
    class_names: tuple[str, ...]
    phenotypes: tuple[tuple[str, ...], ...]

    def label(self, phenotype: str | None) -> int | None:
        """Class index of a phenotype, or None when the task does not use it."""
        for k, group in enumerate(self.phenotypes):
            if phenotype in group:
                return k
        return None

    @property
    def all_phenotypes(self) -> tuple[str, ...]:
        return tuple(p for g in self.phenotypes for p in g)


#: the LBNet-Dx tasks of :data:`plans.contract.DX_TASKS`; normal vs NOA names its classes by
#: diagnosis, the others by phenotype
TASKS: dict[str, Task] = {
    name: Task(name, DIAGNOSES if name == "normal-vs-noa" else tuple(g[0] for g in groups),
               groups)
    for name, groups in DX_TASKS.items()}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise TaskError(f"unknown task {name!r}: choose from {sorted(TASKS)}") from None


def default_weights_path(task: str) -> Path:
    """Shipped weights of ``task`` (``ml/weights/lbnet_<task>.pt``)."""
    get_task(task)
    return WEIGHTS_DIR / f"lbnet_{task}.pt"


def field_patches(composite: ArrayLike, *, background_level: float = 0.06,
                  smooth_px: int = 9, size: int = PATCH_SIZE, stride: int = PATCH_STRIDE,
                  max_background_fraction: float = MAX_BACKGROUND_FRACTION) -> PatchSet:
    """Valid patches of a [0, 1] composite with validity and weights decided on the
    ``smooth_px`` box-smoothed copy (module doc); the patches are unsmoothed."""
    a = to_chw(composite)
    check_composite(a)
    sm = ndimage.uniform_filter(a, size=(1, int(smooth_px), int(smooth_px)), mode="nearest") \
        if smooth_px > 1 else a
    ps = extract_patches(sm, size=size, stride=stride, background_level=background_level,
                         max_background_fraction=max_background_fraction, check=False)
    patches = np.empty_like(ps.patches)
    for i, (r, c) in enumerate(ps.origins):
        patches[i] = a[:, r:r + size, c:c + size]
    return dataclasses.replace(ps, patches=patches)


#: channel subsets a model may be trained on (:data:`ml.dx.channels.CHANNEL_SUBSETS`, here
#: without importing torch; a test checks they agree)
_CHANNEL_SUBSETS: tuple[str, ...] = ("R", "G", "B", "RG", "RB", "GB", "RGB")


def dx_meta_ranges() -> dict[str, Any]:
    """Allowed entries of a weights file's ``dx`` block (:class:`ml.common.weights.ParamRange`)."""
    return {"task": ParamRange(str, choices=tuple(TASKS), required=True),
            "class_names": ParamRange(str, length=(2, 16)),
            "patch_threshold": ParamRange(float, 0.0, 1.0),
            "vote_threshold": ParamRange(float, 0.0, 1.0, hi_open=True),
            "background_level": ParamRange(float, 0.0, 1.0),
            "smooth_px": ParamRange(int, 1, PATCH_SIZE),
            "channels": ParamRange(str, choices=_CHANNEL_SUBSETS)}


def check_dx_meta(meta: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Check the ``model`` block (:data:`ml.dx.lbnet.PARAM_RANGES`) and the ``dx`` block
    (:func:`dx_meta_ranges`) of LBNet-Dx weights ``path``: types, ranges, the task's class
    count, 3 input channels.

    Raises
    ------
    ml.common.weights.WeightsMetaError
        Naming the file, the key, its value and what is allowed.
    """
    from ml.dx.lbnet import PARAM_RANGES  # torch: imported when a file is checked

    if "dx" not in meta:
        raise WeightsMetaError(f"weights file {str(path)!r} has no LBNet-Dx task in its "
                               "metadata (no 'dx' block): is it a file written by `srash train`?")
    if "model" not in meta:
        raise WeightsMetaError(f"weights file {str(path)!r}: metadata has no 'model' block "
                               "(the LiteBlendNet arguments)")
    check_params(meta["model"], PARAM_RANGES, where="model", path=path)
    check_params(meta["dx"], dx_meta_ranges(), where="dx", path=path)
    t = TASKS[meta["dx"]["task"]]
    names = meta["dx"].get("class_names", list(t.class_names))
    k = meta["model"].get("num_classes", 2)
    head = f"weights file {str(path)!r}: metadata"
    if tuple(names) != t.class_names:
        raise WeightsMetaError(f"{head} dx.class_names = {names!r} is not allowed: expected "
                               f"{list(t.class_names)!r}, the classes of task {t.name!r}")
    if k != len(t.class_names):
        raise WeightsMetaError(f"{head} model.num_classes = {k!r} is not allowed: expected "
                               f"{len(t.class_names)}, the classes of task {t.name!r}")
    if meta["model"].get("in_channels", 3) != 3:
        raise WeightsMetaError(f"{head} model.in_channels = {meta['model']['in_channels']!r} "
                               "is not allowed: expected 3 (LBNet-Dx feeds 3-channel "
                               "composites)")


@dataclasses.dataclass
class FieldDx:
    """Classification of one field: per-patch probabilities ``(n, K)``, weights ``(n,)``,
    origins ``(n, 2)`` (row, col px), and the field's own vote."""

    probabilities: NDArray[np.float64]
    weights: NDArray[np.float64]
    origins: NDArray[np.int64]
    n_total: int
    vote: Vote | None

    def as_dict(self) -> dict[str, Any]:
        return {"n_patches": int(len(self.weights)), "n_windows": int(self.n_total),
                "probabilities": self.probabilities.tolist(), "weights": self.weights.tolist(),
                "origins": self.origins.tolist(),
                "vote": self.vote.as_dict() if self.vote is not None else None}


class SampleVote:
    """Running sample-level vote over the fields classified so far."""

    def __init__(self, class_names: Sequence[str], *, threshold: float = DEFAULT_THRESHOLD):
        self.class_names = tuple(class_names)
        self.threshold = float(threshold)
        self._p: list[NDArray[np.float64]] = []
        self._w: list[NDArray[np.float64]] = []

    def add(self, field: FieldDx) -> Vote | None:
        self._p.append(field.probabilities)
        self._w.append(field.weights)
        return self.vote()

    @property
    def n_patches(self) -> int:
        return int(sum(len(w) for w in self._w))

    def vote(self) -> Vote | None:
        """The vote so far, or None while no valid patch has been seen."""
        if self.n_patches == 0:
            return None
        return dx_vote(np.concatenate(self._p), np.concatenate(self._w),
                       threshold=self.threshold, class_names=self.class_names)


class LBNetDx:
    """A trained LiteBlendNet with its task, thresholds and patching rule.

    ``channels``: the composite channels the model was trained on (a subset such as
    ``"GB"`` for a channel ablation; :mod:`ml.dx.channels`): the others are zeroed, inside
    the forward pass, for every patch it classifies."""

    def __init__(self, model: Any, *, task: str | Task, patch_threshold: float = 0.5,
                 vote_threshold: float = DEFAULT_THRESHOLD, background_level: float = 0.06,
                 smooth_px: int = 9, batch_size: int = 50, channels: str = "RGB",
                 meta: Mapping[str, Any] | None = None) -> None:
        if channels != "RGB":
            from ml.dx.channels import ChannelMask, check_subset

            channels = check_subset(channels)
            if channels != "RGB" and not isinstance(model, ChannelMask):
                model = ChannelMask(model, channels)
        self.channels = channels
        self.model = model.eval()
        self.task = task if isinstance(task, Task) else get_task(task)
        self.patch_threshold = float(patch_threshold)
        self.vote_threshold = float(vote_threshold)
        self.background_level = float(background_level)
        self.smooth_px = int(smooth_px)
        self.batch_size = int(batch_size)
        self.meta = dict(meta or {})

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.task.class_names

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, *, task: str = "normal-vs-noa",
             **overrides: Any) -> "LBNetDx":
        """Load weights written by ``srash train`` (default: the shipped ones of ``task``).

        The metadata is checked (:func:`check_dx_meta`) and the tensor shapes compared with
        the described model before any model is built (:func:`ml.common.weights.load_weights`).

        Raises :class:`ml.common.weights.WeightsError` when the file is missing or malformed
        (:class:`~ml.common.weights.WeightsMetaError` /
        :class:`~ml.common.weights.WeightsShapeError` for metadata out of range / tensors that do
        not match it).
        """
        from ml.dx.lbnet import LiteBlendNet

        p = Path(path) if path is not None else default_weights_path(task)
        model, meta = load_weights(p, model_factory=lambda m: LiteBlendNet(**m["model"]),
                                   check_meta=check_dx_meta)
        dx = meta["dx"]
        kw = {"patch_threshold": dx.get("patch_threshold", 0.5),
              "vote_threshold": dx.get("vote_threshold", DEFAULT_THRESHOLD),
              "background_level": dx.get("background_level", 0.06),
              "smooth_px": dx.get("smooth_px", 9), "channels": dx.get("channels", "RGB"),
              **overrides}
        meta["path"] = str(p)
        return cls(model, task=dx["task"], meta=meta, **kw)

    def dx_meta(self) -> dict[str, Any]:
        """The ``dx`` block stored with the weights."""
        return {"task": self.task.name, "class_names": list(self.class_names),
                "patch_threshold": self.patch_threshold, "vote_threshold": self.vote_threshold,
                "background_level": self.background_level, "smooth_px": self.smooth_px,
                "channels": self.channels}

    def patches(self, composite: ArrayLike) -> PatchSet:
        return field_patches(composite, background_level=self.background_level,
                             smooth_px=self.smooth_px)

    def predict(self, patches: NDArray[np.float32]) -> NDArray[np.float64]:
        """Softmax probabilities ``(n, K)`` of [0, 1] patches ``(n, 3, S, S)``."""
        import torch

        if len(patches) == 0:
            return np.zeros((0, len(self.class_names)), np.float64)
        x = normalize(patches)
        with torch.inference_mode():
            return predict_proba(self.model, x, batch_size=self.batch_size)

    def classify_patches(self, ps: PatchSet) -> FieldDx:
        """Classify the valid patches of one field (from :meth:`patches`)."""
        p = self.predict(ps.patches)
        vote = (dx_vote(p, ps.weights, threshold=self.vote_threshold,
                        class_names=self.class_names) if len(ps) else None)
        return FieldDx(probabilities=p, weights=ps.weights.astype(np.float64),
                       origins=ps.origins, n_total=ps.n_total, vote=vote)

    def classify_field(self, composite: ArrayLike) -> FieldDx:
        """Classify one field's composite ``(3, H, W)`` in [0, 1]."""
        return self.classify_patches(self.patches(composite))


def predict_proba(model: Any, x: Any, *, batch_size: int = 64) -> NDArray[np.float64]:
    """Softmax class probabilities ``(N, K)`` of z-scored patches ``(N, C, H, W)``.

    Runs without gradients in eval mode on the model's device, in batches; the model's
    train/eval mode is restored afterwards.

    Raises
    ------
    PredictError
        ``x`` is not 4-D, or ``batch_size < 1``.
    """
    import torch

    xa = np.asarray(x, dtype=np.float32)
    if xa.ndim != 4:
        raise PredictError(f"x of shape {xa.shape}: expected (N, C, H, W)")
    if int(batch_size) < 1:
        raise PredictError(f"batch_size {batch_size!r}: expected an integer >= 1")
    try:
        dev = next(model.parameters()).device
    except StopIteration:
        dev = torch.device("cpu")
    was_training = model.training
    model.eval()
    try:
        out = []
        with torch.no_grad():
            for s in range(0, xa.shape[0], int(batch_size)):
                xb = torch.from_numpy(np.ascontiguousarray(xa[s:s + batch_size])).to(dev)
                out.append(torch.softmax(model(xb).float(), dim=1).cpu().double().numpy())
    finally:
        model.train(was_training)
    if not out:
        k = int(getattr(model, "num_classes", 0))
        return np.zeros((0, k), np.float64)
    return np.concatenate(out, axis=0)
