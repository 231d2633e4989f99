"""Live LBNet-Dx on the document stream (ml.dx.live): live == offline (a stored scan replayed
from its own documents), failures and a slow classifier never hold the RunEngine, the
analysis run in the catalog, the CLI, 0MQ."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

# third-party: tiled's in-process Context uses starlette's TestClient over httpx, which
# starlette deprecates (nothing in this project can change that)
pytestmark = pytest.mark.filterwarnings(
    "ignore:Using `httpx` with `starlette.testclient` is deprecated")

PIXELS, FOV = 600, 180.0  # 0.3 um/px: 300 px patches, 16 windows per field
WAIT = 180.0  # generous timeouts for a busy 2-core machine (never asserted on)


@pytest.fixture(scope="module")
def dx():
    import torch

    from ml.dx.lbnet import LiteBlendNet
    from ml.dx.predict import LBNetDx

    torch.manual_seed(0)
    return LBNetDx(LiteBlendNet(width=8), task="normal-vs-noa")


@pytest.fixture(scope="module")
def weights(dx, tmp_path_factory):
    from ml.common.weights import save_weights

    path = tmp_path_factory.mktemp("w") / "lbnet.pt"
    save_weights(dx.model, path, meta={"model": {"width": 8}, "dx": dx.dx_meta()})
    return path


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    from srash_ophyd.session import make_session

    s = make_session(data_dir=tmp_path_factory.mktemp("live") / "data", phenotype="NOA-SCO",
                     seed=3, pixels=PIXELS, fov_um=FOV, progress=False)
    yield s
    s.close()


def mosaic(s, sample: str) -> str:
    (uid,) = s.RE(s.plans.mosaic([s.mic], s.mic.raman, s.mic.xyz.x, s.mic.xyz.y, rows=1,
                                 cols=2, fov_um=FOV,
                                 md=s.run_md(sample_id=sample, patient_id="P-" + sample)))
    return uid


@pytest.fixture(scope="module")
def live_scan(session, dx):
    """One 1x2 mosaic classified live (composites kept); the handle closed afterwards."""
    from srash_ophyd.session import attach_live_dx

    live = attach_live_dx(session, dx, keep_composites=True)
    t0 = time.perf_counter()
    uid = mosaic(session, "S-live")
    scan_s = time.perf_counter() - t0
    assert live.wait(WAIT)
    assert live.close(WAIT)
    cb = live.callback
    for f in cb.fields:  # timings for the report (-s shows them)
        print(f"field {f.field_index}: compute {f.compute_s:.3f} s, latency {f.latency_s:.3f}"
              f" s after its last frame; scan {scan_s:.2f} s")
    return uid, cb


def dx_variant(dx, classify):
    """The same model and settings with classify_field replaced."""
    from ml.dx.predict import LBNetDx

    other = LBNetDx(dx.model, task=dx.task, meta=dx.meta)
    other.classify_field = classify
    return other


# ------------------------------------------------------------------------------- fast
def test_a_run_without_calibration_is_recorded_not_raised(dx, caplog):
    from ml.dx.live import LBNetDxCallback

    out = []
    cb = LBNetDxCallback(dx, lambda n, d: out.append(n))
    with caplog.at_level(logging.ERROR, logger="srash.live"):
        cb("start", {"uid": "u1", "time": 0.0, "composite": {"shifts_cm1": [2850, 2930]}})
        cb("stop", {"uid": "s1", "run_start": "u1", "time": 1.0, "exit_status": "success"})
    assert cb.status == "fail" and "calibration" in cb.error and cb.analysis_uid is None
    assert out == [] and cb.finished.is_set()
    assert any("calibration" in r.getMessage() for r in caplog.records)
    cb("start", {"uid": "u2", "time": 2.0})  # not a SRASH scan: ignored, nothing written
    assert cb.status == "ignored" and cb.error is None and out == []


def test_msgpack_round_trip_keeps_arrays():
    from srash_ophyd.transport import msgpack_dumps, msgpack_loads

    doc = {"data": {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "x": 1.5},
           "seq_nums": {"start": 1, "stop": 2}}
    back = msgpack_loads(msgpack_dumps(doc))
    assert back["seq_nums"] == {"start": 1, "stop": 2} and back["data"]["x"] == 1.5
    np.testing.assert_array_equal(back["data"]["a"], doc["data"]["a"])
    assert back["data"]["a"].dtype == np.float32


def test_cli_help_lists_both_commands(capsys):
    from srash_ophyd.cli import main

    for cmd, opt in (("classify", "--no-store"), ("classify-live", "--once")):
        with pytest.raises(SystemExit) as e:
            main([cmd, "--help"])
        assert e.value.code == 0
        out = capsys.readouterr().out
        assert opt in out and "--weights" in out and "--data-dir" in out


# ------------------------------------------------------------------------------- slow
@pytest.mark.slow
def test_live_equals_offline_and_run_fields(session, dx, live_scan):
    from ml.dx.data import run_fields
    from ml.dx.live import classify_run

    uid, live = live_scan
    assert live.status == "success" and live.error is None and live.scan_uid == uid
    assert [f.field_index for f in live.fields] == [0, 1]
    run = session.catalog[uid]
    off = classify_run(run, dx)
    assert off.status == "success" and off.analysis_uid is None  # nothing published
    assert len(off.fields) == len(live.fields) == 2
    for a, b in zip(live.fields, off.fields):
        assert a.n_patches == 16 and a.dx.n_total == 16
        assert np.array_equal(a.probabilities, b.probabilities)
        assert np.array_equal(a.dx.weights, b.dx.weights)
        assert np.array_equal(a.dx.origins, b.dx.origins)
        assert a.running_vote == b.running_vote and a.dx.vote == b.dx.vote
        assert (a.x_um, a.y_um, a.tile_index) == (b.x_um, b.y_um, b.tile_index)
    assert live.vote is not None and live.vote == off.vote
    fcs = list(run_fields(run, target_pixel_um=0.3))
    assert len(fcs) == 2
    for fc, a in zip(fcs, live.fields):
        assert np.array_equal(fc.composite, a.composite)  # bit-identical composites
        assert (fc.tile.x_um, fc.tile.y_um) == (a.x_um, a.y_um)
        assert np.array_equal(dx.classify_field(fc.composite).probabilities, a.probabilities)
    assert off.summary()["probabilities"] == list(live.vote.probabilities)


@pytest.mark.slow
def test_analysis_run_is_in_the_catalog(session, dx, live_scan):
    from tiled.queries import Key

    uid, live = live_scan
    found = session.catalog.search(Key("scan_uid") == uid)
    assert live.analysis_uid in list(found)
    run = session.catalog[live.analysis_uid]
    start, stop = run.metadata["start"], run.metadata["stop"]
    assert start["analysis"] == "lbnet-dx" and start["scan_uid"] == uid
    assert start["sample_id"] == "S-live" and start["patient_id"] == "P-S-live"
    assert (start["scan_phenotype"], start["scan_diagnosis"]) == ("NOA-SCO", "NOA")
    assert "diagnosis" not in start  # not listed as a scan by `catalog search --diagnosis`
    assert start["task"] == "normal-vs-noa" and start["class_names"] == ["normal", "NOA"]
    assert start["thresholds"] == {"patch": dx.patch_threshold, "vote": dx.vote_threshold}
    assert set(start["weights"]) >= {"path", "sha256"} and start["mode"] == "live"
    assert stop["exit_status"] == "success" and stop["num_events"] == {"fields": 2, "vote": 1}
    by_sample = session.catalog.search(Key("sample_id") == "S-live")
    assert {uid, live.analysis_uid} <= set(by_sample)
    fields = run["fields"]
    p = np.asarray(fields["probabilities"].read())
    assert p.shape == (2, 16, 2)
    for k, f in enumerate(live.fields):
        assert np.array_equal(p[k], f.probabilities)
        assert np.array_equal(np.asarray(fields["field_probabilities"].read())[k],
                              f.field_probabilities)
    assert list(fields["field_index"].read()) == [0, 1]
    vote = run["vote"]
    assert np.array_equal(np.asarray(vote["probabilities"].read())[0], live.vote.probabilities)
    assert str(vote["label"].read()[0]) == live.vote.label_name
    assert int(vote["n_fields"].read()[0]) == 2


@pytest.mark.slow
def test_a_stored_scan_is_replayed_from_its_documents_with_frames_from_the_catalog(
        session, dx, live_scan, monkeypatch):
    """classify_run feeds run.documents() to the live assembler and reads each frame through
    the catalog, never the frame file itself (a remote catalog's files are not visible)."""
    import ml.io.assembler as assembler
    from ml.dx.live import classify_run

    def no_direct_reads(*args, **kwargs):
        raise AssertionError("a stored run's frame file was opened directly")

    monkeypatch.setattr(assembler, "read_frame_file", no_direct_reads)
    seen: list[str] = []
    run = session.catalog[live_scan[0]]
    real_documents = run.documents

    def documents(*args, **kwargs):
        for name, doc in real_documents(*args, **kwargs):
            seen.append(name)
            yield name, doc

    monkeypatch.setattr(run, "documents", documents)
    off = classify_run(run, dx)
    assert off.status == "success" and off.error is None
    assert seen[0] == "start" and seen[-1] == "stop" and "stream_datum" in seen
    live = live_scan[1]
    assert [f.field_index for f in off.fields] == [f.field_index for f in live.fields]
    for a, b in zip(live.fields, off.fields):
        assert np.array_equal(a.probabilities, b.probabilities)


@pytest.mark.slow
def test_a_failing_classifier_does_not_stop_the_scan(session, dx, caplog):
    from ml.dx.live import classify_run
    from srash_ophyd.catalog import make_analysis_writer
    from srash_ophyd.session import attach_live_dx

    def broken(composite):
        raise RuntimeError("classifier exploded")

    live = attach_live_dx(session, dx_variant(dx, broken))
    with caplog.at_level(logging.ERROR, logger="srash.live"):
        uid = mosaic(session, "S-fail")
        assert live.wait(WAIT)
    live.close()
    run = session.catalog[uid]
    assert run.metadata["stop"]["exit_status"] == "success"
    assert run.metadata["stop"]["num_events"] == {"primary": 4}
    assert np.asarray(run["primary"]["srash_image"].read()).shape == (4, 2, PIXELS, PIXELS)
    cb = live.callback
    assert cb.status == "fail" and "classifier exploded" in cb.error
    assert any("classifier exploded" in r.getMessage() for r in caplog.records)
    failed = session.catalog[cb.analysis_uid].metadata
    assert failed["start"]["scan_uid"] == uid
    assert failed["stop"]["exit_status"] == "fail"
    assert "RuntimeError: classifier exploded" in failed["stop"]["reason"]
    # the vote completed afterwards, from the catalog
    redo = classify_run(run, dx, make_analysis_writer(session.catalog))
    assert redo.status == "success" and len(redo.fields) == 2 and redo.vote is not None
    assert session.catalog[redo.analysis_uid].metadata["stop"]["exit_status"] == "success"


@pytest.mark.slow
def test_a_slow_classifier_does_not_hold_the_run_engine(session, dx):
    from ml.dx.live import classify_run
    from srash_ophyd.session import attach_live_dx

    entered, release = threading.Event(), threading.Event()

    def slow(composite):
        entered.set()
        release.wait(WAIT)
        return dx.classify_field(composite)

    live = attach_live_dx(session, dx_variant(dx, slow))
    try:
        uid = mosaic(session, "S-slow")
        # the RunEngine is back while the classifier is still blocked
        assert not release.is_set() and not live.callback.finished.is_set()
        assert live.pending > 0 and live.callback.fields == []
        assert entered.wait(WAIT)
    finally:
        release.set()
    assert live.wait(WAIT)
    live.close()
    cb = live.callback
    assert cb.status == "success" and cb.scan_uid == uid and len(cb.fields) == 2
    off = classify_run(session.catalog[uid], dx)
    assert cb.vote == off.vote
    for a, b in zip(cb.fields, off.fields):
        assert np.array_equal(a.probabilities, b.probabilities)


@pytest.mark.slow
def test_cli_classify(session, live_scan, weights, capsys):
    from srash_ophyd.cli import main

    uid, live = live_scan
    d = str(session.data_dir)
    assert main(["classify", uid[:8], "--json", "--weights", str(weights), "--data-dir", d]) == 0
    s = json.loads(capsys.readouterr().out)
    assert {"scan_uid", "analysis_uid", "fields", "diagnosis", "probabilities"} <= set(s)
    assert s["scan_uid"] == uid and s["analysis_uid"] is not None
    assert s["probabilities"] == list(live.vote.probabilities)
    assert s["diagnosis"] == live.vote.label_name
    assert [f["field_index"] for f in s["fields"]] == [0, 1]
    for f, lf in zip(s["fields"], live.fields):
        assert {"x_um", "y_um", "n_patches", "probabilities"} <= set(f)
        assert f["probabilities"] == lf.field_probabilities and f["n_patches"] == 16
    stored = session.catalog[s["analysis_uid"]].metadata["start"]
    assert stored["scan_uid"] == uid and stored["mode"] == "offline"
    assert stored["weights"]["path"] == str(weights)
    # -1: the latest scan, skipping the analysis runs written since
    assert main(["classify", "-1", "--json", "--no-store", "--weights", str(weights),
                 "--data-dir", d]) == 0
    s1 = json.loads(capsys.readouterr().out)
    assert s1["analysis_uid"] is None
    assert not session.catalog[s1["scan_uid"]].metadata["start"].get("analysis")
    # mistakes: exit 2 with a clear message
    assert main(["classify", "0123456789abcdef", "--weights", str(weights),
                 "--data-dir", d]) == 2
    assert "no run '0123456789abcdef'" in capsys.readouterr().err
    assert main(["classify", "-1", "--weights", str(weights) + ".missing",
                 "--data-dir", d]) == 2
    err = capsys.readouterr().err
    assert err.startswith("srash: error:") and "srash train" in err and "--weights" in err
    assert main(["classify", s["analysis_uid"], "--weights", str(weights),
                 "--data-dir", d]) == 2
    assert "analysis run" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_zmq_classify_live_equals_offline(session, dx):
    from ml.dx.live import LBNetDxCallback, classify_run
    from srash_ophyd.catalog import make_analysis_writer
    from srash_ophyd.transport import serve_live, zmq_publisher

    p_in, p_out = _free_port(), _free_port()
    proxy = subprocess.Popen(
        [str(Path(sys.executable).parent / "bluesky-0MQ-proxy"), "--in-address",
         f"tcp://127.0.0.1:{p_in}", "--out-address", f"tcp://127.0.0.1:{p_out}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
    publisher = zmq_publisher(f"127.0.0.1:{p_in}")
    cb = LBNetDxCallback(dx, make_analysis_writer(session.catalog))
    out: dict = {}
    consumer = threading.Thread(target=lambda: out.setdefault("results", serve_live(
        f"127.0.0.1:{p_out}", dx, None, once=True, callback=cb)), daemon=True)
    consumer.start()
    token = None
    try:
        # 0MQ drops messages until the subscription has propagated: probe with a run the
        # classifier ignores until the consumer has seen one
        deadline = time.monotonic() + WAIT
        while cb.runs_seen == 0 and time.monotonic() < deadline:
            publisher("start", {"uid": "probe", "time": time.time()})
            time.sleep(0.1)
        assert cb.runs_seen > 0
        token = session.RE.subscribe(publisher)
        uid = mosaic(session, "S-zmq")
        consumer.join(WAIT)
        assert not consumer.is_alive()
    finally:
        if token is not None:
            session.RE.unsubscribe(token)
        publisher.close()
        proxy.terminate()
        proxy.wait(30)
    (summary,) = out["results"]
    assert summary["scan_uid"] == uid and summary["status"] == "success"
    off = classify_run(session.catalog[uid], dx)
    assert cb.vote == off.vote and summary["probabilities"] == list(off.vote.probabilities)
    assert len(cb.fields) == len(off.fields) == 2
    for a, b in zip(cb.fields, off.fields):
        assert np.array_equal(a.probabilities, b.probabilities)
    stored = session.catalog[summary["analysis_uid"]].metadata
    assert stored["start"]["scan_uid"] == uid and stored["stop"]["exit_status"] == "success"
