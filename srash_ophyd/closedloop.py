"""The closed-loop diagnosis on a session: live LBNet-Dx wired to the plan's mailbox, the
instrument clock, and one call that runs it and summarises (``srash demo --adaptive``,
``srash scan --until-confident``, ``studies/closed_loop.py``).

- :func:`attach_closed_loop`: :func:`~srash_ophyd.session.attach_live_dx` whose per-field
  hook puts each field's running vote into a :class:`plans.adaptive.DiagnosisFeedback`
  (the callback -> mailbox -> plan pattern of bluesky-adaptive; ``plans.adaptive``).
- :class:`InstrumentClock`: a document callback that measures simulated real-instrument
  time (s): rasters and pump tuning from the simulator's own clock
  (:attr:`simulators.instrument.SRASHSimulator.clock_s`) plus the stage moves between the
  positions the frames were taken at (speed + settle of the stage's configuration).
- :func:`run_diagnosis`: the survey + closed-loop plan in :meth:`Session.run`, returning
  the summary the CLIs print (``instrument_time_s``, ``fields``, ``stop_reason``...).
- :func:`run_fixed_mosaic`: the full fixed mosaic with the same clock (the study's
  comparison).
"""

from __future__ import annotations

import json
import math
from typing import Any, Mapping, Sequence

from plans.adaptive import DiagnosisFeedback, default_feedback
from plans.contract import DECISIONS_STREAM

__all__ = ["InstrumentClock", "attach_closed_loop", "diagnosis_plan", "run_diagnosis",
           "run_fixed_mosaic"]


def attach_closed_loop(session: Any, dx: Any, feedback: DiagnosisFeedback | None = None,
                       **kwargs: Any) -> Any:
    """Live LBNet-Dx (``attach_live_dx``) feeding ``feedback`` (default: the process's
    mailbox, :func:`plans.adaptive.default_feedback`). Returns the ``LiveDx`` handle."""
    from .session import attach_live_dx

    fb = feedback if feedback is not None else default_feedback()

    def on_field(run: Any, payload: dict[str, Any]) -> None:
        if payload.get("field_index") is not None:
            fb.put(run.scan_uid, int(payload["field_index"]), payload)

    return attach_live_dx(session, dx, on_field=on_field, **kwargs)


class InstrumentClock:
    """Document callback: simulated real-instrument seconds since it was made.

    ``sim``: the microscope's :class:`~simulators.instrument.SRASHSimulator`. Time =
    (``sim.clock_s`` now - at creation: rasters at their actual pixels and averages, and
    pump tuning) + stage moves between the successive frame positions (``*_frame_x`` /
    ``*_frame_y`` of every event, any run, any stream; a move of less than 0.5 um is
    jitter, not a move). :attr:`field_times` maps (run uid, field_index) -> the clock at
    that field's last frame.
    """

    def __init__(self, sim: Any) -> None:
        self.sim = sim
        self.c0 = float(sim.clock_s)
        pos = sim.stage.position
        self._pos = (float(pos["x"]), float(pos["y"]))
        self.move_s = 0.0
        self.field_times: dict[tuple[str, int], float] = {}
        self._desc: dict[str, str] = {}  # descriptor uid -> run uid

    def move_time_s(self, a: tuple[float, float], b: tuple[float, float]) -> float:
        cfg = self.sim.stage.config
        t = max(abs(b[0] - a[0]), abs(b[1] - a[1])) / float(cfg.speed_um_s)
        return t + float(cfg.settle_s) if t > 0 else 0.0

    @property
    def seconds(self) -> float:
        """Instrument seconds so far."""
        return float(self.sim.clock_s) - self.c0 + self.move_s

    def __call__(self, name: str, doc: dict) -> None:
        if name == "descriptor":
            self._desc[doc["uid"]] = doc["run_start"]
        elif name == "event":
            data = doc.get("data", {})
            kx = next((k for k in data if k.endswith("_frame_x")), None)
            ky = next((k for k in data if k.endswith("_frame_y")), None)
            if kx is None or ky is None:
                return
            new = (float(data[kx]), float(data[ky]))
            if max(abs(new[0] - self._pos[0]), abs(new[1] - self._pos[1])) >= 0.5:
                self.move_s += self.move_time_s(self._pos, new)
                self._pos = new
            if "field_index" in data:
                run = self._desc.get(doc["descriptor"], "")
                self.field_times[(run, int(data["field_index"]))] = self.seconds


def diagnosis_plan(session: Any, *, rows: int, cols: int, fov_um: float, overlap: float,
                   center_um: Sequence[float], shifts_cm1: Sequence[float],
                   feedback: DiagnosisFeedback | None = None, survey_pixels: int = 24,
                   md: Mapping[str, Any] | None = None, **rule: Any) -> Any:
    """:func:`plans.adaptive.diagnose` on the session's microscope: the survey takes its
    dark frame with the lasers' shutters and sets the scanner's pixels / averages for
    itself. ``rule``: ``max_fields``, ``threshold``, ``min_patches``, ``min_fields``,
    ``futility``, ``feedback_timeout_s``."""
    from plans.adaptive import diagnose

    mic = session.mic
    skw = {"shutters": [mic.pump.shutter, mic.stokes.shutter], "pixels": mic.scanner.pixels,
           "averages": mic.scanner.averages, "survey_pixels": int(survey_pixels),
           "survey_averages": 1}
    return diagnose([mic], mic.raman, mic.xyz.x, mic.xyz.y, rows=rows, cols=cols,
                    fov_um=fov_um, overlap=overlap, center_um=tuple(center_um),
                    shifts_cm1=tuple(shifts_cm1), survey_kwargs=skw, feedback=feedback,
                    md=md, **rule)


def run_diagnosis(session: Any, live: Any, *, feedback: DiagnosisFeedback | None = None,
                  **plan_kwargs: Any) -> dict[str, Any]:
    """Run :func:`diagnosis_plan` (``plan_kwargs``) in ``session.run`` with ``live`` (from
    :func:`attach_closed_loop`, same ``feedback``) following it; returns the summary:

    ``uid``, ``survey_uid``, ``analysis_uid``, ``stop_reason`` (``plans.contract.STOP_REASONS``
    or None when the run did not finish), ``diagnosis`` (class or ``"unidentifiable"``),
    ``probabilities`` (class -> vote), ``n_patches``, ``instrument_time_s`` (survey
    included), ``survey_instrument_time_s``, ``fields`` (one per full-resolution field:
    ``field_index``, ``row``, ``col``, ``x_um``, ``y_um``, ``rank``, ``n_patches``,
    ``vote`` (top-class probability after it), ``vote_label``, ``vote_probabilities`` and
    ``field_probabilities`` (class -> p), ``action``, ``reason``,
    ``instrument_time_s`` at its last frame, ``decision_latency_s``), ``order`` (the
    ranked tissue tiles), ``exit_code`` / ``message`` (:class:`~.session.PlanOutcome`).
    """
    fb = feedback if feedback is not None else default_feedback()
    clock = InstrumentClock(session.mic.sim)
    seen: dict[str, Any] = {"starts": {}, "survey_end": None}

    def track(name: str, doc: dict) -> None:
        if name == "start":
            seen["starts"][doc["uid"]] = doc
        elif name == "stop" and seen["starts"].get(doc["run_start"], {}).get(
                "plan_name") == "mosaic_survey":
            seen["survey_end"] = clock.seconds

    t1 = session.RE.subscribe(clock)
    t2 = session.RE.subscribe(track)
    result: dict[str, Any] = {}
    try:
        plan = diagnosis_plan(session, feedback=fb, **plan_kwargs)
        outcome = _run_keep_value(session, plan, result)
    finally:
        session.RE.unsubscribe(t1)
        session.RE.unsubscribe(t2)
    live.wait(60)
    out = result.get("value")
    diag = next((d for d in seen["starts"].values() if d.get("plan_name") == "diagnose"), None)
    uid = diag["uid"] if diag else None
    decisions = _decisions(out, live, uid)
    order = (diag or {}).get("tiles", {}).get("ranking", [])
    by_index = {t["index"]: t for t in order}
    names = list(live.callback.dx.class_names)
    field_p = {f.field_index: f.field_probabilities for f in live.fields}
    fields = []
    for d in decisions:
        t = by_index.get(d["decision_field_index"], {})
        fi = d["decision_field_index"]
        fp = field_p.get(fi) if live.callback.scan_uid == uid else None
        fields.append({
            "field_probabilities": dict(zip(names, fp)) if fp is not None else None,
            "vote_probabilities": json.loads(d["vote_probabilities"])
            if d["vote_probabilities"] else None,
            "field_index": fi, "rank": d["decision_rank"], "row": t.get("row"),
            "col": t.get("col"), "n_patches": d["field_n_patches"],
            "vote": _finite(d["vote_top_probability"]), "vote_label": d["vote_label"],
            "action": d["decision_action"], "reason": d["decision_reason"],
            "instrument_time_s": _round(clock.field_times.get((uid or "", fi))),
            "decision_latency_s": _finite(d["decision_latency_s"])})
    v = live.vote if live.callback.scan_uid == uid else None
    stop_reason = out.stop_reason if out is not None else None
    return {"uid": uid, "survey_uid": (diag or {}).get("survey_uid"),
            "analysis_uid": live.analysis_uid if v is not None else None,
            "stop_reason": stop_reason,
            "diagnosis": out.label if out is not None else "unidentifiable",
            "probabilities": dict(zip(live.callback.dx.class_names, v.probabilities))
            if v is not None else None,
            "n_patches": sum(f["n_patches"] for f in fields),
            "instrument_time_s": round(clock.seconds, 3),
            "survey_instrument_time_s": _round(seen["survey_end"]),
            "fields": fields, "order": order,
            "exit_code": outcome.code, "message": outcome.message}


def _run_keep_value(session: Any, plan: Any, result: dict[str, Any]) -> Any:
    """``session.run(plan)`` keeping the plan's return value in ``result["value"]``."""

    def keep():
        result["value"] = yield from plan
        return result["value"]

    return session.run(keep())


def _decisions(out: Any, live: Any, uid: str | None) -> list[dict[str, Any]]:
    """The plan's decisions; when the run did not finish (Ctrl-C, a fault) the plan returned
    nothing, so each field the classifier saw is listed with action ``"interrupted"`` (the
    decisions recorded before are in the run's ``decisions`` stream)."""
    if out is not None:
        return list(out.decisions)
    if live.callback.scan_uid != uid or uid is None:
        return []
    names = list(live.callback.dx.class_names)
    rows = []
    for rank, f in enumerate(live.fields):
        v = f.running_vote
        rows.append({"decision_field_index": f.field_index, "decision_rank": rank,
                     "decision_action": "interrupted", "decision_reason": "interrupted",
                     "vote_label": v.label_name if v is not None else "",
                     "vote_top_probability": max(v.probabilities) if v is not None
                     else math.nan,
                     "vote_probabilities": json.dumps(dict(zip(names, v.probabilities)))
                     if v is not None else "",
                     "field_n_patches": f.n_patches, "decision_latency_s": math.nan})
    return rows


def _finite(v: Any) -> float | None:
    return round(float(v), 4) if v is not None and math.isfinite(float(v)) else None


def _round(v: Any) -> float | None:
    return round(float(v), 3) if v is not None else None


def run_fixed_mosaic(session: Any, live: Any, *, rows: int, cols: int, fov_um: float,
                     overlap: float, center_um: Sequence[float],
                     shifts_cm1: Sequence[float], md: Mapping[str, Any] | None = None
                     ) -> dict[str, Any]:
    """The full fixed mosaic (:func:`plans.mosaic`, snake order) with ``live`` following
    it and the same :class:`InstrumentClock`: ``uid``, ``diagnosis``, ``probabilities``,
    ``n_patches``, ``fields`` (count), ``instrument_time_s``, ``exit_code``."""
    mic = session.mic
    clock = InstrumentClock(mic.sim)
    token = session.RE.subscribe(clock)
    try:
        outcome = session.run(session.plans.mosaic(
            [mic], mic.raman, mic.xyz.x, mic.xyz.y, rows=rows, cols=cols, fov_um=fov_um,
            overlap=overlap, center_um=tuple(center_um), shifts_cm1=tuple(shifts_cm1),
            md=md))
    finally:
        session.RE.unsubscribe(token)
    live.wait(60)
    v = live.vote
    return {"uid": outcome.uids[0] if outcome.uids else None,
            "diagnosis": v.label_name if v is not None else "unidentifiable",
            "probabilities": dict(zip(live.callback.dx.class_names, v.probabilities))
            if v is not None else None,
            "n_patches": sum(f.n_patches for f in live.fields), "fields": len(live.fields),
            "instrument_time_s": round(clock.seconds, 3), "exit_code": outcome.code}


#: the stream the decisions are recorded in (re-exported for readers of stored runs)
DECISIONS = DECISIONS_STREAM
