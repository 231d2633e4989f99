"""`srash scan` / `srash catalog` / `srash shell` without acquiring: help, dry run, bad input."""

from __future__ import annotations

import json

import pytest

from srash_ophyd.cli import main
from srash_ophyd.cli.options import parse_grid, parse_overlap
from srash_ophyd.cli.scan import mosaic_geometry


@pytest.mark.parametrize("argv", [
    ["scan"], ["catalog"], ["catalog", "search"], ["catalog", "show"], ["catalog", "export"],
    ["shell"]])
def test_help_of_every_new_command(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv + ["--help"])
    assert exc.value.code == 0
    assert "usage: srash " + " ".join(argv) in capsys.readouterr().out


def test_grid_and_overlap_parsing():
    assert parse_grid("3x4") == (3, 4)
    assert parse_overlap("10") == pytest.approx(0.1)
    assert parse_overlap("12.5%") == pytest.approx(0.125)
    for bad in ("100", "-1", "abc"):
        with pytest.raises(ValueError, match="overlap"):
            parse_overlap(bad)
    with pytest.raises(ValueError, match="grid"):
        parse_grid("3")


def test_geometry_is_snake_ordered_and_centred():
    tiles = mosaic_geometry(2, 3, 100.0, 0.2, (10.0, -5.0), snake=True)
    assert [(t["row"], t["col"]) for t in tiles] == [(0, 0), (0, 1), (0, 2), (1, 2), (1, 1),
                                                      (1, 0)]
    xs = sorted({round(t["x_um"], 6) for t in tiles})
    assert xs == pytest.approx([-70.0, 10.0, 90.0])  # pitch 80 um around x = 10
    assert sorted({t["y_um"] for t in tiles}) == pytest.approx([-45.0, 35.0])


def test_dry_run_prints_positions_time_and_layout_png(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    png = tmp_path / "layout.png"
    assert main(["scan", "--dry-run", "--grid", "2x3", "--overlap", "20", "--fov-um", "100",
                 "--x-um", "0", "--y-um", "0", "--png", str(png), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["tiles"] == 6 and s["frames"] == 12 and len(s["positions_um"]) == 6
    assert s["positions_um"][0] == pytest.approx([-80.0, -40.0])
    assert s["estimated_instrument_time_s"] > 0
    assert png.stat().st_size > 1000
    assert not (tmp_path / "srash-data").exists()  # nothing acquired, no catalog
    assert main(["scan", "--dry-run", "--grid", "2x2"]) == 0
    out = capsys.readouterr().out
    assert "4 tiles" in out and "estimated real-instrument time" in out


@pytest.mark.parametrize("argv, message", [
    (["--overlap", "100"], "overlap 100% not allowed"),
    (["--grid", "3x3", "--fov-um", "360", "--x-um", "24900"], "outside the stage limits"),
    (["--grid", "0x3"], "rows and columns must be >= 1"),
    (["--pixels", "0"], "pixels"),
])
def test_bad_scan_input_exits_2_and_writes_nothing(argv, message, tmp_path, capsys):
    data = tmp_path / "d"
    assert main(["scan", "--data-dir", str(data)] + argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("srash: error:") and message in err
    assert not data.exists()


@pytest.mark.parametrize("what", [["search"], ["show", "abcdef"],
                                  ["export", "abcdef", "--out", "x"]])
def test_missing_catalog_is_a_clear_error_and_creates_nothing(what, tmp_path, capsys):
    data = tmp_path / "nothing-here"
    assert main(["catalog"] + what + ["--data-dir", str(data)]) == 2
    err = capsys.readouterr().err
    assert "no catalog at" in err and "srash scan" in err
    assert not data.exists()


def test_unreachable_catalog_url_is_a_clear_error(capsys):
    assert main(["catalog", "search", "--catalog", "http://127.0.0.1:9"]) == 2
    assert "cannot reach the catalog at http://127.0.0.1:9" in capsys.readouterr().err


def test_bad_since_is_a_clear_error(tmp_path, capsys):
    assert main(["catalog", "search", "--since", "yesterday-ish",
                 "--data-dir", str(tmp_path)]) == 2
    assert "--since 'yesterday-ish' not understood" in capsys.readouterr().err


@pytest.mark.slow
def test_shell_runs_a_plan_like_a_beamline_profile(tmp_path):
    """`srash shell` loads RE, mic, plans, catalog; a piped command runs a mosaic into the
    catalog (IPython reads stdin when it is not a terminal)."""
    import subprocess
    import sys

    cmds = ('uid = RE(plans.mosaic([mic], mic.raman, mic.xyz.x, mic.xyz.y, rows=1, cols=2, '
            'fov_um=mic.sim.scanner.fov_um, md=session.run_md(sample_id="SH1")))\n'
            'print("RUNS", len(catalog), catalog[-1].start["sample_id"])\n')
    r = subprocess.run([sys.executable, "-m", "srash_ophyd.cli", "shell", "--data-dir",
                        str(tmp_path / "d"), "--pixels", "32", "--fov-um", "20"],
                       input=cmds, capture_output=True, text=True, timeout=300)
    assert "RUNS 1 SH1" in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]
