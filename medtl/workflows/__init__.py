"""The commands' orchestration: each module runs one command from stage packages.

``engine`` holds ``cross_validate`` (arms x folds into a run folder; nests); ``cv``,
``pretrain``, ``predict``, ``evaluate``, ``export`` run the commands around it. Stage
packages (io, data, transforms, models, tasks, train, evaluate, predict) never import from here.
"""

from __future__ import annotations

__all__ = ["cross_validate", "Listener"]


def __getattr__(name: str):
    # imported on first use: `medtl --help` must not pay for torch
    if name in __all__:
        from . import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'medtl.workflows' has no attribute {name!r}")
