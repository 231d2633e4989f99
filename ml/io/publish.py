"""Publish a small derived run (a few streams of events) as bluesky documents.

Used for the simulator-truth runs (:mod:`ml.io.truth`), the segmentation analysis
runs (``srash segment``) and the lipid-droplet quantification runs (``srash quantify``):
start (``metadata``), one descriptor per stream, its events, stop "success". Send the
documents to :func:`ml.dx.live.make_analysis_writer` so arrays go to zarr.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping, Sequence

from event_model import compose_run

__all__ = ["publish_event_run", "publish_run"]


def publish_run(publish: Callable[[str, dict], Any], metadata: Mapping[str, Any],
                streams: Mapping[str, tuple[Mapping[str, Mapping[str, Any]],
                                            Sequence[Mapping[str, Any]]]]) -> str:
    """Publish start / per stream ``name -> (data_keys, rows)`` a descriptor and one event
    per row / stop; returns the run's uid."""
    bundle = compose_run(metadata=dict(metadata))
    publish("start", bundle.start_doc)
    for name, (data_keys, rows) in streams.items():
        desc = bundle.compose_descriptor(name=name, data_keys={k: dict(v) for k, v in
                                                               data_keys.items()})
        publish("descriptor", desc.descriptor_doc)
        for seq, data in enumerate(rows, 1):
            now = time.time()
            publish("event", desc.compose_event(data=dict(data),
                                                timestamps={k: now for k in data},
                                                seq_num=seq))
    publish("stop", bundle.compose_stop(exit_status="success"))
    return bundle.start_doc["uid"]


def publish_event_run(publish: Callable[[str, dict], Any], metadata: Mapping[str, Any],
                      stream: str, data: Mapping[str, Any],
                      data_keys: Mapping[str, Mapping[str, Any]]) -> str:
    """Publish start / descriptor ``stream`` / one event with ``data`` / stop; returns the
    run's uid."""
    return publish_run(publish, metadata, {stream: (data_keys, [data])})
