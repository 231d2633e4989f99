"""Training, inference and Dice evaluation of the nucleus / lipid-droplet segmenters.

Works with any model of :mod:`ml.seg.hybrid_unet` (:class:`~ml.seg.hybrid_unet.HybridUNet`,
:class:`~ml.seg.hybrid_unet.UNet3D`, :class:`~ml.seg.hybrid_unet.UNet2D`): input ``(N, 1, B, H, W)``
float stacks, output logits ``(N, 2, H, W)`` with channel 0 = nucleus and channel 1 = lipid
droplet, scored with independent sigmoids.

Data: hyperspectral stacks ``(B, H, W)`` (bands first, any intensity unit) and simulator
label maps ``(H, W)`` whose codes are :data:`plans.contract.TRUTH_LABELS` values
(nucleus = 3, lipid droplet = 4; every other code is background for both masks). Each stack
is scaled by :func:`normalize_stack` before training and inference, so stacks of different
brightness give comparable inputs.

Recipe (:class:`SegConfig`): Adam (lr 1e-3), random ``crop_size`` x ``crop_size`` crops
(``crops_per_stack`` per stack per epoch), spatial augmentation of each crop (random
``rot90`` by 0-3 quarter turns, random flips of the y and x axes; the spectral axis is never
touched), loss ``bce_weight * BCEWithLogits + dice_weight * soft Dice``
(:func:`ml.common.dice.soft_dice_loss`, eps 1), both weights 1 by default. After every epoch the
full validation stacks are segmented (:func:`predict_masks`) and scored
(:func:`evaluate_dice`); the weights of the epoch with the best mean of the two classes'
validation Dice are kept and loaded back into the model at the end.

Determinism: crop positions, crop order and augmentation draw from one ``torch.Generator``
seeded from ``config.seed``; the global torch RNG (dropout, if any) is seeded inside
``torch.random.fork_rng``, so the caller's global RNG state is untouched. The same seed,
data, initial weights and thread count give the same history on the CPU. Model
initialisation is the caller's: seed before constructing the model.

Weights are saved / loaded with :func:`ml.common.weights.save_weights` /
:func:`ml.common.weights.load_weights`.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import nn

from ml.common.dice import dice, soft_dice_loss
from ml.common.errors import MLError
from ml.seg.hybrid_unet import DOWNSAMPLING, MIN_BANDS
from plans.contract import TRUTH_LABELS

__all__ = [
    "SegTrainError", "SegConfig", "SegTrainResult", "CLASS_NAMES", "masks_from_labels",
    "normalize_stack", "train_segmenter", "predict_masks", "evaluate_dice",
]

#: Output channels of the segmenters, in order.
CLASS_NAMES: tuple[str, str] = ("nucleus", "lipid_droplet")
_CLASS_LABELS: tuple[int, int] = (TRUTH_LABELS["nucleus"], TRUTH_LABELS["lipid_droplet"])

#: Percentile of the band-mean image that :func:`normalize_stack` maps to 1.
NORM_PERCENTILE = 99.0


class SegTrainError(MLError):
    """Segmentation training / inference inputs or settings are unusable."""


# ---------------------------------------------------------------- data preparation

def masks_from_labels(labels: NDArray[np.integer]) -> NDArray[np.float32]:
    """Nucleus and lipid-droplet masks from a simulator label map.

    Parameters
    ----------
    labels : ndarray of int, shape (H, W)
        :data:`plans.contract.TRUTH_LABELS` codes (nucleus = 3, lipid droplet = 4).

    Returns
    -------
    ndarray of float32, shape (2, H, W)
        Channel 0: 1.0 where ``labels`` is the nucleus code; channel 1: 1.0 where it is the
        lipid-droplet code; 0.0 elsewhere.

    Raises
    ------
    SegTrainError
        ``labels`` is not a 2-d integer (or boolean-free integer-valued) array.
    """
    lab = np.asarray(labels)
    if lab.ndim != 2 or 0 in lab.shape:
        raise SegTrainError(f"labels of shape {lab.shape}: expected a non-empty (H, W) "
                            "label map")
    if lab.dtype.kind not in "iu":
        if lab.dtype.kind != "f" or not np.all(np.isfinite(lab)) or np.any(lab != np.round(lab)):
            raise SegTrainError(f"labels of dtype {lab.dtype}: expected integer label codes "
                                "(plans.contract.TRUTH_LABELS)")
    return np.stack([lab == code for code in _CLASS_LABELS]).astype(np.float32)


def _check_stack(stack: Any, name: str = "stack") -> NDArray[np.floating]:
    s = np.asarray(stack)
    if s.ndim != 3 or s.shape[0] < MIN_BANDS or s.shape[1] == 0 or s.shape[2] == 0:
        raise SegTrainError(f"{name} of shape {s.shape}: expected (B, H, W) with "
                            f"B >= {MIN_BANDS} bands and H, W >= 1")
    if s.dtype.kind not in "iuf":
        raise SegTrainError(f"{name} of dtype {s.dtype}: expected real numbers")
    if not np.all(np.isfinite(s)):
        raise SegTrainError(f"{name} contains NaN or infinite values")
    return s


def normalize_stack(stack: NDArray[np.floating]) -> NDArray[np.float32]:
    """Scale a stack so that bright tissue sits near 1, whatever the acquisition gain.

    The stack is divided by ``s``, the ``NORM_PERCENTILE`` (99th) percentile of its
    band-mean image ``stack.mean(axis=0)`` (robust to a few hot pixels, and a per-stack
    constant, so spectral shapes and spatial contrast are kept). Where that percentile is
    not positive (e.g. mean-free data), ``s`` is the 99th percentile of ``|stack|``; a stack
    of zeros is returned unchanged (as float32). No offset is removed.

    Parameters
    ----------
    stack : ndarray, shape (B, H, W)
        Hyperspectral stack (bands first), any intensity unit, finite.

    Returns
    -------
    ndarray of float32, shape (B, H, W)
        ``stack / s`` (dimensionless).

    Raises
    ------
    SegTrainError
        Not a finite ``(B, H, W)`` array with ``B >= MIN_BANDS``.
    """
    s = _check_stack(stack).astype(np.float64, copy=False)
    scale = float(np.percentile(s.mean(axis=0), NORM_PERCENTILE))
    if not scale > 0:
        scale = float(np.percentile(np.abs(s), NORM_PERCENTILE))
    if not scale > 0:
        scale = float(np.abs(s).max()) or 1.0
    return (s / scale).astype(np.float32)


# ---------------------------------------------------------------- configuration / result

#: Learning-rate schedules of :class:`SegConfig`.
LR_SCHEDULES = ("constant", "cosine")
#: The cosine schedule ends at this fraction of the initial learning rate.
COSINE_LR_FLOOR = 0.01

@dataclasses.dataclass(frozen=True)
class SegConfig:
    """Segmentation training settings.

    Attributes
    ----------
    lr : Adam learning rate (1e-3; other Adam settings are PyTorch's defaults).
    epochs : number of epochs (30); an epoch is ``crops_per_stack`` crops of every stack.
    batch_size : crops per optimiser step (4, >= 2 because of batch norm; a last batch of
        a single crop is dropped).
    crop_size : side of the square training crops in pixels (128), a positive multiple of
        16 and at most the smallest training stack's H and W.
    crops_per_stack : random crops drawn from each training stack per epoch (8).
    bce_weight, dice_weight : loss ``bce_weight * BCEWithLogits (mean over pixels and both
        channels) + dice_weight * soft Dice (ml.common.dice.soft_dice_loss, eps 1)``; (1.0, 1.0).
    augment : random rot90 (0-3 quarter turns) and y / x flips of each crop (True).
    threshold : sigmoid threshold of the validation masks (0.5).
    normalize : scale every stack with :func:`normalize_stack` (True); the same flag must be
        passed to :func:`predict_masks` / :func:`evaluate_dice` afterwards.
    seed : seeds crops, order, augmentation and the global torch RNG during training (0).
    lr_schedule : ``"constant"`` (the default: ``lr`` throughout) or ``"cosine"`` (epoch
        ``e`` of ``E`` at ``lr_min + (lr - lr_min) (1 + cos(pi (e - 1) / E)) / 2`` with
        ``lr_min = lr / 100``: large steps early, small ones late, so the best-validation
        epoch is less a matter of which noisy step it landed on).
    """

    lr: float = 1e-3
    epochs: int = 30
    batch_size: int = 4
    crop_size: int = 128
    crops_per_stack: int = 8
    bce_weight: float = 1.0
    dice_weight: float = 1.0
    augment: bool = True
    threshold: float = 0.5
    normalize: bool = True
    seed: int = 0
    lr_schedule: str = "constant"

    def __post_init__(self) -> None:
        def bad(name: str, want: str) -> SegTrainError:
            return SegTrainError(f"{name} {getattr(self, name)!r}: expected {want}")

        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise bad("lr", "a finite value > 0")
        for name in ("epochs", "crops_per_stack"):
            if int(getattr(self, name)) < 1:
                raise bad(name, "an integer >= 1")
        if int(self.batch_size) < 2:
            raise bad("batch_size", "an integer >= 2 (batch norm needs 2 samples)")
        if int(self.crop_size) < DOWNSAMPLING or int(self.crop_size) % DOWNSAMPLING:
            raise bad("crop_size", f"a positive multiple of {DOWNSAMPLING} (the models "
                      f"downsample by {DOWNSAMPLING})")
        for name in ("bce_weight", "dice_weight"):
            v = getattr(self, name)
            if not (v >= 0 and math.isfinite(v)):
                raise bad(name, "a finite value >= 0")
        if self.bce_weight + self.dice_weight <= 0:
            raise bad("dice_weight", "bce_weight + dice_weight > 0")
        if not 0.0 < self.threshold < 1.0:
            raise bad("threshold", "a value in (0, 1)")
        if self.lr_schedule not in LR_SCHEDULES:
            raise bad("lr_schedule", f"one of {', '.join(LR_SCHEDULES)}")

    def epoch_lr(self, epoch: int) -> float:
        """Learning rate of 1-based ``epoch`` under :attr:`lr_schedule`."""
        if self.lr_schedule == "constant":
            return float(self.lr)
        lo = self.lr * COSINE_LR_FLOOR
        frac = (epoch - 1) / max(int(self.epochs), 1)
        return float(lo + (self.lr - lo) * 0.5 * (1.0 + math.cos(math.pi * frac)))


@dataclasses.dataclass
class SegTrainResult:
    """Outcome of :func:`train_segmenter`.

    Attributes
    ----------
    history : list of dict, one per epoch: ``epoch`` (1-based), ``train_loss`` (mean loss
        of the epoch's batches), ``val_dice_nucleus``, ``val_dice_lipid_droplet`` (mean
        Dice over the validation stacks), ``val_mean_dice`` (their mean), ``seconds``.
    best_epoch : epoch whose weights were kept (highest ``val_mean_dice``, earliest on ties).
    best_val_dice : dict ``{"nucleus": ..., "lipid_droplet": ..., "mean": ...}`` of that epoch.
    seconds : wall time of the whole training.
    config : the :class:`SegConfig` used.
    """

    history: list[dict[str, float]]
    best_epoch: int
    best_val_dice: dict[str, float]
    seconds: float
    config: SegConfig


# ---------------------------------------------------------------- helpers

def _check_pairs(stacks: Sequence[Any], labels: Sequence[Any],
                 what: str) -> list[tuple[NDArray[np.floating], NDArray[np.float32]]]:
    if isinstance(stacks, np.ndarray) and stacks.ndim == 3:
        raise SegTrainError(f"{what} stacks: expected a list of (B, H, W) stacks, got one "
                            "array; wrap it in a list")
    stacks, labels = list(stacks), list(labels)
    if not stacks:
        raise SegTrainError(f"{what} stacks: expected at least one stack, got an empty list")
    if len(stacks) != len(labels):
        raise SegTrainError(f"{len(stacks)} {what} stacks but {len(labels)} label maps: "
                            "expected one label map per stack")
    out = []
    for i, (s, lab) in enumerate(zip(stacks, labels)):
        s = _check_stack(s, f"{what} stack {i}")
        m = masks_from_labels(lab)
        if m.shape[1:] != s.shape[1:]:
            raise SegTrainError(f"{what} stack {i} of shape {s.shape} and its label map of "
                                f"shape {m.shape[1:]}: expected labels of shape "
                                f"{s.shape[1:]} (H, W)")
        out.append((s, m))
    return out


def _prepare(stack: NDArray[np.floating], normalize: bool) -> NDArray[np.float32]:
    return normalize_stack(stack) if normalize else np.asarray(stack, dtype=np.float32)


def _model_device(model: nn.Module) -> torch.device:
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


def _augment(x: torch.Tensor, y: torch.Tensor,
             gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Same random rot90 / flips of the last two (y, x) axes of ``x`` and ``y``."""
    k, fy, fx = (int(v) for v in torch.randint(0, 4, (3,), generator=gen))
    if k:
        x, y = torch.rot90(x, k, (-2, -1)), torch.rot90(y, k, (-2, -1))
    if fy % 2:
        x, y = torch.flip(x, (-2,)), torch.flip(y, (-2,))
    if fx % 2:
        x, y = torch.flip(x, (-1,)), torch.flip(y, (-1,))
    return x, y


def _segment(model: nn.Module, x: NDArray[np.float32], threshold: float) -> NDArray[np.bool_]:
    """Masks of an already prepared ``(B, H, W)`` float32 stack (pads to multiples of 16)."""
    _, h, w = x.shape
    ph, pw = (-h) % DOWNSAMPLING, (-w) % DOWNSAMPLING
    t = torch.from_numpy(np.ascontiguousarray(x))[None].to(_model_device(model))
    if ph or pw:
        t = F.pad(t, (0, pw, 0, ph), mode="replicate")
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            logits = model(t[:, None])
    finally:
        model.train(was_training)
    if logits.ndim != 4 or logits.shape[0] != 1 or logits.shape[-2:] != t.shape[-2:]:
        raise SegTrainError(f"model output of shape {tuple(logits.shape)}: expected "
                            f"(1, C, {t.shape[-2]}, {t.shape[-1]}) logits")
    logit_thr = math.log(threshold / (1.0 - threshold))
    return (logits[0, :, :h, :w] > logit_thr).cpu().numpy()


def _dice_scores(model: nn.Module, pairs: Sequence[tuple[NDArray[np.float32],
                                                         NDArray[np.float32]]],
                 threshold: float) -> dict[str, Any]:
    per_stack = []
    for x, m in pairs:
        pred = _segment(model, x, threshold)
        if pred.shape[0] != len(CLASS_NAMES):
            raise SegTrainError(f"model gives {pred.shape[0]} mask channels: expected "
                                f"{len(CLASS_NAMES)} ({', '.join(CLASS_NAMES)})")
        per_stack.append({name: dice(pred[c], m[c].astype(bool))
                          for c, name in enumerate(CLASS_NAMES)})
    out: dict[str, Any] = {name: float(np.mean([d[name] for d in per_stack]))
                           for name in CLASS_NAMES}
    out["per_stack"] = per_stack
    return out


# ---------------------------------------------------------------- public API

def train_segmenter(model: nn.Module, stacks: Sequence[NDArray[np.floating]],
                    labels: Sequence[NDArray[np.integer]],
                    val_stacks: Sequence[NDArray[np.floating]],
                    val_labels: Sequence[NDArray[np.integer]], *,
                    config: SegConfig | None = None,
                    progress: Callable[[dict[str, float]], None] | None = None
                    ) -> SegTrainResult:
    """Train a segmenter in place on random crops; keep the best-validation-Dice weights.

    Parameters
    ----------
    model : nn.Module
        Maps ``(N, 1, B, H, W)`` to ``(N, 2, H, W)`` logits (nucleus, lipid droplet). Trained
        on the device of its parameters (the CPU here); on return it holds the weights of
        the best epoch and is in eval mode.
    stacks, labels : lists of ndarray, shapes (B, H, W) and (H, W)
        Training stacks and their simulator label maps (:func:`masks_from_labels`); every
        stack must be at least ``config.crop_size`` in H and W.
    val_stacks, val_labels : lists of ndarray, shapes (B, H, W) and (H, W)
        Validation stacks (any H, W) and label maps, segmented whole after every epoch.
    config : SegConfig, keyword-only
        Settings (default ``SegConfig()``).
    progress : callable, keyword-only
        Called with each epoch's history record.

    Returns
    -------
    SegTrainResult

    Raises
    ------
    SegTrainError
        Empty lists, unequal list lengths, a stack / label shape mismatch, a non-finite
        stack, or a training stack smaller than the crop.
    """
    cfg = config if config is not None else SegConfig()
    if not isinstance(cfg, SegConfig):
        raise SegTrainError(f"config of type {type(cfg).__name__}: expected a SegConfig")
    train = _check_pairs(stacks, labels, "training")
    val = _check_pairs(val_stacks, val_labels, "validation")
    crop = int(cfg.crop_size)
    for i, (s, _) in enumerate(train):
        if s.shape[1] < crop or s.shape[2] < crop:
            raise SegTrainError(f"training stack {i} of shape {s.shape}: smaller than "
                                f"crop_size {crop}; use a smaller crop_size (a multiple of "
                                f"{DOWNSAMPLING})")
    train = [(_prepare(s, cfg.normalize), m) for s, m in train]
    val = [(_prepare(s, cfg.normalize), m) for s, m in val]
    train_t = [(torch.from_numpy(s), torch.from_numpy(m)) for s, m in train]
    device = _model_device(model)

    t0 = time.perf_counter()
    gen = torch.Generator().manual_seed(int(cfg.seed))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    history: list[dict[str, float]] = []
    best_score, best_epoch = -math.inf, 0
    best_state: dict[str, torch.Tensor] | None = None
    best_dice: dict[str, float] = {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(cfg.seed))
        for epoch in range(1, int(cfg.epochs) + 1):
            te = time.perf_counter()
            for group in opt.param_groups:
                group["lr"] = cfg.epoch_lr(epoch)
            # crop list: (stack index, y0, x0), then shuffled
            items = []
            for i, (s, _) in enumerate(train_t):
                h, w = s.shape[1:]
                ys = torch.randint(0, h - crop + 1, (cfg.crops_per_stack,), generator=gen)
                xs = torch.randint(0, w - crop + 1, (cfg.crops_per_stack,), generator=gen)
                items += [(i, int(y0), int(x0)) for y0, x0 in zip(ys, xs)]
            order = torch.randperm(len(items), generator=gen).tolist()
            items = [items[j] for j in order]
            model.train()
            losses = []
            for b0 in range(0, len(items), cfg.batch_size):
                batch = items[b0:b0 + cfg.batch_size]
                if len(batch) < 2:
                    continue  # batch norm cannot train on a single crop
                xb, yb = [], []
                for i, y0, x0 in batch:
                    s, m = train_t[i]
                    xc = s[:, y0:y0 + crop, x0:x0 + crop]
                    mc = m[:, y0:y0 + crop, x0:x0 + crop]
                    if cfg.augment:
                        xc, mc = _augment(xc, mc, gen)
                    xb.append(xc)
                    yb.append(mc)
                x = torch.stack(xb)[:, None].to(device)
                y = torch.stack(yb).to(device)
                logits = model(x)
                loss = (cfg.bce_weight * F.binary_cross_entropy_with_logits(logits, y)
                        + cfg.dice_weight * soft_dice_loss(logits, y))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
            scores = _dice_scores(model, val, cfg.threshold)
            mean = (scores["nucleus"] + scores["lipid_droplet"]) / 2.0
            rec = {"epoch": epoch,
                   "train_loss": float(np.mean(losses)) if losses else math.nan,
                   "val_dice_nucleus": scores["nucleus"],
                   "val_dice_lipid_droplet": scores["lipid_droplet"],
                   "val_mean_dice": mean, "seconds": time.perf_counter() - te}
            history.append(rec)
            if mean > best_score:
                best_score, best_epoch = mean, epoch
                best_state = copy.deepcopy(model.state_dict())
                best_dice = {"nucleus": scores["nucleus"],
                             "lipid_droplet": scores["lipid_droplet"], "mean": mean}
            if progress is not None:
                progress(dict(rec))
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return SegTrainResult(history=history, best_epoch=best_epoch, best_val_dice=best_dice,
                          seconds=time.perf_counter() - t0, config=cfg)


def predict_masks(model: nn.Module, stack: NDArray[np.floating], *, threshold: float = 0.5,
                  normalize: bool = True) -> NDArray[np.bool_]:
    """Nucleus and lipid-droplet masks of one stack of any size.

    H and W are padded at the bottom / right (edge values repeated) up to multiples of 16,
    the model runs once in eval mode under ``torch.inference_mode`` (its train/eval mode is
    restored afterwards), and the masks are cropped back to ``(H, W)``.

    Parameters
    ----------
    model : nn.Module
        ``(N, 1, B, H, W) -> (N, 2, H, W)`` logits.
    stack : ndarray, shape (B, H, W)
        Hyperspectral stack, ``B >= MIN_BANDS``.
    threshold : float, keyword-only
        Sigmoid probability above which a pixel is in a mask, in (0, 1) (default 0.5).
    normalize : bool, keyword-only
        Apply :func:`normalize_stack` first (default True; as in training).

    Returns
    -------
    ndarray of bool, shape (2, H, W)
        Channel 0 nucleus, channel 1 lipid droplet.

    Raises
    ------
    SegTrainError
        Bad stack or threshold, or a model output of the wrong shape.
    """
    if not 0.0 < threshold < 1.0:
        raise SegTrainError(f"threshold {threshold!r}: expected a value in (0, 1)")
    s = _check_stack(stack)
    return _segment(model, _prepare(s, normalize), threshold)


def evaluate_dice(model: nn.Module, stacks: Sequence[NDArray[np.floating]],
                  labels: Sequence[NDArray[np.integer]], *, threshold: float = 0.5,
                  normalize: bool = True) -> dict[str, Any]:
    """Dice of the predicted masks against simulator labels, per class.

    Parameters
    ----------
    model : nn.Module
    stacks, labels : lists of ndarray, shapes (B, H, W) and (H, W)
    threshold, normalize : keyword-only, as in :func:`predict_masks`.

    Returns
    -------
    dict
        ``"nucleus"`` and ``"lipid_droplet"``: mean Dice over the stacks (a class absent
        from both prediction and truth of a stack scores 1 there, see :func:`ml.common.dice.dice`);
        ``"per_stack"``: list of ``{"nucleus": ..., "lipid_droplet": ...}``, one per stack.

    Raises
    ------
    SegTrainError
        Empty / mismatched lists or shapes (as :func:`train_segmenter`).
    """
    if not 0.0 < threshold < 1.0:
        raise SegTrainError(f"threshold {threshold!r}: expected a value in (0, 1)")
    pairs = _check_pairs(stacks, labels, "evaluation")
    return _dice_scores(model, [(_prepare(s, normalize), m) for s, m in pairs], threshold)
