"""Calibration plans: dark frames, power reference, flat field (and the flat-field map).

- :func:`dark_frames`: shutters closed, ``num`` frames (detector offsets and electronic
  noise); the shutters return to their previous state afterwards, also when the
  acquisition fails or the run is aborted (``finalize_wrapper``).
- :func:`power_reference`: one SRASH field on the ``reference`` specimen (a uniform lipid
  standard) at a known stage position: the SRS level per channel tracks laser power.
- :func:`flat_field`: one SRASH field at each of several positions of the uniform
  reference; :func:`flat_field_map` turns their images (read back from the documents'
  files) into a per-channel flat field normalised to mean 1.

Shutter values: True = open, False = closed (the SRASH lasers' ``shutter`` signals,
``mic.pump.shutter`` and ``mic.stokes.shutter``). Start documents carry
``calibration`` (``"dark"``, ``"power_reference"``, ``"flat_field"``).
"""

from typing import Any, Mapping, Sequence

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
import numpy as np
from bluesky.protocols import Movable, Readable
from bluesky.utils import MsgGenerator

from .decorate import full_plan
from .errors import PlanError
from .markers import FieldMarker
from .scans import _base_md, _check_shifts
from .stubs import (
    DEFAULT_SHIFTS_CM1,
    acquire_frame,
    composite_recipe,
    failures_explained,
    srash_field,
)

__all__ = ["dark_frames", "flat_field", "flat_field_map", "power_reference"]


@full_plan
def dark_frames(detectors: Sequence[Readable], shutters: Sequence[Movable], *, num: int = 1,
                md: Mapping | None = None) -> MsgGenerator[str]:
    """Background frames with the laser shutters closed.

    Reads every shutter's state, closes them all, acquires ``num`` frames (``primary``), and
    puts each shutter back to its previous state, also when a frame fails or the run is
    interrupted.

    Parameters
    ----------
    detectors : list of Readable
        Image detectors, e.g. ``[mic]``.
    shutters : list of Movable
        Shutters to close (``[mic.pump.shutter, mic.stokes.shutter]``), True = open.
    num : int
        Number of frames, >= 1.
    md : dict, optional
        Extra start metadata.

    Returns
    -------
    str
        The run uid.
    """
    if int(num) != num or num < 1:
        raise PlanError(f"num {num!r} not allowed: integer >= 1")
    shutters = list(shutters)
    plan_args = {"detectors": [repr(d) for d in detectors],
                 "shutters": [repr(s) for s in shutters], "num": int(num)}
    _md = _base_md("dark_frames", plan_args, detectors, [], md)
    _md.update({"calibration": "dark", "num_points": int(num),
                "num_intervals": int(num) - 1,
                "shutters": [getattr(s, "name", repr(s)) for s in shutters]})
    _md.update(md or {})

    def gen():
        before = []
        for sh in shutters:
            before.append((yield from bps.rd(sh)))

        def restore():
            for sh, value in zip(shutters, before):
                yield from bps.mv(sh, value)

        @bpp.stage_decorator(list(detectors))
        @bpp.run_decorator(md=_md)
        @failures_explained()
        def inner():
            for sh in shutters:
                yield from bps.mv(sh, False)
            for _ in range(int(num)):
                yield from bps.checkpoint()
                yield from acquire_frame(list(detectors), retries=0)

        return (yield from bpp.finalize_wrapper(inner(), restore()))

    return gen()


@full_plan
def power_reference(detectors: Sequence[Readable], raman: Movable, x: Movable, y: Movable, *,
                    position_um: Sequence[float] = (0.0, 0.0),
                    shifts_cm1: Sequence[float] = DEFAULT_SHIFTS_CM1,
                    md: Mapping | None = None) -> MsgGenerator[str]:
    """One SRASH field on the uniform ``reference`` specimen: the power reference.

    Moves the stage to ``position_um`` (um) and acquires one frame per shift (field
    marker ``field_index`` 0). The mean SRS per shift against the standard's known Raman
    response gives the delivered power factor of each channel.

    Parameters
    ----------
    detectors, raman, x, y
        As for :func:`plans.mosaic`.
    position_um : (x, y)
        Stage position on the reference region, um.
    shifts_cm1 : sequence of float
        Raman shifts, cm^-1.
    md : dict, optional
        Extra start metadata (e.g. ``reference_id``).
    """
    shifts = _check_shifts(shifts_cm1)
    px, py = (float(v) for v in position_um)
    plan_args = {"detectors": [repr(d) for d in detectors], "raman": repr(raman),
                 "x": repr(x), "y": repr(y), "position_um": [px, py], "shifts_cm1": shifts}
    _md = _base_md("power_reference", plan_args, detectors, [x, y, raman], md)
    _md.update({"calibration": "power_reference", "shifts_cm1": shifts,
                "position_um": [px, py], "composite": composite_recipe(shifts),
                "num_points": len(shifts), "num_intervals": len(shifts) - 1})
    _md.update(md or {})
    return _fields_at(detectors, raman, x, y, [(px, py)], shifts, _md)


@full_plan
def flat_field(detectors: Sequence[Readable], raman: Movable, x: Movable, y: Movable, *,
               positions_um: Sequence[Sequence[float]],
               shifts_cm1: Sequence[float] = DEFAULT_SHIFTS_CM1,
               md: Mapping | None = None) -> MsgGenerator[str]:
    """SRASH fields at several positions of the uniform reference, for a flat field.

    One field per position (``field_index`` = position number); average them with
    :func:`flat_field_map` (different positions average out the standard's local
    texture and the noise, leaving the illumination/collection profile).

    Parameters
    ----------
    detectors, raman, x, y
        As for :func:`plans.mosaic`.
    positions_um : list of (x, y)
        Stage positions on the reference, um (at least 1; a few, apart by >= one FOV).
    shifts_cm1 : sequence of float
        Raman shifts, cm^-1.
    md : dict, optional
        Extra start metadata.
    """
    shifts = _check_shifts(shifts_cm1)
    pos = [(float(p[0]), float(p[1])) for p in positions_um]
    if not pos:
        raise PlanError("positions_um is empty: give at least one (x, y) stage position")
    plan_args = {"detectors": [repr(d) for d in detectors], "raman": repr(raman),
                 "x": repr(x), "y": repr(y), "positions_um": [list(p) for p in pos],
                 "shifts_cm1": shifts}
    _md = _base_md("flat_field", plan_args, detectors, [x, y, raman], md)
    _md.update({"calibration": "flat_field", "shifts_cm1": shifts,
                "positions_um": [list(p) for p in pos], "composite": composite_recipe(shifts),
                "num_points": len(pos) * len(shifts),
                "num_intervals": len(pos) * len(shifts) - 1})
    _md.update(md or {})
    return _fields_at(detectors, raman, x, y, pos, shifts, _md)


def _fields_at(detectors, raman, x, y, positions, shifts, _md) -> MsgGenerator[str]:
    marker = FieldMarker()

    @bpp.stage_decorator(list(detectors))
    @bpp.run_decorator(md=_md)
    @failures_explained()
    def inner():
        for i, (px, py) in enumerate(positions):
            marker.set_field(i, row=0, col=i, x_um=px, y_um=py)
            yield from bps.checkpoint()
            yield from bps.mv(x, px, y, py)
            yield from srash_field(detectors, raman, shifts_cm1=shifts, marker=marker,
                                   extra_readables=[x, y])

    return (yield from inner())


def flat_field_map(images: Sequence[Any], *, dark: Any = None) -> np.ndarray:
    """Flat field from frames of a uniform standard: per channel, mean 1.

    .. math::

        F_c(y, x) = \\frac{\\langle I_{k,c}(y, x) - D_c \\rangle_k}
                         {\\operatorname{mean}_{y,x} \\langle I_{k,c} - D_c \\rangle_k}

    Parameters
    ----------
    images : sequence of array (channel, y, x)
        Frames of the uniform reference (e.g. every ``<det>_image`` of a
        :func:`flat_field` run), V.
    dark : array (channel,) or (channel, y, x) or float, optional
        Background to subtract first (V), e.g. the mean of :func:`dark_frames`.

    Returns
    -------
    numpy.ndarray, float32, (channel, y, x)
        Flat field; divide a background-subtracted frame by it. Channels whose mean is
        not positive (no signal, e.g. SHG on a lipid standard) are all ones.
    """
    stack = np.asarray([np.asarray(im, dtype=np.float64) for im in images])
    if stack.ndim != 4 or stack.shape[0] < 1:
        raise PlanError(f"images must be a non-empty sequence of (channel, y, x) arrays, got "
                         f"shape {stack.shape}")
    if dark is not None:
        d = np.asarray(dark, dtype=np.float64)
        if d.ndim == 1:
            d = d[:, None, None]
        stack = stack - d
    mean = stack.mean(axis=0)
    out = np.ones_like(mean)
    for c in range(mean.shape[0]):
        m = float(mean[c].mean())
        if m > 0 and np.isfinite(m):
            out[c] = mean[c] / m
    return out.astype(np.float32)

