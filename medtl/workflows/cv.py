"""``medtl cv``: patient-level cross-validated fine-tuning of every arm on the same folds.

Order of work: arms derived and checked, run folder checked (config), cases prepared
(cached), data and splits checked against the run's record, then each arm's folds
trained or resumed, then metrics, predictions and the report. Every refusal happens
before any training. Each (arm, fold) writes ``done.json`` when finished and an epoch
checkpoint while training, so an interrupted run resumes to the same numbers.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..arms import Arm
from ..config import Config, dump_config, flatten
from ..data.dataset import PreparedCase, prepare_cases, preprocessing_fingerprint
from ..data.duplicates import cross_patient_duplicates
from ..data.provenance import environment, write_training_images
from ..data.splits import Fold, fixed_split, leave_site_out_folds, make_folds
from ..domain.targets import TargetImage
from ..errors import ConfigError, InputError, WeightsUnavailableError
from ..evaluate.label_efficiency import label_efficiency
from ..evaluate.sites_report import weight_warnings
from ..evaluate.summary import arm_summary, compare_arms, verdict_line
from ..models.device import resolve_device
from ..plumbing.atomic import read_csv, remove_orphan_temps, write_csv, write_json
from ..plumbing.progress import progress_bar
from ..rundir import RunDir
from ..tasks import task_of
from ..tracking import Trackers, open_trackers
from ..train import distributed as ddp
from . import run_state
from .cv_cases import own_cases
from .cv_explain import explanation_summary
from .cv_fold import run_fold
from .cv_sites import comparison_pairs, sites_summary
from .cv_source import pretrained_for, source_epochs, source_stages
from .cv_targets import load_target_images, targets_for
from .cv_tasks import task_results, task_verdicts
from .cv_units import Unit
from .validate import Checked, check_experiment

log = logging.getLogger("medtl")


@dataclass
class CVRun:
    """Everything the outputs and the report are made from."""

    config: Config
    rundir: RunDir
    class_names: list[str]
    cases: list[PreparedCase]
    folds: list[Fold]
    arms: dict[str, dict] = field(default_factory=dict)  # name -> {"folds": [...], "rows": [...], ...}
    warnings: list[str] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    sources: dict = field(default_factory=dict)  # source_key -> SourceModel of every source stage the arms use
    verdicts: list[str] = field(default_factory=list)
    arm_cases: dict[str, list[PreparedCase]] = field(default_factory=dict)  # arms with their own preprocessing
    target_images: dict[str, list[TargetImage]] = field(default_factory=dict)  # arm -> adapt.target_manifest images
    mask_files: dict = field(default_factory=dict)  # case_id -> (image, mask) paths, for the explanation checks
    explanations: dict = field(default_factory=dict)  # arm -> overlay figures (base64 PNG) for the report
    trackers: Trackers = field(default_factory=lambda: Trackers([], None))  # track: [mlflow, tensorboard]

    def cases_of(self, arm: str) -> list[PreparedCase]:
        """The arm's prepared cases: its own when its data settings differ from the main arm's, in the same order."""
        return self.arm_cases.get(arm, self.cases)

    @property
    def out(self) -> Path:
        """The run folder."""
        return self.rundir.root


class Reporter:
    """Progress of a run: a fraction of an epoch per batch on the bar, one plain line per epoch in log.txt.

    Without a terminal (nohup, Slurm, a redirect) the epoch lines also go to stderr, unless ``--quiet``.
    """

    def __init__(self, rundir: RunDir, advance, talk: bool):
        self.rundir, self.advance, self.talk = rundir, advance, talk

    def line(self, text: str) -> None:
        """One plain line: log.txt always, stderr when there is no terminal to draw a bar on."""
        self.rundir.log(text)
        if self.talk:
            log.info(text)

    def callbacks(self, label: str, epochs: int, metric: str | None = None):
        """``(on_epoch, on_batch)`` for ``fit``."""
        def on_batch(step: int, steps: int) -> None:
            self.advance(1 / steps)

        def on_epoch(record: dict) -> None:
            inner = f" inner {metric} {record['inner_score']:.3f}" if "inner_score" in record and metric else ""
            text = (f"{label} epoch {record['epoch'] + 1}/{epochs} loss {record['train_loss']:.3f}{inner} "
                    f"({record['seconds']:.1f} s)")
            self.advance(0, text)
            self.line(text)

        return on_epoch, on_batch


def _roles_from_file(path: Path, cases: list[PreparedCase]) -> tuple[list[str] | None, list[dict] | None]:
    """``cv.splits_file``: per-case roles (a ``split`` column) or fold rows (``fold``, optional ``repeat``)."""
    columns, rows = read_csv(path)
    if "case_id" not in columns or not ({"split", "fold"} & set(columns)):
        raise InputError(f"cv.splits_file {path} needs a case_id column and a split (train/val/test) or fold column; "
                         f"it has {columns}")
    by_id = {r["case_id"]: r for r in rows}
    missing = [c.case_id for c in cases if c.case_id not in by_id]
    if missing:
        raise InputError(f"cv.splits_file {path} does not list {len(missing)} case(s) of the manifest (e.g. "
                         f"{missing[0]}); case ids must match (give the manifest a case_id column, or keep the salt)")
    if "split" in columns:
        return [by_id[c.case_id]["split"].strip().lower() for c in cases], None
    return None, [{"case_id": c.case_id, "patient_key": c.patient_key, "repeat": int(by_id[c.case_id].get("repeat") or 0),
                   "fold": int(by_id[c.case_id]["fold"])} for c in cases]


def _make_folds(config: Config, cases: list[PreparedCase], roles: dict[str, str]) -> tuple[list[Fold], str]:
    """The folds of a new run and a line saying how they were made."""
    task = task_of(config)
    groups, strata = [c.group_key for c in cases], [task.stratum(c) for c in cases]
    scheme, file_roles, file_rows = config.cv.scheme, None, None
    if scheme == "leave_site_out":
        folds, notes = leave_site_out_folds([c.site for c in cases], groups, [c.image_hash for c in cases], strata,
                                            config.train.inner_fraction, config.train.seed,
                                            task.needs_all_classes_per_fold)
        sites = ", ".join(f"{cases[f.val[0]].site} ({len(f.val)} cases)" for f in folds)
        return folds, "; ".join([f"splits: leave one site out, {len(folds)} test sites: {sites}; the other sites' "
                                 "patients are split for model selection", *notes])
    if config.cv.splits_file is not None:
        file_roles, file_rows = _roles_from_file(config.cv.splits_file, cases)
    case_roles = file_roles or [roles.get(c.case_id, "") for c in cases]
    if scheme == "auto":
        scheme = "fixed" if any(case_roles) else "kfold"
    if scheme == "fixed":
        if not all(case_roles):
            raise ConfigError("cv.scheme is fixed but not every case has a split (train/val/test): add a split "
                              "column to the manifest or give cv.splits_file")
        fold = fixed_split(groups, case_roles, strata, task.needs_all_classes_per_fold)
        source = "cv.splits_file" if file_roles else "the manifest's split column"
        return [fold], (f"splits: fixed, from {source}: {len(fold.train)} train, {len(fold.inner)} val (model "
                        f"selection), {len(fold.val)} test (scored once)")
    if file_rows is not None:
        folds = _folds_from_rows(file_rows, cases)
        return folds, f"splits: {len(folds)} folds read from cv.splits_file {config.cv.splits_file.name}"
    folds = make_folds(groups, strata, config.cv.folds, config.train.seed, config.cv.repeats,
                       need_all_classes=task.needs_all_classes_per_fold)
    seeded = "patient ids (same folds on any machine)" if config.cv.split_seed_by == "patient_id" else "the salt"
    return folds, f"splits: {len(folds)} folds over {len(set(groups))} patient groups, keyed by {seeded}"


def _folds_from_rows(rows: list[dict], cases: list[PreparedCase]) -> list[Fold]:
    groups = [c.group_key for c in cases]
    folds = []
    for repeat, fold in sorted({(r["repeat"], r["fold"]) for r in rows}):
        val = [i for i, r in enumerate(rows) if (r["repeat"], r["fold"]) == (repeat, fold)]
        held_out = set(val)
        train = [i for i, r in enumerate(rows) if r["repeat"] == repeat and i not in held_out]
        if set(groups[i] for i in val) & set(groups[i] for i in train):
            raise InputError(f"cv.splits_file puts a patient on both sides of fold {fold} (repeat {repeat}); "
                             "refusing to run a leaky split")
        folds.append(Fold(repeat, fold, tuple(train), tuple(val)))
    return folds


def _folds(rundir: RunDir, config: Config, cases: list[PreparedCase], roles: dict[str, str]) -> list[Fold]:
    """Folds from ``splits.csv`` when the run has one; otherwise made now, written, and read back."""
    if not rundir.splits.exists():
        folds, line = _make_folds(config, cases, roles)
        rundir.write_splits(run_state.split_rows(cases, folds))
        rundir.log(line)
        log.info(line)
    else:
        rundir.log("splits read back from splits.csv")
    return run_state.folds_from_splits(rundir, cases)


def _prepare_run(config: Config, rundir: RunDir, checked: Checked, progress: bool,
                 keep_paths: bool = False) -> tuple[CVRun, list[dict]]:
    arms, manifest = checked.arms, checked.manifest
    run_state.check_config(rundir, config)
    rundir.root.mkdir(parents=True, exist_ok=True)
    orphans = remove_orphan_temps(rundir.root)
    if orphans:
        rundir.log(f"removed {orphans} temporary file(s) left by an interrupted run")
    rundir.write_config(config)
    for arm in arms:
        rundir.write_arm_config(arm.name, arm.config)
    for note in checked.notes:
        rundir.log(note)
    cases, skipped = prepare_cases(manifest, config, rundir.cache, progress, keep_paths)
    if not cases:
        raise InputError(f"no usable case in {manifest.path}; reasons: {sorted({s['reason'] for s in skipped})}")
    run_state.check_data(rundir, cases, skipped)
    folds = _folds(rundir, config, cases, {c.case_id: c.split for c in manifest.cases})
    run_state.write_state(rundir, dump_config(config), cases, skipped, [a.name for a in arms])
    run = CVRun(config, rundir, manifest.class_names, cases, folds)
    run.mask_files = {c.case_id: (c.image, c.mask) for c in manifest.cases if c.mask is not None}
    run.arm_cases = _prepare_arm_cases(arms, manifest, config, rundir, cases, progress, keep_paths)
    run.warnings += [f"case {s['case_id']} skipped: {s['reason']} ({s['detail']})" for s in skipped]
    run.warnings += sorted({f"{note} in {sum(note in c.notes for c in cases)} case(s)"
                            for c in cases for note in c.notes})
    twins = cross_patient_duplicates(cases)
    if twins:
        shown = ", ".join(f"{a} ~ {b}" for a, b in twins[:5]) + (f" and {len(twins) - 5} more" if len(twins) > 5 else "")
        message = (f"{len(twins)} pair(s) of identical or near-identical images are filed under different patients "
                   f"({shown}): if they are the same person, patient-level folds leak; check the patient ids")
        run.warnings.insert(0, message)
        rundir.log(message)
        log.warning(message)
    return run, skipped


def _prepare_arm_cases(arms: list[Arm], manifest, config: Config, rundir: RunDir, cases: list[PreparedCase],
                       progress: bool, keep_paths: bool) -> dict[str, list[PreparedCase]]:
    """Cases prepared with each arm's own data settings (e.g. a resize arm beside a patch-mode main arm)."""
    out: dict[str, list[PreparedCase]] = {}
    for arm in arms[1:]:
        if preprocessing_fingerprint(arm.config) != preprocessing_fingerprint(config):
            rundir.log(f"arm '{arm.name}' has its own data settings: preparing its cases")
        own = own_cases(arm, manifest, config, rundir, cases, progress, keep_paths)
        if own is not None:
            out[arm.name] = own
    return out


def scoring_grid(config: Config) -> str:
    """The grid a segmentation arm's cv metrics are computed on (voxels differ between grids)."""
    data = config.data
    spacing = f" at {data.spacing} mm" if data.dims == 3 and data.spacing else " at the image's own spacing"
    return f"resized to {data.image_size}{spacing}" if data.mode == "resize" else f"native extent{spacing}"


def _dispatch(run: CVRun, arms: list[Arm], reporter: Reporter, engine) -> None:
    """Resolve each arm's starting weights here (source stages train once, in this process), then send the
    unfinished units to the engine. An extra arm whose published weights are not here stays local, where it is
    skipped visibly as in a sequential run."""
    from ..executors import open_executor
    from .cv_units import dispatch_units
    from .validate import weights_cached

    pretrained = {arm.name: pretrained_for(run, arm, reporter) for arm in arms
                  if arm.required or weights_cached(arm.config) is not False}
    executor = open_executor(engine.executor, engine.scheduler, engine.workers)
    try:
        dispatch_units(run, arms, pretrained, executor)
    finally:
        executor.close()


def _train_arm(run: CVRun, arm: Arm, num_classes: int, reporter: Reporter) -> None:
    task = task_of(arm.config)
    if isinstance(num_classes, dict):  # multitask: a single-task control arm has one of the run's tasks
        num_classes = {name: num_classes[name] for name in task.tasks}
    epochs = arm.config.train.epochs
    finished = []
    # resolved before the folds, also when all are finished: a source model that changed since they were
    # trained (its pool or settings) is refused, not silently mixed with the folds trained on the old one
    pretrained = pretrained_for(run, arm, reporter)
    for fold in run.folds:
        folder = run.rundir.fold(arm.name, fold.repeat, fold.fold)
        unit = f"{arm.name}/{folder.name}"  # the trackers' name of this (arm, fold)
        if folder.done.exists():
            finished.append(folder.read_done())
            run.trackers.fold(unit, finished[-1])
            reporter.advance(epochs)
            continue
        label = f"{arm.name} r{fold.repeat} fold {fold.fold}"
        report_epoch, on_batch = reporter.callbacks(label, epochs, task.primary_metric)
        if ddp.active():  # torchrun: the other ranks train this unit with this process (DDP)
            ddp.broadcast(Unit(arm.name, fold.repeat, fold.fold, pretrained))

        def on_epoch(record: dict, unit: str = unit, report_epoch=report_epoch) -> None:
            report_epoch(record)
            run.trackers.epoch(unit, record)

        cases = run.cases_of(arm.name)
        done = run_fold(arm, fold, folder, cases, run.class_names, num_classes, pretrained, on_epoch, on_batch,
                        targets=targets_for(run, arm, [cases[i] for i in fold.val]),
                        held_out_site=run.config.cv.scheme == "leave_site_out", distributed=ddp.active())
        run.trackers.fold(unit, done)
        score = done["record"][task.primary_metric]
        reporter.line(f"{label} finished: {task.primary_metric} {score:.3f}" if score == score else
                      f"{label} finished: {task.primary_metric} undefined")
        finished.append(done)
    run.warnings += [note for f in finished for note in f.get("notes", [])]
    run.arms[arm.name] = {"folds": [f["record"] for f in finished], "rows": [r for f in finished for r in f["rows"]],
                          "histories": [f["history"] for f in finished], "adaptation": finished[0]["adaptation"],
                          "inner_rows": [f.get("inner_rows", []) for f in finished],
                          "domain": [f.get("domain", {}) for f in finished], "config": arm.config}


def run_cv(config: Config, out: str | Path, progress: bool = True, keep_paths: bool = False) -> CVRun:
    """Run (or resume) cross-validation and write every output into ``out``.

    ``keep_paths`` lets file paths into skip details and logs (local use only: paths may hold names).
    """
    # before anything is written: a config that cannot run claims no folder
    checked = check_experiment(config, fetch_main_weights=True)
    arms = checked.arms
    rundir = RunDir(out)
    run, skipped = _prepare_run(config, rundir, checked, progress, keep_paths)
    num_classes = task_of(config).num_classes(run.class_names, run.cases)
    load_target_images(run, arms, progress)
    if config.cv.scheme == "leave_site_out" and any(a.config.adapt.method != "none" and a.name not in
                                                    run.target_images for a in arms):
        note = ("adaptation arms see each held-out site's images, never its labels, while training (unsupervised "
                "domain adaptation; transductive: the test site's images were available without labels)")
        run.warnings.append(note)
        rundir.log(note)
    rundir.log(f"cv: {len(run.cases)} cases, {len(run.folds)} folds, arms {[a.name for a in arms]}")
    total = sum(a.config.train.epochs for a in arms) * len(run.folds)
    total += source_epochs(arms)
    run.trackers = open_trackers(rundir, config, flatten(config))
    try:
        _train_arms(run, arms, num_classes, total, progress, config.run)
        if ddp.active():
            ddp.broadcast(None)  # the other ranks are done
        _summarise(run)
        _write_outputs(run, skipped)
    except BaseException:
        run.trackers.close(finished=False)
        raise
    run.trackers.finish(run.metrics, [rundir.metrics, rundir.report])
    rundir.log("cv finished: " + "; ".join(run.verdicts or [f"{run.metrics['main_arm']} only"]))
    return run


def _train_arms(run: CVRun, arms: list[Arm], num_classes, total: float, progress: bool, engine) -> None:
    rundir = run.rundir
    with progress_bar("cross-validation", total, progress) as advance:
        reporter = Reporter(rundir, advance, talk=progress and not sys.stderr.isatty())
        if engine.executor != "local":  # units train on the engine; the loop below then reads their results
            _dispatch(run, arms, reporter, engine)
        for arm in arms:
            try:
                _train_arm(run, arm, num_classes, reporter)
            except WeightsUnavailableError as exc:
                if arm.required:
                    raise
                message = f"arm '{arm.name}' skipped: {exc}"
                run.warnings.append(message)
                rundir.log(message)
                log.warning(message)
                reporter.advance(arm.config.train.epochs * len(run.folds))


def _summarise(run: CVRun) -> None:
    task, boot, seed = task_of(run.config), run.config.cv.bootstrap, run.config.train.seed
    main = next(iter(run.arms))
    pairs = comparison_pairs(run)
    for name, arm in run.arms.items():
        for warning in task_of(arm["config"]).arm_warnings(name, arm["rows"]):
            run.warnings.insert(0, warning)
            run.rundir.log(warning)
    shapes = {name: [c.spatial_shape for c in run.cases_of(name)] for name in run.arms}
    if task.uses_mask and any(s != shapes[main] for s in shapes.values()):
        grids = {name: scoring_grid(arm["config"]) for name, arm in run.arms.items()}
        listed = "; ".join(f"{name}: {grid}" for name, grid in grids.items())
        warning = (f"the arms' Dice/IoU/HD95 are computed on different grids ({listed}): they are not counted on "
                   "the same voxels; `medtl evaluate` scores every arm on the original image grid")
        run.warnings.insert(0, warning)
        run.rundir.log(warning)
    if run.config.task == "multitask":
        tasks = task_results(run, pairs)
        first = tasks[task.primary_task]
        run.metrics = {"task": "multitask", "primary_task": task.primary_task,
                       "primary_metric": first["primary_metric"], "main_arm": main, "summary": first["summary"],
                       "folds": first["folds"], "arms": first["arms"], "comparisons": first["comparisons"],
                       "tasks": tasks, "loss_weights": run.config.multitask.weighting}
        run.verdicts = task_verdicts(tasks)
    else:
        names = run.class_names
        arms = {name: arm_summary(run.config.task, arm["folds"], arm["rows"], names, boot, seed)
                for name, arm in run.arms.items()}
        comparisons = [compare_arms(run.config.task, a, run.arms[a]["rows"], b, run.arms[b]["rows"], names, boot,
                                    seed) for a, b in pairs]
        run.metrics = {"task": run.config.task, "primary_metric": task.primary_metric, "main_arm": main,
                       "summary": arms[main]["summary"], "folds": arms[main]["folds"], "arms": arms,
                       "comparisons": comparisons}
        run.verdicts = [verdict_line(c) for c in comparisons]
    run.metrics.update({"class_names": run.class_names, "n_cases": len(run.cases),
                        "n_patients": len({c.patient_key for c in run.cases}), "warnings": run.warnings})
    domain = {name: arm["domain"] for name, arm in run.arms.items() if any(arm["domain"])}
    if domain:
        run.metrics["domain_adaptation"] = domain
        run.warnings += weight_warnings(domain)
    if run.config.cv.label_fractions:
        fractions = {name: arm["config"].train.label_fraction for name, arm in run.arms.items()}
        run.metrics["label_efficiency"] = label_efficiency(run.metrics, fractions)
    explanations = explanation_summary(run)
    if explanations:
        run.metrics["explanations"] = explanations
    stages = source_stages(run)
    if stages:
        run.metrics["source_stages"] = stages
        run.warnings += [n for stage in stages for n in stage["notes"] if n not in run.warnings]
    sites = sites_summary(run)
    if sites is not None:
        run.metrics["sites"] = sites


def _write_predictions(run: CVRun) -> None:
    task = task_of(run.config)
    columns = ["case_id", "patient_key", "fold", "arm", *task.row_key_columns, "label",
               *task.result_columns(run.class_names)]
    if run.config.cv.repeats > 1:
        columns.insert(2, "repeat")
    site_of = {c.case_id: c.site for c in run.cases}
    if any(site_of.values()):
        columns.insert(2, "site")
    rows = [{k: row.get(k, "") if k != "site" else site_of[row["case_id"]] for k in columns}
            for arm in run.arms.values() for row in arm["rows"]]
    write_csv(run.rundir.predictions, columns, rows)


def _write_outputs(run: CVRun, skipped: list[dict]) -> None:
    from ..evaluate.report import write_report

    rundir = run.rundir
    _write_predictions(run)
    write_json(rundir.metrics, run.metrics)
    if skipped:
        write_csv(rundir.skipped_cases, ["case_id", "reason", "detail"], skipped)
    weights = {name: [{"file": arm["adaptation"]["file"], "sha256": arm["adaptation"]["sha256"],
                       "source": arm["adaptation"]["source"]}] for name, arm in run.arms.items()}
    write_json(rundir.env, environment(run.config.train.seed, str(resolve_device(run.config.train.device)),
                                       [c.content_hash for c in run.cases], weights))
    write_training_images(rundir.training_images, [c.image_hash for c in run.cases])
    write_report(run)
