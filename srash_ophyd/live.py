"""LBNet-Dx on the document stream: classify each SRASH field while the mosaic is acquired.

:class:`LBNetDxCallback` consumes a scan's documents (live from the RunEngine, from 0MQ, or
replayed from the catalog by :func:`classify_run`) and writes its own **analysis run**
through ``publish(name, doc)`` (e.g. :func:`make_analysis_writer` on the catalog):

* fields are grouped as :func:`srash_ophyd.export.run_tiles` does (the plan's
  ``field_index``, else consecutive frames at one stage position); a field is classified
  once it holds as many frames as the plan's ``start["composite"]["shifts_cm1"]`` (without a
  recipe: when the next field starts, or at the scan's stop);
* frames are read from the detector's files (StreamResource URI + template, StreamDatum
  index; :func:`srash_ophyd.ometiff.read_ome_tiff`) or taken from filled events; the tile
  and composite are built with :func:`srash_ophyd.dxdata.tile_composite`, so the composite
  is bit-identical to :func:`srash_ophyd.dxdata.run_fields` on the stored run.

Analysis run layout (``compose_run``)::

    start   analysis="lbnet-dx", plan_name="lbnet-dx", scan_uid, sample_id, patient_id,
            cohort, split (copied from the scan, for queries), scan_phenotype and
            scan_diagnosis (the scan's known labels, if any), task,
            class_names, weights {path, sha256, model}, thresholds {patch, vote},
            patching {background_level, smooth_px, size, stride}, target_pixel_um,
            calibration, mode ("live" | "offline")
    fields  one event per classified field: field_index (the plan's), tile_index (order
            among complete fields = Tile.index), x_um, y_um (stage um), pixel_um,
            n_patches, n_windows, probabilities (W, K), weights (W,), origins (W, 2) px --
            W = n_windows, rows >= n_patches padded with NaN / -1 --, field_probabilities
            (K,), field_label, vote_probabilities (K,), vote_label, vote_n_patches (running
            sample vote), scan_seq_nums (2,) (the 2850 and 2930 frames), compute_s (s)
    vote    one event at the scan's stop: probabilities (K,) (NaN when no valid patch),
            label (class name or "unidentifiable"), label_index (-1 = none), n_patches,
            n_fields, n_skipped, threshold, scan_exit_status
    stop    exit_status "success", or "fail" with the reason

Field labels are class names, "unidentifiable" (below the vote threshold) or "no-patches".

**Failures** never reach the RunEngine: an exception is logged on ``srash.live``, kept in
``.error``/``.exception``, the analysis run (if started) is stopped with ``exit_status
"fail"``, and the rest of that scan's documents are ignored. :func:`classify_run` redoes the
vote from the catalog with the same class. A frame file that cannot be read (missing,
truncated, not a TIFF, another shape) is not a failure: its field is skipped with a warning
naming the file (:mod:`srash_ophyd.readfaults`) and counted in the summary.

**Not blocking the RunEngine**: :func:`attach_live_dx` subscribes the callback behind
bluesky's :class:`~bluesky.callbacks.buffer.BufferingWrapper` (a queue and a thread).

**0MQ** (:mod:`srash_ophyd.transport`, re-exported here): a session publishes with
:func:`zmq_publisher` (msgpack, numeric arrays only, never pickle) to a bluesky 0MQ proxy,
and ``srash classify-live`` (:func:`serve_live`) subscribes to it, dropping bad messages.
bluesky's Publisher and the consumer both *connect*, so a proxy must run::

    bluesky-0MQ-proxy --in-address tcp://127.0.0.1:5577 --out-address tcp://127.0.0.1:5578
    srash classify-live --address localhost:5578 --data-dir srash-data   # consumer
    session.RE.subscribe(zmq_publisher("localhost:5577"))               # producer

The consumer reads the frame files named in the documents, so it must see the producer's
``frames`` folder (same machine or a shared file system).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np
from event_model import DocumentRouter, compose_run
from numpy.typing import NDArray

from ml.dx.predict import FieldDx, LBNetDx, SampleVote
from ml.dx.vote import Vote
from ml.io.composite import Calibration
from plans.contract import LBNET_ANALYSIS

from .catalog import CatalogError, uri_path
from .export import NO_PAIR, ExportError, Tile, pick_frames, tile_data
from .readfaults import FrameError, FrameReader, ReadFaults
from .runstate import IncompleteRunError, require_readable
from .transport import (  # noqa: F401 (re-exports)
    DEFAULT_PUB_ADDRESS,
    DEFAULT_SUB_ADDRESS,
    msgpack_dumps,
    msgpack_loads,
    serve_live,
    zmq_publisher,
)

__all__ = ["ANALYSIS", "DEFAULT_PUB_ADDRESS", "DEFAULT_SUB_ADDRESS", "FieldResult",
           "LBNetDxCallback", "LiveDx", "attach_live_dx", "classify_run", "is_srash_scan",
           "make_analysis_writer", "msgpack_dumps", "msgpack_loads", "run_documents",
           "serve_live", "zmq_publisher"]

log = logging.getLogger("srash.live")

#: ``start["analysis"]`` of the runs written here.
ANALYSIS = LBNET_ANALYSIS
NO_PATCHES = "no-patches"

Publish = Callable[[str, dict], Any]


def is_srash_scan(start: Mapping[str, Any]) -> bool:
    """True for runs the live classifier should follow: SRASH plans with a composite recipe
    (``plans.mosaic``, ``plans.hyperspectral_stack``), not analysis runs."""
    return "composite" in start and start.get("analysis") is None


def make_analysis_writer(client) -> Any:
    """A TiledWriter for analysis runs: ``max_array_size=0`` stores every event array as
    zarr (tiled's SQLite tables cannot hold the list columns that small arrays become)."""
    from .catalog import make_writer

    return make_writer(client, max_array_size=0)


def _sha256(path: str | Path | None) -> str | None:
    if not path or not Path(path).is_file():
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _file_path(uri: str) -> Path:
    try:
        return uri_path(uri)
    except CatalogError:
        raise ExportError(f"frame URI {uri!r} is not a local file; classify from the catalog "
                          "(`srash classify`) instead") from None


@dataclasses.dataclass
class FieldResult:
    """One classified field: geometry, the classifier's :class:`~ml.dx.predict.FieldDx`, the running
    sample vote after it, timings (``compute_s``: tile + composite + classifier;
    ``latency_s``: from the field's last frame event to its result, s)."""

    field_index: int
    tile_index: int
    x_um: float
    y_um: float
    pixel_um: float
    dx: FieldDx
    running_vote: Vote | None
    scan_seq_nums: tuple[int, int]
    compute_s: float
    latency_s: float
    composite: NDArray[np.float32] | None = None

    @property
    def n_patches(self) -> int:
        return int(len(self.dx.weights))

    @property
    def probabilities(self) -> NDArray[np.float64]:
        return self.dx.probabilities

    @property
    def field_probabilities(self) -> list[float] | None:
        return list(self.dx.vote.probabilities) if self.dx.vote is not None else None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary (per-field vote probabilities, not per patch)."""
        v = self.dx.vote
        return {"field_index": self.field_index, "tile_index": self.tile_index,
                "x_um": self.x_um, "y_um": self.y_um, "n_patches": self.n_patches,
                "n_windows": int(self.dx.n_total), "probabilities": self.field_probabilities,
                "label": v.label_name if v is not None else NO_PATCHES,
                "compute_s": round(self.compute_s, 4)}


@dataclasses.dataclass
class _Stream:
    image_key: str
    base: str
    marker: str | None
    pixel_um: float | None
    keys: frozenset


@dataclasses.dataclass
class _Frame:
    pos: int
    seq_num: int
    field: Any
    shift: float
    x: float
    y: float
    pump: float
    stokes: float
    source: Any  # ndarray (filled event) or Path (frame file)
    time: float


class LBNetDxCallback(DocumentRouter):
    """Classify the fields of each scan in the document stream (module doc).

    Parameters
    ----------
    dx : LBNetDx
        The classifier.
    publish : callable, optional
        ``publish(name, doc)`` for the analysis run's documents (None: keep results only).
    target_pixel_um : float, optional
        Resample fields to this pixel size (um); default ``dx.meta["pixel_um"]`` or 0.3.
    logger : logging.Logger, optional
        Default ``logging.getLogger("srash.live")``.
    stream_name : str
        The scan's image stream (``"primary"``).
    select : callable, optional
        ``select(start) -> bool``: which runs to classify (default :func:`is_srash_scan`;
        None = every run).
    mode : str
        Recorded as ``start["mode"]`` of the analysis run (``"live"``/``"offline"``).
    keep_composites : bool
        Keep each field's composite on :attr:`FieldResult.composite` (memory!).
    on_done : callable, optional
        ``on_done(callback)`` after each followed scan's analysis ends (success or fail).

    Results of the latest scan: :attr:`fields` (list of :class:`FieldResult`), :attr:`vote`
    (running / final :class:`~ml.dx.vote.Vote` or None), :attr:`analysis_uid`, :attr:`scan_uid`,
    :attr:`skipped` (incomplete fields), :attr:`status` (``idle``, ``ignored``, ``running``,
    ``success``, ``fail``), :attr:`error`; :attr:`finished` is a ``threading.Event`` set when
    the scan's analysis has ended.
    """

    def __init__(self, dx: LBNetDx, publish: Publish | None = None, *,
                 target_pixel_um: float | None = None, logger: logging.Logger | None = None,
                 stream_name: str = "primary",
                 select: Callable[[Mapping[str, Any]], bool] | None = is_srash_scan,
                 mode: str = "live", keep_composites: bool = False,
                 on_done: Callable[["LBNetDxCallback"], Any] | None = None) -> None:
        super().__init__()
        self.dx = dx
        self.publish = publish
        self.target_pixel_um = float(target_pixel_um if target_pixel_um is not None
                                     else dx.meta.get("pixel_um", 0.3))
        self.log = logger or log
        self.stream_name = stream_name
        self.select = select
        self.mode = mode
        self.keep_composites = keep_composites
        self.on_done = on_done
        self.runs_seen = 0
        self.finished = threading.Event()
        wpath = dx.meta.get("path")
        self._weights = {"path": wpath, "sha256": _sha256(wpath),
                         "model": dx.meta.get("model")}
        self._reset(None)
        self.status = "idle"

    # ------------------------------------------------------------------ state
    def _reset(self, start: Mapping[str, Any] | None) -> None:
        self.scan_start: dict[str, Any] | None = dict(start) if start is not None else None
        self.scan_uid: str | None = start.get("uid") if start is not None else None
        self.analysis_uid: str | None = None
        self.calibration: Calibration | None = None
        self.fields: list[FieldResult] = []
        self.skipped: list[dict[str, Any]] = []
        self.vote: Vote | None = None
        self.error: str | None = None
        self.exception: BaseException | None = None
        self.scan_exit_status: str | None = None
        self._ignore = False
        self._bundle = None
        self._started = False
        self._fields_desc = None
        self._n_windows: int | None = None
        self._sv = SampleVote(self.dx.class_names, threshold=self.dx.vote_threshold)
        self._streams: dict[str, _Stream] = {}
        self._resources: dict[str, dict] = {}
        self._sources: dict[tuple[str, int], Path] = {}
        self._groups: OrderedDict[Any, list[_Frame]] = OrderedDict()
        self._done_groups: set = set()
        self._n_events = 0
        self._expected: int | None = None

    # ------------------------------------------------------------------ routing
    def __call__(self, name: str, doc: dict, validate: bool = False):
        """Route one document; exceptions are recorded, never raised (module doc)."""
        if name == "start":
            self._abandon_running()
        elif self._ignore or self.status != "running":
            return name, doc
        try:
            return super().__call__(name, doc, validate)
        except Exception as exc:  # the failure policy: record, never propagate
            self._fail(exc)
        return name, doc

    def _abandon_running(self) -> None:
        if self.status == "running":
            self._fail(RuntimeError(f"scan {self.scan_uid} sent no stop document before the "
                                    "next start"))

    def _publish(self, name: str, doc: dict) -> None:
        if self.publish is not None:
            self.publish(name, doc)

    def _fail(self, exc: BaseException) -> None:
        # a bad input (killed run, unreadable file with --strict) needs no traceback
        trace = not isinstance(exc, (FrameError, IncompleteRunError))
        self.log.error("LBNet-Dx on scan %s failed: %s: %s", self.scan_uid,
                       type(exc).__name__, exc, exc_info=exc if trace else None)
        self.exception = exc
        self.error = f"{type(exc).__name__}: {exc}"
        self._ignore = True
        if self._started:
            self._started = False
            try:
                self._publish("stop", self._bundle.compose_stop(
                    exit_status="fail", reason=self.error[:2000]))
            except Exception as exc2:
                self.log.error("could not stop analysis run %s: %s", self.analysis_uid, exc2)
        self.status = "fail"
        self._finish()

    def _finish(self) -> None:
        self.finished.set()
        if self.on_done is not None:
            try:
                self.on_done(self)
            except Exception:
                self.log.exception("on_done hook failed")

    # ------------------------------------------------------------------ documents
    def start(self, doc):
        self.runs_seen += 1
        self._reset(doc)
        if self.select is not None and not self.select(doc):
            self._ignore = True
            self.status = "ignored"
            return doc
        self.finished.clear()
        self.status = "running"
        self.calibration = Calibration.from_dict(doc.get("calibration"))
        recipe = doc.get("composite") or {}
        shifts = recipe.get("shifts_cm1") if isinstance(recipe, Mapping) else None
        self._expected = len(shifts) if shifts else None
        self._bundle = compose_run(metadata=self._analysis_md(doc))
        start = self._bundle.start_doc
        self._publish("start", start)
        self._started = True
        self.analysis_uid = start["uid"] if self.publish is not None else None
        return doc

    def _analysis_md(self, scan: Mapping[str, Any]) -> dict[str, Any]:
        from ml.dx.patches import PATCH_SIZE, PATCH_STRIDE

        dx = self.dx
        md = {k: scan.get(k) for k in ("sample_id", "patient_id", "specimen", "cohort",
                                       "split")}
        # the scan's known labels under scan_* names: a plain "diagnosis" here would make
        # `srash catalog search --diagnosis NOA` list analysis runs as if they were NOA scans
        md.update({"scan_phenotype": scan.get("phenotype"),
                   "scan_diagnosis": scan.get("diagnosis")})
        md = {k: v for k, v in md.items() if v is not None}
        return {"analysis": ANALYSIS, "plan_name": ANALYSIS, "scan_uid": scan["uid"], **md,
                "task": dx.task.name, "class_names": list(dx.class_names),
                "weights": self._weights,
                "thresholds": {"patch": dx.patch_threshold, "vote": dx.vote_threshold},
                "patching": {"background_level": dx.background_level,
                             "smooth_px": dx.smooth_px, "size": PATCH_SIZE,
                             "stride": PATCH_STRIDE},
                "target_pixel_um": self.target_pixel_um,
                "calibration": self.calibration.to_dict(), "mode": self.mode}

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
        self._streams[doc["uid"]] = _Stream(image, base, marker, pixel, frozenset(keys))
        return doc

    def stream_resource(self, doc):
        self._resources[doc["uid"]] = doc
        return doc

    def stream_datum(self, doc):
        if doc.get("descriptor") not in self._streams:
            return doc
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
            self._sources[(doc["descriptor"], s0 + k)] = _file_path(uri + tail)
        return doc

    def event(self, doc):
        info = self._streams.get(doc["descriptor"])
        if info is None:
            return doc
        data, base = doc["data"], info.base
        value = data.get(info.image_key)
        if isinstance(value, (np.ndarray, FrameError)):  # filled, or unreadable (offline)
            source: Any = value
        else:
            source = self._sources.pop((doc["descriptor"], doc["seq_num"]), None)
            if source is None:
                raise ExportError(f"event {doc['seq_num']}: no frame for {info.image_key!r} "
                                  "(no StreamDatum seen for it, and the event is not filled)")
        nan = float("nan")
        fr = _Frame(pos=self._n_events, seq_num=int(doc["seq_num"]),
                    field=data.get(info.marker) if info.marker else None,
                    shift=float(data[f"{base}_frame_raman_shift"]),
                    x=float(data[f"{base}_frame_x"]), y=float(data[f"{base}_frame_y"]),
                    pump=float(data.get(f"{base}_frame_pump_mw", nan)),
                    stokes=float(data.get(f"{base}_frame_stokes_mw", nan)),
                    source=source, time=float(doc.get("time", time.time())))
        self._n_events += 1
        if info.marker is not None:
            self._add_marked(fr, info)
        else:
            self._add_contiguous(fr, info)
        return doc

    def event_page(self, doc):
        return NotImplemented  # DocumentRouter unpacks it into events

    def stop(self, doc):
        self.scan_exit_status = doc.get("exit_status")
        for key in list(self._groups):
            self._process(key)
        self.vote = self._sv.vote()
        self._publish_vote()
        reason = "" if self.scan_exit_status == "success" else (
            f"scan ended with exit_status {self.scan_exit_status!r}; vote over the "
            f"{len(self.fields)} complete fields")
        self._started = False
        self._publish("stop", self._bundle.compose_stop(exit_status="success", reason=reason))
        self.status = "success"
        self._finish()
        return doc

    # ------------------------------------------------------------------ grouping
    def _add_marked(self, fr: _Frame, info: _Stream) -> None:
        key = fr.field
        if key in self._done_groups:
            self.log.warning("scan %s: frame %d for field %r after it was classified; "
                             "ignored (the offline result may differ)", self.scan_uid,
                             fr.seq_num, key)
            return
        if self._expected is None and self._groups and key not in self._groups:
            for k in list(self._groups):  # no recipe: a new field closes the earlier ones
                self._process(k)
        group = self._groups.setdefault(key, [])
        group.append(fr)
        if self._expected is not None and len(group) >= self._expected:
            self._process(key)

    def _add_contiguous(self, fr: _Frame, info: _Stream) -> None:
        pixel = info.pixel_um if info.pixel_um is not None else self._pixel_from(fr, info)
        if self._groups:
            key = next(reversed(self._groups))
            first = self._groups[key][0]
            if abs(fr.x - first.x) < pixel / 2 and abs(fr.y - first.y) < pixel / 2:
                self._groups[key].append(fr)
                return
            self._process(key)
        self._groups[("pos", fr.pos)] = [fr]

    def _pixel_from(self, fr: _Frame, info: _Stream) -> float:
        if isinstance(fr.source, np.ndarray):
            raise ExportError("the stream's configuration has no scanner pixel size")
        from .ometiff import read_ome_tiff

        info.pixel_um = read_ome_tiff(fr.source).pixel_size_um
        return info.pixel_um

    # ------------------------------------------------------------------ classification
    def _process(self, key: Any) -> None:
        g = self._groups.pop(key)
        self._done_groups.add(key)
        pair = pick_frames([f.shift for f in g])
        if pair is None:
            self.skipped.append({"events": [f.pos for f in g], "x_um": g[0].x, "y_um": g[0].y,
                                 "why": NO_PAIR})
            return
        fl, fp = g[pair[0]], g[pair[1]]
        t0 = time.perf_counter()
        info = next(iter(self._streams.values()))
        frames, errors = [], []
        for fr in (fl, fp):  # a bad frame file skips its field, never the scan
            try:
                frames.append(self._frame(fr))
            except FrameError as err:
                errors.append(err)
        if errors:
            for err in errors:
                if not err.reported:
                    self.log.warning("%s; field skipped", err)
            self.skipped.append({"events": [f.pos for f in g], "x_um": g[0].x,
                                 "y_um": g[0].y, "why": errors[0].why,
                                 "paths": [e.path for e in errors]})
            return
        pixel = info.pixel_um if info.pixel_um is not None else self._pixel_from(fl, info)
        data = tile_data(*frames)
        tile = Tile(index=len(self.fields), x_um=fl.x, y_um=fl.y, pixel_um=float(pixel),
                    data=data, events=(fl.pos, fp.pos), shifts_cm1=(fl.shift, fp.shift),
                    pump_mw=(fl.pump, fp.pump), stokes_mw=(fl.stokes, fp.stokes))
        from .dxdata import tile_composite

        comp = tile_composite(tile, self.calibration, target_pixel_um=self.target_pixel_um)
        fdx = self.dx.classify_field(comp)
        running = self._sv.add(fdx)
        self.vote = running
        done = time.time()
        res = FieldResult(
            field_index=int(fl.field) if fl.field is not None else tile.index,
            tile_index=tile.index, x_um=tile.x_um, y_um=tile.y_um,
            pixel_um=self.target_pixel_um, dx=fdx, running_vote=running,
            scan_seq_nums=(fl.seq_num, fp.seq_num), compute_s=time.perf_counter() - t0,
            latency_s=done - max(f.time for f in g),
            composite=comp if self.keep_composites else None)
        self.fields.append(res)
        self._publish_field(res)

    def _frame(self, fr: _Frame) -> NDArray[np.float32]:
        """The frame's (C, Y, X) data; :class:`~srash_ophyd.readfaults.FrameError` when its
        file cannot be read."""
        if isinstance(fr.source, np.ndarray):
            return fr.source
        if isinstance(fr.source, FrameError):
            raise fr.source
        from .ometiff import OMETiffError, read_ome_tiff
        from .readfaults import diagnose_frame

        try:
            return read_ome_tiff(fr.source).data
        except (OMETiffError, OSError) as exc:
            why = diagnose_frame(str(fr.source)) or str(exc)
            raise FrameError(self.scan_uid, fr.field if fr.field is not None else
                             f"at event {fr.seq_num}", str(fr.source), why,
                             event=fr.pos) from None

    # ------------------------------------------------------------------ analysis documents
    def _publish_field(self, r: FieldResult) -> None:
        k = len(self.dx.class_names)
        w = max(int(r.dx.n_total), 1)
        if self._fields_desc is None:
            self._n_windows = w
            self._fields_desc = self._bundle.compose_descriptor(
                name="fields", data_keys=_fields_keys(w, k))
            self._publish("descriptor", self._fields_desc.descriptor_doc)
        elif w != self._n_windows:
            raise ExportError(f"field {r.field_index} has {w} patch windows, earlier fields "
                              f"{self._n_windows}: the frame size changed inside the scan")
        n = r.n_patches
        p = np.full((w, k), np.nan)
        p[:n] = r.dx.probabilities
        wt = np.full(w, np.nan)
        wt[:n] = r.dx.weights
        org = np.full((w, 2), -1, np.int64)
        org[:n] = r.dx.origins
        fv, rv = r.dx.vote, r.running_vote
        data = {"field_index": r.field_index, "tile_index": r.tile_index, "x_um": r.x_um,
                "y_um": r.y_um, "pixel_um": r.pixel_um, "n_patches": n,
                "n_windows": int(r.dx.n_total), "probabilities": p, "weights": wt,
                "origins": org, "field_probabilities": _probs(fv, k),
                "field_label": fv.label_name if fv else NO_PATCHES,
                "vote_probabilities": _probs(rv, k),
                "vote_label": rv.label_name if rv else NO_PATCHES,
                "vote_n_patches": self._sv.n_patches,
                "scan_seq_nums": np.array(r.scan_seq_nums, np.int64),
                "compute_s": float(r.compute_s)}
        now = time.time()
        self._publish("event", self._fields_desc.compose_event(
            data=data, timestamps={key: now for key in data}))

    def _publish_vote(self) -> None:
        k = len(self.dx.class_names)
        v = self.vote
        data = {"probabilities": _probs(v, k), "label": v.label_name if v else NO_PATCHES,
                "label_index": -1 if v is None or v.label is None else int(v.label),
                "n_patches": self._sv.n_patches, "n_fields": len(self.fields),
                "n_skipped": len(self.skipped), "threshold": self.dx.vote_threshold,
                "scan_exit_status": str(self.scan_exit_status)}
        desc = self._bundle.compose_descriptor(name="vote", data_keys=_vote_keys(k))
        self._publish("descriptor", desc.descriptor_doc)
        now = time.time()
        self._publish("event", desc.compose_event(data=data,
                                                  timestamps={key: now for key in data}))

    # ------------------------------------------------------------------ summary
    def summary(self) -> dict[str, Any]:
        """JSON-ready results of the latest scan (what ``srash classify --json`` prints)."""
        v = self.vote
        return {"scan_uid": self.scan_uid, "analysis_uid": self.analysis_uid,
                "status": self.status, "error": self.error, "task": self.dx.task.name,
                "class_names": list(self.dx.class_names),
                "sample_id": (self.scan_start or {}).get("sample_id"),
                "fields": [f.as_dict() for f in self.fields],
                "skipped_fields": len(self.skipped),
                "unreadable_fields": sum("paths" in k for k in self.skipped),
                "unreadable_files": [p for k in self.skipped for p in k.get("paths", [])],
                "diagnosis": v.label_name if v is not None else NO_PATCHES,
                "probabilities": list(v.probabilities) if v is not None else None,
                "n_patches": self._sv.n_patches, "n_fields": len(self.fields),
                "weights": self._weights["path"], "scan_exit_status": self.scan_exit_status}


def _probs(v: Vote | None, k: int) -> NDArray[np.float64]:
    return np.array(v.probabilities, np.float64) if v is not None else np.full(k, np.nan)


def _fields_keys(w: int, k: int) -> dict[str, dict[str, Any]]:
    src = f"analysis:{ANALYSIS}"

    def key(dtype: str, shape: list, np_dtype: str, units: str | None = None) -> dict:
        d: dict[str, Any] = {"source": src, "dtype": dtype, "shape": shape,
                             "dtype_numpy": np_dtype}
        if units:
            d["units"] = units
        return d

    return {"field_index": key("integer", [], "<i8"), "tile_index": key("integer", [], "<i8"),
            "x_um": key("number", [], "<f8", "um"), "y_um": key("number", [], "<f8", "um"),
            "pixel_um": key("number", [], "<f8", "um"),
            "n_patches": key("integer", [], "<i8"), "n_windows": key("integer", [], "<i8"),
            "probabilities": key("array", [w, k], "<f8"), "weights": key("array", [w], "<f8"),
            "origins": key("array", [w, 2], "<i8", "px"),
            "field_probabilities": key("array", [k], "<f8"),
            "field_label": {"source": src, "dtype": "string", "shape": []},
            "vote_probabilities": key("array", [k], "<f8"),
            "vote_label": {"source": src, "dtype": "string", "shape": []},
            "vote_n_patches": key("integer", [], "<i8"),
            "scan_seq_nums": key("array", [2], "<i8"),
            "compute_s": key("number", [], "<f8", "s")}


def _vote_keys(k: int) -> dict[str, dict[str, Any]]:
    src = f"analysis:{ANALYSIS}"
    f = {"dtype": "number", "shape": [], "dtype_numpy": "<f8"}
    i = {"dtype": "integer", "shape": [], "dtype_numpy": "<i8"}
    s = {"dtype": "string", "shape": []}
    return {"probabilities": {"source": src, "dtype": "array", "shape": [k],
                              "dtype_numpy": "<f8"},
            "label": {"source": src, **s}, "label_index": {"source": src, **i},
            "n_patches": {"source": src, **i}, "n_fields": {"source": src, **i},
            "n_skipped": {"source": src, **i}, "threshold": {"source": src, **f},
            "scan_exit_status": {"source": src, **s}}


# ---------------------------------------------------------------------------- in-session
class LiveDx:
    """Handle of a callback subscribed behind a :class:`BufferingWrapper`: the RunEngine
    only enqueues documents; :meth:`wait` blocks until the queue is processed."""

    def __init__(self, RE: Any, callback: LBNetDxCallback, *, queue_size: int = 1_000_000):
        from bluesky.callbacks.buffer import BufferingWrapper

        self.callback = callback
        self._cond = threading.Condition()
        self._sent = 0
        self._done = 0
        self._buffer = BufferingWrapper(self._run, queue_size=queue_size)
        self._RE = RE
        self.token: int | None = RE.subscribe(self._submit)

    def _submit(self, name: str, doc: dict) -> None:  # RunEngine thread: enqueue only
        with self._cond:
            self._sent += 1
        try:
            self._buffer(name, doc)
        except Exception:
            self._mark_done()
            log.exception("live LBNet-Dx: %s document dropped", name)

    def _run(self, name: str, doc: dict) -> None:  # buffer thread
        try:
            self.callback(name, doc)
        finally:
            self._mark_done()

    def _mark_done(self) -> None:
        with self._cond:
            self._done += 1
            self._cond.notify_all()

    @property
    def pending(self) -> int:
        """Documents queued or being processed."""
        with self._cond:
            return self._sent - self._done

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every document received so far is processed; False on timeout (s)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._done >= self._sent, timeout)

    flush = wait

    def close(self, timeout: float | None = None) -> bool:
        """Unsubscribe, let the queue drain (up to ``timeout`` s) and stop the thread;
        False when the callback was still busy (the thread then ends on its own)."""
        if self.token is not None:
            self._RE.unsubscribe(self.token)
            self.token = None
        drained = self.wait(timeout)
        self._buffer.shutdown(wait=drained)
        return drained

    def __enter__(self) -> "LiveDx":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # results of the latest scan
    @property
    def fields(self) -> list[FieldResult]:
        return self.callback.fields

    @property
    def vote(self) -> Vote | None:
        return self.callback.vote

    @property
    def analysis_uid(self) -> str | None:
        return self.callback.analysis_uid


def attach_live_dx(target: Any, dx: LBNetDx, publish: Publish | None = None, *,
                   target_pixel_um: float | None = None, queue_size: int = 1_000_000,
                   **callback_kwargs: Any) -> LiveDx:
    """Subscribe an :class:`LBNetDxCallback` to a session's (or a RunEngine's) documents
    behind a buffering thread. ``publish`` defaults, for a session, to
    :func:`make_analysis_writer` on its catalog (a writer of its own: the session's writer
    is called from the RunEngine thread). Returns the :class:`LiveDx` handle."""
    RE = getattr(target, "RE", target)
    if publish is None and getattr(target, "catalog", None) is not None:
        publish = make_analysis_writer(target.catalog)
    cb = LBNetDxCallback(dx, publish, target_pixel_um=target_pixel_um, **callback_kwargs)
    return LiveDx(RE, cb, queue_size=queue_size)


# ---------------------------------------------------------------------------- offline
def run_documents(run, *, stream_name: str = "primary", faults: ReadFaults | None = None
                  ) -> Iterator[tuple[str, dict]]:
    """The documents of a stored run rebuilt from the catalog: start, the stream's
    descriptor, its events filled with the frames read through tiled (one request per
    frame), stop.

    A run without a stop document raises :class:`~srash_ophyd.runstate.IncompleteRunError`
    before anything is yielded. An event whose frame file cannot be read carries the
    :class:`~srash_ophyd.readfaults.FrameError` in place of the frame (reported through
    ``faults``, default a warning on stderr; ``faults.strict`` raises it instead), and
    :class:`LBNetDxCallback` skips that field.

    (``BlueskyRun.documents()`` needs the server's ``application/json-seq`` exporter,
    which the embedded catalog does not register.)"""
    require_readable(run)
    faults = faults if faults is not None else ReadFaults()
    md = run.metadata
    start = dict(md["start"])
    yield "start", start
    if stream_name not in run:
        raise ExportError(f"run {start['uid']} has no {stream_name!r} stream (nothing "
                          "acquired?)")
    stream = run[stream_name]
    smd = stream.metadata
    keys = dict(smd.get("data_keys", {}))
    desc_uid = smd.get("uid") or f"{start['uid']}-{stream_name}"
    yield "descriptor", {"uid": desc_uid, "name": stream_name, "run_start": start["uid"],
                         "time": smd.get("time", start["time"]), "data_keys": keys,
                         "configuration": smd.get("configuration", {}),
                         "hints": smd.get("hints", {}), "object_keys": {}}
    image = next((k for k, v in keys.items()
                  if v.get("external") and len(v.get("shape") or ()) == 3), None)
    cols = _stream_columns(stream, [k for k in keys if k != image])
    n = len(cols["seq_num"])
    read = FrameReader(stream[image], start["uid"], keys[image].get("shape"),
                       keys[image].get("dtype_numpy")) if image is not None else None
    marker = next((k for k in keys if k.endswith(("field_index", "tile_index"))), None)
    for i in range(n):
        data = {k: v[i] for k, v in cols.items() if k not in ("seq_num", "time")}
        if read is not None:
            field = data[marker] if marker in data else f"at event {i}"
            try:
                data[image] = read(i, field)
            except FrameError as err:
                faults.frame(err)  # strict: raises
                data[image] = err
        yield "event", {"uid": f"{desc_uid}-{i}", "descriptor": desc_uid,
                        "seq_num": int(cols["seq_num"][i]), "time": float(cols["time"][i]),
                        "data": data, "timestamps": {k: 0.0 for k in data},
                        "filled": {image: True} if image else {}}
    stop = md.get("stop")
    yield "stop", dict(stop) if stop else {
        "uid": f"{start['uid']}-stop", "run_start": start["uid"], "time": time.time(),
        "exit_status": "fail", "reason": "the catalog has no stop document for this run"}


def _stream_columns(stream, keys: list[str]) -> dict[str, NDArray]:
    try:
        df = stream.base["internal"].read()
        cols = {k: df[k].to_numpy() for k in ["seq_num", "time", *keys] if k in df.columns}
        if all(k in cols for k in keys):
            return cols
    except Exception:  # other layouts: one column at a time, like export.run_tiles
        pass
    return {k: np.asarray(stream[k].read()) for k in ["seq_num", "time", *keys]}


def classify_run(run, dx: LBNetDx, publish: Publish | None = None, *,
                 target_pixel_um: float | None = None, stream_name: str = "primary",
                 faults: ReadFaults | None = None,
                 **callback_kwargs: Any) -> LBNetDxCallback:
    """Classify a stored scan after the fact through :class:`LBNetDxCallback` (the same
    code as live, on :func:`run_documents`); ``publish`` receives its analysis run. Returns
    the callback (``.fields``, ``.vote``, ``.analysis_uid``, ``.error``, ``.summary()``).
    Fields with an unreadable frame file are skipped (``faults``: :func:`run_documents`);
    a run without a stop document fails (``.error``) before anything is published."""
    callback_kwargs.setdefault("select", None)
    callback_kwargs.setdefault("mode", "offline")
    cb = LBNetDxCallback(dx, publish, target_pixel_um=target_pixel_um,
                         stream_name=stream_name, **callback_kwargs)
    try:
        for name, doc in run_documents(run, stream_name=stream_name, faults=faults):
            cb(name, doc)
    except Exception as exc:  # reading the catalog failed part-way
        if cb.status == "running":
            cb._fail(exc)
        elif cb.error is None:
            cb.error, cb.exception, cb.status = f"{type(exc).__name__}: {exc}", exc, "fail"
    return cb


# ---------------------------------------------------------------------------- 0MQ
# msgpack_dumps, msgpack_loads, zmq_publisher, serve_live: srash_ophyd.transport (imported
# at the top of this module).
