"""Scan ids that count up across sessions, lookup by scan id, and the catalog search options
(``--text`` with hyphenated ids, ``--cohort``, ``--split``) on the embedded SQLite catalog."""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from srash_ophyd.catalog import close_catalog, open_catalog, search_runs
from srash_ophyd.cli import main
from srash_ophyd.runmd import md_dir
from tests.sessions import here_mosaic

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings(
    "ignore:Using `httpx` with `starlette.testclient` is deprecated")]

SCAN = ("--grid", "1x1", "--pixels", "32", "--fov-um", "30", "--quiet", "--json")


def _scan(data_dir, sample: str) -> dict:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["scan", "--data-dir", str(data_dir), "--sample", sample, *SCAN]) == 0
    return json.loads(out.getvalue())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two `srash scan` commands (S-001, S-0012), then a shell-like session (BEC on) with two
    cohort runs (S-003 test, S-004 train): four runs, scan ids 1..4 if they persist."""
    from srash_ophyd.session import make_session

    d = tmp_path_factory.mktemp("ids") / "data"
    uids = {s["sample_id"]: (s["scan_id"], s["uid"]) for s in
            (_scan(d, "S-001"), _scan(d, "S-0012"))}
    s = make_session(data_dir=d, specimen="testis", phenotype="normal", seed=2,
                     noise_seed=2, progress=False, suspenders=False, best_effort=True,
                     pixels=32, fov_um=30.0, averages=1)
    table = io.StringIO()
    try:
        with contextlib.redirect_stdout(table):
            for sample, split in (("S-003", "test"), ("S-004", "train")):
                uid, = s.RE(here_mosaic(s, 1, 1, sample_id=sample, cohort="c-1",
                                        split=split))
                uids[sample] = (s.RE.md["scan_id"], uid)
    finally:
        s.close()
    return d, uids, table.getvalue()


@pytest.fixture(scope="module")
def catalog(runs):
    c = open_catalog(runs[0])
    yield c
    close_catalog(c)


def _samples(results) -> list[str]:
    return [r.metadata["start"]["sample_id"] for r in results.values()]


def _search(capsys, d, *argv: str) -> list[str]:
    rc = main(["catalog", "search", "--data-dir", str(d), "--json", *argv])
    out, err = capsys.readouterr()
    assert rc == 0, err
    return [r["sample"] for r in json.loads(out)]


def test_scan_ids_count_up_across_sessions_and_find_their_run(runs, catalog):
    d, uids, table = runs
    assert [uids[k][0] for k in ("S-001", "S-0012", "S-003", "S-004")] == [1, 2, 3, 4]
    for scan_id, uid in uids.values():
        assert catalog[scan_id].metadata["start"]["uid"] == uid
    assert len(catalog) == 4
    assert "Transient Scan ID: 3" in table and "Transient Scan ID: 4" in table  # BEC
    assert (md_dir(d) / "scan_id#0").is_file()


def test_free_text_finds_hyphenated_ids_as_whole_words(catalog):
    def find(text):
        return _samples(search_runs(catalog, text=text))

    assert find("S-001") == ["S-001"]  # not S-0012
    assert find("s-0012") == ["S-0012"]  # case-insensitive
    assert find("S-003 c-1") == ["S-003"]  # every word
    assert find('S-004 "quoted" (x') == []
    assert find("normal S-0012") == ["S-0012"]
    assert len(find("normal")) == 4


def test_search_options_combine_as_and(runs, catalog, capsys):
    def find(**criteria):
        return _samples(search_runs(catalog, **criteria))

    assert find(cohort="c-1") == ["S-003", "S-004"]
    assert find(cohort="c-1", split="test") == ["S-003"]
    assert find(split="test", text="S-004") == []
    assert find(cohort="c-2") == []
    d = runs[0]  # the command line passes every option through
    assert _search(capsys, d, "--split", "train", "--cohort", "c-1", "--text", "S-004") == [
        "S-004"]
    assert _search(capsys, d, "--text", "S-001") == ["S-001"]
    rc = main(["catalog", "search", "--data-dir", str(d), "--cohort", "c-1"])
    out, _ = capsys.readouterr()
    assert rc == 0 and out.splitlines()[0].split()[:2] == ["uid", "scan"]
    assert [line.split()[1] for line in out.splitlines()[1:]] == ["3", "4"]


def test_text_without_a_word_is_refused(runs, capsys):
    d, _, _ = runs
    assert main(["catalog", "search", "--data-dir", str(d), "--text", "-- ()"]) == 2
    assert "has no word to search for" in capsys.readouterr().err


def test_a_damaged_scan_id_store_is_a_clear_error(runs, capsys):
    d, _, _ = runs
    f = md_dir(d) / "scan_id#0"
    good = f.read_bytes()
    f.write_bytes(b"\xc1")
    try:
        rc = main(["scan", "--data-dir", str(d), "--sample", "S-9", *SCAN])
    finally:
        f.write_bytes(good)
    out, err = capsys.readouterr()
    assert rc == 2 and out == ""
    assert err.startswith("srash: error: session metadata file") and "delete it" in err
    assert "Traceback" not in err
