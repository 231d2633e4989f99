"""The mosaic on a real RunEngine: metadata, composites from documents, survey, suspension,
interruption."""

from __future__ import annotations

import threading
import time

import bluesky.plan_stubs as bps
import numpy as np
import pytest
from bluesky.utils import FailedStatus, RunEngineInterrupted

from plans import COMPOSITE_CHANNELS, make_suspenders, mosaic, srash_field, tile_grid
from simulators.specimens import make_specimen
from simulators.specimens.base import Label, Window


def _mosaic(mic, **kw):
    kw.setdefault("rows", 2)
    kw.setdefault("cols", 2)
    kw.setdefault("fov_um", 20.0)
    return mosaic([mic], mic.raman, mic.xyz.x, mic.xyz.y, **kw)


def _composites(sink, start) -> dict[int, np.ndarray]:
    """field index -> 3-channel composite, from documents + files only (start['composite'])."""
    recipe = start["composite"]
    frames: dict[tuple[int, int], np.ndarray] = {}
    for ev, img in sink.frames(start["uid"]):
        key = (ev["data"]["field_index"], ev["data"]["shift_index"])
        assert key not in frames, f"duplicated frame {key}"
        frames[key] = img
    fields = sorted({f for f, _ in frames})
    return {f: np.stack([frames[(f, s)][ch] for s, ch in recipe["sources"]]) for f in fields}


def test_start_metadata(RE, sink, mic):
    md = {"sample_id": "S-001", "patient_id": "P-17", "phenotype": "normal",
          "diagnosis": "normal spermatogenesis", "simulator": mic.sim.settings()}
    (uid,) = RE(_mosaic(mic, rows=2, cols=3, overlap=0.2, center_um=(40.0, -10.0), md=md))
    start = sink.of("start")[0]
    assert start["uid"] == uid and start["plan_name"] == "mosaic"
    for k, v in md.items():
        assert start[k] == v
    assert start["shape"] == [2, 3] and start["snaking"] == [False, True]
    step = 16.0
    assert np.allclose(start["extents"], [[-10 - step / 2, -10 + step / 2],
                                          [40 - step, 40 + step]])
    t = start["tiles"]
    assert (t["rows"], t["cols"], t["overlap"], t["fov_um"]) == (2, 3, 0.2, 20.0)
    assert t["step_um"] == pytest.approx(step) and len(t["positions"]) == 6
    assert t["order"] == [0, 1, 2, 5, 4, 3] and t["acquire"] == t["order"]
    assert start["num_points"] == 12 == len(sink.of("event"))
    assert start["plan_args"]["rows"] == 2 and start["plan_args"]["shifts_cm1"] == [2850, 2930]
    assert start["composite"]["channels"] == list(COMPOSITE_CHANNELS)
    assert start["motors"] == ["srash_xyz_y", "srash_xyz_x", "srash_raman"]
    assert start["detectors"] == ["srash"]
    (desc,) = sink.of("descriptor")
    for key in ("field_index", "field_row", "field_col", "field_x_um", "field_y_um",
                "shift_index", "shift_cm1", "srash_image", "srash_frame_raman_shift"):
        assert key in desc["data_keys"], key
    assert sink.of("stop")[0]["exit_status"] == "success"
    assert sink.of("stop")[0]["num_events"] == {"primary": 12}


def test_composites_rebuilt_from_documents(RE, sink, mic):
    RE(_mosaic(mic, rows=2, cols=2, overlap=0.5, center_um=(0.0, 0.0)))
    start = sink.of("start")[0]
    comps = _composites(sink, start)
    assert sorted(comps) == [0, 1, 2, 3]
    for f, comp in comps.items():
        assert comp.shape == (3, 48, 48) and comp.dtype == np.float32
        assert not np.array_equal(comp[0], comp[1])  # two Raman channels
    # the events point at the right frames: SRS 2850 of the last field = the last 2850 frame
    frames = sink.frames()
    last_2850 = [img for ev, img in frames if ev["data"]["shift_index"] == 0][-1]
    last_field = frames[-1][0]["data"]["field_index"]
    np.testing.assert_array_equal(comps[last_field][0], last_2850[0])
    np.testing.assert_array_equal(comps[last_field][2], last_2850[1])
    # overlapping neighbours see the same tissue: the shared half correlates (4x4 binned
    # against the shot noise), the wrong halves do not
    g = tile_grid(rows=2, cols=2, fov_um=20.0, overlap=0.5)

    def binned(im):
        return im.reshape(im.shape[0] // 4, 4, im.shape[1] // 4, 4).mean(axis=(1, 3)).ravel()

    a, b = comps[g.index(0, 0)][1], comps[g.index(0, 1)][1]  # SRS 2930, side by side in x
    r = np.corrcoef(binned(a[:, 24:]), binned(b[:, :24]))[0, 1]
    r_wrong = np.corrcoef(binned(a[:, :24]), binned(b[:, 24:]))[0, 1]
    assert r > 0.25 and r > r_wrong + 0.2


def _tissue_fraction(spec, x, y, fov=20.0):
    comp = spec.render(Window.centered(x, y, fov, 16))
    return 1.0 - comp.label_fraction(Label.BACKGROUND)


def test_survey_skips_empty_tiles(RE, sink, mic):
    spec = make_specimen("testis", 0)
    x0, x1, _, _ = spec.extent_um
    # walk out along +x from the centre to the section's edge
    lo, hi = 0.0, x1 + 50
    while hi - lo > 2:
        mid = (lo + hi) / 2
        (lo, hi) = (mid, hi) if _tissue_fraction(spec, mid, 0.0, 2.0) > 0 else (lo, mid)
    edge = lo
    g = tile_grid(rows=2, cols=6, fov_um=20.0, overlap=0.1, center_um=(edge, 0.0))
    frac = {i: _tissue_fraction(spec, *p) for i, p in enumerate(g.positions)}
    tissue = {i for i, f in frac.items() if f > 0.5}
    empty = {i for i, f in frac.items() if f == 0}
    assert tissue and empty
    RE(_mosaic(mic, rows=2, cols=6, overlap=0.1, center_um=(edge, 0.0), survey=True,
               survey_kwargs={"pixels": mic.scanner.pixels, "survey_pixels": 24,
                              "shutters": [mic.pump.shutter, mic.stokes.shutter]}))
    starts = sink.of("start")
    assert [s["plan_name"] for s in starts] == ["mosaic_survey", "mosaic"]
    survey, main = starts
    assert main["survey_uid"] == survey["uid"]
    assert [d["exit_status"] for d in sink.of("stop")] == ["success", "success"]
    # the survey: one dark frame, one low-res frame per tile; pixels restored afterwards
    sdescs = {d["name"]: d for d in sink.of("descriptor") if d["run_start"] == survey["uid"]}
    assert sdescs["primary"]["data_keys"]["srash_image"]["shape"] == [2, 24, 24]
    assert sdescs["dark"]["data_keys"]["srash_image"]["shape"] == [2, 24, 24]
    assert mic.scanner.pixels.get() == 48
    assert mic.pump.shutter.get() is True and mic.stokes.shutter.get() is True
    acquired = {ev["data"]["field_index"] for ev, _ in sink.frames(main["uid"])}
    assert tissue <= acquired and not (empty & acquired)
    assert set(main["tiles"]["acquire"]) == acquired
    assert main["num_points"] == 2 * len(acquired) == len(sink.frames(main["uid"]))
    mask = main["tiles"]["mask"]
    assert {g.index(r, c) for r in range(2) for c in range(6) if mask[r][c]} == acquired
    for ev, img in sink.frames(main["uid"]):
        assert img.shape == (2, 48, 48)


def test_tile_mask(RE, sink, mic):
    RE(_mosaic(mic, rows=2, cols=2, tile_mask=[[True, False], [False, True]]))
    assert [e["data"]["field_index"] for e in sink.of("event")] == [0, 0, 3, 3]
    assert sink.of("start")[0]["num_points"] == 4


def test_survey_needs_background(mic):
    with pytest.raises(ValueError, match="background"):
        _mosaic(mic, survey=True)


def test_modelock_loss_suspends_and_resumes_without_gaps(RE, sink, mic):
    for s in make_suspenders(mic.pump.mode_locked, poll_period_s=0.02):
        RE.install_suspender(s)
    seen = {"n": 0}
    timers = []

    def fault(name, doc):  # lose mode-lock after the 3rd frame, relock 0.3 s later
        if name == "event":
            seen["n"] += 1
            if seen["n"] in (3, 8):
                mic.sim.pump.inject_modelock_loss()
                t = threading.Timer(0.3, mic.sim.pump.restore_modelock)
                timers.append(t)
                t.start()

    RE.subscribe(fault)
    RE(_mosaic(mic, rows=2, cols=3))
    for t in timers:
        t.join()
    start, stop = sink.of("start")[0], sink.of("stop")[0]
    assert stop["exit_status"] == "success"
    keys = [(e["data"]["field_index"], e["data"]["shift_index"]) for e in sink.of("event")]
    g = tile_grid(rows=2, cols=3, fov_um=20.0)
    assert keys == [(g.index(r, c), i) for r, c in g.order for i in (0, 1)]  # none missing
    assert [e["seq_num"] for e in sink.of("event")] == list(range(1, 13))  # none duplicated
    assert len(sink.of("stream_datum")) == 12
    assert len(_composites(sink, start)) == 6
    assert mic.pump.mode_locked.get() is True
    # the frames after the relock are valid (mode-locked laser, signal present)
    assert all(e["data"]["srash_pump_mode_locked"] for e in sink.of("event"))
    # the detector wrote exactly the 12 recorded frames (the failed frames wrote nothing)
    assert len(list(mic.data_dir.glob("*/*.ome.tif"))) == 12


def test_modelock_loss_without_suspender_fails_the_run(RE, sink, mic):
    def fault(name, doc):
        if name == "event" and doc["seq_num"] == 3:
            mic.sim.pump.inject_modelock_loss()

    RE.subscribe(fault)
    with pytest.raises(FailedStatus) as info:
        RE(_mosaic(mic, rows=2, cols=2, retry_delay_s=0.0))
    assert "mode-lock" in str(info.value.__cause__)
    stop = sink.of("stop")[0]
    assert stop["exit_status"] == "fail"
    assert len(sink.of("event")) == 3 and len(sink.frames()) == 3  # earlier frames intact


def test_callback_error_ends_run_with_fail_and_keeps_frames(RE, sink, mic):
    def boom(name, doc):
        if name == "event" and doc["seq_num"] == 5:
            raise RuntimeError("downstream consumer broke")

    RE.subscribe(boom)
    with pytest.raises(RuntimeError, match="consumer broke"):
        RE(_mosaic(mic, rows=2, cols=2))
    stop = sink.of("stop")[0]
    assert stop["exit_status"] == "fail"
    frames = sink.frames()
    assert len(frames) == 5 and stop["num_events"]["primary"] == 5
    assert [ev["data"]["field_index"] for ev, _ in frames] == [0, 0, 1, 1, 3]


def test_pause_then_abort_gives_abort_stop(RE, sink, mic):
    """Ctrl-C path: a pause request (from another thread, as SIGINT does), then abort."""
    threads = []

    def pause(name, doc):
        if name == "event" and doc["seq_num"] == 4:
            t = threading.Thread(target=RE.request_pause, kwargs={"defer": False})
            threads.append(t)
            t.start()
            time.sleep(0.2)  # hold the loop so the request is queued before the next message

    RE.subscribe(pause)
    with pytest.raises(RunEngineInterrupted):
        RE(_mosaic(mic, rows=3, cols=3))
    RE.abort(reason="operator abort")
    for t in threads:
        t.join()
    stop = sink.of("stop")[0]
    assert stop["exit_status"] == "abort"
    frames = sink.frames()
    g = tile_grid(rows=3, cols=3, fov_um=20.0)
    expect = [(g.index(r, c), i) for r, c in g.order for i in (0, 1)]
    got = [(ev["data"]["field_index"], ev["data"]["shift_index"]) for ev, _ in frames]
    assert 4 <= len(got) < len(expect) and got == expect[:len(got)]
    assert stop["num_events"]["primary"] == len(got)
    assert all(img.shape == (2, 48, 48) for _, img in frames)


def test_srash_field_stub_in_a_custom_run(RE, sink, mic):
    import bluesky.preprocessors as bpp

    @bpp.stage_decorator([mic])
    @bpp.run_decorator(md={"plan_name": "custom"})
    def plan():
        for k in range(2):
            yield from bps.mv(mic.xyz.x, 30.0 * k)
            yield from srash_field([mic], mic.raman, field_index=k)

    RE(plan())
    evs = sink.of("event")
    assert [(e["data"]["field_index"], e["data"]["shift_cm1"]) for e in evs] == [
        (0, 2850.0), (0, 2930.0), (1, 2850.0), (1, 2930.0)]
