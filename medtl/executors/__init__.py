"""Where independent units of work run: in this process, on a Dask cluster, or on a Ray cluster.

``medtl cv`` sends (arm, fold) units and ``medtl predict`` sends shards; each unit is
resumable on its own (done markers, journals), so a lost worker costs only its unit, and
the results are merged by the same code as a sequential run.
"""

from .engines import EXECUTORS, Executor, UnitFailed, open_executor

__all__ = ["EXECUTORS", "Executor", "UnitFailed", "open_executor"]
