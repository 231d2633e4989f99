"""One lazily created, process-wide worker pool per name (numpy and scipy release the GIL in
their loops, so row bands and blocks of a window run in parallel on threads)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

_POOLS: dict[str, ThreadPoolExecutor] = {}
_LOCK = threading.Lock()


def worker_pool(name: str, workers: int) -> ThreadPoolExecutor:
    """The pool called ``name`` (created on first use with ``workers`` threads)."""
    with _LOCK:
        pool = _POOLS.get(name)
        if pool is None:
            pool = _POOLS[name] = ThreadPoolExecutor(max_workers=max(1, int(workers)),
                                                     thread_name_prefix=name)
        return pool
