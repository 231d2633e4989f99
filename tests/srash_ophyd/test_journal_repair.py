"""The run journal and ``srash catalog repair`` in-process; device failures name their cause.

A killed scan is simulated exactly as the kill leaves it: the catalog writer never sees the
documents after the kill point (the process died), the journal holds them.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ml.io.runstate import REPAIRED_PREFIX, IncompleteRunError, require_readable, run_state
from plans import DeviceFailure
from srash_ophyd.catalog import uri_path
from srash_ophyd.cli.options import redact_argv
from srash_ophyd.journal import JournaledWriter, journal_dir, read_journal
from srash_ophyd.repair import repair
from tests.sessions import here_mosaic, small_session

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings(
    "ignore:Using `httpx` with `starlette.testclient` is deprecated")]


@pytest.fixture
def session(tmp_path):
    s = small_session(tmp_path / "d", seed=2, pixels=32)
    yield s
    s.close()


def mosaic(s, rows=2, cols=2, **md):
    return here_mosaic(s, rows, cols, overlap=0.1, **md)


class Killed(BaseException):
    """Raised by the test's document hook: the process 'dies' here."""


def killed_scan(s, after_events: int, rows=2, cols=3) -> str:
    """Run a mosaic whose catalog writer stops receiving documents after ``after_events``
    events (what SIGKILL does to an in-memory batching writer); returns the run uid."""
    journal = s.journal
    seen = {"events": 0, "uid": None, "dead": False}

    def dying(name, doc):
        if seen["dead"]:
            return
        if name == "start":
            seen["uid"] = doc["uid"]
        journal(name, doc)
        if name == "event":
            seen["events"] += 1
            if seen["events"] == after_events:
                seen["dead"] = True  # nothing after this reaches the journal or catalog

    s.RE.unsubscribe(s.tokens.pop("writer"))
    s.RE(mosaic(s, rows=rows, cols=cols, sample_id="KILL"), dying)
    # the killed process never closed its journal; the lock dies with the process
    for run in list(journal._runs.values()):
        run.fh.close()
    journal._runs.clear()
    return seen["uid"]


def test_a_finished_run_leaves_no_journal_and_a_killed_one_is_repaired(session):
    (uid,) = session.RE(mosaic(session, sample_id="OK"))
    root = session.data_dir
    assert not list(journal_dir(root).glob("*.jsonl"))
    killed = killed_scan(session, after_events=7)
    cat = session.catalog
    assert run_state(cat[killed]).kind == "open"
    with pytest.raises(IncompleteRunError, match="srash catalog repair"):
        require_readable(cat[killed])
    results = repair(cat, root)
    assert [(r.uid, r.action, r.frames, r.fields) for r in results] == [
        (killed, "repaired", 7, 4)]
    run = cat[killed]
    stop = run.metadata["stop"]
    assert stop["exit_status"] == "abort" and stop["reason"].startswith(REPAIRED_PREFIX)
    assert stop["num_events"]["primary"] == 7
    assert run["primary"]["srash_image"].read().shape[0] == 7
    assert run_state(run).kind == "repaired" and run_state(cat[uid]).kind == "complete"
    assert not list(journal_dir(root).glob("*.jsonl"))


def test_repair_keeps_the_prefix_before_a_damaged_frame_and_a_cut_last_line(session):
    killed = killed_scan(session, after_events=6)
    root = session.data_dir
    (path,) = journal_dir(root).glob("*.jsonl")
    docs, note = read_journal(path)
    assert note is None
    res = next(d for n, d in docs if n == "stream_resource")
    folder = uri_path(res["uri"])
    with open(os.path.join(folder, "000004.ome.tif"), "wb") as fh:
        fh.write(b"garbage")
    with open(path, "a") as fh:
        fh.write('["event",{"uid":"cut-by-the-k')  # the kill cut the last line
    (r,) = repair(session.catalog, root)
    assert r.action == "repaired" and r.frames == 4 and r.dropped_frames >= 1
    assert any("000004.ome.tif" in n for n in r.notes)
    assert any("cut" in n for n in r.notes)
    assert session.catalog[killed].metadata["stop"]["num_events"]["primary"] == 4


def test_repair_leaves_a_running_scan_alone_and_reports_runs_without_journal(session):
    root = session.data_dir
    killed = killed_scan(session, after_events=2)
    (path,) = journal_dir(root).glob("*.jsonl")
    import fcntl

    with open(path) as fh:  # a live scan holds this lock
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        (r,) = repair(session.catalog, root)
        assert r.action == "running" and run_state(session.catalog[killed]).kind == "open"
    # the journal lost: nothing can be rebuilt, and the report says so
    shutil.move(str(path), str(root / "elsewhere.jsonl"))
    (r,) = repair(session.catalog, root, dry_run=True)
    assert r.action == "unrecoverable" and r.uid == killed and "no journal" in r.notes[0]


def test_a_killed_scan_in_a_moved_data_directory_is_repaired_there(tmp_path):
    from srash_ophyd.catalog import close_catalog, open_catalog

    s = small_session(tmp_path / "d", seed=3, pixels=32)
    try:
        killed = killed_scan(s, after_events=3)
    finally:
        s.close()
    moved = tmp_path / "moved with space"
    shutil.move(str(tmp_path / "d"), str(moved))
    client = open_catalog(moved)
    try:
        (r,) = repair(client, moved)
        assert r.action == "repaired" and r.frames == 3
        run = client[killed]
        assert run["primary"]["srash_image"].read().shape[0] == 3
    finally:
        close_catalog(client)


def test_a_journal_of_a_run_the_catalog_has_whole_is_removed(session, tmp_path):
    (uid,) = session.RE(mosaic(session, rows=1, cols=1))
    stale = journal_dir(session.data_dir) / f"{uid}.jsonl"
    start = session.catalog[uid].metadata["start"]
    stale.write_text(json.dumps(["start", dict(start)]) + "\n")
    (r,) = repair(session.catalog, session.data_dir)
    assert r.action == "stale-journal" and not stale.exists()


def test_a_pmt_overlight_trip_is_the_stop_reason(session):
    seen = []
    pmt = session.mic.sim.pmt

    def trip_after_two(name, doc):
        if name == "start":
            seen.append(doc["uid"])
        if name == "event" and doc["seq_num"] == 2:
            pmt.tripped = True  # the latch of a real overlight trip

    with pytest.raises(DeviceFailure, match="overlight"):
        session.RE(mosaic(session, sample_id="PMT"), trip_after_two)
    stop = session.catalog[seen[0]].metadata["stop"]
    assert stop["exit_status"] == "fail" and "overlight" in stop["reason"]
    assert "DeviceStatus" not in stop["reason"]


def test_the_journal_refuses_to_lose_a_run_silently(tmp_path):
    """A journal directory that cannot be written stops the run at its start."""
    blocker = tmp_path / "journal"
    blocker.write_text("a file where the folder should be")
    writer = JournaledWriter(lambda name, doc: None, blocker)
    with pytest.raises(OSError, match="journal"):
        writer("start", {"uid": "u1", "time": 0.0})


@given(st.lists(st.sampled_from(["scan", "--api-key", "--api-key=k", "--api", "--a", "KEY",
                                 "-x", "--averages", "3", "--catalog", "http://h"]),
                max_size=12))
def test_api_keys_never_survive_redaction(argv):
    out = redact_argv(argv)
    assert len(out) == len(argv)
    i = 0
    while i < len(argv):  # argparse's reading: an option, then its value
        name, eq, _ = argv[i].partition("=")
        if len(name) >= 3 and "--api-key".startswith(name):
            if eq:
                assert out[i] == f"{name}=***"
            elif i + 1 < len(argv):
                assert out[i + 1] == "***"
                i += 1
        else:
            assert out[i] == argv[i]
        i += 1
