"""A 3x3 mosaic written by one process, found and read back by others (issue 4 acceptance)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ml.io.ometiff import read_ome_tiff
from srash_ophyd.catalog import uri_path
from srash_ophyd.cli import main

# third-party: tiled's in-process Context uses starlette's TestClient over httpx, which
# starlette deprecates (nothing in this project can change that)
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings(
    "ignore:Using `httpx` with `starlette.testclient` is deprecated")]

PIXELS, FOV = 48, 30.0


def srash(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    env.pop("SRASH_DATA_DIR", None)
    return subprocess.run([sys.executable, "-m", "srash_ophyd.cli", *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def mosaic_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("e2e")
    p = srash("scan", "--grid", "3x3", "--overlap", "25", "--pixels", str(PIXELS),
              "--fov-um", str(FOV), "--averages", "16", "--sample", "S-17", "--patient", "P-4",
              "--phenotype",
              "NOA-SPG", "--seed", "5", "--noise-seed", "2", "--json", cwd=work)
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout)
    return work, summary


def test_scan_reports_the_run(mosaic_run):
    work, s = mosaic_run
    assert s["exit_status"] == "success" and s["tiles_done"] == 9 and s["frames"] == 18
    assert s["diagnosis"] == "NOA" and s["phenotype"] == "NOA-SPG"
    assert (work / "srash-data" / "catalog.db").is_file()
    assert len(list((work / "srash-data" / "frames").rglob("*.ome.tif"))) == 18


def test_search_in_a_new_process_finds_it(mosaic_run):
    work, s = mosaic_run
    p = srash("catalog", "search", "--sample", "S-17", "--diagnosis", "NOA", "--plan",
              "mosaic", "--since", "1d", "--json", cwd=work)
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)
    assert [r["uid"] for r in rows] == [s["uid"]]
    r = rows[0]
    assert (r["patient"], r["phenotype"], r["shape"], r["exit_status"]) == (
        "P-4", "NOA-SPG", [3, 3], "success")
    p = srash("catalog", "search", "--data-dir", "srash-data", "--patient", "nobody", "--json",
              cwd=work)
    assert p.returncode == 0 and json.loads(p.stdout) == []


def test_tiles_through_tiled_equal_the_files_and_the_run_validates(mosaic_run):
    from bluesky_tiled_plugins.routers.validator import router as validator

    from srash_ophyd.catalog import close_catalog, open_catalog

    work, s = mosaic_run
    client = open_catalog(work / "srash-data", include_routers=[validator])
    try:
        run = client[s["uid"]]
        run.validate(fix_errors=False, raise_on_error=True)
        start = run.metadata["start"]
        assert start["plan_name"] == "mosaic" and start["shape"] == [3, 3]
        assert start["sample_id"] == "S-17" and start["specimen_seed"] == 5
        assert start["sim_settings"]["scanner"]["pixels"] == PIXELS
        node = run["primary"]["srash_image"]
        uris = sorted(a.data_uri for src in node.data_sources() for a in src.assets)
        assert len(uris) == 18
        arr = node.read()
        assert arr.shape == (18, 2, PIXELS, PIXELS) and arr.dtype == np.float32
        for i, uri in enumerate(uris):
            path = uri_path(uri.split("?")[0])
            np.testing.assert_array_equal(arr[i], read_ome_tiff(path).data)
    finally:
        close_catalog(client)


def test_show_and_unknown_uid(mosaic_run, capsys, monkeypatch):
    work, s = mosaic_run
    monkeypatch.chdir(work)
    assert main(["catalog", "show", s["uid"][:8], "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["uid"] == s["uid"] and info["streams"]["primary"]["events"] == 18
    assert len(info["streams"]["primary"]["files"]) == 18
    assert main(["catalog", "show", "ffffffff-0000"]) == 2
    assert "no run 'ffffffff-0000'" in capsys.readouterr().err


def test_export_tiles_and_a_seamless_mosaic(mosaic_run, tmp_path, capsys):
    work, s = mosaic_run
    out = tmp_path / "export"
    assert main(["catalog", "export", s["uid"], "--out", str(out), "--data-dir",
                 str(work / "srash-data"), "--json"]) == 0
    ex = json.loads(capsys.readouterr().out)
    assert len(ex["tiles"]) == 9 and not ex["skipped"]
    tiles = [read_ome_tiff(p) for p in ex["tiles"]]
    assert tiles[0].channel_names == ["SRS_2850", "SRS_2930", "SHG"]
    assert tiles[0].data.shape == (3, PIXELS, PIXELS)
    mosaic = read_ome_tiff(ex["mosaic"])
    assert mosaic.pixel_size_um == pytest.approx(FOV / PIXELS)
    assert Path(ex["png"]).stat().st_size > 1000
    # seamless: where two tiles overlap (placed by their recorded stage positions) they
    # show the same tissue: the difference is detector noise, not structure
    p = mosaic.pixel_size_um
    pos = [(round(t.settings["center_um"][0] / p), round(t.settings["center_um"][1] / p))
           for t in tiles]
    diffs, structured = [], 0
    for a in range(9):
        for b in range(a + 1, 9):
            dx, dy = pos[b][0] - pos[a][0], pos[b][1] - pos[a][1]
            if abs(dx) >= PIXELS - 4 or abs(dy) >= PIXELS - 4 or \
                    (abs(dx) < 8) == (abs(dy) < 8):
                continue  # only edge neighbours (diagonal corners are a few pixels)
            A = tiles[a].data[0, max(dy, 0):PIXELS + min(dy, 0), max(dx, 0):PIXELS + min(dx, 0)]
            B = tiles[b].data[0, max(-dy, 0):PIXELS + min(-dy, 0),
                              max(-dx, 0):PIXELS + min(-dx, 0)]
            d = (A - B).astype(np.float64)
            diffs.append((a, b, d.std() / np.sqrt(2), abs(d.mean()), A.std()))
    assert len(diffs) == 12  # 3x3 grid: 6 horizontal + 6 vertical neighbours
    noise = float(np.median([x[2] for x in diffs]))  # per-frame SRS noise (V)
    for a, b, sigma, offset, spread in diffs:
        # the difference of two overlapping tiles is detector noise only: a misplaced tile
        # (a few pixels) doubles it where there is tissue
        assert sigma < 1.3 * noise and offset < 0.5 * noise, (a, b, sigma, offset, noise)
        structured += spread > 2 * noise
    assert structured >= 2  # and some overlaps do show tissue (not only empty lumen)
    # the stitched mosaic is finite where tiles are and reproduces a tile's centre exactly
    m = mosaic.data
    assert np.isfinite(m).mean() > 0.95
