"""Catalog input checks and error mapping without a catalog server: uid prefixes, search
values, --since, terminal escaping, the damaged-file check, relocation of stored URIs, and the
CLI's last-resort mapping of third-party errors (issue 12)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from srash_ophyd import catalog as cat
from srash_ophyd.catalog import (
    MAX_VALUE_CHARS,
    CatalogError,
    check_criteria,
    check_uid_prefix,
    parse_since,
)
from srash_ophyd.display import escape_control, is_control


# ---------------------------------------------------------------------------- escaping
@given(st.text())
def test_escaped_text_has_no_control_characters(text):
    out = escape_control(text)
    assert not any(is_control(c) for c in out)
    assert "\n" not in out and "\x1b" not in out and "\r" not in out


@given(st.text(alphabet=st.characters(exclude_categories=("Cc", "Cf", "Cs", "Co", "Cn",
                                                         "Zl", "Zp"))))
def test_printable_text_is_unchanged(text):
    assert escape_control(text) == text


@given(st.lists(st.sampled_from(["a", " ", "\n", "\t", "\x1b", "\x7f", "\u202e", "\x00",
                                 "\U000e0001"]), max_size=30).map("".join))
def test_escapes_decode_back_to_the_text(text):
    # repr-style escapes: Python's own decoder recovers every control character
    assert escape_control(text).encode().decode("unicode_escape") == text


def test_escape_examples():
    assert escape_control("S-1\x1b[2J\nfake row") == "S-1\\x1b[2J\\nfake row"
    assert escape_control("a\u202eb\u2028") == "a\\u202eb\\u2028"
    assert escape_control(None) == "None"


# ---------------------------------------------------------------------------- uid prefixes
@given(st.uuids(version=4), st.integers(5, 36))
def test_every_prefix_of_a_uid_is_accepted(u, n):
    prefix = str(u)[:n]
    assert check_uid_prefix(prefix) == prefix


@pytest.mark.parametrize("bad", ["5345_", "5345%", "53_45", "%", "abc", "1234", "g1234",
                                 "12345 ", " 12345", "1234\n5", "-1", "",
                                 "4fb3b0ad-7839-4189-a4b4-e0a5c1e02af10",  # a uuid + 1 char
                                 "5345*", "5345[0]"])
def test_uid_prefixes_that_are_not_exact_are_refused(bad):
    with pytest.raises(CatalogError, match="hexadecimal digits and dashes"):
        check_uid_prefix(bad)


@given(st.text(min_size=5, max_size=36).filter(
    lambda s: any(c not in "0123456789abcdefABCDEF-" for c in s)))
def test_any_other_character_is_refused(text):
    with pytest.raises(CatalogError):
        check_uid_prefix(text)


# ---------------------------------------------------------------------------- search values
@pytest.mark.parametrize("since", ["nan", "inf", "-inf", "NaN", "nand", "infh", "1e400",
                                   "1e308w", float("nan"), float("inf"), "yesterday", ""])
def test_since_must_be_finite_and_understood(since):
    with pytest.raises(CatalogError, match="--since"):
        parse_since(since)


def test_since_accepts_dates_ages_and_epoch_seconds():
    assert parse_since("2025-01-31") < parse_since("2025-01-31T14:00")
    assert parse_since("1700000000") == 1700000000.0
    assert parse_since("2d") < parse_since("1d")


def test_search_values_are_bounded_and_printable():
    check_criteria(sample="x" * MAX_VALUE_CHARS, phenotype=["normal", "NOA-SPT"])
    with pytest.raises(CatalogError, match=r"--sample .*100000 characters.* at most 256"):
        check_criteria(sample="x" * 100_000)
    with pytest.raises(CatalogError, match="control characters"):
        check_criteria(patient="P-1\x1b[2J")
    with pytest.raises(CatalogError, match="--phenotype"):
        check_criteria(phenotype=["normal", "a\nb"])
    with pytest.raises(CatalogError, match="not text"):
        check_criteria(cohort=3)
    with pytest.raises(CatalogError, match="--since"):
        check_criteria(since="nan")


# ---------------------------------------------------------------------------- damaged files
def _sqlite_db(path: Path, rows: int = 2000) -> Path:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t (x TEXT)")
    con.executemany("INSERT INTO t VALUES (?)", [("x" * 100,)] * rows)
    con.commit()
    con.close()
    return path


def test_damaged_databases_are_named(tmp_path):
    good = _sqlite_db(tmp_path / "good.db")
    cat._check_sqlite_file(good)  # intact: no error
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(os.urandom(50_000))
    truncated = tmp_path / "truncated.db"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    for path, why in ((garbage, "not an SQLite database"), (truncated, "truncated"),
                      (empty, "empty")):
        with pytest.raises(CatalogError, match=why) as info:
            cat._check_sqlite_file(path)
        assert path.name in str(info.value) and "backup" in str(info.value)


# ---------------------------------------------------------------------------- relocation
def _assets_db(db: Path, uris: list[str]) -> None:
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE assets (id INTEGER PRIMARY KEY, data_uri TEXT UNIQUE)")
    con.executemany("INSERT INTO assets (data_uri) VALUES (?)", [(u,) for u in uris])
    con.commit()
    con.close()


def _uris(db: Path) -> list[str]:
    con = sqlite3.connect(db)
    try:
        return [u for (u,) in con.execute("SELECT data_uri FROM assets ORDER BY id")]
    finally:
        con.close()


def test_a_moved_catalog_is_repointed_and_nothing_else_changes(tmp_path, capsys):
    old, new = tmp_path / "old dir", tmp_path / "new"
    new.mkdir()
    db = new / cat.CATALOG_DB
    o, oq = str(old), str(old).replace(" ", "%20")
    _assets_db(db, [f"sqlite://localhost/{o}/tables.sqlite",
                    f"file://{oq}/frames/r1/000000.ome.tif",  # Path.as_uri() form
                    f"file://localhost{o}/data/x.zarr",  # tiled's own form
                    f"file://{o}2/frames/r2/000000.ome.tif",  # a sibling: not under old
                    "file:///elsewhere/frames/a.tif"])
    assert cat._relocate(new, db) == new
    n = str(new)
    assert _uris(db) == [f"sqlite://localhost/{n}/tables.sqlite",
                         f"file://{n}/frames/r1/000000.ome.tif",
                         f"file://localhost{n}/data/x.zarr",
                         f"file://{o}2/frames/r2/000000.ome.tif",
                         "file:///elsewhere/frames/a.tif"]
    err = capsys.readouterr().err
    assert "was written at" in err and "updated 3" in err and len(err.splitlines()) == 1
    before = _uris(db)
    assert cat._relocate(new, db) == new and _uris(db) == before  # idempotent, silent
    assert capsys.readouterr().err == ""


def test_the_same_directory_by_another_path_is_not_rewritten(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    uris = [f"sqlite://localhost/{real}/tables.sqlite", f"file://{real}/frames/a.tif"]
    _assets_db(real / cat.CATALOG_DB, uris)
    assert cat._relocate(link, link / cat.CATALOG_DB) == real
    assert _uris(real / cat.CATALOG_DB) == uris


# ---------------------------------------------------------------------------- CLI mapping
def test_third_party_errors_map_to_exit_2_but_bugs_keep_their_traceback(monkeypatch, capsys):
    import httpx
    import sqlalchemy.exc

    from srash_ophyd.cli import catalog as cmd
    from srash_ophyd.cli import main

    def raising(exc):
        def run(args):
            raise exc
        return run

    monkeypatch.setattr(cmd, "run_search", raising(sqlalchemy.exc.OperationalError(
        "SELECT 1", {}, sqlite3.OperationalError("database disk image is malformed"))))
    assert main(["catalog", "search"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("srash: error: catalog database") and "malformed" in err
    assert "SELECT" not in err

    monkeypatch.setattr(cmd, "run_search", raising(httpx.ConnectError("connection refused")))
    assert main(["catalog", "search"]) == 2
    assert "connection refused" in capsys.readouterr().err

    monkeypatch.setattr(cmd, "run_search", raising(KeyError("a bug")))
    with pytest.raises(KeyError):
        main(["catalog", "search"])


def test_show_and_export_refuse_minus_zero_before_any_lookup():
    from srash_ophyd.catalog import get_run as _get_run

    class NoLookups:
        def __getitem__(self, key):
            raise AssertionError(f"looked up {key!r}")

    for uid in ("-0", "-00", "5345_", "5345%"):
        with pytest.raises(CatalogError, match="-1 for the latest"):
            _get_run(NoLookups(), uid)
