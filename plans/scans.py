"""Full plans (open_run ... close_run): tiled SRASH mosaics and hyperspectral stacks.

Both validate their arguments when called (before any message), so bad input raises a
:class:`~plans.grid.GridError` / ``ValueError`` and writes nothing, then return the plan
generator. Every start document carries ``plan_name``, ``plan_args``, ``detectors``,
``motors``, ``num_points`` (events in ``primary``: what a progress bar counts), ``hints``,
``composite`` (the recipe of :func:`plans.stubs.composite_recipe`) and the caller's ``md``
(sample/patient ids, phenotype/diagnosis, simulator config dump...). ``sample_id`` and
``patient_id`` are always present (None when the caller gave none).
"""

import dataclasses
import math
from typing import Any, Mapping, Sequence

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
from bluesky.protocols import Movable, Readable
from bluesky.utils import MsgGenerator

from .contract import LINK_SURVEY, PROTEIN_CM1, SURVEY_PLAN
from .decorate import full_plan
from .errors import PlanError
from .grid import TileGrid, tile_grid
from .markers import FieldMarker
from .stubs import (
    DEFAULT_SHIFTS_CM1,
    acquire_frame,
    composite_recipe,
    failures_explained,
    srash_field,
)

__all__ = ["SurveyResult", "hyperspectral_stack", "mosaic", "survey_tiles"]


# ---------------------------------------------------------------------------- helpers
def _fields(obj: Any) -> list[str]:
    """Hinted data keys of a device (bluesky's convention), else its name."""
    hints = getattr(obj, "hints", None)
    if isinstance(hints, Mapping) and hints.get("fields"):
        return list(hints["fields"])
    return [obj.name]


def _limits(obj: Any) -> tuple[float, float] | None:
    lim = getattr(obj, "limits", None)
    try:
        low, high = (float(v) for v in lim)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return None
    return (low, high)


def _base_md(plan_name: str, plan_args: dict, detectors: Sequence[Readable],
             motors: Sequence[Any], md: Mapping | None) -> dict[str, Any]:
    out: dict[str, Any] = {"plan_name": plan_name, "plan_args": plan_args,
                           "detectors": [d.name for d in detectors],
                           "motors": [m.name for m in motors],
                           "sample_id": None, "patient_id": None}
    out.update(md or {})
    return out


def _check_shifts(shifts_cm1: Sequence[float]) -> list[float]:
    shifts = [float(s) for s in shifts_cm1]
    if not shifts or not all(math.isfinite(s) for s in shifts):
        raise PlanError(f"shifts_cm1 {tuple(shifts_cm1)!r} not allowed: give one or more "
                         "finite Raman shifts in cm^-1")
    return shifts


# ---------------------------------------------------------------------------- survey
@dataclasses.dataclass(frozen=True)
class SurveyResult:
    """Outcome of :func:`survey_tiles` (the plan's return value).

    Attributes
    ----------
    mask : list of list of bool
        rows x cols, True = tissue found (acquire), False = empty (skip).
    values : list of list of float
        Survey signal per tile above background (V).
    background : float
        Background subtracted (V).
    uid : str
        Start uid of the survey run.
    shg_values : list of list of float, optional
        Mean SHG per tile (V, not background-subtracted; collagen: tubule walls), when the
        detector reads a ``*_shg_mean``.
    """

    mask: list[list[bool]]
    values: list[list[float]]
    background: float
    uid: str | None
    shg_values: list[list[float]] | None = None


@full_plan
def survey_tiles(detectors: Sequence[Readable], raman: Movable, x: Movable, y: Movable,
                 grid: TileGrid, *, pixels: Movable | None = None, survey_pixels: int = 24,
                 averages: Movable | None = None, survey_averages: int = 1,
                 shift_cm1: float = PROTEIN_CM1, threshold: float = 0.025,
                 background: float | None = None, shutters: Sequence[Movable] = (),
                 key: str | None = None, md: Mapping | None = None
                 ) -> MsgGenerator[SurveyResult]:
    """Quick low-resolution survey of a tile grid: which tiles hold tissue.

    One run (``plan_name="mosaic_survey"``): one frame per tile centre at ``shift_cm1``
    (the CH3 band by default, where tissue is brightest against glass) with the scanner
    at ``survey_pixels`` per side (when ``pixels`` is given; restored afterwards). A tile
    holds tissue when ``reading[key] - background > threshold``.

    Parameters
    ----------
    detectors, raman, x, y
        As for :func:`mosaic`.
    grid : TileGrid
        The mosaic's grid.
    pixels : Movable, optional
        The scanner's pixels-per-side setting (``mic.scanner.pixels``); set to
        ``survey_pixels`` before the survey run is staged and restored after it.
    averages : Movable, optional
        The scanner's frame averages (``mic.scanner.averages``); set to ``survey_averages``
        for the survey and restored afterwards.
    survey_averages : int
        Frame averages of the survey frames (>= 1).
    survey_pixels : int
        Pixels per side of the survey frames.
    shift_cm1 : float
        Raman shift of the survey frames, cm^-1.
    threshold : float
        Signal above background (V) that counts as tissue. The default suits the
        simulated lock-in at 2930 cm^-1 (glass ~0.00, tissue >= 0.05 V above dark).
    background : float, optional
        Background (V) to subtract. If None, a dark frame is taken with ``shutters``
        closed at the start of the survey run (stream ``dark``).
    shutters : list of Movable
        Laser shutters (True = open), for the dark frame.
    key : str, optional
        Data key of the survey signal; default the detector reading ending in
        ``_srs_mean`` (the SRASH detector's mean SRS of the frame, V).

    Returns
    -------
    SurveyResult
    """
    if background is None and not shutters:
        raise PlanError("the survey needs a background: pass background=<V> or shutters="
                         "[pump.shutter, stokes.shutter] to take a dark frame")
    if int(survey_pixels) != survey_pixels or survey_pixels < 8:
        raise PlanError(f"survey_pixels {survey_pixels!r} not allowed: integer >= 8")
    if int(survey_averages) != survey_averages or survey_averages < 1:
        raise PlanError(f"survey_averages {survey_averages!r} not allowed: integer >= 1")
    motors = [x, y]
    _md = _base_md(SURVEY_PLAN, {"shape": [grid.rows, grid.cols],
                                     "survey_pixels": int(survey_pixels),
                                     "shift_cm1": float(shift_cm1),
                                     "threshold": float(threshold)}, detectors, motors, md)
    _md.update({"shape": [grid.rows, grid.cols], "extents": grid.extents,
                "snaking": [False, grid.snake], "tiles": grid.to_metadata(),
                "num_points": grid.num_tiles, "purpose": "survey"})
    marker = FieldMarker()
    result: dict[str, Any] = {}

    def pick(reading: Mapping[str, Any] | None) -> float:
        if not reading:  # a dry run (bluesky.simulators) reads nothing
            return math.nan
        k = key or next((n for n in reading if n.endswith("_srs_mean")), None)
        if k is None or k not in reading:
            raise KeyError(f"survey key {key or '*_srs_mean'!r} not in the detector "
                           f"readings {sorted(reading)}; pass key=")
        return float(reading[k]["value"])

    def dark() -> MsgGenerator[float]:
        before = []
        for sh in shutters:
            before.append((yield from bps.rd(sh)))

        def close_and_read():
            for sh in shutters:
                yield from bps.mv(sh, False)
            return (yield from acquire_frame(list(detectors), name="dark", retries=0))

        def reopen():
            for sh, v in zip(shutters, before):
                yield from bps.mv(sh, v)

        reading = yield from bpp.finalize_wrapper(close_and_read(), reopen())
        return pick(reading)

    @bpp.stage_decorator(list(detectors))
    @bpp.run_decorator(md=_md)
    @failures_explained()
    def inner():
        bg = float(background) if background is not None else (yield from dark())
        yield from bps.mv(raman, float(shift_cm1))
        values = [[0.0] * grid.cols for _ in range(grid.rows)]
        shg: list[list[float]] | None = [[0.0] * grid.cols for _ in range(grid.rows)]
        for r, c in grid.order:
            px, py = grid.position(r, c)
            marker.set_field(grid.index(r, c), row=r, col=c, x_um=px, y_um=py)
            marker.set_shift(0, shift_cm1)
            yield from bps.checkpoint()
            yield from bps.mv(x, px, y, py)
            reading = yield from acquire_frame([*detectors, raman, x, y, marker], retries=0)
            values[r][c] = pick(reading) - bg
            k_shg = next((n for n in reading if n.endswith("_shg_mean")), None)
            if shg is not None and k_shg is not None and reading:
                shg[r][c] = float(reading[k_shg]["value"])
            else:
                shg = None
        result["values"], result["background"], result["shg"] = values, bg, shg

    def with_setting(setting, value, plan_factory):
        if setting is None:
            return (yield from plan_factory())
        old = yield from bps.rd(setting)
        yield from bps.mv(setting, value)
        return (yield from bpp.finalize_wrapper(plan_factory(), bps.mv(setting, old)))

    uid = yield from with_setting(
        pixels, int(survey_pixels),
        lambda: with_setting(averages, int(survey_averages), inner))
    values = result["values"]
    mask = [[v > float(threshold) for v in row] for row in values]
    return SurveyResult(mask=mask, values=values, background=result["background"],
                        uid=uid, shg_values=result.get("shg"))


# ---------------------------------------------------------------------------- mosaic
@full_plan
def mosaic(detectors: Sequence[Readable], raman: Movable, x: Movable, y: Movable, *,
           rows: int | None = None, cols: int | None = None, fov_um: float,
           overlap: float = 0.1, center_um: Sequence[float] | None = (0.0, 0.0),
           rect_um: Sequence[float] | None = None, snake: bool = True,
           shifts_cm1: Sequence[float] = DEFAULT_SHIFTS_CM1, tile_mask: Any = None,
           survey: bool = False, survey_kwargs: Mapping[str, Any] | None = None,
           retries: int = 1, retry_delay_s: float = 0.1,
           md: Mapping | None = None) -> MsgGenerator[str]:
    """Tiled multi-FOV SRASH mosaic: one SRASH field per tile, positions in stage um.

    Tile (r, c) is centred at ``center + ((c - (cols-1)/2) * step, (r - (rows-1)/2) * step)``
    with ``step = fov_um * (1 - overlap)`` (see :mod:`plans.grid`); image columns run along
    stage +x and rows along +y. Tiles are visited in snake order (``snake=True``); each
    is: checkpoint, move ``x`` and ``y`` (together), then :func:`~plans.stubs.srash_field`
    (checkpoint, tune, frame per shift). Every ``primary`` event carries the field marker
    (``field_index = r * cols + c``, ``field_row``, ``field_col``, ``field_x_um``,
    ``field_y_um``, ``shift_index``, ``shift_cm1``).

    Parameters
    ----------
    detectors : list of Readable
        Image detectors (the SRASH microscope ``[mic]``), staged for the run.
    raman : Movable
        Raman-shift axis, cm^-1.
    x, y : Movable
        Stage axes, um. Their ``limits`` (if any) are checked for every tile first.
    rows, cols : int, optional
        Grid shape (or ``rect_um``).
    fov_um : float
        Scanner field of view (um): the tile size.
    overlap : float
        Fraction of the FOV shared by neighbours, ``0 <= overlap < 1`` (0.1 = 10 %).
    center_um : (x, y), optional
        Grid centre, stage um (None = (0, 0)).
    rect_um : (x0, x1, y0, y1), optional
        Stage rectangle to cover instead of rows/cols (um).
    snake : bool
        Snake order.
    shifts_cm1 : sequence of float
        Raman shifts per field, cm^-1 (default 2850, 2930: with SHG the SRASH composite).
    tile_mask : array-like of bool, optional
        rows x cols, False = skip the tile.
    survey : bool
        First run a quick :func:`survey_tiles` (its own run, ``plan_name="mosaic_survey"``)
        and skip tiles it finds empty (combined with ``tile_mask``).
    survey_kwargs : dict, optional
        Keyword arguments of :func:`survey_tiles` (``pixels=mic.scanner.pixels``,
        ``shutters=[...]`` or ``background=``, ``threshold=``, ``survey_pixels=``...).
    retries, retry_delay_s : int, float
        Frame retries after a failed trigger (see :mod:`plans.stubs`).
    md : dict, optional
        Extra start metadata (``sample_id``, ``patient_id``, ``phenotype``,
        ``diagnosis``, the simulator's config dump...).

    Returns
    -------
    str
        The mosaic run's uid (the RunEngine also returns it).

    Notes
    -----
    Start document: ``plan_name="mosaic"``, ``plan_args``, ``shape=[rows, cols]``,
    ``extents`` (tile centres ``[[y0, y1], [x0, x1]]``, um), ``snaking=[False, snake]``,
    ``tiles`` (rows, cols, overlap, fov_um, step_um, center_um, snake, ``positions``
    [[x, y]] by field index, ``order`` (field indices in acquisition order), ``acquire``
    (field indices that will be acquired, in order), ``mask``), ``shifts_cm1``,
    ``composite``, ``num_points`` (= tiles acquired x shifts = events in ``primary``),
    ``survey_uid`` (when surveyed), ``hints`` (``dimensions``: y, x), ``sample_id``,
    ``patient_id`` and ``md``.
    """
    grid = tile_grid(rows=rows, cols=cols, fov_um=fov_um, overlap=overlap,
                     center_um=center_um, rect_um=rect_um, snake=snake)
    grid.check_limits(_limits(x), _limits(y))
    base_mask = grid.check_mask(tile_mask)
    shifts = _check_shifts(shifts_cm1)
    skw = dict(survey_kwargs or {})
    if survey and skw.get("background") is None and not skw.get("shutters"):
        raise PlanError("survey=True needs survey_kwargs with background=<V> or shutters="
                         "[...] (a dark frame is taken)")
    plan_args = {"detectors": [repr(d) for d in detectors], "raman": repr(raman),
                 "x": repr(x), "y": repr(y), "rows": grid.rows, "cols": grid.cols,
                 "fov_um": grid.fov_um, "overlap": grid.overlap,
                 "center_um": list(grid.center_um),
                 "rect_um": None if rect_um is None else [float(v) for v in rect_um],
                 "snake": grid.snake, "shifts_cm1": shifts, "tile_mask": tile_mask is not None,
                 "survey": bool(survey)}
    if survey and skw:
        plan_args["survey_kwargs"] = {k: (repr(v) if k in ("pixels", "shutters") else v)
                                      for k, v in skw.items()}
    return _mosaic(detectors, raman, x, y, grid=grid, base_mask=base_mask, shifts=shifts,
                   survey=bool(survey), survey_kwargs=skw, retries=retries,
                   retry_delay_s=retry_delay_s, plan_args=plan_args, md=md)


def _mosaic(detectors, raman, x, y, *, grid: TileGrid, base_mask, shifts, survey,
            survey_kwargs, retries, retry_delay_s, plan_args, md) -> MsgGenerator[str]:
    mask = [row[:] for row in base_mask]
    survey_result = None
    if survey:
        survey_md = {k: v for k, v in (md or {}).items()
                     if k in ("sample_id", "patient_id", "phenotype", "diagnosis")}
        survey_result = yield from survey_tiles(detectors, raman, x, y, grid, md=survey_md,
                                                **survey_kwargs)
        mask = [[a and b for a, b in zip(ra, rb)] for ra, rb in zip(mask, survey_result.mask)]
    acquire = [(r, c) for r, c in grid.order if mask[r][c]]
    motors = [y, x, raman]
    _md = _base_md("mosaic", plan_args, detectors, motors, md)
    tiles = grid.to_metadata()
    tiles.update({"mask": mask, "acquire": [grid.index(r, c) for r, c in acquire],
                  "skipped": grid.num_tiles - len(acquire)})
    _md.update({
        "shape": [grid.rows, grid.cols], "extents": grid.extents,
        "snaking": [False, grid.snake], "tiles": tiles, "shifts_cm1": shifts,
        "composite": composite_recipe(shifts), "num_points": len(acquire) * len(shifts),
        "num_intervals": max(len(acquire) * len(shifts) - 1, 0),
        "hints": {"dimensions": [(_fields(y), "primary"), (_fields(x), "primary")]},
    })
    if survey_result is not None:
        _md[LINK_SURVEY] = survey_result.uid
        tiles["survey_values_v"] = survey_result.values
    for key, value in (md or {}).items():  # the caller's md wins over the plan's
        _md[key] = value
    marker = FieldMarker()

    @bpp.stage_decorator(list(detectors))
    @bpp.run_decorator(md=_md)
    @failures_explained()
    def inner():
        for r, c in acquire:
            px, py = grid.position(r, c)
            marker.set_field(grid.index(r, c), row=r, col=c, x_um=px, y_um=py)
            yield from bps.checkpoint()
            yield from bps.mv(x, px, y, py)
            yield from srash_field(detectors, raman, shifts_cm1=shifts, marker=marker,
                                   extra_readables=[x, y], retries=retries,
                                   retry_delay_s=retry_delay_s)

    return (yield from inner())


# ---------------------------------------------------------------------------- spectra
@full_plan
def hyperspectral_stack(detectors: Sequence[Readable], raman: Movable, *, start_cm1: float,
                        stop_cm1: float, step_cm1: float, retries: int = 1,
                        retry_delay_s: float = 0.1, md: Mapping | None = None
                        ) -> MsgGenerator[str]:
    """Hyperspectral stack at the current position: one frame (event) per Raman shift.

    Shifts ``start_cm1, start_cm1 + step_cm1, ...`` up to and including ``stop_cm1``
    (within 1e-6 of a step), cm^-1; ``step_cm1`` may be negative to scan downwards. Each
    event carries the field marker (``field_index`` 0, ``shift_index``, ``shift_cm1``).

    Parameters
    ----------
    detectors : list of Readable
        Image detectors, e.g. ``[mic]``.
    raman : Movable
        Raman-shift axis, cm^-1.
    start_cm1, stop_cm1, step_cm1 : float
        Shift range and step, cm^-1 (step != 0, pointing from start to stop).
    md : dict, optional
        Extra start metadata.

    Returns
    -------
    str
        The run uid.
    """
    a, b, s = float(start_cm1), float(stop_cm1), float(step_cm1)
    if not all(math.isfinite(v) for v in (a, b, s)) or s == 0:
        raise PlanError(f"step_cm1 {step_cm1!r} not allowed: must be finite and non-zero")
    if (b - a) * s < 0:
        raise PlanError(f"step_cm1 {s:g} points away from stop_cm1: {a:g} -> {b:g} cm^-1 "
                         "needs a step of that sign")
    n = int(math.floor((b - a) / s + 1e-6)) + 1
    shifts = [a + i * s for i in range(n)]
    plan_args = {"detectors": [repr(d) for d in detectors], "raman": repr(raman),
                 "start_cm1": a, "stop_cm1": b, "step_cm1": s}
    _md = _base_md("hyperspectral_stack", plan_args, detectors, [raman], md)
    _md.update({"shifts_cm1": shifts, "num_points": n, "num_intervals": max(n - 1, 0),
                "shape": [n], "extents": [[shifts[0], shifts[-1]]],
                "hints": {"dimensions": [(_fields(raman), "primary")]}})
    for key, value in (md or {}).items():
        _md[key] = value
    return _stack(detectors, raman, shifts, retries, retry_delay_s, _md)


def _stack(detectors, raman, shifts, retries, retry_delay_s, _md) -> MsgGenerator[str]:
    marker = FieldMarker()

    @bpp.stage_decorator(list(detectors))
    @bpp.run_decorator(md=_md)
    @failures_explained()
    def inner():
        yield from srash_field(detectors, raman, shifts_cm1=shifts, marker=marker,
                               retries=retries, retry_delay_s=retry_delay_s)

    return (yield from inner())

