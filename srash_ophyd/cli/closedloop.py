"""The closed-loop options of ``srash scan --until-confident`` and ``srash demo --adaptive``
(issue 18; :mod:`srash_ophyd.closedloop` does the work, ``docs/closed_loop.md`` the numbers).

With ``--json`` both commands add to the keys they print today: ``instrument_time_s``
(simulated real-instrument seconds, survey included), ``fields`` (one entry per
full-resolution field, in acquisition order: ``field_index``, ``rank``, ``row``, ``col``,
``n_patches``, ``vote`` (top class after it), ``vote_label``, ``action``, ``reason``,
``instrument_time_s`` at its last frame, ``decision_latency_s``) and ``stop_reason``
(``confident``, ``futile``, ``budget``, ``exhausted``; null when the scan did not finish).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from simulators.errors import SettingsError

__all__ = ["add_loop_options", "check_loop_options", "loop_rule", "scan_until_confident"]


def _at_least(low: int):
    """argparse ``type=``: an integer >= ``low`` (bad input: argparse's usage error, exit 2,
    before anything is created)."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if v < low:
            raise argparse.ArgumentTypeError(f"{v} not allowed: must be >= {low}")
        return v

    parse.__name__ = f"integer >= {low}"
    return parse


def add_loop_options(p: argparse.ArgumentParser, *, flag: str, weights: bool) -> None:
    """``flag`` (``--until-confident`` / ``--adaptive``) and the stop rule's options."""
    g = p.add_argument_group("closed loop (docs/closed_loop.md)")
    g.add_argument(flag, action="store_true", dest="closed_loop",
                   help="survey the --grid coarsely (its own run), then image full fields "
                        "in order of expected information while LBNet-Dx (normal vs NOA) "
                        "votes live; stop when the vote passes 0.8 with enough evidence, "
                        "when more fields cannot get it there, or at --max-fields")
    g.add_argument("--max-fields", type=_at_least(1), default=8,
                   help="tile budget: full-resolution fields at most (default 8)")
    g.add_argument("--min-patches", type=_at_least(0), default=60,
                   help="valid patches the vote needs before it may stop (default 60)")
    g.add_argument("--min-fields", type=_at_least(0), default=2,
                   help="fields with patches the vote needs before it may stop (default 2)")
    g.add_argument("--no-futility", action="store_true",
                   help="never stop early as futile: go on to the budget")
    g.add_argument("--survey-pixels", type=_at_least(8), default=24,
                   help="pixels per side of the survey frames (default 24)")
    if weights:
        g.add_argument("--weights", type=Path, default=None,
                       help="normal-vs-NOA weights (default: shipped)")


def check_loop_options(args: argparse.Namespace) -> None:
    """A :class:`SettingsError` naming the bad option and what is allowed."""
    for name, low in (("max_fields", 1), ("min_patches", 0), ("min_fields", 0),
                      ("survey_pixels", 8)):
        v = getattr(args, name)
        if v < low:
            raise SettingsError(f"--{name.replace('_', '-')} {v} not allowed: must be >= {low}")


def loop_rule(args: argparse.Namespace) -> dict[str, Any]:
    """The stop rule's keyword arguments from the options."""
    return {"max_fields": args.max_fields, "min_patches": args.min_patches,
            "min_fields": args.min_fields, "futility": not args.no_futility,
            "survey_pixels": args.survey_pixels}


def scan_until_confident(args: argparse.Namespace, session: Any, req: dict[str, Any],
                         md: dict[str, Any]) -> dict[str, Any]:
    """``srash scan --until-confident``: live LBNet-Dx + the closed loop on ``session``;
    the :func:`~srash_ophyd.closedloop.run_diagnosis` summary."""
    from plans.adaptive import DiagnosisFeedback

    from ..closedloop import attach_closed_loop, run_diagnosis
    from .options import load_dx

    check_loop_options(args)
    dx = load_dx(args.weights, "normal-vs-noa")
    fb = DiagnosisFeedback()
    live = attach_closed_loop(session, dx, fb)
    try:
        return run_diagnosis(session, live, feedback=fb, rows=req["rows"], cols=req["cols"],
                             fov_um=args.fov_um, overlap=req["overlap"],
                             center_um=req["center_um"], shifts_cm1=tuple(args.shifts),
                             md=md, **loop_rule(args))
    finally:
        live.close(60)


def scan_keys(loop: dict[str, Any], n_shift: int) -> dict[str, Any]:
    """The keys ``srash scan --until-confident`` adds to (or corrects in) its summary."""
    return {"tiles_done": len(loop["fields"]), "frames": len(loop["fields"]) * n_shift,
            "instrument_time_s": loop["instrument_time_s"], "fields": loop["fields"],
            "stop_reason": loop["stop_reason"], "survey_uid": loop["survey_uid"],
            "analysis_uid": loop["analysis_uid"], "dx_diagnosis": loop["diagnosis"],
            "dx_probabilities": loop["probabilities"]}
