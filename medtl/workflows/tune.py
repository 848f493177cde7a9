"""``medtl tune``: a hyper-parameter search that never sees the folds it is scored on (nested cross-validation).

Order of work: the run is prepared exactly as ``medtl cv`` prepares it (arms, cases,
outer folds); then for each outer fold an Optuna study searches ``tune.space``, each trial
cross-validated on inner patient-grouped folds of that outer fold's training patients only
(``tune_search``, ``tune_trial``); the best parameters retrain on the whole outer training
set and are scored once on the outer fold (arm ``tuned``). The untuned main arm and the
``compare`` arms run on the same outer folds as in ``medtl cv`` (fixed, not tuned), so the
primary comparison is ``tuned`` against the untuned default, paired by patient. Outputs are
those of ``medtl cv`` plus ``tune/`` (trials.csv, audit.json, final_config.yaml, one nested
run folder per trial) and the ``tune`` block of metrics.json (docs/tune.md).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from ..arms import TUNED_ARM, Arm
from ..config import Config, flatten
from ..errors import ConfigError
from ..executors import open_executor
from ..plumbing.progress import progress_bar
from ..results import ArmResult
from ..rundir import RunDir, check_output_folder
from ..tracking import open_trackers
from ..tune import objective_of, require_optuna
from .cv import CVRun, prepare_run, summarise, train_fixed_arms, write_outputs
from .cv_cases import own_cases
from .cv_metrics import default_pairs
from .cv_source import pretrained_for
from .cv_targets import load_target_images, targets_for
from .engine import Listener, cross_validate
from .tune_outputs import tune_block, write_tune_files
from .tune_search import OuterSearch, SearchClock, search_outer_fold, trials_per_fold
from .tune_trial import SearchContext, outer_key, remember_context, trial_arm
from .validate import check_experiment

log = logging.getLogger("medtl")


def check_tunable(config: Config) -> None:
    """What ``medtl tune`` needs beyond a runnable cv config; a ``ConfigError`` before anything is written."""
    if config.tune is None:
        raise ConfigError("medtl tune needs a tune: section (tune.space: {config key: distribution}); see "
                          "docs/tune.md, or configs/sample_tune2d.yaml")
    refused = [(config.cv.seeds > 1, "cv.seeds > 1 (training replicates)"),
               (bool(config.cv.label_fractions), "cv.label_fractions (label-efficiency curves)")]
    for is_set, what in refused:
        if is_set:
            raise ConfigError(f"medtl tune does not combine with {what}: tune with one seed at full labels, then "
                              "run the final config with medtl cv")
    require_optuna()
    objective_of(config)


def search_plan(config: Config, outer_folds: int | None = None) -> str:
    """One line saying what the search will run."""
    tune, objective = config.tune, objective_of(config)
    outer = f"{outer_folds} outer fold(s)" if outer_folds else "each outer fold"
    return (f"tune: {outer} x {trials_per_fold(config)} trial(s) x {tune.inner_folds} inner folds, {tune.sampler} "
            f"sampler, {objective.direction} {objective.metric}" + (", median pruning" if tune.pruning else ""))


def run_tune(config: Config, out: str | Path, progress: bool = True, keep_paths: bool = False) -> CVRun:
    """Run (or resume) the nested search and write every output of ``medtl cv`` plus ``tune/`` into ``out``."""
    check_output_folder(out, "run")
    check_tunable(config)
    checked = check_experiment(config, fetch_main_weights=True)
    rundir = RunDir(out)
    run, skipped = prepare_run(config, rundir, checked, progress, keep_paths)
    load_target_images(run, checked.arms, progress)
    ctx = SearchContext(config, checked.arms[0], checked.manifest, rundir, run.cases, run.class_names,
                        objective_of(config), run.folds)
    remember_context(ctx)
    line = search_plan(config, len(run.folds))
    rundir.log(line)
    log.info(line)
    run.trackers = open_trackers(rundir, config, flatten(config))
    try:
        searches = _search(run, ctx, progress)
        tuned = _final_models(run, ctx, searches)
        train_fixed_arms(run, checked, progress)
        fixed = dict(run.arms)
        run.arms = {TUNED_ARM: tuned, **fixed}
        summarise(run, [(TUNED_ARM, checked.arms[0].name), *default_pairs(config, fixed)])
        run.metrics["tune"] = tune_block(run, ctx, searches)
        write_tune_files(run, ctx, searches)
        write_outputs(run, skipped)
    except BaseException:
        run.trackers.close(finished=False)
        raise
    run.trackers.finish(run.metrics, [rundir.metrics, rundir.report])
    rundir.log("tune finished: " + "; ".join(run.verdicts))
    return run


def _search(run: CVRun, ctx: SearchContext, progress: bool) -> list[OuterSearch]:
    per_fold = trials_per_fold(ctx.config)
    helper = Listener(run.rundir)  # source stages a trial's config needs are trained (or reused) here

    def start_of(params: dict) -> str:
        return pretrained_for(run, trial_arm(ctx, params), helper)

    engine = ctx.config.run
    executor = open_executor(engine.executor, engine.scheduler, engine.workers)
    searches = []
    try:
        with progress_bar("tuning (trials)", per_fold * len(run.folds), progress and sys.stderr.isatty()) as advance:
            clock = SearchClock(per_fold * len(run.folds), advance)
            for index, fold in enumerate(run.folds):
                searches.append(search_outer_fold(ctx, fold, index, start_of, executor, clock))
                found = searches[-1]
                line = (f"{found.key}: best trial {found.best_number} ({ctx.objective.metric} {found.best_value:.4f} "
                        f"on the inner folds): " + ", ".join(f"{k}={v}" for k, v in found.best_params.items()))
                run.rundir.log(line)
                log.info(line)
    finally:
        executor.close()
    return searches


def _final_models(run: CVRun, ctx: SearchContext, searches: list[OuterSearch]) -> ArmResult:
    """Each outer fold's best parameters retrained on its whole training set and scored once on the outer fold;
    the fold folders are published as ``arms/tuned/`` (hard links) so the run reads like a cv run."""
    folds = []
    helper = Listener(run.rundir)
    for found in searches:
        arm = Arm(TUNED_ARM, trial_arm(ctx, found.best_params).config, True, found.best_params)
        store = run.rundir.child(f"tune/{found.key}/final")
        own = own_cases(arm, ctx.manifest, ctx.config, run.rundir, run.cases)
        result = cross_validate([arm], run.cases, [found.fold], store, class_names=run.class_names,
                                arm_cases={arm.name: own} if own is not None else None,
                                pretrained=lambda a: pretrained_for(run, a, helper),
                                targets=lambda a, scored: targets_for(run, a, scored),
                                held_out_site=ctx.config.cv.scheme == "leave_site_out", listener=helper)
        folds.append(result[TUNED_ARM].folds[0])
        _publish(store.fold(TUNED_ARM, found.fold.repeat, found.fold.fold).path,
                 run.rundir.fold(TUNED_ARM, found.fold.repeat, found.fold.fold).path)
        score = ctx.objective.score(folds[-1].record)
        line = f"{found.key}: tuned model scored once on the outer fold: {ctx.objective.metric} {score:.4f}"
        run.rundir.log(line)
        log.info(line)
    return ArmResult(TUNED_ARM, ctx.config, tuple(folds))


def _publish(source: Path, target: Path) -> None:
    """Hard-link (or copy) a finished fold folder to ``target``, atomically (a temporary name, then a rename)."""
    import shutil

    if (target / "done.json").exists():
        return
    staging = target.with_name(f".tmp-{os.getpid()}-{target.name}")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging, copy_function=_link_or_copy)
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)


def _link_or_copy(source: str, target: str) -> None:
    import shutil

    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


__all__ = ["check_tunable", "outer_key", "run_tune"]
