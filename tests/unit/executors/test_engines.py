"""Executors: every unit runs, failures are reported together with the others' results kept, a missing engine
library names its extra."""

import sys

import pytest

from medtl.errors import ConfigError
from medtl.executors import UnitFailed, open_executor


def test_the_local_executor_runs_every_unit_and_reports_all_failures():
    ran = []

    def unit(i):
        ran.append(i)
        if i in (1, 3):
            raise ValueError(f"bad {i}")
        return i * 10

    executor = open_executor("local")
    assert executor.map(unit, [(0,), (2,)], ["u0", "u2"]) == [0, 20]
    with pytest.raises(UnitFailed, match=r"2 of 4 unit\(s\) failed .*u1: ValueError: bad 1; u3: ValueError: bad 3"):
        executor.map(unit, [(i,) for i in range(4)], [f"u{i}" for i in range(4)])
    assert ran == [0, 2, 0, 1, 2, 3]  # the units after a failure still ran


@pytest.mark.parametrize("name,module,extra", [("dask", "distributed", "medtl[dask]"), ("ray", "ray", "medtl[ray]")])
def test_a_missing_engine_library_names_its_extra(monkeypatch, name, module, extra):
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ConfigError, match=extra.replace("[", r"\[").replace("]", r"\]")):
        open_executor(name)


def test_an_unknown_executor_is_refused():
    with pytest.raises(ConfigError, match="local, dask, ray"):
        open_executor("slurm")
