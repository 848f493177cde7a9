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


def best_in_subprocesses(script: str, passed: list[str], methods, repeats: int, fastest: str) -> dict[str, dict]:
    """Run ``script --child=<method>`` for each method in its own process (its peak memory is its own), alternating
    over ``repeats``; per method, the result (the child's last printed JSON line) with the smallest ``fastest``
    value, with ``peak_mib`` the largest over the repeats."""
    import json
    import subprocess
    import sys

    best: dict[str, dict] = {}
    for _ in range(repeats):
        for method in methods:
            out = subprocess.run([sys.executable, script, *passed, f"--child={method}"], capture_output=True,
                                 text=True, check=True).stdout
            result = json.loads(out.strip().splitlines()[-1])
            previous = best.get(method)
            peak = max(result["peak_mib"], previous["peak_mib"] if previous else 0.0)
            if previous is None or result[fastest] < previous[fastest]:
                best[method] = result
            best[method]["peak_mib"] = peak
    return best
