"""Plan stubs (no open_run): tune the Raman shift, acquire one frame, one SRASH field.

**One SRASH field** = one frame per Raman shift at the current stage position. The SRASH
detector's frame is ``<det>_image`` ``(channel, y, x)`` with channels ``("SRS", "SHG")``
(external, announced by StreamResource/StreamDatum), plus scalars such as
``<det>_frame_raman_shift`` and ``<det>_frame_x`` / ``_frame_y``. Each frame is one event in
the ``primary`` stream that also carries a :class:`~plans.markers.FieldMarker` reading
(``field_index``, ``field_row``, ``field_col``, ``field_x_um``, ``field_y_um``,
``shift_index``, ``shift_cm1``). The composite of field ``k`` with the default shifts is::

    ev0 = the event with field_index == k and shift_index == 0   (2850 cm^-1)
    ev1 = the event with field_index == k and shift_index == 1   (2930 cm^-1)
    composite = [image(ev0)[0], image(ev1)[0], image(ev0)[1]]    # SRS 2850, SRS 2930, SHG

(see :data:`COMPOSITE_CHANNELS`; full plans write this recipe to ``start["composite"]``).

**Suspension and faults.** A checkpoint precedes every frame, so a suspension (e.g. the
pump losing mode-lock, see :mod:`plans.suspenders`) rewinds to the start of the
interrupted frame: that frame is re-acquired after recovery and the frames already saved
are kept, giving exactly one event per (field, shift). A checkpoint per *frame* rather
than per field is deliberate: bluesky's rewind replays every message since the last
checkpoint, saves included, so a field-level checkpoint would duplicate the saved frames of
a field interrupted between its shifts (same ``seq_num`` twice). A frame whose trigger
fails (``FailedStatus``, e.g. the detector's mode-lock fault) is retried ``retries``
times after a checkpoint and ``retry_delay_s`` of sleep; the sleep is where a suspension
requested by the same fault takes effect, so with the suspenders installed the frame is
re-acquired once the laser recovers, and without them the fault ends the run after the
retries.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
from bluesky.protocols import Movable, Readable, Reading, Triggerable
from bluesky.utils import FailedStatus, MsgGenerator, separate_devices, short_uid

from .contract import (
    COMPOSITE_CHANNELS,
    DEFAULT_SHIFTS_CM1,
    DETECTOR_CHANNELS,
    SHG_CHANNEL,
    srs_channel,
)
from .errors import PlanError
from .markers import FieldMarker

__all__ = ["COMPOSITE_CHANNELS", "DEFAULT_SHIFTS_CM1", "DeviceFailure", "acquire_frame",
           "composite_recipe", "explain_failures", "failures_explained", "srash_field",
           "tune_raman_shift"]


class DeviceFailure(FailedStatus):
    """A device's status failed; the message is the device's own reason (e.g. the PMT's
    overlight trip), not bluesky's ``DeviceStatus(...)`` repr. A :class:`FailedStatus`, so
    code that catches those still does."""


def describe_failure(exc: FailedStatus) -> str:
    """The cause of a failed status as one line: ``<device>: <reason>``."""
    status = exc.args[0] if exc.args else None
    cause = exc.__cause__
    if cause is None and status is not None:
        try:
            cause = status.exception(timeout=0)
        except Exception:  # noqa: BLE001 - a status without an exception: keep the repr
            cause = None
    if cause is None:
        return str(exc)
    device = getattr(getattr(status, "device", None) or getattr(status, "obj", None), "name",
                     None)
    text = str(cause) or type(cause).__name__
    if isinstance(cause, OSError):  # "[Errno 28] ..." alone does not say what it is
        text = f"{type(cause).__name__}: {text}"
    if device and not text.startswith(device):
        text = f"{device}: {text}"
    return text


def explain_failures(plan: MsgGenerator) -> MsgGenerator:
    """Run ``plan``; a :class:`FailedStatus` leaving it is re-raised as
    :class:`DeviceFailure` carrying the device's reason. Placed inside ``run_decorator``, so
    the run's stop document gets that reason too."""
    try:
        return (yield from plan)
    except DeviceFailure:
        raise
    except FailedStatus as exc:
        # chained to the device's own exception (the status's), not bluesky's wrapper
        raise DeviceFailure(describe_failure(exc)) from (exc.__cause__ or exc)


#: ``@failures_explained()`` under ``run_decorator``: :func:`explain_failures` as a decorator
failures_explained = bpp.make_decorator(explain_failures)


#: the field marker used when a caller passes none (one object: a stream's descriptor
#: must always see the same objects)
_DEFAULT_MARKER = FieldMarker()


def tune_raman_shift(raman: Movable, shift_cm1: float, *, group: str | None = None
                     ) -> MsgGenerator[None]:
    """Tune the Raman pseudo-axis to ``shift_cm1`` (cm^-1) and wait until it is there.

    Parameters
    ----------
    raman : Movable
        The Raman-shift axis (cm^-1); on the SRASH microscope ``mic.raman``, which tunes
        the pump laser.
    shift_cm1 : float
        Target Raman shift, cm^-1.
    group : str, optional
        Status group (default: a fresh one).
    """
    yield from bps.abs_set(raman, float(shift_cm1), group=group or short_uid("tune"),
                           wait=True)


def composite_recipe(shifts_cm1: Sequence[float]) -> dict[str, Any]:
    """How to build the composite from a field's events, for start metadata.

    ``sources[i] = [shift_index, image_channel]``: composite channel ``i`` is
    ``<det>_image[image_channel]`` of the field's event with that ``shift_index``. One SRS
    channel per shift, then SHG from the first shift's frame.
    """
    shifts = [float(s) for s in shifts_cm1]
    names = [srs_channel(s) for s in shifts] + [SHG_CHANNEL]
    sources = [[i, 0] for i in range(len(shifts))] + [[0, 1]]
    return {"channels": names, "sources": sources, "shifts_cm1": shifts,
            "detector_channels": list(DETECTOR_CHANNELS),
            "marker_keys": ["field_index", "shift_index"]}


def acquire_frame(devices: Sequence[Readable], *, name: str = "primary", retries: int = 1,
                  retry_delay_s: float = 0.1) -> MsgGenerator[Mapping[str, Reading]]:
    """``trigger_and_read`` with a retry of a failed trigger.

    Triggers every ``Triggerable`` in ``devices`` (redundant children removed as in
    :func:`bluesky.plan_stubs.trigger_and_read`), waits, then bundles one event. If a
    trigger status fails (``FailedStatus``) the attempt is retried up to ``retries`` times,
    each after a checkpoint and ``retry_delay_s`` seconds of sleep (where a pending
    suspension takes effect); the last failure is re-raised.

    Returns
    -------
    dict
        The readings of the event, as ``trigger_and_read`` returns them.
    """
    devices = separate_devices(devices)
    for attempt in range(int(retries) + 1):
        grp = short_uid("trigger")
        try:
            waited = False
            for obj in devices:
                if isinstance(obj, Triggerable):
                    waited = True
                    yield from bps.trigger(obj, group=grp)
            if waited:
                yield from bps.wait(group=grp)
        except FailedStatus:
            if attempt >= int(retries):
                raise
            yield from bps.checkpoint()
            yield from bps.sleep(float(retry_delay_s))
            continue
        break
    yield from bps.create(name)
    ret: dict[str, Reading] = {}
    try:
        for obj in devices:
            reading = yield from bps.read(obj)
            if reading is not None:
                ret.update(reading)
    except BaseException:
        yield from bps.drop()
        raise
    yield from bps.save()
    return ret


def srash_field(detectors: Sequence[Readable], raman: Movable, *,
                shifts_cm1: Sequence[float] = DEFAULT_SHIFTS_CM1,
                field_index: int | None = None, marker: FieldMarker | None = None,
                extra_readables: Sequence[Readable] = (), retries: int = 1,
                retry_delay_s: float = 0.1) -> MsgGenerator[list[Mapping[str, Reading]]]:
    """Acquire one SRASH field at the current position: one frame per Raman shift.

    For each shift: checkpoint, tune ``raman`` (:func:`tune_raman_shift`), then trigger and
    read ``detectors`` + ``raman`` + ``extra_readables`` + the field marker into one
    ``primary`` event (see the module docstring for the layout and the composite recipe).
    A plan stub: call it inside an open run with the detectors staged.

    Parameters
    ----------
    detectors : list of Readable (and Triggerable)
        The image detector(s), e.g. ``[mic]``.
    raman : Movable
        Raman-shift axis (cm^-1).
    shifts_cm1 : sequence of float
        Raman shifts, cm^-1; default (2850, 2930): SRS lipid and protein channels (the SHG
        channel comes with every frame).
    field_index : int, optional
        Recorded as ``field_index`` (None: keep the marker's, 0 for a fresh marker).
    marker : FieldMarker, optional
        The marker read with each frame; pass the same one for a whole run (default: a
        module-level marker). Grid plans set its row/col/position before calling.
    extra_readables : list of Readable
        Also read with every frame (e.g. the stage axes).
    retries, retry_delay_s : int, float
        Retries of a frame whose trigger fails, and the sleep (s) before each
        (:func:`acquire_frame`).

    Returns
    -------
    list of dict
        The readings of each frame, in shift order.
    """
    shifts = [float(s) for s in shifts_cm1]
    if not shifts:
        raise PlanError("shifts_cm1 is empty: give at least one Raman shift (cm^-1)")
    marker = _DEFAULT_MARKER if marker is None else marker
    if field_index is not None:
        marker.field_index = int(field_index)
    readables: list[Any] = [*detectors, raman, *extra_readables, marker]
    out = []
    for i, shift in enumerate(shifts):
        marker.set_shift(i, shift)
        yield from bps.checkpoint()
        yield from tune_raman_shift(raman, shift)
        out.append((yield from acquire_frame(readables, retries=retries,
                                             retry_delay_s=retry_delay_s)))
    return out
