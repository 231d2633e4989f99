"""Persistent session metadata (``RE.md``): scan ids across processes, kill-safety, errors."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

import pytest
from bluesky import RunEngine
from bluesky.utils import PersistentDict
from hypothesis import given, settings
from hypothesis import strategies as st

from srash_ophyd.runmd import (
    SessionMetadata,
    SessionMetadataError,
    md_dir,
    open_session_md,
    scan_id_source,
)

values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.text(max_size=20)
    | st.floats(allow_nan=False),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids,
                                                              max_size=4),
    max_leaves=10)


@settings(max_examples=10)
@given(md=st.dictionaries(st.text(min_size=1, max_size=30), values, max_size=6))
def test_every_value_survives_a_new_process_and_keeps_bluesky_format(md, tmp_path_factory):
    d = md_dir(tmp_path_factory.mktemp("md"))
    a = SessionMetadata(d)
    assert isinstance(a, PersistentDict)
    for k, v in md.items():
        a[k] = v
    b = SessionMetadata(d)  # what another process sees
    assert dict(b) == md
    # bluesky's own format: one msgpack file per key, named <quoted key>#<n>
    files = {fn.split("#")[0] for fn in os.listdir(d)}
    assert len(files) == len(md)
    for fn in os.listdir(d):
        assert PersistentDict._load((d / fn).read_bytes()) in md.values()


def test_scan_ids_count_up_across_stale_copies_and_never_go_back(tmp_path):
    a, b = SessionMetadata(tmp_path / "m"), SessionMetadata(tmp_path / "m")
    assert [a.next_scan_id(), b.next_scan_id(), a.next_scan_id()] == [1, 2, 3]
    n = a.next_scan_id()
    assert b.next_scan_id() == n + 1
    a["scan_id"] = n  # the RunEngine assigns what the source returned: not written again
    a["versions"] = {"x": 1}
    a["versions"]["x"] = 2  # mutated in place: stored at flush
    a.flush()
    assert dict(SessionMetadata(tmp_path / "m")) == {"scan_id": n + 1, "versions": {"x": 2}}
    a["scan_id"] = 100  # a user's explicit setting is written
    assert b.next_scan_id() == 101


def test_run_engine_scan_ids_persist_between_run_engines(tmp_path):
    import bluesky.plans as bp

    ids = []
    for _ in range(2):  # two sessions, one after the other
        RE = RunEngine(open_session_md(tmp_path), scan_id_source=scan_id_source)
        RE.subscribe(lambda name, doc: ids.append(doc["scan_id"]) if name == "start" else None)
        RE(bp.count([]))
        RE(bp.count([]))
    assert ids == [1, 2, 3, 4]
    assert scan_id_source({"scan_id": 7}) == 8  # a plain dict: bluesky's default


def _allocate(directory, n, out):
    md = SessionMetadata(directory)
    out.put([md.next_scan_id() for _ in range(n)])


def test_processes_allocating_at_once_get_distinct_ids(tmp_path):
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_allocate, args=(tmp_path / "m", 25, out)) for _ in range(3)]
    for p in procs:
        p.start()
    got = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    every = sorted(i for ids in got for i in ids)
    assert every == list(range(1, 76))  # no id handed out twice, none skipped
    assert all(ids == sorted(ids) for ids in got)  # increasing within each process
    assert SessionMetadata(tmp_path / "m")["scan_id"] == 75


def _write_forever(directory):
    md = SessionMetadata(directory)
    blob = "x" * 200_000  # a large value: a kill is likely to land inside a write
    while True:
        md["note"] = blob
        md.next_scan_id()


def test_a_killed_writer_leaves_the_store_readable(tmp_path):
    d = tmp_path / "m"
    ctx = multiprocessing.get_context("fork")
    p = ctx.Process(target=_write_forever, args=(d,))
    p.start()
    try:
        for _ in range(2000):  # until it has written a few times (bounded)
            try:
                if SessionMetadata(d).get("scan_id", 0) >= 5:
                    break
            except SessionMetadataError:
                pass
            time.sleep(0.01)
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.join(timeout=30)
    md = SessionMetadata(d)
    assert md["scan_id"] >= 5 and md["note"] == "x" * 200_000
    assert sorted(fn.split("#")[0] for fn in os.listdir(d)) == ["note", "scan_id"]
    assert md.next_scan_id() == SessionMetadata(d)["scan_id"]


def test_damaged_or_unusable_store_is_a_clear_error(tmp_path):
    md = SessionMetadata(tmp_path / "m")
    md.next_scan_id()
    (tmp_path / "m" / "scan_id#0").write_bytes(b"\xc1 not msgpack")
    with pytest.raises(SessionMetadataError, match="is damaged.*delete it"):
        SessionMetadata(tmp_path / "m")
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / ".srash").write_text("a file where the store's folder belongs")
    with pytest.raises(SessionMetadataError, match="cannot create the session metadata"):
        open_session_md(tmp_path / "f")
    (tmp_path / "m" / "scan_id#0").write_bytes(PersistentDict._dump("seven"))
    with pytest.raises(SessionMetadataError, match="not a number"):
        SessionMetadata(tmp_path / "m").next_scan_id()
