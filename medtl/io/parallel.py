"""Run a per-file function over many files on worker processes, with progress."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
R = TypeVar("R")
SERIAL_BELOW = 48


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def parallel_map(fn: Callable[[T], R], items: list[T], workers: int | None = None,
                 on_done: Callable[[int], None] | None = None) -> Iterator[R]:
    """``map(fn, items)`` in order; processes when the batch is large enough to pay for them."""
    workers = default_workers() if workers is None else workers
    if workers <= 1 or len(items) < SERIAL_BELOW:
        for item in items:
            yield fn(item)
            if on_done:
                on_done(1)
        return
    # fork keeps start-up cheap (no re-import); the workers only parse headers.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    chunk = max(1, min(64, len(items) // (workers * 8)))
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method)) as pool:
        for result in pool.map(fn, items, chunksize=chunk):
            yield result
            if on_done:
                on_done(1)


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
