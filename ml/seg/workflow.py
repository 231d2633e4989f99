"""Segmentation workflows: train a segmenter (``srash train-seg``), score segmenters and the
spectral phasor against truth (``srash evaluate-seg``), segment one stack (``srash segment``).

Plain functions over data that is already loaded: processed stacks
(:class:`ml.io.stacks.Stack`), their truth label maps (codes of
:data:`plans.contract.TRUTH_LABELS`), segmenters loaded from their weights files
(:class:`Segmenter`). The command line opens the catalog, loads the stacks
(:func:`ml.io.stacks.load_stacks`, :func:`ml.io.stacks.run_stack`), calls one function here
and prints what it returns; these functions write the weights, report JSON and PNGs into the
paths they are given, and an analysis run into the ``publish`` sink when one is given.

Progress: the optional ``progress(stage, record)`` callback is called after every training
epoch (``"epoch"``, the epoch's record: :attr:`ml.seg.train.SegTrainResult.history`) and
after every evaluated stack (``"stack"``, ``{"index", "scan_uid"}``).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

from ml.common.errors import MLError
from ml.io.stacks import Stack
from ml.seg.phasor import LIPID_DROPLET, NUCLEUS
from plans.contract import ANALYSIS_KEY, LINK_SCAN, SEGMENTATION_ANALYSIS

if TYPE_CHECKING:  # torch is imported only where a network runs
    from torch import nn

__all__ = ["Progress", "Publish", "SegWorkflowError", "Segmenter", "SegTrainSettings",
           "SegTrainOutcome", "PhasorSettings", "split_stacks", "common_axis", "dice_stats",
           "train_seg", "evaluate_seg", "segment_stack"]

#: ``progress(stage, record)`` (module doc).
Progress = Callable[[str, Mapping[str, Any]], None]
#: ``publish(name, doc)``: a sink of bluesky documents (e.g. an analysis-run writer).
Publish = Callable[[str, dict], Any]

#: Raman-axis difference (cm^-1) above which two stacks are on different axes.
AXIS_TOLERANCE_CM1 = 0.5


class SegWorkflowError(MLError):
    """Stacks a workflow cannot use together (too few, different Raman axes) or settings
    it cannot use."""


@dataclasses.dataclass(frozen=True)
class Segmenter:
    """A segmenter loaded from its weights file (:func:`ml.seg.models.load_segmenter`):
    the ``path``, the ``model`` (eval mode) and the weights' ``meta`` (``segmenter`` name,
    ``raman_cm1`` training axis, ``specimen_seeds``, ...)."""

    path: Path
    model: nn.Module
    meta: Mapping[str, Any]


def split_stacks(n: int, val_fraction: float, *, seed: int) -> tuple[list[int], list[int]]:
    """(train, validation) indices of ``n`` stacks: ``round(val_fraction * n)`` (at least 1)
    chosen with ``seed`` for validation, at least 1 left for training.

    Raises
    ------
    SegWorkflowError
        ``n < 2`` or ``val_fraction`` outside (0, 1).
    """
    if n < 2:
        raise SegWorkflowError(f"{n} stack(s) with truth: training needs >= 2 (one to train, "
                               "one to choose the best epoch); acquire more with `srash "
                               "cohort --specimen cells`")
    if not 0.0 < val_fraction < 1.0:
        raise SegWorkflowError(f"val_fraction {val_fraction!r}: expected a value in (0, 1)")
    n_val = min(max(1, round(val_fraction * n)), n - 1)
    perm = np.random.default_rng(seed).permutation(n)
    return sorted(perm[n_val:].tolist()), sorted(perm[:n_val].tolist())


def common_axis(stacks: Sequence[Stack]) -> NDArray[np.float64]:
    """The Raman axis (cm^-1) all ``stacks`` share (within :data:`AXIS_TOLERANCE_CM1`);
    :class:`SegWorkflowError` naming two stacks that differ."""
    if not stacks:
        raise SegWorkflowError("no stacks: expected at least one")
    axis = stacks[0].raman_cm1
    for st in stacks[1:]:
        if st.raman_cm1.shape != axis.shape or \
                np.abs(st.raman_cm1 - axis).max() > AXIS_TOLERANCE_CM1:
            raise SegWorkflowError(
                f"stacks {stacks[0].start['uid'][:8]} ({axis.size} bands, {axis[0]:.0f}-"
                f"{axis[-1]:.0f} cm^-1) and {st.start['uid'][:8]} ({st.raman_cm1.size} "
                f"bands, {st.raman_cm1[0]:.0f}-{st.raman_cm1[-1]:.0f} cm^-1) have different "
                "Raman axes: train on stacks of one axis (select them with --cohort)")
    return axis


# ============================================================================ training
@dataclasses.dataclass(frozen=True)
class SegTrainSettings:
    """Settings of :func:`train_seg`.

    Attributes
    ----------
    model : segmenter name (:data:`ml.seg.models.SEGMENTERS`).
    config : training settings (:class:`ml.seg.train.SegConfig`; its ``seed`` also seeds the
        split and the model initialisation). None: the defaults.
    val_fraction : fraction of the stacks held back to choose the best epoch, in (0, 1).
    cohort, split, command : provenance recorded with the weights.
    """

    model: str = "hybrid-unet"
    config: Any = None
    val_fraction: float = 0.2
    cohort: str | None = None
    split: str | None = None
    command: str | None = None

    def __post_init__(self) -> None:
        from ml.seg.models import SEGMENTERS

        if self.model not in SEGMENTERS:
            raise SegWorkflowError(f"model {self.model!r}: expected one of "
                                   f"{', '.join(SEGMENTERS)}")
        if not 0.0 < self.val_fraction < 1.0:
            raise SegWorkflowError(f"val_fraction {self.val_fraction!r}: expected a value in "
                                   "(0, 1)")

    def seg_config(self) -> Any:
        from ml.seg.train import SegConfig

        return self.config if self.config is not None else SegConfig()


@dataclasses.dataclass
class SegTrainOutcome:
    """Result of :func:`train_seg`.

    Attributes
    ----------
    summary : what the command reports (weights, parameters, stack counts, bands, best
        epoch, validation Dice, seconds, ``report`` path, ``images``).
    meta : the metadata saved with the weights (and in ``report.json``).
    result : :class:`ml.seg.train.SegTrainResult`.
    train_index, val_index : indices into the stacks given.
    """

    summary: dict[str, Any]
    meta: dict[str, Any]
    result: Any
    train_index: list[int]
    val_index: list[int]


def train_seg(stacks: Sequence[Stack], labels: Sequence[NDArray[np.integer]], *,
              settings: SegTrainSettings, weights_path: str | Path, report_dir: str | Path,
              report_extra: Mapping[str, Any] | None = None,
              progress: Progress | None = None,
              clock_start: float | None = None) -> SegTrainOutcome:
    """Train a segmenter on stacks and their truth; write the weights and the report.

    Parameters
    ----------
    stacks : sequence of Stack
        Processed stacks on one Raman axis (:func:`common_axis`), at least 2.
    labels : sequence of ndarray (H, W)
        Their truth label maps.
    settings : SegTrainSettings, keyword-only
    weights_path : path, keyword-only
        Weights file (:func:`ml.seg.models.save_segmenter`).
    report_dir : path, keyword-only
        Folder of ``report.json`` (the weights metadata plus ``report_extra``) and
        ``learning_curves.png``.
    report_extra : mapping, keyword-only
        More entries of ``report.json`` (e.g. read faults).
    progress : callable, keyword-only
        ``progress("epoch", record)`` after every epoch.
    clock_start : float, keyword-only
        ``time.perf_counter()`` at the command's start (``elapsed_s``); default this call.

    Returns
    -------
    SegTrainOutcome

    Raises
    ------
    SegWorkflowError
        Fewer than 2 stacks, different Raman axes, stacks and labels of different counts.
    """
    import torch

    from ml.common.fileio import write_json
    from ml.seg.models import build_segmenter, save_segmenter
    from ml.seg.train import train_segmenter

    t0 = time.perf_counter() if clock_start is None else clock_start
    if len(stacks) != len(labels):
        raise SegWorkflowError(f"{len(stacks)} stacks and {len(labels)} label maps: expected "
                               "one label map per stack")
    cfg = settings.seg_config()
    axis = common_axis(stacks)
    tr, va = split_stacks(len(stacks), settings.val_fraction, seed=cfg.seed)
    torch.manual_seed(cfg.seed)
    model = build_segmenter(settings.model, axis.size)
    show = None if progress is None else (lambda rec: progress("epoch", rec))
    res = train_segmenter(model, [stacks[i].data for i in tr], [labels[i] for i in tr],
                          [stacks[i].data for i in va], [labels[i] for i in va],
                          config=cfg, progress=show)
    report_dir = Path(report_dir)
    n_params = sum(p.numel() for p in model.parameters())
    # the two-band baseline's thresholds, fitted on the same training stacks (issue 15):
    # evaluate-seg scores it next to the network, so the difficulty is measured every time
    from ml.seg.twoband import fit_two_band

    rule = fit_two_band([stacks[i].data for i in tr], [stacks[i].raman_cm1 for i in tr],
                        [labels[i] for i in tr])
    meta = {
        "cohort": settings.cohort, "split": settings.split,
        "train_runs": [stacks[i].start["uid"] for i in tr],
        "val_runs": [stacks[i].start["uid"] for i in va],
        "specimen_seeds": sorted({int(st.start["specimen_seed"]) for st in stacks
                                  if st.start.get("specimen_seed") is not None}),
        "config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__},
        "best_epoch": res.best_epoch, "val_dice": res.best_val_dice,
        "train_seconds": round(res.seconds, 1), "parameters": n_params,
        "command": settings.command, "history": res.history,
        "two_band": dataclasses.asdict(rule)}
    save_segmenter(model, weights_path, name=settings.model, raman_cm1=axis, meta=meta)
    curves = _curves_png(report_dir / "learning_curves.png", res.history, settings.model)
    summary = {"model": settings.model, "weights": str(weights_path), "parameters": n_params,
               "stacks": {"train": len(tr), "validation": len(va)},
               "bands": int(axis.size), "best_epoch": res.best_epoch,
               "val_dice": res.best_val_dice, "train_seconds": round(res.seconds, 1),
               "elapsed_s": round(time.perf_counter() - t0, 1),
               "report": str(write_json(report_dir / "report.json",
                                         {**meta, **dict(report_extra or {})})),
               "images": {"learning_curves": str(curves)}}
    return SegTrainOutcome(summary=summary, meta=meta, result=res, train_index=tr,
                           val_index=va)


def _curves_png(path: Path, history: list[dict[str, float]], name: str) -> Path:
    from ml.common.plotting import new_figure, save_png

    ep = [h["epoch"] for h in history]
    fig = new_figure((10.0, 4.0))
    ax = fig.subplots(1, 2)
    ax[0].plot(ep, [h["train_loss"] for h in history])
    ax[0].set(xlabel="epoch", ylabel="training loss (BCE + soft Dice)")
    ax[1].plot(ep, [h["val_dice_nucleus"] for h in history], label="nucleus")
    ax[1].plot(ep, [h["val_dice_lipid_droplet"] for h in history], label="lipid droplets")
    ax[1].set(xlabel="epoch", ylabel="validation Dice", ylim=(0, 1))
    ax[1].legend()
    fig.suptitle(f"{name} training")
    return save_png(fig, path)


# ============================================================================ evaluation
def dice_stats(per_stack: Sequence[Mapping[str, float]]) -> dict[str, Any]:
    """Mean, SD (ddof 1; 0 for one stack) and minimum of the per-stack Dice of
    ``nucleus`` and ``lipid_droplet``."""
    if not per_stack:
        raise SegWorkflowError("no per-stack Dice: expected at least one stack")
    out: dict[str, Any] = {}
    for k in ("nucleus", "lipid_droplet"):
        v = np.array([d[k] for d in per_stack], float)
        out[k] = {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if v.size > 1 else 0.0,
                  "min": float(v.min())}
    return out


def evaluate_seg(stacks: Sequence[Stack], labels: Sequence[NDArray[np.integer]],
                 segmenters: Sequence[Segmenter], *, report_dir: str | Path,
                 cohort: str | None = None, report_extra: Mapping[str, Any] | None = None,
                 progress: Progress | None = None,
                 clock_start: float | None = None) -> dict[str, Any]:
    """Dice of the spectral phasor (default settings), the two-band rule and every segmenter,
    against truth and, separately, against the phasor's labels (the study's protocol).

    The two-band rule (:mod:`ml.seg.twoband`) uses the thresholds fitted on the training
    stacks of the first segmenter whose weights carry them (``meta["two_band"]``); without
    one it is left out (``report["two_band"]`` says why). ``report["dice"]``: against the
    simulator truth; ``report["dice_vs_phasor"]``: against the phasor's label maps (every
    method but the phasor itself). The two are never mixed.

    Parameters
    ----------
    stacks, labels : sequences of Stack and truth label maps (H, W)
        The held-out stacks, at least one.
    segmenters : sequence of Segmenter
        Named by their ``meta["segmenter"]``; a name already taken is replaced by the path.
    report_dir : path, keyword-only
        Folder of ``report.json``, ``dice_bars.png`` and ``example_masks.png`` (the first
        stack: band mean, truth and every method's masks).
    cohort : str, keyword-only
        Recorded in the report.
    report_extra : mapping, keyword-only
        More report entries (e.g. read faults), last.
    progress : callable, keyword-only
        ``progress("stack", {"index", "scan_uid"})`` after each stack.
    clock_start : float, keyword-only
        ``time.perf_counter()`` at the command's start (``elapsed_s``); default this call.

    Returns
    -------
    dict
        The report as written, plus ``"report"`` (its path).
    """
    from ml.common.dice import dice
    from ml.common.fileio import write_json
    from ml.common.plotting import bars_png
    from ml.seg.models import segmenter_input
    from ml.seg.phasor import segment_phasor
    from ml.seg.train import predict_masks

    t0 = time.perf_counter() if clock_start is None else clock_start
    if not stacks or len(stacks) != len(labels):
        raise SegWorkflowError(f"{len(stacks)} stacks and {len(labels)} label maps: expected "
                               "at least one stack and one label map per stack")
    models: dict[str, Segmenter] = {}
    for sg in segmenters:
        name = sg.meta["segmenter"] if sg.meta["segmenter"] not in models else str(sg.path)
        models[name] = sg
    from ml.seg.twoband import TwoBandRule

    rule: TwoBandRule | None = None
    rule_src = "left out: no weights carry two-band thresholds (trained before issue 15)"
    for name, sg in models.items():
        if isinstance(sg.meta.get("two_band"), Mapping):
            rule = TwoBandRule(**{k: float(v) for k, v in sg.meta["two_band"].items()})
            rule_src = f"thresholds fitted on the training stacks of {name}"
            break
    base = ["phasor"] + (["two_band"] if rule is not None else [])
    per: dict[str, list[dict[str, float]]] = {**{k: [] for k in base},
                                              **{k: [] for k in models}}
    per_ph: dict[str, list[dict[str, float]]] = {k: [] for k in per if k != "phasor"}
    example: dict[str, np.ndarray] = {}
    timing: dict[str, float] = {k: 0.0 for k in per}
    for i, (st, lab) in enumerate(zip(stacks, labels)):
        truth = [lab == NUCLEUS, lab == LIPID_DROPLET]
        ts = time.perf_counter()
        seg = segment_phasor(st.data, st.raman_cm1)
        timing["phasor"] += time.perf_counter() - ts
        masks = {"phasor": np.stack([seg.labels == NUCLEUS, seg.labels == LIPID_DROPLET])}
        if rule is not None:
            ts = time.perf_counter()
            tb = rule.segment(st.data, st.raman_cm1)
            timing["two_band"] += time.perf_counter() - ts
            masks["two_band"] = np.stack([tb == NUCLEUS, tb == LIPID_DROPLET])
        for name, sg in models.items():
            ts = time.perf_counter()
            masks[name] = predict_masks(sg.model, segmenter_input(st.data, st.raman_cm1,
                                                                  sg.meta["raman_cm1"]))
            timing[name] += time.perf_counter() - ts
        for name, m in masks.items():
            per[name].append({"nucleus": dice(m[0], truth[0]),
                              "lipid_droplet": dice(m[1], truth[1])})
            if name != "phasor":
                per_ph[name].append({"nucleus": dice(m[0], masks["phasor"][0]),
                                     "lipid_droplet": dice(m[1], masks["phasor"][1])})
        if i == 0:
            example = {"mean": st.data.mean(axis=0), "truth": np.stack(truth), **masks}
        if progress is not None:
            progress("stack", {"index": i, "scan_uid": st.start["uid"]})
    summary = {name: dice_stats(v) for name, v in per.items()}
    out = Path(report_dir)
    bars = bars_png(out / "dice_bars.png",
                    {name: {k: s[k]["mean"] for k in ("nucleus", "lipid_droplet")}
                     for name, s in summary.items()},
                    metric_labels={"nucleus": "nucleus", "lipid_droplet": "lipid droplets"},
                    title=f"Dice vs truth, {len(stacks)} held-out stacks",
                    ylabel="mean Dice", ylim=(0.5, 1.0))
    grid = _masks_png(out / "example_masks.png", example, stacks[0].start["uid"][:8])
    report = {"cohort": cohort, "stacks": len(stacks),
              "runs": [st.start["uid"] for st in stacks],
              "specimen_seeds": [st.start.get("specimen_seed") for st in stacks],
              "weights": {k: str(sg.path) for k, sg in models.items()},
              "dice": summary, "per_stack": per,
              "dice_vs_phasor": {name: dice_stats(v) for name, v in per_ph.items()},
              "per_stack_vs_phasor": per_ph, "two_band": rule_src,
              "seconds_per_stack": {k: v / len(stacks) for k, v in timing.items()},
              "images": {"dice_bars": str(bars), "example_masks": str(grid)},
              "elapsed_s": round(time.perf_counter() - t0, 1), **dict(report_extra or {})}
    report["report"] = str(write_json(out / "report.json", report))
    return report


def _masks_png(path: Path, example: dict[str, np.ndarray], short: str) -> Path:
    """Band-mean image, then truth and every method's masks (red nucleus, yellow LDs)."""
    from ml.common.plotting import new_figure, save_png

    mean = example["mean"]
    lo, hi = np.percentile(mean, [1, 99.5])
    grey = np.clip((mean - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
    names = [k for k in example if k != "mean"]
    fig = new_figure((3.0 * (len(names) + 1), 3.3))
    axes = fig.subplots(1, len(names) + 1)
    axes[0].imshow(grey, cmap="gray")
    axes[0].set_title(f"stack {short}, band mean", fontsize=9)
    for ax, name in zip(axes[1:], names):
        rgb = np.repeat(grey[..., None], 3, axis=2) * 0.6
        nuc, ld = example[name]
        rgb[nuc] = 0.4 * rgb[nuc] + 0.6 * np.array([0.9, 0.15, 0.15])
        rgb[ld] = 0.3 * rgb[ld] + 0.7 * np.array([1.0, 0.9, 0.1])
        ax.imshow(rgb, interpolation="nearest")
        ax.set_title(name, fontsize=9)
    for ax in axes:
        ax.set_axis_off()
    return save_png(fig, path)


# ============================================================================ one stack
@dataclasses.dataclass(frozen=True)
class PhasorSettings:
    """Settings of the spectral phasor (:func:`ml.seg.phasor.segment_phasor`): harmonic,
    3x3 median-filter passes on G and S, Gaussian-mixture clusters and their seed."""

    harmonic: int = 1
    median_passes: int = 2
    n_components: int = 3
    seed: int = 0

    def as_params(self) -> dict[str, Any]:
        return {"harmonic": self.harmonic, "median_passes": self.median_passes,
                "n_components": self.n_components, "seed": self.seed}


def segment_stack(stack: Stack, *, method: str = "phasor",
                  phasor: PhasorSettings | None = None, segmenter: Segmenter | None = None,
                  truth: NDArray[np.integer] | None = None, report_dir: str | Path,
                  publish: Publish | None = None,
                  clock_start: float | None = None) -> dict[str, Any]:
    """Segment one stack into background / nucleus / lipid droplet / cytoplasm.

    Parameters
    ----------
    stack : Stack
        The processed stack.
    method : {"phasor", "hybrid-unet"}, keyword-only
        Spectral phasor (``phasor`` settings) or a trained network (``segmenter``, its
        nucleus and droplet masks turned into label codes:
        :func:`ml.seg.models.labels_from_masks`).
    phasor : PhasorSettings, keyword-only
    segmenter : Segmenter, keyword-only
        Required for ``"hybrid-unet"``.
    truth : ndarray (H, W), keyword-only
        The stack's truth label map: Dice of nucleus and droplets (ignored when its shape
        differs from the stack's).
    report_dir : path, keyword-only
        Folder of ``labels_[<method>_]<uid8>.png`` and, for the phasor,
        ``phasor_<uid8>.png``.
    publish : callable, keyword-only
        Document sink of the analysis run (one ``labels`` event); None: not stored.
    clock_start : float, keyword-only
        ``time.perf_counter()`` at the command's start (``elapsed_s``); default this call.

    Returns
    -------
    dict
        ``scan_uid``, ``analysis_uid``, ``method``, ``sample_id``, ``bands``, ``shape``,
        ``pixels`` per class (summing to H x W), ``threshold`` (phasor), ``dice`` (None
        without truth), ``images``, ``elapsed_s``.

    Raises
    ------
    SegWorkflowError
        Unknown method, or ``"hybrid-unet"`` without a segmenter.
    """
    from ml.common.dice import dice
    from ml.seg.phasor import CLASS_NAMES, labels_png, phasor_png

    t0 = time.perf_counter() if clock_start is None else clock_start
    if method not in ("phasor", "hybrid-unet"):
        raise SegWorkflowError(f"method {method!r}: expected 'phasor' or 'hybrid-unet'")
    seg = None
    labels: NDArray[Any]
    if method == "phasor":
        from ml.seg.phasor import segment_phasor

        ph = phasor if phasor is not None else PhasorSettings()
        params: dict[str, Any] = {"method": method, **ph.as_params()}
        seg = segment_phasor(stack.data, stack.raman_cm1, harmonic=ph.harmonic,
                             median_passes=ph.median_passes, n_components=ph.n_components,
                             seed=ph.seed)
        labels, mean = seg.labels, seg.mean
    else:
        if segmenter is None:
            raise SegWorkflowError(f"method {method!r} needs a segmenter (weights)")
        from ml.seg.models import labels_from_masks, segmenter_input
        from ml.seg.train import predict_masks

        masks = predict_masks(segmenter.model, segmenter_input(
            stack.data, stack.raman_cm1, segmenter.meta["raman_cm1"]))
        mean = stack.data.mean(axis=0)
        params = {"method": method, "weights": str(segmenter.path),
                  "segmenter": segmenter.meta["segmenter"],
                  "trained_on": segmenter.meta.get("cohort")}
        labels = labels_from_masks(masks, mean)
    dsc: dict[str, Any] = {"nucleus": None, "lipid_droplet": None}
    if truth is not None and truth.shape == labels.shape:
        dsc = {"nucleus": dice(labels == NUCLEUS, truth == NUCLEUS),
               "lipid_droplet": dice(labels == LIPID_DROPLET, truth == LIPID_DROPLET)}
    start = stack.start
    uid = None if publish is None else _store(publish, start, labels, params, dsc)
    out = Path(report_dir)
    short = start["uid"][:8]
    tag = "" if method == "phasor" else f"{method}_"
    images = {"labels": str(labels_png(out / f"labels_{tag}{short}.png", mean, labels,
                                       title=f"{method} segmentation"))}
    if seg is not None:
        images["phasor"] = str(phasor_png(out / f"phasor_{short}.png", seg.g, seg.s,
                                          labels=seg.labels, centres=seg.centres,
                                          classes=seg.classes, references=seg.references))
    counts = {name: int((labels == code).sum()) for code, name in CLASS_NAMES.items()}
    return {"scan_uid": start["uid"], "analysis_uid": uid, "method": method,
            "sample_id": start.get("sample_id"), "bands": int(stack.data.shape[0]),
            "shape": list(labels.shape), "pixels": counts,
            "threshold": seg.threshold if seg is not None else None,
            "dice": dsc if dsc["nucleus"] is not None else None, "images": images,
            "elapsed_s": round(time.perf_counter() - t0, 2)}


def _store(publish: Publish, start: Mapping[str, Any], labels: NDArray,
           params: Mapping[str, Any], dice: Mapping[str, Any]) -> str:
    """The analysis run of one segmentation: one ``labels`` event linked to the stack."""
    from ml.io.publish import publish_event_run
    from ml.seg.phasor import CLASS_NAMES

    md = {k: start.get(k) for k in ("sample_id", "patient_id", "specimen", "cohort", "split")}
    nan = float("nan")
    data = {"labels": labels.astype(np.uint8),
            "dice_nucleus": nan if dice["nucleus"] is None else dice["nucleus"],
            "dice_droplets": nan if dice["lipid_droplet"] is None else dice["lipid_droplet"]}
    number = {"source": "srash segment", "dtype": "number", "shape": []}
    return publish_event_run(
        publish,
        {ANALYSIS_KEY: SEGMENTATION_ANALYSIS, "plan_name": "srash-segment",
         LINK_SCAN: start["uid"], **{k: v for k, v in md.items() if v is not None},
         "method": params["method"], "params": dict(params),
         "classes": {name: code for code, name in CLASS_NAMES.items()}},
        "labels", data,
        {"labels": {"source": "srash segment", "dtype": "array", "dtype_numpy": "|u1",
                    "shape": list(labels.shape)},
         "dice_nucleus": number, "dice_droplets": number})
