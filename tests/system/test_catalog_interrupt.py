"""In-process session: valid documents; aborted or faulted mosaics keep their finished tiles."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from bluesky.utils import FailedStatus, RunEngineInterrupted
from event_model import DocumentNames, schema_validators

from ml.io.runs import run_tiles
from tests.sessions import here_mosaic, small_session

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings(
    "ignore:Using `httpx` with `starlette.testclient` is deprecated")]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("session-data")


@pytest.fixture
def session(data_dir):
    s = small_session(data_dir)
    yield s
    s.close()


mosaic = here_mosaic


def test_every_document_validates_and_lands_in_the_catalog(session):
    docs = []

    def validate(name, doc):
        schema_validators[DocumentNames(name)].validate(doc)
        docs.append(name)

    (uid,) = session.RE(mosaic(session, sample_id="V-1"), validate)
    assert docs.count("event") == 8 and docs[0] == "start" and docs[-1] == "stop"
    run = session.catalog[uid]
    assert run.metadata["stop"]["exit_status"] == "success"
    assert run.metadata["start"]["diagnosis"] == "normal"
    tiles, skipped = run_tiles(run)
    assert len(tiles) == 4 and not skipped


def _finished_tiles_readable(run, n_events):
    arr = run["primary"]["srash_image"].read()
    assert arr.shape[0] == n_events and np.isfinite(arr).all()
    tiles, skipped = run_tiles(run)
    return tiles, skipped


def test_abort_mid_mosaic_keeps_finished_tiles(session):
    RE = session.RE
    seen = []

    def pause_after_five(name, doc):
        if name == "start":
            seen.append(doc["uid"])
        if name == "event" and doc["seq_num"] == 5:
            # what Ctrl-C does; from another thread: request_pause waits on the RunEngine's
            # loop, which is running this callback
            threading.Thread(target=RE.request_pause, kwargs={"defer": True}).start()

    with pytest.raises(RunEngineInterrupted):
        RE(mosaic(session, rows=2, cols=3, sample_id="A-1"), pause_after_five)
    RE.abort(reason="user pressed Ctrl-C")
    run = session.catalog[seen[0]]
    stop = run.metadata["stop"]
    assert stop["exit_status"] == "abort"
    n = stop["num_events"]["primary"]
    assert 5 <= n < 12
    tiles, skipped = _finished_tiles_readable(run, n)
    assert len(tiles) == n // 2 and len(skipped) == n % 2


def test_device_fault_mid_mosaic_fails_the_run_and_keeps_finished_tiles(session):
    seen = []
    pump = session.mic.sim.pump

    def fault_after_three(name, doc):
        if name == "start":
            seen.append(doc["uid"])
        if name == "event" and doc["seq_num"] == 3:
            pump.inject_modelock_loss()  # no suspenders: the trigger fails

    try:
        with pytest.raises(FailedStatus):
            session.RE(mosaic(session, sample_id="F-1"), fault_after_three)
    finally:
        pump.restore_modelock()
    run = session.catalog[seen[0]]
    stop = run.metadata["stop"]
    assert stop["exit_status"] == "fail", stop
    assert stop["num_events"]["primary"] == 3
    tiles, skipped = _finished_tiles_readable(run, 3)
    assert len(tiles) == 1 and len(skipped) == 1
