"""LBNet-Dx on the document stream: classify each SRASH field while the mosaic is acquired.

:class:`LBNetDxCallback` consumes a scan's documents (live from the RunEngine, from 0MQ, or
replayed from the catalog by :func:`classify_run`) and writes its own **analysis run**
through ``publish(name, doc)`` (e.g. ``srash_ophyd.catalog.make_analysis_writer``).


It is built like bluesky's TiledWriter: an ``event_model.RunRouter`` that makes, for each
scan it follows, one chain **assembler -> classifier -> publisher** (:class:`DxRun`):

* the assembler is :class:`ml.io.assembler.FieldAssembler`, the one document -> field
  assembler of the project: fields are grouped and their frames read exactly as for any
  stored run, and the composite is built with :func:`ml.dx.data.tile_composite`, so it is
  bit-identical to :func:`ml.dx.data.run_fields` on the stored run;
* the classifier runs LBNet-Dx on each complete field and keeps the running sample vote;
* the publisher writes the analysis run below through ``publish(name, doc)``.

A stored scan is classified by replaying its own documents, ``run.documents()`` (the
catalog's ``application/json-seq`` export), through the same router (:func:`classify_run`).

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
naming the file (:mod:`ml.io.frames`) and counted in the summary.

**Not blocking the RunEngine**: :class:`LiveDx` (``srash_ophyd.session.attach_live_dx``)
subscribes the callback behind bluesky's :class:`~bluesky.callbacks.buffer.BufferingWrapper`
(a queue and a thread).

**0MQ** (:mod:`srash_ophyd.transport`): a session publishes with
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
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
from event_model import DocumentRouter, RunRouter, compose_run
from numpy.typing import NDArray

from ml.dx.predict import FieldDx, LBNetDx, SampleVote
from ml.dx.vote import Vote
from ml.io.assembler import FieldAssembler, FieldInfo
from ml.io.composite import Calibration
from ml.io.frames import FrameError, FrameReader, ReadFaults
from ml.io.runs import ExportError, Tile
from ml.io.runstate import IncompleteRunError, require_readable
from plans.contract import LBNET_ANALYSIS

__all__ = ["ANALYSIS", "DxRun", "FieldResult", "LBNetDxCallback", "LiveDx", "classify_run",
           "feedback_payload", "is_srash_scan"]

log = logging.getLogger("srash.live")

#: ``start["analysis"]`` of the runs written here.
ANALYSIS = LBNET_ANALYSIS
NO_PATCHES = "no-patches"

Publish = Callable[[str, dict], Any]


def is_srash_scan(start: Mapping[str, Any]) -> bool:
    """True for runs the live classifier should follow: SRASH plans with a composite recipe
    (``plans.mosaic``, ``plans.hyperspectral_stack``), not analysis runs."""
    return "composite" in start and start.get("analysis") is None


def _sha256(path: str | Path | None) -> str | None:
    if not path or not Path(path).is_file():
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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



class _Publisher:
    """The analysis run of one scan as documents: start, a ``fields`` event per field, a
    ``vote`` event and the stop (module doc). ``publish`` None: nothing is sent."""

    def __init__(self, publish: Publish | None, metadata: dict[str, Any], k: int) -> None:
        self.publish = publish
        self.k = k
        self.bundle = compose_run(metadata=metadata)
        self.uid = self.bundle.start_doc["uid"] if publish is not None else None
        self.open = False
        self._fields_desc: Any = None
        self._n_windows: int | None = None

    def _send(self, name: str, doc: dict) -> None:
        if self.publish is not None:
            self.publish(name, doc)

    def start(self) -> None:
        self._send("start", self.bundle.start_doc)
        self.open = True

    def field(self, r: FieldResult, n_vote_patches: int) -> None:
        k = self.k
        w = max(int(r.dx.n_total), 1)
        if self._fields_desc is None:
            self._n_windows = w
            self._fields_desc = self.bundle.compose_descriptor(
                name="fields", data_keys=_fields_keys(w, k))
            self._send("descriptor", self._fields_desc.descriptor_doc)
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
                "vote_n_patches": n_vote_patches,
                "scan_seq_nums": np.array(r.scan_seq_nums, np.int64),
                "compute_s": float(r.compute_s)}
        now = time.time()
        self._send("event", self._fields_desc.compose_event(
            data=data, timestamps={key: now for key in data}))

    def vote(self, data: dict[str, Any]) -> None:
        desc = self.bundle.compose_descriptor(name="vote", data_keys=_vote_keys(self.k))
        self._send("descriptor", desc.descriptor_doc)
        now = time.time()
        self._send("event", desc.compose_event(data=data,
                                               timestamps={key: now for key in data}))

    def stop(self, exit_status: str, reason: str = "") -> None:
        self.open = False
        self._send("stop", self.bundle.compose_stop(exit_status=exit_status, reason=reason))


class DxRun:
    """The chain of one followed scan: :class:`~ml.io.assembler.FieldAssembler` ->
    LBNet-Dx on each field + running sample vote -> :class:`_Publisher`.

    A callable ``(name, doc)`` receiving every document of the scan (the RunRouter's
    per-run callback). Exceptions never leave it: the first one fails the analysis
    (logged on ``srash.live``; ``.error``/``.exception``; the analysis run, if started, is
    stopped with ``exit_status "fail"``) and the rest of the scan's documents are ignored.

    Results: :attr:`fields`, :attr:`vote`, :attr:`skipped`, :attr:`status` (``running``,
    ``success``, ``fail``), :attr:`error`, :attr:`analysis_uid`, :meth:`summary`.
    """

    def __init__(self, dx: LBNetDx, publish: Publish | None, start: Mapping[str, Any], *,
                 target_pixel_um: float, weights: dict[str, Any], mode: str = "live",
                 stream_name: str = "primary", keep_composites: bool = False,
                 faults: ReadFaults | None = None, logger: logging.Logger | None = None,
                 on_done: Callable[["DxRun"], Any] | None = None,
                 frame_reader: Callable[[int, Any], NDArray] | None = None,
                 on_field: Callable[["DxRun", dict[str, Any]], Any] | None = None) -> None:
        self.dx = dx
        self.on_field = on_field
        self.scan_start = dict(start)
        self.scan_uid: str | None = start.get("uid")
        self.target_pixel_um = target_pixel_um
        self.weights = weights
        self.mode = mode
        self.keep_composites = keep_composites
        self.log = logger or log
        self.on_done = on_done
        self.fields: list[FieldResult] = []
        self.skipped: list[dict[str, Any]] = []
        self.vote: Vote | None = None
        self.error: str | None = None
        self.exception: BaseException | None = None
        self.scan_exit_status: str | None = None
        self.calibration: Calibration | None = None
        self.status = "running"
        self.finished = threading.Event()
        self._sv = SampleVote(dx.class_names, threshold=dx.vote_threshold)
        self._assembler = FieldAssembler(self._classify, on_skip=self._skip,
                                         stream_name=stream_name, faults=faults,
                                         frame_reader=frame_reader)
        self._publish_to = publish
        self._publisher: _Publisher | None = None

    @property
    def analysis_uid(self) -> str | None:
        return self._publisher.uid if self._publisher is not None else None

    # ------------------------------------------------------------------ routing
    def __call__(self, name: str, doc: dict) -> None:
        if self.status != "running":
            return
        try:
            if name == "start":
                self._start(doc)
            self._assembler(name, doc)
            if name == "stop":
                self._stop(doc)
        except Exception as exc:  # the failure policy: record, never propagate
            self.fail(exc)

    def _start(self, doc: Mapping[str, Any]) -> None:
        self.calibration = Calibration.from_dict(doc.get("calibration"))
        self._publisher = _Publisher(self._publish_to, self._analysis_md(doc),
                                     len(self.dx.class_names))
        self._publisher.start()

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
        assert self.calibration is not None
        return {"analysis": ANALYSIS, "plan_name": ANALYSIS, "scan_uid": scan["uid"], **md,
                "task": dx.task.name, "class_names": list(dx.class_names),
                "weights": self.weights,
                "thresholds": {"patch": dx.patch_threshold, "vote": dx.vote_threshold},
                "patching": {"background_level": dx.background_level,
                             "smooth_px": dx.smooth_px, "size": PATCH_SIZE,
                             "stride": PATCH_STRIDE},
                "target_pixel_um": self.target_pixel_um,
                "calibration": self.calibration.to_dict(), "mode": self.mode}

    # ------------------------------------------------------------------ classifier
    def _classify(self, tile: Tile, info: FieldInfo) -> None:
        from ml.dx.data import tile_composite

        t0 = time.perf_counter()
        assert self.calibration is not None and self._publisher is not None
        comp = tile_composite(tile, self.calibration, target_pixel_um=self.target_pixel_um)
        fdx: FieldDx = self.dx.classify_field(comp)
        running = self._sv.add(fdx)
        self.vote = running
        res = FieldResult(
            field_index=info.field_index if info.field_index is not None else tile.index,
            tile_index=tile.index, x_um=tile.x_um, y_um=tile.y_um,
            pixel_um=self.target_pixel_um, dx=fdx, running_vote=running,
            scan_seq_nums=info.seq_nums, compute_s=time.perf_counter() - t0,
            latency_s=time.time() - info.last_time,
            composite=comp if self.keep_composites else None)
        self.fields.append(res)
        self._publisher.field(res, self._sv.n_patches)
        self._feed(feedback_payload(self, res, last_frame_time=info.last_time))

    def _skip(self, record: dict[str, Any]) -> None:
        self.skipped.append(record)
        if record.get("field_index") is not None:
            self._feed(feedback_payload(self, None, skipped=record))

    def _feed(self, payload: dict[str, Any]) -> None:
        """Hand a field's result to ``on_field`` (the closed loop's mailbox); a failing
        hook is logged, never fails the analysis."""
        if self.on_field is None:
            return
        try:
            self.on_field(self, payload)
        except Exception:
            self.log.exception("on_field hook failed")

    # ------------------------------------------------------------------ end
    def _stop(self, doc: Mapping[str, Any]) -> None:
        assert self._publisher is not None
        self.scan_exit_status = doc.get("exit_status")
        self.vote = self._sv.vote()
        v = self.vote
        self._publisher.vote({
            "probabilities": _probs(v, len(self.dx.class_names)),
            "label": v.label_name if v else NO_PATCHES,
            "label_index": -1 if v is None or v.label is None else int(v.label),
            "n_patches": self._sv.n_patches, "n_fields": len(self.fields),
            "n_skipped": len(self.skipped), "threshold": self.dx.vote_threshold,
            "scan_exit_status": str(self.scan_exit_status)})
        reason = "" if self.scan_exit_status == "success" else (
            f"scan ended with exit_status {self.scan_exit_status!r}; vote over the "
            f"{len(self.fields)} complete fields")
        self._publisher.stop("success", reason)
        self.status = "success"
        self._finish()

    def fail(self, exc: BaseException) -> None:
        """End the analysis with ``exc`` (module doc: the failure policy)."""
        if self.status != "running":
            return
        # a bad input (killed run, unreadable file with --strict) needs no traceback
        trace = not isinstance(exc, (FrameError, IncompleteRunError))
        self.log.error("LBNet-Dx on scan %s failed: %s: %s", self.scan_uid,
                       type(exc).__name__, exc, exc_info=exc if trace else None)
        self.exception = exc
        self.error = f"{type(exc).__name__}: {exc}"
        self.status = "fail"
        if self._publisher is not None and self._publisher.open:
            try:
                self._publisher.stop("fail", self.error[:2000])
            except Exception as exc2:
                self.log.error("could not stop analysis run %s: %s", self.analysis_uid, exc2)
        self._finish()

    def _finish(self) -> None:
        self.finished.set()
        if self.on_done is not None:
            try:
                self.on_done(self)
            except Exception:
                self.log.exception("on_done hook failed")

    # ------------------------------------------------------------------ summary
    def summary(self) -> dict[str, Any]:
        """JSON-ready results (what ``srash classify --json`` prints)."""
        v = self.vote
        return {"scan_uid": self.scan_uid, "analysis_uid": self.analysis_uid,
                "status": self.status, "error": self.error, "task": self.dx.task.name,
                "class_names": list(self.dx.class_names),
                "sample_id": self.scan_start.get("sample_id"),
                "fields": [f.as_dict() for f in self.fields],
                "skipped_fields": len(self.skipped),
                "unreadable_fields": sum("paths" in k for k in self.skipped),
                "unreadable_files": [p for k in self.skipped for p in k.get("paths", [])],
                "diagnosis": v.label_name if v is not None else NO_PATCHES,
                "probabilities": list(v.probabilities) if v is not None else None,
                "n_patches": self._sv.n_patches, "n_fields": len(self.fields),
                "weights": self.weights["path"], "scan_exit_status": self.scan_exit_status}


class _NoFill(DocumentRouter):
    """The RunRouter's filler: frames stay files (the assembler reads them itself)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def _same(self, doc: Any) -> Any:
        return doc

    start = descriptor = event = event_page = datum = datum_page = resource = _same
    stream_resource = stream_datum = stop = _same


class LBNetDxCallback(RunRouter):
    """Classify the fields of each followed scan in the document stream (module doc): a
    RunRouter that makes one :class:`DxRun` per scan.

    Parameters
    ----------
    dx : LBNetDx
        The classifier.
    publish : callable, optional
        ``publish(name, doc)`` for the analysis runs' documents (None: keep results only).
    target_pixel_um : float, optional
        Resample fields to this pixel size (um); default ``dx.meta["pixel_um"]`` or 0.3.
    logger : logging.Logger, optional
        Default ``logging.getLogger("srash.live")``.
    stream_name : str
        The scans' image stream (``"primary"``).
    select : callable, optional
        ``select(start) -> bool``: which runs to classify (default :func:`is_srash_scan`;
        None = every run).
    mode : str
        Recorded as ``start["mode"]`` of the analysis run (``"live"``/``"offline"``).
    keep_composites : bool
        Keep each field's composite on :attr:`FieldResult.composite` (memory!).
    faults : ReadFaults, optional
        Where unreadable frame files are reported (default: a warning on ``srash.live``);
        ``strict`` fails the scan's analysis instead.
    on_done : callable, optional
        ``on_done(callback)`` after each followed scan's analysis ends (success or fail).
    on_field : callable, optional
        ``on_field(dx_run, payload)`` after each field is classified or skipped, with
        :func:`feedback_payload` (the closed loop's feedback: ``plans.adaptive``).

    The attributes of the latest scan's :class:`DxRun` are readable here: :attr:`fields`,
    :attr:`vote`, :attr:`analysis_uid`, :attr:`scan_uid`, :attr:`skipped`, :attr:`status`
    (``idle``, ``ignored``, ``running``, ``success``, ``fail``), :attr:`error`,
    :meth:`summary`; :attr:`finished` is a ``threading.Event`` set when the latest followed
    scan's analysis has ended.
    """

    def __init__(self, dx: LBNetDx, publish: Publish | None = None, *,
                 target_pixel_um: float | None = None, logger: logging.Logger | None = None,
                 stream_name: str = "primary",
                 select: Callable[[Mapping[str, Any]], bool] | None = is_srash_scan,
                 mode: str = "live", keep_composites: bool = False,
                 faults: ReadFaults | None = None,
                 on_done: Callable[["LBNetDxCallback"], Any] | None = None,
                 frame_reader: Callable[[int, Any], NDArray] | None = None,
                 on_field: Callable[[DxRun, dict[str, Any]], Any] | None = None) -> None:
        super().__init__([self._factory], filler_class=_NoFill)
        self.on_field = on_field
        self.frame_reader = frame_reader
        self.dx = dx
        self.publish = publish
        self.target_pixel_um = float(target_pixel_um if target_pixel_um is not None
                                     else dx.meta.get("pixel_um", 0.3))
        self.log = logger or log
        self.stream_name = stream_name
        self.select = select
        self.mode = mode
        self.keep_composites = keep_composites
        self.faults = faults
        self.on_done = on_done
        self.runs_seen = 0
        self.finished = threading.Event()
        wpath = dx.meta.get("path")
        self._weights = {"path": wpath, "sha256": _sha256(wpath),
                         "model": dx.meta.get("model")}
        self.latest: DxRun | None = None
        self._status = "idle"
        self._error: str | None = None  # a failure before any scan started (classify_run)
        self._exception: BaseException | None = None

    # ------------------------------------------------------------------ routing
    def _factory(self, name: str, start: dict) -> tuple[list, list]:
        self.runs_seen += 1
        if self.latest is not None and self.latest.status == "running":
            self.latest.fail(RuntimeError(f"scan {self.latest.scan_uid} sent no stop "
                                          "document before the next start"))
        self._error, self._exception = None, None
        if self.select is not None and not self.select(start):
            self.latest, self._status = None, "ignored"
            return [], []
        self.finished.clear()
        self.latest = DxRun(self.dx, self.publish, start,
                            target_pixel_um=self.target_pixel_um, weights=self._weights,
                            mode=self.mode, stream_name=self.stream_name,
                            keep_composites=self.keep_composites, faults=self.faults,
                            logger=self.log, on_done=self._run_done,
                            frame_reader=self.frame_reader, on_field=self.on_field)
        return [self.latest], []

    def _run_done(self, run: DxRun) -> None:
        if run is self.latest:
            self.finished.set()
        if self.on_done is not None:
            self.on_done(self)

    def __call__(self, name: str, doc: dict, validate: bool = False):
        """Route one document; exceptions are logged, never raised (module doc). A
        StreamResource without ``run_start`` (optional in its schema) belongs to the scan
        being followed."""
        if name == "stream_resource" and "run_start" not in doc and self.latest is not None:
            doc = {**doc, "run_start": self.latest.scan_uid}
        try:
            return super().__call__(name, doc, validate)
        except Exception as exc:  # e.g. a document of a run whose start was never seen
            self.log.warning("LBNet-Dx: %s document not routed: %s: %s", name,
                             type(exc).__name__, exc)
        return name, doc

    def record_failure(self, exc: BaseException) -> None:
        """Fail the latest scan's analysis with ``exc`` (reading a stored run failed)."""
        if self.latest is not None and self.latest.status == "running":
            self.latest.fail(exc)
        elif self.latest is None or self.latest.error is None:
            self.latest = None
            self._status = "fail"
            self._error, self._exception = f"{type(exc).__name__}: {exc}", exc
            self.finished.set()

    # ------------------------------------------------------------------ latest scan
    @property
    def status(self) -> str:
        return self.latest.status if self.latest is not None else self._status

    @property
    def error(self) -> str | None:
        return self.latest.error if self.latest is not None else self._error

    @property
    def exception(self) -> BaseException | None:
        return self.latest.exception if self.latest is not None else self._exception

    @property
    def fields(self) -> list[FieldResult]:
        return self.latest.fields if self.latest is not None else []

    @property
    def vote(self) -> Vote | None:
        return self.latest.vote if self.latest is not None else None

    @property
    def skipped(self) -> list[dict[str, Any]]:
        return self.latest.skipped if self.latest is not None else []

    @property
    def analysis_uid(self) -> str | None:
        return self.latest.analysis_uid if self.latest is not None else None

    @property
    def scan_uid(self) -> str | None:
        return self.latest.scan_uid if self.latest is not None else None

    @property
    def scan_start(self) -> dict[str, Any] | None:
        return self.latest.scan_start if self.latest is not None else None

    @property
    def scan_exit_status(self) -> str | None:
        return self.latest.scan_exit_status if self.latest is not None else None

    def summary(self) -> dict[str, Any]:
        """JSON-ready results of the latest scan (what ``srash classify --json`` prints)."""
        if self.latest is not None:
            return self.latest.summary()
        return {"scan_uid": None, "analysis_uid": None, "status": self.status,
                "error": self.error, "task": self.dx.task.name,
                "class_names": list(self.dx.class_names), "sample_id": None, "fields": [],
                "skipped_fields": 0, "unreadable_fields": 0, "unreadable_files": [],
                "diagnosis": NO_PATCHES, "probabilities": None, "n_patches": 0,
                "n_fields": 0, "weights": self._weights["path"], "scan_exit_status": None}


def feedback_payload(run: DxRun, result: FieldResult | None, *,
                     skipped: Mapping[str, Any] | None = None,
                     last_frame_time: float | None = None) -> dict[str, Any]:
    """Plain (JSON-ready) result of one field for the closed loop
    (``plans.adaptive.DiagnosisFeedback``): the field's own vote, the running sample vote
    after it and the evidence counted so far; ``last_frame_time``: epoch s of the field's
    last frame event (decision latency). ``result`` None: the field was skipped
    (``skipped`` = the assembler's record: an unreadable frame file)."""
    v = run.vote
    base = {"scan_uid": run.scan_uid, "class_names": list(run.dx.class_names),
            "threshold": float(run.dx.vote_threshold),
            "vote_probabilities": list(v.probabilities) if v is not None else None,
            "vote_label": v.label_name if v is not None else NO_PATCHES,
            "vote_n_patches": run._sv.n_patches,
            "n_fields": sum(1 for f in run.fields if f.n_patches)}
    if result is None:
        rec = dict(skipped or {})
        return {**base, "field_index": rec.get("field_index"), "skipped": True,
                "why": rec.get("why"), "n_patches": 0, "field_probabilities": None,
                "last_frame_time": None, "compute_s": 0.0}
    return {**base, "field_index": result.field_index, "skipped": False, "why": None,
            "n_patches": result.n_patches, "field_probabilities": result.field_probabilities,
            "last_frame_time": last_frame_time,
            "compute_s": float(result.compute_s)}


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



# ---------------------------------------------------------------------------- offline
def classify_run(run, dx: LBNetDx, publish: Publish | None = None, *,
                 target_pixel_um: float | None = None, stream_name: str = "primary",
                 faults: ReadFaults | None = None,
                 **callback_kwargs: Any) -> LBNetDxCallback:
    """Classify a stored scan after the fact: its own documents (``run.documents()``) are
    replayed through an :class:`LBNetDxCallback`, the same code as live; ``publish``
    receives its analysis run. Returns the callback (``.fields``, ``.vote``,
    ``.analysis_uid``, ``.error``, ``.summary()``). Fields with an unreadable frame file
    are skipped and reported through ``faults`` (default: a warning on stderr;
    ``faults.strict`` fails the analysis); a run without a stop document fails (``.error``)
    before anything is published."""
    callback_kwargs.setdefault("select", None)
    callback_kwargs.setdefault("mode", "offline")
    cb = LBNetDxCallback(dx, publish, target_pixel_um=target_pixel_um,
                         stream_name=stream_name,
                         faults=faults if faults is not None else ReadFaults(),
                         **callback_kwargs)
    try:
        require_readable(run)
        cb.frame_reader = _catalog_reader(run, stream_name)
        for name, doc in run.documents():
            cb(name, doc)
    except Exception as exc:  # reading the catalog failed part-way
        cb.record_failure(exc)
    return cb


def _catalog_reader(run: Any, stream_name: str) -> Callable[[int, Any], NDArray] | None:
    """A :class:`~ml.io.frames.FrameReader` on the run's external image column: frames come
    through the catalog (one request per frame, as every stored-run reader does), so a
    remote catalog's runs classify from machines that cannot see its files."""
    if stream_name not in run:
        return None
    stream = run[stream_name]
    keys = dict(stream.metadata.get("data_keys", {}))
    image = next((k for k, v in keys.items()
                  if v.get("external") and len(v.get("shape") or ()) == 3), None)
    if image is None:
        return None
    return FrameReader(stream[image], run.metadata["start"].get("uid"),
                       keys[image].get("shape"), keys[image].get("dtype_numpy"))
