"""A statistic over many bootstrap resamples, on all the machine's cores when the work pays for them.

The resamples are drawn beforehand (the caller's seeded generator, in order), so the values
are the same, in the same order, whether they are computed here or in worker processes. The
workers are forked (the statistic is a closure over the run's predictions: nothing is
pickled but the values coming back) and use one thread each, as PyTorch's own DataLoader
workers do; a process that may not start children (a daemonic Dask worker) computes
serially, as does a machine with one core or a small job.
"""

from __future__ import annotations

import multiprocessing
import signal
import sys
from typing import Any, Callable, Sequence

import numpy as np

from ..io.parallel import default_workers

PARALLEL_FROM_ROWS = 200_000  # resamples x rows below which forking costs more than it saves
_JOB: tuple[Callable[[np.ndarray], Any], Sequence[np.ndarray], Sequence[np.ndarray]] | None = None


def resample_rows(groups: Sequence[np.ndarray], chosen: np.ndarray) -> np.ndarray:
    """The rows of the patients ``chosen`` (with repeats), in that order: ``np.concatenate`` of their groups."""
    return np.concatenate([groups[j] for j in chosen]) if len(chosen) else np.array([], dtype=int)


def evaluate_resamples(statistic: Callable[[np.ndarray], Any], groups: Sequence[np.ndarray],
                       draws: Sequence[np.ndarray]) -> list[Any]:
    """``[statistic(rows of draw) for draw in draws]``, where a draw is an array of indices into ``groups``."""
    global _JOB
    rows = sum(len(g) for g in groups)
    workers = min(default_workers(), 8)
    if workers < 2 or rows * len(draws) < PARALLEL_FROM_ROWS or not _may_fork():
        return [statistic(resample_rows(groups, chosen)) for chosen in draws]
    bounds = np.linspace(0, len(draws), workers + 1).astype(int)
    _JOB = (statistic, groups, draws)  # inherited by the forked workers: only the bounds are sent
    pool = multiprocessing.get_context("fork").Pool(workers, initializer=_worker_start)
    try:
        parts = pool.map(_evaluate_part, list(zip(bounds[:-1], bounds[1:])))
    except BaseException:
        pool.terminate()
        raise
    else:
        pool.close()  # the workers finish and exit on their own (terminating them would signal them)
    finally:
        pool.join()
        _JOB = None
    return [value for part in parts for value in part]


def _may_fork() -> bool:
    """Not in a daemonic process (it may not start children), nor where Ray runs in this process (its gRPC threads
    do not survive a fork)."""
    ray = sys.modules.get("ray")
    return ("fork" in multiprocessing.get_all_start_methods() and not multiprocessing.current_process().daemon
            and not (ray is not None and getattr(ray, "is_initialized", lambda: False)()))


def _worker_start() -> None:
    """One thread per worker; the signal handlers of a forked worker are the defaults, not the command's (which
    would print a traceback when the pool ends its workers); Ctrl-C is the parent's to handle."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


def _evaluate_part(bounds: tuple[int, int]) -> list[Any]:
    statistic, groups, draws = _JOB
    return [statistic(resample_rows(groups, chosen)) for chosen in draws[bounds[0]:bounds[1]]]
