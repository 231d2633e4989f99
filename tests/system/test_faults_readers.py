"""Fault matrix of the catalog readers (issue 12, findings 2 and 6), end to end through the
CLI: bad frame files (truncated, deleted, garbage, another shape) and a killed scan's run
(start document only) against ``catalog export``, ``classify`` and ``quantify``.

Default: the bad field (or run) is skipped with a warning naming the file (or run), the
other fields are processed, exit 0. ``--strict``: ``srash: error: ...`` naming the file,
exit 2. A killed scan's run addressed directly: exit 2 with the repair hint.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlparse

import numpy as np
import pytest

from srash_ophyd.cli import main

# third-party: tiled's in-process Context uses starlette's TestClient over httpx, which
# starlette deprecates (nothing in this project can change that)
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings(
    "ignore:Using `httpx` with `starlette.testclient` is deprecated")]

PIXELS = 96  # the smallest frames on which quantify still finds tubules (360 um fields)
KINDS = ("truncate", "delete", "garbage", "shape")
#: what the message says for each corruption
WHY = {"truncate": "truncated", "delete": "file missing", "garbage": "not a TIFF file",
       "shape": f"(2, 40, 40) image, the stream's descriptor says (2, {PIXELS}, {PIXELS})"}


@pytest.fixture(scope="module")
def cat(tmp_path_factory):
    """A 3x2 mosaic (6 fields, 2 frames each) and, after it, a killed scan's run (a start
    document and nothing else, as the writer leaves it after SIGKILL)."""
    from event_model import compose_run

    from srash_ophyd.catalog import close_catalog, make_writer, open_catalog

    data = tmp_path_factory.mktemp("faults") / "d"
    assert main(["scan", "--grid", "3x2", "--pixels", str(PIXELS), "--sample", "GOOD-1",
                 "--seed", "3", "--data-dir", str(data), "--quiet"]) == 0
    client = open_catalog(data)
    try:
        run = client[-1]
        good = run.metadata["start"]["uid"]
        stream = run["primary"]
        node = stream["srash_image"]
        assets = sorted((a for src in node.data_sources() for a in src.assets),
                        key=lambda a: a.num)
        paths = [Path(urlparse(a.data_uri).path) for a in assets]  # file://localhost/...
        fields = np.asarray(stream["field_index"].read()).tolist()
        by_field: dict[int, list[Path]] = {}
        for f, p in zip(fields, paths):
            by_field.setdefault(int(f), []).append(p)
        bundle = compose_run(metadata={"plan_name": "mosaic", "sample_id": "KILLED-1",
                                       "phenotype": "normal", "diagnosis": "normal"})
        make_writer(client)("start", bundle.start_doc)
        killed = bundle.start_doc["uid"]
    finally:
        close_catalog(client)
    assert len(by_field) == 6 and all(len(v) == 2 for v in by_field.values())
    return SimpleNamespace(data=data, good=good, killed=killed, files=by_field)


def _corrupt(path: Path, kind: str) -> None:
    from ml.io.ometiff import write_ome_tiff

    if kind == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif kind == "delete":
        path.unlink()
    elif kind == "garbage":
        path.write_bytes(bytes(range(7, 256)) * (path.stat().st_size // 249 + 1))
    else:  # a valid OME-TIFF, but not the shape the descriptor says
        write_ome_tiff(path, np.ones((2, 40, 40), np.float32), channel_names=("SRS", "SHG"),
                       pixel_size_um=1.0)


@contextlib.contextmanager
def corrupted(plan: dict[Path, str]):
    """Corrupt the files of ``plan`` ({path: kind}) and put them back afterwards."""
    saved = {p: p.read_bytes() for p in plan}
    try:
        for p, kind in plan.items():
            _corrupt(p, kind)
        yield
    finally:
        for p, b in saved.items():
            p.write_bytes(b)


def srash(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("kind", KINDS)
def test_export_skips_the_field_of_a_bad_frame_or_stops_with_strict(cat, kind, tmp_path,
                                                                       capsys):
    bad = cat.files[1][0]  # the lipid frame of field 1
    with corrupted({bad: kind}):
        rc, out, err = srash(capsys, "catalog", "export", cat.good, "--out",
                             str(tmp_path / "x"), "--data-dir", str(cat.data), "--json")
        assert rc == 0, err
        s = json.loads(out)
        assert len(s["tiles"]) == 5 and Path(s["mosaic"]).is_file()
        assert [(k["field"], k["paths"]) for k in s["skipped"]] == [(1, [str(bad)])]
        lines = [ln for ln in err.splitlines() if str(bad) in ln]
        assert len(lines) == 1 and lines[0].startswith("srash: warning: run ")
        assert "field 1" in lines[0] and WHY[kind] in lines[0] and "Traceback" not in err

        rc, out, err = srash(capsys, "catalog", "export", cat.good, "--out",
                             str(tmp_path / "strict"), "--data-dir", str(cat.data), "--strict")
        assert rc == 2 and out == ""
        assert err.startswith("srash: error: ") and str(bad) in err and WHY[kind] in err
        assert "Traceback" not in err
        assert not (tmp_path / "strict").exists()  # nothing half-written
    # the file is back: the run exports whole again (the test can see a difference)
    rc, out, _ = srash(capsys, "catalog", "export", cat.good, "--out", str(tmp_path / "ok"),
                       "--data-dir", str(cat.data), "--json", "--no-mosaic")
    assert rc == 0 and len(json.loads(out)["tiles"]) == 6


def test_classify_and_quantify_go_on_past_every_kind_of_bad_frame(cat, tmp_path, capsys):
    # fields 0-3 each lose one frame, a different fault each; fields 4 and 5 are intact;
    # the killed scan's run is in the catalog too
    plan = {cat.files[f][f % 2]: kind for f, kind in enumerate(KINDS)}
    with corrupted(plan):
        rc, out, err = srash(capsys, "classify", cat.good, "--no-store", "--json",
                             "--data-dir", str(cat.data))
        assert rc == 0, err
        s = json.loads(out)
        assert s["status"] == "success" and s["n_fields"] == 2
        assert sorted(f["field_index"] for f in s["fields"]) == [4, 5]
        assert s["unreadable_fields"] == 4 and sorted(s["unreadable_files"]) == sorted(
            map(str, plan))
        for path, kind in plan.items():
            line = next(ln for ln in err.splitlines() if str(path) in ln)
            assert line.startswith("srash: warning: ") and WHY[kind] in line
        assert "Traceback" not in err

        rc, out, err = srash(capsys, "classify", cat.good, "--no-store", "--strict",
                             "--data-dir", str(cat.data))
        first = cat.files[0][0]  # field 0's lipid frame: the first bad one read
        assert rc == 2 and err.splitlines()[-1].startswith("srash: error: ")
        assert str(first) in err.splitlines()[-1] and "Traceback" not in err

        out_dir = tmp_path / "q"
        rc, out, err = srash(capsys, "quantify", "--data-dir", str(cat.data), "--out",
                             str(out_dir), "--no-store", "--no-truth", "--overlays", "0",
                             "--quiet", "--json")
        assert rc == 0, err
        q = json.loads(out)
        assert q["scan_uids"] == [cat.good] and q["fields"] >= 1 and q["tubules"] >= 1
        assert q["fields_unreadable"] == 4
        assert {b["path"] for b in q["bad_frames"]} == set(map(str, plan))
        assert [r["uid"] for r in q["skipped_runs"]] == [cat.killed]
        warn = [ln for ln in err.splitlines() if cat.killed in ln]
        assert len(warn) == 1 and "KILLED-1" in warn[0] and "srash catalog repair" in warn[0]
        assert all(str(p) in err for p in plan) and "Traceback" not in err

        rc, _, err = srash(capsys, "quantify", "--sample", "GOOD-1", "--strict", "--data-dir",
                           str(cat.data), "--out", str(out_dir), "--no-store", "--quiet")
        assert rc == 2 and err.startswith("srash: error: ") and str(first) in err

    # --strict over the whole catalog stops at the killed scan's run before reading frames
    rc, _, err = srash(capsys, "quantify", "--strict", "--data-dir", str(cat.data), "--out",
                       str(tmp_path / "q2"), "--no-store", "--quiet")
    assert rc == 2 and cat.killed in err and "srash catalog repair" in err


@pytest.mark.parametrize("argv", [["catalog", "export", "{uid}", "--out", "{tmp}/x"],
                                  ["catalog", "export", "-1", "--out", "{tmp}/x"],
                                  ["classify", "{uid}", "--no-store"],
                                  ["classify", "-1", "--no-store"]])
def test_a_killed_scans_run_addressed_directly_is_a_clear_error(cat, argv, tmp_path, capsys):
    argv = [a.format(uid=cat.killed, tmp=tmp_path) for a in argv]
    rc, out, err = srash(capsys, *argv, "--data-dir", str(cat.data))
    assert rc == 2 and out == ""
    assert err.startswith(f"srash: error: run {cat.killed} has no stop document")
    assert "srash catalog repair" in err and "KeyError" not in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()
