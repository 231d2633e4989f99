"""``srash serve`` settings, without a server: keys, database URLs, a database that does not
answer, and the CLI messages for each (the served catalog itself:
tests/system/test_serve.py)."""

from __future__ import annotations

import socket
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from srash_ophyd.catalog import CatalogError
from srash_ophyd.cli import main
from srash_ophyd.errors import SrashError
from srash_ophyd.serve import (
    ENV_API_KEY,
    ENV_READ_KEYS,
    MIN_KEY_HEX,
    READ_SCOPES,
    WRITE_SCOPES,
    APIKeyError,
    DatabaseUnavailable,
    ServeError,
    check_api_key,
    check_database,
    redact_uri,
    server_config,
)

HEX = "0123456789abcdefABCDEF"
KEY_A, KEY_B = "a1" * 32, "b2" * 32


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_errors_are_named_srash_errors():
    assert issubclass(APIKeyError, ServeError) and issubclass(DatabaseUnavailable, ServeError)
    assert issubclass(ServeError, CatalogError) and issubclass(ServeError, SrashError)


def test_read_scopes_cannot_write_and_write_scopes_can():
    assert set(READ_SCOPES) == {"read:metadata", "read:data"}
    assert set(READ_SCOPES) < set(WRITE_SCOPES)
    assert not any(s.startswith(("write", "create", "delete", "register"))
                   for s in READ_SCOPES)
    assert {"write:metadata", "write:data", "create:node", "register"} <= set(WRITE_SCOPES)
    assert {"delete:node", "delete:revision"} <= set(WRITE_SCOPES)  # catalog repair
    assert not any(s.endswith(("apikeys", "principals")) for s in WRITE_SCOPES)


@given(st.text(alphabet=HEX, min_size=MIN_KEY_HEX // 2, max_size=64).map(lambda t: t * 2))
def test_every_long_even_hex_key_is_accepted_in_lower_case(key):
    assert check_api_key(key) == key.lower()
    assert bytes.fromhex(check_api_key(key)).hex() == key.lower()


@given(st.text(min_size=0, max_size=80))
def test_a_key_is_refused_unless_long_even_hex_and_never_echoed(key):
    ok = (len(key) >= MIN_KEY_HEX and len(key) % 2 == 0
          and all(c in string.hexdigits for c in key) and key.isascii())
    if ok:
        assert check_api_key(key) == key.lower()
        return
    with pytest.raises(APIKeyError) as err:
        check_api_key(key, "--read-key")
    msg = str(err.value)
    assert msg.startswith("--read-key not allowed") and "token_hex" in msg
    if len(key) >= 4:
        assert key not in msg


def test_server_config_takes_keys_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_API_KEY, KEY_A.upper())
    monkeypatch.setenv(ENV_READ_KEYS, f" {KEY_B} , {'c3' * 32}")
    cfg = server_config(data_dir=tmp_path, port=0)
    assert cfg.write_keys == (KEY_A,) and cfg.read_keys == (KEY_B, "c3" * 32)
    assert cfg.database is None and cfg.readable == (tmp_path.absolute() / "frames",)
    assert cfg.url == "http://127.0.0.1:0"
    cfg = server_config(data_dir=tmp_path, api_key=KEY_B, read_keys=[KEY_A])  # options win
    assert cfg.write_keys == (KEY_B,) and cfg.read_keys == (KEY_A,)


@pytest.mark.parametrize("kwargs, words", [
    ({}, ["no API key", "--api-key", "--read-key"]),
    ({"api_key": KEY_A, "read_keys": [KEY_A]}, ["use different keys"]),
    ({"api_key": "secret"}, ["--api-key not allowed", "hexadecimal"]),
    ({"api_key": KEY_A, "port": 70000}, ["--port 70000 not allowed"]),
    ({"api_key": KEY_A, "database": "mysql://db/x"}, ["--database", "PostgreSQL URL"]),
    ({"api_key": KEY_A, "database": "sqlite:///x.db"}, ["--database", "--data-dir"]),
])
def test_server_config_refuses_bad_settings(monkeypatch, tmp_path, kwargs, words):
    monkeypatch.delenv(ENV_API_KEY, raising=False)
    monkeypatch.delenv(ENV_READ_KEYS, raising=False)
    with pytest.raises(ServeError) as err:
        server_config(data_dir=tmp_path, **kwargs)
    for w in words:
        assert w in str(err.value), (w, str(err.value))


def test_passwords_are_not_shown():
    assert redact_uri("postgresql://srash:hunter2@db:5432/srash") == (
        "postgresql://srash:***@db:5432/srash")
    assert redact_uri("postgresql://srash@db/srash") == "postgresql://srash@db/srash"


def test_a_database_where_nothing_listens_is_named():
    url = f"postgresql://postgres@127.0.0.1:{_free_port()}/srash"
    with pytest.raises(DatabaseUnavailable) as err:
        check_database(url, timeout_s=3)
    assert url in str(err.value) and "does not answer" in str(err.value)


def cli(capsys, *argv: str) -> tuple[int, str]:
    rc = main(list(argv))
    return rc, capsys.readouterr().err


def test_cli_says_what_is_wrong(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv(ENV_API_KEY, raising=False)
    monkeypatch.delenv(ENV_READ_KEYS, raising=False)
    rc, err = cli(capsys, "serve", "--data-dir", str(tmp_path))
    assert rc == 2 and err.startswith("srash: error: no API key"), err
    rc, err = cli(capsys, "serve", "--data-dir", str(tmp_path), "--api-key", "letmein")
    assert rc == 2 and "--api-key not allowed" in err and "letmein" not in err, err
    down = f"postgresql://postgres@127.0.0.1:{_free_port()}/srash"
    rc, err = cli(capsys, "serve", "--data-dir", str(tmp_path), "--api-key", KEY_A,
                  "--database", down)
    assert rc == 2 and f"catalog database {down} does not answer" in err, err
    assert not (tmp_path / "catalog.db").exists()  # nothing created for a down database
    rc, err = cli(capsys, "catalog", "init", "--database", down)
    assert rc == 2 and "does not answer" in err and "Traceback" not in err, err
    for argv in (["serve", "--help"], ["catalog", "init", "--help"]):
        with pytest.raises(SystemExit) as ex:
            main(argv)
        assert ex.value.code == 0
    assert "read-only key" in capsys.readouterr().out
