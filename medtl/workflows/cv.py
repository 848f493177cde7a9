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
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..arms import Arm
from ..config import Config, dump_config, flatten
from ..data.case_cache import CaseCache
from ..data.dataset import PreparedCase, prepare_cases, preprocessing_fingerprint
from ..data.duplicates import cross_patient_duplicates
from ..data.overlap import copy_keys, possible_copy_notes
from ..data.provenance import environment, write_training_images
from ..data.splits import Fold, fixed_split, folds_from_rows, leave_site_out_folds, make_folds, read_splits_file
from ..domain.targets import TargetImage
from ..errors import ConfigError, InputError, WeightsUnavailableError
from ..evaluate.label_efficiency import label_efficiency
from ..evaluate.multiplicity import adjust_multiplicity
from ..evaluate.privacy_report import privacy_summary
from ..evaluate.sites_report import weight_warnings
from ..models.device import resolve_device
from ..plumbing.atomic import remove_orphan_temps, write_csv, write_json
from ..plumbing.eta import WorkEstimate
from ..plumbing.progress import progress_bar
from ..results import ArmResult
from ..rundir import RunDir, check_output_folder
from ..tasks import task_of
from ..tracking import Trackers, open_trackers
from ..train import distributed as ddp
from . import run_state
from .cv_calibration import calibrated_heads, calibration_enabled, calibration_notes
from .cv_cases import own_cases
from .cv_explain import explanation_summary
from .cv_metrics import arm_metrics, default_pairs, verdicts_of
from .cv_progress import Reporter, planned_units
from .cv_seeds import merge_seeds, seed_spread
from .cv_sites import site_verdicts, sites_summary
from .cv_source import pretrained_for, source_stages
from .cv_targets import load_target_images, targets_for
from .engine import cross_validate
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
    arms: dict[str, ArmResult] = field(default_factory=dict)  # the arms that ran, main arm first
    warnings: list[str] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    sources: dict = field(default_factory=dict)  # source_key -> SourceModel of every source stage the arms use
    verdicts: list[str] = field(default_factory=list)
    arm_cases: dict[str, list[PreparedCase]] = field(default_factory=dict)  # arms with their own preprocessing
    target_images: dict[str, list[TargetImage]] = field(default_factory=dict)  # arm -> adapt.target_manifest images
    mask_files: dict = field(default_factory=dict)  # case_id -> (image, mask) paths, for the explanation checks
    explanations: dict = field(default_factory=dict)  # arm -> overlay figures (base64 PNG) for the report
    trackers: Trackers = field(default_factory=lambda: Trackers([], None))  # track: [mlflow, tensorboard]
    seed_results: dict = field(default_factory=dict)  # cv.seeds: arm -> {seed: ArmResult} before merging
    notes: list[str] = field(default_factory=list)  # facts of the data that are expected (not warnings)
    manifest_rows: dict = field(default_factory=dict)  # case_id -> manifest line (joins outputs back to its rows)

    def cases_of(self, arm: str) -> list[PreparedCase]:
        """The arm's prepared cases: its own when its data settings differ from the main arm's, in the same order."""
        return self.arm_cases.get(arm, self.cases)

    @property
    def out(self) -> Path:
        """The run folder."""
        return self.rundir.root


EXPECTED_NOTES = {"NO_PIXEL_SPACING"}  # PNG/JPEG never carry a pixel spacing: 1 mm per pixel is the convention


def _make_folds(config: Config, cases: list[PreparedCase], roles: dict[str, str]) -> tuple[list[Fold], str]:
    """The folds of a new run and a line saying how they were made."""
    task = task_of(config)
    groups, strata = [c.group_key for c in cases], [task.stratum(c) for c in cases]
    scheme, file_roles, file_rows = config.cv.scheme, None, None
    if scheme == "leave_site_out":
        folds, notes = leave_site_out_folds([c.site for c in cases], groups, copy_keys(cases), strata,
                                            config.train.inner_fraction, config.train.seed,
                                            task.needs_all_classes_per_fold)
        notes += possible_copy_notes(cases, folds)
        sites = ", ".join(f"{cases[f.val[0]].site} ({len(f.val)} cases)" for f in folds)
        return folds, "; ".join([f"splits: leave one site out, {len(folds)} test sites: {sites}; the other sites' "
                                 "patients are split for model selection", *notes])
    if config.cv.splits_file is not None:
        file_roles, file_rows = read_splits_file(config.cv.splits_file, cases)
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
        folds = folds_from_rows(file_rows, groups)
        return folds, f"splits: {len(folds)} folds read from cv.splits_file {config.cv.splits_file.name}"
    folds = make_folds(groups, strata, config.cv.folds, config.train.seed, config.cv.repeats,
                       need_all_classes=task.needs_all_classes_per_fold)
    seeded = "patient ids (same folds on any machine)" if config.cv.split_seed_by == "patient_id" else "the salt"
    return folds, f"splits: {len(folds)} folds over {len(set(groups))} patient groups, keyed by {seeded}"


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


def prepare_run(config: Config, rundir: RunDir, checked: Checked, progress: bool,
                 keep_paths: bool = False) -> tuple[CVRun, list[dict]]:
    """Check the run folder against the config, prepare (or read back) the cases, check the data against the
    run's record and make (or read back) the folds; ``(run, skipped cases)``."""
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
    cases, skipped = prepare_cases(manifest, config, CaseCache(), progress, keep_paths)
    if not cases:
        raise InputError(f"no usable case in {manifest.path}; reasons: {sorted({s['reason'] for s in skipped})}")
    task_of(config).check_cases(cases, f"manifest {manifest.path.name}")
    run_state.check_data(rundir, cases, skipped, task_of(config))
    folds = _folds(rundir, config, cases, {c.case_id: c.split for c in manifest.cases})
    run_state.write_state(rundir, dump_config(config), cases, skipped, [a.name for a in arms], task_of(config))
    run = CVRun(config, rundir, manifest.class_names, cases, folds)
    run.mask_files = {c.case_id: (c.image, c.mask) for c in manifest.cases if c.mask is not None}
    run.manifest_rows = {c.case_id: c.line for c in manifest.cases}
    run.arm_cases = _prepare_arm_cases(arms, manifest, config, rundir, cases, progress, keep_paths)
    rundir.write_cache_entries(CaseCache().root, {name: {c.case_id: c.content_hash for c in arm_cases}
                                                  for name, arm_cases in [(arms[0].name, cases),
                                                                          *run.arm_cases.items()]})
    run.warnings += task_of(config).preparation_warnings(cases)
    run.warnings += [f"case {s['case_id']} skipped: {s['reason']} ({s['detail']})" for s in skipped]
    note_counts = Counter(note for c in cases for note in set(c.notes))
    counted = sorted(f"{note} in {count} case(s)" for note, count in note_counts.items())
    # what every image of a format lacks by design (PNG has no pixel spacing) is said once, as a note
    run.notes += [line for line in counted if line.split(" ")[0] in EXPECTED_NOTES]
    run.warnings += [line for line in counted if line.split(" ")[0] not in EXPECTED_NOTES]
    for line in run.notes:
        rundir.log(line)
        log.info(line)
    twins = cross_patient_duplicates(cases)
    if twins.total:
        shown = ", ".join(f"{a} ~ {b}" for a, b in twins.pairs[:5]) + (f" and {twins.total - 5} more"
                                                                        if twins.total > 5 else "")
        message = (f"{twins.total} pair(s) of identical or near-identical images are filed under different patients "
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


def run_cv(config: Config, out: str | Path, progress: bool = True, keep_paths: bool = False) -> CVRun:
    """Run (or resume) cross-validation and write every output into ``out``.

    ``keep_paths`` lets file paths into skip details and logs (local use only: paths may hold names).
    """
    # before anything is written: a config that cannot run claims no folder
    check_output_folder(out, "run")
    checked = check_experiment(config, fetch_main_weights=True)
    rundir = RunDir(out)
    run, skipped = prepare_run(config, rundir, checked, progress, keep_paths)
    load_target_images(run, checked.arms, progress)
    run.trackers = open_trackers(rundir, config, flatten(config))
    try:
        train_fixed_arms(run, checked, progress)
        summarise(run)
        write_outputs(run, skipped)
    except BaseException:
        run.trackers.close(finished=False)
        raise
    run.trackers.finish(run.metrics, [rundir.metrics, rundir.report])
    rundir.log("cv finished: " + "; ".join(run.verdicts or [f"{run.metrics['main_arm']} only"]))
    return run


def train_fixed_arms(run: CVRun, checked: Checked, progress: bool) -> None:
    """Train (or resume) every arm of the config on the run's folds, with progress and ETA; ``run.arms`` holds
    the results (training seeds merged back into their arm)."""
    arms, rundir, config = checked.arms, run.rundir, run.config
    if config.cv.scheme == "leave_site_out" and any(a.config.adapt.method != "none" and a.name not in
                                                    run.target_images for a in arms):
        note = ("adaptation arms see each held-out site's images, never its labels, while training (unsupervised "
                "domain adaptation; transductive: the test site's images were available without labels)")
        run.warnings.append(note)
        rundir.log(note)
    rundir.log(f"cv: {len(run.cases)} cases, {len(run.folds)} folds, arms {[a.name for a in arms]}")
    for name, why in checked.unavailable.items():  # said at once, not after the other arms have trained
        rundir.log(f"arm '{name}' will be skipped when its turn comes ({why}); the ETA leaves it out")
        log.info("arm '%s' will be skipped: its weights cannot be had here (the end of the run says how to import "
                 "them); the ETA leaves it out", name)
    plan = planned_units([a for a in arms if a.name not in checked.unavailable], run.folds, rundir)
    estimate = WorkEstimate(plan)
    _train_arms(run, arms, estimate, progress, config.run, checked.unavailable)
    if ddp.active():
        ddp.broadcast(None)  # the other ranks are done


def _train_arms(run: CVRun, arms: list[Arm], estimate: WorkEstimate, progress: bool, engine,
                unavailable: dict[str, str]) -> None:
    def starting_weights(arm: Arm) -> str:
        if arm.name in unavailable:  # found at the start; the engine skips the arm visibly, with this reason
            raise WeightsUnavailableError(unavailable[arm.name])
        return pretrained_for(run, arm, reporter)

    with progress_bar("cross-validation", estimate.total, progress, eta=estimate.text) as advance:
        reporter = Reporter(run, advance, talk=progress and not sys.stderr.isatty(), estimate=estimate)
        results = cross_validate(arms, run.cases, run.folds, run.rundir, class_names=run.class_names,
                                 arm_cases=run.arm_cases, pretrained=starting_weights,
                                 targets=lambda arm, scored: targets_for(run, arm, scored),
                                 held_out_site=run.config.cv.scheme == "leave_site_out", listener=reporter,
                                 engine=engine)
    run.arms, run.seed_results = merge_seeds(results)  # cv.seeds: each arm's seed arms folded back into it


def _calibration(run: CVRun) -> None:
    """Each calibrated arm's before/after figures, coverage and triage in metrics.json (warnings when coverage
    falls short)."""
    from ..evaluate.calibration_summary import calibration_summary

    sites = {c.case_id: c.site for c in run.cases}
    for name, arm in run.arms.items():
        if calibration_enabled(arm.config):
            heads = calibrated_heads(arm.config, run.class_names)
            # one prediction per case: CV repeats and training seeds repeat every case, which would shrink the CIs
            first = [r for r in arm.rows if int(r.get("repeat", 0)) == 0 and int(r.get("seed", 0)) == 0]
            blocks = {head: calibration_summary([r for r in first if r.get("task", "") == head], names,
                                                arm.config.conformal.alpha, sites, run.config.train.seed)
                      for head, names in heads.items()}
            if len(first) < len(arm.rows):
                for block in blocks.values():
                    block["summary"]["scope"] = "repeat 0 and training seed 0 (each case once)"
            run.metrics["arms"][name]["calibration"] = blocks[""]["summary"] if list(blocks) == [""] else {
                "tasks": {head: block["summary"] for head, block in blocks.items()}}
            found = [f"task {head}: {w}" if head else w for head, block in blocks.items() for w in block["warnings"]]
            for warning in [*(f"arm '{name}': {w}" for w in found),
                            *calibration_notes(name, arm.records, arm.config.conformal.alpha)]:
                run.warnings.append(warning)
                run.rundir.log(warning)


def summarise(run: CVRun, pairs: list[tuple[str, str]] | None = None) -> None:
    """Metrics, comparisons (``pairs``, default: the config's; the first is the primary one), verdicts and every
    run-level summary into ``run.metrics``."""
    task = task_of(run.config)
    main = next(iter(run.arms))
    pairs = default_pairs(run.config, run.arms) if pairs is None else pairs
    for name, arm in run.arms.items():
        for warning in task_of(arm.config).arm_warnings(name, arm.rows):
            run.warnings.insert(0, warning)
            run.rundir.log(warning)
    shapes = {name: [c.spatial_shape for c in run.cases_of(name)] for name in run.arms}
    if task.uses_mask and any(s != shapes[main] for s in shapes.values()):
        grids = {name: scoring_grid(arm.config) for name, arm in run.arms.items()}
        listed = "; ".join(f"{name}: {grid}" for name, grid in grids.items())
        warning = (f"the arms' Dice/IoU/HD95 are computed on different grids ({listed}): they are not counted on "
                   "the same voxels; `medtl evaluate` scores every arm on the original image grid")
        run.warnings.insert(0, warning)
        run.rundir.log(warning)
    run.metrics, run.verdicts = arm_metrics(run.config, run.class_names, run.arms, pairs)
    _calibration(run)
    if run.config.cv.seeds > 1:
        run.metrics["seeds"] = seed_spread(run.config, run.class_names, run.seed_results, run.metrics["comparisons"])
    run.metrics.update({"class_names": run.class_names, "n_cases": len(run.cases),
                        "n_patients": len({c.patient_key for c in run.cases}), "warnings": run.warnings,
                        "notes": run.notes})
    facts = {name: arm.method_facts for name, arm in run.arms.items() if any(arm.method_facts)}
    federated = {name: folds for name, folds in facts.items() if any(f.get("clients") for f in folds)}
    if federated:
        run.metrics["federated"] = federated
    domain = {name: folds for name, folds in facts.items() if name not in federated}
    if domain:
        run.metrics["domain_adaptation"] = domain
        run.warnings += weight_warnings(domain)
    privacy = privacy_summary(run.metrics)
    if privacy:
        run.metrics["privacy"] = privacy
    if run.config.cv.label_fractions:
        fractions = {name: arm.config.train.label_fraction for name, arm in run.arms.items()}
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
    site_verdicts(run)  # leave one site out: the mean of per-site differences, not one pooled AUC
    _state_positive_classes(run, task)
    # one primary comparison; Holm-adjusted p-values for every other one (arms, tasks, sites)
    adjust_multiplicity(run.metrics, task.primary_task if task.is_composite else None)
    run.verdicts = verdicts_of(run.metrics)


def _state_positive_classes(run: CVRun, task) -> None:
    """``positive_class`` of each binary classification (the run's, or each task's) in metrics.json; a default
    the labels do not make obvious (not 0/1 or false/true) is also a warning, so the CLI and the report say it."""
    if task.is_composite:
        specs = {spec.name: spec.positive_class for spec in run.config.tasks}
        statements = {name: sub.positive_class(run.class_names[name], specs[name]) for name, sub in task.tasks.items()}
        for name, statement in statements.items():
            if statement:
                run.metrics["tasks"][name]["positive_class"] = statement
        statements = {f"task {name}: ": s for name, s in statements.items() if s}
    else:
        statement = task.positive_class(run.class_names, run.config.data.positive_class)
        if statement:
            run.metrics["positive_class"] = statement
        statements = {"": statement} if statement else {}
    for prefix, statement in statements.items():
        if "note" in statement:
            run.warnings.insert(0, prefix + statement["note"])
            run.rundir.log(prefix + statement["note"])


def _write_predictions(run: CVRun) -> None:
    task = task_of(run.config)
    columns = ["case_id", "manifest_row", "patient_key", "fold", "arm", *task.row_key_columns, "label",
               *task.case_columns(run.class_names, [row for arm in run.arms.values() for row in arm.rows])]
    if run.config.cv.repeats > 1:
        columns.insert(3, "repeat")
    if run.config.cv.seeds > 1:
        columns.insert(3, "seed")
    site_of = {c.case_id: c.site for c in run.cases}
    if any(site_of.values()):
        columns.insert(3, "site")
    context = {"site": site_of, "manifest_row": run.manifest_rows}  # per case, from the manifest as it is now
    rows = [{k: context[k].get(row["case_id"], "") if k in context else row.get(k, "") for k in columns}
            for arm in run.arms.values() for row in arm.rows]
    write_csv(run.rundir.predictions, columns, rows)


def write_outputs(run: CVRun, skipped: list[dict]) -> None:
    """predictions.csv, metrics.json, skipped_cases.csv, env.json, training_images.json and report.html."""
    from ..evaluate.report import write_report

    rundir = run.rundir
    _write_predictions(run)
    write_json(rundir.metrics, run.metrics)
    if skipped:
        write_csv(rundir.skipped_cases, ["case_id", "manifest_row", "reason", "detail"],
                  [{**row, "manifest_row": run.manifest_rows.get(row["case_id"], "")} for row in skipped])
    weights = {name: [{"file": arm.adaptation["file"], "sha256": arm.adaptation["sha256"],
                       "source": arm.adaptation["source"]}] for name, arm in run.arms.items()}
    write_json(rundir.env, environment(run.config.train.seed, str(resolve_device(run.config.train.device)),
                                       [c.content_hash for c in run.cases], weights))
    write_training_images(rundir.training_images, run.cases)
    write_report(run)
