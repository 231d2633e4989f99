"""Atomic file writes shared by ml modules (weights, report figures, JSON).

Permissions: the temporary file is created with ``os.open(..., 0o666)`` and ``O_EXCL``, so
the kernel applies the process umask exactly as it does for a plain ``open(path, "w")``
(``0o666 & ~umask``: 0o644 under umask 0o022); the umask is never read or changed, so there
is no window in which another thread sees a different one. When ``path`` already exists its
permission bits are kept, as ``open()`` on an existing file keeps them.
(``tempfile.mkstemp`` would create 0o600 whatever the umask.)
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path
from typing import Callable

__all__ = ["atomic_write", "create_temp_beside"]


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
