"""The microscope on a real RunEngine: documents, OME-TIFF files, composite, faults."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import bluesky.plan_stubs as bps
import bluesky.plans as bp
import numpy as np
import pytest
from bluesky.utils import FailedStatus

from ml.io.ometiff import read_ome_tiff
from plans.contract import srs_channel
from srash_ophyd.devices._sim import DeviceFault
from srash_ophyd.devices.factory import make_microscope


def _frames(sink) -> list[tuple[dict, np.ndarray, Path]]:
    """(event, image (2, ny, nx), path) per event, rebuilt from documents + files only."""
    res = {d["uid"]: d for d in sink.of("stream_resource")}
    datums = {d["seq_nums"]["start"]: d for d in sink.of("stream_datum")}
    out = []
    for ev in sink.of("event"):
        sd = datums[ev["seq_num"]]
        sr = res[sd["stream_resource"]]
        i = sd["indices"]["start"]
        path = Path(urlparse(sr["uri"]).path) / sr["parameters"]["template"].format(i)
        out.append((ev, read_ome_tiff(path).data, path))
    return out


def test_count_documents_and_files(RE, sink, mic):
    RE(bp.count([mic], num=3))
    names = [n for n, _ in sink.docs]
    assert names[0] == "start" and names[-1] == "stop"
    assert sink.of("stop")[0]["exit_status"] == "success"
    assert len(sink.of("stream_resource")) == 1 and len(sink.of("stream_datum")) == 3
    (desc,) = sink.of("descriptor")
    dk = desc["data_keys"]["srash_image"]
    assert dk["shape"] == [2, 32, 32] and dk["dtype_numpy"] == "<f4"
    assert dk["dims"] == ["channel", "y", "x"] and dk["external"] == "STREAM:"
    assert dk["channel_names"] == ["SRS", "SHG"]
    sr = sink.of("stream_resource")[0]
    assert sr["mimetype"] == "multipart/related;type=image/tiff"
    assert sr["parameters"]["join_method"] == "stack"
    assert sr["parameters"]["template"] == "{:06d}.ome.tif"
    # configuration of every part in the descriptor
    cfg = desc["configuration"]["srash"]["data"]
    for key in ("srash_pump_power", "srash_stokes_power", "srash_stokes_wavelength",
                "srash_scanner_dwell", "srash_scanner_pixels", "srash_scanner_fov",
                "srash_scanner_averages", "srash_lockin_time_constant",
                "srash_lockin_filter_order", "srash_lockin_sensitivity", "srash_pmt_voltage",
                "srash_pmt_gain", "srash_eom_frequency", "srash_photodiode_bias"):
        assert key in cfg, key
    frames = _frames(sink)
    assert [p.name for _, _, p in frames] == ["000000.ome.tif", "000001.ome.tif",
                                              "000002.ome.tif"]
    last_ev, last_img, last_path = frames[-1]
    f = mic.detector.last_frame
    np.testing.assert_array_equal(last_img[0], f.srs)
    np.testing.assert_array_equal(last_img[1], f.shg)
    img = read_ome_tiff(last_path)
    # the frame's SRS channel is named after its physical shift, in the contract's spelling
    assert img.channel_names == [srs_channel(f.raman_shift_cm1), "SHG"]
    assert img.pixel_size_um == pytest.approx(20.0 / 32)
    assert img.settings["frame"]["index"] == 2
    assert last_ev["data"]["srash_srs_mean"] == pytest.approx(float(f.srs.mean()))
    assert "srash_image" not in last_ev["data"]


def test_files_equal_a_recomputed_simulation(RE, sink, tmp_path):
    """Same seeds and same operations -> the simulator frame equals the file bit for bit."""
    mic = make_microscope("reference", noise_seed=11, data_dir=tmp_path / "a", pixels=32,
                          fov_um=20.0, averages=1)
    RE(bp.count([mic], num=2))
    ref = make_microscope("reference", noise_seed=11, data_dir=tmp_path / "b", pixels=32,
                          fov_um=20.0, averages=1)
    for _, img, _ in _frames(sink):
        f = ref.sim.frame(ref.frame_rng, with_shg=True)
        np.testing.assert_array_equal(img, np.stack([f.srs, f.shg]))


def test_raman_scan_rebuilds_composite(RE, sink, beads_mic):
    mic = beads_mic
    RE(bp.list_scan([mic], mic.raman, [2850, 2930]))
    frames = _frames(sink)
    shifts = [ev["data"]["srash_frame_raman_shift"] for ev, _, _ in frames]
    assert shifts == pytest.approx([2850, 2930], abs=0.01)
    assert [ev["data"]["srash_raman"] for ev, _, _ in frames] == pytest.approx([2850, 2930],
                                                                              abs=0.01)
    by_shift = {round(s): img for s, (_, img, _) in zip(shifts, frames)}
    composite = np.stack([by_shift[2850][0], by_shift[2930][0], by_shift[2850][1]])
    assert composite.shape == (3, 48, 48) and composite.dtype == np.float32
    assert not np.array_equal(composite[0], composite[1])  # two different Raman channels


def test_scan_over_raman_axis(RE, sink, mic):
    RE(bp.scan([mic], mic.raman, 2850, 3050, 3))
    evs = sink.of("event")
    assert [e["data"]["srash_raman"] for e in evs] == pytest.approx([2850, 2950, 3050],
                                                                   abs=0.01)
    assert len({e["data"]["srash_pump_wavelength"] for e in evs}) == 3
    # lipid reference: SRS is larger at the CH2 band (2850) than off the CH band
    assert evs[0]["data"]["srash_srs_mean"] > evs[2]["data"]["srash_srs_mean"]


def test_grid_scan_over_stage(RE, sink, mic):
    RE(bp.grid_scan([mic], mic.xyz.y, 0, 40, 2, mic.xyz.x, 0, 40, 2, snake_axes=True))
    evs = sink.of("event")
    assert len(evs) == 4 and len(sink.of("stream_datum")) == 4
    xy = [e["data"][k] for e in evs for k in ("srash_xyz_x", "srash_xyz_y")]
    fxy = [e["data"][k] for e in evs for k in ("srash_frame_x", "srash_frame_y")]
    assert fxy == pytest.approx(xy)  # the field is centred where the stage really is
    start = sink.of("start")[0]
    assert list(start["shape"]) == [2, 2]
    hints = sink.of("descriptor")[0]["hints"]["srash"]["fields"]
    assert {"srash_xyz_x", "srash_xyz_y", "srash_raman"} <= set(hints)


def _trigger_error(mic) -> BaseException:
    mic.stage()
    try:
        st = mic.trigger()
        assert st.done and not st.success
        return st.exception()
    finally:
        mic.unstage()


def test_modelock_loss_fails_trigger(mic):
    mic.sim.pump.inject_modelock_loss()
    exc = _trigger_error(mic)
    assert isinstance(exc, DeviceFault) and "mode-lock" in str(exc)
    assert mic.pump.mode_locked.get() is False
    assert mic.get_index() == 0  # nothing written
    assert not list(mic.detector._folder.glob("*.tif"))


def test_pmt_trip_fails_trigger_and_resets(beads_mic):
    mic = beads_mic
    mic.sim.pmt.tripped = True  # latched overlight trip
    exc = _trigger_error(mic)
    assert "overlight" in str(exc) and mic.pmt.tripped.get() is True
    mic.pmt.reset_trip()
    assert mic.pmt.tripped.get() is False
    mic.stage()
    try:
        assert mic.trigger().success
    finally:
        mic.unstage()


def test_lockin_overload_fails_trigger(mic):
    mic.lockin.sensitivity.set(1e-6)
    exc = _trigger_error(mic)
    assert "lock-in overload" in str(exc)
    assert mic.lockin.overload.get() is True and mic.lockin.overload_px.get() > 0
    mic.detector.max_overload_px.put(10**6)  # tolerate it: the frame is recorded
    mic.stage()
    try:
        assert mic.trigger().success and mic.get_index() == 1
    finally:
        mic.unstage()


def test_fault_fails_the_run(RE, sink, mic):
    mic.sim.pump.inject_modelock_loss()
    with pytest.raises(FailedStatus) as info:
        RE(bp.count([mic]))
    assert isinstance(info.value.__cause__, DeviceFault)
    assert "mode-lock" in str(info.value.__cause__)
    assert sink.of("stop")[0]["exit_status"] == "fail"
    assert not sink.of("event") and not sink.of("stream_datum")


def test_power_safety_in_a_plan(RE, mic):
    from simulators.errors import SafetyLimitError

    with pytest.raises(SafetyLimitError):
        RE(bps.mv(mic.pump.power, 140.0))
    assert mic.pump.power.get() == 40.0


def test_two_instruments_do_not_share_state(RE, tmp_path):
    a = make_microscope("reference", data_dir=tmp_path / "a", pixels=16, fov_um=10.0, name="a")
    b = make_microscope("reference", data_dir=tmp_path / "b", pixels=16, fov_um=10.0, name="b")
    assert a.sim is not b.sim and a.frame_rng is not b.frame_rng
    RE(bps.mv(a.raman, 2930, a.xyz.x, 100.0, a.pmt.voltage, 600))
    a.sim.pump.inject_modelock_loss()
    a.time_scale = 0.5
    assert b.raman.position.shift == pytest.approx(2850, abs=0.01)
    assert b.xyz.x.position == 0.0 and b.pmt.voltage.get() == 700.0
    assert b.pump.mode_locked.get() is True and b.time_scale == 0.0
    assert b.xyz.x.time_scale == 0.0 and a.xyz.x.time_scale == 0.5
    docs = []
    RE(bp.count([b]), lambda n, d: docs.append((n, d)))
    sr = [d for n, d in docs if n == "stream_resource"][0]
    assert str(tmp_path / "b") in urlparse(sr["uri"]).path
    assert not list((tmp_path / "a").glob("*/*.tif"))


def test_frame_shape_change_inside_run_fails(mic):
    mic.stage()
    try:
        mic.scanner.pixels.set(40)
        exc = mic.trigger().exception()
        assert isinstance(exc, DeviceFault) and "shape changed" in str(exc)
    finally:
        mic.unstage()
    assert mic.describe()["srash_image"]["shape"] == [2, 40, 40]


def test_trigger_requires_stage(mic):
    with pytest.raises(RuntimeError, match="not staged"):
        mic.trigger()
