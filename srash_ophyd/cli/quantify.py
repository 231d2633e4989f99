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

The workflow is :func:`ml.ldquant.workflow.quantify_cohort` (groups and comparisons:
:func:`ml.ldquant.workflow.group_of`, :data:`ml.ldquant.workflow.COMPARISONS`); this command
selects the runs, reads their fields, passes the simulator's truth and the catalog's
analysis-run writer in, and prints the summary.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from .options import CLIError, add_catalog_options, add_strict_option

__all__ = ["add_parser", "run_quantify"]


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
    p.add_argument("--resample", type=int, default=1000,
                   help="replicates of the resampling study at the paper's tubule counts "
                        "(34 normal / 27 NOA, 14 SPT / 13 SPG): how often each comparison is "
                        "significant at that n, and Cohen's d (default 1000; 0 = off)")
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


def _fields(geometry: list[tuple[Any, list]], faults, bar):
    """The fields of the runs, read one run at a time (:func:`ml.io.runs.run_tiles`), as
    :class:`ml.ldquant.workflow.QuantField` objects; fields with unreadable files advance
    ``bar``."""
    from ml.io.runs import run_tiles
    from ml.ldquant.workflow import quant_field

    for run, _ in geometry:
        tiles, skipped = run_tiles(run, faults=faults)
        bar.update(sum("paths" in k for k in skipped))  # fields of unreadable files
        start = run.metadata["start"]
        for t in tiles:
            yield quant_field(start, t)


def _truth(field):
    """The simulator's truth tubule instances of a field (None for real data)."""
    from ..simtruth import render_field_truth

    t = render_field_truth(field.scan, x_um=field.x_um, y_um=field.y_um,
                           nx=field.channels.shape[2], ny=field.channels.shape[1],
                           pixel_um=field.pixel_um)
    return None if t is None else t[1]


def run_quantify(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from ml.io.frames import ReadFaults
    from ml.io.runs import run_tiles
    from ml.ldquant.workflow import QuantSettings, common_pixel_um, quantify_cohort

    from ..catalog import close_catalog, make_analysis_writer, open_catalog

    t0 = time.perf_counter()
    if args.ld_threshold is not None and not 0.0 < args.ld_threshold < 10.0:
        raise CLIError(f"--ld-threshold {args.ld_threshold:g}: expected a positive lipid "
                         "level in pure-lipid units (default 0.26; droplets read ~0.3-1.3)")
    if args.overlays < 0:
        raise CLIError(f"--overlays {args.overlays}: expected a count >= 0")
    if args.resample < 0:
        raise CLIError(f"--resample {args.resample}: expected a count >= 0 (0 = off)")
    settings = QuantSettings(ld_threshold=args.ld_threshold, table_format=args.format,
                             overlays=args.overlays, query=_criteria(args),
                             resample=args.resample)
    faults = ReadFaults(args.strict)
    client = open_catalog(args.data_dir, uri=args.catalog, api_key=args.api_key)
    try:
        runs = _select(client, args, faults)
        # geometry first (no pixel data): pixel sizes are checked before any work, and only
        # one run's frames are held in memory at a time
        geometry = [(run, run_tiles(run, load=False)[0]) for run in runs]
        pixel_um = common_pixel_um((run.metadata["start"]["uid"], t.pixel_um)
                                   for run, tiles in geometry for t in tiles)
        n_fields = sum(len(t) for _, t in geometry)
        bar = tqdm(total=n_fields, desc="quantify", unit="field", disable=args.quiet,
                   file=sys.stderr)
        try:
            summary = quantify_cohort(
                _fields(geometry, faults, bar),
                scan_uids=[r.metadata["start"]["uid"] for r in runs],
                pixel_um=pixel_um, n_fields=n_fields, report_dir=args.out,
                settings=settings, truth=None if args.no_truth else _truth,
                publish=None if args.no_store else make_analysis_writer(client),
                faults=faults, progress=lambda stage, rec: bar.update(1), clock_start=t0)
        finally:
            bar.close()
    finally:
        close_catalog(client)
    if args.json:
        print(json.dumps(summary))
    else:
        _print(summary)
    return 0


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
            d = t.get("cohens_d")
            dtext = "" if d is None else \
                f", d = {d:.2f} [{t['d_low']:.2f}, {t['d_high']:.2f}]"
            print(f"{head} {t['test']} ({t['alternative']}) p = {t['p_value']:.3g} "
                  f"{t['stars']}  (n {t['n_a']} / {t['n_b']}{dtext})")
    for r in s.get("resampling") or []:
        head = f"  at the paper's n {r['n_a']} / {r['n_b']}: {r['index']} {r['group_a']} vs " \
               f"{r['group_b']}:"
        if "error" in r:
            print(f"{head} not resampled ({r['error']})")
        elif r["reps"]:
            print(f"{head} p < 0.05 in {100 * r['fraction_p_below_alpha']:.0f} % of "
                  f"{r['reps']} draws, median p {r['p_median']:.2g}, d {r['d_median']:.2f} "
                  f"[{r['d_2.5']:.2f}, {r['d_97.5']:.2f}]")
    seg = s["tubule_segmentation_vs_truth"]
    if seg:
        print(f"tubule segmentation vs simulator truth: Dice mean {seg['mean_dice']:.3f}, "
              f"median {seg['median_dice']:.3f}, min {seg['min_dice']:.3f} "
              f"({seg['truth_tubules']} truth tubules)")
    print(f"table: {s['table']}\nsummary: {s['summary']}")
    print(f"figure: {s['images']['figure'] or 'none (no comparison had two groups of >= 3)'}")
    if s["analysis_uid"]:
        print(f"analysis run: {s['analysis_uid']}")
