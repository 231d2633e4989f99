"""One acquisition path: `srash simulate fov` and a one-field `srash scan` record the same
raw frames for the same seeds, registration jitter included (issue 13).

What makes them the same acquisition: the specimen (``--specimen``, ``--phenotype``,
``--seed``), the noise seed (both derive the frame generator with
``simulators.instrument.noise_generators``), the scan settings (``--pixels``, ``--fov-um``,
``--dwell-us``, ``--averages``), the Raman shifts (2850 then 2930 cm^-1) and the field
position. The scan moves the stage to the tile and the stage lands within its
repeatability (drawn from the motion generator), so `simulate` is given the position the
stage reached, as recorded with the frames.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from ml.io.ometiff import read_ome_tiff
from srash_ophyd.catalog import uri_path
from srash_ophyd.cli import main

# third-party: tiled's in-process Context uses starlette's TestClient over httpx, which
# starlette deprecates (nothing in this project can change that)
pytestmark = pytest.mark.filterwarnings(
    "ignore:Using `httpx` with `starlette.testclient` is deprecated")

SPECIMEN = ["--specimen", "testis", "--phenotype", "NOA-SPT", "--seed", "3"]
SCAN = ["--pixels", "64", "--fov-um", "40", "--dwell-us", "10", "--averages", "2"]


def run_json(capsys, argv: list[str]) -> dict:
    assert main(argv + ["--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_simulate_fov_equals_a_one_field_scan_jitter_included(tmp_path, capsys):
    data = tmp_path / "data"
    scan = run_json(capsys, ["scan", "--grid", "1x1", "--x-um", "-400", "--y-um", "250",
                             "--noise-seed", "7", "--data-dir", str(data), "--quiet",
                             *SPECIMEN, *SCAN])
    assert scan["exit_status"] == "success" and scan["frames"] == 2
    show = run_json(capsys, ["catalog", "show", scan["uid"], "--data-dir", str(data)])
    frames = sorted((read_ome_tiff(uri_path(u.split("?")[0]))
                     for u in show["streams"]["primary"]["files"]),
                    key=lambda img: img.settings["frame"]["index"])
    assert [round(f.settings["frame"]["raman_shift_cm1"]) for f in frames] == [2850, 2930]
    # the stage landed within its repeatability of the commanded centre; both frames there
    pos = frames[0].settings["stage"]["position_um"]
    assert pos == frames[1].settings["stage"]["position_um"]
    assert 0 < abs(pos["x"] + 400) < 10 and 0 < abs(pos["y"] - 250) < 10
    # the first raster of the field defines it; the second is displaced (frame jitter)
    assert frames[0].settings["frame"]["registration_px"] == [0.0, 0.0]
    assert np.hypot(*frames[1].settings["frame"]["registration_px"]) > 0

    out = tmp_path / "fov.ome.tif"
    sim = run_json(capsys, ["simulate", "fov", "--noise-seed", "7", "--x-um", repr(pos["x"]),
                            "--y-um", repr(pos["y"]), "--out", str(out), *SPECIMEN, *SCAN])
    assert sim["channels"] == ["SRS_2850", "SRS_2930", "SHG"]
    assert sim["center_um"] == pytest.approx([pos["x"], pos["y"]], abs=1e-9)
    raw = read_ome_tiff(out).data
    np.testing.assert_array_equal(raw[0], frames[0].data[0])  # SRS 2850
    np.testing.assert_array_equal(raw[1], frames[1].data[0])  # SRS 2930, displaced
    np.testing.assert_array_equal(raw[2], frames[0].data[1])  # SHG of the first raster
    # and another noise seed is another acquisition
    other = tmp_path / "other.ome.tif"
    run_json(capsys, ["simulate", "fov", "--noise-seed", "8", "--x-um", repr(pos["x"]),
                      "--y-um", repr(pos["y"]), "--out", str(other), *SPECIMEN, *SCAN])
    assert not np.array_equal(read_ome_tiff(other).data[0], raw[0])
