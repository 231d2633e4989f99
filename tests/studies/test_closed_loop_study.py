"""``studies.closed_loop run`` stops on SIGTERM instead of going on to the next patient, and
keeps every finished patient (``--resume`` goes on from there)."""

from __future__ import annotations

import json
import signal

import pytest

from srash_ophyd.signals import Terminated
from studies import closed_loop


@pytest.mark.parametrize("how", ["run-aborted", "between-runs"])
def test_a_termination_signal_stops_the_study_and_keeps_finished_patients(tmp_path,
                                                                          monkeypatch, how):
    calls: list[int] = []

    def fake_one_patient(seed, phenotype, **kw):
        calls.append(seed)
        if len(calls) == 2:
            if how == "run-aborted":  # the session turned SIGTERM into exit code 143
                raise closed_loop.StudyInterrupted(143, "terminated by SIGTERM")
            raise Terminated(signal.SIGTERM)  # terminate_gracefully, outside a run
        return {"seed": seed, "phenotype": phenotype, "truth": "normal",
                "full": {"diagnosis": "normal", "fields": 16, "instrument_time_s": 1.0},
                "loop": {"diagnosis": "normal", "fields": 2, "instrument_time_s": 0.5}}

    monkeypatch.setattr(closed_loop, "one_patient", fake_one_patient)
    args = ["run", "--patients", "4", "--seed-base", "100", "--out", str(tmp_path),
            "--data-root", str(tmp_path / "d")]
    assert closed_loop.main(args) == 128 + signal.SIGTERM
    assert calls == [100, 101]  # nothing after the signal
    rows = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [r["seed"] for r in rows] == [100]
    calls.clear()
    monkeypatch.setattr(closed_loop, "one_patient",
                        lambda seed, phenotype, **kw: {**rows[0], "seed": seed})
    assert closed_loop.main([*args, "--resume"]) == 0
    rows = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [r["seed"] for r in rows] == [100, 101, 102, 103]
