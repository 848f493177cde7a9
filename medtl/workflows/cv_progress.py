"""Progress of a ``medtl cv`` run: the bar, its ETA, the epoch lines, and what the trackers and warnings receive.

The ETA counts only work that will run: the plan holds each arm's unfinished folds'
epochs and each distinct source stage's epochs; an arm skipped for missing weights or a
source stage reused from the cache is dropped from it (the bar's total shrinks), and each
kind of unit is timed on its own (``medtl.plumbing.eta``).
"""

from __future__ import annotations

import logging

from ..arms import Arm
from ..data.splits import Fold
from ..plumbing.eta import WorkEstimate
from ..rundir import RunDir
from .engine import Listener

log = logging.getLogger("medtl")


def source_kind(key: str) -> str:
    """The ETA's name for the units of one source stage."""
    return f"source {key}"


def planned_units(arms: list[Arm], folds: list[Fold], rundir: RunDir) -> dict[str, float]:
    """Epochs that will run, per kind: each arm's unfinished folds, each distinct source stage once."""
    from ..train.methods import method_class
    from .pretrain import source_key

    plan: dict[str, float] = {}
    for arm in arms:
        unfinished = sum(not rundir.fold(arm.name, f.repeat, f.fold).done.exists() for f in folds)
        plan[arm.name] = float(unfinished * method_class(arm.config).loop_epochs(arm.config))
        if arm.config.model.pretrained == "source" and arm.config.source is not None and unfinished:
            plan[source_kind(source_key(arm.config))] = float(arm.config.source.epochs)
    return plan


class Reporter(Listener):
    """Progress of a cv run: a fraction of an epoch per batch on the bar, one plain line per epoch in log.txt,
    warnings into the run's warnings, epochs and finished folds to the experiment trackers.

    Without a terminal (nohup, Slurm, a redirect) the epoch lines also go to stderr, with the ETA, unless
    ``--quiet``.
    """

    def __init__(self, run, advance, talk: bool, estimate: WorkEstimate):
        """``run``: the ``CVRun`` being trained (its folder, warnings and trackers)."""
        super().__init__(run.rundir)
        self.run, self._advance, self.talk, self.estimate = run, advance, talk, estimate
        self._finished_units = 0.0

    def line(self, text: str) -> None:
        """One plain line: log.txt always, stderr when there is no terminal to draw a bar on."""
        self.run.rundir.log(text)
        if self.talk:
            log.info(text)

    def warn(self, text: str) -> None:
        self.run.warnings.append(text)
        self.run.rundir.log(text)
        log.warning(text)

    def advance(self, amount: float, text: str | None = None) -> None:
        self._advance(amount, text) if text is not None else self._advance(amount)

    def skip(self, kind: str, units: float | None = None) -> None:
        """Planned units of ``kind`` that will not run (all of them when ``units`` is None)."""
        self.estimate.drop(kind, self.estimate.remaining.get(kind, 0.0) if units is None else units)
        self._advance(0, total=self._finished_units + self.estimate.total)

    def callbacks(self, label: str, epochs: int, metric: str | None = None, kind: str | None = None):
        """``(on_epoch, on_batch)`` for ``fit``; ``kind`` names the units for the ETA (an arm, a source stage)."""
        kind = kind or label
        progress = {"batch": 0.0, "timed": False}

        def on_batch(step: int, steps: int) -> None:
            if not progress["timed"]:  # the clock starts at the first batch: a fold's set-up is not an epoch
                self.estimate.start(kind)
                progress["timed"] = True
            progress["batch"] += 1 / steps
            self.advance(1 / steps)

        def on_epoch(record: dict) -> None:
            self.estimate.finished(kind, 1)
            self.advance(max(0.0, 1 - progress["batch"]))  # an epoch is one unit, however its batches added up
            self._finished_units += 1
            progress["batch"] = 0.0
            inner = f" inner {metric} {record['inner_score']:.3f}" if "inner_score" in record and metric else ""
            text = (f"{label} epoch {record['epoch'] + 1}/{epochs} loss {record['train_loss']:.3f}{inner} "
                    f"({record['seconds']:.1f} s)")
            self.advance(0, text)
            self.run.rundir.log(text)
            if self.talk:  # the console line also says how long the rest will take
                log.info("%s; %s", text, self.estimate.text())

        return on_epoch, on_batch

    def epoch(self, unit: str, record: dict) -> None:
        self.run.trackers.epoch(unit, record)

    def fold_finished(self, unit: str, result) -> None:
        self.run.trackers.fold(unit, result)

    def arm_finished(self, result) -> None:
        self.run.warnings += result.notes
