"""The search of one outer fold: ask trials of the Optuna study, run them (in batches of ``tune.parallel``
through the run's executor), tell their inner scores, until ``tune.trials`` (or the grid, or
``tune.timeout``) is used up. A trial left running by a killed process is run again first."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Callable

from ..data.splits import Fold
from ..errors import InputError
from ..tune import MedianRule, SearchStudy, decode_params
from ..tune.space import grid_size
from .tune_trial import SearchContext, TrialUnit, evaluate_trial_in_worker, outer_key

log = logging.getLogger("medtl")


@dataclass
class OuterSearch:
    """What one outer fold's search found."""

    fold: Fold
    key: str  # outer<K>
    study: SearchStudy
    best_number: int
    best_params: dict
    best_value: float  # the chosen trial's mean inner-fold score: what a non-nested search would report
    seconds: float
    stopped_by_timeout: bool = False


class SearchClock:
    """Trials done and the time they took, for the ETA of the whole search (every outer fold)."""

    def __init__(self, total: int, advance: Callable[..., None]):
        self.total, self.done, self.seconds, self.advance = total, 0, 0.0, advance

    def finished_before(self, trials: int) -> None:
        """``trials`` were finished by an earlier, interrupted run: they are not work left (nor timed here)."""
        if trials:
            self.total -= trials
            self.advance(0, total=self.total)

    def trial_done(self, seconds: float) -> str:
        """Count one finished trial; the time-left text."""
        self.done += 1
        self.seconds += seconds
        self.advance(1)
        left = max(self.total - self.done, 0) * self.seconds / self.done
        return f"ETA {left / 60:.1f} min" if left >= 60 else f"ETA {left:.0f} s"


def trials_per_fold(config) -> int:
    """Trials each outer fold's search runs (a grid search: at most the grid's size)."""
    tune = config.tune
    return min(tune.trials, grid_size(tune.space)) if tune.sampler == "grid" else tune.trials


def search_outer_fold(ctx: SearchContext, fold: Fold, index: int, start_of: Callable[[dict], str], executor,
                      clock: SearchClock) -> OuterSearch:
    """Run (or resume) the search of outer fold ``fold`` (the ``index``-th) and return its best trial."""
    tune, objective = ctx.config.tune, ctx.objective
    seed = tune.seed if tune.seed is not None else ctx.config.train.seed
    key = outer_key(fold)
    study = SearchStudy(ctx.rundir.child(f"{ctx.folder}/{key}").root / "study.db", tune, seed, index,
                        objective.direction)
    budget = trials_per_fold(ctx.config)
    began, timed_out = time.monotonic(), False
    pending = study.interrupted()
    clock.finished_before(min(len(study.trials()), budget) - len(pending))
    if pending:
        ctx.rundir.log(f"{ctx.label}{key}: running again {len(pending)} trial(s) a stopped search left unfinished")
    while True:
        if pending:
            batch, pending = pending, []
        else:
            asked = len(study.trials())
            if asked >= budget:
                break
            if tune.timeout is not None and time.monotonic() - began > tune.timeout:
                timed_out = True
                ctx.rundir.log(f"{ctx.label}{key}: tune.timeout ({tune.timeout:g} s) reached after {asked} trial(s)")
                break
            batch = [study.ask() for _ in range(min(tune.parallel, budget - asked))]
        rule = MedianRule.from_finished(objective.direction, study.finished_curves())
        units = [TrialUnit(ctx.main.name, fold.repeat, fold.fold, t.number, t.params, start_of(t.params), rule)
                 for t in batch]
        outcomes = executor.map(evaluate_trial_in_worker,
                                [(str(ctx.rundir.root), unit, executor.threads_per_unit) for unit in units],
                                [f"{ctx.label}{key} trial {unit.number}" for unit in units])
        for unit, outcome in zip(units, outcomes):
            undefined = [k for k, score in enumerate(outcome["scores"]) if not math.isfinite(score)]
            if outcome["state"] == "COMPLETE" and undefined:
                outcome.update(state="FAIL", error=f"{objective.metric} is undefined on inner fold(s) {undefined} (e.g. "
                                                   "one class only there): use fewer inner folds or more patients")
            if outcome["error"]:
                study.note_error(unit.number, outcome["error"])
            study.tell(unit.number, outcome["scores"], outcome["state"], outcome["seconds"])
            _say_trial(ctx, key, unit, outcome, study, clock.trial_done(outcome["seconds"]))
    best = study.best()
    if best is None:
        failed = study.trials("FAIL")
        why = failed[0].user_attrs.get("error", "an undefined inner score") if failed else "no trial ran"
        raise InputError(f"{ctx.label}outer fold {key}: no trial of the search completed ({len(failed)} failed; "
                         f"first: {why}); see {ctx.rundir.child(f'{ctx.folder}/{key}').root}")
    return OuterSearch(fold, key, study, best.number, decode_params(tune.space, best.params), float(best.value),
                       time.monotonic() - began, timed_out)


def _say_trial(ctx: SearchContext, key: str, unit: TrialUnit, outcome: dict, study: SearchStudy, eta: str) -> None:
    metric = ctx.objective.metric
    scores = outcome["scores"]
    mean = sum(scores) / len(scores) if scores else math.nan
    best = study.best()
    best_text = f"best {best.value:.4f} (trial {best.number})" if best is not None else "no complete trial yet"
    params = ", ".join(f"{k}={_short(v)}" for k, v in unit.params.items())
    state = outcome["state"].lower() + (f" ({outcome['error'][:120]})" if outcome["error"] else "")
    line = (f"{ctx.label}{key} trial {unit.number}: {params} -> inner {metric} {mean:.4f} over {len(scores)} fold(s), {state}; "
            f"{best_text}; {eta}")
    ctx.rundir.log(line)
    log.info(line)


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
