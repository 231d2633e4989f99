"""Documents -> SRASH fields: the one assembler for live and stored runs.

:class:`FieldAssembler` consumes the documents of ONE scan (start, descriptors, events,
stream resources and datums, stop) and hands each complete field to ``on_field`` as a
:class:`~ml.io.runs.Tile` with its :class:`FieldInfo`, or a skipped field to ``on_skip``.
It is fed live by the RunEngine (through an ``event_model.RunRouter``, one assembler per
run), by a 0MQ consumer, or with a stored run's own documents (``run.documents()``), so
a stored scan is reassembled exactly as it was live.

Grouping (the same rule as :func:`ml.io.runs.run_tiles`): by the plan's per-event field
index when the stream has one (a data key ending in ``field_index`` or ``tile_index``),
else by consecutive frames at one stage position (within half a pixel). A field is
complete once it holds as many frames as the plan's ``start["composite"]["shifts_cm1"]``
(without a recipe: when the next field starts, or at the stop). Its 2850 / 2930 cm^-1
pair is picked by :func:`ml.io.runs.pick_frames`; a field without both is skipped
(``why`` = :data:`ml.io.runs.NO_PAIR`).

Frames are taken from filled events, read through the catalog by a ``frame_reader`` (a
stored run replayed from ``run.documents()``: works for a remote catalog whose files this
machine cannot see), or read from the detector's files named by the StreamResource (URI +
template) and StreamDatum (index). Events and datums may come in
either order (live: datum first; ``run.documents()``: all events, then the datums): a
field waits until every frame's source is known. A frame file that cannot be read is a
:class:`~ml.io.frames.FrameError`: reported through ``faults`` (default: one warning line)
and its field skipped; ``faults.strict`` raises it instead.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
from event_model import DocumentRouter
from numpy.typing import NDArray

from ml.io.frames import FrameError, NotLocalError, ReadFaults, read_frame_file, uri_path
from ml.io.runs import NO_PAIR, ExportError, Tile, pick_frames, tile_data

__all__ = ["FieldAssembler", "FieldInfo", "expected_frames"]

log = logging.getLogger("srash.live")


@dataclasses.dataclass(frozen=True)
class FieldInfo:
    """Where a field came from: the plan's ``field_index`` (None without a marker), the
    scan's ``seq_nums`` of its 2850 / 2930 frames, and ``last_time`` (s, epoch) of its last
    frame event (for latency)."""

    field_index: int | None
    seq_nums: tuple[int, int]
    last_time: float


@dataclasses.dataclass
class _Stream:
    image_key: str
    base: str
    marker: str | None
    pixel_um: float | None
    shape: tuple[int, ...] | None = None
    dtype: str | None = None


@dataclasses.dataclass
class _Frame:
    pos: int
    seq_num: int
    descriptor: str
    field: Any
    shift: float
    x: float
    y: float
    pump: float
    stokes: float
    source: Any  # ndarray (filled event), Path (frame file), FrameError, or None (not yet)
    time: float


def expected_frames(start: Mapping[str, Any]) -> int | None:
    """Frames per field the plan announces (``len(start["composite"]["shifts_cm1"])``), or
    None when the start document has no composite recipe."""
    recipe = start.get("composite") or {}
    shifts = recipe.get("shifts_cm1") if isinstance(recipe, Mapping) else None
    return len(shifts) if shifts else None


class FieldAssembler(DocumentRouter):
    """Assemble the fields of one scan from its documents (module doc).

    Parameters
    ----------
    on_field : callable
        ``on_field(tile, info)`` for each complete field, in completion order; ``tile.index``
        counts complete fields from 0.
    on_skip : callable, optional
        ``on_skip(record)`` for each field that cannot be used: ``{"events", "x_um",
        "y_um", "why"}`` (+ ``"paths"`` for unreadable files).
    stream_name : str
        The scan's image stream (``"primary"``).
    faults : ReadFaults, optional
        Where unreadable frame files are reported (``strict`` raises).
    frame_reader : callable, optional
        ``frame_reader(i, field)`` -> the ``(C, Y, X)`` frame of the stream's event ``i``
        (``seq_num - 1``), raising :class:`~ml.io.frames.FrameError` (e.g. a
        :class:`~ml.io.frames.FrameReader` on the stored run's image column). When given,
        unfilled events do not wait for StreamDatums.
    """

    def __init__(self, on_field: Callable[[Tile, FieldInfo], Any], *,
                 on_skip: Callable[[dict[str, Any]], Any] | None = None,
                 stream_name: str = "primary", faults: ReadFaults | None = None,
                 frame_reader: Callable[[int, Any], NDArray] | None = None) -> None:
        super().__init__()
        self.frame_reader = frame_reader
        self.on_field = on_field
        self.on_skip = on_skip
        self.stream_name = stream_name
        self.faults = faults
        self.start_doc: dict[str, Any] = {}
        self.uid: str | None = None
        self.n_fields = 0
        self._expected: int | None = None
        self._streams: dict[str, _Stream] = {}
        self._resources: dict[str, dict] = {}
        self._sources: dict[tuple[str, int], Path] = {}
        self._waiting: dict[tuple[str, int], _Frame] = {}
        self._groups: OrderedDict[Any, list[_Frame]] = OrderedDict()
        self._closed: OrderedDict[Any, list[_Frame]] = OrderedDict()
        self._done: set = set()
        self._n_events = 0

    # ------------------------------------------------------------------ documents
    def start(self, doc):
        self.start_doc = dict(doc)
        self.uid = doc.get("uid")
        self._expected = expected_frames(doc)
        return doc

    def descriptor(self, doc):
        if doc.get("name") != self.stream_name:
            return doc
        keys = doc.get("data_keys", {})
        image = next((k for k, v in keys.items()
                      if v.get("external") and len(v.get("shape") or ()) == 3), None)
        if image is None:
            raise ExportError(f"stream {self.stream_name!r} has no external (channel, y, x) "
                              f"image among {sorted(keys)}")
        base = image[: -len("_image")] if image.endswith("_image") else image
        marker = next((k for k in keys if k.endswith(("field_index", "tile_index"))), None)
        pixel = None
        for obj in (doc.get("configuration") or {}).values():
            data = obj.get("data", {})
            for key in (f"{base}_scanner_pixel_size", "scanner_pixel_size"):
                if key in data and pixel is None:
                    pixel = float(data[key])
        shape = keys[image].get("shape")
        self._streams[doc["uid"]] = _Stream(image, base, marker, pixel,
                                             tuple(shape) if shape else None,
                                             keys[image].get("dtype_numpy"))
        return doc

    def stream_resource(self, doc):
        self._resources[doc["uid"]] = doc
        return doc

    def stream_datum(self, doc):
        if doc.get("descriptor") not in self._streams or self.frame_reader is not None:
            return doc  # with a frame_reader, frames come through it, not from file paths
        res = self._resources.get(doc["stream_resource"])
        if res is None:
            raise ExportError(f"stream datum {doc['uid']} names unknown stream resource "
                              f"{doc['stream_resource']}")
        from bluesky_tiled_plugins.utils import compile_template

        params = res.get("parameters") or {}
        template = compile_template(params["template"], params.get("filename", "")) \
            if params.get("template") else ""
        s0, i0 = doc["seq_nums"]["start"], doc["indices"]["start"]
        for k in range(doc["seq_nums"]["stop"] - s0):
            tail = template.format(i0 + k) if template else ""
            uri = res["uri"]
            if uri.endswith("/") and tail.startswith("/"):
                tail = tail[1:]
            key = (doc["descriptor"], s0 + k)
            path = _file_path(uri + tail)
            frame = self._waiting.pop(key, None)
            if frame is not None:
                frame.source = path
            else:
                self._sources[key] = path
        self._flush_ready()
        return doc

    def event(self, doc):
        info = self._streams.get(doc["descriptor"])
        if info is None:
            return doc
        data, base = doc["data"], info.base
        value = data.get(info.image_key)
        key = (doc["descriptor"], int(doc["seq_num"]))
        if isinstance(value, (np.ndarray, FrameError)):
            source: Any = value
        elif self.frame_reader is not None:
            source = _THROUGH_READER
        else:
            source = self._sources.pop(key, None)
        nan = float("nan")
        fr = _Frame(pos=self._n_events, seq_num=int(doc["seq_num"]),
                    descriptor=doc["descriptor"],
                    field=data.get(info.marker) if info.marker else None,
                    shift=float(data[f"{base}_frame_raman_shift"]),
                    x=float(data[f"{base}_frame_x"]), y=float(data[f"{base}_frame_y"]),
                    pump=float(data.get(f"{base}_frame_pump_mw", nan)),
                    stokes=float(data.get(f"{base}_frame_stokes_mw", nan)),
                    source=source, time=float(doc.get("time", time.time())))
        if source is None:
            self._waiting[key] = fr
        self._n_events += 1
        if info.marker is not None:
            self._add_marked(fr)
        else:
            self._add_contiguous(fr, info)
        self._flush_ready()
        return doc

    def event_page(self, doc):
        return NotImplemented  # DocumentRouter unpacks it into events

    def stop(self, doc):
        for key in list(self._groups):
            self._close(key)
        for key, group in list(self._closed.items()):
            missing = [f for f in group if f.source is None]
            if missing:
                del self._closed[key]
                self._done.add(key)
                self._skip(group, f"no frame for events {[f.seq_num for f in missing]} (no "
                                  "StreamDatum names them, and the events are not filled)")
        self._flush_ready()
        return doc

    # ------------------------------------------------------------------ grouping
    def _add_marked(self, fr: _Frame) -> None:
        key = fr.field
        if key in self._done or key in self._closed:
            log.warning(
                "scan %s: frame %d for field %r after the field was complete; ignored",
                self.uid, fr.seq_num, key)
            return
        if self._expected is None and self._groups and key not in self._groups:
            for k in list(self._groups):  # no recipe: a new field closes the earlier ones
                self._close(k)
        group = self._groups.setdefault(key, [])
        group.append(fr)
        if self._expected is not None and len(group) >= self._expected:
            self._close(key)

    def _add_contiguous(self, fr: _Frame, info: _Stream) -> None:
        if self._groups:
            key = next(reversed(self._groups))
            first = self._groups[key][0]
            pixel = info.pixel_um if info.pixel_um is not None else 0.0
            if abs(fr.x - first.x) <= pixel / 2 and abs(fr.y - first.y) <= pixel / 2:
                self._groups[key].append(fr)
                return
            self._close(key)
        self._groups[("pos", fr.pos)] = [fr]

    def _close(self, key: Any) -> None:
        self._closed[key] = self._groups.pop(key)

    def _flush_ready(self) -> None:
        """Process closed fields, in order, as long as the next one has all its frames."""
        while self._closed:
            key, group = next(iter(self._closed.items()))
            if any(f.source is None for f in group):
                return
            del self._closed[key]
            self._done.add(key)
            self._process(group)

    # ------------------------------------------------------------------ fields
    def _skip(self, group: list[_Frame], why: str, **extra: Any) -> None:
        if self.on_skip is not None:
            fi = group[0].field
            self.on_skip({"events": [f.pos for f in group], "x_um": group[0].x,
                          "y_um": group[0].y, "why": why,
                          "field_index": int(fi) if isinstance(fi, (int, np.integer)) else None,
                          **extra})

    def _process(self, g: list[_Frame]) -> None:
        pair = pick_frames([f.shift for f in g])
        if pair is None:
            self._skip(g, NO_PAIR)
            return
        fl, fp = g[pair[0]], g[pair[1]]
        info = self._streams[fl.descriptor]
        frames, errors = [], []
        for fr in (fl, fp):  # a bad frame file skips its field, never the scan
            try:
                frames.append(self._frame(fr))
            except FrameError as err:
                errors.append(err)
        if errors:
            for err in errors:
                if err.reported:
                    continue
                if self.faults is not None:
                    self.faults.frame(err)  # strict: raises
                else:
                    log.warning("%s; field skipped", err)
            self._skip(g, errors[0].why, paths=[e.path for e in errors])
            return
        if info.pixel_um is None:
            info.pixel_um = self._pixel_from(fl)
        tile = Tile(index=self.n_fields, x_um=fl.x, y_um=fl.y, pixel_um=float(info.pixel_um),
                    data=tile_data(*frames), events=(fl.pos, fp.pos),
                    shifts_cm1=(fl.shift, fp.shift), pump_mw=(fl.pump, fp.pump),
                    stokes_mw=(fl.stokes, fp.stokes))
        self.n_fields += 1
        self.on_field(tile, FieldInfo(int(fl.field) if fl.field is not None else None,
                                      (fl.seq_num, fp.seq_num), max(f.time for f in g)))

    def _pixel_from(self, fr: _Frame) -> float:
        if not isinstance(fr.source, Path):
            raise ExportError("the stream's configuration has no scanner pixel size")
        from ml.io.ometiff import read_ome_tiff

        return float(read_ome_tiff(fr.source).pixel_size_um)

    def _frame(self, fr: _Frame) -> NDArray[np.float32]:
        """The frame's (C, Y, X) data; :class:`~ml.io.frames.FrameError` when its file
        cannot be read."""
        if isinstance(fr.source, np.ndarray):
            return fr.source
        if isinstance(fr.source, FrameError):
            raise fr.source
        label = fr.field if fr.field is not None else f"at event {fr.seq_num}"
        if fr.source is _THROUGH_READER:
            assert self.frame_reader is not None
            return self.frame_reader(fr.seq_num - 1, label)
        info = self._streams[fr.descriptor]
        return read_frame_file(fr.source, uid=self.uid, shape=info.shape, dtype=info.dtype,
                               field=label, event=fr.pos)


#: the source of a frame read through the assembler's ``frame_reader``
_THROUGH_READER = object()


def _file_path(uri: str) -> Path:
    try:
        return uri_path(uri)
    except NotLocalError:
        raise ExportError(f"frame URI {uri!r} is not a local file; classify from the catalog "
                          "(`srash classify`) instead") from None
