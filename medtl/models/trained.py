"""A finished ``medtl cv`` run used as a predictor: its resolved config and fold models."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..arms import is_tuned_arm
from ..calibration.outputs import OutputCalibration, output_calibration
from ..config import Config
from ..errors import InputError
from ..plumbing.hashing import sha256_file, sha256_text
from ..rundir import RunDir
from ..tasks import Task, task_of
from .checkpoint import read_metadata


@dataclass
class Member:
    """One fold model of the run."""

    name: str  # e.g. "repeat0_fold2"
    repeat: int
    fold: int
    path: Path  # model.safetensors
    metadata: dict  # backbone, dims, in_channels, num_classes, task, class_names, selected_epoch
    record: dict  # the fold's record from done.json (n_train, metrics on its validation fold, ...)


@dataclass
class TrainedRun:
    """The models of one arm of a run and the config that preprocessed their training data."""

    path: Path
    config: Config
    arm: str
    members: list[Member]
    class_names: list[str] | dict[str, list[str]]  # multitask: per task
    num_classes: int | dict[str, int]  # multitask: per task
    model_id: str
    calibration: OutputCalibration | None = None  # temperatures per member, prediction sets (calibrate/conformal)
    task_calibration: dict[str, OutputCalibration] = field(default_factory=dict)  # multitask: per classification task

    @property
    def task(self) -> Task:
        """The run's ``Task``: predict, evaluate, export and the model card ask it, never compare names."""
        return task_of(self.config)

    @property
    def task_name(self) -> str:
        """The task's name in the config (``classification``, ``segmentation``, ``multitask``)."""
        return self.task.name

    @property
    def task_kinds(self) -> dict[str, str]:
        """Multi-task runs: ``{task: classification | segmentation}`` in head order (empty otherwise)."""
        return dict(self.task.kinds) if self.task.is_composite else {}

    def heads(self) -> dict[str, tuple[Task, object, object]]:
        """``{head: (task, class names, classes)}`` of the models (a single task's one head is ``""``)."""
        return self.task.heads(self.class_names, self.num_classes)

    def head_calibrations(self) -> dict[str, OutputCalibration]:
        """``{head: calibration}`` of every calibrated head (``""``: a classification run's one head)."""
        return {"": self.calibration} if self.calibration is not None else dict(self.task_calibration)

    has_layers = True  # the members are PyTorch models whose layers Grad-CAM can hook (not so for an export)

    def config_sha256(self) -> str:
        """What identifies the models' preprocessing in a predict job (the run's resolved config)."""
        return sha256_file(RunDir(self.path).config)

    def build_models(self, device) -> list:
        """Every member as an eval-mode model on ``device``."""
        from .build import create_model
        from .checkpoint import load_weights

        models = []
        for member in self.members:
            meta = member.metadata
            num_classes, kinds = head_shape(meta)
            model = create_model(meta["backbone"], dims=int(meta["dims"]), num_classes=num_classes,
                                 in_channels=int(meta["in_channels"]), task=meta["task"], pretrained="none",
                                 task_kinds=kinds)
            load_weights(member.path, model)
            models.append(model.to(device).eval())
        return models


def head_shape(meta: dict) -> tuple[int | dict[str, int], dict[str, str] | None]:
    """``(num_classes, task_kinds)`` of a fold model from its metadata (multitask: per task)."""
    if "task_kinds" in meta:
        return json.loads(meta["num_classes"]), json.loads(meta["task_kinds"])
    return int(meta["num_classes"]), None


def _default_names(num_classes: int) -> list[str]:
    return ["background"] + [f"class {c}" for c in range(1, num_classes)]


def load_trained_run(run_dir: str | Path, arm: str | None = None, fold: int | None = None) -> TrainedRun:
    """Open RUN (a ``medtl cv`` output folder); all finished folds of ``arm``, or just ``fold``."""
    rundir = RunDir(run_dir)
    arm = arm or rundir.main_arm()
    if is_tuned_arm(arm) and not rundir.arm_config_path(arm).is_file():
        raise InputError(f"run {rundir.root}: arm '{arm}' holds one model per outer fold, each trained with "
                         "that fold's own search result (its parameters may differ from fold to fold), so it is "
                         "not one model to predict with or export; train the final model from "
                         f"{rundir.root / 'tune' / 'final_config.yaml'} (medtl cv), or use the untuned main arm")
    config = rundir.read_arm_config(arm)
    folders = rundir.folds(arm)
    done = [f for f in folders if f.is_finished()]
    if fold is not None:
        done = [f for f in done if (f.repeat, f.fold) == (0, fold)]
        if not done:
            raise InputError(f"run {rundir.root} arm '{arm}' has no finished fold {fold}; finished: "
                             f"{[f.name for f in folders if f.is_finished()]}")
    elif not done:
        raise InputError(f"run {rundir.root} arm '{arm}' has no finished fold; finish it with "
                         f"`medtl cv CONFIG --out {rundir.root}`")
    elif len(done) < len(folders):  # the folds are those of splits.csv (k-fold, fixed split or one per site)
        raise InputError(f"run {rundir.root} arm '{arm}' is unfinished ({len(done)} of "
                         f"{len(folders)} folds done); resume it with `medtl cv CONFIG --out "
                         f"{rundir.root}`, or use one finished fold with --fold K")
    task = task_of(config)
    # cv.seeds: the arm's training replicates are members too (its cv figures are of the seed mean)
    replicas = [(name, [rundir.fold(name, f.repeat, f.fold) for f in done]) for name in rundir.seed_arms(arm)]
    members = []
    for prefix, folds in [("", done), *((f"{name}-", folds) for name, folds in replicas)]:
        for folder in folds:
            if not folder.is_finished():
                raise InputError(f"run {rundir.root}: {prefix.rstrip('-')} {folder.name} (a training seed of arm "
                                 f"'{arm}') is unfinished; resume it with `medtl cv CONFIG --out {rundir.root}`")
            meta = read_metadata(folder.model)
            if meta.get("task") != task.head:
                raise InputError(f"{folder.model} was trained with a '{meta.get('task')}' head, but the run's config "
                                 f"says task '{config.task}'; the run folder is inconsistent")
            members.append(Member(prefix + folder.name, folder.repeat, folder.fold, folder.model, meta,
                                  folder.read_result().record))
    class_names = json.loads(members[0].metadata.get("class_names", "[]"))
    num_classes = head_shape(members[0].metadata)[0]
    if any(head_shape(m.metadata)[0] != num_classes for m in members):
        raise InputError(f"fold models of run {rundir.root} disagree on the number of classes")
    if isinstance(num_classes, dict):  # multitask: a segmentation task has no class names
        class_names = {name: class_names.get(name) or _default_names(count) for name, count in num_classes.items()}
    elif not class_names:
        class_names = _default_names(num_classes)
    digest = sha256_text(*(sha256_file(m.path) for m in members))[:12]
    which = members[0].name if fold is not None else f"ensemble{len(members)}"
    model_id = f"{arm}:{which}:{digest}"
    if task.is_composite:
        per_task = {name: output_calibration(members, head=name) for name in task.tasks}
        return TrainedRun(rundir.root, config, arm, members, class_names, num_classes, model_id, None,
                          {name: c for name, c in per_task.items() if c is not None})
    return TrainedRun(rundir.root, config, arm, members, class_names, num_classes, model_id,
                      output_calibration(members))
