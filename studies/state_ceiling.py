"""How well could any patch classifier do if it knew every tubule's spermatogenic state?
The ceiling the simulated patient mixtures put on LBNet-Dx's patch accuracy.

    .venv/bin/python -m studies.state_ceiling [--cohort test] [--json] [--out DIR]

A simulated patient is a mixture (``simulators.specimens.testis.config.MIXTURE_MEANS``):
an NOA-SPT patient's tubules are on average 60 % arrested at spermatocytes, 8 % at
spermatogonia, 12 % Sertoli-cell-only, 10 % hypospermatogenic, 4 % complete and 6 %
sclerotic. A 300 x 300 px patch (90 um at 0.3 um/px) sees parts of one to three tubules, so
many patches of an SPT patient show no SPT tubule at all, and every patch carries its
patient's label. This study measures, on the cohort's own fields (positions, pixel grid
and patch rule of ``srash cohort`` and ``srash evaluate``: 1200 px fields of 360 um on a
1 x 2 mosaic at the section centre, 300 px windows at a 100 px stride, patches more than
90 % tissue-free dropped, here judged on the truth labels instead of the image), what an
*oracle* that sees the simulator's truth can reach:

``majority``
    the class whose dominant state covers more of the patch's tubule area (normal vs NOA:
    complete + hypospermatogenic against the four NOA states; SPT vs SPG: arrest at
    spermatocytes against arrest at spermatogonia); a patch with neither scores 1/2.
``ideal``
    the Bayes decision from the states of the tubules in the patch (each tubule covering at
    least ``--min-tubule-fraction`` of the patch counts once), their likelihoods under each
    class's mean mixture (NOA: the phenotypes weighted as in the training cohorts), equal
    priors; a tie scores 1/2. It ignores the per-patient Dirichlet spread of the weights
    and everything that is not a tubule state (patient-level parameters, which for SPT vs
    SPG differ by a few per cent in their medians), so it is the ceiling *from the states*.

Both read only the specimen (``make_specimen(...).render``), no instrument and no catalog.
Sample level: the oracle's patch decisions (1 / 0 / 1/2) in LBNet-Dx's weighted vote
(weights from the truth: the tissue fraction of the patch) with its 0.8 confidence
threshold. Outputs: a summary (``--json``: one object) and with ``--out DIR``
``state_ceiling.json``. Numbers: docs/model_card.md, "What the mixtures allow".
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ml.dx.patches import MAX_BACKGROUND_FRACTION, PATCH_SIZE, PATCH_STRIDE, patch_grid

#: The Makefile's cohorts (``srash cohort`` numbering): name, counts, seed base.
COHORTS = {
    "test": ("test-v1", "normal=10,NOA-SPT=8,NOA-SPG=8,NOA-SCO=4", 50000),
    "train": ("train-v1", "normal=10,NOA-SPT=8,NOA-SPG=8,NOA-SCO=2", 1000),
}
#: NOA phenotypes' share of class 1 in the shipped model's training cohorts (train-v1 +
#: train-v2: SPT 24, SPG 24, SCO 6 patients).
NOA_TRAINING_SHARES = {"NOA-SPT": 24, "NOA-SPG": 24, "NOA-SCO": 6}
#: Tubule states that speak for each class of each task (the rest are neutral for
#: ``majority``).
TASKS: dict[str, dict[str, Any]] = {
    "normal-vs-noa": {"classes": (("normal",), ("NOA-SPT", "NOA-SPG", "NOA-SCO")),
                      "states": (("complete", "hypo"),
                                 ("arrest_spt", "arrest_spg", "sco", "sclerotic"))},
    "spt-vs-spg": {"classes": (("NOA-SPT",), ("NOA-SPG",)),
                   "states": (("arrest_spt",), ("arrest_spg",))},
}
FIELD_PIXELS, FIELD_UM, GRID = 1200, 360.0, (1, 2)
#: LBNet-Dx's window, stride and validity rule (ml.dx.patches)
PATCH, STRIDE, MAX_BACKGROUND = PATCH_SIZE, PATCH_STRIDE, MAX_BACKGROUND_FRACTION
VOTE_THRESHOLD = 0.8


def class_likelihoods(task: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-state probability of a tubule under class 0 and class 1 (STATE_NAMES order)."""
    from simulators.specimens.testis.config import MIXTURE_MEANS

    out = []
    for phenos in TASKS[task]["classes"]:
        w = np.array([NOA_TRAINING_SHARES.get(p, 1.0) if len(phenos) > 1 else 1.0
                      for p in phenos], float)
        m = sum(wi * np.asarray(MIXTURE_MEANS[p], float) for wi, p in zip(w, phenos))
        out.append(m / m.sum())
    return out[0], out[1]


def patient_patches(seed: int, phenotype: str) -> list[dict[str, Any]]:
    """Per valid patch of one patient's cohort fields: tubule pixels per state, the states
    of the tubules it shows (with their pixel counts) and its vote weight."""
    from simulators.specimens import make_specimen
    from simulators.specimens.base import Label, Window
    from simulators.specimens.testis.config import STATE_NAMES
    from studies.difficulty import field_positions

    spec = make_specimen("testis", seed, phenotype=phenotype)
    pos = field_positions(spec.default_center_um(), *GRID, FIELD_UM)
    out = []
    for x, y in pos:
        win = Window.centered(x, y, FIELD_UM, FIELD_PIXELS)
        comp = spec.render(win)
        h = FIELD_UM / 2
        state_of = {t.id: STATE_NAMES.index(t.state)
                    for t in spec.tubules_in(x - h, x + h, y - h, y + h)}
        inst = np.asarray(comp.instance)
        bg = np.asarray(comp.labels) == Label.BACKGROUND
        for r0, c0 in patch_grid(inst.shape, size=PATCH, stride=STRIDE):
            sl = (slice(r0, r0 + PATCH), slice(c0, c0 + PATCH))
            bgf = float(bg[sl].mean())
            if bgf > MAX_BACKGROUND:
                continue
            ids, counts = np.unique(inst[sl], return_counts=True)
            tubs = [(state_of[int(k)], int(c)) for k, c in zip(ids, counts)
                    if k and int(k) in state_of]
            area = np.zeros(len(STATE_NAMES))
            for s, c in tubs:
                area[s] += c
            out.append({"area": area, "tubules": tubs, "weight": 1.0 - bgf})
    return out


def decide(patch: dict[str, Any], task: str, lik: tuple[np.ndarray, np.ndarray],
           min_fraction: float) -> tuple[float, float]:
    """(P(class 1) of the majority oracle, of the ideal observer): 1, 0 or 1/2."""
    from simulators.specimens.testis.config import STATE_NAMES

    s0, s1 = TASKS[task]["states"]
    a0 = sum(patch["area"][STATE_NAMES.index(s)] for s in s0)
    a1 = sum(patch["area"][STATE_NAMES.index(s)] for s in s1)
    maj = 0.5 if a0 == a1 else float(a1 > a0)
    llr = sum(math.log(lik[1][s] / lik[0][s]) for s, c in patch["tubules"]
              if c >= min_fraction * PATCH * PATCH)
    ideal = 0.5 if abs(llr) < 1e-12 else float(llr > 0)
    return maj, ideal


def vote(p: np.ndarray, w: np.ndarray) -> int | None:
    """LBNet-Dx's weighted vote on oracle decisions: class 1, 0, or None (unidentifiable)."""
    s = float(np.sum(w * p) / np.sum(w))
    return 1 if s >= VOTE_THRESHOLD else 0 if s <= 1 - VOTE_THRESHOLD else None


def run(args: argparse.Namespace) -> dict[str, Any]:
    from studies.difficulty import patients

    name, counts, base = COHORTS[args.cohort]
    pts = patients(name, counts, base)
    per_patient = []
    for k, pt in enumerate(pts):
        if not args.json:
            print(f"[{k + 1}/{len(pts)}] {pt['sample_id']} ({pt['phenotype']})",
                  file=sys.stderr, flush=True)
        per_patient.append((pt, patient_patches(pt["seed"], pt["phenotype"])))
    res: dict[str, Any] = {"cohort": name, "counts": counts, "seed_base": base,
                           "min_tubule_fraction": args.min_tubule_fraction, "tasks": {}}
    for task, spec in TASKS.items():
        lik = class_likelihoods(task)
        cls = {p: c for c, phs in enumerate(spec["classes"]) for p in phs}
        rows = {"majority": [], "ideal": []}
        samples = {"majority": [0, 0, 0], "ideal": [0, 0, 0]}
        neutral = 0
        n = 0
        for pt, patches in per_patient:
            y = cls.get(pt["phenotype"])
            if y is None or not patches:
                continue
            dec = np.array([decide(p, task, lik, args.min_tubule_fraction) for p in patches])
            w = np.array([p["weight"] for p in patches])
            neutral += int(np.sum(dec[:, 0] == 0.5))
            n += len(patches)
            for k, key in enumerate(("majority", "ideal")):
                credit = dec[:, k] if y == 1 else 1.0 - dec[:, k]
                rows[key].append(credit)
                v = vote(dec[:, k], w)
                samples[key][0 if v == y else 1 if v is None else 2] += 1
        res["tasks"][task] = {
            "patches": n, "neutral_patches_fraction": neutral / n if n else math.nan,
            **{key: {"patch_accuracy": float(np.concatenate(r).mean()),
                     "per_patient_min": float(min(x.mean() for x in r)),
                     "samples_correct_unidentifiable_wrong": samples[key]}
               for key, r in rows.items()}}
    return res


def summary_lines(res: dict[str, Any]) -> list[str]:
    lines = [f"cohort {res['cohort']} ({res['counts']}), oracle patch accuracy from tubule "
             "states:"]
    for task, r in res["tasks"].items():
        lines.append(
            f"  {task}: {r['patches']} patches, {r['neutral_patches_fraction']:.1%} without "
            f"a deciding state; majority {r['majority']['patch_accuracy']:.3f} (worst "
            f"patient {r['majority']['per_patient_min']:.3f}, samples "
            f"{'/'.join(map(str, r['majority']['samples_correct_unidentifiable_wrong']))}); "
            f"ideal {r['ideal']['patch_accuracy']:.3f} (worst patient "
            f"{r['ideal']['per_patient_min']:.3f}, samples "
            f"{'/'.join(map(str, r['ideal']['samples_correct_unidentifiable_wrong']))})")
    return lines


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m studies.state_ceiling",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--cohort", choices=sorted(COHORTS), default="test",
                   help="the Makefile cohort whose patients are used (default test: "
                        "test-v1, seeds 50000+)")
    p.add_argument("--min-tubule-fraction", type=float, default=0.02,
                   help="a tubule counts for the ideal observer when it covers at least "
                        "this fraction of the patch (default 0.02)")
    p.add_argument("--out", type=Path, help="write state_ceiling.json here")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not 0.0 <= args.min_tubule_fraction < 1.0:
        print(f"error: --min-tubule-fraction {args.min_tubule_fraction}: expected a fraction "
              "in [0, 1)", file=sys.stderr)
        return 2
    res = run(args)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "state_ceiling.json").write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res) if args.json else "\n".join(summary_lines(res)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
