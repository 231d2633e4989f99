"""Closed-loop diagnosis: survey the section, image the informative tiles first, stop when the
live sample vote is confident (issue 18; results in ``docs/closed_loop.md``).

:func:`diagnose` is one bluesky plan of two runs:

1. **survey** (:func:`plans.scans.survey_tiles`, its own run, ``plan_name "mosaic_survey"``):
   one coarse frame per tile of the grid (default 24 px per side, one average, at the CH3
   band, where the detector records SRS and SHG at once). Per tile it gives the SRS signal
   above background (tissue) and the mean SHG (collagen of the tubules' lamina propria);
   tiles below the tissue threshold are never imaged.
2. **diagnosis** (``plan_name "diagnose"``, linked to the survey by ``start["survey_uid"]``,
   :data:`~plans.contract.LINK_SURVEY`): full-resolution SRASH fields (the same events and
   field markers as :func:`plans.mosaic`, so the live LBNet-Dx callback and every stored-run
   reader follow it unchanged) in the order of :func:`rank_tiles`. After each field the plan
   waits for that field's classification, asks :class:`StopRule` and records the decision
   as one event of the ``decisions`` stream; it stops when the vote is confident, futile,
   or the tile budget is spent.

**Feedback, the bluesky-adaptive pattern.** The classifier is an ordinary document callback
(``ml.dx.live.LBNetDxCallback`` behind its buffering thread); its per-field hook puts the
running vote into a :class:`DiagnosisFeedback` mailbox, and the plan reads the mailbox
with ``Msg("wait_for")`` (:func:`bluesky.plan_stubs.wait_for`): the RunEngine awaits a
coroutine that polls the mailbox, so the RunEngine's loop is never blocked, Ctrl-C and
suspenders act as in any plan, and bluesky-queueserver runs it as any plan. Results are kept
per (scan uid, field index), not consumed, so a rewind after a pause that replays the
``wait_for`` message finds the same result. A checkpoint follows each field's last frame
and each decision, so a rewind never duplicates a saved event.

**Dry run.** Simulators such as :func:`bluesky.simulators.summarize_plan` answer
``wait_for`` with None: the plan then has no feedback and walks the ranked tiles up to the
budget (decision reason ``"no feedback"``), which is the most the plan can acquire.

**Stop rule** (:class:`StopRule`): *confident* when the top class of the running vote has
probability ``> threshold`` (0.8, the paper's) with at least ``min_patches`` valid patches in
at least ``min_fields`` fields; *futile* when, after the same minimum evidence, even the best
field seen so far repeated over the rest of the budget could not lift any class over the
threshold; *budget* when ``max_fields`` fields are acquired; *exhausted* when no tissue tile
is left. Only *confident* reports a class; the others report ``"unidentifiable"``. The
minimum evidence is justified with the Monte-Carlo model of ``ml.dx.montecarlo`` in
``docs/closed_loop.md``.

The module imports no device module and no analysis; devices are arguments.
"""

import asyncio
import dataclasses
import json
import math
import threading
import time
from typing import Any, Awaitable, Callable, Mapping, Sequence

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
from bluesky.protocols import Movable, Readable
from bluesky.utils import MsgGenerator, RunEngineControlException

from .contract import (
    DECISIONS_STREAM,
    DEFAULT_SHIFTS_CM1,
    DIAGNOSE_PLAN,
    LINK_SURVEY,
    STOP_REASONS,
)
from .decorate import full_plan
from .errors import PlanError
from .grid import TileGrid, tile_grid
from .markers import FieldMarker, plan_data_keys
from .scans import SurveyResult, _base_md, _check_shifts, _fields, _limits, survey_tiles
from .stubs import composite_recipe, failures_explained, srash_field

__all__ = ["UNIDENTIFIABLE", "DiagnosisFeedback", "DiagnosisOutcome", "StopRule",
           "TileRank", "decisions_log", "default_feedback", "diagnose", "rank_tiles"]

#: the sample label of every stop but "confident" (ml.dx.vote spells it the same way)
UNIDENTIFIABLE = "unidentifiable"


# ---------------------------------------------------------------------------- feedback
class DiagnosisFeedback:
    """Mailbox from the classifier's thread to the plan: one result per (scan uid, field).

    The classifier side calls :meth:`put` (any thread); the plan awaits :meth:`waiter`
    inside ``Msg("wait_for")``. A result is a plain dict (``ml.dx.live.feedback_payload``):
    ``field_index``, ``skipped``, ``n_patches``, ``field_probabilities`` (K or None),
    ``vote_probabilities`` (K or None), ``vote_label``, ``vote_n_patches``, ``n_fields``,
    ``class_names``, ``threshold``, ``last_frame_time`` (epoch s). Results are kept, not
    consumed (module doc: rewinds replay the wait).

    Parameters
    ----------
    poll_s : float
        How often the waiting coroutine looks into the mailbox (s); the decision latency's
        floor (``docs/benchmarks.md``).
    """

    def __init__(self, poll_s: float = 0.002) -> None:
        if not (poll_s > 0 and math.isfinite(poll_s)):
            raise PlanError(f"poll_s {poll_s!r} not allowed: a finite number of seconds > 0")
        self.poll_s = float(poll_s)
        self._lock = threading.Lock()
        self._results: dict[tuple[str | None, int], dict[str, Any]] = {}

    def put(self, scan_uid: str | None, field_index: int, result: Mapping[str, Any]) -> None:
        """Deliver the classification of ``field_index`` of scan ``scan_uid``."""
        with self._lock:
            self._results[(scan_uid, int(field_index))] = {**result,
                                                           "received_time": time.time()}

    def get(self, scan_uid: str | None, field_index: int) -> dict[str, Any] | None:
        """The result of that field, or None while it has not come."""
        with self._lock:
            return self._results.get((scan_uid, int(field_index)))

    def waiter(self, scan_uid: str | None, field_index: int
               ) -> Callable[[], Awaitable[dict[str, Any]]]:
        """A coroutine function for ``bps.wait_for``: returns the result once it is there."""

        async def wait() -> dict[str, Any]:
            while True:
                got = self.get(scan_uid, field_index)
                if got is not None:
                    return got
                await asyncio.sleep(self.poll_s)

        return wait

    def forget(self, scan_uid: str | None) -> None:
        """Drop the results of one scan (memory of long sessions)."""
        with self._lock:
            for key in [k for k in self._results if k[0] == scan_uid]:
                del self._results[key]


_DEFAULT_FEEDBACK = DiagnosisFeedback()


def default_feedback() -> DiagnosisFeedback:
    """The process's mailbox, used by :func:`diagnose` when no ``feedback`` is passed (e.g.
    from bluesky-queueserver, whose plan arguments cannot carry Python objects)."""
    return _DEFAULT_FEEDBACK


# ---------------------------------------------------------------------------- tile order
@dataclasses.dataclass(frozen=True)
class TileRank:
    """One tile in the ranked order: grid position, survey terms and the score used."""

    index: int
    row: int
    col: int
    tissue: float
    tubules: float
    score: float

    def as_dict(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v)
                for k, v in dataclasses.asdict(self).items()}


def rank_tiles(grid: TileGrid, survey: SurveyResult, *, tubule_weight: float = 0.5,
               spread: float = 0.3) -> list[TileRank]:
    """Tissue tiles of ``survey`` in order of expected information.

    ``tissue`` = SRS above background relative to the best tile (a proxy of the tile's
    tissue fraction, 0..1); ``tubules`` = mean SHG relative to the best tile (lamina
    propria collagen: tubule walls), 0 without SHG. Greedy order: the next tile has the
    largest ``tissue + tubule_weight * tubules - spread * (already chosen 8-neighbours)``,
    ties by row-major index, so the first fields spread over the section instead of
    clustering where one region is rich ("not yet covered"). Tiles outside the survey's
    tissue mask are left out.
    """
    if not (tubule_weight >= 0 and spread >= 0):
        raise PlanError("tubule_weight and spread must be >= 0")
    cand = [(r, c) for r in range(grid.rows) for c in range(grid.cols) if survey.mask[r][c]]
    if not cand:
        return []
    tmax = max(max(survey.values[r][c] for r, c in cand), 1e-12)
    shg = survey.shg_values
    smax = max(max(shg[r][c] for r, c in cand), 1e-12) if shg is not None else 1.0
    terms = {}
    for r, c in cand:
        t = min(max(survey.values[r][c] / tmax, 0.0), 1.0)
        s = min(max(shg[r][c] / smax, 0.0), 1.0) if shg is not None else 0.0
        terms[(r, c)] = (t, s, t + tubule_weight * s)
    order: list[TileRank] = []
    chosen: set[tuple[int, int]] = set()
    left = set(cand)
    while left:
        def adjusted(rc: tuple[int, int]) -> tuple[float, int]:
            r, c = rc
            near = sum((r + dr, c + dc) in chosen for dr in (-1, 0, 1) for dc in (-1, 0, 1)
                       if dr or dc)
            return (terms[rc][2] - spread * near, -grid.index(r, c))
        best = max(left, key=adjusted)
        left.discard(best)
        chosen.add(best)
        t, s, _ = terms[best]
        order.append(TileRank(grid.index(*best), best[0], best[1], t, s, adjusted(best)[0]))
    return order


# ---------------------------------------------------------------------------- stop rule
@dataclasses.dataclass(frozen=True)
class StopRule:
    """When the closed loop stops (module doc). Defaults: docs/closed_loop.md.

    Attributes
    ----------
    threshold : float
        The vote's reporting threshold (the paper's 0.8); a class is confident above it.
    min_patches : int
        Valid patches the vote must hold before it may stop (Monte-Carlo justified).
    min_fields : int
        Fields with valid patches the vote must hold before it may stop.
    max_fields : int
        The tile budget: full-resolution fields at most.
    futility : bool
        Stop early as "futile" (module doc).
    """

    threshold: float = 0.8
    min_patches: int = 60
    min_fields: int = 2
    max_fields: int = 8
    futility: bool = True

    def __post_init__(self) -> None:
        if not 0.5 <= float(self.threshold) < 1.0:
            raise PlanError(f"threshold {self.threshold!r} not allowed: 0.5 <= t < 1")
        for name in ("min_patches", "min_fields", "max_fields"):
            v = getattr(self, name)
            if int(v) != v or v < (1 if name == "max_fields" else 0):
                raise PlanError(f"{name} {v!r} not allowed: an integer >= "
                                f"{1 if name == 'max_fields' else 0}")

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def decide(self, results: Sequence[Mapping[str, Any] | None], *, left: int
               ) -> tuple[str, str, str]:
        """``(action, reason, label)`` after the fields so far.

        ``results``: one feedback result per acquired field, in acquisition order (None
        where none came: a dry run); ``left``: tissue tiles not yet imaged. ``action`` is
        ``"continue"`` or ``"stop"``; ``reason`` one of :data:`STOP_REASONS` when stopping
        (``"evidence"``, ``"no feedback"`` or ``"not confident"`` when continuing); ``label``
        the class when confident, else ``"unidentifiable"``.
        """
        n_acquired = len(results)
        last = next((r for r in reversed(results) if r is not None), None)
        budget_left = self.max_fields - n_acquired
        vote = last.get("vote_probabilities") if last is not None else None
        if vote is not None:
            names = list(last["class_names"])  # type: ignore[index]
            n_patches = int(last.get("vote_n_patches") or 0)  # type: ignore[union-attr]
            n_fields = sum(1 for r in results if r is not None and int(r.get("n_patches") or 0))
            top = max(range(len(vote)), key=lambda k: vote[k])
            enough = n_patches >= self.min_patches and n_fields >= self.min_fields
            if enough and vote[top] > self.threshold:
                return "stop", "confident", names[top]
            if budget_left <= 0:
                return "stop", "budget", UNIDENTIFIABLE
            if left <= 0:
                return "stop", "exhausted", UNIDENTIFIABLE
            if enough and self.futility and self._futile(results, vote, n_patches,
                                                         n_fields, budget_left, left):
                return "stop", "futile", UNIDENTIFIABLE
            return "continue", ("not confident" if enough else "evidence"), UNIDENTIFIABLE
        if budget_left <= 0:
            return "stop", "budget", UNIDENTIFIABLE
        if left <= 0:
            return "stop", "exhausted", UNIDENTIFIABLE
        return "continue", "no feedback" if last is None else "evidence", UNIDENTIFIABLE

    def _futile(self, results: Sequence[Mapping[str, Any] | None], vote: Sequence[float],
                n_patches: int, n_fields: int, budget_left: int, left: int) -> bool:
        """True when no class can pass the threshold even if every remaining budgeted
        field votes like the best field seen so far for that class (weights approximated
        by patch counts, fields by the mean patch count so far)."""
        fields = [r for r in results if r is not None and r.get("field_probabilities")
                  is not None and int(r.get("n_patches") or 0)]
        if not fields:
            return False
        m = n_patches / max(n_fields, 1)
        extra = m * min(budget_left, left)
        for k in range(len(vote)):
            best = max(float(r["field_probabilities"][k]) for r in fields)
            bound = (vote[k] * n_patches + best * extra) / (n_patches + extra)
            if bound > self.threshold:
                return False
        return True


# ---------------------------------------------------------------------------- records
class _DecisionRecord:
    """Readable holding the decision after one field (``decisions`` stream; data keys
    below). Plain state set by the plan before it is read (as :class:`FieldMarker`)."""

    parent = None
    KEYS: dict[str, tuple[str, str]] = {
        "decision_field_index": ("integer", ""), "decision_rank": ("integer", ""),
        "decision_action": ("string", ""), "decision_reason": ("string", ""),
        "decision_label": ("string", ""), "vote_label": ("string", ""),
        "vote_top_probability": ("number", ""), "vote_probabilities": ("string", "json"),
        "vote_n_patches": ("integer", ""), "vote_n_fields": ("integer", ""),
        "field_n_patches": ("integer", ""), "field_skipped": ("integer", ""),
        "decision_latency_s": ("number", "s"),
    }

    def __init__(self, name: str = "decision") -> None:
        self._name = name
        self.values: dict[str, Any] = {k: self._blank(k) for k in self.KEYS}

    def _blank(self, key: str) -> Any:
        dtype = self.KEYS[key][0]
        return "" if dtype == "string" else (0 if dtype == "integer" else math.nan)

    @property
    def name(self) -> str:
        return self._name

    def set(self, **values: Any) -> None:
        self.values = {k: values.get(k, self._blank(k)) for k in self.KEYS}

    def read(self) -> dict[str, dict[str, Any]]:
        ts = time.time()
        return {k: {"value": v, "timestamp": ts} for k, v in self.values.items()}

    def describe(self) -> dict[str, dict[str, Any]]:
        return plan_data_keys(f"plan:{self._name}", self.KEYS)

    def read_configuration(self) -> dict[str, dict[str, Any]]:
        return {}

    def describe_configuration(self) -> dict[str, dict[str, Any]]:
        return {}


@dataclasses.dataclass
class DiagnosisOutcome:
    """What :func:`diagnose` returns: run uids, the stop, the label and every decision."""

    uid: str | None
    survey_uid: str | None
    stop_reason: str | None
    label: str
    order: list[dict[str, Any]]
    decisions: list[dict[str, Any]]

    @property
    def fields(self) -> list[int]:
        """Field indices acquired, in order."""
        return [d["decision_field_index"] for d in self.decisions]


def decisions_log(outcome: DiagnosisOutcome) -> str:
    """The decisions as JSON (what the stop document's reason summarises)."""
    return json.dumps(outcome.decisions)


# ---------------------------------------------------------------------------- the plan
@full_plan
def diagnose(detectors: Sequence[Readable], raman: Movable, x: Movable, y: Movable, *,
             rows: int, cols: int, fov_um: float, overlap: float = 0.1,
             center_um: Sequence[float] = (0.0, 0.0),
             shifts_cm1: Sequence[float] = DEFAULT_SHIFTS_CM1,
             max_fields: int = 8, threshold: float = 0.8, min_patches: int = 60,
             min_fields: int = 2, futility: bool = True,
             survey_kwargs: Mapping[str, Any] | None = None,
             tubule_weight: float = 0.5, spread: float = 0.3, ranked: bool = True,
             feedback: Any = None, feedback_timeout_s: float = 600.0,
             retries: int = 1, retry_delay_s: float = 0.1,
             md: Mapping | None = None) -> MsgGenerator[DiagnosisOutcome]:
    """Closed-loop diagnosis of one section (module doc): survey run, then a diagnosis run
    of full-resolution fields in ranked order until the vote is confident or futile, or the
    budget is spent.

    Parameters
    ----------
    detectors, raman, x, y
        As for :func:`plans.mosaic` (``[mic]``, ``mic.raman``, ``mic.xyz.x``, ``mic.xyz.y``).
    rows, cols, fov_um, overlap, center_um
        The grid the survey covers and the fields are chosen from (:func:`plans.tile_grid`;
        um, overlap a fraction).
    shifts_cm1 : sequence of float
        Raman shifts of each full field (cm^-1).
    max_fields, threshold, min_patches, min_fields, futility
        The :class:`StopRule`.
    survey_kwargs : dict
        For :func:`plans.survey_tiles`: ``background`` (V) or ``shutters`` (required, one of
        them), ``pixels`` / ``averages`` (the scanner's settings, set for the survey and
        restored), ``survey_pixels`` (24), ``survey_averages`` (1), ``shift_cm1``,
        ``threshold`` (V above background that counts as tissue).
    tubule_weight, spread
        Of :func:`rank_tiles`.
    ranked : bool
        False: image the tissue tiles in row-major order instead (an ablation of the
        ranking; same survey, same stop rule).
    feedback : DiagnosisFeedback, optional
        The mailbox the live classifier writes to; default :func:`default_feedback`.
    feedback_timeout_s : float
        How long to wait for one field's classification (s); the run fails after it.
    md : dict, optional
        Start metadata of both runs (the survey gets the sample keys only).

    Returns
    -------
    DiagnosisOutcome
    """
    grid = tile_grid(rows=rows, cols=cols, fov_um=fov_um, overlap=overlap,
                     center_um=center_um, snake=False)
    grid.check_limits(_limits(x), _limits(y))
    shifts = _check_shifts(shifts_cm1)
    rule = StopRule(threshold=float(threshold), min_patches=int(min_patches),
                    min_fields=int(min_fields), max_fields=int(max_fields),
                    futility=bool(futility))
    skw = dict(survey_kwargs or {})
    if skw.get("background") is None and not skw.get("shutters"):
        raise PlanError("diagnose needs survey_kwargs with background=<V> or shutters=[...] "
                        "(the survey takes a dark frame)")
    if not (feedback_timeout_s > 0 and math.isfinite(feedback_timeout_s)):
        raise PlanError(f"feedback_timeout_s {feedback_timeout_s!r} not allowed: a finite "
                        "number of seconds > 0")
    fb = feedback if feedback is not None else default_feedback()
    if not isinstance(fb, DiagnosisFeedback):
        raise PlanError(f"feedback {feedback!r} not allowed: a plans.adaptive."
                        "DiagnosisFeedback (or None for the process's default)")
    plan_args = {"detectors": [repr(d) for d in detectors], "raman": repr(raman),
                 "x": repr(x), "y": repr(y), "rows": grid.rows, "cols": grid.cols,
                 "fov_um": grid.fov_um, "overlap": grid.overlap,
                 "center_um": list(grid.center_um), "shifts_cm1": shifts,
                 "stop_rule": rule.as_dict(), "tubule_weight": float(tubule_weight),
                 "spread": float(spread), "ranked": bool(ranked),
                 "survey_kwargs": {k: (repr(v) if k in ("pixels", "averages", "shutters")
                                       else v) for k, v in skw.items()}}
    return _diagnose(detectors, raman, x, y, grid=grid, shifts=shifts, rule=rule, skw=skw,
                     tubule_weight=float(tubule_weight), spread=float(spread),
                     ranked=bool(ranked), fb=fb,
                     timeout_s=float(feedback_timeout_s), retries=retries,
                     retry_delay_s=retry_delay_s, plan_args=plan_args, md=md)


def _diagnose(detectors, raman, x, y, *, grid: TileGrid, shifts, rule: StopRule, skw,
              tubule_weight, spread, ranked, fb: DiagnosisFeedback, timeout_s, retries,
              retry_delay_s, plan_args, md) -> MsgGenerator[DiagnosisOutcome]:
    survey_md = {k: v for k, v in (md or {}).items()
                 if k in ("sample_id", "patient_id", "phenotype", "diagnosis", "specimen",
                          "specimen_seed", "noise_seed", "calibration")}
    survey_md["purpose"] = "closed-loop survey"
    survey = yield from survey_tiles(detectors, raman, x, y, grid, md=survey_md, **skw)
    if all(math.isnan(v) for row in survey.values for v in row):  # a dry run: no readings
        survey = SurveyResult(mask=[[True] * grid.cols for _ in range(grid.rows)],
                              values=[[1.0] * grid.cols for _ in range(grid.rows)],
                              background=0.0, uid=survey.uid)
    order = rank_tiles(grid, survey, tubule_weight=tubule_weight, spread=spread)
    if not ranked:  # the ablation: the survey's tissue tiles in plain row order
        order = sorted(order, key=lambda t: t.index)
    planned = order[:rule.max_fields]
    mask = [[False] * grid.cols for _ in range(grid.rows)]
    for t in order:
        mask[t.row][t.col] = True
    tiles = grid.to_metadata()
    tiles.update({"mask": mask, "acquire": [t.index for t in planned],
                  "skipped": grid.num_tiles - len(order), "order": [t.index for t in order],
                  "ranking": [t.as_dict() for t in order],
                  "survey_values_v": survey.values, "survey_shg_v": survey.shg_values})
    motors = [y, x, raman]
    _md = _base_md(DIAGNOSE_PLAN, plan_args, detectors, motors, md)
    _md.update({
        "shape": [grid.rows, grid.cols], "extents": grid.extents, "snaking": [False, False],
        "tiles": tiles, "shifts_cm1": shifts, "composite": composite_recipe(shifts),
        "num_points": len(planned) * len(shifts),
        "num_intervals": max(len(planned) * len(shifts) - 1, 0),
        "hints": {"dimensions": [(_fields(y), "primary"), (_fields(x), "primary")]},
        LINK_SURVEY: survey.uid, "stop_rule": rule.as_dict(), "stop_reasons": list(STOP_REASONS),
        "decisions_stream": DECISIONS_STREAM, "purpose": "closed-loop diagnosis"})
    for key, value in (md or {}).items():
        _md[key] = value
    marker = FieldMarker()
    record = _DecisionRecord()
    state: dict[str, Any] = {"results": [], "decisions": [], "stop": None,
                             "label": UNIDENTIFIABLE, "uid": None}

    def body() -> MsgGenerator[None]:
        for rank, t in enumerate(order):
            px, py = grid.position(t.row, t.col)
            marker.set_field(t.index, row=t.row, col=t.col, x_um=px, y_um=py)
            yield from bps.checkpoint()
            yield from bps.mv(x, px, y, py)
            yield from srash_field(detectors, raman, shifts_cm1=shifts, marker=marker,
                                   extra_readables=[x, y], retries=retries,
                                   retry_delay_s=retry_delay_s)
            yield from bps.checkpoint()  # a rewind from here on replays only the wait
            try:
                futs = yield from bps.wait_for([fb.waiter(state["uid"], t.index)],
                                               timeout=timeout_s)
            except TimeoutError:  # bluesky.run_engine.WaitForTimeoutError
                raise PlanError(
                    f"no classification of field {t.index} came within {timeout_s:g} s: is a "
                    "live classifier feeding this plan's mailbox (srash_ophyd.closedloop."
                    "attach_closed_loop) and still running?") from None
            result = futs[0].result() if futs else None
            state["results"].append(result)
            action, reason, label = rule.decide(state["results"], left=len(order) - rank - 1)
            now = time.time()
            vote = result.get("vote_probabilities") if result else None
            names = list(result["class_names"]) if result else []
            rec = {"decision_field_index": t.index, "decision_rank": rank,
                   "decision_action": action, "decision_reason": reason,
                   "decision_label": label,
                   "vote_label": str(result.get("vote_label")) if result else "",
                   "vote_top_probability": max(vote) if vote else math.nan,
                   "vote_probabilities": json.dumps(dict(zip(names, vote))) if vote else "",
                   "vote_n_patches": int(result.get("vote_n_patches") or 0) if result else 0,
                   "vote_n_fields": int(result.get("n_fields") or 0) if result else 0,
                   "field_n_patches": int(result.get("n_patches") or 0) if result else 0,
                   "field_skipped": int(bool(result.get("skipped"))) if result else 0,
                   "decision_latency_s": (now - float(result["last_frame_time"]))
                   if result and result.get("last_frame_time") else math.nan}
            record.set(**rec)
            yield from bps.create(DECISIONS_STREAM)
            yield from bps.read(record)
            yield from bps.save()
            state["decisions"].append(rec)
            yield from bps.checkpoint()
            if action == "stop":
                state["stop"], state["label"] = reason, label
                return

    def stop_text() -> str:
        d = state["decisions"]
        if not d:
            return f"stop_reason={state['stop']}: no tissue tile to image: unidentifiable"
        last = d[-1]
        return (f"stop_reason={state['stop']}: {state['label']} after {len(d)} fields "
                f"(vote {last['vote_label'] or 'none'} "
                f"{last['vote_top_probability']:.3f}, {last['vote_n_patches']} patches)")

    def run() -> MsgGenerator[str | None]:
        uid = yield from bps.open_run(md=_md)
        state["uid"] = uid

        def except_plan(e: BaseException) -> MsgGenerator[None]:
            if isinstance(e, RunEngineControlException):
                yield from bps.close_run(exit_status=getattr(e, "exit_status", "abort"))
            else:
                yield from bps.close_run(exit_status="fail", reason=str(e))

        def else_plan() -> MsgGenerator[None]:
            if state["stop"] is None and not order:
                state["stop"] = "exhausted"
            yield from bps.close_run(exit_status="success", reason=stop_text())

        yield from bpp.contingency_wrapper(failures_explained()(body)(),
                                           except_plan=except_plan, else_plan=else_plan)
        return uid

    try:
        uid = yield from bpp.stage_wrapper(run(), list(detectors))
    finally:
        fb.forget(state["uid"])  # the run is closed: no rewind can replay a wait now
    return DiagnosisOutcome(uid=uid, survey_uid=survey.uid, stop_reason=state["stop"],
                            label=state["label"], order=[t.as_dict() for t in order],
                            decisions=state["decisions"])
