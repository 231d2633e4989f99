"""Publish a small derived run (one stream, one event) as bluesky documents.

Used for the simulator-truth runs (:mod:`srash_ophyd.truth`) and the segmentation analysis
runs (``srash segment``): start (``metadata``), one descriptor, one event, stop "success".
Send the documents to :func:`srash_ophyd.live.make_analysis_writer` so arrays go to zarr.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping

from event_model import compose_run

__all__ = ["publish_event_run"]


def publish_event_run(publish: Callable[[str, dict], Any], metadata: Mapping[str, Any],
                      stream: str, data: Mapping[str, Any],
                      data_keys: Mapping[str, Mapping[str, Any]]) -> str:
    """Publish start / descriptor ``stream`` / one event with ``data`` / stop; returns the
    run's uid."""
    bundle = compose_run(metadata=dict(metadata))
    publish("start", bundle.start_doc)
    desc = bundle.compose_descriptor(name=stream, data_keys={k: dict(v) for k, v in
                                                             data_keys.items()})
    publish("descriptor", desc.descriptor_doc)
    now = time.time()
    publish("event", desc.compose_event(data=dict(data), timestamps={k: now for k in data},
                                        seq_num=1))
    publish("stop", bundle.compose_stop(exit_status="success"))
    return bundle.start_doc["uid"]
