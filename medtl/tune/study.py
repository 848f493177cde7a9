"""The Optuna study of one outer fold, stored in SQLite inside the run folder (resumable).

Each trial is sampled with a sampler seeded from ``(tune seed, outer fold, trial number)``:
the parameters of trial ``n`` depend only on the seed and the trials finished before it,
never on how often the search was interrupted, so a resumed search asks the same trials
as one that ran through. A trial that was running when the process died stays
``RUNNING`` in the study and is run again with its own number and parameters.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config.tune import TuneConfig
from ..errors import ConfigError
from .pruning import running_means
from .space import decode_params, grid_of, optuna_distributions


def require_optuna():
    """The ``optuna`` module, or a ``ConfigError`` naming the extra that installs it."""
    try:
        import optuna
    except ImportError:
        raise ConfigError("medtl tune needs Optuna: pip install 'medtl[tune]' (or pip install optuna)") from None
    optuna.logging.set_verbosity(logging.WARNING)
    return optuna


@dataclass(frozen=True)
class AskedTrial:
    """A trial to evaluate: its number in the study and its parameters (config values)."""

    number: int
    params: dict[str, Any]


class SearchStudy:
    """One outer fold's study: ask trials (deterministically seeded), tell results, read them back."""

    def __init__(self, path: Path, tune: TuneConfig, seed: int, outer: int, direction: str):
        optuna = require_optuna()
        self.tune, self.seed, self.outer = tune, seed, outer
        path.parent.mkdir(parents=True, exist_ok=True)
        storage = optuna.storages.RDBStorage(f"sqlite:///{path}")
        self.study = optuna.create_study(storage=storage, study_name="search", direction=direction,
                                         load_if_exists=True)
        self.distributions = optuna_distributions(tune.space)

    def _sampler(self, number: int):
        import optuna

        seed = int(np.random.SeedSequence([self.seed, self.outer, number]).generate_state(1)[0])
        if self.tune.sampler == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if self.tune.sampler == "grid":  # its seed orders the grid: one seed per study keeps the grid ids stable
            study_seed = int(np.random.SeedSequence([self.seed, self.outer]).generate_state(1)[0])
            return optuna.samplers.GridSampler(grid_of(self.tune.space), seed=study_seed)
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=self.tune.startup_trials)

    def trials(self, *states: str) -> list:
        """The study's trials (frozen), of the named states (``COMPLETE``, ``PRUNED``, ``FAIL``, ``RUNNING``)."""
        from optuna.trial import TrialState

        wanted = tuple(TrialState[s] for s in states) if states else None
        return self.study.get_trials(deepcopy=False, states=wanted)

    def interrupted(self) -> list[AskedTrial]:
        """Trials asked but never told (the process died while they ran): to run again as they were. A trial the
        process died in the middle of asking gets its parameters now, from the sampler seeded for its number."""
        out = []
        for frozen in self.trials("RUNNING"):
            params = frozen.params
            if set(params) != set(self.distributions):
                params = self._sample(frozen)
            out.append(AskedTrial(frozen.number, decode_params(self.tune.space, params)))
        return out

    def _sample(self, frozen) -> dict:
        from optuna.distributions import CategoricalDistribution, FloatDistribution
        from optuna.trial import Trial

        self.study.sampler = self._sampler(frozen.number)
        trial = Trial(self.study, frozen._trial_id)
        for name, dist in self.distributions.items():
            if isinstance(dist, CategoricalDistribution):
                trial.suggest_categorical(name, dist.choices)
            elif isinstance(dist, FloatDistribution):
                trial.suggest_float(name, dist.low, dist.high, log=dist.log)
            else:
                trial.suggest_int(name, dist.low, dist.high)
        return trial.params

    def ask(self) -> AskedTrial:
        """A new trial, sampled by a sampler seeded for its number."""
        number = len(self.study.get_trials(deepcopy=False))
        self.study.sampler = self._sampler(number)
        trial = self.study.ask(self.distributions)
        if trial.number != number:  # another process writes to this study: the seeds would not be reproducible
            raise RuntimeError(f"{self.study.study_name}: trial {trial.number} asked where {number} was expected; "
                               "is another medtl tune running on this folder?")
        return AskedTrial(trial.number, decode_params(self.tune.space, trial.params))

    def tell(self, number: int, scores: list[float], state: str, seconds: float) -> None:
        """Record a trial's inner-fold scores (running means as intermediate values) and its end state."""
        import optuna
        from optuna.trial import TrialState

        # samplers are only for asking; the grid sampler's after-trial hook would call study.stop(), which Optuna
        # refuses outside study.optimize, before the state is stored
        self.study.sampler = optuna.samplers.RandomSampler()
        trial = self._trial(number)
        for step, value in enumerate(running_means(scores)):
            if np.isfinite(value):
                trial.report(value, step)
        trial.set_user_attr("inner_scores", [float(s) for s in scores])
        trial.set_user_attr("seconds", float(seconds))
        mean = float(np.mean(scores)) if scores else float("nan")
        if state == "COMPLETE" and not np.isfinite(mean):
            state = "FAIL"  # an undefined inner score (e.g. AUC of one class) cannot be ranked
        if state == "COMPLETE":
            self.study.tell(number, mean)
        elif state == "PRUNED":
            self.study.tell(number, state=TrialState.PRUNED)
        else:
            self.study.tell(number, state=TrialState.FAIL)

    def note_error(self, number: int, error: str) -> None:
        """Keep why a trial failed (shown in trials.csv)."""
        self._trial(number).set_user_attr("error", error[:500])

    def _trial(self, number: int):
        """A running trial of this study by number (also one asked by an earlier, interrupted process)."""
        from optuna.trial import Trial

        frozen = next(t for t in self.study.get_trials(deepcopy=False) if t.number == number)
        return Trial(self.study, frozen._trial_id)

    def finished_curves(self) -> list[list[float]]:
        """Running-mean curves of the complete trials (what the median rule compares with)."""
        return [running_means(t.user_attrs.get("inner_scores", [])) for t in self.trials("COMPLETE")]

    def best(self):
        """The best complete trial (the first one on a tie), or ``None`` when no trial completed."""
        complete = self.trials("COMPLETE")
        if not complete:
            return None
        return self.study.best_trial

    def importance(self) -> dict[str, float] | None:
        """fANOVA importance of each parameter over the complete trials (``None`` when it cannot be computed:
        fewer than two complete trials or no variation in the scores)."""
        import optuna

        complete = self.trials("COMPLETE")
        if len(complete) < 2 or len({t.value for t in complete}) < 2:
            return None
        try:
            evaluator = optuna.importance.FanovaImportanceEvaluator(seed=self.seed)
            return {k: float(v) for k, v in optuna.importance.get_param_importances(
                self.study, evaluator=evaluator, normalize=True).items()}
        except (RuntimeError, ValueError):
            return None
