"""``srash quantify``: lipid droplets per seminiferous tubule and group statistics.

The SRASH paper's Fig. 2J-M as a catalog tool. Mosaic runs are selected by query
(``--cohort``, ``--diagnosis``, ``--phenotype``, ``--patient``, ``--sample``); every field
is rebuilt from its files and processed as the paper does (background subtraction, laser
power normalisation: :func:`ml.io.composite.field_channels`), tubules are delimited by the
lamina propria's SHG ring and the protein channel, lipid droplets are thresholded on the
2850 cm^-1 channel, and each tubule gets its two indexes (:mod:`ml.ldquant.quantify`): the mean
lipid intensity of its droplets (pure lipid = 1) and the droplets' area percentage.

Groups (by the scan's ``phenotype``): normal vs NOA (every NOA subtype), and SPT vs SPG
(uncommon subtypes such as SCO excluded). Statistics (:func:`ml.ldquant.stats.compare_groups`):
IQR outliers dropped per group, Shapiro-Wilk per group, Student's t-test (one-tailed in the
paper's hypothesised direction) when both are Gaussian, else Mann-Whitney U; p < 0.05.
Directions tested: NOA intensity > normal, NOA area < normal, SPG area < SPT; SPT vs SPG
intensity two-sided (no direction hypothesised). Tubules without droplets have no mean
intensity and enter only the area test.

Outputs: ``tubules.csv`` (or ``.parquet``), ``summary.json``, the four-panel
``ld_quantification.png``, overlays of the first fields, and an analysis run in the catalog
(``analysis="ld-quantification"``, linked to the source scans by ``scan_uids``) with a
``tubules`` stream (one event per tubule) and a ``tests`` stream (one event per test).
For simulated scans the tubule segmentation is scored against the simulator's truth
(:func:`srash_ophyd.simtruth.render_field_truth`): Dice per truth tubule.

Faults (:mod:`ml.io.frames`): runs without a stop document (killed scans) are
left out and fields with an unreadable frame file skipped, each with one warning line; the
summary lists them (``skipped_runs``, ``bad_frames``) and the runs used that stopped early
(``incomplete_runs``). ``--strict`` stops at the first instead.
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

from .options import CLIError, add_catalog_options

__all__ = ["add_parser", "run_quantify", "COMPARISONS", "group_of"]

#: (index, group a, group b, alternative for a vs b) in the paper's order (panels J-M).
COMPARISONS: tuple[tuple[str, str, str, str], ...] = (
    ("ld_mean_intensity", "normal", "NOA", "less"),
    ("ld_area_percent", "normal", "NOA", "greater"),
    ("ld_mean_intensity", "SPT", "SPG", "two-sided"),
    ("ld_area_percent", "SPT", "SPG", "greater"),
)

_SUBTYPE = {"NOA-SPT": "SPT", "NOA-SPG": "SPG"}


def group_of(phenotype: str | None) -> tuple[str | None, str | None]:
    """(normal-vs-NOA group, subtype group) of a scan's phenotype (None = not in one)."""
    if phenotype == "normal":
        return "normal", None
    if phenotype and phenotype.startswith("NOA"):
        return "NOA", _SUBTYPE.get(phenotype)
    return None, None


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "quantify", help="lipid droplets per tubule + group statistics (paper Fig. 2J-M)",
        description="Quantify lipid droplets per seminiferous tubule on the mosaic runs a "
                    "catalog query selects, compare normal vs NOA and SPT vs SPG, and write "
                    "a per-tubule table, a JSON summary, the four-panel PNG and an analysis "
                    "run linked to the scans.")
    q = p.add_argument_group("selection (combined with AND)")
    q.add_argument("--cohort", default=None, help="start.cohort")
    q.add_argument("--split", default=None, help="start.split")
    q.add_argument("--diagnosis", default=None, help="start.diagnosis, e.g. NOA")
    q.add_argument("--phenotype", nargs="+", default=None,
                   help="start.phenotype values, e.g. normal NOA-SPT NOA-SPG")
    q.add_argument("--patient", default=None, help="start.patient_id")
    q.add_argument("--sample", default=None, help="start.sample_id")
    p.add_argument("--ld-threshold", type=float, default=None,
                   help="lipid-droplet threshold on the 2850 cm^-1 channel in pure-lipid "
                        "units (default 0.26, ml.ldquant.droplets.DEFAULT_LD_THRESHOLD: best "
                        "Dice vs simulator truth)")
    p.add_argument("--format", choices=("csv", "parquet"), default="csv",
                   help="per-tubule table format (default csv)")
    p.add_argument("--overlays", type=int, default=4,
                   help="write overlay PNGs of the first N fields (default 4)")
    p.add_argument("--no-truth", action="store_true",
                   help="skip scoring tubules against simulator truth")
    p.add_argument("--out", type=Path, default=Path("reports/quantify"),
                   help="output folder (default reports/quantify)")
    p.add_argument("--no-store", action="store_true", help="do not write the analysis run")
    add_strict_option(p)
    add_catalog_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_quantify)


def _criteria(args: argparse.Namespace) -> dict[str, Any]:
    """The selection options given, as :func:`srash_ophyd.catalog.search_runs` criteria."""
    return {k: v for k, v in (("cohort", args.cohort), ("split", args.split),
                              ("diagnosis", args.diagnosis), ("patient", args.patient),
                              ("sample", args.sample), ("phenotype", args.phenotype))
            if v is not None}


def _select(client, args: argparse.Namespace, faults) -> list:
    from ..catalog import CatalogError, search_runs

    crit = _criteria(args)
    found = list(search_runs(client, plan="mosaic", **crit).values())
    runs = faults.runs(found)  # runs of killed scans: warned about and left out
    if not runs:
        killed = (f" ({len(found)} found, none with a stop document: run `srash catalog "
                  "repair`)") if found else ""
        raise CatalogError(f"no {'readable ' if found else ''}mosaic runs match "
                           f"{crit or 'the catalog'}{killed}: acquire some with `srash "
                           "cohort` (testis specimen)")
    return runs


def _check_pixels(geometry: list[tuple[Any, list]]) -> float:
    sizes = {round(t.pixel_um, 4): run.metadata["start"]["uid"][:8]
             for run, tiles in geometry for t in tiles}
    if len(sizes) > 1:
        raise CLIError("the selected runs mix pixel sizes (" + ", ".join(
            f"{p} um in run {u}" for p, u in sorted(sizes.items())) + "): LD areas and "
            "thresholds are not comparable across them; select runs of one pixel size")
    if not sizes:
        raise CLIError("the selected runs have no complete fields")
    return float(next(iter(sizes)))


def run_quantify(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from ml.io.composite import Calibration, field_channels
    from ml.io.frames import ReadFaults
    from ml.io.runs import run_tiles
    from ml.ldquant.quantify import QuantError, quant_overlay_png, quantify_field
    from ml.ldquant.tubules import tubule_dice

    from ..catalog import close_catalog, open_catalog
    from ..simtruth import render_field_truth

    t0 = time.perf_counter()
    if args.ld_threshold is not None and not 0.0 < args.ld_threshold < 10.0:
        raise CLIError(f"--ld-threshold {args.ld_threshold:g}: expected a positive lipid "
                         "level in pure-lipid units (default 0.26; droplets read ~0.3-1.3)")
    if args.overlays < 0:
        raise CLIError(f"--overlays {args.overlays}: expected a count >= 0")
    opts = {} if args.ld_threshold is None else {"ld_threshold": args.ld_threshold}
    faults = ReadFaults(args.strict)
    client = open_catalog(args.data_dir, uri=args.catalog, api_key=args.api_key)
    try:
        runs = _select(client, args, faults)
        # geometry first (no pixel data): pixel sizes are checked before any work, and only
        # one run's frames are held in memory at a time
        geometry = [(run, run_tiles(run, load=False)[0]) for run in runs]
        pixel_um = _check_pixels(geometry)
        rows: list[dict[str, Any]] = []
        dice_rows: list[dict[str, Any]] = []
        overlays: list[str] = []
        empty: list[dict[str, Any]] = []
        n_fields = sum(len(t) for _, t in geometry)
        bar = tqdm(total=n_fields, desc="quantify", unit="field", disable=args.quiet,
                   file=sys.stderr)
        for run, _ in geometry:
            tiles, skipped = run_tiles(run, faults=faults)
            bar.update(sum("paths" in k for k in skipped))  # fields of unreadable files
            start = run.metadata["start"]
            cal = Calibration.from_dict(start.get("calibration"))
            groups = group_of(start.get("phenotype"))
            for t in tiles:
                ch = field_channels(t.data[0], t.data[1], t.data[2], calibration=cal,
                                    shifts_cm1=t.shifts_cm1, pump_mw=t.pump_mw,
                                    stokes_mw=t.stokes_mw)
                try:
                    fq = quantify_field(ch[0], ch[1], ch[2], pixel_um=pixel_um, **opts)
                except QuantError as exc:  # e.g. a field of interstitium only: keep going
                    empty.append({"scan_uid": start["uid"], "field": t.index,
                                  "reason": str(exc)})
                    bar.update(1)
                    continue
                base = {"scan_uid": start["uid"], "sample_id": start.get("sample_id"),
                        "patient_id": start.get("patient_id"),
                        "phenotype": start.get("phenotype"),
                        "diagnosis": start.get("diagnosis"), "group": groups[0],
                        "subtype": groups[1], "field": t.index}
                rows += [{**base, **r} for r in fq.rows]
                truth = None if args.no_truth else render_field_truth(
                    start, x_um=t.x_um, y_um=t.y_um, nx=t.data.shape[2], ny=t.data.shape[1],
                    pixel_um=t.pixel_um)
                if truth is not None:
                    dice_rows += [{**base, **d} for d in tubule_dice(fq.tubules, truth[1],
                                                                      pixel_um=pixel_um)]
                if len(overlays) < args.overlays:
                    overlays.append(str(quant_overlay_png(
                        args.out / f"overlay_{start['uid'][:8]}_f{t.index}.png",
                        ch[0], ch[1], ch[2], fq)))
                bar.update(1)
        bar.close()
        if not rows:
            bad = len({(b["uid"], b["field"]) for b in faults.bad_frames})
            raise CLIError(f"no tubules found in the {n_fields} field(s) of the "
                             f"{len(runs)} selected run(s)"
                             + (f" ({bad} skipped: unreadable frame files)" if bad else "")
                             + ": nothing to quantify")
        tests, panels = _statistics(rows)
        summary = _summary(runs, rows, dice_rows, tests, pixel_um)
        summary["fields_without_tubules"] = empty
        summary.update(faults.summary())
        summary["fields_unreadable"] = len({(b["uid"], b["field"])
                                            for b in faults.bad_frames})
        summary["table"] = _write_table(args.out, rows, args.format)
        summary["images"] = {"figure": str(_figure_png(args.out, panels)) if panels else None,
                             "overlays": overlays}
        summary["analysis_uid"] = None if args.no_store else _store(client, runs, rows,
                                                                    tests, args)
    finally:
        close_catalog(client)
    summary["elapsed_s"] = round(time.perf_counter() - t0, 1)
    from ml.common.fileio import write_json

    summary["summary"] = str(write_json(args.out / "summary.json", summary))
    if args.json:
        print(json.dumps(summary))
    else:
        _print(summary)
    return 0


def _values(rows, index: str, key: str, group: str) -> np.ndarray:
    v = np.array([r[index] for r in rows if r[key] == group], float)
    return v[np.isfinite(v)]


def _statistics(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list]:
    """Every comparison of :data:`COMPARISONS` that has data; a group with too few
    tubules is reported with its error instead of a test."""
    from ml.ldquant.stats import StatsError, compare_groups

    tests, panels = [], []
    for index, a, b, alt in COMPARISONS:
        key = "group" if a == "normal" else "subtype"
        va, vb = _values(rows, index, key, a), _values(rows, index, key, b)
        entry: dict[str, Any] = {"index": index, "group_a": a, "group_b": b,
                                 "alternative": alt, "n_a_all": int(va.size),
                                 "n_b_all": int(vb.size)}
        try:
            res = compare_groups(va, vb, index=index, names=(a, b), alternative=alt)
        except StatsError as exc:
            entry["error"] = str(exc)
            tests.append(entry)
            continue
        entry.update(res.to_dict())
        tests.append(entry)
        panels.append((va, vb, res))  # raw values: the figure applies the same IQR rule
    return tests, panels


def _summary(runs, rows, dice_rows, tests, pixel_um) -> dict[str, Any]:
    per_group: dict[str, Any] = {}
    for key in ("group", "subtype"):
        for g in sorted({r[key] for r in rows if r[key]}):
            sel = [r for r in rows if r[key] == g]
            inten = np.array([r["ld_mean_intensity"] for r in sel], float)
            area = np.array([r["ld_area_percent"] for r in sel], float)
            per_group[g] = {
                "tubules": len(sel), "patients": len({r["patient_id"] for r in sel}),
                "tubules_with_lds": int(np.isfinite(inten).sum()),
                "median_ld_mean_intensity": float(np.nanmedian(inten))
                if np.isfinite(inten).any() else None,
                "median_ld_area_percent": float(np.median(area))}
    seg = None
    if dice_rows:
        d = np.array([r["dice"] for r in dice_rows], float)
        seg = {"truth_tubules": int(d.size), "mean_dice": float(d.mean()),
               "median_dice": float(np.median(d)), "min_dice": float(d.min()),
               "per_phenotype": {ph: float(np.mean([r["dice"] for r in dice_rows
                                                    if r["phenotype"] == ph]))
                                 for ph in sorted({r["phenotype"] for r in dice_rows})}}
    return {"runs": len(runs), "scan_uids": [r.metadata["start"]["uid"] for r in runs],
            "fields": len({(r["scan_uid"], r["field"]) for r in rows}),
            "tubules": len(rows), "pixel_um": pixel_um, "groups": per_group,
            "tests": tests, "tubule_segmentation_vs_truth": seg}


def _write_table(out: Path, rows: list[dict[str, Any]], fmt: str) -> str:
    import pandas as pd

    from ml.common.fileio import atomic_write

    out.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame(rows)
    path = out / f"tubules.{fmt}"
    if fmt == "csv":
        atomic_write(path, lambda tmp: df.to_csv(tmp, index=False))
    else:
        atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))
    return str(path)


def _figure_png(out: Path, panels) -> Path:
    from ml.ldquant.stats import quant_figure_png

    return quant_figure_png(out / "ld_quantification.png", panels,
                            title="Lipid droplets per seminiferous tubule")


def _store(client, runs, rows, tests, args) -> str:
    from ml.io.publish import publish_run

    from ..catalog import make_analysis_writer

    num = {"source": "srash quantify", "dtype": "number", "shape": []}
    text = {"source": "srash quantify", "dtype": "string", "shape": []}
    tub_keys = {"scan_uid": text, "sample_id": text, "phenotype": text, "field": num,
                "tubule_id": num, "area_um2": num, "ld_count": num, "ld_area_percent": num,
                "ld_mean_intensity": num}
    tub_rows = [{k: (r[k] if r[k] is not None else "") if tub_keys[k] is text
                 else float(r[k]) for k in tub_keys} for r in rows]
    test_keys = {"index": text, "group_a": text, "group_b": text, "test": text,
                 "alternative": text, "n_a": num, "n_b": num, "statistic": num,
                 "p_value": num}
    nan = float("nan")
    test_rows = [{k: (t.get(k) or "") if test_keys[k] is text
                  else (nan if t.get(k) is None else float(t[k])) for k in test_keys}
                 for t in tests if "error" not in t]
    query = _criteria(args)
    streams = {"tubules": (tub_keys, tub_rows)}
    if test_rows:
        streams["tests"] = (test_keys, test_rows)
    return publish_run(make_analysis_writer(client),
                       {"analysis": "ld-quantification", "plan_name": "srash-quantify",
                        "scan_uids": [r.metadata["start"]["uid"] for r in runs],
                        "query": query, "ld_threshold": args.ld_threshold}, streams)


def _print(s: dict[str, Any]) -> None:
    print(f"{s['runs']} scans, {s['fields']} fields, {s['tubules']} tubules "
          f"({s['pixel_um']} um/px); {len(s['fields_without_tubules'])} field(s) without a "
          "tubule skipped")
    if s["fields_unreadable"] or s["skipped_runs"]:
        print(f"skipped: {len(s['skipped_runs'])} run(s) without a stop document, "
              f"{s['fields_unreadable']} field(s) with unreadable frame files (warnings "
              "above)")
    for r in s["incomplete_runs"]:
        print(f"  run {r['uid'][:8]} is {r['state']}: only its finished fields are used")
    for g, v in s["groups"].items():
        mi = v["median_ld_mean_intensity"]
        print(f"  {g:7s} {v['tubules']:4d} tubules ({v['patients']} patients): median LD "
              f"intensity {'n/a' if mi is None else f'{mi:.3f}'}, median LD area "
              f"{v['median_ld_area_percent']:.2f} %")
    for t in s["tests"]:
        head = f"  {t['index']:18s} {t['group_a']} vs {t['group_b']}:"
        if "error" in t:
            print(f"{head} not tested ({t['error']})")
        else:
            print(f"{head} {t['test']} ({t['alternative']}) p = {t['p_value']:.3g} "
                  f"{t['stars']}  (n {t['n_a']} / {t['n_b']})")
    seg = s["tubule_segmentation_vs_truth"]
    if seg:
        print(f"tubule segmentation vs simulator truth: Dice mean {seg['mean_dice']:.3f}, "
              f"median {seg['median_dice']:.3f}, min {seg['min_dice']:.3f} "
              f"({seg['truth_tubules']} truth tubules)")
    print(f"table: {s['table']}\nsummary: {s['summary']}")
    print(f"figure: {s['images']['figure'] or 'none (no comparison had two groups of >= 3)'}")
    if s["analysis_uid"]:
        print(f"analysis run: {s['analysis_uid']}")
