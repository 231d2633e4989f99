"""plans.adaptive: tile ranking, the stop rule, the dry run, and the loop on a real RunEngine
with a scripted classifier (a stub only here, where the test is about the loop's logic; the
real LBNet-Dx callback drives it in tests/srash_ophyd/test_closed_loop.py)."""

from __future__ import annotations

import json

import pytest
from bluesky import RunEngine
from bluesky.simulators import summarize_plan
from hypothesis import given
from hypothesis import strategies as st

from plans import tile_grid
from plans.adaptive import DiagnosisFeedback, StopRule, diagnose, rank_tiles
from plans.contract import DECISIONS_STREAM, LINK_SURVEY, STOP_REASONS
from plans.errors import PlanError
from plans.scans import SurveyResult
from srash_ophyd.devices.factory import make_microscope


# ---------------------------------------------------------------------------- ranking
@st.composite
def surveys(draw):
    rows, cols = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    vals = st.floats(-0.1, 1.0, allow_nan=False)
    values = [[draw(vals) for _ in range(cols)] for _ in range(rows)]
    shg = [[draw(st.floats(0.0, 1.0)) for _ in range(cols)] for _ in range(rows)]
    mask = [[v > 0.05 for v in r] for r in values]
    return rows, cols, SurveyResult(mask=mask, values=values, background=0.0, uid=None,
                                    shg_values=shg)


@given(surveys(), st.floats(0, 2), st.floats(0, 1))
def test_ranking_visits_each_tissue_tile_once_and_no_empty_tile(data, tw, spread):
    rows, cols, survey = data
    grid = tile_grid(rows=rows, cols=cols, fov_um=10.0)
    order = rank_tiles(grid, survey, tubule_weight=tw, spread=spread)
    idx = [t.index for t in order]
    assert len(idx) == len(set(idx))
    assert set(idx) == {r * cols + c for r in range(rows) for c in range(cols)
                        if survey.mask[r][c]}
    assert all(0 <= t.tissue <= 1 and 0 <= t.tubules <= 1 for t in order)


@given(surveys())
def test_without_spread_tiles_come_in_score_order(data):
    rows, cols, survey = data
    order = rank_tiles(tile_grid(rows=rows, cols=cols, fov_um=10.0), survey, spread=0.0)
    scores = [t.score for t in order]
    assert scores == sorted(scores, reverse=True)


def test_spread_moves_the_second_field_away_from_the_first():
    values = [[1.0, 0.99, 0.5], [0.98, 0.97, 0.5], [0.5, 0.5, 0.9]]
    s = SurveyResult(mask=[[True] * 3] * 3, values=values, background=0.0, uid=None)
    order = rank_tiles(tile_grid(rows=3, cols=3, fov_um=10.0), s, spread=0.3)
    assert order[0].index == 0 and order[1].index == 8  # not the neighbour (0, 1)


# ---------------------------------------------------------------------------- stop rule
def res(field_p, vote_p, n, total, n_fields, names=("normal", "NOA")):
    return {"class_names": list(names), "field_probabilities": list(field_p),
            "vote_probabilities": list(vote_p), "n_patches": n, "vote_n_patches": total,
            "n_fields": n_fields, "vote_label": "x"}


def test_confident_needs_the_minimum_evidence():
    rule = StopRule(min_patches=60, min_fields=2, max_fields=8)
    one = [res([0.05, 0.95], [0.05, 0.95], 100, 100, 1)]
    assert rule.decide(one, left=5)[:2] == ("continue", "evidence")  # one field only
    two = one + [res([0.1, 0.9], [0.08, 0.92], 20, 120, 2)]
    assert rule.decide(two, left=5) == ("stop", "confident", "NOA")
    few = [res([0.05, 0.95], [0.05, 0.95], 20, 20, 1), res([0.05, 0.95], [0.05, 0.95], 20,
                                                           40, 2)]
    assert rule.decide(few, left=5)[0] == "continue"  # 40 < 60 patches


def test_budget_and_exhaustion_report_unidentifiable():
    rule = StopRule(max_fields=2, futility=False)
    r = [res([0.4, 0.6], [0.4, 0.6], 80, 80, 1), res([0.4, 0.6], [0.4, 0.6], 80, 160, 2)]
    assert rule.decide(r, left=3) == ("stop", "budget", "unidentifiable")
    assert StopRule(max_fields=5, futility=False).decide(r, left=0) == (
        "stop", "exhausted", "unidentifiable")


def test_futility_only_when_no_class_can_pass():
    rule = StopRule(max_fields=8)
    flat = [res([0.35, 0.65], [0.35, 0.65], 80, 80, 1), res([0.3, 0.7], [0.33, 0.67], 80,
                                                            160, 2)]
    assert rule.decide(flat, left=6) == ("stop", "futile", "unidentifiable")
    # one field already votes 0.97: six more like it could pass 0.8 -> go on
    mixed = [res([0.03, 0.97], [0.03, 0.97], 80, 80, 1), res([0.6, 0.4], [0.3, 0.7], 80,
                                                             160, 2)]
    assert rule.decide(mixed, left=6)[0] == "continue"
    assert StopRule(max_fields=8, futility=False).decide(flat, left=6)[0] == "continue"


def test_stop_reasons_are_the_contracts():
    assert {"confident", "budget", "futile", "exhausted"} == set(STOP_REASONS)


@pytest.mark.parametrize("kw", [{"threshold": 0.3}, {"min_patches": -1}, {"max_fields": 0},
                                {"min_fields": 1.5}])
def test_bad_rules_are_refused(kw):
    with pytest.raises(PlanError):
        StopRule(**kw)


# ---------------------------------------------------------------------------- the plan
@pytest.fixture
def mic(tmp_path):
    return make_microscope("testis", seed=3, noise_seed=1, data_dir=tmp_path / "frames",
                           pixels=16, fov_um=30.0, averages=1)


def plan_of(mic, **kw):
    kw.setdefault("survey_kwargs", {"background": 0.0, "pixels": mic.scanner.pixels,
                                    "averages": mic.scanner.averages, "survey_pixels": 8})
    return diagnose([mic], mic.raman, mic.xyz.x, mic.xyz.y, rows=3, cols=3, fov_um=30.0,
                    **kw)


def test_bad_arguments_raise_before_any_message(mic):
    with pytest.raises(PlanError, match="background"):
        diagnose([mic], mic.raman, mic.xyz.x, mic.xyz.y, rows=2, cols=2, fov_um=30.0)
    with pytest.raises(PlanError, match="feedback"):
        plan_of(mic, feedback=object())
    with pytest.raises(PlanError, match="max_fields"):
        plan_of(mic, max_fields=0)


def test_dry_run_walks_the_ranked_tiles_up_to_the_budget(mic, capsys):
    summarize_plan(plan_of(mic, max_fields=4))
    out = capsys.readouterr().out
    assert out.count("Open Run") == 2  # survey, diagnosis
    assert out.count("Read ['decision']") == 4


class ScriptedClassifier:
    """Stub classifier: on each primary field's last frame it posts the next scripted
    vote to the mailbox (what ml.dx.live's hook posts), from the RunEngine's callbacks."""

    def __init__(self, fb: DiagnosisFeedback, votes: list[float], n_patches: int = 50):
        self.fb, self.votes, self.n = fb, list(votes), n_patches
        self.desc: dict[str, str] = {}
        self.runs: dict[str, dict] = {}
        self.seen = 0

    def __call__(self, name, doc):
        if name == "start":
            self.runs[doc["uid"]] = doc
        elif name == "descriptor" and doc["name"] == "primary":
            self.desc[doc["uid"]] = doc["run_start"]
        elif name == "event" and doc["descriptor"] in self.desc:
            run = self.desc[doc["descriptor"]]
            if self.runs[run].get("plan_name") != "diagnose" or doc["data"]["shift_index"] != 1:
                return
            p = self.votes[min(self.seen, len(self.votes) - 1)]
            self.seen += 1
            self.fb.put(run, doc["data"]["field_index"], {
                "class_names": ["normal", "NOA"], "field_probabilities": [1 - p, p],
                "vote_probabilities": [1 - p, p], "n_patches": self.n,
                "vote_n_patches": self.n * self.seen, "n_fields": self.seen,
                "vote_label": "NOA" if p > 0.8 else "unidentifiable",
                "last_frame_time": doc["time"]})


def run_loop(mic, votes, **kw):
    RE = RunEngine({})
    docs: list[tuple[str, dict]] = []
    RE.subscribe(lambda n, d: docs.append((n, d)))
    fb = DiagnosisFeedback()
    RE.subscribe(ScriptedClassifier(fb, votes))
    box = {}

    def keep():
        box["out"] = yield from plan_of(mic, feedback=fb, feedback_timeout_s=30, **kw)

    RE(keep())
    return box["out"], docs


def test_the_loop_stops_when_confident(mic):
    out, docs = run_loop(mic, [0.7, 0.9, 0.95], max_fields=6, min_patches=60)
    assert out.stop_reason == "confident" and out.label == "NOA"
    assert len(out.decisions) == 2  # field 1: 50 patches < 60; field 2: 0.9, 100 patches
    starts = [d for n, d in docs if n == "start"]
    assert [s["plan_name"] for s in starts] == ["mosaic_survey", "diagnose"]
    assert starts[1][LINK_SURVEY] == starts[0]["uid"]
    stop = [d for n, d in docs if n == "stop"][-1]
    assert stop["num_events"] == {"primary": 4, DECISIONS_STREAM: 2}
    assert stop["reason"].startswith("stop_reason=confident")
    decs = [d for n, d in docs if n == "event" and "decision_action" in d["data"]]
    assert [e["data"]["decision_action"] for e in decs] == ["continue", "stop"]
    assert json.loads(decs[-1]["data"]["vote_probabilities"])["NOA"] == pytest.approx(0.9)
    # the fields came in the ranked order recorded in the start document
    assert out.fields == starts[1]["tiles"]["order"][:2]


def test_the_loop_stops_on_the_budget(mic):
    out, docs = run_loop(mic, [0.6, 0.7, 0.75], max_fields=3, futility=False)
    assert out.stop_reason == "budget" and out.label == "unidentifiable"
    assert len(out.decisions) == 3
    stop = [d for n, d in docs if n == "stop"][-1]
    assert stop["num_events"]["primary"] == 6 and stop["exit_status"] == "success"


def test_no_classifier_fails_the_run_with_a_reason(mic):
    RE = RunEngine({})
    docs: list[tuple[str, dict]] = []
    RE.subscribe(lambda n, d: docs.append((n, d)))
    with pytest.raises(PlanError, match="no classification of field"):
        RE(plan_of(mic, feedback=DiagnosisFeedback(), feedback_timeout_s=0.2))
    stop = [d for n, d in docs if n == "stop"][-1]
    assert stop["exit_status"] == "fail" and "live classifier" in stop["reason"]
    assert stop["num_events"]["primary"] == 2  # the field acquired is kept


def test_a_suspension_while_waiting_for_the_vote_duplicates_nothing(mic):
    """A suspender trips while the plan waits for field 1's vote: the RunEngine rewinds to
    the checkpoint after the field and replays only the wait (the mailbox keeps results)."""
    import threading
    import time

    from bluesky.suspenders import SuspendBoolLow
    from ophyd import Signal

    ok = Signal(name="mode_locked", value=1)
    RE = RunEngine({})
    RE.install_suspender(SuspendBoolLow(ok, sleep=0.0))
    docs: list[tuple[str, dict]] = []
    RE.subscribe(lambda n, d: docs.append((n, d)))
    fb = DiagnosisFeedback()
    script = ScriptedClassifier(fb, [0.7, 0.75, 0.7])
    trips = []

    def slow_classifier(name, doc):  # posts 0.3 s late; the laser drops meanwhile, once
        if name == "event" and doc["descriptor"] in script.desc and not trips \
                and doc["data"].get("shift_index") == 1:
            trips.append(doc["data"]["field_index"])

            def drop():
                ok.put(0)
                time.sleep(0.1)
                ok.put(1)
                time.sleep(0.2)
                script(name, doc)

            threading.Thread(target=drop, daemon=True).start()
            return
        script(name, doc)

    RE.subscribe(slow_classifier)
    waits = []
    RE.msg_hook = lambda msg: waits.append(1) if msg.command == "wait_for" else None
    box = {}

    def keep():
        box["out"] = yield from plan_of(mic, feedback=fb, feedback_timeout_s=30, max_fields=3,
                                        futility=False)

    RE(keep())
    out = box["out"]
    assert trips and out.stop_reason == "budget" and len(out.decisions) == 3
    stop = [d for n, d in docs if n == "stop"][-1]
    assert stop["num_events"] == {"primary": 6, DECISIONS_STREAM: 3}
    seqs = [d["seq_num"] for n, d in docs if n == "event" and "decision_action" in d["data"]]
    assert seqs == [1, 2, 3]
    assert len(waits) > 3  # the suspension replayed field 1's wait


def test_a_section_without_tissue_stops_exhausted_without_imaging(mic):
    RE = RunEngine({})
    docs: list[tuple[str, dict]] = []
    RE.subscribe(lambda n, d: docs.append((n, d)))
    box = {}

    def keep():  # nothing clears a tissue threshold of 10 V
        box["out"] = yield from plan_of(mic, feedback=DiagnosisFeedback(), survey_kwargs={
            "background": 0.0, "threshold": 10.0})

    RE(keep())
    assert box["out"].stop_reason == "exhausted" and box["out"].decisions == []
    stop = [d for n, d in docs if n == "stop"][-1]
    assert stop["exit_status"] == "success" and "stop_reason=exhausted" in stop["reason"]


def test_unranked_loop_images_tissue_tiles_in_row_order(mic):
    out, docs = run_loop(mic, [0.6, 0.7, 0.75], max_fields=3, futility=False, ranked=False)
    start = [d for n, d in docs if n == "start"][-1]
    assert out.fields == sorted(out.fields) == start["tiles"]["order"][:3]
