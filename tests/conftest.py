import os

import numpy as np
import pytest

from medtl.samples.synthetic import SeriesSpec, phantom_volume


def pytest_configure(config):
    """Under pytest-xdist each worker keeps to a core of its own (its subprocesses too), so N workers on N cores
    do not each start N threads and slow one another down; medtl sizes its torch threads to the cores it may use."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw") and hasattr(os, "sched_setaffinity"):
        cores = sorted(os.sched_getaffinity(0))
        count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
        if count <= len(cores):
            share = len(cores) // count
            index = int(worker[2:])
            os.sched_setaffinity(0, set(cores[index * share:(index + 1) * share]))


@pytest.fixture(scope="module")
def all_cores():
    """For a module whose test starts several processes (DDP ranks, cluster workers): while it runs, this pytest-xdist
    worker and its children may use every core, not just the worker's own (they would queue on one)."""
    if not hasattr(os, "sched_setaffinity"):
        yield
        return
    own = os.sched_getaffinity(0)
    os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    yield
    os.sched_setaffinity(0, own)


@pytest.fixture(autouse=True, scope="session")
def _isolated_salt(tmp_path_factory):
    """Keyed hashes use one test salt (also in module fixtures and subprocesses); ~/.medtl is never touched."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MEDTL_HOME", str(tmp_path_factory.getbasetemp() / "medtl_home"))
        patch.setenv("MEDTL_SALT", "test-salt")
        yield


@pytest.fixture
def ct_spec():
    """A small CT series whose geometry and values the tests know exactly."""
    return SeriesSpec(stored=phantom_volume((10, 24, 28), seed=1), spacing=(2.5, 0.7, 0.8),
                      patient_id="DOE^JOHN_12345", patient_name="DOE^JOHN")


@pytest.fixture
def oblique_spec():
    row = np.array([np.cos(0.3), np.sin(0.3), 0.0])
    col = np.array([-np.sin(0.3) * np.cos(0.4), np.cos(0.3) * np.cos(0.4), -np.sin(0.4)])
    return SeriesSpec(stored=phantom_volume((8, 20, 22), seed=2), spacing=(3.0, 0.9, 0.6),
                      row_cosine=tuple(row), column_cosine=tuple(col), origin=(10.0, -50.0, 30.0))


def expected_physical(spec: SeriesSpec) -> np.ndarray:
    n = spec.stored.shape[0]
    slopes = np.broadcast_to(np.asarray(spec.slope, dtype=float), (n,))[:, None, None]
    intercepts = np.broadcast_to(np.asarray(spec.intercept, dtype=float), (n,))[:, None, None]
    return (spec.stored * slopes + intercepts).astype(np.float32)
