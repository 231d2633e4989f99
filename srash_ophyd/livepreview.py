"""A live mosaic preview: each field of a running scan drawn at its stage position.

:class:`MosaicPreview` is a document callback (subscribe it to a RunEngine). It assembles
the fields of every run from its documents with the one assembler
(:class:`ml.io.assembler.FieldAssembler`, reading the frame files the StreamResource
documents name) and draws each complete field into one matplotlib axes as the composite of
``srash catalog export`` (R = SRS 2930 protein, G = SRS 2850 lipid, B = SHG), placed by its
recorded stage position; a new run clears the axes. Display only: nothing is written.

Each channel is scaled by the 1st / 99.7th percentiles of the run's first field (fixed for
the run, so neighbouring tiles match), and fields are shown at most ``max_px`` pixels a
side (strided). A field whose frames cannot be read is skipped with one warning line
(:class:`ml.io.frames.ReadFaults`), never an exception into the RunEngine.

Threads: the RunEngine emits documents from its own thread; with a Qt backend the callback
is moved to the Qt main thread by bluesky's teleporter (:class:`~bluesky.callbacks.
mpl_plotting.QtAwareCallback`), as bluesky's own live plots are; with Agg (no display,
tests) it draws in place. ``enabled = False`` (or unsubscribing) turns it off.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from bluesky.callbacks.mpl_plotting import QtAwareCallback
from event_model import RunRouter

__all__ = ["MosaicPreview"]

#: composite colour order: R = SRS 2930 (channel 1), G = SRS 2850 (0), B = SHG (2)
RGB_ORDER = (1, 0, 2)


class MosaicPreview(QtAwareCallback):
    """Live mosaic figure (module doc).

    Parameters
    ----------
    fig : matplotlib Figure, optional
        Draw here; default a new figure ``"SRASH mosaic preview"`` (pyplot).
    max_px : int
        Largest side of a displayed field (pixels; larger fields are strided).
    stream_name : str
        The scan's image stream.
    """

    def __init__(self, fig: Any = None, *, max_px: int = 256, stream_name: str = "primary",
                 use_teleporter: bool | None = None) -> None:
        super().__init__(use_teleporter=use_teleporter)
        if fig is None:
            import matplotlib.pyplot as plt

            fig = plt.figure("SRASH mosaic preview", figsize=(6, 6))
        self.fig = fig
        self.ax = fig.axes[0] if fig.axes else fig.add_subplot(1, 1, 1)
        self.max_px = int(max_px)
        self.stream_name = stream_name
        self.enabled = True
        self.n_fields = 0
        self._scale: np.ndarray | None = None
        self._bounds: list[float] | None = None
        self._router = RunRouter([self._factory])

    # ------------------------------------------------------------------ documents
    def __call__(self, name: str, doc: dict, *, escape: bool = False) -> Any:
        if not self.enabled:
            return None
        return super().__call__(name, doc, escape=escape)

    def _route(self, name: str, doc: dict) -> None:
        self._router(name, doc)

    def start(self, doc):
        self._route("start", doc)

    def descriptor(self, doc):
        self._route("descriptor", doc)

    def event(self, doc):
        self._route("event", doc)

    def event_page(self, doc):
        self._route("event_page", doc)

    def resource(self, doc):
        self._route("resource", doc)

    def datum(self, doc):
        self._route("datum", doc)

    def datum_page(self, doc):
        self._route("datum_page", doc)

    def stream_resource(self, doc):
        self._route("stream_resource", doc)

    def stream_datum(self, doc):
        self._route("stream_datum", doc)

    def stop(self, doc):
        self._route("stop", doc)

    def _factory(self, name: str, start: dict) -> tuple[list, list]:
        from ml.io.assembler import FieldAssembler
        from ml.io.frames import ReadFaults

        self.ax.clear()
        self.n_fields = 0
        self._scale = None
        self._bounds = None
        what = " ".join(str(start[k]) for k in ("plan_name", "sample_id") if start.get(k))
        self.ax.set_title(f"scan {start.get('scan_id', '?')}: {what}".strip())
        self.ax.set_xlabel("stage x (um)")
        self.ax.set_ylabel("stage y (um)")
        self.ax.set_aspect("equal")
        asm = FieldAssembler(self._on_field, stream_name=self.stream_name,
                             faults=ReadFaults(False))
        return [asm], []

    # ------------------------------------------------------------------ drawing
    def _on_field(self, tile: Any, info: Any) -> None:
        data = np.asarray(tile.data, dtype=np.float32)
        step = max(1, -(-max(data.shape[1:]) // self.max_px))
        img = data[list(RGB_ORDER), ::step, ::step]
        if self._scale is None:
            lo, hi = np.nanpercentile(img.reshape(3, -1), [1.0, 99.7], axis=1)
            self._scale = np.stack([lo, np.maximum(hi - lo, 1e-12)])
        lo, span = self._scale
        rgb = np.clip((img - lo[:, None, None]) / span[:, None, None], 0.0, 1.0)
        rgb = np.nan_to_num(rgb).transpose(1, 2, 0)
        x0, y0 = tile.origin_um
        ny, nx = data.shape[1:]
        x1, y1 = x0 + nx * tile.pixel_um, y0 + ny * tile.pixel_um
        self.ax.imshow(rgb, extent=(x0, x1, y1, y0), interpolation="nearest")
        b = self._bounds
        self._bounds = ([x0, x1, y0, y1] if b is None else
                        [min(b[0], x0), max(b[1], x1), min(b[2], y0), max(b[3], y1)])
        bx0, bx1, by0, by1 = self._bounds
        self.ax.set_xlim(bx0, bx1)
        self.ax.set_ylim(by1, by0)  # image convention: +y down
        self.n_fields += 1
        self.fig.canvas.draw_idle()
        self.fig.canvas.flush_events()
