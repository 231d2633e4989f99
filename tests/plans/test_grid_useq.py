"""TileGrid <-> useq-schema grids (issue 19): the same tiles, in the same order, y negated.

useq's grids put row 0 at the largest y (``y = y0 - r dy``); our stage +y is image row +1.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plans import GridError, tile_grid
from plans.grid import TileGrid

useq = pytest.importorskip("useq", reason="pip install 'srash[useq]' (useq-schema)")

grids = st.fixed_dictionaries({
    "rows": st.integers(1, 7), "cols": st.integers(1, 7),
    "fov_um": st.floats(1.0, 1000.0), "overlap": st.floats(0.0, 0.9),
    "center_um": st.tuples(st.floats(-1e5, 1e5), st.floats(-1e5, 1e5)),
    "snake": st.booleans()})


def ours_in_order(g: TileGrid) -> list[tuple[float, float]]:
    return [g.position(r, c) for r, c in g.order]


def close(a, b, scale: float) -> bool:
    tol = 1e-9 * max(1.0, scale)
    return all(abs(p - q) <= tol for p, q in zip(a, b))


@settings(max_examples=150, deadline=None)
@given(grids)
def test_to_useq_edges_gives_our_tiles_in_our_order(kw):
    g = tile_grid(**kw)
    u = g.to_useq()
    assert isinstance(u, useq.GridFromEdges) and u.num_positions() == g.num_tiles
    pos = list(u)
    scale = abs(kw["center_um"][0]) + abs(kw["center_um"][1]) + g.rows * g.cols * g.fov_um
    for p, (x, y), (r, c) in zip(pos, ours_in_order(g), g.order):
        assert (p.grid_row, p.grid_col) == (r, c)
        assert close((p.x, -p.y), (x, y), scale)  # useq y = -stage y
    back = TileGrid.from_useq(u)
    assert (back.rows, back.cols, back.snake) == (g.rows, g.cols, g.snake)
    assert back.fov_um == g.fov_um and back.overlap == pytest.approx(g.overlap, abs=1e-12)
    assert all(close(a, b, scale) for a, b in zip(back.positions, g.positions))


@settings(max_examples=150, deadline=None)
@given(grids)
def test_to_useq_rows_columns_round_trips_about_the_centre(kw):
    g = tile_grid(**kw)
    u = g.to_useq(relative=True)
    assert isinstance(u, useq.GridRowsColumns) and (u.rows, u.columns) == (g.rows, g.cols)
    cx, cy = g.center_um
    scale = abs(cx) + abs(cy) + g.rows * g.cols * g.fov_um
    for p, (x, y) in zip(u, ours_in_order(g)):  # relative to the centre, y negated
        assert close((cx + p.x, cy - p.y), (x, y), scale)
    back = TileGrid.from_useq(u, center_um=g.center_um)
    assert (back.rows, back.cols, back.snake, back.fov_um) == (g.rows, g.cols, g.snake,
                                                               g.fov_um)
    assert all(close(a, b, scale) for a, b in zip(back.positions, g.positions))


useq_edges = st.fixed_dictionaries({
    "left": st.floats(-1e4, 1e4), "width": st.floats(0.0, 6.0),  # in fields
    "bottom": st.floats(-1e4, 1e4), "height": st.floats(0.0, 6.0),
    "fov": st.floats(10.0, 500.0), "overlap": st.floats(0.0, 60.0),
    "mode": st.sampled_from(["row_wise", "row_wise_snake"])})


@settings(max_examples=150, deadline=None)
@given(useq_edges)
def test_from_useq_edges_keeps_useqs_positions(kw):
    u = useq.GridFromEdges(left=kw["left"], right=kw["left"] + kw["width"] * kw["fov"],
                           bottom=kw["bottom"], top=kw["bottom"] + kw["height"] * kw["fov"],
                           fov_width=kw["fov"], fov_height=kw["fov"],
                           overlap=kw["overlap"], mode=kw["mode"])
    g = TileGrid.from_useq(u)
    assert g.num_tiles == u.num_positions()
    scale = abs(kw["left"]) + abs(kw["bottom"]) + 20 * kw["fov"]
    for p, (x, y), (r, c) in zip(u, ours_in_order(g), g.order):
        assert (p.grid_row, p.grid_col) == (r, c)
        assert abs(p.x - x) <= 1e-9 * scale and abs(-p.y - y) <= 1e-9 * scale


@settings(deadline=None)
@given(st.integers(1, 6), st.integers(1, 6), st.floats(1.0, 400.0), st.floats(0.0, 50.0),
       st.sampled_from(["center", "top_left"]))
def test_from_useq_rows_columns_either_anchor(rows, cols, fov, overlap, anchor):
    u = useq.GridRowsColumns(rows=rows, columns=cols, fov_width=fov, fov_height=fov,
                             overlap=overlap, relative_to=anchor)
    g = TileGrid.from_useq(u, center_um=(10.0, 20.0))
    # placed around (10, 20): useq's relative positions, y negated, plus the anchor
    ref = [(p.x, -p.y) for p in u]
    dx = g.position(0, 0)[0] - ref[0][0]
    dy = g.position(0, 0)[1] - ref[0][1]
    for (x, y), (rx, ry) in zip(ours_in_order(g), ref):
        assert x == pytest.approx(rx + dx) and y == pytest.approx(ry + dy)
    if anchor == "center":
        assert (dx, dy) == pytest.approx((10.0, 20.0))


def test_row_zero_is_the_smallest_stage_y():
    """The sign, on a picture: useq's first row is at the top (largest useq y), which is
    our smallest stage y (image row 0)."""
    g = tile_grid(rows=2, cols=1, fov_um=100.0, overlap=0.0, center_um=(0.0, 0.0))
    first, second = list(g.to_useq())
    assert first.y > second.y  # useq: row 0 up
    assert g.position(0, 0)[1] < g.position(1, 0)[1]  # ours: row 0 at smaller y
    assert -first.y == g.position(0, 0)[1] == -50.0


@pytest.mark.parametrize("grid, match", [
    (dict(rows=2, columns=2, fov_width=10, fov_height=10, mode="spiral"), "mode"),
    (dict(rows=2, columns=2, fov_width=10, fov_height=10, mode="column_wise"), "mode"),
    (dict(rows=2, columns=2, fov_width=10, fov_height=10, overlap=(10, 20)), "overlap"),
    (dict(rows=2, columns=2, fov_width=10, fov_height=12), "square"),
    (dict(rows=2, columns=2), "fov_um"),
])
def test_what_a_tile_grid_cannot_be(grid, match):
    with pytest.raises(GridError, match=match):
        TileGrid.from_useq(useq.GridRowsColumns(**grid))


def test_fov_given_when_useq_has_none_and_other_plans_refused():
    g = TileGrid.from_useq(useq.GridRowsColumns(rows=1, columns=3), fov_um=50.0)
    assert g.fov_um == 50.0 and g.cols == 3
    with pytest.raises(GridError, match="GridFromEdges or GridRowsColumns"):
        TileGrid.from_useq(useq.GridWidthHeight(width=100, height=100, fov_width=10,
                                                fov_height=10))


def test_an_mda_sequence_drives_the_mosaic():
    """A mosaic described as a useq MDA sequence yields the mosaic's stage positions."""
    g = tile_grid(rows=2, cols=3, fov_um=360.0, overlap=0.1, center_um=(500.0, -200.0))
    seq = useq.MDASequence(grid_plan=g.to_useq(), axis_order="gc")
    xy = [v for ev in seq for v in (ev.x_pos, -ev.y_pos)]
    assert xy == pytest.approx([v for p in ours_in_order(g) for v in p])
