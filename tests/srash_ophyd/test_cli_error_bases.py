"""The command line's error policy: the packages' error bases are user errors (one line,
exit status 2); any other exception, a plain ValueError included, is a bug and keeps its
traceback."""

from __future__ import annotations

import argparse

import pytest

from ml.common.errors import MLError
from plans.errors import PlanError
from simulators.errors import SimulatorError
from srash_ophyd.errors import SrashError


def _run_raising(monkeypatch, exc: BaseException) -> int:
    from srash_ophyd import cli

    def fake_parser() -> argparse.ArgumentParser:
        p = argparse.ArgumentParser(prog="srash")

        def boom(args: argparse.Namespace) -> int:
            raise exc

        p.set_defaults(func=boom)
        return p

    monkeypatch.setattr(cli, "build_parser", fake_parser)
    return cli.main([])


@pytest.mark.parametrize("exc", [SimulatorError("bad setting"), SrashError("bad catalog"),
                                 PlanError("bad plan argument"), MLError("bad weights"),
                                 FileNotFoundError("no such file")])
def test_package_errors_are_one_line_user_errors(monkeypatch, capsys, exc):
    assert _run_raising(monkeypatch, exc) == 2
    err = capsys.readouterr().err
    assert err.startswith("srash: error: ") and "Traceback" not in err
    assert str(exc.args[0]) in err


@pytest.mark.parametrize("exc", [ValueError("a bug"), KeyError("a bug"), TypeError("a bug")])
def test_other_exceptions_are_bugs_and_propagate(monkeypatch, exc):
    with pytest.raises(type(exc)):
        _run_raising(monkeypatch, exc)


def test_every_package_error_base_is_caught_and_distinct():
    bases = {SimulatorError, SrashError, PlanError, MLError}
    assert len(bases) == 4
    # the ValueError-derived bases do not make every ValueError a user error
    assert not issubclass(ValueError, tuple(bases))
