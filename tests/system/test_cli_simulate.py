"""`srash simulate` end to end: real files, JSON contract, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from ml.io.ometiff import read_ome_tiff
from simulators.specimens import SPECIMEN_KINDS, Label, make_specimen
from srash_ophyd.cli import main


def run_json(capsys, *argv: str) -> dict:
    assert main(list(argv) + ["--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_fov_writes_ome_tiff_with_channels_scale_and_settings(tmp_path, capsys):
    out = tmp_path / "f.ome.tif"
    png = tmp_path / "f.png"
    s = run_json(capsys, "simulate", "fov", "--specimen", "reference", "--pixels", "64",
                 "--fov-um", "20", "--out", str(out), "--png", str(png))
    for key in ("path", "shape", "channels", "pixel_size_um", "raman_shifts_cm1", "pump_nm",
                "stokes_nm", "elapsed_s", "instrument_time_s", "faults"):
        assert key in s
    assert s["shape"] == [3, 64, 64]
    assert s["channels"] == ["SRS_2850", "SRS_2930", "SHG"]
    assert s["pixel_size_um"] == pytest.approx(20 / 64)
    img = read_ome_tiff(out)
    assert img.data.shape == (3, 64, 64) and img.data.dtype == np.float32
    assert img.channel_names == s["channels"]
    assert img.pixel_size_um == pytest.approx(20 / 64)
    assert img.settings["pump_nm"] == pytest.approx(s["pump_nm"], abs=1e-3)
    assert png.stat().st_size > 100
    # a pure lipid standard is brighter in the lipid channel than in the protein channel
    assert img.data[0].mean() > img.data[1].mean()


def test_paper_pump_wavelengths_report_physical_shift(capsys, tmp_path):
    s = run_json(capsys, "simulate", "fov", "--specimen", "reference", "--pixels", "32",
                 "--fov-um", "10", "--pump-nm", "795.9,790.9")
    assert s["raman_shifts_cm1"] == pytest.approx([2865.07, 2944.5], abs=0.05)
    assert s["channels"][:2] == ["SRS_2865.1", "SRS_2944.5"]


def test_processed_output_is_power_normalised_and_background_free(capsys, tmp_path):
    out = tmp_path / "p.ome.tif"
    run_json(capsys, "simulate", "fov", "--specimen", "reference", "--pixels", "64",
             "--fov-um", "10", "--processed", "--out", str(out), "--shifts", "2700")
    img = read_ome_tiff(out)
    # off resonance (2700 cm^-1) only the Lorentzian tails of the lipid bands remain, once
    # the lock-in offset is subtracted: compare with the spectrum, not with zero
    from simulators.instrument import build_simulator
    from simulators.specimens import make_specimen
    from simulators.spectra import species_spectrum

    g = build_simulator(make_specimen("reference")).srs_volts_per_unit()
    tail = g * float(species_spectrum("lipid", 2700.0))
    assert 0 < tail < 0.02 * g
    assert float(img.data[0].mean()) == pytest.approx(tail, abs=0.01)
    assert img.settings["processed"] is True


def test_stack_writes_one_channel_per_band(capsys, tmp_path):
    out = tmp_path / "s.ome.tif"
    s = run_json(capsys, "simulate", "stack", "--specimen", "reference", "--pixels", "32",
                 "--fov-um", "10", "--start", "2800", "--stop", "2900", "--step", "20",
                 "--out", str(out), "--png", str(tmp_path / "s.png"))
    assert s["shape"] == [6, 32, 32]
    img = read_ome_tiff(out)
    assert img.channel_names[0] == "SRS_2800" and len(img.channel_names) == 6
    # lipid spectrum peaks near 2850 among these bands
    means = img.data.reshape(6, -1).mean(axis=1)
    assert int(np.argmax(means)) in (2, 3)


@pytest.mark.parametrize("kind", SPECIMEN_KINDS)
def test_default_field_centre_of_every_specimen(kind, capsys, tmp_path):
    """Without --x-um/--y-um the field is centred where the specimen says there is
    something to see (beads: the lipid bead nearest the slide centre)."""
    truth = tmp_path / "t.ome.tif"
    s = run_json(capsys, "simulate", "fov", "--specimen", kind, "--pixels", "32",
                 "--fov-um", "20", "--truth", str(truth))
    assert s["center_um"] == pytest.approx(list(make_specimen(kind, 0).default_center_um()))
    if kind == "beads":  # 0.1 um beads: too small for a truth label at 0.6 um pixels
        bead = make_specimen("beads", 0).nearest_bead(0.0, 0.0, "lipid")
        assert s["center_um"] == pytest.approx([bead.x_um, bead.y_um])
    else:
        assert np.any(read_ome_tiff(truth).data[0] != Label.BACKGROUND)


@pytest.mark.parametrize("argv,needle", [
    (["--pump-nm", "1200"], "700-990 nm"),
    (["--dwell-us", "-3"], "must be > 0"),
    (["--pump-power-mw", "100", "--stokes-power-mw", "80"], "safety limit"),
    (["--pixels", "0"], "pixels"),
    (["--specimen", "cells", "--phenotype", "NOA-SPG"], "testis"),
    (["--shifts", "6000"], "reachable shift"),
])
def test_bad_input_gives_one_line_error_and_exit_2(capsys, argv, needle):
    assert main(["simulate", "fov", "--specimen", "reference", "--pixels", "32"] + argv) == 2 \
        if "--specimen" not in argv else main(["simulate", "fov", "--pixels", "32"] + argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("srash: error:") and needle in err
    assert "Traceback" not in err


def test_bad_argument_type_is_argparse_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["simulate", "fov", "--shifts", "abc"])
    assert exc.value.code == 2
    assert "comma-separated numbers" in capsys.readouterr().err


def test_console_script_help_works():
    r = subprocess.run([sys.executable, "-m", "srash_ophyd.cli", "simulate", "fov", "--help"],
                       capture_output=True, text=True, check=True)
    assert "--pump-nm" in r.stdout and "--x-um" in r.stdout
