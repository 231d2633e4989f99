"""Behaviour the simulated devices and their Channel Access variants (:mod:`.epics`) share:
the Raman-shift pseudo axis's move failures, the frame detectors' files and StreamResource,
the microscope as the detector a plan triggers."""

from __future__ import annotations

import uuid
from collections import deque
from pathlib import Path
from typing import Any, Iterator

from event_model import compose_stream_resource

from ..catalog import file_uri

__all__ = ["DetectorFront", "FILE_TEMPLATE", "FrameFiles", "MIMETYPE", "RealMoveFailures"]


class RealMoveFailures:
    """Mixin for an ophyd ``PseudoPositioner`` (listed before it): a real axis whose move
    fails makes the pseudo move fail (ophyd alone would report success), and ``stop``
    stops every real axis. The host sets ``self._move_status = None`` in ``__init__``."""

    _move_status: Any
    _real: list
    _real_waiting: list
    _finished_lock: Any
    _SUB_REQ_DONE: str

    def _setup_move(self, position, status):
        self._move_status = status
        super()._setup_move(position, status)  # type: ignore[misc]

    def _real_finished(self, status=None, *, obj=None):
        """A real axis finished: propagate its failure (ophyd would report success)."""
        if status is not None and status.done and not status.success:
            with self._finished_lock:
                del self._real_waiting[:]
                mine = self._move_status
                self._reset_sub(self._SUB_REQ_DONE)  # type: ignore[attr-defined]
                if mine is not None and not mine.done:
                    mine.set_exception(status.exception())
            return
        super()._real_finished(status, obj=obj)  # type: ignore[misc]

    def stop(self, success: bool = False) -> None:
        for real in self._real:
            real.stop(success=success)


# ---------------------------------------------------------------------------- frame files
#: the frames' media type and file names (``<folder>/<number>.ome.tif``) in StreamResource
MIMETYPE = "multipart/related;type=image/tiff"
FILE_TEMPLATE = "{:06d}.ome.tif"


class FrameFiles:
    """Mixin of the frame detectors (simulated and over Channel Access): each staging gets
    a new folder ``<data_dir>/<resource uid>`` and one StreamResource for the frames written
    there; the asset documents wait in ``_asset_docs`` until collected. The host provides
    ``data_dir``, ``frame_shape``, ``image_key`` and ``_lock``."""

    data_dir: Path
    image_key: str
    _lock: Any
    _index: int
    _asset_docs: deque
    _folder: Path

    def _begin_staging(self) -> str:
        """Reset the frame count and make the staging's folder; returns the resource uid
        (call with ``_lock`` held)."""
        self._index = 0
        self._asset_docs.clear()
        self._staged_shape = self.frame_shape  # type: ignore[attr-defined]
        uid = str(uuid.uuid4())
        self._folder = (self.data_dir / uid).absolute()
        self._folder.mkdir(parents=True, exist_ok=False)
        return uid

    def _compose_resource(self, uid: str) -> None:
        """The StreamResource of the staging's folder (sent with the first frame)."""
        bundle = compose_stream_resource(
            mimetype=MIMETYPE, uri=file_uri(self._folder) + "/", data_key=self.image_key,
            parameters={"template": FILE_TEMPLATE, "join_method": "stack", "chunk_shape": [1]},
            uid=uid)
        self._resource_doc = bundle.stream_resource_doc
        self._compose_datum = bundle.compose_stream_datum
        self._resource_sent = False

    def unstage(self) -> list[object]:
        with self._lock:
            self._staged_shape = None
            self._compose_datum = None
            self._resource_doc = None
        return super().unstage()  # type: ignore[misc]

    def collect_asset_docs(self, index: int | None = None) -> Iterator[tuple[str, dict]]:
        with self._lock:
            while self._asset_docs:
                yield self._asset_docs.popleft()

    def get_index(self) -> int:
        return self._index


class DetectorFront:
    """Mixin of the microscopes: the detector's asset documents, index and image key, so
    the microscope is the one detector a plan triggers."""

    detector: Any

    def collect_asset_docs(self, index: int | None = None) -> Iterator[tuple[str, dict]]:
        yield from self.detector.collect_asset_docs(index)

    def get_index(self) -> int:
        return self.detector.get_index()

    @property
    def image_key(self) -> str:
        return self.detector.image_key
