"""A 3x3 mosaic written by one process, found and read back by others (issue 4 acceptance)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
import tifffile

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
    # show the same tissue at the same place and brightness. The recorded positions are
    # the stage's readback (its repeatability error included), so the overlap is known to
    # a fraction of a pixel: the integer offset that best registers the two tiles must be
    # within 1 px of the recorded one, and their mean difference is far below the noise.
    p = mosaic.pixel_size_um
    cen = [np.array(t.settings["center_um"][:2], float) / p for t in tiles]

    def overlap(a: int, b: int, dx: int, dy: int) -> tuple[np.ndarray, np.ndarray]:
        A = tiles[a].data[0, max(dy, 0):PIXELS + min(dy, 0), max(dx, 0):PIXELS + min(dx, 0)]
        B = tiles[b].data[0, max(-dy, 0):PIXELS + min(-dy, 0),
                          max(-dx, 0):PIXELS + min(-dx, 0)]
        return A.astype(np.float64), B.astype(np.float64)

    pairs, structured = 0, 0
    for a in range(9):
        for b in range(a + 1, 9):
            rel = cen[b] - cen[a]  # recorded offset of b from a (px, x y)
            dx, dy = (int(round(v)) for v in rel)
            if abs(dx) >= PIXELS - 4 or abs(dy) >= PIXELS - 4 or \
                    (abs(dx) < 8) == (abs(dy) < 8):
                continue  # only edge neighbours (diagonal corners are a few pixels)
            pairs += 1
            A, B = overlap(a, b, dx, dy)
            noise = float(np.median(np.abs(np.diff(A, axis=1)))) / 0.954  # ~ sqrt2 sigma
            assert abs((A - B).mean()) < 0.5 * noise, (a, b)
            if A.std() < 2 * noise:
                continue  # flat (lumen, background): nothing to register on
            structured += 1
            best = min(((ddx, ddy) for ddx in range(-3, 4) for ddy in range(-3, 4)),
                       key=lambda o: np.std(np.subtract(*overlap(a, b, dx + o[0], dy + o[1]))))
            assert abs(dx + best[0] - rel[0]) <= 1.0 and abs(dy + best[1] - rel[1]) <= 1.0, \
                (a, b, best, rel)
    assert pairs == 12  # 3x3 grid: 6 horizontal + 6 vertical neighbours
    assert structured >= 2  # and some overlaps do show tissue (not only empty lumen)
    # the stitched mosaic is finite where tiles are and reproduces a tile's centre exactly
    m = mosaic.data
    assert np.isfinite(m).mean() > 0.95


# ------------------------------------------------------------------ issue 19: OME files
def ome_of(path: Path):
    """The file's OME model after validating its XML against the OME schema."""
    ome_types = pytest.importorskip("ome_types", reason="pip install 'srash[test]'")
    pytest.importorskip("lxml", reason="pip install 'srash[test]' (ome-types' validator)")
    with tifffile.TiffFile(path) as tif:
        xml = tif.ome_metadata
    ome_types.validate_xml(xml)
    return ome_types.from_xml(xml)


def test_raw_frames_carry_the_ome_metadata(mosaic_run):
    """Issue 19: every raw frame names its SRS channel after its shift and carries the
    date, lasers, detectors, objective and pump wavelength (ome-types, schema-valid)."""
    from plans.contract import srs_channel
    from srash_ophyd.catalog import close_catalog, open_catalog

    work, s = mosaic_run
    scan = work / "srash-data"
    client = open_catalog(scan)
    try:
        stream = client[s["uid"]]["primary"]
        node = stream["srash_image"]
        assets = sorted((a for src in node.data_sources() for a in src.assets),
                        key=lambda a: a.num)
        paths = [Path(urlparse(a.data_uri).path) for a in assets]
        shifts = np.asarray(stream["srash_frame_raman_shift"].read()).tolist()
        pumps = np.asarray(stream["srash_frame_pump_nm"].read()).tolist()
        inst = stream.metadata["data_keys"]["srash_image"]["instrument"]
    finally:
        close_catalog(client)
    assert inst["stokes_nm"] == 1031.0 and inst["objective"]["na"] == 1.2
    assert len(paths) == 18
    for path, shift, pump in zip(paths, shifts, pumps):
        ome = ome_of(path)
        img = ome.images[0]
        assert img.acquisition_date is not None
        srs, shg = img.pixels.channels
        # both frames of a field no longer share the name "SRS": each says its shift
        assert srs.name == srs_channel(shift) and shg.name == "SHG"
        assert srs.excitation_wavelength == pytest.approx(pump)
        assert shg.emission_wavelength == pytest.approx(pump / 2)
        assert {d.type.value for d in ome.instruments[0].detectors} == {"Photodiode", "PMT"}
        assert ome.instruments[0].objectives[0].immersion.value == "Water"
    assert sorted({srs_channel(s) for s in shifts}) == ["SRS_2850", "SRS_2930"]


def test_export_writes_a_pyramid_the_ecosystem_opens(mosaic_run, tmp_path, capsys,
                                                     monkeypatch):
    """Issue 19: the exported tiles and mosaic are schema-valid OME with the instrument; the
    mosaic is a tiled zlib pyramid (threshold and tile lowered for this 120 px mosaic; the
    >2048 px case with the real constants: tests/ml/io/test_ome_files.py) that tifffile and
    the napari reader open."""
    import ml.io.ometiff as ometiff
    from ml.io.ometiff import downsample2
    from ml.viewer.napari_reader import read_srash

    work, s = mosaic_run
    monkeypatch.setattr(ometiff, "PYRAMID_MIN_PX", 100)
    monkeypatch.setattr(ometiff, "TILE_PX", 32)
    out = tmp_path / "export"
    assert main(["catalog", "export", s["uid"], "--out", str(out), "--data-dir",
                 str(work / "srash-data"), "--json"]) == 0
    ex = json.loads(capsys.readouterr().out)
    names = ["SRS_2850", "SRS_2930", "SHG"]
    p = FOV / PIXELS
    ny, nx = ex["mosaic_shape"][1:]
    assert nx > 100 and ex["mosaic_levels"] == len(ometiff.level_shapes((ny, nx))) >= 2
    for path in [*ex["tiles"], ex["mosaic"]]:
        ome = ome_of(Path(path))
        img = ome.images[0]
        assert img.acquisition_date is not None
        assert [c.name for c in img.pixels.channels] == names
        assert [ls.id for ls in ome.instruments[0].lasers] == ["LightSource:pump",
                                                               "LightSource:stokes"]
        assert ome.instruments[0].lasers[1].wavelength == 1031.0
        assert ome.instruments[0].objectives[0].lens_na == pytest.approx(1.2)
        exc = [c.excitation_wavelength for c in img.pixels.channels]
        assert exc[0] > exc[1] and exc[2] == exc[0]  # pump at 2850, at 2930; SHG: 2850's
        assert img.pixels.physical_size_x == pytest.approx(p)
    mosaic_ome = ome_of(Path(ex["mosaic"]))
    plane = mosaic_ome.images[0].pixels.planes[0]
    assert (plane.position_x, plane.position_y) == pytest.approx(tuple(ex["origin_um"]))
    with tifffile.TiffFile(ex["mosaic"]) as tif:
        levels = [lv.asarray() for lv in tif.series[0].levels]
        assert tif.pages[0].is_tiled and tif.pages[0].tilewidth == 32
        assert tif.pages[0].compression == tifffile.COMPRESSION.ADOBE_DEFLATE
    assert len(levels) == ex["mosaic_levels"]
    for a, b in zip(levels, levels[1:]):  # each level the 2x2 mean of the previous
        np.testing.assert_allclose(b, downsample2(a), rtol=1e-6, equal_nan=True)
    img = read_ome_tiff(ex["mosaic"])
    assert img.channel_names == names and img.levels == len(levels)
    ((data, kw, kind),) = read_srash(ex["mosaic"])
    assert kind == "image" and kw["multiscale"] and len(data) == len(levels)
    assert kw["name"] == names and kw["scale"] == pytest.approx((p, p))
    assert kw["colormap"] == ["green", "red", "blue"]
    assert kw["translate"] == pytest.approx((ex["origin_um"][1], ex["origin_um"][0]))
