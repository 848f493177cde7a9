"""Shared timing helper of the benchmark scripts."""

from __future__ import annotations

import time
from typing import Callable


def best_time(call: Callable[[], object], repeats: int) -> float:
    """Seconds of the fastest of ``repeats`` calls, after one warm-up call (allocations, kernel choice)."""
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)
