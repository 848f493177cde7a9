"""``cross_validate``: the cross-validation engine. Arms x folds into a run folder; nothing else.

It knows no manifest, report or command line: it is given arms, prepared cases, folds and
a ``RunDir`` (a top-level run folder or a folder nested in one, ``RunDir.child(...)``) and
returns one ``ArmResult`` per arm. ``medtl cv`` prepares the cases and writes the outputs
around it; a hyper-parameter search calls it again on each outer training fold with a child
folder. Whatever calls it, the folder behaves the same:

- ``splits.csv`` and ``arms/<arm>/config.yaml`` are written on the first call and checked on
  every later one: a re-run with other folds or another arm config is refused, never mixed;
- each (arm, fold) writes an epoch checkpoint while training and ``done.json`` when finished,
  so a killed call resumes to the same numbers (``run_fold``);
- an extra arm whose published weights are unavailable is skipped, visibly; the main arm's
  absence is an error.
"""

from __future__ import annotations

import logging
from typing import Callable, Sequence

from ..arms import Arm
from ..config import config_differences, load_config
from ..data.dataset import PreparedCase
from ..data.splits import Fold
from ..errors import RunMismatchError, WeightsUnavailableError
from ..results import ArmResult, FoldResult
from ..rundir import RunDir
from ..tasks import task_of
from ..train import distributed as ddp
from ..train.methods import method_class
from .run_state import split_rows

log = logging.getLogger("medtl")

# settings that change no result: they may differ when a folder is resumed
_NEUTRAL_KEYS = ("card.", "track", "tracking.", "run.")


class Listener:
    """What a cross-validation tells its caller: log lines, warnings, progress, epochs and finished folds.

    The default writes lines to the folder's ``log.txt`` and warnings to the ``medtl`` logger;
    ``medtl cv`` adds its progress bar and experiment trackers by overriding the hooks.
    """

    def __init__(self, store: RunDir | None = None):
        self.store = store

    def line(self, text: str) -> None:
        """One plain line for the run's log."""
        if self.store is not None:
            self.store.log(text)

    def warn(self, text: str) -> None:
        """A fact the user must see (a skipped arm, a fallback)."""
        self.line(text)
        log.warning(text)

    def advance(self, amount: float, text: str | None = None) -> None:
        """Progress: ``amount`` epochs done."""

    def skip(self, kind: str, units: float | None = None) -> None:
        """Planned epochs of ``kind`` (an arm's name) that will not run after all: a skipped arm (all of them)."""

    def callbacks(self, label: str, epochs: int, metric: str | None = None, kind: str | None = None):
        """``(on_epoch, on_batch)`` of one (arm, fold)'s training loop; ``kind`` groups its epochs for an ETA."""
        def on_epoch(record: dict) -> None:
            self.advance(0)

        def on_batch(step: int, steps: int) -> None:
            self.advance(1 / steps)

        return on_epoch, on_batch

    def epoch(self, unit: str, record: dict) -> None:
        """One finished epoch of ``unit`` (``<arm>/repeat<R>_fold<K>``)."""

    def fold_finished(self, unit: str, result: FoldResult) -> None:
        """A finished (or already finished) unit."""

    def arm_finished(self, result: ArmResult) -> None:
        """Every fold of an arm is finished (its notes are in ``result.notes``)."""


def check_store(store: RunDir, arms: Sequence[Arm], cases: Sequence[PreparedCase], folds: Sequence[Fold]) -> None:
    """Record the folds and the arms' configs in ``store`` on the first call; refuse a later call whose folds
    or arm configs differ (results of different settings are never mixed in one folder)."""
    rows = split_rows(cases, list(folds))
    wanted = sorted((r["case_id"], int(r["repeat"]), int(r["fold"]), r.get("role", "val")) for r in rows)
    if store.splits.exists():
        stored = sorted((r["case_id"], r["repeat"], r["fold"], r.get("role") or "val") for r in store.read_splits())
        if stored != wanted:
            raise RunMismatchError(f"{store.root} holds folds that differ from the ones given (its splits.csv); "
                                   "use a new folder (or delete this one) so that results of different splits "
                                   "are never mixed")
    else:
        store.write_splits(rows)
    for arm in arms:
        path = store.arm_config_path(arm.name)
        if path.is_file():
            differs = [k for k in config_differences(load_config(path, check_paths=False), arm.config)
                       if not k.startswith(_NEUTRAL_KEYS)]
            if differs:
                raise RunMismatchError(f"{store.root}: arm '{arm.name}' was trained with another config "
                                       f"({', '.join(differs[:8])} differ); use a new folder (or delete this one)")
        else:
            store.write_arm_config(arm.name, arm.config)


def cross_validate(arms: Sequence[Arm], cases: Sequence[PreparedCase], folds: Sequence[Fold], store: RunDir, *,
                   class_names, arm_cases: dict[str, list[PreparedCase]] | None = None,
                   pretrained: Callable[[Arm], str] | None = None,
                   targets: Callable[[Arm, list[PreparedCase]], list | None] | None = None,
                   held_out_site: bool = False, listener: Listener | None = None,
                   engine=None) -> dict[str, ArmResult]:
    """Train and score every arm on every fold (or resume them) in ``store``; returns ``{arm: ArmResult}``.

    ``cases`` are the prepared cases the folds index (``medtl.data.dataset.prepare_cases``);
    ``arm_cases`` the same cases prepared with an arm's own data settings, in the same order.
    ``pretrained(arm)`` gives the checkpoint an arm starts from (default: its
    ``model.pretrained``; ``medtl cv`` resolves source stages here). ``targets(arm, scored)``
    gives a domain-adaptation arm its unlabelled target images for one fold.
    ``held_out_site``: the folds hold out whole sites (leave-one-site-out).
    ``engine`` (``config.run``): with ``executor`` other than ``local`` the unfinished units are
    trained on that cluster engine first (``store`` must hold the run's ``config.yaml``).
    Arms are returned in the order given, skipped arms left out (and reported to ``listener``).
    """
    listener = listener or Listener(store)
    resolve = pretrained or (lambda arm: arm.config.model.pretrained)
    arm_cases = arm_cases or {}
    check_store(store, arms, cases, folds)
    if engine is not None and engine.executor != "local":
        _dispatch(arms, folds, store, resolve, engine)
    results: dict[str, ArmResult] = {}
    for arm in arms:
        try:
            results[arm.name] = _cross_validate_arm(arm, cases, arm_cases.get(arm.name, list(cases)), folds, store,
                                                    class_names, resolve, targets, held_out_site, listener)
        except WeightsUnavailableError as exc:
            if arm.required:
                raise
            listener.warn(f"arm '{arm.name}' skipped: {exc}")
            listener.skip(arm.name)
    return results


def _cross_validate_arm(arm: Arm, cases, own: list[PreparedCase], folds, store: RunDir, class_names, resolve,
                        targets, held_out_site: bool, listener: Listener) -> ArmResult:
    from .cv_fold import arm_num_classes, run_fold
    from .cv_units import Unit

    task = task_of(arm.config)
    num_classes = arm_num_classes(arm, class_names, cases)
    epochs = method_class(arm.config).loop_epochs(arm.config)  # federated: rounds
    # resolved before the folds, also when all are finished: a source model that changed since they were
    # trained (its pool or settings) is refused, not silently mixed with the folds trained on the old one
    start = resolve(arm)
    finished: list[FoldResult] = []
    for fold in folds:
        folder = store.fold(arm.name, fold.repeat, fold.fold)
        unit = f"{arm.name}/{folder.name}"  # the trackers' name of this (arm, fold)
        if folder.done.exists():
            finished.append(folder.read_result())
            listener.fold_finished(unit, finished[-1])  # not progress: a resumed run plans only unfinished folds
            continue
        label = f"{arm.name} r{fold.repeat} fold {fold.fold}"
        report_epoch, on_batch = listener.callbacks(label, epochs, task.primary_metric, kind=arm.name)
        if ddp.active():  # torchrun: the other ranks train this unit with this process (DDP)
            ddp.broadcast(Unit(arm.name, fold.repeat, fold.fold, start))

        def on_epoch(record: dict, unit: str = unit, report_epoch=report_epoch) -> None:
            report_epoch(record)
            listener.epoch(unit, record)

        scored = [own[i] for i in fold.val]
        result = run_fold(arm, fold, folder, own, class_names, num_classes, start, on_epoch, on_batch,
                          targets=targets(arm, scored) if targets else None, held_out_site=held_out_site,
                          distributed=ddp.active())
        listener.fold_finished(unit, result)
        score = result.record[task.primary_metric]
        listener.line(f"{label} finished: {task.primary_metric} {score:.3f}" if score == score else
                      f"{label} finished: {task.primary_metric} undefined")
        finished.append(result)
    result = ArmResult(arm.name, arm.config, tuple(finished))
    listener.arm_finished(result)
    return result


def _dispatch(arms, folds, store: RunDir, resolve, engine) -> None:
    """Resolve each arm's starting weights here (source stages train once, in this process), then send the
    unfinished units to the engine. An extra arm whose published weights are not here stays local, where it is
    skipped visibly as in a sequential run."""
    from ..executors import open_executor
    from .cv_units import dispatch_units
    from .validate import weights_cached

    if not store.config.is_file():
        raise ValueError(f"a cluster engine rebuilds each unit from the run folder: {store.root} has no config.yaml")
    starts = {arm.name: resolve(arm) for arm in arms if arm.required or weights_cached(arm.config) is not False}
    executor = open_executor(engine.executor, engine.scheduler, engine.workers)
    try:
        dispatch_units(store, [a for a in arms if a.name in starts], folds, starts, executor)
    finally:
        executor.close()
