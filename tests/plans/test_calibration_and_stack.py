"""Hyperspectral stack, calibration plans, and the plans package's import rule."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from bluesky.utils import FailedStatus

import plans
from plans import dark_frames, flat_field, flat_field_map, hyperspectral_stack, power_reference


def test_hyperspectral_stack(RE, sink, ref_mic):
    mic = ref_mic
    (uid,) = RE(hyperspectral_stack([mic], mic.raman, start_cm1=2800, stop_cm1=3000,
                                    step_cm1=25, md={"sample_id": "cells-1"}))
    start = sink.of("start")[0]
    shifts = [2800.0 + 25 * i for i in range(9)]
    assert start["plan_name"] == "hyperspectral_stack" and start["shifts_cm1"] == shifts
    assert start["num_points"] == 9 and start["sample_id"] == "cells-1"
    evs = sink.of("event")
    assert len(evs) == 9 == len(sink.frames())
    assert [e["data"]["shift_index"] for e in evs] == list(range(9))
    assert [e["data"]["shift_cm1"] for e in evs] == shifts
    assert [e["data"]["srash_frame_raman_shift"] for e in evs] == pytest.approx(shifts,
                                                                              abs=0.05)
    srs = [e["data"]["srash_srs_mean"] for e in evs]
    assert int(np.argmax(srs)) in (1, 2)  # the lipid CH2 band near 2850 cm^-1
    down = list(hyperspectral_stack([mic], mic.raman, start_cm1=3000, stop_cm1=2900,
                                    step_cm1=-50))
    assert down  # a downward stack is a valid plan
    with pytest.raises(ValueError, match="step"):
        hyperspectral_stack([mic], mic.raman, start_cm1=2800, stop_cm1=3000, step_cm1=-5)
    with pytest.raises(ValueError, match="step"):
        hyperspectral_stack([mic], mic.raman, start_cm1=2800, stop_cm1=3000, step_cm1=0)


def test_dark_frames_close_and_reopen_shutters(RE, sink, ref_mic):
    mic = ref_mic
    states = []

    def watch(name, doc):
        if name == "event":
            states.append((mic.pump.shutter.get(), mic.stokes.shutter.get()))

    RE.subscribe(watch)
    RE(dark_frames([mic], [mic.pump.shutter, mic.stokes.shutter], num=3))
    assert states == [(False, False)] * 3
    assert mic.pump.shutter.get() is True and mic.stokes.shutter.get() is True
    start = sink.of("start")[0]
    assert start["plan_name"] == "dark_frames" and start["calibration"] == "dark"
    imgs = [img for _, img in sink.frames()]
    assert len(imgs) == 3
    dark = mic.sim.dark_levels(np.random.default_rng(0))
    assert float(imgs[0][0].mean()) == pytest.approx(dark["srs_v"], abs=0.01)
    # a shutter that was closed before stays closed
    mic.stokes.shutter.put(False)
    RE(dark_frames([mic], [mic.pump.shutter, mic.stokes.shutter]))
    assert mic.pump.shutter.get() is True and mic.stokes.shutter.get() is False


def test_dark_frames_reopen_shutters_when_acquisition_fails(RE, sink, ref_mic):
    mic = ref_mic
    mic.sim.pump.inject_modelock_loss()
    with pytest.raises(FailedStatus):
        RE(dark_frames([mic], [mic.pump.shutter, mic.stokes.shutter], num=2))
    assert sink.of("stop")[0]["exit_status"] == "fail"
    assert mic.pump.shutter.get() is True and mic.stokes.shutter.get() is True


def test_power_reference_and_flat_field(RE, sink, ref_mic):
    mic = ref_mic
    RE(power_reference([mic], mic.raman, mic.xyz.x, mic.xyz.y, position_um=(100.0, 50.0),
                       md={"reference_id": "lipid-std"}))
    start = sink.of("start")[0]
    assert start["calibration"] == "power_reference" and start["reference_id"] == "lipid-std"
    evs = sink.of("event")
    assert [e["data"]["shift_cm1"] for e in evs] == [2850.0, 2930.0]
    assert evs[0]["data"]["srash_frame_x"] == pytest.approx(100.0, abs=5)
    sink.clear()
    positions = [(0.0, 0.0), (200.0, 0.0), (0.0, 200.0), (200.0, 200.0)]
    (uid,) = RE(flat_field([mic], mic.raman, mic.xyz.x, mic.xyz.y, positions_um=positions))
    start = sink.of("start")[0]
    assert start["plan_name"] == "flat_field" and start["num_points"] == 8
    frames = sink.frames(uid)
    assert sorted({ev["data"]["field_index"] for ev, _ in frames}) == [0, 1, 2, 3]
    imgs = [img for ev, img in frames if ev["data"]["shift_index"] == 0]
    flat = flat_field_map(imgs, dark=[0.02, 0.005])
    assert flat.shape == (2, 32, 32) and flat.dtype == np.float32
    assert float(flat[0].mean()) == pytest.approx(1.0)
    # the SRS illumination falls off towards the corners of the field
    assert flat[0, 12:20, 12:20].mean() > flat[0, :4, :4].mean()
    with pytest.raises(ValueError, match="positions_um"):
        flat_field([mic], mic.raman, mic.xyz.x, mic.xyz.y, positions_um=[])


def test_flat_field_map_math():
    rng = np.random.default_rng(0)
    profile = np.outer(np.hanning(16) + 0.5, np.hanning(16) + 0.5)
    imgs = [np.stack([3.0 * profile + 0.1 + rng.normal(0, 1e-3, profile.shape),
                      np.zeros_like(profile)]) for _ in range(5)]
    flat = flat_field_map(imgs, dark=[0.1, 0.0])
    np.testing.assert_allclose(flat[0], profile / profile.mean(), atol=2e-3)
    assert np.all(flat[1] == 1.0)  # no signal: identity


def test_plans_import_no_device_module():
    root = Path(plans.__file__).parent
    banned = ("srash_ophyd", "simulators", "ophyd", "ml")
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] if node.level == 0 else []
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in banned, f"{path.name} imports {name}"
