"""``srash train-seg`` and ``srash evaluate-seg``: the nucleus / lipid-droplet segmenters.

Data: the ``hyperspectral_stack`` runs of a cohort (``srash cohort --specimen cells``) with
their simulator-truth label maps, processed by :func:`ml.io.stacks.run_stack`. Every
stack of one training set must share one Raman axis; the weights remember it
(:mod:`ml.seg.models`).

``train-seg`` holds back ``--val-fraction`` of the stacks (seeded) to choose the best epoch
(:func:`ml.seg.train.train_segmenter`: BCE + soft Dice on random crops), saves the weights
with their provenance (cohort, run uids, specimen seeds, settings, history) and writes a
report (JSON, learning curves PNG).

``evaluate-seg`` scores every given weights file and the automatic spectral phasor
(:func:`ml.seg.phasor.segment_phasor`, default settings) against truth on a held-out cohort:
Dice per stack and class, mean +- SD, a Dice-bars PNG, and one example stack's label maps
side by side. It refuses stacks whose specimen seed any of the weights saw in training.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ml.io.frames import add_strict_option

from .options import CLIError, add_catalog_options, command_line

__all__ = ["add_parsers", "run_train_seg", "run_evaluate_seg", "split_stacks"]


def add_parsers(sub: argparse._SubParsersAction) -> None:
    from ml.seg.models import SEGMENTERS

    p = sub.add_parser(
        "train-seg", help="train a nucleus / lipid-droplet segmenter on catalog stacks",
        description="Train the hybrid UNet (or an ablation / baseline) on the hyperspectral "
                    "stacks of a cohort and their simulator truth; write the weights and a "
                    "report (JSON, learning curves).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="models:\n" + "\n".join(f"  {k:22s} {v}" for k, v in SEGMENTERS.items()))
    p.add_argument("--model", choices=list(SEGMENTERS), default="hybrid-unet",
                   help="which network (default hybrid-unet; see below)")
    p.add_argument("--cohort", required=True, help="start.cohort of the training stacks")
    p.add_argument("--split", default="train", help="start.split (default train; '' = any)")
    p.add_argument("--out", type=Path, default=None,
                   help="weights file (default ml/weights/seg_<model>.pt)")
    p.add_argument("--report-dir", type=Path, default=None,
                   help="report folder (default reports/train-seg-<model>)")
    p.add_argument("--epochs", type=int, default=30, help="epochs (default 30)")
    p.add_argument("--crop", type=int, default=128,
                   help="training crop side in pixels, a multiple of 16 (default 128)")
    p.add_argument("--crops-per-stack", type=int, default=4,
                   help="random crops per stack per epoch (default 4)")
    p.add_argument("--batch-size", type=int, default=4, help="crops per step (default 4)")
    p.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate (3e-3)")
    p.add_argument("--val-fraction", type=float, default=0.2,
                   help="fraction of stacks held back to pick the best epoch (0.2)")
    p.add_argument("--seed", type=int, default=0, help="seed of init, split, crops (0)")
    add_strict_option(p)
    add_catalog_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_train_seg)

    e = sub.add_parser(
        "evaluate-seg", help="Dice of segmenters and phasor vs truth on held-out stacks",
        description="Segment every stack of a held-out cohort with each weights file and "
                    "with the automatic spectral phasor; report Dice against the simulator "
                    "truth (JSON, Dice bars PNG, example label maps PNG).")
    e.add_argument("--cohort", required=True, help="start.cohort of the held-out stacks")
    e.add_argument("--split", default="test", help="start.split (default test; '' = any)")
    e.add_argument("--weights", type=Path, nargs="+", default=None,
                   help="weights files from `srash train-seg` (default: the shipped "
                        "ml/weights/seg_hybrid-unet.pt)")
    e.add_argument("--out", type=Path, default=Path("reports/evaluate-seg"),
                   help="report folder (default reports/evaluate-seg)")
    e.add_argument("--allow-seed-overlap", action="store_true",
                   help="evaluate even on stacks whose specimen seed was used in training")
    add_strict_option(e)
    add_catalog_options(e)
    e.add_argument("--quiet", action="store_true", help="no progress bar")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.set_defaults(func=run_evaluate_seg)


def split_stacks(n: int, val_fraction: float, *, seed: int) -> tuple[list[int], list[int]]:
    """(train, validation) indices of ``n`` stacks: ``round(val_fraction * n)`` (at least 1)
    chosen with ``seed`` for validation, at least 1 left for training."""
    if n < 2:
        raise CLIError(f"{n} stack(s) with truth: training needs >= 2 (one to train, one "
                         "to choose the best epoch); acquire more with `srash cohort "
                         "--specimen cells`")
    if not 0.0 < val_fraction < 1.0:
        raise CLIError(f"--val-fraction {val_fraction!r}: expected a value in (0, 1)")
    n_val = min(max(1, round(val_fraction * n)), n - 1)
    perm = np.random.default_rng(seed).permutation(n)
    return sorted(perm[n_val:].tolist()), sorted(perm[:n_val].tolist())


def _common_axis(stacks) -> np.ndarray:
    axis = stacks[0].raman_cm1
    for st in stacks[1:]:
        if st.raman_cm1.shape != axis.shape or np.abs(st.raman_cm1 - axis).max() > 0.5:
            raise CLIError(
                f"stacks {stacks[0].start['uid'][:8]} ({axis.size} bands, {axis[0]:.0f}-"
                f"{axis[-1]:.0f} cm^-1) and {st.start['uid'][:8]} ({st.raman_cm1.size} "
                f"bands, {st.raman_cm1[0]:.0f}-{st.raman_cm1[-1]:.0f} cm^-1) have different "
                "Raman axes: train on stacks of one axis (select them with --cohort)")
    return axis


def _load(args: argparse.Namespace):
    """(stacks, truth labels, :class:`~ml.io.frames.ReadFaults`): stacks of
    killed scans or with an unreadable band are skipped with a warning (``--strict``:
    an error)."""
    from ml.io.frames import ReadFaults
    from ml.io.stacks import load_stacks

    from ..catalog import close_catalog, open_catalog, search_runs

    faults = ReadFaults(args.strict)
    client = open_catalog(args.data_dir, uri=args.catalog, api_key=args.api_key)
    try:
        crit = {"cohort": args.cohort, "split": args.split or None}
        found = search_runs(client, plan="hyperspectral_stack", **crit).values()
        stacks, labels = load_stacks(found, client, criteria=crit, faults=faults)
    finally:
        close_catalog(client)
    return stacks, labels, faults


def _progress(quiet: bool, total: int, desc: str):
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, unit="epoch", disable=quiet, file=sys.stderr)

    def show(rec: dict[str, float]) -> None:
        bar.update(1)
        bar.set_postfix(loss=f"{rec['train_loss']:.3f}", nuc=f"{rec['val_dice_nucleus']:.3f}",
                        ld=f"{rec['val_dice_lipid_droplet']:.3f}")
    return bar, show


def run_train_seg(args: argparse.Namespace) -> int:
    import torch

    from ml.common.fileio import write_json
    from ml.seg.models import DEFAULT_WEIGHTS, build_segmenter, save_segmenter
    from ml.seg.train import SegConfig, train_segmenter

    t0 = time.perf_counter()
    cfg = SegConfig(lr=args.lr, epochs=args.epochs, batch_size=args.batch_size,
                    crop_size=args.crop, crops_per_stack=args.crops_per_stack, seed=args.seed)
    stacks, labels, faults = _load(args)
    axis = _common_axis(stacks)
    tr, va = split_stacks(len(stacks), args.val_fraction, seed=args.seed)
    torch.manual_seed(args.seed)
    model = build_segmenter(args.model, axis.size)
    bar, show = _progress(args.quiet, cfg.epochs, f"train-seg {args.model}")
    try:
        res = train_segmenter(model, [stacks[i].data for i in tr], [labels[i] for i in tr],
                              [stacks[i].data for i in va], [labels[i] for i in va],
                              config=cfg, progress=show)
    finally:
        bar.close()
    out = args.out or DEFAULT_WEIGHTS.with_name(f"seg_{args.model}.pt")
    report_dir = args.report_dir or Path("reports") / f"train-seg-{args.model}"
    n_params = sum(p.numel() for p in model.parameters())
    meta = {
        "cohort": args.cohort, "split": args.split,
        "train_runs": [stacks[i].start["uid"] for i in tr],
        "val_runs": [stacks[i].start["uid"] for i in va],
        "specimen_seeds": sorted({int(st.start["specimen_seed"]) for st in stacks
                                  if st.start.get("specimen_seed") is not None}),
        "config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__},
        "best_epoch": res.best_epoch, "val_dice": res.best_val_dice,
        "train_seconds": round(res.seconds, 1), "parameters": n_params,
        "command": command_line(), "history": res.history}
    save_segmenter(model, out, name=args.model, raman_cm1=axis, meta=meta)
    curves = _curves_png(report_dir / "learning_curves.png", res.history, args.model)
    summary = {"model": args.model, "weights": str(out), "parameters": n_params,
               "stacks": {"train": len(tr), "validation": len(va)},
               "bands": int(axis.size), "best_epoch": res.best_epoch,
               "val_dice": res.best_val_dice, "train_seconds": round(res.seconds, 1),
               "elapsed_s": round(time.perf_counter() - t0, 1),
               "report": str(write_json(report_dir / "report.json",
                                         {**meta, **faults.summary()})),
               "images": {"learning_curves": str(curves)}}
    if args.json:
        print(json.dumps(summary))
    else:
        d = res.best_val_dice
        print(f"{args.model}: {n_params / 1e6:.2f} M parameters, {len(tr)} training / "
              f"{len(va)} validation stacks, {axis.size} bands")
        print(f"best epoch {res.best_epoch}/{cfg.epochs}: validation Dice nucleus "
              f"{d['nucleus']:.3f}, lipid droplets {d['lipid_droplet']:.3f} "
              f"({res.seconds:.0f} s training)")
        print(f"weights: {out}\nreport: {summary['report']}\nlearning curves: {curves}")
    return 0


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


def _stats(per_stack: list[dict[str, float]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in ("nucleus", "lipid_droplet"):
        v = np.array([d[k] for d in per_stack], float)
        out[k] = {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if v.size > 1 else 0.0,
                  "min": float(v.min())}
    return out


def run_evaluate_seg(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from ml.common.dice import dice
    from ml.common.fileio import write_json
    from ml.common.plotting import bars_png
    from ml.seg.models import DEFAULT_WEIGHTS, load_segmenter, segmenter_input
    from ml.seg.phasor import LIPID_DROPLET, NUCLEUS, segment_phasor
    from ml.seg.train import predict_masks
    from simulators.specimens.base import Label

    t0 = time.perf_counter()
    paths = args.weights or [DEFAULT_WEIGHTS]
    models = {}
    for p in paths:
        model, meta = load_segmenter(p)
        name = meta["segmenter"] if meta["segmenter"] not in models else str(p)
        models[name] = (model, meta)
    stacks, labels, faults = _load(args)
    used = {s for _, m in models.values() for s in m.get("specimen_seeds", [])}
    overlap = sorted({st.start.get("specimen_seed") for st in stacks} & used)
    if overlap and not args.allow_seed_overlap:
        raise CLIError(f"{len(overlap)} selected stack(s) use specimen seeds seen in "
                         f"training (e.g. {overlap[:5]}): evaluate on another cohort or pass "
                         "--allow-seed-overlap")
    per: dict[str, list[dict[str, float]]] = {"phasor": [], **{k: [] for k in models}}
    example: dict[str, np.ndarray] = {}
    timing: dict[str, float] = {k: 0.0 for k in per}
    for i, (st, lab) in enumerate(tqdm(list(zip(stacks, labels)), desc="evaluate-seg",
                                       unit="stack", disable=args.quiet, file=sys.stderr)):
        truth = [lab == int(Label.NUCLEUS), lab == int(Label.LIPID_DROPLET)]
        ts = time.perf_counter()
        seg = segment_phasor(st.data, st.raman_cm1)
        timing["phasor"] += time.perf_counter() - ts
        masks = {"phasor": np.stack([seg.labels == NUCLEUS, seg.labels == LIPID_DROPLET])}
        for name, (model, meta) in models.items():
            ts = time.perf_counter()
            masks[name] = predict_masks(model, segmenter_input(st.data, st.raman_cm1,
                                                               meta["raman_cm1"]))
            timing[name] += time.perf_counter() - ts
        for name, m in masks.items():
            per[name].append({"nucleus": dice(m[0], truth[0]),
                              "lipid_droplet": dice(m[1], truth[1])})
        if i == 0:
            example = {"mean": st.data.mean(axis=0), "truth": np.stack(truth), **masks}
    summary = {name: _stats(v) for name, v in per.items()}
    out = args.out
    bars = bars_png(out / "dice_bars.png",
                    {name: {k: s[k]["mean"] for k in ("nucleus", "lipid_droplet")}
                     for name, s in summary.items()},
                    metric_labels={"nucleus": "nucleus", "lipid_droplet": "lipid droplets"},
                    title=f"Dice vs truth, {len(stacks)} held-out stacks",
                    ylabel="mean Dice", ylim=(0.5, 1.0))
    grid = _masks_png(out / "example_masks.png", example, stacks[0].start["uid"][:8])
    report = {"cohort": args.cohort, "stacks": len(stacks),
              "runs": [st.start["uid"] for st in stacks],
              "specimen_seeds": [st.start.get("specimen_seed") for st in stacks],
              "weights": {k: str(p) for k, p in zip(models, paths)},
              "dice": summary, "per_stack": per,
              "seconds_per_stack": {k: v / len(stacks) for k, v in timing.items()},
              "images": {"dice_bars": str(bars), "example_masks": str(grid)},
              "elapsed_s": round(time.perf_counter() - t0, 1), **faults.summary()}
    report["report"] = str(write_json(out / "report.json", report))
    if args.json:
        print(json.dumps({k: v for k, v in report.items() if k != "per_stack"}))
        return 0
    print(f"{len(stacks)} held-out stacks of {args.cohort}: Dice vs simulator truth, "
          "mean +- SD (min)")
    for name, s in summary.items():
        n, d = s["nucleus"], s["lipid_droplet"]
        print(f"  {name:22s} nucleus {n['mean']:.3f} +- {n['sd']:.3f} ({n['min']:.3f})   "
              f"lipid droplets {d['mean']:.3f} +- {d['sd']:.3f} ({d['min']:.3f})   "
              f"{report['seconds_per_stack'][name]:.2f} s/stack")
    print(f"report: {report['report']}")
    for k, v in report["images"].items():
        print(f"{k}: {v}")
    return 0


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
