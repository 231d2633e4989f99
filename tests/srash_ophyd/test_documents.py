"""``run.documents()`` on the embedded catalog (:func:`srash_ophyd.catalog.open_catalog`):
the json-seq exporter is registered, every replayed document validates against
event-model's schema of its kind, and the replay carries the run the RunEngine emitted
(served: tests/system/test_serve.py)."""

from __future__ import annotations

from collections import Counter

import bluesky.plans as bp
import pytest

from srash_ophyd.catalog import close_catalog, make_writer, open_catalog
from srash_ophyd.devices.factory import make_microscope


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient` is deprecated")
def test_embedded_documents_replay_valid_and_whole(RE, tmp_path):
    from event_model import DocumentNames, schema_validators

    data = tmp_path / "data"
    mic = make_microscope("beads", seed=2, data_dir=data / "frames", pixels=24,
                          fov_um=20.0, averages=1)
    client = open_catalog(data, create=True)
    try:
        emitted: list[tuple[str, dict]] = []
        RE.subscribe(make_writer(client))
        (uid,) = RE(bp.list_scan([mic], mic.raman, [2850, 2930, 3000], md={"sample_id": "D-1"}),
                    lambda name, doc: emitted.append((name, doc)))
        replay = list(client[uid].documents())
    finally:
        close_catalog(client)
    for name, doc in replay:
        schema_validators[DocumentNames(name)].validate(doc)
    kinds = Counter(name for name, _ in replay)
    assert kinds["start"] == kinds["stop"] == kinds["descriptor"] == 1
    assert kinds["event"] == 3 and kinds["stream_resource"] == 1
    first = {name: doc for name, doc in reversed(emitted)}
    got = {name: doc for name, doc in reversed(replay)}
    for name in ("start", "descriptor", "stop"):
        assert got[name]["uid"] == first[name]["uid"], name
    # the exporter names stream resources itself; the data they point at is the same
    assert got["stream_resource"]["data_key"] == first["stream_resource"]["data_key"]
    assert got["stream_resource"]["uri"] == first["stream_resource"]["uri"]
    assert got["start"]["sample_id"] == "D-1"
    assert got["stop"]["num_events"] == first["stop"]["num_events"]
    events = [d for n, d in replay if n == "event"]
    assert [e["seq_num"] for e in events] == [1, 2, 3]
    sent = [d for n, d in emitted if n == "event"]
    assert [e["data"]["raman_shift_cm1"] if "raman_shift_cm1" in e["data"] else None
            for e in events] == [e["data"].get("raman_shift_cm1") for e in sent]
    datums = [d for n, d in replay if n == "stream_datum"]
    assert sum(d["indices"]["stop"] - d["indices"]["start"] for d in datums) == 3
