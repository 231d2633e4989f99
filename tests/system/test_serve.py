"""``srash serve`` end to end: the catalog served by a real server subprocess (embedded
SQLite, or the real PostgreSQL on 127.0.0.1:5432), used by ``srash`` commands with API keys.

- keys and scopes: no key / an unknown key are refused with a clear message; the read-only
  key searches and reads arrays and documents but cannot write (a scan with it is refused
  before anything is acquired); the read-write key scans;
- ``run.documents()`` served and embedded: the same documents, every one valid against
  event-model's schemas;
- two instrument sessions (two ``srash scan`` processes) scanning into one served
  PostgreSQL catalog at the same time while this process searches and reads: no run,
  frame or document lost;
- the server killed mid-scan: the scan says so, its frames and documents stay in the
  journal, and ``srash catalog repair`` against the restarted server recovers every tile.

The PostgreSQL test is skipped outside CI when PostgreSQL does not answer (the reason says
how to start it) and fails in CI (``CI`` set). Servers bind free loopback ports and are
killed in teardown; each PostgreSQL test has a database of its own, dropped afterwards.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from srash_ophyd.cli import main
from tests.postgres import admin, fresh_database

pytestmark = [
    pytest.mark.slow,
    # third-party: tiled's in-process Context uses starlette's TestClient over httpx
    pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient` is "
                               "deprecated"),
]

REPO = Path(__file__).resolve().parents[2]
WRITE_KEY, READ_KEY = secrets.token_hex(32), secrets.token_hex(32)
# tiny fields: the catalog is under test, not the simulator
SCAN = ["--pixels", "48", "--fov-um", "60", "--quiet"]
START_S = 240.0  # generous limits for a busy 2-core machine (never asserted on)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SRASH_", "TILED_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


class Server:
    """``srash serve`` as a subprocess (keys from the environment, not the command line),
    on a free loopback port."""

    def __init__(self, tmp: Path, data_dir: Path, *args: str) -> None:
        self.log = tmp / f"serve-{uuid.uuid4().hex[:6]}.log"
        self.out = self.log.with_suffix(".out")
        env = _env(SRASH_SERVE_API_KEY=WRITE_KEY, SRASH_SERVE_READ_KEYS=READ_KEY)
        with open(self.log, "wb") as err, open(self.out, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "srash_ophyd.cli", "serve", "--data-dir",
                 str(data_dir), "--port", "0", "--json", *args],
                cwd=REPO, env=env, stdout=out, stderr=err, start_new_session=True)
        deadline = time.monotonic() + START_S
        while True:
            text = self.out.read_text()
            if text.strip():
                self.info = json.loads(text.splitlines()[0])
                self.url = self.info["url"]
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"srash serve did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def stop(self, kill: bool = False) -> None:
        if self.proc.poll() is None:
            (self.proc.kill if kill else self.proc.terminate)()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def servers(tmp_path):
    started: list[Server] = []

    def start(data_dir: Path, *args: str) -> Server:
        started.append(Server(tmp_path, data_dir, *args))
        return started[-1]

    yield start
    for s in started:
        s.stop()


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def refused(rc: int, err: str, *words: str) -> None:
    """Exit 2, no traceback, the last stderr line is the error and names every word."""
    assert rc == 2, err
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("srash: error: "), err
    for w in words:
        assert w in last, (w, err)


def validated_documents(run) -> list[tuple[str, dict]]:
    """``run.documents()``, each checked against event-model's JSON schema of its kind."""
    from event_model import DocumentNames, schema_validators

    docs = list(run.documents())
    for name, doc in docs:
        schema_validators[DocumentNames(name)].validate(doc)
    return docs


def check_run_whole(run, frames_per_tile: int, tiles: int) -> list[tuple[str, dict]]:
    """The run is closed successfully with every frame: one event per frame, every frame
    file of its stream resources on disk, the documents valid and consistent."""
    from ml.io.frames import uri_path

    md = run.metadata
    assert md["stop"]["exit_status"] == "success", md["stop"]
    n = tiles * frames_per_tile
    assert md["stop"]["num_events"]["primary"] == n
    docs = validated_documents(run)
    kinds = Counter(name for name, _ in docs)
    assert kinds["start"] == kinds["stop"] == 1 and kinds["event"] == n, kinds
    resources = {d["uid"]: d for name, d in docs if name == "stream_resource"}
    datums = [d for name, d in docs if name == "stream_datum"]
    files = []
    for datum in datums:
        res = resources[datum["stream_resource"]]
        folder = Path(uri_path(res["uri"]))
        template = res["parameters"]["template"]  # replayed: printf-style
        files += [folder / (template % i if "%" in template else template.format(i))
                  for i in range(datum["indices"]["start"], datum["indices"]["stop"])]
    assert len(set(files)) == n and all(f.is_file() for f in files), files
    return docs


# ---------------------------------------------------------------------------- SQLite
def test_keys_scopes_and_documents_served_and_embedded(servers, tmp_path, capsys,
                                                       monkeypatch):
    monkeypatch.delenv("TILED_API_KEY", raising=False)
    d = tmp_path / "data"
    srv = servers(d)
    url = srv.url
    assert srv.info["write_keys"] == 1 and srv.info["read_keys"] == 1
    assert WRITE_KEY not in srv.log.read_text() + srv.out.read_text()

    rc, _, err = cli(capsys, "catalog", "search", "--catalog", url)
    refused(rc, err, url, "requires an API key", "--api-key")
    rc, _, err = cli(capsys, "catalog", "search", "--catalog", url, "--api-key",
                     secrets.token_hex(32))
    refused(rc, err, "HTTP 401", "not accepted")
    rc, _, err = cli(capsys, "scan", "--grid", "1x2", *SCAN, "--data-dir", str(d),
                     "--catalog", url, "--api-key", READ_KEY)
    refused(rc, err, "not allowed to write", "read-write key")
    assert not list(d.rglob("*.tif"))  # refused before anything was acquired

    rc, out, err = cli(capsys, "scan", "--grid", "1x2", *SCAN, "--data-dir", str(d),
                       "--catalog", url, "--api-key", WRITE_KEY, "--sample", "S-001",
                       "--json")
    assert rc == 0, err
    uid = json.loads(out)["uid"]

    rc, out, err = cli(capsys, "catalog", "search", "--catalog", url, "--api-key",
                       READ_KEY, "--text", "S-001", "--json")
    assert rc == 0, err
    assert [r["uid"] for r in json.loads(out)] == [uid]

    from tiled.client.utils import ClientError

    from srash_ophyd.catalog import close_catalog, open_catalog

    reader = open_catalog(uri=url, api_key=READ_KEY)
    try:
        run = reader[uid]
        served = check_run_whole(run, frames_per_tile=2, tiles=2)
        primary = run["primary"]
        arrays = [primary[k].read() for k in primary if primary[k].structure_family ==
                  "array"]
        assert arrays, list(primary)
        with pytest.raises(ClientError) as refusal:  # the read-only key cannot write
            reader.create_container(key="intruder", metadata={"start": {"uid": "x"}})
        assert refusal.value.response.status_code in (401, 403)
    finally:
        close_catalog(reader)

    srv.stop()  # SIGTERM: a graceful stop
    assert srv.proc.returncode == 0 and "stopped, terminated by SIGTERM" in (
        srv.log.read_text()), srv.log.read_text()[-2000:]
    embedded = open_catalog(d)  # the same catalog, without a server
    try:
        local = check_run_whole(embedded[uid], frames_per_tile=2, tiles=2)
    finally:
        close_catalog(embedded)
    assert ([(n, doc.get("uid")) for n, doc in local]
            == [(n, doc.get("uid")) for n, doc in served])


def test_server_killed_mid_scan_loses_no_frame(servers, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("TILED_API_KEY", raising=False)
    d = tmp_path / "data"
    srv = servers(d)
    log = tmp_path / "scan.log"
    with open(log, "wb") as f:  # real-time pace: the server dies while tiles are acquired
        scan = subprocess.Popen(
            [sys.executable, "-m", "srash_ophyd.cli", "scan", "--grid", "2x2", *SCAN,
             "--time-scale", "1", "--data-dir", str(d), "--catalog", srv.url,
             "--sample", "S-KILL"], cwd=REPO, stdout=f, stderr=subprocess.STDOUT,
            env=_env(TILED_API_KEY=WRITE_KEY))
    try:
        deadline = time.monotonic() + START_S
        while len(list(d.glob("frames/*/*.ome.tif"))) < 3:
            assert scan.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        srv.stop(kill=True)
        assert scan.wait(timeout=START_S) == 1, log.read_text()
    finally:
        if scan.poll() is None:
            scan.kill()
            scan.wait()
    last = log.read_text().strip().splitlines()[-1]
    assert "Traceback" not in log.read_text()
    assert f"the catalog at {srv.url} failed" in last and "finished tiles are safe" in last
    assert "srash catalog repair" in last
    assert len(list(d.glob("journal/*.jsonl"))) == 1
    acquired = len(list(d.glob("frames/*/*.ome.tif")))  # the scan stops at the failed write
    assert acquired >= 3

    again = servers(d)  # the server is back: the run is recovered into it
    rc, out, err = cli(capsys, "catalog", "repair", "--data-dir", str(d), "--catalog",
                       again.url, "--api-key", WRITE_KEY, "--json")
    assert rc == 0, err
    assert [r["action"] for r in json.loads(out)] == ["repaired"]
    from srash_ophyd.catalog import close_catalog, open_catalog

    client = open_catalog(uri=again.url, api_key=READ_KEY)
    try:
        (run,) = client.values()
        assert run.metadata["stop"]["num_events"]["primary"] == acquired  # none lost
        validated_documents(run)
    finally:
        close_catalog(client)


# ---------------------------------------------------------------------------- PostgreSQL
@pytest.fixture
def pg_database():
    yield from fresh_database("srash_serve")


def test_two_sessions_scan_into_one_postgresql_catalog_while_readers_read(
        pg_database, servers, tmp_path, capsys):
    rc, out, err = cli(capsys, "catalog", "init", "--database", pg_database, "--json")
    assert rc == 0 and json.loads(out)["created"], err
    rc, _, err = cli(capsys, "catalog", "init", "--database", pg_database)
    refused(rc, err, "already a catalog")

    d = tmp_path / "shared"  # the instruments write frames where the server reads them
    srv = servers(d, "--database", pg_database)
    assert srv.info["database"] == pg_database
    logs = [tmp_path / f"writer{i}.log" for i in (1, 2)]
    writers = []
    for i, log in enumerate(logs, 1):
        with open(log, "wb") as f:
            writers.append(subprocess.Popen(
                [sys.executable, "-m", "srash_ophyd.cli", "scan", "--grid", "2x2", *SCAN,
                 "--data-dir", str(d), "--catalog", srv.url, "--sample", f"S-{i:03d}",
                 "--seed", str(i), "--json"], cwd=REPO, stdout=f, stderr=subprocess.STDOUT,
                env=_env(TILED_API_KEY=WRITE_KEY)))

    from srash_ophyd.catalog import close_catalog, open_catalog, search_runs

    reads: Counter = Counter()
    errors: list[BaseException] = []
    done = threading.Event()

    def reader() -> None:  # searches and reads as long as the writers write
        client = open_catalog(uri=srv.url, api_key=READ_KEY)
        try:
            while not done.is_set():
                reads["search"] += 1
                for run in search_runs(client, plan="mosaic").values():
                    if run.metadata.get("stop"):
                        reads["documents"] += len(list(run.documents()))
                time.sleep(0.2)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            close_catalog(client)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        codes = [w.wait(timeout=START_S * 2) for w in writers]
    finally:
        done.set()
        thread.join(timeout=60)
        for w in writers:
            if w.poll() is None:
                w.kill()
                w.wait()
    assert codes == [0, 0], [log.read_text()[-2000:] for log in logs]
    assert not errors, errors
    assert reads["search"] > 0
    results = [json.loads(log.read_text().strip().splitlines()[-1]) for log in logs]
    assert sorted(r["scan_id"] for r in results) == [1, 2]  # one data directory: counted

    client = open_catalog(uri=srv.url, api_key=READ_KEY)
    try:
        assert len(client) == 2
        for i, r in enumerate(results, 1):
            (run,) = search_runs(client, sample=f"S-{i:03d}").values()
            assert run.metadata["start"]["uid"] == r["uid"]
            check_run_whole(run, frames_per_tile=2, tiles=4)
    finally:
        close_catalog(client)
    assert not list(d.glob("journal/*.jsonl"))  # every run whole in the catalog


def test_database_lost_mid_scan_keeps_every_frame(pg_database, servers, tmp_path, capsys):
    """PostgreSQL goes away under a running server (its database dropped, connections
    terminated): the scan fails with a message naming the catalog, and every acquired
    frame stays on disk with its documents in the journal."""
    rc, _, err = cli(capsys, "catalog", "init", "--database", pg_database)
    assert rc == 0, err
    d = tmp_path / "data"
    srv = servers(d, "--database", pg_database)
    log = tmp_path / "scan.log"
    with open(log, "wb") as f:
        scan = subprocess.Popen(
            [sys.executable, "-m", "srash_ophyd.cli", "scan", "--grid", "2x2", *SCAN,
             "--time-scale", "1", "--data-dir", str(d), "--catalog", srv.url],
            cwd=REPO, stdout=f, stderr=subprocess.STDOUT, env=_env(TILED_API_KEY=WRITE_KEY))
    try:
        deadline = time.monotonic() + START_S
        while len(list(d.glob("frames/*/*.ome.tif"))) < 3:
            assert scan.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        name = pg_database.rsplit("/", 1)[1]
        asyncio.run(admin(f'DROP DATABASE "{name}" WITH (FORCE)'))
        assert scan.wait(timeout=START_S) == 1, log.read_text()
    finally:
        if scan.poll() is None:
            scan.kill()
            scan.wait()
    text = log.read_text()
    last = text.strip().splitlines()[-1]
    assert "Traceback" not in text, text
    assert f"the catalog at {srv.url} failed" in last and "safe in its journal" in last, text
    (journal,) = d.glob("journal/*.jsonl")
    from srash_ophyd.journal import read_journal

    docs, _ = read_journal(journal)
    events = [doc for name, doc in docs if name == "event"]
    frames = list(d.glob("frames/*/*.ome.tif"))
    assert len(frames) >= 3 and len(events) == len(frames)  # every frame journaled
