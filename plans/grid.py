"""Tile geometry of a mosaic: positions in stage micrometres from the scanner FOV.

Pure Python (no bluesky, no devices), so a dry run, a CLI preview and the plan share it.

Conventions (README, "Conventions"): stage +x = image column +1, stage +y = image row +1.
Tile (``r``, ``c``) of a ``rows x cols`` grid has its field centre at

.. math::

    x_{rc} = c_x + \\left(c - \\tfrac{cols - 1}{2}\\right) s, \\qquad
    y_{rc} = c_y + \\left(r - \\tfrac{rows - 1}{2}\\right) s, \\qquad
    s = \\mathrm{fov}\\,(1 - \\mathrm{overlap})

so neighbouring fields share ``overlap * fov`` micrometres and the grid is centred on
(``c_x``, ``c_y``). The field index is row-major, ``r * cols + c``, whatever the
acquisition order; snake order runs even rows left to right and odd rows right to left
(useq-schema's ``row_wise_snake``), so the stage never flies back across a row.

A stage rectangle ``(x0, x1, y0, y1)`` instead of rows/cols is covered edge to edge (the
field edges, not the centres, reach the rectangle's edges, as useq-schema's
``GridFromEdges`` with ``fov``): ``cols = max(1, ceil((x1 - x0 - fov) / s) + 1)``, likewise
rows, the grid centred on the rectangle's centre (it overhangs evenly where the
rectangle is not a whole number of steps).

**useq-schema** (pymmcore-plus MDA sequences): :meth:`TileGrid.to_useq` and
:meth:`TileGrid.from_useq` exchange grids with ``useq.GridFromEdges`` (absolute) and
``useq.GridRowsColumns`` (relative to a position). useq's grids run x as ours but y the
other way: its row 0 is the row of the *largest* y (``y = y0 - r dy``: +y up, the
``top`` edge is ``max(top, bottom)``), while our stage +y is image row +1 (down). The adapter
negates y, ``y_useq = -y_stage``, so that both describe the same tiles in the same order
(row-wise, snake or not) with the same field index ``r * cols + c``. useq's overlap is in
percent, ours a fraction; its ``fov_width`` / ``fov_height`` must be equal (square fields).
useq is imported only by these two methods (``pip install srash[useq]``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

from .errors import PlanError

__all__ = ["GridError", "TileGrid", "tile_grid"]


class GridError(PlanError):
    """A mosaic grid that cannot be acquired (bad shape, overlap, mask or stage limits)."""


@dataclasses.dataclass(frozen=True)
class TileGrid:
    """A rows x cols grid of fields.

    Attributes
    ----------
    rows, cols : int
        Grid shape (rows along stage y, columns along stage x).
    fov_um : float
        Field of view of one tile (um).
    overlap : float
        Fraction of the FOV shared by neighbouring tiles, ``0 <= overlap < 1``.
    center_um : (float, float)
        Stage (x, y) of the grid centre (um).
    snake : bool
        Snake (boustrophedon) acquisition order.
    """

    rows: int
    cols: int
    fov_um: float
    overlap: float
    center_um: tuple[float, float]
    snake: bool = True

    @property
    def step_um(self) -> float:
        """Centre-to-centre pitch ``fov * (1 - overlap)`` (um)."""
        return self.fov_um * (1.0 - self.overlap)

    @property
    def num_tiles(self) -> int:
        return self.rows * self.cols

    def index(self, row: int, col: int) -> int:
        """Row-major field index of tile (``row``, ``col``)."""
        return int(row) * self.cols + int(col)

    def position(self, row: int, col: int) -> tuple[float, float]:
        """Stage (x, y) of the centre of tile (``row``, ``col``) in um."""
        s = self.step_um
        cx, cy = self.center_um
        return (cx + (col - (self.cols - 1) / 2) * s, cy + (row - (self.rows - 1) / 2) * s)

    @property
    def positions(self) -> list[tuple[float, float]]:
        """Stage (x, y) of every tile, indexed by field index (row-major), um."""
        return [self.position(r, c) for r in range(self.rows) for c in range(self.cols)]

    @property
    def order(self) -> list[tuple[int, int]]:
        """(row, col) of the tiles in acquisition order."""
        out: list[tuple[int, int]] = []
        for r in range(self.rows):
            reverse = self.snake and r % 2 == 1
            cols = range(self.cols - 1, -1, -1) if reverse else range(self.cols)
            out.extend((r, c) for c in cols)
        return out

    @property
    def extents(self) -> list[list[float]]:
        """``[[y_first, y_last], [x_first, x_last]]`` of the tile centres (um), in the order
        of ``shape`` (bluesky's grid_scan convention)."""
        (x0, y0), (x1, y1) = self.position(0, 0), self.position(self.rows - 1, self.cols - 1)
        return [[y0, y1], [x0, x1]]

    @property
    def bounds_um(self) -> tuple[float, float, float, float]:
        """Stage area covered by the fields' edges, ``(x0, x1, y0, y1)`` (um)."""
        (ya, yb), (xa, xb) = self.extents
        h = self.fov_um / 2
        return (xa - h, xb + h, ya - h, yb + h)

    def check_mask(self, mask: Any) -> list[list[bool]]:
        """``mask`` (rows x cols, truthy = acquire) as nested lists of bool; None = all."""
        if mask is None:
            return [[True] * self.cols for _ in range(self.rows)]
        rows = [list(r) for r in mask]
        if len(rows) != self.rows or any(len(r) != self.cols for r in rows):
            shape = f"{len(rows)}x{len(rows[0]) if rows else 0}"
            raise GridError(f"tile_mask shape {shape} does not match the grid "
                            f"{self.rows}x{self.cols}")
        return [[bool(v) for v in r] for r in rows]

    def check_limits(self, x_limits: Sequence[float] | None,
                     y_limits: Sequence[float] | None) -> None:
        """Raise :class:`GridError` if a tile centre lies outside the stage limits
        (``(low, high)`` in um; None or ``low >= high`` = unlimited)."""
        (ya, yb), (xa, xb) = self.extents
        for axis, (lo_pos, hi_pos), lim in (("x", (xa, xb), x_limits), ("y", (ya, yb), y_limits)):
            if lim is None:
                continue
            low, high = float(lim[0]), float(lim[1])
            if low < high and (lo_pos < low or hi_pos > high):
                raise GridError(
                    f"mosaic {self.rows}x{self.cols} (step {self.step_um:g} um) needs stage "
                    f"{axis} {lo_pos:g}..{hi_pos:g} um, outside the stage limits "
                    f"{low:g}..{high:g} um; use fewer tiles or move the centre")

    def to_useq(self, *, relative: bool = False) -> Any:
        """This grid as a useq-schema grid plan (module doc: y negated).

        ``relative=False``: ``useq.GridFromEdges`` whose edges are the fields' edges, so
        useq places exactly these tile centres (absolute stage positions; the right /
        bottom edges are pulled in by 1e-6 of a step so that rounding never adds a row).
        ``relative=True``: ``useq.GridRowsColumns`` centred on the origin (relative to a
        position at ``(center_x, -center_y)``, e.g. ``useq.Position(x=..., y=...,
        sequence=useq.MDASequence(grid_plan=grid))``).
        """
        useq = _useq()
        mode = "row_wise_snake" if self.snake else "row_wise"
        ov = (self.overlap * 100.0, self.overlap * 100.0)
        fov = self.fov_um
        if relative:
            return useq.GridRowsColumns(rows=self.rows, columns=self.cols, overlap=ov,
                                        mode=mode, fov_width=fov, fov_height=fov,
                                        relative_to="center")
        x0, x1, y0, y1 = self.bounds_um
        eps = 1e-6 * self.step_um
        return useq.GridFromEdges(left=x0, right=x1 - 2 * eps, top=-y0, bottom=-y1 + 2 * eps,
                                  overlap=ov, mode=mode, fov_width=fov, fov_height=fov)

    @classmethod
    def from_useq(cls, grid: Any, *, fov_um: float | None = None,
                  center_um: Sequence[float] = (0.0, 0.0)) -> "TileGrid":
        """The :class:`TileGrid` of a useq-schema grid plan (``GridFromEdges`` or
        ``GridRowsColumns``; module doc: y negated), with the same tile centres.

        ``fov_um``: the field of view when the grid has none (its ``fov_width`` /
        ``fov_height`` win otherwise). ``center_um``: the stage (x, y) that a relative grid
        (``GridRowsColumns``) is placed around (ours, y down). Raises :class:`GridError`
        for what a TileGrid cannot be: other orders than ``row_wise`` / ``row_wise_snake``,
        different x and y overlaps or fields, or other grid plans.
        """
        useq = _useq()
        if not isinstance(grid, (useq.GridFromEdges, useq.GridRowsColumns)):
            raise GridError(f"{type(grid).__name__} not allowed: give a useq GridFromEdges "
                            "or GridRowsColumns")
        mode = str(getattr(grid.mode, "value", grid.mode))
        if mode not in ("row_wise", "row_wise_snake"):
            raise GridError(f"useq grid mode {mode!r} not allowed: a TileGrid acquires "
                            "row_wise or row_wise_snake")
        ox, oy = (float(v) for v in grid.overlap)
        if not math.isclose(ox, oy, rel_tol=1e-9, abs_tol=1e-12):
            raise GridError(f"useq overlap ({ox:g}%, {oy:g}%) not allowed: a TileGrid has one "
                            "overlap for x and y")
        fw, fh = grid.fov_width, grid.fov_height
        if fw is not None and fh is not None and not math.isclose(fw, fh, rel_tol=1e-9):
            raise GridError(f"useq fields {fw:g} x {fh:g} um not allowed: TileGrid fields "
                            "are square")
        fov = fw if fw is not None else (fh if fh is not None else fov_um)
        if fov is None:
            raise GridError("the useq grid has no fov_width / fov_height: give fov_um")
        positions = list(grid.iter_grid_positions(fov_width=fov, fov_height=fov))
        rows = 1 + max(int(p.grid_row) for p in positions)
        cols = 1 + max(int(p.grid_col) for p in positions)
        xs = [float(p.x) for p in positions]
        ys = [-float(p.y) for p in positions]  # useq +y up -> stage +y down
        center = ((min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2)
        if isinstance(grid, useq.GridRowsColumns):
            center = (center[0] + float(center_um[0]), center[1] + float(center_um[1]))
        out = tile_grid(rows=rows, cols=cols, fov_um=float(fov), overlap=ox / 100.0,
                        center_um=center, snake=mode == "row_wise_snake")
        return out

    def to_metadata(self) -> dict[str, Any]:
        """JSON-safe description for the start document's ``tiles``."""
        return {"rows": self.rows, "cols": self.cols, "overlap": self.overlap,
                "fov_um": self.fov_um, "step_um": self.step_um,
                "center_um": [float(v) for v in self.center_um], "snake": self.snake,
                "positions": [[x, y] for x, y in self.positions],
                "order": [self.index(r, c) for r, c in self.order],
                "index": "row * cols + col", "bounds_um": list(self.bounds_um)}


def _useq() -> Any:
    try:
        import useq
    except ImportError as exc:
        raise GridError("useq-schema is not installed: pip install 'srash[useq]'") from exc
    return useq


def tile_grid(*, rows: int | None = None, cols: int | None = None, fov_um: float,
              overlap: float = 0.1, center_um: Sequence[float] | None = (0.0, 0.0),
              rect_um: Sequence[float] | None = None, snake: bool = True) -> TileGrid:
    """Build and validate a :class:`TileGrid`.

    Parameters
    ----------
    rows, cols : int, optional
        Grid shape; give both, or ``rect_um`` instead.
    fov_um : float
        Field of view of one tile (um), > 0.
    overlap : float
        Fraction of the FOV shared by neighbours, ``0 <= overlap < 1``.
    center_um : (x, y), optional
        Grid centre in stage um (None = (0, 0)); not used with ``rect_um``.
    rect_um : (x0, x1, y0, y1), optional
        Stage rectangle (um) to cover instead of rows/cols.
    snake : bool
        Snake acquisition order.

    Raises
    ------
    GridError
        Bad shape, FOV or overlap, or both/neither of rows-cols and ``rect_um``.
    """
    fov = float(fov_um)
    if not (math.isfinite(fov) and fov > 0):
        raise GridError(f"fov_um {fov_um!r} not allowed: must be > 0 um")
    ov = float(overlap)
    if not (math.isfinite(ov) and 0.0 <= ov < 1.0):
        raise GridError(f"overlap {overlap!r} not allowed: must be 0 <= overlap < 1 "
                        f"(a fraction of the FOV; {ov * 100:g}% given)")
    step = fov * (1.0 - ov)
    if rect_um is not None:
        if rows is not None or cols is not None:
            raise GridError("give either rows and cols or rect_um, not both")
        x0, x1, y0, y1 = (float(v) for v in rect_um)
        if not (x1 >= x0 and y1 >= y0):
            raise GridError(f"rect_um {tuple(rect_um)!r} not allowed: need x0 <= x1, y0 <= y1")

        def count(span: float) -> int:
            return 1 if span <= fov else int(math.ceil((span - fov) / step - 1e-9)) + 1

        rows, cols = count(y1 - y0), count(x1 - x0)
        center = ((x0 + x1) / 2, (y0 + y1) / 2)
    else:
        if rows is None or cols is None:
            raise GridError("give rows and cols (or rect_um)")
        center = (0.0, 0.0) if center_um is None else (float(center_um[0]),
                                                      float(center_um[1]))
    for label, n in (("rows", rows), ("cols", cols)):
        if int(n) != n or n < 1:
            raise GridError(f"{label} {n!r} not allowed: must be an integer >= 1")
    if not all(math.isfinite(v) for v in center):
        raise GridError(f"center_um {center!r} not allowed: must be finite")
    return TileGrid(rows=int(rows), cols=int(cols), fov_um=fov, overlap=ov,
                    center_um=center, snake=bool(snake))
