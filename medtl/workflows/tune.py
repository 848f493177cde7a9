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
import sys
from pathlib import Path

from ..arms import Arm, resolve_arms, tuned_arm_name
from ..config import Config, flatten
from ..errors import ConfigError
from ..executors import open_executor
from ..plumbing.atomic import publish_folder
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
    _searched_arms(config, resolve_arms(config, check_paths=False))
    require_optuna()
    objective_of(config)


def _searched_arms(config: Config, arms: list[Arm]) -> list[Arm]:
    """The main arm and the compare arms ``tune.arms`` names (in the config's order); a name that is not a
    compare arm, or whose tuned arm's name is taken, is a ``ConfigError``."""
    import difflib

    extra = {a.name: a for a in arms[1:]}
    for name in config.tune.arms:
        if name not in extra:
            close = difflib.get_close_matches(name, list(extra), n=1, cutoff=0.5)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ConfigError(f"tune.arms names '{name}', which is not an arm of compare; {hint}the compare arms "
                              f"are {', '.join(extra) or 'none'} (the main arm '{arms[0].name}' is always searched)")
        if tuned_arm_name(name, False) in extra:
            raise ConfigError(f"arm name '{tuned_arm_name(name, False)}' is the searched '{name}' arm medtl tune adds; "
                              "rename that compare arm")
    return [arms[0], *(a for a in arms[1:] if a.name in config.tune.arms)]


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
    contexts = [SearchContext(config, arm, checked.manifest, rundir, run.cases, run.class_names, objective_of(config),
                              run.folds, is_main=index == 0)
                for index, arm in enumerate(_searched_arms(config, checked.arms))]
    for ctx in contexts:
        remember_context(ctx)
    line = search_plan(config, len(run.folds)) + (f"; also searched: {', '.join(config.tune.arms)}"
                                                   if config.tune.arms else "")
    rundir.log(line)
    log.info(line)
    run.trackers = open_trackers(rundir, config, flatten(config))
    try:
        searched = [(ctx, _search(run, ctx, progress)) for ctx in contexts]
        tuned = {ctx.tuned_name: _final_models(run, ctx, searches) for ctx, searches in searched}
        train_fixed_arms(run, checked, progress)
        fixed = dict(run.arms)
        run.arms = {**tuned, **fixed}
        summarise(run, _pairs(config, contexts, fixed))
        blocks = [tune_block(run, ctx, searches) for ctx, searches in searched]
        run.metrics["tune"] = {**blocks[0], "also_tuned": {block["tuned_arm"]: block for block in blocks[1:]}}
        write_tune_files(run, searched, blocks)
        write_outputs(run, skipped)
    except BaseException:
        run.trackers.close(finished=False)
        raise
    run.trackers.finish(run.metrics, [rundir.metrics, rundir.report])
    rundir.log("tune finished: " + "; ".join(run.verdicts))
    return run


def _pairs(config: Config, contexts: list[SearchContext], fixed: dict) -> list[tuple[str, str]]:
    """The comparisons: ``tuned`` vs the untuned main arm (the primary one); for each searched compare arm X,
    ``X-tuned`` vs X and ``tuned`` vs ``X-tuned`` (both searched the same way); then the untuned arms' own."""
    main = contexts[0]
    pairs = [(main.tuned_name, main.main.name)]
    for ctx in contexts[1:]:
        pairs += [(ctx.tuned_name, ctx.main.name), (main.tuned_name, ctx.tuned_name)]
    return pairs + default_pairs(config, fixed)


def _search(run: CVRun, ctx: SearchContext, progress: bool) -> list[OuterSearch]:
    per_fold = trials_per_fold(ctx.config)
    helper = Listener(run.rundir)  # source stages a trial's config needs are trained (or reused) here

    def start_of(params: dict) -> str:
        return pretrained_for(run, trial_arm(ctx, params), helper)

    engine = ctx.config.run
    executor = open_executor(engine.executor, engine.scheduler, engine.workers)
    searches = []
    try:
        with progress_bar(f"tuning {ctx.label}(trials)", per_fold * len(run.folds),
                          progress and sys.stderr.isatty()) as advance:
            clock = SearchClock(per_fold * len(run.folds), advance)
            for index, fold in enumerate(run.folds):
                searches.append(search_outer_fold(ctx, fold, index, start_of, executor, clock))
                found = searches[-1]
                line = (f"{ctx.label}{found.key}: best trial {found.best_number} ({ctx.objective.metric} {found.best_value:.4f} "
                        f"on the inner folds): " + ", ".join(f"{k}={v}" for k, v in found.best_params.items()))
                run.rundir.log(line)
                log.info(line)
    finally:
        executor.close()
    return searches


def _final_models(run: CVRun, ctx: SearchContext, searches: list[OuterSearch]) -> ArmResult:
    """Each outer fold's best parameters retrained on its whole training set and scored once on the outer fold;
    the fold folders are published as ``arms/tuned/`` (``arms/<arm>-tuned/``) by hard links, so the run reads like
    a cv run."""
    folds = []
    helper = Listener(run.rundir)
    name = ctx.tuned_name
    for found in searches:
        arm = Arm(name, trial_arm(ctx, found.best_params).config, True, found.best_params)
        store = run.rundir.child(f"{ctx.folder}/{found.key}/final")
        own = own_cases(arm, ctx.manifest, ctx.config, run.rundir, run.cases)
        result = cross_validate([arm], run.cases, [found.fold], store, class_names=run.class_names,
                                arm_cases={arm.name: own} if own is not None else None,
                                pretrained=lambda a: pretrained_for(run, a, helper),
                                targets=lambda a, scored: targets_for(run, a, scored),
                                held_out_site=ctx.config.cv.scheme == "leave_site_out", listener=helper)
        folds.append(result[name].folds[0])
        published = run.rundir.fold(name, found.fold.repeat, found.fold.fold)
        if not published.done.exists():
            publish_folder(store.fold(name, found.fold.repeat, found.fold.fold).path, published.path)
        score = ctx.objective.score(folds[-1].record)
        line = f"{ctx.label}{found.key}: tuned model scored once on the outer fold: {ctx.objective.metric} {score:.4f}"
        run.rundir.log(line)
        log.info(line)
    return ArmResult(name, ctx.main.config, tuple(folds))


__all__ = ["check_tunable", "outer_key", "run_tune"]
