"""Hyperspectral SRS stacks from the catalog (the input of spectral phasor / hybrid UNet).

A ``hyperspectral_stack`` run has one ``primary`` event per Raman shift with the frame
``<name>_image`` (channel 0 = SRS lock-in volts) and the frame's physical shift and laser
powers. :func:`run_stack` returns the stack processed as the paper does before phasor
analysis: dark level subtracted (the run's ``calibration`` record) and each band normalised
to the reference powers (``S (P_P0 P_S0) / (P_P P_S)``), in volts at reference power, bands
in increasing Raman shift.

Faults (:mod:`ml.io.frames`): a run without a stop document is an
:class:`~ml.io.runstate.IncompleteRunError` for :func:`run_stack` and skipped with a
warning by :func:`load_stacks`; a band whose frame file cannot be read makes the stack
unusable (:class:`~ml.io.frames.FrameError` naming the file), which
:func:`load_stacks` skips with a warning unless ``strict``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Mapping

import numpy as np
from numpy.typing import NDArray

from ml.common.processing import normalize_power, subtract_background
from ml.io.composite import Calibration
from ml.io.frames import FrameError, FrameReader, ReadFaults
from ml.io.runs import ExportError, find_image_key, pixel_um_of

__all__ = ["Stack", "load_stacks", "run_stack"]


@dataclasses.dataclass
class Stack:
    """``data`` (B, H, W) float32 processed SRS, ``raman_cm1`` (B,) increasing, pixel size
    (um) and the run's start document."""

    data: NDArray[np.float32]
    raman_cm1: NDArray[np.float64]
    pixel_um: float | None
    start: dict


def run_stack(run, *, stream_name: str = "primary") -> Stack:
    """The processed stack of a ``hyperspectral_stack`` run (module doc).

    Raises :class:`ExportError` for a run without an image stream or with fewer than 2
    bands, :class:`ml.io.composite.CalibrationError` without a calibration record,
    :class:`~ml.io.runstate.IncompleteRunError` without a stop document and
    :class:`~ml.io.frames.FrameError` (the first bad band's file) when a frame
    file cannot be read.
    """
    from ml.io.runstate import require_readable

    require_readable(run)
    start = dict(run.metadata["start"])
    if stream_name not in run:
        raise ExportError(f"run {start['uid']} has no {stream_name!r} stream")
    stream = run[stream_name]
    key = find_image_key(stream)
    base = key[: -len("_image")] if key.endswith("_image") else key
    cal = Calibration.from_dict(start.get("calibration"))
    shifts = np.asarray(stream[f"{base}_frame_raman_shift"].read(), np.float64)
    pump = np.asarray(stream[f"{base}_frame_pump_mw"].read(), np.float64)
    stokes = np.asarray(stream[f"{base}_frame_stokes_mw"].read(), np.float64)
    if shifts.size < 2:
        raise ExportError(f"run {start['uid']} has {shifts.size} band(s): a stack needs >= 2")
    img = _read_bands(stream, key, start["uid"], shifts)[:, 0]  # (B, H, W) SRS channel
    out = np.empty_like(img)
    for k in range(img.shape[0]):
        out[k] = normalize_power(subtract_background(img[k], cal.srs_dark_v),
                                 pump_mw=float(pump[k]), stokes_mw=float(stokes[k]),
                                 ref_pump_mw=cal.ref_pump_mw, ref_stokes_mw=cal.ref_stokes_mw)
    order = np.argsort(shifts, kind="stable")
    return Stack(data=np.ascontiguousarray(out[order]), raman_cm1=shifts[order],
                 pixel_um=pixel_um_of(stream, base), start=start)


def _read_bands(stream, key: str, uid: str, shifts: NDArray[np.float64]
                ) -> NDArray[np.float32]:
    """The (B, C, H, W) image column in one request; when that fails, band by band to name
    the first unreadable file (:class:`~ml.io.frames.FrameError`)."""
    node = stream[key]
    dk = stream.metadata["data_keys"][key]
    reader = FrameReader(node, uid, dk.get("shape"), dk.get("dtype_numpy"))
    try:
        return np.asarray(node.read(), np.float32)
    except Exception as exc:  # find which band's file, and say why
        for k in range(len(shifts)):
            reader(k, f"{k} ({shifts[k]:.0f} cm^-1)", what="band")
        raise ExportError(f"run {uid}: the image column cannot be read ({exc})") from exc


def load_stacks(found: Iterable[Any], client: Any, *,
                criteria: Mapping[str, Any] | None = None, require_truth: bool = True,
                faults: ReadFaults | None = None
                ) -> tuple[list[Stack], list[NDArray[np.uint8] | None]]:
    """Processed stacks of the ``hyperspectral_stack`` runs in ``found`` (what a catalog
    search for ``criteria`` returned, oldest first) and their simulator-truth label maps
    looked up in ``client`` (None where a stack has none, or the stack is skipped when
    ``require_truth``). Runs without a stop document and stacks with an unreadable frame
    file are skipped with a warning (``faults``; ``strict`` raises). Raises
    :class:`ExportError` when nothing usable matches."""
    from ml.io.truth import load_truth

    faults = faults if faults is not None else ReadFaults()
    stacks, labels = [], []
    for run in faults.runs(list(found)):
        try:
            st = run_stack(run)
        except FrameError as err:
            faults.frame(err, action="stack skipped")
            continue
        truth = load_truth(client, st.start["uid"])
        if truth is None and require_truth:
            continue
        stacks.append(st)
        labels.append(None if truth is None else truth[0])
    if not stacks:
        crit = {k: v for k, v in (criteria or {}).items() if v is not None}
        skipped = len(faults.skipped_runs) + len(faults.bad_frames)
        raise ExportError(f"no {'readable ' if skipped else ''}hyperspectral stacks"
                          f"{' with truth' if require_truth else ''} match {crit or 'the catalog'}"
                          ": acquire some with `srash cohort --specimen cells`")
    return stacks, labels
