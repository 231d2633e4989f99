"""Command-line options shared by the commands that open the catalog."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from simulators.errors import SettingsError

from ..errors import SrashError


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


def add_strict_option(p: argparse.ArgumentParser) -> None:
    """``--strict`` on a reader command's parser (the readers' fault policy:
    :class:`ml.io.frames.ReadFaults`)."""
    p.add_argument("--strict", action="store_true",
                   help="stop at the first unreadable frame file or run without a stop "
                        "document (default: warn, skip that field or run, go on)")


def add_task_option(p: argparse.ArgumentParser, *, default: str | None = "normal-vs-noa",
                    help_default: str = "normal-vs-noa") -> None:
    """``--task`` with the LBNet-Dx task names (:data:`plans.contract.DX_TASKS`)."""
    from plans.contract import DX_TASKS

    p.add_argument("--task", choices=sorted(DX_TASKS), default=default,
                   help=f"{' or '.join(sorted(DX_TASKS))} (default {help_default})")


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


# ---------------------------------------------------------------------------- parsing
def parse_floats(text: str) -> list[float]:
    """``"2850,2930"`` -> [2850.0, 2930.0] (argparse ``type=``)."""
    try:
        vals = [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}")
    if not vals:
        raise argparse.ArgumentTypeError("expected at least one number")
    return vals


def parse_grid(text: str) -> tuple[int, int]:
    """``"3x3"`` / ``"2x4"`` (rows x columns) -> (rows, cols)."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX*,]\s*(\d+)\s*", str(text))
    if not m:
        raise SettingsError(f"--grid {text!r} not understood: use ROWSxCOLS, e.g. 3x3")
    rows, cols = int(m.group(1)), int(m.group(2))
    if rows < 1 or cols < 1:
        raise SettingsError(f"--grid {text!r}: rows and columns must be >= 1")
    if rows * cols > 10000:
        raise SettingsError(f"--grid {text!r}: {rows * cols} tiles, at most 10000 allowed")
    return rows, cols


def parse_overlap(text: str | float) -> float:
    """Percent (``10`` or ``10%``) -> fraction 0.1; must be 0 <= overlap < 100 %."""
    s = str(text).strip().rstrip("%").strip()
    try:
        pct = float(s)
    except ValueError:
        raise SettingsError(f"--overlap {text!r} not understood: give percent of the field, "
                            "e.g. 10 or 10%") from None
    if not 0.0 <= pct < 100.0:
        raise SettingsError(f"--overlap {pct:g}% not allowed: must be >= 0 and < 100 "
                            "(percent of the field of view)")
    return pct / 100.0


class CLIError(SrashError):
    """A user-facing command-line error (printed without traceback, exit status 2)."""


# ---------------------------------------------------------------------------- classifier
class ClassifyError(CLIError):
    """Missing weights, a run that cannot be classified, or a failed classification."""


def load_dx(weights: Path | None, task: str | None):
    """The classifier of ``--weights`` / ``--task``; a clear :class:`ClassifyError` when the
    weights are missing or for another task."""
    from ml.dx.predict import LBNetDx, default_weights_path

    path = weights if weights is not None else default_weights_path(task or "normal-vs-noa")
    if not Path(path).is_file():
        what = "weights file" if weights is not None else "no shipped weights at"
        raise ClassifyError(f"{what} {str(path)!r}{' does not exist' if weights else ''}: "
                            f"train them with `srash train --task {task or 'normal-vs-noa'}` "
                            "or pass --weights PATH")
    dx = LBNetDx.load(path, task=task or "normal-vs-noa")
    if task is not None and dx.task.name != task:
        raise ClassifyError(f"weights {str(path)!r} are for task {dx.task.name!r}, not "
                            f"{task!r}")
    return dx
