"""The closed loop on a session: the real LBNet-Dx live callback (shipped weights) feeding
plans.adaptive.diagnose, into the real embedded catalog; and a loop interrupted mid-way
(Ctrl-C's path: the RunEngine's pause request, then Session.run's abort) keeps its fields
and the vote so far. Fields are 90 um at 64 px (one 300 px patch after resampling to the
classifier's 0.3 um/px), so each field costs milliseconds."""

from __future__ import annotations

import pytest

from plans.adaptive import DiagnosisFeedback
from plans.contract import DECISIONS_STREAM, LINK_SCAN, LINK_SURVEY, STOP_REASONS
from srash_ophyd.closedloop import attach_closed_loop, run_diagnosis
from srash_ophyd.session import make_session

pytestmark = pytest.mark.filterwarnings(
    "ignore:Using `httpx` with `starlette.testclient` is deprecated")

GEO = dict(rows=3, cols=3, fov_um=90.0, overlap=0.1, shifts_cm1=(2850.0, 2930.0))


@pytest.fixture(scope="module")
def dx():
    from srash_ophyd.cli.options import load_dx

    return load_dx(None, "normal-vs-noa")


def session_at(tmp_path, seed=70001, phenotype="NOA-SCO"):
    from simulators.specimens import make_specimen

    cx, cy = make_specimen("testis", seed, phenotype=phenotype).default_center_um()
    s = make_session(data_dir=tmp_path, specimen="testis", phenotype=phenotype, seed=seed,
                     noise_seed=seed, progress=False, suspenders=False, pixels=64,
                     fov_um=90.0, averages=1, x_um=cx, y_um=cy)
    return s, (cx, cy)


def analysis_of(catalog, uid):
    return [catalog[k] for k in catalog
            if catalog[k].metadata["start"].get(LINK_SCAN) == uid]


def test_real_lbnet_drives_the_loop_into_the_catalog(tmp_path, dx):
    s, centre = session_at(tmp_path)
    fb = DiagnosisFeedback()
    live = attach_closed_loop(s, dx, fb)
    try:
        res = run_diagnosis(s, live, feedback=fb, center_um=centre, md=s.run_md(sample_id="T1"),
                            max_fields=4, min_patches=2, min_fields=2, **GEO)
        live.close(60)
        assert res["exit_code"] == 0 and res["stop_reason"] in STOP_REASONS
        n = len(res["fields"])
        assert 2 <= n <= 4
        # the loop acted on the live classifier's vote: the decision recorded after each
        # field is the vote the analysis run published for that field
        run = s.catalog[res["uid"]]
        start = run.metadata["start"]
        assert start["plan_name"] == "diagnose" and start[LINK_SURVEY] == res["survey_uid"]
        assert s.catalog[res["survey_uid"]].metadata["start"]["plan_name"] == "mosaic_survey"
        dec = run[DECISIONS_STREAM].read()
        assert len(dec["decision_action"]) == n
        assert list(dec["decision_field_index"].values) == [f["field_index"]
                                                            for f in res["fields"]]
        assert list(dec["decision_action"].values)[-1] == "stop"
        assert list(dec["decision_reason"].values)[-1] == res["stop_reason"]
        (ana,) = analysis_of(s.catalog, res["uid"])
        fields = ana["fields"].read()
        assert list(fields["field_index"].values) == list(dec["decision_field_index"].values)
        assert fields["vote_probabilities"].values.max(axis=1) == pytest.approx(
            dec["vote_top_probability"].values)
        if res["stop_reason"] == "confident":
            assert res["diagnosis"] in ("normal", "NOA")
            assert max(res["probabilities"].values()) > 0.8
        else:
            assert res["diagnosis"] == "unidentifiable"
        assert res["instrument_time_s"] > res["survey_instrument_time_s"] > 0
        times = [f["instrument_time_s"] for f in res["fields"]]
        assert times == sorted(times) and times[-1] <= res["instrument_time_s"]
    finally:
        s.close()


def test_an_interrupted_loop_keeps_its_fields_and_the_vote_so_far(tmp_path, dx):
    s, centre = session_at(tmp_path, seed=70002, phenotype="normal")
    fb = DiagnosisFeedback()
    seen = []

    def ctrl_c_after_two(run, payload):  # the classifier's hook: then "Ctrl-C"
        seen.append(payload["field_index"])
        fb.put(run.scan_uid, payload["field_index"], payload)
        if len(seen) == 2:
            s.RE.request_pause(defer=False)  # what the RunEngine's SIGINT handler does

    from srash_ophyd.session import attach_live_dx

    live = attach_live_dx(s, dx, on_field=ctrl_c_after_two)
    try:
        res = run_diagnosis(s, live, feedback=fb, center_um=centre, md=s.run_md(sample_id="T2"),
                            max_fields=6, min_patches=10_000, futility=False, **GEO)
        live.close(60)
        assert res["exit_code"] == 130 and res["stop_reason"] is None
        assert [f["action"] for f in res["fields"]] == ["interrupted", "interrupted"]
        assert res["fields"][-1]["vote"] is not None  # the vote so far, in the summary too
        run = s.catalog[res["uid"]]
        stop = run.metadata["stop"]
        assert stop["exit_status"] == "abort"
        assert stop["num_events"]["primary"] == 4  # both acquired fields, every frame
        dec = run[DECISIONS_STREAM].read()
        assert 1 <= len(dec["decision_action"]) <= 2
        (ana,) = analysis_of(s.catalog, res["uid"])
        vote = ana["vote"].read()
        assert int(vote["n_fields"].values[0]) == 2
        assert str(vote["scan_exit_status"].values[0]) == "abort"
        assert len(ana["fields"].read()["field_index"]) == 2
    finally:
        s.close()


@pytest.mark.slow
def test_scan_until_confident_prints_the_loop_keys(tmp_path, capsys):
    import json

    from srash_ophyd.cli import main

    code = main(["scan", "--until-confident", "--grid", "3x3", "--pixels", "64", "--fov-um",
                 "90", "--averages", "1", "--seed", "70003", "--phenotype", "NOA-SPG",
                 "--min-patches", "2", "--max-fields", "3", "--data-dir", str(tmp_path),
                 "--quiet", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    for key in ("uid", "scan_id", "exit_status", "tiles", "estimated_instrument_time_s"):
        assert key in out  # the keys printed today stay
    assert out["stop_reason"] in STOP_REASONS
    assert 1 <= len(out["fields"]) <= 3 and out["tiles_done"] == len(out["fields"])
    assert out["instrument_time_s"] >= out["fields"][-1]["instrument_time_s"] > 0
    with pytest.raises(SystemExit) as exc:  # argparse's usage error, nothing created
        main(["scan", "--until-confident", "--max-fields", "0", "--data-dir",
              str(tmp_path / "never"), "--grid", "2x2"])
    assert exc.value.code == 2 and not (tmp_path / "never").exists()
    assert "--max-fields: 0 not allowed: must be >= 1" in capsys.readouterr().err
    assert main(["scan", "--until-confident", "--control", "epics", "--data-dir",
                 str(tmp_path / "never")]) == 2
    assert "--control sim only" in capsys.readouterr().err and not (tmp_path / "never").exists()
