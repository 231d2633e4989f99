"""How hard are the exfoliated-cell stacks? The two-band rule and the phasor, scored two
ways (issue 15).

    .venv/bin/python -m studies.cells_eval [--train-seeds 1001-1008] [--test-seeds 70001-70008]
        [--out DIR] [--json] [--reuse-fit JSON] [--weights [LABEL=]PATH ...]

Stacks are simulated directly (no catalog), as ``srash cohort --specimen cells`` makes
them: the specimen ``make_specimen("cells", seed)``, the stage at its
``default_center_um()``, 256 px over 60 um, 3 averages, 2800-3050 cm^-1 in 5 cm^-1 steps
(51 frames), a registration random walk of
:data:`simulators.parts.scanner.HYPERSPECTRAL_WALK_PX` per band (as the factory gives
``srash cohort`` stacks of the cells specimen) on top of the 0.2 px jitter, processed
with the instrument's calibration (:func:`ml.io.processed.process_field`); noise
seed ``seed + 500000``.

Seeds fixed up front (docs/cells.md): tuning / training seeds 1001-1008 (the phantom's
settings were only ever looked at on these), held-out seeds 70001-70008 (new: neither the
Makefile's cohorts 1000+ / 50000+ nor the tuning seeds).

On the training seeds: the two-band rule's thresholds are fitted against truth
(:func:`ml.seg.twoband.fit_two_band`), and the phasor is "optimised" as the study did
(grid over median passes, mixture components and droplet level, best mean nucleus +
droplet Dice against truth). On the held-out seeds, each method is scored

* ``vs_truth``: Dice against the simulator's exact label maps;
* ``vs_phasor``: Dice against the optimised phasor's label maps (the study's protocol,
  where the phasor is the reference); the phasor itself is omitted there (Dice 1 by
  construction).

The two are reported side by side and never mixed. Mean, SD (ddof 1) and min over stacks.
A class absent from both masks scores Dice 1 (:func:`ml.common.dice.dice`), so on a stack
without truth droplets the droplet Dice is 1 or, after a single false pixel, 0;
``dice_droplet_stacks`` therefore also gives the droplet Dice against truth over only the
stacks that have truth droplets (``truth_pixels`` per stack says which).

``--weights`` scores segmenter weights trained elsewhere (``srash train-seg``, any model of
:data:`ml.seg.models.SEGMENTERS`) on the same held-out stacks and in the same way as the
``--unet-epochs`` network: masks -> label map (:func:`ml.seg.models.labels_from_masks`),
Dice of the label map's classes. Weights whose training specimen seeds include a held-out
seed are refused. With ``--reuse-fit`` and no ``--unet-epochs`` the training stacks are not
simulated (nothing uses them).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ml.common.dice import dice
from ml.common.errors import MLError
from ml.seg.phasor import LIPID_DROPLET, NUCLEUS, segment_phasor
from ml.seg.twoband import TwoBandRule, fit_two_band

TRAIN_SEEDS = tuple(range(1001, 1009))
TEST_SEEDS = tuple(range(70001, 70009))
SHIFTS = np.arange(2800.0, 3050.1, 5.0)
NOISE_OFFSET = 500000
PHASOR_GRID = {"median_passes": (1, 2, 3), "n_components": (3, 4),
               "droplet_level": (0.3, 0.5)}


def simulate_stack(seed: int, *, pixels: int = 256, fov_um: float = 60.0, averages: int = 3,
                   shifts: np.ndarray = SHIFTS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(stack (K, H, W) float32, Raman axis (K,), truth labels (H, W))`` of one seed."""
    from ml.io.processed import process_field
    from simulators.instrument import build_simulator
    from simulators.parts.scanner import HYPERSPECTRAL_WALK_PX, ScannerConfig
    from simulators.specimens import make_specimen

    spec = make_specimen("cells", seed)
    cx, cy = spec.default_center_um()
    sim = build_simulator(spec, pixels=pixels, fov_um=fov_um, x_um=cx, y_um=cy,
                          averages=averages, session_seed=seed + NOISE_OFFSET,
                          scanner=ScannerConfig(registration_walk_px=HYPERSPECTRAL_WALK_PX))
    rng = np.random.default_rng(seed + NOISE_OFFSET)
    field = sim.stack(rng, shifts)
    proc = process_field(sim, field, rng)
    return (np.asarray(proc.data[: len(shifts)], np.float32),
            np.asarray(field.raman_shifts_cm1, np.float64), np.asarray(field.truth.labels))


def _scores(pred: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    return {"nucleus": dice(pred == NUCLEUS, ref == NUCLEUS),
            "lipid_droplet": dice(pred == LIPID_DROPLET, ref == LIPID_DROPLET)}


def _stats(rows: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    out = {}
    for k in ("nucleus", "lipid_droplet"):
        v = np.array([r[k] for r in rows], float)
        out[k] = {"mean": round(float(v.mean()), 4),
                  "sd": round(float(v.std(ddof=1)) if v.size > 1 else 0.0, 4),
                  "min": round(float(v.min()), 4)}
    return out


def optimise_phasor(data: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """Phasor settings of :data:`PHASOR_GRID` with the best mean (nucleus + droplet) Dice
    against truth on ``data``."""
    best: tuple[float, dict[str, Any]] = (-1.0, {})
    keys = list(PHASOR_GRID)
    for vals in itertools.product(*(PHASOR_GRID[k] for k in keys)):
        params = dict(zip(keys, vals))
        s = [_scores(segment_phasor(x, r, **params).labels, lab) for x, r, lab in data]
        m = float(np.mean([d["nucleus"] + d["lipid_droplet"] for d in s])) / 2
        if m > best[0]:
            best = (m, params)
    return best[1]


def train_unet(train: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
               seeds: tuple[int, ...], *, epochs: int, out: Path, log: Any) -> Any:
    """The hybrid UNet trained on ``train`` with ``srash train-seg``'s recipe (Adam 3e-3,
    4 crops of 128 px per stack per epoch, batch 4, seed 0, 20 % validation) for ``epochs``
    epochs: :func:`ml.seg.workflow.train_seg`. Returns ``(Segmenter, summary)``."""
    from ml.io.stacks import Stack
    from ml.seg.models import load_segmenter
    from ml.seg.train import SegConfig
    from ml.seg.workflow import Segmenter, SegTrainSettings, train_seg

    stacks = [Stack(data=x, raman_cm1=r, pixel_um=None,
                    start={"uid": f"cells-eval-{sd}", "specimen_seed": sd})
              for (x, r, _), sd in zip(train, seeds)]
    cfg = SegConfig(lr=3e-3, epochs=epochs, crop_size=128, crops_per_stack=4, batch_size=4,
                    seed=0)
    res = train_seg(stacks, [lab for _, _, lab in train],
                    settings=SegTrainSettings(model="hybrid-unet", config=cfg,
                                              cohort="cells-eval"),
                    weights_path=out / "seg_hybrid-unet-cells.pt", report_dir=out / "train",
                    progress=lambda stage, rec: print(
                        f"epoch {rec.get('epoch')}: val Dice {rec.get('val_dice_nucleus', 0):.3f}"
                        f" / {rec.get('val_dice_lipid_droplet', 0):.3f}", file=log))
    model, meta = load_segmenter(out / "seg_hybrid-unet-cells.pt")
    return Segmenter(out / "seg_hybrid-unet-cells.pt", model, meta), res.summary


def load_weights_args(items: list[str], test_seeds: tuple[int, ...]) -> dict[str, Any]:
    """``{label: Segmenter}`` of ``--weights`` items ``[LABEL=]PATH``; the label defaults
    to the file's stem (made unique with its folder's name). Refuses weights trained on a
    held-out seed (``SystemExit``)."""
    from ml.seg.models import load_segmenter
    from ml.seg.workflow import Segmenter

    out: dict[str, Any] = {}
    for item in items:
        label, sep, path = item.partition("=")
        if not sep:
            label, path = "", item
        p = Path(path)
        name = label or p.stem
        if name in out:
            name = f"{p.parent.name}/{p.stem}"
        if name in out or name in ("two_band", "phasor_default", "phasor_optimised",
                                   "hybrid_unet"):
            raise SystemExit(f"--weights {item}: label {name!r} already taken; give one "
                             "as LABEL=PATH")
        try:
            model, meta = load_segmenter(p)
        except (OSError, MLError) as exc:  # missing, corrupted or not a segmenter's file
            raise SystemExit(f"--weights {item}: {exc}") from None
        seen = sorted(set(meta.get("specimen_seeds") or []) & set(test_seeds))
        if seen:
            raise SystemExit(f"--weights {p}: trained on held-out seed(s) {seen[:5]}")
        out[name] = Segmenter(p, model, meta)
    return out


def _weights_info(sg: Any) -> dict[str, Any]:
    m = sg.meta
    seeds = [int(v) for v in m.get("specimen_seeds") or []]
    return {"path": str(sg.path), "segmenter": m.get("segmenter"), "cohort": m.get("cohort"),
            "specimen_seeds": [min(seeds), max(seeds), len(seeds)] if seeds else None,
            "best_epoch": m.get("best_epoch"), "epochs": (m.get("config") or {}).get("epochs"),
            "train_seconds": m.get("train_seconds")}


def run(train_seeds: tuple[int, ...] = TRAIN_SEEDS, test_seeds: tuple[int, ...] = TEST_SEEDS,
        *, averages: int = 3, unet_epochs: int = 0, out: Path | None = None,
        reuse: dict[str, Any] | None = None, segmenters: dict[str, Any] | None = None,
        log: Any = sys.stderr) -> dict[str, Any]:
    """The study (module docstring). ``reuse``: a previous report of the same training
    seeds whose two-band thresholds and phasor settings are taken instead of refitting.
    ``segmenters``: ``{label: Segmenter}`` (:func:`load_weights_args`) scored as well."""
    t0 = time.perf_counter()
    segmenters = dict(segmenters or {})
    need_train = reuse is None or unet_epochs > 0
    train = [simulate_stack(s, averages=averages) for s in train_seeds] if need_train else []
    print(f"simulated {len(train)} training stacks ({time.perf_counter() - t0:.0f} s)",
          file=log)
    if reuse is not None:
        if list(reuse["train_seeds"]) != list(train_seeds):
            raise SystemExit(f"--reuse-fit: fitted on seeds {reuse['train_seeds']}, not "
                             f"{list(train_seeds)}")
        rule = TwoBandRule(**reuse["two_band_rule"])
        phasor_params = dict(reuse["phasor_optimised_settings"])
    else:
        rule = fit_two_band([d[0] for d in train], [d[1] for d in train],
                            [d[2] for d in train])
        phasor_params = optimise_phasor(train)
    print(f"fitted {rule}, phasor {phasor_params} ({time.perf_counter() - t0:.0f} s)",
          file=log)
    unet, unet_summary = None, None
    if unet_epochs > 0:
        unet, unet_summary = train_unet(train, tuple(train_seeds), epochs=unet_epochs,
                                        out=out or Path("reports/cells-eval"), log=log)
        print(f"trained hybrid-unet ({time.perf_counter() - t0:.0f} s)", file=log)
    test = [simulate_stack(s, averages=averages) for s in test_seeds]
    per: dict[str, dict[str, list[dict[str, float]]]] = {
        "vs_truth": {"two_band": [], "phasor_default": [], "phasor_optimised": []},
        "vs_phasor": {"two_band": [], "phasor_default": []}}
    # the network trained here and the loaded weights are scored the same way
    networks = {**({"hybrid_unet": unet} if unet is not None else {}), **segmenters}
    if networks:
        from ml.seg.models import labels_from_masks, segmenter_input
        from ml.seg.train import predict_masks
    for name in networks:
        per["vs_truth"][name] = []
        per["vs_phasor"][name] = []
    seconds: dict[str, float] = {name: 0.0 for name in networks}
    for x, r, lab in test:
        ph = segment_phasor(x, r, **phasor_params).labels
        preds = {"two_band": rule.segment(x, r), "phasor_default": segment_phasor(x, r).labels,
                 "phasor_optimised": ph}
        for name, sg in networks.items():
            ts = time.perf_counter()
            m = predict_masks(sg.model, segmenter_input(x, r, sg.meta["raman_cm1"]))
            seconds[name] += time.perf_counter() - ts
            preds[name] = labels_from_masks(m, x.mean(axis=0))
        for name, p in preds.items():
            per["vs_truth"][name].append(_scores(p, lab))
            if name != "phasor_optimised":
                per["vs_phasor"][name].append(_scores(p, ph))
    frac = {k: float(np.mean([np.mean(lab == c) for _, _, lab in test]))
            for k, c in (("nucleus", NUCLEUS), ("lipid_droplet", LIPID_DROPLET))}
    pixels = {k: [int(np.sum(lab == c)) for _, _, lab in test]
              for k, c in (("nucleus", NUCLEUS), ("lipid_droplet", LIPID_DROPLET))}
    with_ld = [i for i, n in enumerate(pixels["lipid_droplet"]) if n > 0]
    return {
        "train_seeds": list(train_seeds), "test_seeds": list(test_seeds),
        "stack": {"pixels": 256, "fov_um": 60.0, "averages": averages,
                  "raman_cm1": [float(SHIFTS[0]), float(SHIFTS[-1]), 5.0]},
        "two_band_rule": {"t_cell": rule.t_cell, "t_ratio": rule.t_ratio,
                          "t_droplet": rule.t_droplet},
        "phasor_optimised_settings": phasor_params,
        "truth_area_fraction": frac, "truth_pixels": pixels,
        "dice_droplet_stacks": {
            m: _stats([v[i] for i in with_ld])["lipid_droplet"] if with_ld else None
            for m, v in per["vs_truth"].items()},
        "dice": {proto: {m: _stats(v) for m, v in d.items()} for proto, d in per.items()},
        "per_stack": per, "hybrid_unet_training": unet_summary,
        **({"weights": {k: _weights_info(sg) for k, sg in segmenters.items()},
            "seconds_per_stack": {k: round(v / len(test), 3) for k, v in seconds.items()}}
           if segmenters else {}),
        "elapsed_s": round(time.perf_counter() - t0, 1)}


def _seeds(text: str) -> tuple[int, ...]:
    if "-" in text:
        a, b = (int(v) for v in text.split("-"))
        return tuple(range(a, b + 1))
    return tuple(int(v) for v in text.split(","))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--train-seeds", default="1001-1008", help="A-B or a,b,c (default 1001-1008)")
    p.add_argument("--test-seeds", default="70001-70008", help="default 70001-70008")
    p.add_argument("--averages", type=int, default=3, help="frame averages (default 3)")
    p.add_argument("--out", type=Path, default=None, help="folder for cells_eval.json")
    p.add_argument("--unet-epochs", type=int, default=0,
                   help="also train the hybrid UNet on the training seeds for this many "
                        "epochs and score it (default 0: not trained)")
    p.add_argument("--reuse-fit", type=Path, default=None,
                   help="take the two-band thresholds and phasor settings from this earlier "
                        "cells_eval.json (same training seeds) instead of refitting")
    p.add_argument("--weights", nargs="+", default=[], metavar="[LABEL=]PATH",
                   help="also score these segmenter weights files (`srash train-seg`), "
                        "labelled LABEL (default: the file's stem)")
    p.add_argument("--report-name", default="cells_eval.json",
                   help="file name of the report in --out (default cells_eval.json)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    a = p.parse_args(argv)
    if a.unet_epochs < 0:
        p.error(f"--unet-epochs {a.unet_epochs}: expected >= 0")
    test_seeds = _seeds(a.test_seeds)
    rep = run(_seeds(a.train_seeds), test_seeds, averages=a.averages,
              unet_epochs=a.unet_epochs, out=a.out,
              reuse=json.loads(a.reuse_fit.read_text()) if a.reuse_fit else None,
              segmenters=load_weights_args(a.weights, test_seeds))
    if a.out is not None:
        a.out.mkdir(parents=True, exist_ok=True)
        (a.out / a.report_name).write_text(json.dumps(rep, indent=1))
    if a.json:
        print(json.dumps(rep))
    else:
        for proto, d in rep["dice"].items():
            for m, s in d.items():
                print(f"{proto:9s} {m:24s} nucleus {s['nucleus']['mean']:.3f} +- "
                      f"{s['nucleus']['sd']:.3f} (min {s['nucleus']['min']:.3f})  droplets "
                      f"{s['lipid_droplet']['mean']:.3f} +- {s['lipid_droplet']['sd']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
