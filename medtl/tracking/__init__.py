"""Experiment tracking (``track: [mlflow, tensorboard]``): the cv run's epochs, folds and results, mirrored.

Trackers only record: nothing they do changes a result, and with ``track: []`` neither
library is imported. What each tracker has logged is kept in ``RUN/tracking.json`` (with
MLflow's run ids), so a resumed run appends to the same runs without repeating a step.
"""

from .trackers import Trackers, open_trackers, require_trackers

__all__ = ["Trackers", "open_trackers", "require_trackers"]
