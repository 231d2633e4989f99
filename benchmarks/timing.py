"""Timing helper shared by the benchmark scripts (not a test utility)."""

from __future__ import annotations

import statistics
import time
from typing import Callable


def median_time(fn: Callable[[], object], runs: int) -> tuple[float, list[float]]:
    """One warm-up call, then ``runs`` timed calls: (median s, all times s)."""
    fn()
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), ts
