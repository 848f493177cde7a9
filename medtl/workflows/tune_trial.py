"""One trial of a nested search: the trial's config cross-validated on inner folds of one outer fold's
training patients, in its own nested run folder ``RUN/tune/<outer>/trial<NNNN>/``.

A trial is a unit: ``evaluate_trial`` runs it in this process, ``evaluate_trial_in_worker``
rebuilds what it needs from the run folder (a Dask or Ray worker). Both call the same
``cross_validate``, so a trial's scores are the same wherever it runs; a killed trial
resumes from its finished inner folds. Nothing a trial trains on or validates on lies
outside the outer fold's training patients (``medtl.workflows.tune_audit`` checks it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ..arms import Arm, tuned_arm_name
from ..config import Config
from ..data.dataset import PreparedCase
from ..data.splits import Fold, make_folds
from ..rundir import RunDir
from ..tasks import task_of
from ..tune import MedianRule, Objective, objective_of
from ..tune.pruning import running_means
from .cv_cases import own_cases
from .engine import Listener, cross_validate


@dataclass
class SearchContext:
    """What every trial of a run shares: the main config and arm, the run's prepared cases and the objective."""

    config: Config
    main: Arm
    manifest: Any  # medtl.data.manifest.Manifest
    rundir: RunDir
    cases: list[PreparedCase]
    class_names: Any
    objective: Objective
    folds: list[Fold] | None = None  # the outer folds (read from splits.csv when not given)
    is_main: bool = True  # False: a compare arm of tune.arms, searched the same way

    @property
    def folder(self) -> str:
        """Where this arm's search lives in the run folder: ``tune`` (main arm), ``tune/<arm>`` (a compare arm)."""
        return "tune" if self.is_main else f"tune/{self.main.name}"

    @property
    def tuned_name(self) -> str:
        """The arm of the outer-fold models: ``tuned`` or ``<arm>-tuned``."""
        return tuned_arm_name(self.main.name, self.is_main)

    @property
    def label(self) -> str:
        """Prefix of log lines: empty for the main arm, ``<arm> `` for a compare arm."""
        return "" if self.is_main else f"{self.main.name} "


@dataclass(frozen=True)
class TrialUnit:
    """One trial to run: its outer fold, number, parameters, starting weights and pruning thresholds."""

    arm: str  # the searched arm (its context is rebuilt by name on a worker)
    repeat: int
    fold: int
    number: int
    params: dict
    start: str  # the checkpoint (or keyword) the trial's models start from, resolved by the caller
    rule: MedianRule


def outer_key(fold: Fold) -> str:
    """``outer<K>`` (``repeat<R>_outer<K>`` from the second repeat on): the folder of one outer fold's search."""
    return f"outer{fold.fold}" if fold.repeat == 0 else f"repeat{fold.repeat}_outer{fold.fold}"


def outer_training(fold: Fold) -> list[int]:
    """Every case of the outer fold that is not scored: its training and its selection (validation) cases."""
    return sorted(set(fold.train) | set(fold.inner))


def inner_folds(ctx: SearchContext, fold: Fold) -> tuple[list[PreparedCase], list[Fold]]:
    """The outer fold's training cases and their patient-grouped, stratified inner folds (indices into them)."""
    task = task_of(ctx.config)
    tune = ctx.config.tune
    cases = [ctx.cases[i] for i in outer_training(fold)]
    seed = (tune.seed if tune.seed is not None else ctx.config.train.seed) + 1000 * fold.repeat + fold.fold
    folds = make_folds([c.group_key for c in cases], [task.stratum(c) for c in cases], tune.inner_folds, seed,
                       need_all_classes=task.needs_all_classes_per_fold)
    return cases, folds


def trial_store(ctx: SearchContext, fold: Fold, number: int) -> RunDir:
    """The nested run folder of one trial."""
    return ctx.rundir.child(f"{ctx.folder}/{outer_key(fold)}/trial{number:04d}")


def trial_arm(ctx: SearchContext, params: dict, threads: int | None = None) -> Arm:
    """The main arm with the trial's parameters (and a worker's thread budget when the config leaves it open)."""
    overrides = dict(params)
    if threads and ctx.config.train.threads is None:
        overrides["train.threads"] = threads
    # a trial searches nothing itself: its config has no tune section (and derives without re-checking the space)
    config = ctx.main.config.derive({**overrides, "tune": None}, where="tune trial", check_paths=False)
    return Arm(ctx.main.name, config, True, overrides)


class _Pruned(Exception):
    """Raised from the listener to stop a trial the median rule prunes (its finished folds are kept)."""


class _TrialListener(Listener):
    """Logs into the trial's folder and applies the pruning rule after each inner fold."""

    def __init__(self, store: RunDir, objective: Objective, rule: MedianRule | None, total: int):
        super().__init__(store)
        self.objective, self.rule, self.total = objective, rule, total
        self.scores: list[float] = []

    def warn(self, text: str) -> None:
        self.line(text)  # a trial's warnings stay in its folder's log

    def fold_finished(self, unit: str, result) -> None:
        self.scores.append(self.objective.score(result.record))
        step = len(self.scores) - 1
        if self.rule is not None and step < self.total - 1 and self.rule.prunes(step, running_means(self.scores)[-1]):
            self.line(f"pruned after inner fold {step}: running mean {running_means(self.scores)[-1]:.4f}")
            raise _Pruned()


def evaluate_trial(ctx: SearchContext, unit: TrialUnit, threads: int | None = None) -> dict:
    """Cross-validate the trial on its inner folds; ``{number, state, scores, seconds, error}`` (state
    ``COMPLETE``, ``PRUNED`` or ``FAIL``: a trial that cannot train is recorded, never the end of the search)."""
    began = time.monotonic()
    fold = _outer_fold(ctx, unit)
    cases, folds = inner_folds(ctx, fold)
    store = trial_store(ctx, fold, unit.number)
    listener = _TrialListener(store, ctx.objective, unit.rule if ctx.config.tune.pruning else None, len(folds))
    outcome = {"number": unit.number, "state": "COMPLETE", "error": ""}
    try:
        arm = trial_arm(ctx, unit.params, threads)
        own = own_cases(arm, ctx.manifest, ctx.config, ctx.rundir, cases)
        cross_validate([arm], cases, folds, store, class_names=ctx.class_names,
                       arm_cases={arm.name: own} if own is not None else None,
                       pretrained=lambda _: unit.start, listener=listener)
    except _Pruned:
        outcome["state"] = "PRUNED"
    except Exception as exc:  # noqa: BLE001 - a trial that cannot train is a failed trial, recorded with its error
        outcome.update(state="FAIL", error=f"{type(exc).__name__}: {exc}")
        store.log(f"trial failed: {outcome['error']}")
    return {**outcome, "scores": listener.scores, "seconds": time.monotonic() - began}


def _outer_fold(ctx: SearchContext, unit: TrialUnit) -> Fold:
    if ctx.folds is None:
        from . import run_state

        ctx.folds = run_state.folds_from_splits(ctx.rundir, ctx.cases)
    return next(f for f in ctx.folds if (f.repeat, f.fold) == (unit.repeat, unit.fold))


_CONTEXTS: dict[tuple[str, str], SearchContext] = {}  # a worker's context per (run folder, arm), built once


def remember_context(ctx: SearchContext) -> None:
    """Let trials of this run that run in this process use ``ctx`` instead of rebuilding it."""
    _CONTEXTS[(str(ctx.rundir.root), ctx.main.name)] = ctx


def evaluate_trial_in_worker(out: str, unit: TrialUnit, threads: int | None) -> dict:
    """``evaluate_trial`` in any process: the context is rebuilt from the run folder (cases from its cache) the
    first time a process meets the run."""
    ctx = _CONTEXTS.get((out, unit.arm))
    if ctx is None:
        ctx = _CONTEXTS[(out, unit.arm)] = context_from_folder(out, unit.arm)
    return evaluate_trial(ctx, unit, threads)


def context_from_folder(out: str, arm: str | None = None) -> SearchContext:
    """The search context of the run in ``out`` (config, manifest, prepared cases), as the main process had it."""
    from ..arms import resolve_arms
    from ..data.case_cache import CaseCache
    from ..data.dataset import prepare_cases
    from ..data.manifest import read_config_manifest

    rundir = RunDir(out)
    config = rundir.read_config()
    manifest = read_config_manifest(config)
    cases, _ = prepare_cases(manifest, config, CaseCache(), progress=False)
    arms = resolve_arms(config, check_paths=False)
    base = next(a for a in arms if a.name == (arm or arms[0].name))
    return SearchContext(config, base, manifest, rundir, cases, manifest.class_names, objective_of(config),
                         is_main=base.name == arms[0].name)
