"""Bootstrap resamples evaluated on forked workers give the values a serial loop gives, in the same order."""

from __future__ import annotations

import multiprocessing
import os
import sys

import numpy as np
import pytest

from medtl.evaluate import resamples
from medtl.evaluate.stats import paired_patient_bootstrap, patient_bootstrap_cis
from medtl.tasks.metrics import classification_metrics


def predictions(n_patients: int = 1500, seed: int = 3):
    rng = np.random.default_rng(seed)
    patients = [f"p{i}" for i in range(n_patients) for _ in range(2)]
    labels = rng.integers(0, 2, len(patients))
    score = np.clip(0.3 * labels + rng.normal(0.35, 0.2, len(patients)), 0, 1).round(2)  # ties, as real scores have
    return patients, labels, np.stack([1 - score, score], axis=1)


def test_workers_give_the_serial_intervals_exactly(monkeypatch):
    patients, labels, probs = predictions()
    every = lambda rows: classification_metrics(labels[rows], probs[rows])  # noqa: E731
    forked = []
    real_pool = multiprocessing.get_context("fork").Pool

    def counting_pool(*args, **kwargs):
        forked.append(args)
        return real_pool(*args, **kwargs)

    monkeypatch.setattr(resamples, "default_workers", lambda: 2)
    monkeypatch.setattr(resamples.multiprocessing, "get_context", lambda method: type("C", (), {
        "Pool": staticmethod(counting_pool)}))
    parallel = patient_bootstrap_cis(every, patients, n=120, seed=5)
    paired = paired_patient_bootstrap(lambda r: every(r)["auc"], lambda r: every(r)["brier"], patients, n=120, seed=5)
    assert len(forked) == 2  # both bootstraps ran on workers
    monkeypatch.setattr(resamples, "PARALLEL_FROM_ROWS", 10 ** 12)
    assert patient_bootstrap_cis(every, patients, n=120, seed=5) == parallel
    assert paired_patient_bootstrap(lambda r: every(r)["auc"], lambda r: every(r)["brier"], patients, n=120,
                                    seed=5) == paired
    assert len(forked) == 2


@pytest.mark.parametrize("why", ["daemon", "ray", "one core", "small"])
def test_serial_where_workers_cannot_or_need_not_start(monkeypatch, why):
    patients, _, _ = predictions(300 if why == "small" else 1500)
    monkeypatch.setattr(resamples, "default_workers", lambda: 1 if why == "one core" else 2)
    if why == "daemon":
        monkeypatch.setattr(resamples.multiprocessing.current_process(), "daemon", True, raising=False)
    if why == "ray":
        monkeypatch.setitem(sys.modules, "ray", type("Ray", (), {"is_initialized": staticmethod(lambda: True)}))
    where = resamples.evaluate_resamples(lambda rows: os.getpid(), [np.array([i]) for i in range(len(patients))],
                                         [np.arange(len(patients))] * (50 if why == "small" else 200))
    assert set(where) == {os.getpid()} and len(where) in (50, 200)


def test_the_same_job_forks_when_it_may(monkeypatch):
    monkeypatch.setattr(resamples, "default_workers", lambda: 2)
    where = resamples.evaluate_resamples(lambda rows: os.getpid(), [np.array([i]) for i in range(1500)],
                                         [np.arange(1500)] * 200)
    assert os.getpid() not in where and len(set(where)) == 2


def test_workers_leave_signals_to_the_parent_and_end_without_being_signalled(monkeypatch):
    """The command's SIGTERM handler (print one line, exit 143) is not a worker's: a forked worker runs the default
    handler and ignores Ctrl-C, and the pool's workers end on their own (no SIGTERM, no traceback on stderr)."""
    import signal

    monkeypatch.setattr(resamples, "default_workers", lambda: 2)
    previous = signal.signal(signal.SIGTERM, lambda *a: (_ for _ in ()).throw(RuntimeError("parent's handler")))
    try:
        seen = resamples.evaluate_resamples(
            lambda rows: (signal.getsignal(signal.SIGTERM) is signal.SIG_DFL,
                          signal.getsignal(signal.SIGINT) is signal.SIG_IGN),
            [np.array([i]) for i in range(1500)], [np.arange(1500)] * 200)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert set(seen) == {(True, True)} and len(seen) == 200
    terminated = []
    real_pool = multiprocessing.get_context("fork").Pool

    def watched_pool(*args, **kwargs):
        pool = real_pool(*args, **kwargs)
        workers = list(pool._pool)
        real_terminate = pool.terminate

        def terminate():
            terminated.extend(w.pid for w in workers if w.exitcode is None)
            real_terminate()

        pool.terminate = terminate
        return pool

    monkeypatch.setattr(resamples.multiprocessing, "get_context", lambda method: type("C", (), {
        "Pool": staticmethod(watched_pool)}))
    resamples.evaluate_resamples(lambda rows: 0, [np.array([i]) for i in range(1500)], [np.arange(1500)] * 200)
    assert terminated == []  # every worker had exited before the pool was cleaned up
