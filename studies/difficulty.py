"""How hard are the simulated testis sections? The yardstick of issue 14, measured on
held-out patients.

    .venv/bin/python -m studies.difficulty [--quick] [--out DIR] [--json]

Patients are drawn as ``srash cohort`` draws them (:func:`srash_ophyd.cli.cohort.cohort_plan`:
specimen seed ``seed_base + 1000 j + k`` for patient ``k`` of phenotype number ``j``, noise
seed ``+ 500000``), with the Makefile's two cohorts as defaults: training ``--seed-base
1000`` normal=10, NOA-SPT=8, NOA-SPG=8, NOA-SCO=2; held-out ``--seed-base 50000`` normal=10,
NOA-SPT=8, NOA-SPG=8, NOA-SCO=4. Each patient is one simulated section
(:func:`simulators.specimens.make_specimen`) imaged on the simulated instrument
(:func:`simulators.instrument.build_simulator`, 1200 px, 360 um, 3 averages, 2850 + 2930
cm^-1 + SHG) at the tiles of the cohort's mosaic (``--grid 1x2``, no overlap, centred on
the section; the stage is placed exactly, without its 1 um repeatability error). A field
becomes the classifier's composite as in a catalog run (calibration record of the
instrument, :func:`ml.io.composite.field_composite`) and LBNet-Dx's valid patches and vote
weights (:func:`ml.dx.predict.field_patches`: 300 px windows at a 100 px stride). No catalog
and no bluesky: the study calls the simulator directly, so it needs no data directory.

Measured on the held-out patients (every model and orientation is fitted on the training
patients only), normal vs NOA (all NOA phenotypes are class 1):

a. ``classical``: SVM, KNN, decision tree, gradient boosting (:mod:`ml.dx.baselines`) on
   the 24 whole-patch intensity statistics (:func:`ml.dx.baselines.intensity_features`),
   each at its own Youden
   threshold from patient-grouped out-of-fold training scores; patch accuracy, and sample
   accuracy with LBNet's weighted vote (:mod:`ml.dx.classical`). By default the
   324 features of ``srash evaluate`` (block means too) are scored the same way
   (``--features intensity`` skips them).
b. ``mean_shg_auc``: ROC AUC of a patch's mean SHG (composite B channel) alone, its
   direction fitted on training patches (:mod:`studies.metrics.separability`); the same for
   the mean of R (protein) and G (lipid) for comparison.
c. ``srs2850_cv``: per phenotype, the coefficient of variation between patients of the
   patient's mean raw SRS 2850 signal (lock-in volts as recorded, before any calibration;
   the mean over all pixels of all the patient's fields), and the same after subtracting
   the instrument's dark level, and over tissue pixels only (truth label not BACKGROUND: a
   tear in the field lowers the field mean) (:mod:`studies.metrics.variation`).
d. ``morphology``: from the specimen's own tubule geometry
   (:meth:`~simulators.specimens.testis.TestisSection.tubules_in`) in a ``--box-um``
   square at the section centre: per patient, the CV of the tubule centres'
   nearest-neighbour distances (tubules at least ``--box-margin-um`` inside the box; their
   neighbours sought among all); the fraction of tubule profiles with axis ratio > 1.5;
   and, from the imaged fields, the SHG contrast around a tubule wall: max / min of the
   mean SHG (power-normalised, dark-subtracted, in dense-collagen units) in 12 angular
   sectors about the tubule centre, over the truth's wall pixels (label COLLAGEN of that
   tubule), for tubules whose wall is seen all round (``--min-sector-px`` per sector), and
   the two-fold harmonic part of it (what a linear polarisation makes; a gap in the wall
   moves max / min but hardly this) (:mod:`studies.metrics.morphology`).
e. ``artefacts``: whether tears depend on the phenotype: each held-out normal patient's
   seed is rendered as every phenotype over the same ``--artefact-fov-um`` window at the
   section centre (inside the section outline for every patient) and its tissue-free
   pixels (truth label BACKGROUND) compared with the normal rendering's by the overlap
   coefficient (1 when one set of tears lies inside the other: the same tears, perhaps
   wider) and by intersection over union, against two different seeds (chance level)
   (:mod:`studies.metrics.artefacts`).

Outputs: a summary on stdout (``--json``: one JSON object), progress on stderr, and with
``--out DIR``: ``difficulty.json`` and the PNGs ``roc_mean_shg.png``,
``classical_accuracy.png``, ``srs2850_patients.png``, ``morphology.png``,
``tears_same_seed.png``. Measured numbers and runtimes: docs/difficulty.md.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ml.dx.classical import score_classical
from studies.metrics.artefacts import mask_iou, overlap_coefficient
from studies.metrics.morphology import (
    axis_ratio_fraction,
    harmonic_contrast,
    nn_distance_cv,
    sector_contrast,
)
from studies.metrics.separability import oriented_auc, oriented_roc
from studies.metrics.variation import coefficient_of_variation

PHENOTYPES = ("normal", "NOA-SPT", "NOA-SPG", "NOA-SCO")
TRAIN_PATIENTS = "normal=10,NOA-SPT=8,NOA-SPG=8,NOA-SCO=2"
TEST_PATIENTS = "normal=10,NOA-SPT=8,NOA-SPG=8,NOA-SCO=4"
QUICK_PATIENTS = "normal=3,NOA-SPT=2,NOA-SPG=2,NOA-SCO=1"
#: the issue's targets: {metric key: (comparison, limit, text)}
TARGETS: dict[str, tuple[str, float, str]] = {
    "classical_patch_accuracy_max": ("<=", 0.75, "every classical model <= 0.75 patch "
                                     "accuracy on held-out patients"),
    "mean_shg_auc": ("<=", 0.75, "mean SHG of a patch alone: AUC <= 0.75"),
    "srs2850_cv_min": (">=", 0.25, "field-mean raw SRS 2850: CV >= 0.25 between patients of "
                       "one phenotype (each phenotype)"),
    "nn_distance_cv": (">=", 0.2, "tubule nearest-neighbour distance CV >= 0.2"),
    "axis_ratio_fraction": (">=", 0.2, ">= 20 % of tubule profiles with axis ratio > 1.5"),
    "shg_sector_contrast_median": (">=", 2.0, "SHG varying >= 2x around a tubule's "
                                   "circumference"),
    # the limit is set at run time: twice the IoU of two different seeds (chance level)
    "tear_overlap_same_seed": ("<=", math.nan, "the same seed in two phenotypes gives "
                               "different artefacts (tear overlap coefficient normal vs "
                               "NOA-SPG <= 2x that of two different seeds)"),
}


def _log(quiet: bool, msg: str) -> None:
    if not quiet:
        print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- acquisition
def patients(name: str, counts_text: str, seed_base: int) -> list[dict[str, Any]]:
    """The cohort's patients, exactly as ``srash cohort`` numbers them."""
    from srash_ophyd.cli.cohort import cohort_plan, parse_counts

    return cohort_plan(name, parse_counts(counts_text), seed_base)


def field_positions(center: tuple[float, float], rows: int, cols: int, fov_um: float
                    ) -> list[tuple[float, float]]:
    """Tile centres of the cohort's mosaic (no overlap), row-major."""
    from plans.grid import tile_grid

    g = tile_grid(rows=rows, cols=cols, fov_um=fov_um, overlap=0.0, center_um=center)
    return [g.position(r, c) for r in range(rows) for c in range(cols)]


def wall_contrasts(field: Any, shg: np.ndarray, spec: Any, *, n_sectors: int,
                   min_sector_px: int) -> list[dict[str, float]]:
    """SHG sector contrast (max / min sector mean) and its two-fold harmonic part of every
    tubule wall seen all round in a field: wall pixels = truth label COLLAGEN with the
    tubule's instance id; angle of a pixel = its world polar angle about the tubule centre."""
    from simulators.specimens.base import Label

    truth, win = field.truth, field.truth.window
    x0, x1, y0, y1 = win.extent_um
    xs, ys = win.xs(), win.ys()
    out = []
    for t in spec.tubules_in(x0, x1, y0, y1):
        m = (truth.instance == t.id) & (truth.labels == Label.COLLAGEN)
        if not m.any():
            continue
        r, c = np.nonzero(m)
        ang = np.arctan2(ys[r] - t.cy_um, xs[c] - t.cx_um)
        k = sector_contrast(shg[r, c], ang, n_sectors=n_sectors, min_count=min_sector_px)
        if math.isfinite(k):
            out.append({"contrast": k, "axis_ratio": float(t.axis_ratio),
                        "twofold": harmonic_contrast(shg[r, c], ang, n_sectors=n_sectors,
                                                     min_count=min_sector_px),
                        "wall_um": float(t.wall_um)})
    return out


def acquire(pt: dict[str, Any], args: argparse.Namespace, *, measure_walls: bool
            ) -> dict[str, Any]:
    """Image one patient: per field its patch features, vote weights, raw SRS 2850 means
    and (``measure_walls``) the SHG contrast of its tubule walls."""
    from ml.dx.baselines import patch_features
    from ml.dx.predict import field_patches
    from ml.io.composite import Calibration, field_channels, field_composite
    from simulators.instrument import build_simulator, noise_generators
    from simulators.specimens import make_specimen

    spec = make_specimen("testis", pt["seed"], phenotype=pt["phenotype"])
    centre = spec.default_center_um()
    pos = field_positions(centre, args.rows, args.cols, args.fov_um)
    sim = build_simulator(spec, pixels=args.pixels, fov_um=args.fov_um,
                          averages=args.averages, x_um=pos[0][0], y_um=pos[0][1])
    rng, _ = noise_generators(pt["noise_seed"])
    cal = Calibration.from_dict(sim.calibration(rng))
    from simulators.specimens.base import Label

    feats, weights, raw_means, dark_means, tissue_means, walls = [], [], [], [], [], []
    for x, y in pos:
        sim.stage.move(x=x, y=y)
        f = sim.field(rng)
        il = f.channel_names.index("SRS_2850")
        ip = f.channel_names.index("SRS_2930")
        ib = f.channel_names.index("SHG")
        kw = dict(calibration=cal, shifts_cm1=[f.raman_shifts_cm1[il], f.raman_shifts_cm1[ip]],
                  pump_mw=[f.pump_mw[il], f.pump_mw[ip]],
                  stokes_mw=[f.stokes_mw[il], f.stokes_mw[ip]])
        comp = field_composite(f.raw[il], f.raw[ip], f.raw[ib], **kw)
        ps = field_patches(comp)
        if len(ps):
            feats.append(patch_features(ps.patches))
            weights.append(ps.weights)
        m = float(f.raw[il].mean(dtype=np.float64))
        raw_means.append(m)
        dark_means.append(m - cal.srs_dark_v)
        tissue = f.truth.labels != Label.BACKGROUND
        tissue_means.append(float(f.raw[il][tissue].mean(dtype=np.float64))
                            if tissue.any() else float("nan"))
        if measure_walls:
            shg = field_channels(f.raw[il], f.raw[ip], f.raw[ib], **kw)[2]
            walls += wall_contrasts(f, shg, spec, n_sectors=args.sectors,
                                    min_sector_px=args.min_sector_px)
    nf = patch_features(np.zeros((1, 3, 10, 10), np.float32)).shape[1]
    return {**pt, "features": np.concatenate(feats) if feats else np.zeros((0, nf), np.float32),
            "weights": np.concatenate(weights) if weights else np.zeros(0),
            "raw_srs2850_v": float(np.mean(raw_means)),
            "srs2850_minus_dark_v": float(np.mean(dark_means)),
            "tissue_raw_srs2850_v": float(np.nanmean(tissue_means))
            if np.isfinite(tissue_means).any() else float("nan"),
            "field_raw_srs2850_v": raw_means, "walls": walls}


# --------------------------------------------------------------------------- geometry-only
def morphology(pt: dict[str, Any], box_um: float, margin_um: float) -> dict[str, Any]:
    """Tubule spacing, profile elongation and tubule area fraction of the tissue (flattened
    outlines, in the box less its margin) of one patient's section (geometry only)."""
    from simulators.specimens import make_specimen

    spec = make_specimen("testis", pt["seed"], phenotype=pt["phenotype"])
    cx, cy = spec.default_center_um()
    h = box_um / 2
    tubs = spec.tubules_in(cx - h, cx + h, cy - h, cy + h)
    c = np.array([[t.cx_um, t.cy_um] for t in tubs])
    inner = ((np.abs(c[:, 0] - cx) <= h - margin_um) & (np.abs(c[:, 1] - cy) <= h - margin_um))
    ratios = np.array([t.axis_ratio for t in tubs])[inner]
    # tubule area fraction of the tissue: 20000 uniform points of the inner box
    rng = np.random.default_rng(0)
    hi = h - margin_um
    x = cx + rng.uniform(-hi, hi, 20000)
    y = cy + rng.uniform(-hi, hi, 20000)
    tissue = spec.tissue_at(x, y)
    inside = np.zeros(x.size, bool)
    for t in tubs:
        inside |= t.depth_at(x, y) > 0
    frac = float(inside[tissue].mean()) if tissue.any() else float("nan")
    return {"sample_id": pt["sample_id"], "phenotype": pt["phenotype"],
            "tubule_area_fraction": frac,
            "n_tubules": int(inner.sum()), "nn_cv": nn_distance_cv(c, evaluate=inner),
            "axis_ratio_fraction": axis_ratio_fraction(ratios, limit=1.5),
            "axis_ratios": ratios.tolist()}


def background_masks(seed: int, fov_um: float, pixel_um: float
                     ) -> dict[str, np.ndarray]:
    """Tissue-free pixels (truth BACKGROUND) of seed ``seed`` rendered as each phenotype
    over the same window (centred on the normal rendering's default centre)."""
    from simulators.specimens import make_specimen
    from simulators.specimens.base import Label, Window

    n = int(round(fov_um / pixel_um))
    centre = make_specimen("testis", seed, phenotype="normal").default_center_um()
    win = Window.centered(centre[0], centre[1], fov_um, n)
    return {ph: make_specimen("testis", seed, phenotype=ph).render(win).labels
            == Label.BACKGROUND for ph in PHENOTYPES}


# --------------------------------------------------------------------------- the study
def _stats(v: list[float]) -> dict[str, Any]:
    a = np.asarray([x for x in v if x is not None and math.isfinite(x)], np.float64)
    if a.size == 0:
        return {"n": 0}
    return {"n": int(a.size), "mean": float(a.mean()), "median": float(np.median(a)),
            "min": float(a.min()), "max": float(a.max())}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from ml.dx.baselines import feature_names, intensity_columns

    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    cohorts = {"train": patients("difficulty-train", args.train_patients, args.train_seed_base),
               "test": patients("difficulty-test", args.test_patients, args.test_seed_base)}
    data: dict[str, list[dict[str, Any]]] = {"train": [], "test": []}
    t0 = time.perf_counter()
    total = sum(len(v) for v in cohorts.values())
    done = 0
    for split, pts in cohorts.items():
        for pt in pts:
            t1 = time.perf_counter()
            data[split].append(acquire(pt, args, measure_walls=split == "test"))
            done += 1
            el = time.perf_counter() - t0
            _log(args.quiet, f"[{done}/{total}] {split} {pt['sample_id']} seed {pt['seed']}: "
                 f"{len(data[split][-1]['weights'])} patches, {time.perf_counter() - t1:.1f} s"
                 f" (elapsed {el:.0f} s, ~{el / done * (total - done):.0f} s left)")
    timings["acquire_s"] = time.perf_counter() - t0

    def stack(split: str) -> tuple[np.ndarray, ...]:
        d = data[split]
        x = np.concatenate([p["features"] for p in d])
        y = np.concatenate([np.full(len(p["weights"]), int(p["phenotype"] != "normal"))
                            for p in d])
        g = np.concatenate([np.full(len(p["weights"]), p["sample_id"], dtype=object)
                            for p in d])
        w = np.concatenate([p["weights"] for p in d])
        return x, y, g, w

    xt, yt, gt, _ = stack("train")
    xs, ys, gs, ws = stack("test")
    names = feature_names()
    icol = intensity_columns()
    res: dict[str, Any] = {
        "n": {"train_patients": len(data["train"]), "test_patients": len(data["test"]),
              "train_patches": int(len(yt)), "test_patches": int(len(ys)),
              "fields_per_patient": args.rows * args.cols,
              "test_patients_per_phenotype": {ph: sum(p["phenotype"] == ph
                                                      for p in data["test"])
                                              for ph in PHENOTYPES}}}

    # a. classical models
    t0 = time.perf_counter()
    sets = {"intensity": icol}
    if args.features == "full":
        sets["full"] = np.arange(xt.shape[1])
    res["classical"] = {}
    probas: dict[str, dict[str, np.ndarray]] = {}
    for fs, cols in sets.items():
        _log(args.quiet, f"classical models on the {fs} features ({len(cols)} per patch)...")
        sc = score_classical(xt[:, cols], yt, gt, xs[:, cols], ys, gs, ws, seed=args.seed,
                             n_splits=args.folds)
        probas[fs] = {k: v.pop("proba") for k, v in sc.items()}
        res["classical"][fs] = sc
    timings["classical_s"] = time.perf_counter() - t0

    # b. single-feature AUCs
    aucs, rocs = {}, {}
    for ch, label in (("B", "mean SHG"), ("G", "mean lipid (G)"), ("R", "mean protein (R)")):
        j = names.index(f"{ch}:mean")
        fpr, tpr, auc = oriented_roc(yt, xt[:, j], ys, xs[:, j])
        aucs[label] = {"auc": auc, "direction": oriented_auc(yt, xt[:, j], ys, xs[:, j])[1]}
        rocs[label] = (fpr, tpr, auc)
    res["mean_shg_auc"] = aucs["mean SHG"]["auc"]
    res["single_channel_auc"] = aucs

    # c. SRS 2850 between patients
    cv = {}
    for ph in PHENOTYPES:
        d = [p for p in data["test"] if p["phenotype"] == ph]
        if not d:
            continue
        raw = [p["raw_srs2850_v"] for p in d]
        sub = [p["srs2850_minus_dark_v"] for p in d]
        tis = [p["tissue_raw_srs2850_v"] for p in d if math.isfinite(p["tissue_raw_srs2850_v"])]
        cv[ph] = {"n": len(d), "mean_raw_v": float(np.mean(raw)),
                  "cv_raw": coefficient_of_variation(raw),
                  "cv_minus_dark": coefficient_of_variation(sub),
                  "n_tissue": len(tis), "cv_tissue_raw": coefficient_of_variation(tis)}
    res["srs2850_cv"] = cv

    # d. morphology
    t0 = time.perf_counter()
    morph = [morphology(p, args.box_um, args.box_margin_um) for p in cohorts["test"]]
    walls = [dict(w, phenotype=p["phenotype"]) for p in data["test"] for w in p["walls"]]
    mo: dict[str, Any] = {"per_phenotype": {}}
    for ph in PHENOTYPES:
        m = [r for r in morph if r["phenotype"] == ph]
        if not m:
            continue
        wc = [w["contrast"] for w in walls if w["phenotype"] == ph]
        w2 = [w["twofold"] for w in walls if w["phenotype"] == ph]
        mo["per_phenotype"][ph] = {
            "patients": len(m), "tubules_per_patient": _stats([r["n_tubules"] for r in m]),
            "nn_cv": _stats([r["nn_cv"] for r in m]),
            "tubule_area_fraction": _stats([r["tubule_area_fraction"] for r in m]),
            "axis_ratio_fraction": axis_ratio_fraction(
                np.concatenate([r["axis_ratios"] for r in m]), limit=1.5),
            "axis_ratio_max": float(max(max(r["axis_ratios"]) for r in m)),
            "shg_sector_contrast": _stats(wc), "shg_twofold_contrast": _stats(w2)}
    all_ratios = np.concatenate([r["axis_ratios"] for r in morph])
    wc_all = [w["contrast"] for w in walls]
    mo["nn_cv"] = _stats([r["nn_cv"] for r in morph])
    mo["axis_ratio_fraction"] = axis_ratio_fraction(all_ratios, limit=1.5)
    mo["n_tubules"] = int(all_ratios.size)
    mo["shg_sector_contrast"] = _stats(wc_all)
    mo["shg_twofold_contrast"] = _stats([w["twofold"] for w in walls])
    mo["shg_sector_contrast_fraction_ge_2"] = (float(np.mean(np.asarray(wc_all) >= 2.0))
                                              if wc_all else float("nan"))
    res["morphology"] = mo
    by_id = {r["sample_id"]: r for r in morph}
    res["test_patients"] = [
        {"sample_id": p["sample_id"], "phenotype": p["phenotype"], "seed": p["seed"],
         "noise_seed": p["noise_seed"], "patches": int(len(p["weights"])),
         "raw_srs2850_v": p["raw_srs2850_v"], "field_raw_srs2850_v": p["field_raw_srs2850_v"],
         "srs2850_minus_dark_v": p["srs2850_minus_dark_v"],
         "tissue_raw_srs2850_v": p["tissue_raw_srs2850_v"],
         "tubules": by_id[p["sample_id"]]["n_tubules"], "nn_cv": by_id[p["sample_id"]]["nn_cv"],
         "walls_measured": len(p["walls"])} for p in data["test"]]
    timings["morphology_s"] = time.perf_counter() - t0

    # e. artefacts: tears of one seed in every phenotype
    t0 = time.perf_counter()
    seeds = [p["seed"] for p in cohorts["test"] if p["phenotype"] == "normal"]
    seeds = seeds[:args.artefact_seeds] if args.artefact_seeds else seeds
    masks = {}
    for k, s in enumerate(seeds, 1):
        masks[s] = background_masks(s, args.artefact_fov_um, args.artefact_pixel_um)
        _log(args.quiet, f"artefacts: seed {s} rendered as {len(PHENOTYPES)} phenotypes "
             f"({k}/{len(seeds)})")
    res["artefacts"] = {
        "seeds": seeds, "window_um": args.artefact_fov_um, "pixel_um": args.artefact_pixel_um,
        "background_fraction": {ph: _stats([float(masks[s][ph].mean()) for s in seeds])
                                for ph in PHENOTYPES}}
    for key, fn in (("overlap", overlap_coefficient), ("iou", mask_iou)):
        res["artefacts"][f"{key}_same_seed"] = {
            f"normal vs {ph}": _stats([fn(masks[s]["normal"], masks[s][ph]) for s in seeds])
            for ph in PHENOTYPES[1:]}
        # chance level: seed s as normal vs the next seed as NOA-SPG
        res["artefacts"][f"{key}_different_seeds"] = _stats(
            [fn(masks[s]["normal"], masks[seeds[(i + 1) % len(seeds)]]["NOA-SPG"])
             for i, s in enumerate(seeds)] if len(seeds) > 1 else [])
    timings["artefacts_s"] = time.perf_counter() - t0

    # targets
    cl = res["classical"]["intensity"]
    ar = res["artefacts"]
    tear_same = ar["overlap_same_seed"]["normal vs NOA-SPG"].get("mean", float("nan"))
    tear_chance = ar["overlap_different_seeds"].get("mean", float("nan"))
    measured = {
        "classical_patch_accuracy_max": max(v["patch"]["accuracy"] for v in cl.values()),
        "mean_shg_auc": res["mean_shg_auc"],
        "srs2850_cv_min": min(v["cv_raw"] for v in cv.values()),
        "nn_distance_cv": mo["nn_cv"].get("mean", float("nan")),
        "axis_ratio_fraction": mo["axis_ratio_fraction"],
        "shg_sector_contrast_median": mo["shg_sector_contrast"].get("median", float("nan")),
        "tear_overlap_same_seed": tear_same}
    tg = {}
    for key, (op, val, text) in TARGETS.items():
        v = measured[key]
        if key == "tear_overlap_same_seed":  # at most twice the different-seed overlap
            val = 2.0 * tear_chance if math.isfinite(tear_chance) else float("nan")
        ok = (v <= val if op == "<=" else v >= val) if math.isfinite(v) and math.isfinite(val) \
            else None
        tg[key] = {"target": text, "op": op, "limit": val, "measured": v, "met": ok}
    res["targets"] = tg
    timings["total_s"] = time.perf_counter() - t_start
    res["timings_s"] = timings
    res["settings"] = {k: v for k, v in vars(args).items() if k not in ("out",)}
    res["_plot"] = {"rocs": rocs, "data": data, "morph": morph, "masks": masks,
                    "walls": walls, "probas": probas}
    return res


# --------------------------------------------------------------------------- figures
def figures(res: dict[str, Any], out: Path) -> list[str]:
    """The study's PNGs in ``out`` (small: 100 dpi)."""
    from ml.common.plotting import bars_png, new_figure, roc_png, save_png

    pl = res["_plot"]
    paths = [roc_png(out / "roc_mean_shg.png", pl["rocs"],
                     title="Held-out patches, normal vs NOA: one feature alone")]
    vals = {}
    for fs, sc in res["classical"].items():
        for nm, v in sc.items():
            vals[nm if fs == "intensity" else f"{nm} ({fs})"] = {
                "patch": v["patch"]["accuracy"], "balanced": v["balanced_accuracy"],
                "sample": v["sample"]["accuracy"]}
    paths.append(bars_png(out / "classical_accuracy.png", vals,
                          metric_labels={"patch": "patch accuracy (own Youden thr.)",
                                         "balanced": "balanced patch accuracy",
                                         "sample": "samples correct (vote > 0.8)"},
                          title="Classical models on held-out patients (target <= 0.75)"))

    fig = new_figure((5.0, 3.4), dpi=100)
    ax = fig.add_subplot()
    for i, ph in enumerate(PHENOTYPES):
        d = [p for p in pl["data"]["test"] if p["phenotype"] == ph]
        if d:
            x = np.full(len(d), i) + np.linspace(-0.15, 0.15, len(d))
            v = [p["raw_srs2850_v"] for p in d]
            ax.plot(x, v, "o", ms=4, color=f"C{i}", label="field mean" if i == 0 else None)
            ax.plot(x, [p["tissue_raw_srs2850_v"] for p in d], "o", ms=6, mfc="none",
                    color=f"C{i}", label="tissue pixels only" if i == 0 else None)
            c = res["srs2850_cv"][ph]
            ax.text(i, max(v) + 0.01, f"CV {c['cv_raw']:.3f}\n({c['cv_tissue_raw']:.3f})",
                    ha="center", va="bottom", fontsize=7)
    ax.legend(fontsize=7, loc="lower left")
    ax.set_xticks(range(len(PHENOTYPES)), PHENOTYPES)
    ax.set_ylabel("patient mean raw SRS 2850 (V)")
    ax.set_title("Between-patient variation (target CV >= 0.25)", fontsize=10)
    paths.append(save_png(fig, out / "srs2850_patients.png"))

    fig = new_figure((8.0, 3.0), dpi=100)
    a1, a2, a3 = fig.subplots(1, 3)
    ratios = np.concatenate([r["axis_ratios"] for r in pl["morph"]])
    a1.hist(ratios, bins=np.linspace(1, 3, 21), color="C0")
    a1.axvline(1.5, color="k", ls="--", lw=1)
    a1.set_xlabel("tubule profile axis ratio")
    a1.set_title(f"> 1.5: {np.mean(ratios > 1.5):.0%} (target >= 20 %)", fontsize=9)
    a2.hist([r["nn_cv"] for r in pl["morph"]], bins=np.linspace(0, 0.6, 25), color="C1")
    a2.axvline(0.2, color="k", ls="--", lw=1)
    a2.set_xlabel("NN-distance CV per patient")
    a2.set_title("target >= 0.2", fontsize=9)
    bins = np.geomspace(1.0, 100.0, 31)
    for lab, sel, col in (("normal", True, "C2"), ("NOA", False, "C3")):
        wc = [min(w["contrast"], 99.0) for w in pl["walls"]
              if (w["phenotype"] == "normal") == sel]
        a3.hist(wc, bins=bins, color=col, alpha=0.7, label=f"{lab} ({len(wc)})")
    a3.set_xscale("log")
    a3.axvline(2.0, color="k", ls="--", lw=1)
    a3.legend(fontsize=7)
    a3.set_xlabel("wall SHG max / min (12 sectors)")
    a3.set_title("target >= 2 (NOA: gaps in the wall)", fontsize=9)
    paths.append(save_png(fig, out / "morphology.png"))

    masks = pl["masks"]
    if masks:
        seeds = list(masks)
        best = max(seeds, key=lambda s: masks[s]["normal"].mean())
        nxt = seeds[(seeds.index(best) + 1) % len(seeds)]
        fig = new_figure((6.4, 3.4), dpi=100)
        b1, b2 = fig.subplots(1, 2)
        for ax, other, title in ((b1, masks[best]["NOA-SPG"], f"seed {best}: normal / NOA-SPG"),
                                 (b2, masks[nxt]["NOA-SPG"], f"seed {best} normal / seed "
                                  f"{nxt} NOA-SPG")):
            rgb = np.ones(other.shape + (3,), np.float32)
            rgb[masks[best]["normal"]] = (1.0, 0.3, 0.3)
            rgb[other] = (0.3, 0.3, 1.0)
            rgb[masks[best]["normal"] & other] = (0.3, 0.0, 0.3)
            ax.imshow(rgb, interpolation="nearest")
            a, b = masks[best]["normal"], other
            ax.set_title(f"{title}\noverlap {overlap_coefficient(a, b):.2f}, "
                         f"IoU {mask_iou(a, b):.2f}", fontsize=9)
            ax.set_axis_off()
        fig.suptitle("tears (tissue-free): red first, blue second, purple both", fontsize=9)
        paths.append(save_png(fig, out / "tears_same_seed.png"))
    return [str(p) for p in paths]


def summary_lines(res: dict[str, Any]) -> list[str]:
    """A human-readable summary of :func:`run`'s result."""
    n = res["n"]
    lines = [f"held-out: {n['test_patients']} patients ({n['test_patients_per_phenotype']}), "
             f"{n['test_patches']} patches; training: {n['train_patients']} patients, "
             f"{n['train_patches']} patches"]
    for fs, sc in res["classical"].items():
        for nm, v in sc.items():
            s = v["sample"]
            lines.append(f"  {fs:9s} {nm:16s} patch acc {v['patch']['accuracy']:.3f} "
                         f"(thr {v['threshold']:.3f}, balanced {v['balanced_accuracy']:.3f}, "
                         f"AUC {v['patch']['roc_auc']:.3f}); samples {s['correct']}/{s['n']} "
                         f"correct, {s['wrong']} wrong, {s['unidentifiable']} unidentifiable")
    for k, v in res["single_channel_auc"].items():
        lines.append(f"  AUC of the patch {k} alone: {v['auc']:.3f}")
    for ph, v in res["srs2850_cv"].items():
        lines.append(f"  raw SRS 2850 between patients, {ph} (n={v['n']}): CV {v['cv_raw']:.3f}"
                     f" (dark-subtracted {v['cv_minus_dark']:.3f}, tissue pixels only "
                     f"{v['cv_tissue_raw']:.3f}), mean {v['mean_raw_v']:.3f} V")
    mo = res["morphology"]
    lines.append(f"  tubules: NN-distance CV {mo['nn_cv'].get('mean', float('nan')):.3f} (mean of "
                 f"{mo['nn_cv']['n']} patients), axis ratio > 1.5: "
                 f"{mo['axis_ratio_fraction']:.3f} of {mo['n_tubules']}, wall SHG max/min median "
                 f"{mo['shg_sector_contrast'].get('median', float('nan')):.2f}, two-fold "
                 f"{mo['shg_twofold_contrast'].get('median', float('nan')):.2f} "
                 f"({mo['shg_sector_contrast']['n']} tubules)")
    for ph, v in mo["per_phenotype"].items():
        lines.append(f"    {ph}: NN CV {v['nn_cv'].get('mean', float('nan')):.3f}, wall SHG "
                     f"max/min median {v['shg_sector_contrast'].get('median', float('nan')):.2f}"
                     f", two-fold {v['shg_twofold_contrast'].get('median', float('nan')):.2f} "
                     f"({v['shg_sector_contrast']['n']} tubules)")
    ar = res["artefacts"]
    nan = float("nan")
    for k, v in ar["overlap_same_seed"].items():
        lines.append(f"  tears, same seed {k}: overlap {v.get('mean', nan):.3f}, IoU "
                     f"{ar['iou_same_seed'][k].get('mean', nan):.3f} (n={v['n']})")
    lines.append(f"  tears, different seeds: overlap "
                 f"{ar['overlap_different_seeds'].get('mean', nan):.3f}, IoU "
                 f"{ar['iou_different_seeds'].get('mean', nan):.3f}")
    lines.append("targets:")
    for v in res["targets"].values():
        met = {True: "met", False: "NOT met", None: "n/a"}[v["met"]]
        lines.append(f"  [{met:7s}] {v['target']}: measured {v['measured']:.3f} "
                     f"(limit {v['op']} {v['limit']:.3f})")
    lines.append(f"time {res['timings_s']['total_s']:.0f} s")
    return lines


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m studies.difficulty",
        description="Measure how hard the simulated testis sections are (issue 14's "
                    "targets) on held-out patients: classical models, mean-SHG AUC, "
                    "between-patient SRS variation, tubule morphology, tears.",
        epilog="Definitions: the module docstring and docs/difficulty.md.")
    p.add_argument("--quick", action="store_true",
                   help=f"a smoke run: {QUICK_PATIENTS} in both cohorts, one field each, "
                        "3 artefact seeds")
    p.add_argument("--train-patients", default=None,
                   help=f"training patients per phenotype (default {TRAIN_PATIENTS})")
    p.add_argument("--test-patients", default=None,
                   help=f"held-out patients per phenotype (default {TEST_PATIENTS})")
    p.add_argument("--train-seed-base", type=int, default=1000,
                   help="first training specimen seed (default 1000, as `make cohorts`)")
    p.add_argument("--test-seed-base", type=int, default=50000,
                   help="first held-out specimen seed (default 50000, as `make cohorts`)")
    p.add_argument("--grid", default=None, help="fields per patient, ROWSxCOLS (default 1x2)")
    p.add_argument("--pixels", type=int, default=1200, help="pixels per side (1200)")
    p.add_argument("--fov-um", type=float, default=360.0, help="field of view, um (360)")
    p.add_argument("--averages", type=int, default=3, help="frame averages (3)")
    p.add_argument("--features", choices=("intensity", "full"), default="full",
                   help="intensity: the 24 whole-patch statistics only (the issue's target); "
                        "full: also the 324 features of `srash evaluate` (default full)")
    p.add_argument("--folds", type=int, default=5,
                   help="patient-grouped folds for the out-of-fold Youden threshold (5)")
    p.add_argument("--seed", type=int, default=0, help="random_state of the models (0)")
    p.add_argument("--box-um", type=float, default=2400.0,
                   help="side of the square where tubules are counted, um (2400)")
    p.add_argument("--box-margin-um", type=float, default=400.0,
                   help="tubules evaluated at least this far inside the box, um (400)")
    p.add_argument("--sectors", type=int, default=12, help="angular sectors of a wall (12)")
    p.add_argument("--min-sector-px", type=int, default=200,
                   help="wall pixels each sector needs for a tubule to count (200)")
    p.add_argument("--artefact-seeds", type=int, default=0,
                   help="held-out normal seeds rendered in every phenotype (default all)")
    p.add_argument("--artefact-fov-um", type=float, default=2400.0,
                   help="side of the window compared for tears, um (2400)")
    p.add_argument("--artefact-pixel-um", type=float, default=4.0,
                   help="pixel of that window, um (4)")
    p.add_argument("--out", type=Path, default=None, help="write difficulty.json and PNGs here")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return p


def main(argv: list[str] | None = None) -> int:
    from ml.common.errors import MLError
    from ml.common.fileio import to_jsonable, write_json
    from plans.errors import PlanError
    from simulators.errors import SimulatorError
    from srash_ophyd.cli.options import parse_grid
    from srash_ophyd.errors import SrashError

    parser = build_parser()
    args = parser.parse_args(argv)
    quick = QUICK_PATIENTS if args.quick else None
    args.train_patients = args.train_patients or quick or TRAIN_PATIENTS
    args.test_patients = args.test_patients or quick or TEST_PATIENTS
    args.grid = args.grid or ("1x1" if args.quick else "1x2")
    if args.quick and not args.artefact_seeds:
        args.artefact_seeds = 3
    if args.folds < 2:
        parser.error(f"--folds {args.folds}: expected at least 2")
    try:
        args.rows, args.cols = parse_grid(args.grid)
        n_train = len(patients("check", args.train_patients, args.train_seed_base))
        if n_train < args.folds:
            parser.error(f"--train-patients: {n_train} patients, fewer than --folds "
                         f"{args.folds}")
        res = run(args)
    except (SimulatorError, PlanError, MLError, SrashError) as e:
        parser.exit(2, f"{parser.prog}: error: {e}\n")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        res["figures"] = figures(res, args.out)
    res.pop("_plot")
    if args.out is not None:
        write_json(args.out / "difficulty.json", res)
    if args.json:
        print(json.dumps(to_jsonable(res), allow_nan=False))
    else:
        print("\n".join(summary_lines(res)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
