"""Tasks: what a model is trained to do, and everything that depends on it.

A ``Task`` knows its target column, loss, per-case result row, metrics and report
sections; the rest of medtl asks the task instead of testing ``config.task`` strings.
``get_task(name)`` looks one up (an unknown name fails with the closest match).
"""

from __future__ import annotations

from ..plumbing.registry import Registry
from .base import Task


def _load_builtin() -> None:
    from .classification import ClassificationTask
    from .segmentation import SegmentationTask

    for task in (ClassificationTask(), SegmentationTask()):
        TASKS.register(task.name, task)


TASKS: Registry[Task] = Registry("task", loader=_load_builtin)


def get_task(name: str) -> Task:
    """The registered task called ``name`` (``classification``, ``segmentation``)."""
    return TASKS.get(name, "task")


def task_of(config) -> Task:
    """The task of a config: a registered one, or for ``task: multitask`` one built from its ``tasks``."""
    if config.task == "multitask":
        from .multitask import MultiTask

        return MultiTask(config.tasks, config.multitask.weighting)
    return get_task(config.task)


__all__ = ["Task", "TASKS", "get_task", "task_of"]
