"""File writes shared by ml modules: atomic writes (weights, figures, tables) and JSON.

:func:`atomic_write` writes to a temporary file beside the target and renames it over the
target, so a reader never sees a half-written file. :func:`write_json` writes strict JSON
(numpy scalars / arrays converted, NaN and inf -> null) that way.

Permissions: the temporary file is created with ``os.open(..., 0o666)`` and ``O_EXCL``, so
the kernel applies the process umask exactly as it does for a plain ``open(path, "w")``
(``0o666 & ~umask``: 0o644 under umask 0o022); the umask is never read or changed, so there
is no window in which another thread sees a different one. When ``path`` already exists its
permission bits are kept, as ``open()`` on an existing file keeps them.
(``tempfile.mkstemp`` would create 0o600 whatever the umask.)
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ml.common.errors import ReportError

__all__ = ["atomic_write", "create_temp_beside", "to_jsonable", "write_json"]


def create_temp_beside(p: Path) -> str:
    """Create an empty, new file ``<dir>/<name>.<random>.tmp`` beside ``p`` with the mode a
    plain ``open()`` would give ``p`` (module doc); return its path."""
    try:
        mode = stat.S_IMODE(os.stat(p).st_mode) if p.is_file() else None
    except OSError:
        mode = None
    for _ in range(100):
        tmp = str(p.parent / f"{p.name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0),
                         0o666)
        except FileExistsError:
            continue
        try:
            if mode is not None and hasattr(os, "fchmod"):
                os.fchmod(fd, mode)
        except BaseException:
            os.close(fd)
            os.unlink(tmp)
            raise
        os.close(fd)
        return tmp
    raise FileExistsError(f"no free temporary name beside {str(p)!r} after 100 tries")


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file next to ``path``, then rename it over
    ``path`` (parents created); on any failure the temporary file is removed and ``path``
    is left untouched. The result has the permissions of a plain ``open()`` (module doc)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = create_temp_beside(p)
    try:
        write(tmp)
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return p

def to_jsonable(obj: Any) -> Any:
    """``obj`` with numpy scalars / arrays, tuples, paths and dataclasses turned into plain
    JSON types; NaN and +-inf become None. Mapping keys become strings.

    Raises
    ------
    ReportError
        A value of another type (the message names its path in ``obj``).
    """
    def conv(o: Any, where: str) -> Any:
        if o is None or isinstance(o, (bool, str)):
            return o
        if isinstance(o, np.bool_):
            return bool(o)
        if isinstance(o, (int, np.integer)):
            return int(o)
        if isinstance(o, (float, np.floating)):
            f = float(o)
            return f if math.isfinite(f) else None
        if isinstance(o, np.ndarray):
            if o.dtype.kind not in "biufU":
                raise ReportError(f"{where}: array of dtype {o.dtype} is not JSON data")
            return conv(o.tolist(), where)
        if isinstance(o, Mapping):
            return {str(k.item() if isinstance(k, np.generic) else k):
                    conv(v, f"{where}[{k!r}]") for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [conv(v, f"{where}[{i}]") for i, v in enumerate(o)]
        if isinstance(o, os.PathLike):
            return os.fspath(o)
        if dataclasses.is_dataclass(o) and not isinstance(o, type):
            return conv(dataclasses.asdict(o), where)
        raise ReportError(f"{where}: {type(o).__name__} is not JSON data (expected numbers, "
                          "strings, lists, dicts, numpy scalars / arrays)")

    return conv(obj, "obj")


def write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 2) -> Path:
    """Write ``to_jsonable(obj)`` as strict JSON (no NaN tokens), atomically."""
    text = json.dumps(to_jsonable(obj), indent=indent, allow_nan=False) + "\n"

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)

    return atomic_write(path, write)
