"""Command-line options shared by the commands that open the catalog."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_catalog_options(p: argparse.ArgumentParser) -> None:
    """``--data-dir``, ``--catalog URL``, ``--api-key`` in a "catalog" group."""
    c = p.add_argument_group("catalog")
    c.add_argument("--data-dir", type=Path, default=None,
                   help="data directory (frames + embedded catalog; default $SRASH_DATA_DIR "
                        "or ./srash-data)")
    c.add_argument("--catalog", default=None, metavar="URL",
                   help="tiled server URL instead of the embedded catalog")
    c.add_argument("--api-key", default=None,
                   help="API key of the tiled server (default: $TILED_API_KEY; the variable "
                        "keeps the key out of shell history and process lists). Never "
                        "recorded in saved command lines")


def add_task_option(p: argparse.ArgumentParser, *, default: str | None = "normal-vs-noa",
                    help_default: str = "normal-vs-noa") -> None:
    """``--task`` with the LBNet-Dx task names (:data:`ml.dx.predict.TASKS`)."""
    from ml.dx.predict import TASKS

    p.add_argument("--task", choices=sorted(TASKS), default=default,
                   help=f"{' or '.join(sorted(TASKS))} (default {help_default})")


def add_weights_option(p: argparse.ArgumentParser) -> None:
    """``--weights PATH`` (default: the shipped weights of the task)."""
    p.add_argument("--weights", type=Path, default=None,
                   help="weights written by `srash train` (default: the shipped weights "
                        "ml/weights/lbnet_<task>.pt)")


#: options whose values are secrets: replaced by ``***`` in recorded command lines
SECRET_OPTIONS = ("--api-key",)


def redact_argv(argv: list[str]) -> list[str]:
    """``argv`` with the values of :data:`SECRET_OPTIONS` replaced by ``***`` (both the
    ``--api-key KEY`` and the ``--api-key=KEY`` forms, and unambiguous prefixes such as
    ``--api``, which argparse accepts)."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append("***")
            hide_next = False
            continue
        name, eq, _ = arg.partition("=")
        secret = len(name) >= 3 and any(opt.startswith(name) for opt in SECRET_OPTIONS)
        if secret and name.startswith("--"):
            if eq:
                out.append(f"{name}=***")
            else:
                out.append(arg)
                hide_next = True
            continue
        out.append(arg)
    return out


def command_line() -> str:
    """This process's command line as ``srash ...`` (recorded in weights metadata and
    reports), secrets redacted (:func:`redact_argv`)."""
    import shlex
    import sys

    return "srash " + shlex.join(redact_argv(sys.argv[1:]))
