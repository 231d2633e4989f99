"""Fault matrix, catalog side (issue 12, findings 6, 8, 9): each fault ends with exit status 2
and one ``srash: error:`` line that names the problem (and the file), never a traceback; a
moved or copied data directory still exports the same arrays."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from ml.io.ometiff import read_ome_tiff
from srash_ophyd.cli import main

# third-party: tiled's in-process Context uses starlette's TestClient over httpx, which
# starlette deprecates (nothing in this project can change that)
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings(
    "ignore:Using `httpx` with `starlette.testclient` is deprecated")]

ROOT = Path(__file__).parents[2]
SAMPLE = "S-1\x1b[2J\nfake row"  # an escape sequence and a newline in a sample id
SCAN = ("--grid", "1x2", "--pixels", "32", "--fov-um", "20", "--quiet")


def srash(*argv: str, cwd: Path, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("SRASH_DATA_DIR", None)
    env.pop("TILED_API_KEY", None)
    return subprocess.run([*prefix, sys.executable, "-m", "srash_ophyd.cli", *argv], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=300)


def refused(rc: int, err: str, *words: str) -> None:
    """Exit 2, no traceback, the last stderr line is the error and names every word."""
    assert rc == 2, err
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("srash: error: "), err
    for w in words:
        assert w in last, (w, err)


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tiles(folder: Path) -> list[np.ndarray]:
    files = sorted(folder.glob("tile_*.ome.tif"))
    assert files, folder
    return [np.asarray(read_ome_tiff(f).data) for f in files]


@pytest.fixture(scope="module")
def scanned(tmp_path_factory):
    """One 1x2 mosaic in ``<work>/D`` (sample id with control characters) and its export."""
    work = tmp_path_factory.mktemp("faults-catalog")
    p = srash("scan", *SCAN, "--sample", SAMPLE, "--json", "--data-dir", "D", cwd=work)
    assert p.returncode == 0, p.stderr
    uid = json.loads(p.stdout)["uid"]
    p = srash("catalog", "export", "-1", "--data-dir", "D", "--out", "ref", cwd=work)
    assert p.returncode == 0, p.stderr
    return work, uid


# ---------------------------------------------------------------------------- damaged db
def test_a_garbage_catalog_db_is_named_by_every_command(scanned):
    work, _ = scanned
    g = work / "G"
    g.mkdir()
    (g / "catalog.db").write_bytes(np.random.default_rng(0).bytes(300_000))
    for argv in (("catalog", "search"), ("catalog", "show", "-1"),
                 ("catalog", "export", "-1", "--out", "xg"), ("scan", *SCAN)):
        p = srash(*argv, "--data-dir", "G", cwd=work)
        refused(p.returncode, p.stderr, "G/catalog.db", "damaged", "not an SQLite database")
    assert not list((g / "frames").rglob("*.tif"))  # scan acquired nothing


def test_a_truncated_catalog_db_is_named(scanned):
    work, _ = scanned
    t = work / "T"
    t.mkdir()
    db = (work / "D" / "catalog.db").read_bytes()
    (t / "catalog.db").write_bytes(db[: len(db) // 2])
    p = srash("catalog", "search", "--data-dir", "T", cwd=work)
    refused(p.returncode, p.stderr, "T/catalog.db", "truncated")


def test_a_damaged_table_inside_catalog_db_is_named(scanned):
    """Intact header and schema, a garbage page: the error surfaces while reading."""
    work, _ = scanned
    shutil.copytree(work / "D", work / "B")
    db = work / "B" / "catalog.db"
    p = srash("catalog", "search", "--data-dir", "B", cwd=work)  # re-points the copy
    assert p.returncode == 0, p.stderr
    con = sqlite3.connect(db)
    (page,) = con.execute("PRAGMA page_size").fetchone()
    (root,) = con.execute("SELECT rootpage FROM sqlite_master WHERE name = 'nodes'").fetchone()
    con.close()
    with open(db, "r+b") as f:
        f.seek((root - 1) * page)
        f.write(b"\xa5" * page)
    p = srash("catalog", "search", "--data-dir", "B", cwd=work)
    refused(p.returncode, p.stderr, "B/catalog.db", "malformed")


# ---------------------------------------------------------------------------- read-only
@contextlib.contextmanager
def read_only(path: Path):
    """A command prefix under which ``path`` is read-only: chmod for a normal user; for root
    (which ignores permission bits) a read-only bind mount in a private mount namespace."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [path, *path.rglob("*")]}
        for p in modes:
            p.chmod(modes[p] & ~0o222)
        try:
            yield ()
        finally:
            for p, m in modes.items():
                p.chmod(m)
        return
    prefix = ("unshare", "-m", "sh", "-c",
              'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"',
              "sh", str(path))
    probe = subprocess.run([*prefix, "sh", "-c", f"! touch '{path}/.w' 2>/dev/null"],
                           capture_output=True)
    if probe.returncode != 0:
        pytest.skip("running as root without a way to make a directory read-only")
    yield prefix


def test_scan_into_a_read_only_catalog_is_refused_up_front(scanned):
    work, _ = scanned
    shutil.copytree(work / "D", work / "R")
    p = srash("catalog", "search", "--data-dir", "R", cwd=work)  # re-points the copy
    assert p.returncode == 0, p.stderr
    before = sorted((work / "R").rglob("*"))
    with read_only(work / "R") as prefix:
        p = srash("scan", *SCAN, "--data-dir", "R", cwd=work, prefix=prefix)
    refused(p.returncode, p.stderr, "catalog ./R is read-only")
    assert "run None" not in p.stderr
    assert sorted((work / "R").rglob("*")) == before


def test_a_moved_read_only_catalog_says_why_it_cannot_be_read(scanned):
    work, _ = scanned
    shutil.copytree(work / "D", work / "R2")
    with read_only(work / "R2") as prefix:
        p = srash("catalog", "search", "--data-dir", "R2", cwd=work, prefix=prefix)
    refused(p.returncode, p.stderr, "./R2", "was written at", "read-only")


# ---------------------------------------------------------------------------- relocation
def test_a_copied_and_then_moved_data_directory_exports_the_same_arrays(scanned):
    work, uid = scanned
    ref = tiles(work / "ref")
    original = sha(work / "D" / "catalog.db")
    shutil.copytree(work / "D", work / "C")
    p = srash("catalog", "export", "-1", "--data-dir", "C", "--out", "out-c", cwd=work)
    assert p.returncode == 0, p.stderr
    assert "was written at" in p.stderr and str(work / "D") in p.stderr
    assert sha(work / "D" / "catalog.db") == original  # the copy did not touch the original
    for a, b in zip(ref, tiles(work / "out-c"), strict=True):
        np.testing.assert_array_equal(a, b)

    (work / "C").rename(work / "M")
    p = srash("catalog", "show", "-1", "--data-dir", "M", cwd=work)
    assert p.returncode == 0, p.stderr
    assert uid in p.stdout and f"{work / 'M'}/frames/" in p.stdout
    assert f"{work / 'C'}/" not in p.stdout
    p = srash("catalog", "export", "-1", "--data-dir", "M", "--out", "out-m", cwd=work)
    assert p.returncode == 0, p.stderr
    for a, b in zip(ref, tiles(work / "out-m"), strict=True):
        np.testing.assert_array_equal(a, b)
    p = srash("catalog", "export", "-1", "--data-dir", "D", "--out", "out-d", cwd=work)
    assert p.returncode == 0 and "was written at" not in p.stderr, p.stderr


# ---------------------------------------------------------------------------- search values
@pytest.mark.parametrize("argv, words", [
    (("--sample", "x" * 100_000), ("--sample", "100000 characters", "at most 256")),
    (("--patient", "P\x1b[2J"), ("--patient", "control characters")),
    (("--since", "nan"), ("--since", "finite")),
    (("--since", "inf"), ("--since", "finite")),
    (("--since=-infd",), ("--since", "finite")),
])
def test_bad_search_values_are_refused_before_opening(tmp_path, capsys, argv, words):
    rc, out, err = cli(capsys, "catalog", "search", *argv, "--data-dir", str(tmp_path / "no"))
    refused(rc, err, *words)
    assert out == "" and not (tmp_path / "no").exists()


# ---------------------------------------------------------------------------- uids
def test_uid_prefixes_match_exactly_and_minus_zero_is_refused(scanned, capsys):
    work, uid = scanned
    d = str(work / "D")
    for bad in (uid[:4] + "_", uid[:4] + "%", uid[:3] + "__"):
        rc, _, err = cli(capsys, "catalog", "show", bad, "--data-dir", d)
        refused(rc, err, repr(bad), "hexadecimal digits and dashes")
    rc, out, err = cli(capsys, "catalog", "show", uid[:8], "--data-dir", d)
    assert rc == 0 and uid in out, err
    if uid[:8] != uid[:8].upper():  # SQLite's LIKE ignores case; the lookup does not
        rc, _, err = cli(capsys, "catalog", "show", uid[:8].upper(), "--data-dir", d)
        refused(rc, err, "no run")
    rc, _, err = cli(capsys, "catalog", "show", "-0", "--data-dir", d)
    refused(rc, err, "-0 is not a run", "-1 for the latest")
    rc, _, err = cli(capsys, "catalog", "export", "-0", "--data-dir", d, "--out",
                     str(work / "x0"))
    refused(rc, err, "-0 is not a run")
    assert not (work / "x0").exists()


# ---------------------------------------------------------------------------- escaping
def test_control_characters_in_metadata_are_escaped_in_tables_but_exact_in_json(scanned,
                                                                                 capsys):
    work, uid = scanned
    d = str(work / "D")
    escaped = "S-1\\x1b[2J\\nfake row"
    rc, out, err = cli(capsys, "catalog", "search", "--data-dir", d)
    assert rc == 0, err
    assert "\x1b" not in out and escaped in out
    assert len(out.splitlines()) == 2  # header and one row: no fake row
    rc, out, err = cli(capsys, "catalog", "show", "-1", "--data-dir", d)
    assert rc == 0 and "\x1b" not in out and escaped in out, err
    assert not any(line.startswith("fake row") for line in out.splitlines())
    rc, out, _ = cli(capsys, "catalog", "search", "--data-dir", d, "--json")
    assert [r["sample"] for r in json.loads(out)] == [SAMPLE]
    rc, out, _ = cli(capsys, "catalog", "show", uid, "--data-dir", d, "--json")
    assert json.loads(out)["sample"] == SAMPLE


# ---------------------------------------------------------------------------- servers
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory):
    """``tiled serve catalog --temp`` on loopback that requires the API key ``secret``."""
    log = tmp_path_factory.mktemp("tiled-server") / "server.log"
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k != "TILED_API_KEY"}
    with open(log, "wb") as f:
        proc = subprocess.Popen([sys.executable, "-m", "tiled", "serve", "catalog", "--temp",
                                 "--api-key", "secret", "--host", "127.0.0.1", "--port",
                                 str(port)], stdout=f, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/api/v1/", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"tiled serve did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_a_server_that_wants_a_key_says_so(keyed_server, capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("TILED_API_KEY", raising=False)
    rc, _, err = cli(capsys, "catalog", "search", "--catalog", keyed_server)
    refused(rc, err, keyed_server, "requires an API key", "--api-key")
    rc, _, err = cli(capsys, "catalog", "search", "--catalog", keyed_server,
                     "--api-key", "wrong")
    refused(rc, err, keyed_server, "HTTP 401", "not accepted")
    rc, _, err = cli(capsys, "scan", *SCAN, "--catalog", keyed_server,
                     "--data-dir", str(tmp_path / "s"))
    refused(rc, err, "requires an API key")
    assert not list((tmp_path / "s").rglob("*.tif"))


def test_an_unreachable_server_is_named(capsys):
    url = f"http://127.0.0.1:{_free_port()}"
    rc, _, err = cli(capsys, "catalog", "show", "-1", "--catalog", url)
    refused(rc, err, f"cannot reach the catalog at {url}")
