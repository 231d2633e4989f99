"""Closed-loop diagnosis versus the full fixed mosaic on held-out simulated patients (issue 18;
``docs/closed_loop.md``). Run outside CI:

    .venv/bin/python -m studies.closed_loop run --patients 20 --out docs/closed_loop
    .venv/bin/python -m studies.closed_loop report --out docs/closed_loop
    .venv/bin/python -m studies.closed_loop montecarlo --out docs/closed_loop

``run``: for each patient (specimen seeds ``--seed-base`` + i, new seeds never used by the
training or test cohorts, phenotypes interleaved so every prefix covers all four; noise seed
= seed + 500000 as the cohorts), two sessions on the same section with the shipped
normal-vs-NOA weights running live: (1) the full ``--grid`` mosaic (:func:`plans.mosaic`,
every tile), (2) the closed loop (:func:`plans.adaptive.diagnose`: survey + ranked fields,
stop rule defaults). Each result is appended to ``<out>/results.jsonl`` as it finishes (a
killed study keeps what it finished; ``--resume`` skips patients already there). Each
patient's data directory is deleted after its two runs (``--keep-data`` keeps it).

``report``: the table (instrument time to diagnosis, fields, sample accuracy, unidentifiable
and wrong rates for both) and ``closed_loop.png``; says whether the targets are met.

``montecarlo``: the minimum-evidence table of the stop rule (``ml.dx.montecarlo``: the rate
of a confident vote for the wrong class at n patches for a patient the classifier reads at
chance, and at the measured patch accuracy).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PHENOTYPES = ("normal", "NOA-SPT", "NOA-SPG", "NOA-SCO")


def patients(n: int, seed_base: int) -> list[tuple[int, str]]:
    """``n`` (seed, phenotype), phenotypes interleaved."""
    return [(seed_base + i, PHENOTYPES[i % len(PHENOTYPES)]) for i in range(n)]


ARMS = ("full", "loop", "loop-grid", "trajectory")


class StudyInterrupted(Exception):
    """A patient's run ended by a signal (exit code 128 + N, or 130 for Ctrl-C): the study
    stops instead of going on to the next patient."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def one_patient(seed: int, phenotype: str, *, grid: tuple[int, int], data_root: Path,
                keep: bool, dx: Any, rule: dict[str, Any],
                arms: tuple[str, ...] = ("full", "loop")) -> dict[str, Any]:
    """Both diagnoses of one patient (module doc)."""
    from plans.adaptive import DiagnosisFeedback
    from plans.contract import DEFAULT_SHIFTS_CM1, diagnosis_of
    from simulators.specimens import make_specimen
    from srash_ophyd.closedloop import attach_closed_loop, run_diagnosis, run_fixed_mosaic
    from srash_ophyd.session import attach_live_dx, make_session

    spec = make_specimen("testis", seed, phenotype=phenotype)
    cx, cy = spec.default_center_um()
    rows, cols = grid
    geo = dict(rows=rows, cols=cols, fov_um=360.0, overlap=0.1, center_um=(cx, cy),
               shifts_cm1=DEFAULT_SHIFTS_CM1)
    out: dict[str, Any] = {"seed": seed, "phenotype": phenotype,
                           "truth": diagnosis_of(phenotype), "grid": f"{rows}x{cols}"}
    for mode in arms:
        d = Path(tempfile.mkdtemp(prefix=f"cl-{seed}-{mode}-", dir=data_root))
        t0 = time.perf_counter()
        s = make_session(data_dir=d, specimen="testis", phenotype=phenotype, seed=seed,
                         noise_seed=seed + 500_000, progress=False, pixels=1200,
                         fov_um=360.0, averages=3, x_um=cx, y_um=cy)
        try:
            md = s.run_md(sample_id=f"CL-{phenotype}-{seed}", patient_id=f"P-{seed}",
                          cohort="closed-loop-study", split="study")
            if mode == "full":
                live = attach_live_dx(s, dx)
                r = run_fixed_mosaic(s, live, md=md, **geo)
            else:
                fb = DiagnosisFeedback()
                live = attach_closed_loop(s, dx, fb)
                # trajectory: the ranked loop that never stops early, so any stop rule
                # can be replayed on it offline (replay()); same seeds -> same fields
                never = {"min_patches": 10**9, "futility": False,
                         "max_fields": rule["max_fields"]} if mode == "trajectory" else {}
                r = run_diagnosis(s, live, feedback=fb, md=md, ranked=mode != "loop-grid",
                                  **geo, **{**rule, **never})
                r = {k: r[k] for k in ("uid", "diagnosis", "probabilities", "n_patches",
                                       "stop_reason", "instrument_time_s",
                                       "survey_instrument_time_s", "exit_code")} | {
                    "fields": len(r["fields"]), "field_log": r["fields"]}
            live.close(60)
            code = int(r.get("exit_code") or 0)
            if code >= 128:  # SIGTERM / SIGHUP / Ctrl-C ended the run: stop the study too
                raise StudyInterrupted(code, str(r.get("message") or f"exit code {code}"))
        finally:
            s.close()
            if not keep:
                shutil.rmtree(d, ignore_errors=True)
        r["wall_s"] = round(time.perf_counter() - t0, 1)
        out[mode] = r
    return out


def cmd_run(args: argparse.Namespace) -> int:
    from srash_ophyd.cli.options import load_dx

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    arms = tuple(a.strip() for a in args.arms.split(","))
    bad = [a for a in arms if a not in ARMS]
    if bad:
        print(f"--arms {args.arms!r}: unknown {bad}; allowed: {', '.join(ARMS)}",
              file=sys.stderr)
        return 2
    res_path = out / ("results.jsonl" if arms == ("full", "loop") else
                      f"results-{'-'.join(arms)}.jsonl")
    done = set()
    if args.resume and res_path.exists():
        done = {json.loads(line)["seed"] for line in res_path.read_text().splitlines() if line}
    dx = load_dx(args.weights, "normal-vs-noa")
    rows, cols = (int(v) for v in args.grid.lower().split("x"))
    rule = {"max_fields": args.max_fields, "min_patches": args.min_patches,
            "min_fields": args.min_fields, "futility": not args.no_futility}
    data_root = Path(args.data_root)
    data_root.mkdir(parents=True, exist_ok=True)
    from srash_ophyd.signals import Terminated, exit_status_for, terminate_gracefully

    for seed, ph in patients(args.patients, args.seed_base):
        if seed in done:
            continue
        t = time.perf_counter()
        try:
            with terminate_gracefully():
                r = one_patient(seed, ph, grid=(rows, cols), data_root=data_root,
                                keep=args.keep_data, dx=dx, rule=rule, arms=arms)
        except (Terminated, StudyInterrupted, KeyboardInterrupt) as exc:
            code = (exc.code if isinstance(exc, StudyInterrupted) else
                    exit_status_for(exc) if isinstance(exc, Terminated) else 130)
            print(f"study stopped at patient {seed} ({exc or 'interrupted'}); the "
                  f"{len(done)} finished patient(s) are in {res_path}; rerun with --resume "
                  "to go on", file=sys.stderr)
            return code
        done.add(seed)
        r["rule"] = rule
        with open(res_path, "a") as fh:
            fh.write(json.dumps(r) + "\n")
        what = "; ".join(f"{a} {r[a]['diagnosis']} ({r[a].get('stop_reason')}, "
                         f"{r[a]['fields']} fields) {r[a]['instrument_time_s']:.0f} s"
                         for a in arms)
        print(f"{seed} {ph}: {what}; {time.perf_counter() - t:.0f} s wall", flush=True)
    return 0


def outcome(diagnosis: str, truth: str) -> str:
    if diagnosis == truth:
        return "correct"
    return "unidentifiable" if diagnosis in ("unidentifiable", "no-patches") else "wrong"


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per mode: n, instrument time (mean, median), fields, correct / unidentifiable /
    wrong counts; paired: time ratio, decisions that differ, wrong only in the loop."""
    import numpy as np

    out: dict[str, Any] = {"n": len(rows)}
    for mode in [m for m in ARMS if all(m in r for r in rows)]:
        t = np.array([r[mode]["instrument_time_s"] for r in rows], float)
        f = np.array([r[mode]["fields"] for r in rows], float)
        oc = [outcome(r[mode]["diagnosis"], r["truth"]) for r in rows]
        out[mode] = {"time_mean_s": float(t.mean()), "time_median_s": float(np.median(t)),
                     "fields_mean": float(f.mean()), "correct": oc.count("correct"),
                     "unidentifiable": oc.count("unidentifiable"), "wrong": oc.count("wrong"),
                     "accuracy": oc.count("correct") / len(rows)}
    out["time_ratio_of_means"] = out["full"]["time_mean_s"] / out["loop"]["time_mean_s"]
    ratios = [r["full"]["instrument_time_s"] / r["loop"]["instrument_time_s"] for r in rows]
    out["time_ratio_median"] = float(np.median(ratios))
    out["extra_wrong"] = sum(outcome(r["loop"]["diagnosis"], r["truth"]) == "wrong"
                             and outcome(r["full"]["diagnosis"], r["truth"]) != "wrong"
                             for r in rows)
    out["disagree"] = sum(r["loop"]["diagnosis"] != r["full"]["diagnosis"] for r in rows)
    out["stop_reasons"] = {k: sum(r["loop"]["stop_reason"] == k for r in rows)
                           for k in ("confident", "futile", "budget", "exhausted")}
    out["targets"] = {
        "3x_less_time": out["time_ratio_of_means"] >= 3.0,
        "same_accuracy": out["loop"]["correct"] >= out["full"]["correct"],
        "no_additional_wrong": out["extra_wrong"] == 0}
    return out


def plot(rows: list[dict[str, Any]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"correct": "tab:green", "unidentifiable": "tab:gray", "wrong": "tab:red"}
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.5), dpi=100)
    for i, r in enumerate(rows):
        for mode, marker, dx in (("full", "s", -0.15), ("loop", "o", 0.15)):
            oc = outcome(r[mode]["diagnosis"], r["truth"])
            a.scatter(i + dx, r[mode]["instrument_time_s"] / 60, marker=marker,
                      color=colours[oc], edgecolor="k", s=40, zorder=3)
        a.plot([i - 0.15, i + 0.15], [r["full"]["instrument_time_s"] / 60,
                                      r["loop"]["instrument_time_s"] / 60], "k-", lw=0.5)
    a.set_yscale("log")
    a.set_xticks(range(len(rows)))
    a.set_xticklabels([f"{r['seed']}\n{r['phenotype']}" for r in rows], rotation=90,
                      fontsize=6)
    a.set_ylabel("instrument time to diagnosis (min, log)")
    a.set_title("square: full mosaic, circle: closed loop")
    for k, c in colours.items():
        a.scatter([], [], color=c, edgecolor="k", label=k)
    a.legend(fontsize=8)
    for r in rows:
        log = r["loop"].get("field_log") or []
        xs = [f["instrument_time_s"] / 60 for f in log if f.get("instrument_time_s")]
        ys = [f["vote"] if f.get("vote") is not None else float("nan") for f in log
              if f.get("instrument_time_s")]
        oc = outcome(r["loop"]["diagnosis"], r["truth"])
        b.plot(xs, ys, "-o", color=colours[oc], ms=3, lw=1, alpha=0.8)
    b.axhline(0.8, color="k", ls="--", lw=1)
    b.set_xlabel("instrument time (min)")
    b.set_ylabel("running vote, top class")
    b.set_title("closed loop: the vote after each field")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def top(probabilities: dict[str, float] | None) -> str:
    """``"NOA 0.812"``: the vote's leading class and its probability."""
    if not probabilities:
        return "no vote"
    k = max(probabilities, key=lambda c: probabilities[c])
    return f"{k} {probabilities[k]:.3f}"


def replay(field_log: list[dict[str, Any]], rule: dict[str, Any], *,
           survey_s: float) -> dict[str, Any]:
    """The closed loop's outcome under stop ``rule`` (:class:`plans.adaptive.StopRule`
    keyword arguments), replayed on a trajectory (the ranked fields of one patient, never
    stopped early): exact, because the fields and their order do not depend on the rule
    until it stops. Returns ``diagnosis``, ``stop_reason``, ``fields``,
    ``instrument_time_s``."""
    from plans.adaptive import StopRule

    r = StopRule(**rule)
    results: list[dict[str, Any]] = []
    n_with = 0
    total = 0
    for i, f in enumerate(field_log):
        names = list((f["vote_probabilities"] or f["field_probabilities"] or {}).keys())
        n_with += int(f["n_patches"] > 0)
        total += int(f["n_patches"])
        results.append({
            "class_names": names, "n_patches": f["n_patches"], "vote_n_patches": total,
            "n_fields": n_with,
            "vote_probabilities": list(f["vote_probabilities"].values())
            if f["vote_probabilities"] else None,
            "field_probabilities": list(f["field_probabilities"].values())
            if f["field_probabilities"] else None})
        # tissue tiles left: the trajectory ran to the budget or to the last tissue tile
        action, reason, label = r.decide(results, left=len(field_log) - i - 1)
        if action == "stop" or i + 1 == len(field_log):
            return {"diagnosis": label, "stop_reason": reason, "fields": i + 1,
                    "instrument_time_s": f["instrument_time_s"]}
    return {"diagnosis": "unidentifiable", "stop_reason": "exhausted", "fields": 0,
            "instrument_time_s": survey_s}


#: the stop rules compared on the tuning cohort (cmd_tune); the first is the default
RULES = {
    "default (min 2 fields, 60 patches)": {},
    "min 3 fields": {"min_fields": 3},
    "min 4 fields": {"min_fields": 4},
    "threshold 0.85": {"threshold": 0.85},
    "min 3 fields, threshold 0.85": {"min_fields": 3, "threshold": 0.85},
}


def cmd_tune(args: argparse.Namespace) -> int:
    """Each rule of :data:`RULES` replayed on the trajectories of ``--trajectories``: time,
    fields, correct / unidentifiable / wrong."""
    rows = [json.loads(line) for line in Path(args.trajectories).read_text().splitlines()
            if line]
    base = rows[0].get("rule", {})
    table = {}
    for name, over in RULES.items():
        rule = {"max_fields": base.get("max_fields", 8), "min_patches": 60, "min_fields": 2,
                "futility": True, **over}
        outs = [replay(r["trajectory"]["field_log"], rule,
                       survey_s=r["trajectory"]["survey_instrument_time_s"]) for r in rows]
        oc = [outcome(o["diagnosis"], r["truth"]) for o, r in zip(outs, rows)]
        table[name] = {"rule": rule, "n": len(rows),
                       "time_mean_s": sum(o["instrument_time_s"] for o in outs) / len(outs),
                       "fields_mean": sum(o["fields"] for o in outs) / len(outs),
                       "correct": oc.count("correct"),
                       "unidentifiable": oc.count("unidentifiable"), "wrong": oc.count("wrong"),
                       "per_patient": [{"seed": r["seed"], "phenotype": r["phenotype"], **o}
                                       for r, o in zip(rows, outs)]}
    if args.json:
        print(json.dumps(table))
        return 0
    print(f"n = {len(rows)} ({args.trajectories})")
    print("| rule | time mean | fields mean | correct | unidentifiable | wrong |")
    print("|---|---|---|---|---|---|")
    for name, t in table.items():
        print(f"| {name} | {t['time_mean_s']:.0f} s | {t['fields_mean']:.1f} | "
              f"{t['correct']} | {t['unidentifiable']} | {t['wrong']} |")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if not (out / "results.jsonl").is_file():
        raise SystemExit(f"no results at {out / 'results.jsonl'}: run `python -m "
                         f"studies.closed_loop run --out {out}` first, or pass --out")
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()
            if line]
    extra: dict[int, dict[str, Any]] = {}  # other arms (results-<arms>.jsonl), by seed
    for path in sorted(out.glob("results-*.jsonl")):
        for line in path.read_text().splitlines():
            if line:
                r = json.loads(line)
                extra.setdefault(r["seed"], {}).update({a: r[a] for a in ARMS if a in r})
    rows = [{**r, **{k: v for k, v in extra.get(r["seed"], {}).items() if k not in r}}
            for r in rows]
    with_extra = [r for r in rows if all(a in r for a in ARMS)]
    if not rows:
        print("no results yet", file=sys.stderr)
        return 1
    s = summarise(rows)
    (out / "summary.json").write_text(json.dumps(s, indent=1))
    plot(rows, out / "closed_loop.png")
    if args.json:
        print(json.dumps(s))
        return 0
    print(f"n = {s['n']} patients")
    print("| mode | instrument time mean (median) | fields mean | correct | "
          "unidentifiable | wrong |")
    print("|---|---|---|---|---|---|")
    for mode in ("full", "loop"):
        m = s[mode]
        print(f"| {mode} | {m['time_mean_s']:.0f} s ({m['time_median_s']:.0f} s) | "
              f"{m['fields_mean']:.1f} | {m['correct']} | {m['unidentifiable']} | "
              f"{m['wrong']} |")
    print()
    print("| seed | phenotype | full: diagnosis (vote) | loop: diagnosis (vote), stop, fields |")
    print("|---|---|---|---|")
    for r in rows:
        fv, lv = top(r["full"]["probabilities"]), top(r["loop"]["probabilities"])
        print(f"| {r['seed']} | {r['phenotype']} | {r['full']['diagnosis']} ({fv}) | "
              f"{r['loop']['diagnosis']} ({lv}), {r['loop']['stop_reason']}, "
              f"{r['loop']['fields']} |")
    print()
    print(f"time ratio (of means) {s['time_ratio_of_means']:.2f}, median per patient "
          f"{s['time_ratio_median']:.2f}; stop reasons {s['stop_reasons']}; diagnoses that "
          f"differ {s['disagree']}; wrong only in the loop {s['extra_wrong']}")
    print(f"targets: {s['targets']}")
    if with_extra:
        g = summarise(with_extra)
        (out / "summary_loop_grid.json").write_text(json.dumps(g, indent=1))
        print(f"\nablation, the loop in row order (no ranking), n = {g['n']}:")
        for mode in ARMS:
            m = g[mode]
            print(f"| {mode} | {m['time_mean_s']:.0f} s ({m['time_median_s']:.0f} s) | "
                  f"{m['fields_mean']:.1f} | {m['correct']} | {m['unidentifiable']} | "
                  f"{m['wrong']} |")
        for r in with_extra:
            print(f"  {r['seed']} {r['phenotype']}: loop-grid {r['loop-grid']['diagnosis']} "
                  f"({top(r['loop-grid']['probabilities'])}), "
                  f"{r['loop-grid']['stop_reason']}, {r['loop-grid']['fields']} fields")
    return 0


def cmd_montecarlo(args: argparse.Namespace) -> int:
    import numpy as np

    from ml.dx.montecarlo import simulate_votes

    rng = np.random.default_rng(0)
    table = []
    for p in (0.5, 0.6, 0.737):
        for n in (5, 10, 20, 30, 45, 60, 90, 150):
            r = simulate_votes(p, n_trials=args.trials, rng=rng, n_patches=(n, n))
            table.append({"patch_accuracy": p, "n_patches": n, **{
                k: getattr(r, k) for k in ("accuracy", "unidentifiable", "wrong")}})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "montecarlo.json").write_text(json.dumps(table, indent=1))
    print("| patch accuracy | n patches | confident right | confident wrong |")
    print("|---|---|---|---|")
    for t in table:
        print(f"| {t['patch_accuracy']} | {t['n_patches']} | {t['accuracy']:.5f} | "
              f"{t['wrong']:.6f} |")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m studies.closed_loop", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="diagnose the cohort twice (full mosaic, closed loop)")
    r.add_argument("--patients", type=int, default=20,
                   help="patients, cycling normal / SPT / SPG / SCO (20)")
    r.add_argument("--seed-base", type=int, default=70000,
                   help="specimen seed of the first patient; noise seed = seed + 500000 (70000)")
    r.add_argument("--grid", default="4x4", help="mosaic grid ROWSxCOLS (4x4)")
    r.add_argument("--max-fields", type=int, default=8, help="closed-loop field budget (8)")
    r.add_argument("--min-patches", type=int, default=60,
                   help="valid patches before a confident stop (60)")
    r.add_argument("--min-fields", type=int, default=2,
                   help="fields with patches before a confident stop (2)")
    r.add_argument("--no-futility", action="store_true", help="never stop as futile")
    r.add_argument("--weights", type=Path, default=None,
                   help="normal-vs-NOA weights (default: the shipped ones)")
    r.add_argument("--out", default="docs/closed_loop",
                   help="folder of results.jsonl and the plot (docs/closed_loop)")
    r.add_argument("--data-root", default=tempfile.gettempdir(),
                   help="where each patient's temporary catalog goes (the temp dir)")
    r.add_argument("--keep-data", action="store_true", help="keep the patients' catalogs")
    r.add_argument("--resume", action="store_true",
                   help="skip patients already in results.jsonl")
    r.add_argument("--arms", default="full,loop",
                   help="comma list of full, loop, loop-grid (the loop without the survey's "
                        "ranking: tissue tiles in row order); other than full,loop the "
                        "results go to results-<arms>.jsonl")
    r.set_defaults(func=cmd_run)
    q = sub.add_parser("report", help="table and plot of results.jsonl")
    q.add_argument("--out", default="docs/closed_loop", help="folder of results.jsonl")
    q.add_argument("--json", action="store_true", help="print one JSON object")
    q.set_defaults(func=cmd_report)
    t = sub.add_parser("tune", help="stop rules replayed on trajectories (--arms trajectory)")
    t.add_argument("--trajectories", required=True, help="a results-trajectory.jsonl")
    t.add_argument("--json", action="store_true", help="print one JSON object")
    t.set_defaults(func=cmd_tune)
    m = sub.add_parser("montecarlo", help="minimum-evidence table of the stop rule")
    m.add_argument("--out", default="docs/closed_loop", help="folder of montecarlo.json")
    m.add_argument("--trials", type=int, default=200_000,
                   help="Monte-Carlo samples per cell (200000)")
    m.set_defaults(func=cmd_montecarlo)
    args = p.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
