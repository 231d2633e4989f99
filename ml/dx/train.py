"""Training loop of LBNet-Dx with the SRASH paper's recipe.

Paper: cross-entropy loss, AdamW (lr 8e-4, betas 0.6/0.999, eps 1e-8), batch 40, learning
rate x0.8 every 10 epochs, L1 regularisation, early stopping. :class:`TrainConfig` holds
these as defaults. Values the paper does not give are marked *(ours)* there: the L1
coefficient (1e-6, over the conv / linear weights, not biases or batch-norm parameters),
the early-stopping rule (patience 8 epochs on validation cross-entropy, best weights
restored), AdamW's weight decay (PyTorch's default 0.01) and the epoch cap.

Inputs are numpy float32 ``(N, C, H, W)`` patches, already z-scored
(:func:`ml.dx.preprocess.normalize`), and int64 labels. With augmentation on, each training
batch is mapped back to [0, 1] (:func:`ml.dx.preprocess.denormalize`, clipped), augmented
(:func:`ml.dx.augment.augment`, which works on [0, 1] composites so that rotated corners are
tissue-free 0) and z-scored again; this needs ``C == 3`` (for channel ablations keep the
three channels and zero the dropped ones, or turn augmentation off).

Determinism: batch order and augmentation draw from their own ``torch.Generator`` seeded
from ``config.seed``; dropout uses the global torch RNG, which :func:`train_model` seeds
inside ``torch.random.fork_rng`` (the caller's global RNG state is left untouched). The same
seed, data, initial weights and thread count therefore give the same history on the CPU.
Model initialisation is the caller's: seed before constructing the model.

Runs on CUDA when ``config.device == "auto"`` and a GPU is present, else on the CPU; a GPU
is never required.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import nn

from ml.common.errors import MLError
from ml.dx.augment import AugmentConfig, augment
from ml.dx.preprocess import denormalize, normalize

__all__ = [
    "TrainConfig", "TrainResult", "TrainError", "resolve_device", "l1_penalty", "compute_loss",
    "make_optimizer", "train_model",
]


class TrainError(MLError):
    """Training inputs or configuration are unusable (shapes, labels, settings)."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Training hyperparameters; defaults are the SRASH paper's where it gives them.

    Attributes
    ----------
    lr, betas, eps : AdamW learning rate (8e-4), betas ((0.6, 0.999)), eps (1e-8) -- paper.
    weight_decay : AdamW decoupled weight decay (0.01, PyTorch's default) -- ours.
    batch_size : 40 -- paper.
    lr_step_epochs, lr_gamma : StepLR, lr x0.8 every 10 epochs -- paper.
    l1 : L1 coefficient on conv / linear weights (1e-6) -- ours (paper: "L1 regularization").
    patience : epochs without a validation-loss improvement before stopping (8) -- ours.
    min_delta : improvement needed to reset patience (0).
    max_epochs : epoch cap (100).
    seed : seeds shuffling, augmentation and dropout.
    augment : apply :func:`ml.dx.augment.augment` to training batches (True).
    augment_config : augmentation settings (None: the paper's).
    device : "auto" (cuda if available, else cpu), "cpu", "cuda", "cuda:N".
    eval_batch_size : batch size for validation / prediction (64).
    """

    lr: float = 8e-4
    betas: tuple[float, float] = (0.6, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.01
    batch_size: int = 40
    lr_step_epochs: int = 10
    lr_gamma: float = 0.8
    l1: float = 1e-6
    patience: int = 8
    min_delta: float = 0.0
    max_epochs: int = 100
    seed: int = 0
    augment: bool = True
    augment_config: AugmentConfig | None = None
    device: str = "auto"
    eval_batch_size: int = 64

    def __post_init__(self) -> None:
        def bad(name: str, want: str) -> TrainError:
            return TrainError(f"{name} {getattr(self, name)!r}: expected {want}")

        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise bad("lr", "a finite value > 0")
        if (len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas)):
            raise bad("betas", "two values in [0, 1)")
        if not self.eps > 0:
            raise bad("eps", "a value > 0")
        if not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):
            raise bad("weight_decay", "a finite value >= 0")
        for name in ("batch_size", "lr_step_epochs", "eval_batch_size"):
            if int(getattr(self, name)) < 1:
                raise bad(name, "an integer >= 1")
        if self.batch_size < 2:
            raise bad("batch_size", "an integer >= 2 (batch-norm needs 2 samples)")
        if not 0.0 < self.lr_gamma <= 1.0:
            raise bad("lr_gamma", "a value in (0, 1]")
        if not (self.l1 >= 0 and math.isfinite(self.l1)):
            raise bad("l1", "a finite value >= 0")
        if int(self.patience) < 1:
            raise bad("patience", "an integer >= 1")
        if not self.min_delta >= 0:
            raise bad("min_delta", "a value >= 0")
        if int(self.max_epochs) < 1:
            raise bad("max_epochs", "an integer >= 1")
        if not (self.device == "auto" or self.device == "cpu" or self.device.startswith("cuda")):
            raise bad("device", '"auto", "cpu" or "cuda[:N]"')

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of the settings (for weights metadata and reports)."""
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d


@dataclasses.dataclass
class TrainResult:
    """Outcome of :func:`train_model`.

    Attributes
    ----------
    model : the trained model, in eval mode, holding the best-validation-loss weights.
    history : per-epoch lists ``epoch`` (1-based), ``lr`` (used in that epoch),
        ``train_loss`` (cross-entropy + L1, mean over batches, augmented, train mode),
        ``train_acc``, ``val_loss`` (cross-entropy, eval mode), ``val_acc``, ``seconds``.
    best_epoch : 1-based epoch whose weights were restored.
    best_val_loss : its validation loss.
    stopped_early : True if patience ran out before ``max_epochs``.
    device : where it ran.
    seconds : total wall time.
    """

    model: nn.Module
    history: dict[str, list[float]]
    best_epoch: int
    best_val_loss: float
    stopped_early: bool
    device: str
    seconds: float

    @property
    def epochs_run(self) -> int:
        return len(self.history["epoch"])


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` -> cuda if available else cpu; otherwise ``torch.device(device)``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TrainError(f"device {device!r} requested but CUDA is not available; use 'auto'")
    return dev


def l1_penalty(model: nn.Module) -> torch.Tensor:
    """Sum of ``|w|`` over the weight tensors of rank >= 2 (conv and linear kernels)."""
    terms = [p.abs().sum() for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    if not terms:
        return torch.zeros(())
    return torch.stack(terms).sum()


def compute_loss(model: nn.Module, logits: torch.Tensor, targets: torch.Tensor,
                 l1: float) -> torch.Tensor:
    """Training objective: ``cross_entropy(logits, targets) + l1 * l1_penalty(model)``."""
    loss = F.cross_entropy(logits, targets)
    if l1 > 0:
        loss = loss + l1 * l1_penalty(model).to(loss.device)
    return loss


def make_optimizer(model: nn.Module, config: TrainConfig
                   ) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.StepLR]:
    """AdamW and StepLR of the paper (``scheduler.step()`` once per epoch)."""
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, betas=tuple(config.betas),
                            eps=config.eps, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=int(config.lr_step_epochs),
                                            gamma=config.lr_gamma)
    return opt, sched


def _check_xy(x: Any, y: Any, name: str, model: nn.Module
              ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    xa = np.asarray(x)
    if xa.ndim != 4:
        raise TrainError(f"x_{name} of shape {xa.shape}: expected (N, C, H, W)")
    if xa.dtype != np.float32:
        raise TrainError(f"x_{name} has dtype {xa.dtype}: expected float32 (z-scored)")
    step = 256  # in blocks: a full-size boolean temporary would be a quarter of x again
    if not all(np.isfinite(xa[s:s + step]).all() for s in range(0, xa.shape[0], step)):
        raise TrainError(f"x_{name} contains NaN/inf")
    ya = np.asarray(y)
    if ya.shape != (xa.shape[0],):
        raise TrainError(f"y_{name} of shape {ya.shape}: expected ({xa.shape[0]},)")
    if ya.dtype.kind not in "iu":
        raise TrainError(f"y_{name} has dtype {ya.dtype}: expected integer class labels")
    k = getattr(model, "num_classes", None)
    if ya.size and (ya.min() < 0 or (k is not None and ya.max() >= k)):
        raise TrainError(f"y_{name} labels span [{ya.min()}, {ya.max()}]: expected 0.."
                         f"{(k - 1) if k is not None else 'K-1'}")
    cin = getattr(model, "in_channels", None)
    if cin is not None and xa.shape[1] != cin:
        raise TrainError(f"x_{name} has {xa.shape[1]} channels; the model takes {cin}")
    return xa, ya.astype(np.int64, copy=False)


def _augment_zscored(xb: torch.Tensor, gen: torch.Generator,
                     cfg: AugmentConfig | None) -> torch.Tensor:
    x01 = denormalize(xb).clamp_(0.0, 1.0)
    return normalize(augment(x01, generator=gen, config=cfg), check=False)


@torch.no_grad()
def _evaluate(model: nn.Module, x: NDArray[np.float32], y: NDArray[np.int64],
              dev: torch.device, batch_size: int) -> tuple[float, float]:
    model.eval()
    total, correct = 0.0, 0
    for s in range(0, x.shape[0], batch_size):
        xb = torch.from_numpy(np.ascontiguousarray(x[s:s + batch_size])).to(dev)
        yb = torch.from_numpy(y[s:s + batch_size]).to(dev)
        logits = model(xb)
        total += float(F.cross_entropy(logits, yb, reduction="sum"))
        correct += int((logits.argmax(1) == yb).sum())
    n = x.shape[0]
    return total / n, correct / n


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def train_model(model: nn.Module, x_train: Any, y_train: Any, x_val: Any, y_val: Any, *,
                config: TrainConfig | None = None,
                progress: Callable[[dict[str, float]], None] | None = None) -> TrainResult:
    """Train ``model`` with the paper's recipe; early stopping on the validation loss.

    Parameters
    ----------
    model : torch.nn.Module
        Classifier returning logits ``(N, K)`` (e.g. :class:`ml.dx.lbnet.LiteBlendNet`);
        trained in place and moved to the chosen device.
    x_train, y_train : numpy.ndarray
        ``(N, C, H, W)`` float32 z-scored patches and ``(N,)`` int labels, N >= 2.
    x_val, y_val : numpy.ndarray
        Validation patches / labels (split by patient: :mod:`ml.dx.cv`), N >= 1.
    config : TrainConfig, keyword-only
        Hyperparameters (default: the paper's).
    progress : callable, keyword-only
        Called after every epoch with that epoch's record (keys as in
        :attr:`TrainResult.history`, scalar values).

    Returns
    -------
    TrainResult
        The model in eval mode with the best weights, the history, the best epoch.

    Raises
    ------
    TrainError
        Malformed arrays or labels, channel mismatch, augmentation with C != 3.
    """
    cfg = config or TrainConfig()
    xt, yt = _check_xy(x_train, y_train, "train", model)
    xv, yv = _check_xy(x_val, y_val, "val", model)
    if xt.shape[0] < 2:
        raise TrainError(f"{xt.shape[0]} training sample(s): expected at least 2")
    if xv.shape[0] < 1:
        raise TrainError("empty validation set: early stopping needs at least 1 sample")
    if xv.shape[1] != xt.shape[1]:
        raise TrainError(f"x_val channels {xv.shape[1]} differ from x_train's {xt.shape[1]}")
    if cfg.augment and xt.shape[1] != 3:
        raise TrainError(f"augmentation needs 3-channel composites, got {xt.shape[1]}: zero "
                         "the dropped channels instead, or set augment=False")
    dev = resolve_device(cfg.device)
    fork_devices = [dev.index or 0] if dev.type == "cuda" else []
    t0 = time.perf_counter()
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(cfg.seed)
        model.to(dev)
        opt, sched = make_optimizer(model, cfg)
        g_shuffle = torch.Generator().manual_seed(cfg.seed)
        g_aug = torch.Generator().manual_seed(cfg.seed + 0x5EED)
        keys = ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "seconds")
        hist: dict[str, list[float]] = {k: [] for k in keys}
        best_loss, best_epoch, best_state = math.inf, 0, _snapshot(model)
        bad_epochs, stopped = 0, False
        n, bs = xt.shape[0], int(cfg.batch_size)
        for epoch in range(1, int(cfg.max_epochs) + 1):
            te = time.perf_counter()
            lr = float(opt.param_groups[0]["lr"])
            model.train()
            perm = torch.randperm(n, generator=g_shuffle).numpy()
            tot_loss, tot_correct, seen, nb = 0.0, 0, 0, 0
            for s in range(0, n, bs):
                idx = np.sort(perm[s:s + bs])
                if idx.size < 2:  # batch-norm cannot train on a single sample
                    continue
                xb = torch.from_numpy(xt[idx])
                if cfg.augment:
                    xb = _augment_zscored(xb, g_aug, cfg.augment_config)
                xb = xb.to(dev)
                yb = torch.from_numpy(yt[idx]).to(dev)
                logits = model(xb)
                loss = compute_loss(model, logits, yb, cfg.l1)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                tot_loss += float(loss.detach())
                nb += 1
                tot_correct += int((logits.detach().argmax(1) == yb).sum())
                seen += idx.size
            sched.step()
            val_loss, val_acc = _evaluate(model, xv, yv, dev, int(cfg.eval_batch_size))
            rec = {"epoch": float(epoch), "lr": lr, "train_loss": tot_loss / max(nb, 1),
                   "train_acc": tot_correct / max(seen, 1), "val_loss": val_loss,
                   "val_acc": val_acc, "seconds": time.perf_counter() - te}
            for k in keys:
                hist[k].append(rec[k])
            if progress is not None:
                progress(dict(rec))
            if val_loss < best_loss - cfg.min_delta:
                best_loss, best_epoch, best_state = val_loss, epoch, _snapshot(model)
                bad_epochs = 0
            else:
                bad_epochs += 1
                if bad_epochs >= int(cfg.patience):
                    stopped = epoch < int(cfg.max_epochs)
                    break
        model.load_state_dict(best_state)
    model.eval()
    hist["epoch"] = [int(e) for e in hist["epoch"]]
    return TrainResult(model=model, history=hist, best_epoch=best_epoch,
                       best_val_loss=float(best_loss), stopped_early=stopped,
                       device=str(dev), seconds=time.perf_counter() - t0)
