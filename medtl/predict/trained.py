"""A finished ``medtl cv`` run used as a predictor: its resolved config and fold models."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from ..config import Config, load_config
from ..errors import InputError


@dataclass
class Member:
    """One fold model of the run."""

    name: str  # e.g. "repeat0_fold2"
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
    class_names: list[str]
    num_classes: int
    model_id: str

    @property
    def task(self) -> str:
        return self.config.task

    def build_models(self, device) -> list:
        """Every member as an eval-mode model on ``device``."""
        from ..models import create_model
        from ..train.checkpoint import load_weights

        models = []
        for member in self.members:
            meta = member.metadata
            model = create_model(meta["backbone"], dims=int(meta["dims"]), num_classes=int(meta["num_classes"]),
                                 in_channels=int(meta["in_channels"]), task=meta["task"], pretrained="none")
            load_weights(member.path, model)
            models.append(model.to(device).eval())
        return models


def _metadata(path: Path) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return dict(f.metadata() or {})


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _choose_arm(run_dir: Path, config: Config, arm: str | None) -> tuple[str, Config]:
    from ..train.arms import resolve_arms

    arms = {a.name: a.config for a in resolve_arms(config)}
    if arm is None:
        metrics = run_dir / "metrics.json"
        arm = json.loads(metrics.read_text()).get("main_arm") if metrics.exists() else None
        arm = arm or next(iter(arms))
    if arm not in arms:
        raise InputError(f"run {run_dir} has no arm '{arm}'; its arms are {sorted(arms)} (choose with --arm)")
    return arm, arms[arm]


def load_trained_run(run_dir: str | Path, arm: str | None = None, fold: int | None = None) -> TrainedRun:
    """Open RUN (a ``medtl cv`` output folder); all finished folds of ``arm``, or just ``fold``."""
    run_dir = Path(run_dir)
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise InputError(f"{run_dir} is not a medtl cv run folder (no config.yaml); pass the --out folder of "
                         "`medtl cv`")
    arm, config = _choose_arm(run_dir, load_config(config_path), arm)
    folders = sorted((run_dir / "arms" / arm).glob("repeat*_fold*"))
    done = [f for f in folders if (f / "done.json").exists() and (f / "model.safetensors").exists()]
    if fold is not None:
        done = [f for f in done if f.name == f"repeat0_fold{fold}"]
        if not done:
            raise InputError(f"run {run_dir} arm '{arm}' has no finished fold {fold}; finished: "
                             f"{[f.name for f in folders if (f / 'done.json').exists()]}")
    elif not done:
        raise InputError(f"run {run_dir} arm '{arm}' has no finished fold; finish it with "
                         f"`medtl cv CONFIG --out {run_dir}`")
    elif len(done) < len(folders) or len(folders) < config.cv.folds * config.cv.repeats:
        raise InputError(f"run {run_dir} arm '{arm}' is unfinished ({len(done)} of "
                         f"{config.cv.folds * config.cv.repeats} folds done); resume it with `medtl cv CONFIG --out "
                         f"{run_dir}`, or use one finished fold with --fold K")
    members = []
    for folder in done:
        path = folder / "model.safetensors"
        meta = _metadata(path)
        if meta.get("task") != config.task:
            raise InputError(f"{path} was trained for task '{meta.get('task')}', but the run's config says "
                             f"'{config.task}'; the run folder is inconsistent")
        record = json.loads((folder / "done.json").read_text())["record"]
        members.append(Member(folder.name, path, meta, record))
    class_names = json.loads(members[0].metadata.get("class_names", "[]"))
    num_classes = int(members[0].metadata["num_classes"])
    if any(int(m.metadata["num_classes"]) != num_classes for m in members):
        raise InputError(f"fold models of run {run_dir} disagree on the number of classes")
    if config.task == "segmentation" and not class_names:
        class_names = ["background"] + [f"class {c}" for c in range(1, num_classes)]
    digest = hashlib.sha256("".join(_file_sha256(m.path) for m in members).encode()).hexdigest()[:12]
    which = members[0].name if fold is not None else f"ensemble{len(members)}"
    return TrainedRun(run_dir, config, arm, members, class_names, num_classes, f"{arm}:{which}:{digest}")
