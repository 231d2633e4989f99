"""``srash cohort``: a simulated patient cohort acquired as real bluesky runs.

Every patient is one simulated testis section (specimen seed) scanned as one mosaic run
(``--grid``, no overlap by default so fields do not share tissue) on the simulated
instrument into the catalog. Start documents carry ``cohort``, ``split``, ``sample_id``,
``patient_id``, ``phenotype``, ``diagnosis``, ``specimen_seed`` and ``noise_seed``, so
``srash train`` / ``srash evaluate`` select their data by catalog query.

Seeds: patient ``k`` (0-based) of phenotype number ``j`` (order of ``--phenotypes``) gets
specimen seed ``seed_base + 1000 j + k`` and noise seed ``specimen seed + 500000``. Use
disjoint ``--seed-base`` ranges for training and held-out cohorts; ``srash evaluate``
refuses runs whose seed was used in training.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from typing import Any

from plans.contract import DEFAULT_SHIFTS_CM1, PHENOTYPES
from simulators.errors import SettingsError

from .options import add_catalog_options, parse_grid, parse_overlap

__all__ = ["add_parser", "parse_counts", "cohort_plan", "run_cohort"]

NOISE_OFFSET = 500_000


def parse_counts(text: str) -> dict[str, int]:
    """``"normal=8,NOA-SPT=6"`` -> ``{"normal": 8, "NOA-SPT": 6}`` (phenotype=patients)."""
    out: dict[str, int] = {}
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        m = re.fullmatch(r"([A-Za-z-]+)\s*[=:]\s*(\d+)", part)
        if not m:
            raise SettingsError(f"--patients {text!r} not understood: use PHENOTYPE=N[,...], "
                                "e.g. normal=8,NOA-SPT=6")
        ph, n = m.group(1), int(m.group(2))
        if ph not in PHENOTYPES:
            raise SettingsError(f"--patients: unknown phenotype {ph!r}; choose from "
                                f"{', '.join(PHENOTYPES)}")
        if ph in out:
            raise SettingsError(f"--patients: phenotype {ph!r} given twice")
        if not 1 <= n <= 1000:
            raise SettingsError(f"--patients {ph}={n}: expected 1..1000 patients")
        out[ph] = n
    if not out:
        raise SettingsError("--patients is empty: give PHENOTYPE=N[,...]")
    return out


def cohort_plan(name: str, counts: dict[str, int], seed_base: int) -> list[dict[str, Any]]:
    """One entry per patient: ids and seeds (module doc)."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name):
        raise SettingsError(f"--name {name!r}: use 1-64 letters, digits, '_', '.', '-'")
    out = []
    for j, ph in enumerate(PHENOTYPES):
        for k in range(counts.get(ph, 0)):
            seed = int(seed_base) + 1000 * j + k
            out.append({"sample_id": f"{name}-{ph}-{k:03d}", "patient_id": f"{name}-P{seed}",
                        "phenotype": ph, "seed": seed, "noise_seed": seed + NOISE_OFFSET})
    return out


def parse_stack(text: str) -> tuple[float, float, float]:
    """``"2800:3050:5"`` -> (2800.0, 3050.0, 5.0) cm^-1 (start, stop, step)."""
    try:
        a, b, c = (float(v) for v in str(text).split(":"))
    except ValueError:
        raise SettingsError(f"--stack {text!r} not understood: use START:STOP:STEP in "
                            "cm^-1, e.g. 2800:3050:5") from None
    if c == 0 or (b - a) * c < 0 or abs(b - a) / abs(c) > 1000:
        raise SettingsError(f"--stack {text!r}: the step must be non-zero, point from START "
                            "to STOP, and give at most 1000 bands")
    return a, b, c


def _store_truth(session, scan_uid: str) -> str:
    """Publish the simulator's labels of the current field as the scan's truth run."""
    from ml.io.truth import publish_truth

    from ..catalog import make_analysis_writer
    from ..simtruth import field_truth

    run = session.catalog[scan_uid]
    labels, window = field_truth(session.mic.sim)
    return publish_truth(make_analysis_writer(session.catalog), run.metadata["start"],
                         labels, window=window)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cohort", help="acquire a simulated patient cohort into the catalog",
        description="Simulate a cohort of patients (one testis section each) and scan every "
                    "patient as one mosaic run into the catalog, with cohort, split, sample, "
                    "patient, phenotype, diagnosis and seeds in the start document. Runs "
                    "already in the catalog (same cohort and sample) are skipped, so an "
                    "interrupted cohort can be resumed.")
    p.add_argument("--name", required=True, help="cohort name (start.cohort), e.g. train-v1")
    p.add_argument("--split", default="train", choices=("train", "test", "other"),
                   help="start.split (default train)")
    p.add_argument("--patients", default="normal=8,NOA-SPT=6,NOA-SPG=6,NOA-SCO=2",
                   help="patients per phenotype, PHENOTYPE=N,... (default "
                        "normal=8,NOA-SPT=6,NOA-SPG=6,NOA-SCO=2)")
    p.add_argument("--seed-base", type=int, default=1000,
                   help="first specimen seed (default 1000; see --help of the module)")
    p.add_argument("--specimen", choices=("testis", "cells"), default="testis",
                   help="testis: one mosaic run per patient (default); cells: one "
                        "hyperspectral stack run per sample at a cell, plus its truth run")
    p.add_argument("--samples", type=int, default=8,
                   help="with --specimen cells: number of samples (default 8)")
    p.add_argument("--stack", default="2800:3050:5",
                   help="with --specimen cells: START:STOP:STEP cm^-1 (default 2800:3050:5)")
    p.add_argument("--grid", default="1x2", help="fields per patient as ROWSxCOLS (1x2)")
    p.add_argument("--overlap", default="0", help="field overlap in percent (default 0)")
    p.add_argument("--pixels", type=int, default=None,
                   help="pixels per side (default 1200 for testis, 256 for cells)")
    p.add_argument("--fov-um", type=float, default=None,
                   help="field of view, um (default 360 for testis, 60 for cells)")
    p.add_argument("--averages", type=int, default=3, help="frame averages (default 3)")
    add_catalog_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print one JSON object (for scripts)")
    p.set_defaults(func=run_cohort)


def _existing(client, cohort: str) -> set[str]:
    from tiled.queries import Key

    found = client.search(Key("cohort") == cohort)
    return {r.metadata["start"].get("sample_id") for r in found.values()
            if r.metadata["start"].get("plan_name") in ("mosaic", "hyperspectral_stack")
            and (r.metadata.get("stop") or {}).get("exit_status") == "success"}


def run_cohort(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from simulators.specimens import make_specimen

    from ..catalog import close_catalog, open_catalog
    from ..session import make_session

    cells = args.specimen == "cells"
    if args.pixels is None:
        args.pixels = 256 if cells else 1200
    if args.fov_um is None:
        args.fov_um = 60.0 if cells else 360.0
    if cells:
        rows = cols = 1
        overlap = 0.0
        stack = parse_stack(args.stack)
        if not 1 <= args.samples <= 1000:
            raise SettingsError(f"--samples {args.samples}: expected 1..1000")
        patients = [{"sample_id": f"{args.name}-cells-{k:03d}",
                     "patient_id": f"{args.name}-C{args.seed_base + k}", "phenotype": None,
                     "seed": args.seed_base + k, "noise_seed": args.seed_base + k + NOISE_OFFSET}
                    for k in range(args.samples)]
    else:
        counts = parse_counts(args.patients)
        rows, cols = parse_grid(args.grid)
        overlap = parse_overlap(args.overlap)
        patients = cohort_plan(args.name, counts, args.seed_base)
    client = open_catalog(args.data_dir, uri=args.catalog, api_key=args.api_key, create=True)
    try:
        done = _existing(client, args.name)
    finally:
        close_catalog(client)
    t0 = time.perf_counter()
    runs, skipped, failed = [], [], []
    interrupted = None
    bar = tqdm(patients, desc=f"cohort {args.name}", unit="patient", disable=args.quiet,
               file=sys.stderr)
    for pt in bar:
        if pt["sample_id"] in done:
            skipped.append(pt["sample_id"])
            continue
        spec = make_specimen(args.specimen, pt["seed"], phenotype=pt["phenotype"])
        cx, cy = spec.default_center_um()
        session = make_session(
            data_dir=args.data_dir, catalog_uri=args.catalog, api_key=args.api_key,
            specimen=args.specimen, phenotype=pt["phenotype"], seed=pt["seed"],
            noise_seed=pt["noise_seed"], progress=False, pixels=args.pixels,
            fov_um=args.fov_um, averages=args.averages, x_um=cx, y_um=cy)
        outcome = None
        try:
            md = session.run_md(sample_id=pt["sample_id"], patient_id=pt["patient_id"],
                                cohort=args.name, split=args.split)
            mic = session.mic
            if cells:
                outcome = session.run(session.plans.hyperspectral_stack(
                    [mic], mic.raman, start_cm1=stack[0], stop_cm1=stack[1],
                    step_cm1=stack[2], md=md))
            else:
                outcome = session.run(session.plans.mosaic(
                    [mic], mic.raman, mic.xyz.x, mic.xyz.y, rows=rows, cols=cols,
                    fov_um=args.fov_um, overlap=overlap, center_um=(cx, cy),
                    shifts_cm1=DEFAULT_SHIFTS_CM1, md=md))
            uid = outcome.uids[0] if outcome.uids else None
            if outcome.code:  # the run is closed; a device fault ends that patient only
                failed.append({**pt, "error": outcome.message})
            elif cells:
                runs.append({**pt, "uid": uid,
                             "truth_uid": _store_truth(session, uid) if uid else None})
            else:
                runs.append({**pt, "uid": uid})
        finally:
            session.close()
        # Ctrl-C / SIGTERM: stop the cohort; running the command again resumes it
        if outcome is not None and outcome.interrupted:
            interrupted = outcome
            break
    elapsed = time.perf_counter() - t0
    summary = {"cohort": args.name, "split": args.split, "specimen": args.specimen,
               "patients": len(patients),
               "acquired": len(runs), "skipped_existing": len(skipped), "failed": failed,
               "fields_per_patient": rows * cols, "elapsed_s": round(elapsed, 2),
               "interrupted": interrupted.message if interrupted else None, "runs": runs}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"cohort {args.name} ({args.split}): {len(runs)} patients acquired, "
              f"{len(skipped)} already in the catalog, {len(failed)} failed, "
              f"{rows * cols} fields each, {elapsed:.1f} s")
        for f in failed:
            print(f"  failed: {f['sample_id']}: {f['error']}", file=sys.stderr)
    if interrupted:
        print(f"srash: cohort {args.name} {interrupted.message}; the patients acquired so far "
              "are kept (the interrupted one with its finished tiles); run the same command "
              "again to go on", file=sys.stderr)
        return interrupted.code
    return 1 if failed else 0
