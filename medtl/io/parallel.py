"""Run a function over batches of many files on worker processes, with progress."""

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


def parallel_batches(fn: Callable[[list[T]], R], items: list[T], workers: int | None = None,
                     on_done: Callable[[int], None] | None = None) -> Iterator[R]:
    """``fn`` over consecutive batches of ``items``, results in order; on processes when the list is large enough
    to pay for them. A worker returns one result per batch (it can pack a batch's records into one object), and
    ``on_done`` hears how many items each finished batch held."""
    workers = default_workers() if workers is None else workers
    batches = list(chunked(items, max(1, min(64, len(items) // (max(workers, 1) * 8)))))
    if workers <= 1 or len(items) < SERIAL_BELOW:
        for batch in batches:
            yield fn(batch)
            if on_done:
                on_done(len(batch))
        return
    # fork keeps start-up cheap (no re-import); the workers only parse headers.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method)) as pool:
        for batch, result in zip(batches, pool.map(fn, batches)):
            yield result
            if on_done:
                on_done(len(batch))


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
