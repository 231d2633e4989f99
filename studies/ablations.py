"""Channel ablations at full training length: one table per task from the evaluation
reports of the subset models (``make ablations``) and of the shipped three-channel model.

    .venv/bin/python -m studies.ablations [--reports reports] [--json] [--out DIR]

Reads ``<reports>/ablations/<task>/<subset>/evaluation.json`` (``srash evaluate --weights
reports/ablations/lbnet_<task>_<subset>.pt``); for RGB the three-channel model of the
same recipe (``<reports>/ablations/<task>/RGB``) or, without it, the shipped model's
``<reports>/<task>/evaluation.json`` (``make evaluate``); prints a Markdown table per
task (patch accuracy and AUC on held-out patches, samples correct / unidentifiable /
wrong), says whether RGB beats every subset and which single channel is weakest, and with
``--out`` writes ``ablations_<task>.png``. Missing reports are listed, not guessed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

SUBSETS = ("R", "G", "B", "RG", "RB", "GB", "RGB")
TASKS = ("normal-vs-noa", "spt-vs-spg")


def report_path(reports: Path, task: str, subset: str) -> Path:
    """Where the evaluation of ``task``'s ``subset`` model lies. RGB: the three-channel
    model trained with the subsets' recipe (``reports/ablations/<task>/RGB``, ``make
    ablations``) when it is there, else the shipped model's ``make evaluate`` report (a
    different recipe: say so when reading the table)."""
    same_recipe = reports / "ablations" / task / subset / "evaluation.json"
    if subset == "RGB" and not same_recipe.exists():
        return reports / task / "evaluation.json"
    return same_recipe


def row(rep: dict[str, Any]) -> dict[str, Any]:
    """The numbers of one evaluation report the table shows."""
    pm, sm = rep["patch"], rep["sample"]
    return {"accuracy": pm["accuracy"], "roc_auc": pm["roc_auc"],
            "correct": sm["correct"], "unidentifiable": sm["unidentifiable"],
            "wrong": sm["wrong"], "n_samples": sm["n_samples"],
            "weights": rep.get("weights")}


def collect(reports: Path, task: str) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """``({subset: row}, [missing report paths])`` of one task."""
    rows, missing = {}, []
    for sub in SUBSETS:
        p = report_path(reports, task, sub)
        try:
            rows[sub] = row(json.loads(p.read_text()))
        except FileNotFoundError:
            missing.append(str(p))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise SystemExit(f"error: {p}: not an evaluation report ({exc})") from None
    return rows, missing


def verdict(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Whether RGB has the best patch accuracy (over the subsets measured, which are named
    when not all six are) and which single channel is weakest (only when R, G and B were
    all measured: the weakest of fewer would be a guess)."""
    out: dict[str, Any] = {}
    if "RGB" in rows and len(rows) > 1:
        out["rgb_beats_every_subset"] = all(rows["RGB"]["accuracy"] > r["accuracy"]
                                            for s, r in rows.items() if s != "RGB")
        if len(rows) < len(SUBSETS):
            out["subsets_compared"] = [s for s in SUBSETS if s in rows and s != "RGB"]
    singles = {s: rows[s]["accuracy"] for s in ("R", "G", "B") if s in rows}
    if len(singles) == 3:
        out["weakest_single_channel"] = min(singles, key=lambda s: singles[s])
    return out


def markdown(task: str, rows: dict[str, dict[str, Any]]) -> str:
    lines = [f"### {task}", "", "| channels | patch accuracy | AUC | samples correct / "
             "unidentifiable / wrong |", "|---|---|---|---|"]
    for sub in SUBSETS:
        if sub in rows:
            r = rows[sub]
            lines.append(f"| {sub} | {r['accuracy']:.3f} | {r['roc_auc']:.3f} | "
                         f"{r['correct']} / {r['unidentifiable']} / {r['wrong']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m studies.ablations", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reports", type=Path, default=Path("reports"),
                    help="folder of the evaluation reports (default reports)")
    ap.add_argument("--out", type=Path, default=None, help="write ablations_<task>.png here")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    res: dict[str, Any] = {}
    for task in TASKS:
        rows, missing = collect(args.reports, task)
        res[task] = {"rows": rows, "missing": missing, **verdict(rows)}
        if args.out is not None and rows:
            from ml.common.plotting import bars_png

            args.out.mkdir(parents=True, exist_ok=True)
            bars_png(args.out / f"ablations_{task}.png",
                     {s: {"accuracy": r["accuracy"], "roc_auc": r["roc_auc"]}
                      for s, r in rows.items()}, metric_labels={"roc_auc": "AUC"},
                     title=f"{task}: channel subsets, full-length training, held-out")
    if args.json:
        print(json.dumps(res))
        return 0
    for task, r in res.items():
        print(markdown(task, r["rows"]))
        for k in ("rgb_beats_every_subset", "subsets_compared", "weakest_single_channel"):
            if k in r:
                print(f"{k.replace('_', ' ')}: {r[k]}")
        for m in r["missing"]:
            print(f"missing: {m}", file=sys.stderr)
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
