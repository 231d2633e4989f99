"""Mosaic geometry: positions in stage um, step = fov (1 - overlap), snake order, limits."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plans import GridError, mosaic, tile_grid
from srash_ophyd.devices.factory import make_microscope

grids = st.fixed_dictionaries({
    "rows": st.integers(1, 6), "cols": st.integers(1, 6),
    "fov_um": st.floats(1.0, 500.0), "overlap": st.floats(0.0, 0.9),
    "center_um": st.tuples(st.floats(-1e4, 1e4), st.floats(-1e4, 1e4)),
    "snake": st.booleans()})


@given(grids)
def test_positions_step_and_order(kw):
    g = tile_grid(**kw)
    step = kw["fov_um"] * (1 - kw["overlap"])
    assert g.step_um == pytest.approx(step)
    cx, cy = kw["center_um"]
    for r in range(g.rows):
        for c in range(g.cols):
            x, y = g.positions[g.index(r, c)]
            assert x == pytest.approx(cx + (c - (g.cols - 1) / 2) * step)
            assert y == pytest.approx(cy + (r - (g.rows - 1) / 2) * step)
    # neighbours overlap by overlap * fov
    if g.cols > 1:
        assert g.position(0, 1)[0] - g.position(0, 0)[0] == pytest.approx(step)
    # the grid is centred
    xs = [p[0] for p in g.positions]
    ys = [p[1] for p in g.positions]
    assert (min(xs) + max(xs)) / 2 == pytest.approx(cx, abs=1e-6)
    assert (min(ys) + max(ys)) / 2 == pytest.approx(cy, abs=1e-6)
    # every tile exactly once; snake: consecutive tiles are neighbours
    order = g.order
    assert sorted(order) == [(r, c) for r in range(g.rows) for c in range(g.cols)]
    assert [r for r, _ in order] == sorted(r for r, _ in order)  # row by row
    for r in range(g.rows):
        cols = [c for rr, c in order if rr == r]
        expected = list(range(g.cols))
        assert cols == (expected[::-1] if kw["snake"] and r % 2 else expected)
    if kw["snake"]:
        for (r0, c0), (r1, c1) in zip(order, order[1:]):
            assert abs(r0 - r1) + abs(c0 - c1) == 1
    md = g.to_metadata()
    assert md["rows"] == g.rows and md["cols"] == g.cols and md["step_um"] == g.step_um
    assert len(md["positions"]) == g.rows * g.cols


@given(st.floats(0.0, 2000.0), st.floats(0.0, 2000.0), st.floats(5.0, 400.0),
       st.floats(0.0, 0.5))
def test_rect_is_covered(w, h, fov, overlap):
    g = tile_grid(rect_um=(-100.0, -100.0 + w, 50.0, 50.0 + h), fov_um=fov, overlap=overlap)
    x0, x1, y0, y1 = g.bounds_um
    assert x0 <= -100.0 + 1e-6 and x1 >= -100.0 + w - 1e-6
    assert y0 <= 50.0 + 1e-6 and y1 >= 50.0 + h - 1e-6
    # minimal: one tile fewer would not cover
    if g.cols > 1:
        assert (g.cols - 2) * g.step_um + fov < w + 1e-6


@pytest.mark.parametrize("kw, match", [
    ({"rows": 2, "cols": 2, "fov_um": 10, "overlap": 1.0}, "overlap"),
    ({"rows": 2, "cols": 2, "fov_um": 10, "overlap": -0.1}, "overlap"),
    ({"rows": 0, "cols": 2, "fov_um": 10}, "rows"),
    ({"rows": 2, "cols": 2.5, "fov_um": 10}, "cols"),
    ({"rows": 2, "cols": 2, "fov_um": 0}, "fov_um"),
    ({"rows": 2, "fov_um": 10}, "rows and cols"),
    ({"rows": 2, "cols": 2, "fov_um": 10, "rect_um": (0, 1, 0, 1)}, "not both"),
])
def test_bad_grids(kw, match):
    with pytest.raises(GridError, match=match):
        tile_grid(**kw)


def test_grid_beyond_stage_limits_refused_before_any_document(RE, sink, mic):
    with pytest.raises(GridError, match="stage limits"):
        mosaic([mic], mic.raman, mic.xyz.x, mic.xyz.y, rows=3, cols=3, fov_um=20.0,
               center_um=(24990.0, 0.0))
    with pytest.raises(GridError, match="tile_mask"):
        mosaic([mic], mic.raman, mic.xyz.x, mic.xyz.y, rows=2, cols=2, fov_um=20.0,
               tile_mask=[[True, False]])
    assert sink.docs == []


@settings(max_examples=8)
@given(rows=st.integers(1, 3), cols=st.integers(1, 3), overlap=st.floats(0.0, 0.5),
       snake=st.booleans(), nshift=st.integers(1, 2))
def test_mosaic_events_follow_the_grid(tmp_path_factory, rows, cols, overlap, snake, nshift):
    from bluesky import RunEngine

    from .conftest import DocSink

    mic = make_microscope("testis", seed=0, data_dir=tmp_path_factory.mktemp("f"), pixels=16,
                          fov_um=20.0, averages=1)
    RE, sink = RunEngine({}), DocSink()
    RE.subscribe(sink)
    shifts = (2850.0, 2930.0)[:nshift]
    (uid,) = RE(mosaic([mic], mic.raman, mic.xyz.x, mic.xyz.y, rows=rows, cols=cols,
                       fov_um=20.0, overlap=overlap, center_um=(100.0, -50.0), snake=snake,
                       shifts_cm1=shifts))
    g = tile_grid(rows=rows, cols=cols, fov_um=20.0, overlap=overlap,
                  center_um=(100.0, -50.0), snake=snake)
    evs = sink.of("event")
    assert len(evs) == rows * cols * nshift == sink.of("start")[0]["num_points"]
    assert len(sink.of("stream_datum")) == len(evs)
    expect = [(g.index(r, c), i) for r, c in g.order for i in range(nshift)]
    assert [(e["data"]["field_index"], e["data"]["shift_index"]) for e in evs] == expect
    for e in evs:
        d = e["data"]
        x, y = g.positions[d["field_index"]]
        assert (d["field_x_um"], d["field_y_um"]) == pytest.approx((x, y))
        assert divmod(d["field_index"], cols) == (d["field_row"], d["field_col"])
        # the stage really went there (1 um repeatability, seeded: deterministic)
        assert d["srash_xyz_x"] == pytest.approx(x, abs=5.0)
        assert d["srash_frame_y"] == pytest.approx(y, abs=5.0)
        assert d["srash_frame_raman_shift"] == pytest.approx(shifts[d["shift_index"]],
                                                             abs=0.05)
        assert d["shift_cm1"] == shifts[d["shift_index"]]
    assert sink.of("stop")[0]["exit_status"] == "success"
    assert math.isclose(sink.of("start")[0]["tiles"]["step_um"], 20.0 * (1 - overlap))
