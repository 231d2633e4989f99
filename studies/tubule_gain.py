"""The field SRS gain of the tubule segmentation (``ml.ldquant.tubules.field_srs_gain``),
measured on simulated fields against the simulator's truth.

    .venv/bin/python -m studies.tubule_gain [--cohort train|test] [--out DIR] [--json]

Every patient of a Makefile cohort (``srash cohort`` numbering: ``train`` = ``train-v1``,
seeds 1000+, where the estimator and its reference level were chosen; ``test`` =
``test-v1``, seeds 50000+) is imaged as the cohort images it (1200 px fields of 360 um on
a 1 x 2 mosaic at the section centre, 3 averages; :func:`studies.difficulty.acquire`'s
path, no catalog), and per field:

* the estimated SRS level (``SRS_REFERENCE_LEVEL / gain``) over the truth: the median
  protein (2930 cm^-1 over pure lipid) of the germinal-epithelium cytoplasm (label
  CYTOPLASM); its spread over fields says how well the estimator follows the field's
  real level;
* the tubule Dice against the truth instances (:func:`ml.ldquant.tubules.tubule_dice`,
  every truth tubule of at least the minimum area) with the estimated gain and with
  ``srs_gain=1`` (fixed thresholds, the behaviour before 2026-12-01).

Outputs: a summary (``--json``: one object), progress on stderr, ``tubule_gain.json``
with ``--out``. Numbers: docs/measured/ldquant-tubules.md, "Field SRS gain".
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

COHORTS = {
    "train": ("train-v1", "normal=10,NOA-SPT=8,NOA-SPG=8,NOA-SCO=2", 1000),
    "test": ("test-v1", "normal=10,NOA-SPT=8,NOA-SPG=8,NOA-SCO=4", 50000),
}
PIXELS, FOV_UM, GRID, AVERAGES = 1200, 360.0, (1, 2), 3


def patient_fields(pt: dict[str, Any]) -> list[dict[str, Any]]:
    """Per field of one patient: level ratio and tubule Dice with and without the gain."""
    from ml.io.composite import Calibration, field_channels
    from ml.ldquant.tubules import (
        SRS_REFERENCE_LEVEL,
        estimate_srs_gain,
        segment_tubules,
        tubule_dice,
    )
    from simulators.instrument import build_simulator, noise_generators
    from simulators.specimens import make_specimen
    from simulators.specimens.base import Label
    from studies.difficulty import field_positions

    spec = make_specimen("testis", pt["seed"], phenotype=pt["phenotype"])
    pos = field_positions(spec.default_center_um(), *GRID, FOV_UM)
    sim = build_simulator(spec, pixels=PIXELS, fov_um=FOV_UM, averages=AVERAGES,
                          x_um=pos[0][0], y_um=pos[0][1])
    rng, _ = noise_generators(pt["noise_seed"])
    cal = Calibration.from_dict(sim.calibration(rng))
    px = FOV_UM / PIXELS
    out = []
    for k, (x, y) in enumerate(pos):
        sim.stage.move(x=x, y=y)
        f = sim.field(rng)
        il, ip, ib = (f.channel_names.index(c) for c in ("SRS_2850", "SRS_2930", "SHG"))
        lip, pro, shg = field_channels(
            f.raw[il], f.raw[ip], f.raw[ib], calibration=cal,
            shifts_cm1=[f.raman_shifts_cm1[il], f.raman_shifts_cm1[ip]],
            pump_mw=[f.pump_mw[il], f.pump_mw[ip]], stokes_mw=[f.stokes_mw[il], f.stokes_mw[ip]])
        level = SRS_REFERENCE_LEVEL / estimate_srs_gain(pro, shg, pixel_um=px)
        cyt = np.asarray(f.truth.labels) == Label.CYTOPLASM
        truth_level = float(np.median(pro[cyt])) if cyt.sum() > 1000 else float("nan")
        row = {"sample_id": pt["sample_id"], "phenotype": pt["phenotype"], "field": k,
               "level": level, "truth_cytoplasm_protein": truth_level}
        for key, gain in (("estimated", None), ("fixed", 1.0)):
            pred = segment_tubules(pro, shg, lip, pixel_um=px, srs_gain=gain)
            row[f"dice_{key}"] = [d["dice"] for d in tubule_dice(pred, f.truth.instance,
                                                                 pixel_um=px)]
        out.append(row)
    return out


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    ratio = np.array([r["level"] / r["truth_cytoplasm_protein"] for r in rows
                      if np.isfinite(r["truth_cytoplasm_protein"])])
    res: dict[str, Any] = {
        "fields": len(rows),
        "level": {"median": float(np.median([r["level"] for r in rows])),
                  "min": float(min(r["level"] for r in rows)),
                  "max": float(max(r["level"] for r in rows))},
        "level_over_truth": {"mean": float(ratio.mean()),
                             "cv": float(ratio.std() / ratio.mean()),
                             "min": float(ratio.min()), "max": float(ratio.max())}}
    for key in ("estimated", "fixed"):
        d = np.concatenate([r[f"dice_{key}"] for r in rows])
        res[f"dice_{key}"] = {"truth_tubules": int(d.size), "mean": float(d.mean()),
                              "median": float(np.median(d)),
                              "missed": int(np.sum(d < 0.05))}
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m studies.tubule_gain",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--cohort", choices=sorted(COHORTS), default="train",
                    help="train (train-v1, where the estimator was chosen; default) or "
                         "test (test-v1, held out)")
    ap.add_argument("--out", type=Path, help="write tubule_gain.json here")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    from studies.difficulty import patients

    name, counts, base = COHORTS[args.cohort]
    pts = patients(name, counts, base)
    rows: list[dict[str, Any]] = []
    for i, pt in enumerate(pts):
        print(f"[{i + 1}/{len(pts)}] {pt['sample_id']}", file=sys.stderr, flush=True)
        rows += patient_fields(pt)
    res = {"cohort": name, **summarise(rows), "per_field": rows}
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "tubule_gain.json").write_text(json.dumps(res, indent=1) + "\n")
    if args.json:
        print(json.dumps(res))
    else:
        s = res
        print(f"{name}: {s['fields']} fields; level {s['level']['median']:.3f} "
              f"({s['level']['min']:.3f}-{s['level']['max']:.3f}); level / truth cytoplasm "
              f"mean {s['level_over_truth']['mean']:.3f}, CV {s['level_over_truth']['cv']:.3f}")
        for key in ("estimated", "fixed"):
            d = s[f"dice_{key}"]
            print(f"  tubule Dice, {key} gain: mean {d['mean']:.3f}, median {d['median']:.3f}, "
                  f"{d['missed']} of {d['truth_tubules']} truth tubules missed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
