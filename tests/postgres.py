"""A fresh PostgreSQL database per test on the machine's server (127.0.0.1:5432, trust
auth), dropped afterwards. Outside CI a server that does not answer skips the test with how
to start it; in CI (``CI`` set, as ``.ci/run`` does) it fails: the service tests must run."""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Iterator

import pytest

SERVER = "postgresql://postgres@127.0.0.1:5432"


async def admin(sql: str) -> None:
    """Run one SQL statement on the server's ``postgres`` database (CREATE / DROP DATABASE)."""
    import asyncpg

    con = await asyncpg.connect(f"{SERVER}/postgres", timeout=5)
    try:
        await con.execute(sql)
    finally:
        await con.close()


def fresh_database(prefix: str) -> Iterator[str]:
    """Body of a fixture: yields the URL of a new database ``<prefix>_<random>``."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncio.TimeoutError) as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL not reachable on 127.0.0.1:5432 ({exc}); in CI it must "
                        "run (.ci/run starts it)")
        pytest.skip(f"PostgreSQL not reachable on 127.0.0.1:5432 ({exc}); start it with "
                    "`pg_ctlcluster 15 main start` (what .ci/run does)")
    try:
        yield f"{SERVER}/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
