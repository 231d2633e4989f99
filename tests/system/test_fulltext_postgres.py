"""Free-text search on a tiled catalog in the real PostgreSQL (127.0.0.1:5432): the terms
:func:`srash_ophyd.catalog.fulltext_terms` builds for SQLite FTS5 also parse as tsquery and
find hyphenated ids there. Skipped outside CI when PostgreSQL is down (never in CI)."""

from __future__ import annotations

import uuid

import pytest

from srash_ophyd.catalog import ROOT_SPEC, search_runs
from tests.postgres import fresh_database

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings(
    "ignore:Using `httpx` with `starlette.testclient` is deprecated")]

@pytest.fixture
def pg_database():
    yield from fresh_database("srash_fts")


def test_hyphenated_free_text_on_postgresql(pg_database, tmp_path):
    from tiled.catalog import from_uri
    from tiled.client import Context, from_context
    from tiled.server.app import build_app

    adapter = from_uri(pg_database, writable_storage=[str(tmp_path)],
                       init_if_not_exists=True, specs=[ROOT_SPEC])
    with Context.from_app(build_app(adapter)) as ctx:
        client = from_context(ctx)
        for k, (sample, cohort) in enumerate((("S-001", "c-1"), ("S-0012", "c-1"),
                                              ("S-003", "c-2"))):
            client.create_container(key=f"run{k}", metadata={"start": {
                "uid": str(uuid.uuid4()), "sample_id": sample, "cohort": cohort,
                "time": 1.0 + k}})

        def find(**criteria):
            return sorted(r.metadata["start"]["sample_id"]
                          for r in search_runs(client, **criteria).values())

        assert find(text="S-001") == ["S-001"]  # not S-0012
        assert find(text="s-0012") == ["S-0012"]
        assert find(text='S-003 "c-2" (x') == []  # every word, punctuation separates
        assert find(text="S-003 c-2") == ["S-003"]
        assert find(text="S-001", cohort="c-1") == ["S-001"]
        assert find(text="S-003", cohort="c-1") == []
