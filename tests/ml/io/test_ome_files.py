"""Issue 19 acceptance: a simulated field, a hyperspectral stack and exported mosaics opened
with ome-types (schema-valid, the metadata a facility expects), with tifffile (pixel size,
channel names, levels) and with the napari reader function (layers, scale, names)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile

from ml.io.ometiff import (
    OMETiffError,
    downsample2,
    level_shapes,
    read_ome_tiff,
    write_mosaic,
    write_ome_tiff,
)
from ml.io.omexml import Acquisition, immersion_of
from ml.viewer.napari_reader import channel_colormap, napari_get_reader, read_srash
from plans.contract import srs_channel
from simulators.spectra import pump_nm_for_shift, raman_shift_cm1
from srash_ophyd.cli import main

ome_types = pytest.importorskip("ome_types", reason="pip install 'srash[test]' (ome-types)")
pytest.importorskip("lxml", reason="pip install 'srash[test]' (lxml: ome-types' validator)")


def ome_of(path: Path):
    """The file's OME model, after validating its XML against the OME schema."""
    with tifffile.TiffFile(path) as tif:
        xml = tif.ome_metadata
    ome_types.validate_xml(xml)  # raises on a schema violation
    return ome_types.from_xml(xml)


def check_instrument(ome, *, stokes_nm: float = 1031.0) -> None:
    """Instrument with the two lasers, the two detectors and the 60x/1.2 W objective."""
    (inst,) = ome.instruments
    lasers = {ls.id: ls for ls in inst.lasers}
    assert set(lasers) == {"LightSource:pump", "LightSource:stokes"}
    assert lasers["LightSource:stokes"].wavelength == pytest.approx(stokes_nm)
    assert lasers["LightSource:pump"].tuneable and not lasers["LightSource:stokes"].tuneable
    assert sorted(d.type.value for d in inst.detectors) == ["PMT", "Photodiode"]
    (obj,) = inst.objectives
    assert obj.lens_na == pytest.approx(1.2) and obj.immersion.value == "Water"
    assert obj.nominal_magnification == pytest.approx(60.0)
    img = ome.images[0]
    assert img.acquisition_date is not None and img.acquisition_date.year >= 2020
    assert img.instrument_ref.id == inst.id and img.objective_settings.id == obj.id


def check_channels(ome, names, pump_nm, stokes_nm=1031.0) -> None:
    """Names, per-channel excitation (the pump), SHG emission, light source and detector,
    and the channel annotations saying the physical shift."""
    pix = ome.images[0].pixels
    assert [c.name for c in pix.channels] == names
    anns = {a.id: {m.k: m.value for m in a.value.ms}
            for a in ome.structured_annotations.map_annotations}
    for ch, name, lam in zip(pix.channels, names, pump_nm):
        assert ch.excitation_wavelength == pytest.approx(lam, abs=1e-3)  # 3 decimals given
        lam = ch.excitation_wavelength
        assert ch.light_source_settings.id == "LightSource:pump"
        assert ch.light_source_settings.wavelength == lam
        kv = anns[ch.annotation_refs[0].id]
        if name == "SHG":
            assert ch.detector_settings.id == "Detector:shg"
            assert ch.emission_wavelength == pytest.approx(lam / 2)
            assert ch.acquisition_mode.value == "SecondHarmonicGenerationImaging"
        else:
            assert ch.detector_settings.id == "Detector:srs"
            shift = float(kv["raman_shift_cm1"])
            # the name says the physical shift the pump and Stokes give, in one spelling
            assert shift == pytest.approx(float(raman_shift_cm1(lam, stokes_nm)), abs=1e-6)
            assert name == srs_channel(shift)


def check_planes(ome, x0: float, y0: float) -> None:
    for pl in ome.images[0].pixels.planes:
        assert pl.position_x == pytest.approx(x0) and pl.position_y == pytest.approx(y0)
        assert pl.position_x_unit.value == "µm" and pl.position_y_unit.value == "µm"


def pixel_size_of(path: Path) -> tuple[float, float]:
    """(OME PhysicalSizeX, TIFF XResolution -> um per pixel)."""
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        num, den = page.tags["XResolution"].value
        assert page.tags["ResolutionUnit"].value == 3  # centimetre
        ome = ome_types.from_xml(tif.ome_metadata)
    return ome.images[0].pixels.physical_size_x, 1e4 * den / num


# ------------------------------------------------------------------ a simulated field
@pytest.fixture(scope="module")
def field(tmp_path_factory):
    out = tmp_path_factory.mktemp("fov") / "field.ome.tif"
    truth = out.with_name("truth.ome.tif")
    return out, truth


def test_simulated_field(field, capsys):
    out, truth = field
    assert main(["simulate", "fov", "--pixels", "40", "--fov-um", "24", "--averages", "1",
                 "--out", str(out), "--truth", str(truth), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    names = ["SRS_2850", "SRS_2930", "SHG"]
    assert s["channels"] == names
    ome = ome_of(out)
    check_instrument(ome)
    check_channels(ome, names, s["pump_nm"] + [s["pump_nm"][0]])
    half = 24 / 2
    check_planes(ome, s["center_um"][0] - half, s["center_um"][1] - half)
    assert ome.images[0].pixels.size_c == 3
    # tifffile: pixel size (OME and resolution tags agree), names, one level
    ome_p, tag_p = pixel_size_of(out)
    assert ome_p == pytest.approx(24 / 40) and tag_p == pytest.approx(24 / 40)
    img = read_ome_tiff(out)
    assert img.channel_names == names and img.levels == 1 and img.data.shape == (3, 40, 40)
    # the napari reader: three layers, um scale, stage translate, the composite's colours
    reader = napari_get_reader(str(out))
    assert reader is read_srash
    ((data, kw, kind),) = reader(str(out))
    assert kind == "image" and kw["channel_axis"] == 0 and data.shape == (3, 40, 40)
    assert kw["name"] == names
    assert kw["colormap"] == ["green", "red", "blue"]
    assert kw["scale"] == pytest.approx((0.6, 0.6))
    assert kw["translate"] == pytest.approx((s["center_um"][1] - half,
                                             s["center_um"][0] - half))
    assert kw["metadata"]["raman_shift_cm1"] == [2850.0, 2930.0, None]
    for lo, hi in kw["contrast_limits"]:
        assert hi > lo
    np.testing.assert_array_equal(data, img.data)
    # the truth map is schema-valid too and opens as a labels layer
    ome_of(truth)
    ((lab, lkw, lkind),) = read_srash(truth)
    assert lkind == "labels" and lab.shape == (40, 40) and lkw["scale"] == pytest.approx(
        (0.6, 0.6))


def test_paper_wavelengths_are_named_by_the_physical_shift(tmp_path, capsys):
    out = tmp_path / "paper.ome.tif"
    assert main(["simulate", "fov", "--pixels", "24", "--fov-um", "12", "--averages", "1",
                 "--pump-nm", "795.9,790.9", "--out", str(out), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    names = ["SRS_2865.1", "SRS_2944.5", "SHG"]
    assert s["channels"] == names
    check_channels(ome_of(out), names, [795.9, 790.9, 795.9])
    # the reader still colours them as the lipid / protein bands (within the tolerance)
    ((_, kw, _),) = read_srash(out)
    assert kw["colormap"] == ["green", "red", "blue"]


def test_verbose_logs_on_stderr(tmp_path, capsys):
    out = tmp_path / "v.ome.tif"
    argv = ["simulate", "fov", "--specimen", "reference", "--pixels", "16", "--fov-um", "8",
            "--averages", "1",
            "--out", str(out), "--json"]
    assert main(argv) == 0
    assert "INFO" not in capsys.readouterr().err
    assert main(["-v", *argv]) == 0
    err = capsys.readouterr().err
    assert "INFO srash.cli: srash simulate" in err and f"wrote {out}" in err
    assert main(argv) == 0  # the next call without -v is quiet again
    assert "INFO" not in capsys.readouterr().err


# ------------------------------------------------------------------ a hyperspectral stack
def test_hyperspectral_stack(tmp_path, capsys):
    out = tmp_path / "stack.ome.tif"
    assert main(["simulate", "stack", "--pixels", "24", "--fov-um", "12", "--start", "2840",
                 "--stop", "2940", "--step", "20", "--out", str(out), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    names = [f"SRS_{v}" for v in range(2840, 2941, 20)]
    assert s["channels"] == names
    ome = ome_of(out)
    check_instrument(ome)
    check_channels(ome, names, s["pump_nm"])
    assert pixel_size_of(out)[0] == pytest.approx(0.5)
    assert read_ome_tiff(out).channel_names == names
    # napari: one image, its first axis the Raman shift in cm^-1 (slider), um in y and x
    ((data, kw, kind),) = read_srash(out)
    assert kind == "image" and data.shape == (6, 24, 24) and "channel_axis" not in kw
    assert kw["scale"] == pytest.approx((20.0, 0.5, 0.5))
    assert kw["translate"][0] == pytest.approx(2840.0)
    assert kw["metadata"]["axes"] == ["raman_shift_cm1", "y", "x"]
    assert kw["name"] == "stack SRS 2840-2940 cm^-1"


# ------------------------------------------------------------------ a large pyramidal mosaic
def reference_downsample(a: np.ndarray) -> np.ndarray:
    """2x2 mean over finite pixels, written independently of ml.io.ometiff."""
    c, ny, nx = a.shape
    blocks = a[:, : ny // 2 * 2, : nx // 2 * 2].reshape(c, ny // 2, 2, nx // 2, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks
        return np.nanmean(blocks.astype(np.float64), axis=(2, 4)).astype(a.dtype)


def test_pyramidal_mosaic_above_2048_px(tmp_path):
    rng = np.random.default_rng(3)
    ny, nx = 640, 2230  # above 2048 px along x (a strip keeps the test fast)
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float32)
    m = np.stack([np.sin(xx / 37) + np.cos(yy / 23), np.cos(xx / 11) * np.sin(yy / 59),
                  (xx + yy) / (nx + ny)]).astype(np.float32)
    m += rng.normal(0, 0.01, m.shape).astype(np.float32)
    m[:, :300, :411] = np.nan  # not imaged, as in a stitched mosaic
    names = ["SRS_2850", "SRS_2930", "SHG"]
    lp, pp = (float(v) for v in pump_nm_for_shift([2850.0, 2930.0], 1031.0))
    acq = Acquisition.build(names, pump_nm=[lp, pp, lp],
                            shifts_cm1=[2850.0, 2930.0, None],
                            instrument={"stokes_nm": 1031.0, "rep_rate_mhz": 80.0,
                                        "objective": {"na": 1.2, "magnification": 60.0,
                                                      "immersion_index": 1.33}},
                            acquired=1.7e9)
    path, n = write_mosaic(tmp_path / "mosaic.ome.tif", m, channel_names=names,
                           pixel_size_um=0.3, position_um=(-120.5, 40.25),
                           settings={"tiles": 49}, acquisition=acq)
    assert n == len(level_shapes((ny, nx))) == 4
    ome = ome_of(path)
    check_instrument(ome)
    check_channels(ome, names, [lp, pp, lp])
    check_planes(ome, -120.5, 40.25)
    assert ome.images[0].acquisition_date.timestamp() == pytest.approx(1.7e9)
    with tifffile.TiffFile(path) as tif:
        s = tif.series[0]
        assert s.axes == "CYX" and s.shape == (3, ny, nx)
        assert [lv.shape for lv in s.levels] == [(3, ny, nx), (3, 320, 1115), (3, 160, 557),
                                                 (3, 80, 278)]
        page = tif.pages[0]
        assert page.is_tiled and (page.tilelength, page.tilewidth) == (512, 512)
        assert page.compression == tifffile.COMPRESSION.ADOBE_DEFLATE  # lossless zlib
        level0 = s.levels[0].asarray()
        level1 = s.levels[1].asarray()
        level2 = s.levels[2].asarray()
    np.testing.assert_array_equal(level0, m)  # lossless, NaN included
    ref1 = reference_downsample(m)
    np.testing.assert_allclose(level1, ref1, rtol=1e-6, equal_nan=True)
    np.testing.assert_allclose(level2, reference_downsample(ref1), rtol=1e-6, equal_nan=True)
    assert np.isnan(level1[:, :150, :205]).all() and np.isfinite(level1[:, 150:, :]).all()
    # compressed: smaller than the levels' raw bytes (noisy float32 without a floating-point
    # predictor compresses little; the NaN margin a lot)
    raw = m.nbytes + level1.nbytes + level2.nbytes
    assert Path(path).stat().st_size < raw
    img = read_ome_tiff(path)
    assert img.levels == 4 and img.pixel_size_um == pytest.approx(0.3)
    # napari: a multiscale image, one layer per channel
    ((data, kw, kind),) = read_srash(path)
    assert kind == "image" and kw["multiscale"] and kw["channel_axis"] == 0
    assert [d.shape for d in data] == [(3, ny, nx), (3, 320, 1115), (3, 160, 557),
                                       (3, 80, 278)]
    assert kw["name"] == names and kw["scale"] == pytest.approx((0.3, 0.3))
    assert kw["translate"] == pytest.approx((40.25, -120.5))


def test_small_mosaic_stays_flat_and_downsample_matches_reference(tmp_path):
    a = np.arange(3 * 9 * 7, dtype=np.float32).reshape(3, 9, 7)
    a[0, 0, 0] = np.nan
    np.testing.assert_allclose(downsample2(a), reference_downsample(a), equal_nan=True)
    path, n = write_mosaic(tmp_path / "m.ome.tif", a, channel_names=["a", "b", "c"],
                           pixel_size_um=1.0)
    assert n == 1 and read_ome_tiff(path).levels == 1
    ome_of(path)


def test_names_must_match_the_acquisition(tmp_path):
    acq = Acquisition.build(["SRS_2850", "SHG"])
    with pytest.raises(OMETiffError, match="differ"):
        write_ome_tiff(tmp_path / "x.ome.tif", np.zeros((2, 4, 4), np.float32),
                       channel_names=["SRS", "SHG"], pixel_size_um=1.0, acquisition=acq)


def test_reader_declines_other_files(tmp_path):
    plain = tmp_path / "plain.ome.tif"
    tifffile.imwrite(plain, np.zeros((4, 4), np.uint8), ome=True)
    other = tmp_path / "notes.txt"
    other.write_text("x")
    assert napari_get_reader(str(plain)) is None
    assert napari_get_reader(str(other)) is None
    assert napari_get_reader(str(tmp_path / "missing.ome.tif")) is None


@pytest.mark.parametrize("name, cmap", [("SRS_2850", "green"), ("SRS_2930", "red"),
                                        ("SHG", "blue"), ("SRS_2865.1", "green"),
                                        ("SRS_3000", "gray"), ("labels", "gray")])
def test_channel_colormaps(name, cmap):
    assert channel_colormap(name) == cmap


@pytest.mark.parametrize("n, medium", [(1.0, "Air"), (1.33, "Water"), (1.518, "Oil"),
                                       (1.47, "Glycerol"), (1.4, "Other"), (None, "Other")])
def test_immersion(n, medium):
    assert immersion_of(n) == medium
