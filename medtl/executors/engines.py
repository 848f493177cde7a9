"""``open_executor(name, scheduler, workers)``: run a function over a list of argument tuples somewhere.

* ``local``: one after the other in this process (today's behaviour);
* ``dask``: ``distributed.Client`` on an existing scheduler (``scheduler`` address), or a
  ``LocalCluster`` of ``workers`` processes with one thread each (several cores or GPUs of
  one machine); extra ``medtl[dask]``;
* ``ray``: ``ray.init(address=scheduler)`` on an existing Ray cluster (or a local one
  without an address); extra ``medtl[ray]``.

A unit that raises is reported (``UnitFailed`` lists every failed unit after the others
finished), never silently dropped.
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Any, Callable, Sequence

from ..errors import ConfigError, MedtlError

log = logging.getLogger("medtl")

EXECUTORS = ("local", "dask", "ray")
SCHEDULER_ENV = "MEDTL_SCHEDULER"  # the scheduler address when neither --scheduler nor run.scheduler gives one


class UnitFailed(MedtlError):
    """Some units raised; the others finished (re-running the command retries only the failed ones)."""


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class Executor:
    """Runs ``fn(*args)`` for every args tuple; ``threads_per_unit`` is the torch thread budget of one unit."""

    name = "local"
    where = "in this process"

    def __init__(self, threads_per_unit: int | None = None):
        self.threads_per_unit = threads_per_unit

    def _submit(self, fn: Callable, calls: Sequence[tuple]) -> list[Callable[[], Any]]:
        """One callable per unit that returns its result (or raises its error)."""
        return [functools.partial(fn, *args) for args in calls]  # local: each runs when its result is asked for

    def map(self, fn: Callable, calls: Sequence[tuple], labels: Sequence[str]) -> list[Any]:
        """Results in call order; raises ``UnitFailed`` naming each failed unit once all have ended."""
        results, failures = [], []
        for result, label in zip(self._submit(fn, calls), labels):
            try:
                results.append(result())
            except Exception as exc:  # noqa: BLE001 - reported with every other failure below
                failures.append(f"{label}: {type(exc).__name__}: {str(exc)[:300]}")
                results.append(None)
        if failures:
            raise UnitFailed(f"{len(failures)} of {len(calls)} unit(s) failed {self.where} ({'; '.join(failures[:5])});"
                             " re-run the same command: finished units are kept, only these run again")
        return results

    def close(self) -> None:
        """Release the engine (a local cluster this executor started)."""


class DaskExecutor(Executor):
    """Units as Dask futures (``pure=False``: a unit is never deduplicated or cached by Dask)."""

    name = "dask"
    where = "on the Dask cluster"

    def __init__(self, scheduler: str | None, workers: int):
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise ConfigError("executor dask needs the optional package 'distributed': pip install 'medtl[dask]'") \
                from None
        for name in ("distributed", "tornado"):  # their INFO lines (nannies, comms) would drown medtl's
            logging.getLogger(name).setLevel(logging.WARNING)
        self.cluster = None
        if scheduler:
            try:
                self.client = Client(scheduler, timeout=CONNECT_TIMEOUT)
            except (OSError, TimeoutError) as error:
                raise MedtlError(unreachable("Dask scheduler", scheduler, error)) from None
            super().__init__(None)  # a remote worker uses its own cores
        else:
            self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                        dashboard_address=None)
            self.client = Client(self.cluster)
            super().__init__(max(1, _cores() // workers))

    def _submit(self, fn: Callable, calls: Sequence[tuple]) -> list[Callable[[], Any]]:
        return [self.client.submit(fn, *args, pure=False).result for args in calls]

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


class RayExecutor(Executor):
    """Units as Ray tasks (one CPU each, retried twice if a worker dies) on an existing or a local Ray."""

    name = "ray"
    where = "on the Ray cluster"

    def __init__(self, scheduler: str | None, workers: int):
        try:
            import ray
        except ImportError:
            raise ConfigError("executor ray needs the optional package 'ray': pip install 'medtl[ray]'") from None
        self.ray = ray
        self.started = not ray.is_initialized()
        if self.started:
            try:
                ray.init(address=scheduler, **({} if scheduler else {"num_cpus": workers}), log_to_driver=False,
                         include_dashboard=False, logging_level=logging.WARNING)
            except (ConnectionError, OSError, TimeoutError) as error:
                raise MedtlError(unreachable("Ray cluster", scheduler or "local", error)) from None
        super().__init__(None if scheduler else max(1, _cores() // workers))

    def _submit(self, fn: Callable, calls: Sequence[tuple]) -> list[Callable[[], Any]]:
        remote = self.ray.remote(num_cpus=1, max_retries=2)(fn)
        return [functools.partial(self.ray.get, remote.remote(*args)) for args in calls]

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()


CONNECT_TIMEOUT = "10s"


def unreachable(what: str, address: str, error: BaseException) -> str:
    """One line for a cluster that cannot be reached: the address as given (never redacted), and the cause."""
    cause = str(error).splitlines()[0][:160] if str(error) else type(error).__name__
    return (f"cannot reach the {what} at {address} ({cause}); check the address (run.scheduler, --scheduler or "
            f"${SCHEDULER_ENV}) and that it is running, or leave it unset for a local cluster")


def open_executor(name: str, scheduler: str | None = None, workers: int = 2) -> Executor:
    """The executor ``name`` (``local``, ``dask``, ``ray``); ``scheduler`` falls back to ``$MEDTL_SCHEDULER``."""
    if name not in EXECUTORS:
        raise ConfigError(f"executor '{name}': use one of {', '.join(EXECUTORS)}")
    scheduler = scheduler or os.environ.get(SCHEDULER_ENV) or None
    if scheduler:
        from ..config.sections import scheduler_address

        try:
            scheduler = scheduler_address(scheduler)
        except ValueError as error:
            raise ConfigError(f"scheduler: {error}") from None
    if name == "local":
        return Executor()
    return (DaskExecutor if name == "dask" else RayExecutor)(scheduler, workers)
