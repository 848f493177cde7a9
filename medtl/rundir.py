"""The one owner of a run folder's layout: every path of a ``medtl cv`` run, read and written here.

```
RUN/config.yaml                 resolved config of the main arm
RUN/run.json                    fingerprints of config, data and splits; arms; medtl version
RUN/splits.csv                  validation fold of every case per repeat (source of truth on resume)
RUN/log.txt                     one plain line per stage and epoch
RUN/metrics.json, predictions.csv, report.html, env.json, training_images.json, skipped_cases.csv
RUN/cache_entries.json          the prepared-case cache entries the run used ($MEDTL_HOME/cache/cases)
RUN/arms/<arm>/config.yaml      each arm's resolved config
RUN/arms/<arm>/repeat<R>_fold<K>/  model.safetensors, adaptation.json, done.json, state.pt, ...
RUN/tracking.json               experiment trackers: MLflow run ids, what each tracker has logged
RUN/mlflow.db, RUN/mlartifacts/ MLflow's default store (track: [mlflow]); RUN/tb/ TensorBoard event files
RUN/tune/<outer>/study.db       medtl tune: one outer fold's Optuna study; trial<NNNN>/ and final/ are child run
                                folders (``RunDir.child``); RUN/tune/trials.csv, audit.json, final_config.yaml
```

Other code asks a ``RunDir`` for paths and never builds or parses them itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .config import Config, dump_config, load_config
from .errors import InputError
from .plumbing.atomic import read_csv, write_atomic, write_csv, write_json
from .plumbing.paths import contained
from .results import FoldResult

SPLIT_COLUMNS = ["case_id", "patient_key", "repeat", "fold", "role"]  # role: val (k-fold) or train/val/test


@dataclass(frozen=True)
class FoldDir:
    """The folder of one (arm, repeat, fold) and the files in it."""

    path: Path
    arm: str
    repeat: int
    fold: int

    @property
    def name(self) -> str:
        """``repeat<R>_fold<K>``: the folder name, also used as the fold model's name."""
        return self.path.name

    @property
    def done(self) -> Path:
        """Written last, when the fold is finished: its record, per-case rows and history."""
        return self.path / "done.json"

    @property
    def model(self) -> Path:
        """Final weights (safetensors with metadata)."""
        return self.path / "model.safetensors"

    @property
    def state(self) -> Path:
        """Epoch checkpoint of an unfinished fold (removed when the fold finishes)."""
        return self.path / "state.pt"

    @property
    def best(self) -> Path:
        """Weights of the best inner-split epoch (``train.selection: best_inner``)."""
        return self.path / "best.safetensors"

    @property
    def adaptation(self) -> Path:
        """What happened to every pretrained tensor."""
        return self.path / "adaptation.json"

    @property
    def images(self) -> Path:
        """``fold_images.json``: pixel hashes and patient keys of the fold's training, selection and scored cases."""
        return self.path / "fold_images.json"

    @property
    def overlays(self) -> Path:
        """A few (image, truth, prediction) slices for the segmentation report."""
        return self.path / "overlays.npz"

    def is_finished(self) -> bool:
        """Both the final weights and the done record exist."""
        return self.done.exists() and self.model.exists()

    def read_done(self) -> dict:
        """The finished fold's ``done.json`` as stored (record, rows, history, notes)."""
        return json.loads(self.done.read_text())

    def read_result(self) -> FoldResult:
        """The finished fold's typed result."""
        return FoldResult.from_dict(self.read_done())

    def write_result(self, result: FoldResult) -> None:
        """Write ``done.json`` (atomically, last: it marks the fold finished)."""
        write_json(self.done, result.to_dict())


@dataclass(frozen=True)
class SourceDir:
    """The folder of one cached source-stage model: ``$MEDTL_HOME/source_models/<fingerprint>/``."""

    path: Path

    model = property(lambda self: self.path / "model.safetensors", doc="the source checkpoint (safetensors)")
    summary = property(lambda self: self.path / "source.json", doc="what the stage trained on and its history")
    state = property(lambda self: self.path / "state.pt", doc="epoch checkpoint while the stage trains")

    def is_finished(self) -> bool:
        """The checkpoint exists (it is written last)."""
        return self.model.exists()

    def read_summary(self) -> dict:
        """``source.json``."""
        return json.loads(self.summary.read_text())

    def write_summary(self, summary: dict) -> None:
        """Write ``source.json`` atomically."""
        write_json(self.summary, summary)


@dataclass(frozen=True)
class PredictDir:
    """A ``medtl predict`` / ``medtl evaluate`` output folder (also one shard's, and a merged one)."""

    path: Path

    job = property(lambda self: self.path / "job.json", doc="what was asked: model, input, options, shard")
    journal = property(lambda self: self.path / "journal.jsonl", doc="one line per finished case (resume)")
    inflight = property(lambda self: self.path / "inflight", doc="marks of cases being read (crash detection)")
    predictions = property(lambda self: self.path / "predictions.csv", doc="one row per predicted case")
    skipped = property(lambda self: self.path / "skipped.csv", doc="every input not predicted, with a reason")
    summary = property(lambda self: self.path / "predict.json", doc="counts, timings, model id")
    metrics = property(lambda self: self.path / "metrics.json", doc="external-validation metrics (evaluate)")
    report = property(lambda self: self.path / "report.html", doc="external-validation report (evaluate)")
    OUTPUT_FOLDERS = ("masks", "probs", "seg", "maps")  # per-case files: label maps, probabilities, DICOM-SEG, maps

    def shard(self, index: int, count: int) -> "PredictDir":
        """``shards/<I>of<N>/``: one shard of an engine-run predict job."""
        return PredictDir(contained(self.path, Path("shards") / f"{index}of{count}"))


@dataclass(frozen=True)
class ExportDir:
    """A ``medtl export`` output folder."""

    path: Path

    model_json = property(lambda self: self.path / "model.json", doc="members, files and their SHA-256, model id")
    spec = property(lambda self: self.path / "preprocessing.json", doc="the preprocessing contract")
    spec_schema = property(lambda self: self.path / "preprocessing.schema.json", doc="its JSON schema")
    card_md = property(lambda self: self.path / "model_card.md", doc="the model card (Markdown)")
    card_html = property(lambda self: self.path / "model_card.html", doc="the model card (HTML)")
    staging = property(lambda self: self.path / ".incomplete", doc="where an export is written before it replaces "
                                                                   "the previous one")
    FILES = ("model.json", "model_card.md", "model_card.html", "preprocessing.json", "preprocessing.schema.json")

    def is_export(self) -> bool:
        """The folder holds an export (its model.json and preprocessing.json)."""
        return self.model_json.is_file() and self.spec.is_file()


FOLDER_KINDS = {  # what marks each kind of medtl output folder
    "run": ("a `medtl cv` run folder", lambda path: (path / "run.json").is_file()),
    "export": ("a `medtl export` folder", lambda path: ExportDir(path).is_export() or ExportDir(path).staging.is_dir()),
    "predict": ("a `medtl predict`/`evaluate` output folder", lambda path: (path / "job.json").is_file()),
}


def folder_kind(path: str | Path) -> str | None:
    """``run``, ``export`` or ``predict`` when ``path`` is a medtl output folder of that kind, else ``None``."""
    path = Path(path)
    return next((kind for kind, (_, marks) in FOLDER_KINDS.items() if path.is_dir() and marks(path)), None)


def check_output_folder(out: str | Path, kind: str) -> None:
    """Refuse ``--out`` for a ``kind`` output when it is, or lies inside, a medtl folder of another kind: a predict
    into a cv run would overwrite the run's predictions.csv, metrics.json and report. Checked before anything is
    read or written; the same kind (a resumed run, a shard inside a predict folder) is fine."""
    out = Path(out).resolve()
    for folder in (out, *out.parents):
        found = folder_kind(folder)
        if found and found != kind:
            where = "is" if folder == out else f"lies inside {folder}, which is"
            raise InputError(f"--out {out} {where} {FOLDER_KINDS[found][0]}; writing {FOLDER_KINDS[kind][0]} there "
                             "would overwrite or mix its files. Give a new folder outside it")


class RunDir:
    """Paths and readers of one run folder, or of a folder nested in one (``child``)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"RunDir({str(self.root)!r})"

    def child(self, relative: str | Path) -> "RunDir":
        """A run folder nested in this one (e.g. ``tune/outer0/trial-3``), laid out like a top-level run, so a
        cross-validation inside a cross-validation writes, resumes and is refused on change the same way.
        The path must stay inside this folder."""
        relative = Path(relative)
        if relative.is_absolute() or not relative.parts:
            raise ValueError(f"a child run folder is a relative path inside {self.root}, not {str(relative)!r}")
        return RunDir(contained(self.root, relative))

    config = property(lambda self: self.root / "config.yaml", doc="resolved config of the main arm")
    run_json = property(lambda self: self.root / "run.json", doc="fingerprints of config, data and splits")
    splits = property(lambda self: self.root / "splits.csv", doc="validation fold of each case per repeat")
    log_file = property(lambda self: self.root / "log.txt", doc="one plain line per stage and epoch")
    metrics = property(lambda self: self.root / "metrics.json", doc="metrics (schema in docs/outputs.md)")
    predictions = property(lambda self: self.root / "predictions.csv", doc="out-of-fold predictions")
    report = property(lambda self: self.root / "report.html", doc="the self-contained report")
    env = property(lambda self: self.root / "env.json", doc="versions, seeds, data and weight hashes")
    training_images = property(lambda self: self.root / "training_images.json", doc="keyed image hashes")
    skipped_cases = property(lambda self: self.root / "skipped_cases.csv", doc="cases not usable, with reasons")
    cache_entries = property(lambda self: self.root / "cache_entries.json",
                             doc="the shared prepared-case cache entries the run's cases came from")
    tracking = property(lambda self: self.root / "tracking.json", doc="tracker run ids and logged steps")
    mlflow_db = property(lambda self: self.root / "mlflow.db", doc="MLflow's default backend store")
    mlflow_artifacts = property(lambda self: self.root / "mlartifacts", doc="MLflow's default artifact store")
    tensorboard = property(lambda self: self.root / "tb", doc="TensorBoard event files, one folder per arm x fold")
    source_stages = property(lambda self: self.root / "source_stages.json",
                             doc="the source models the arms started from (fingerprint, method, history, notes)")

    def exists(self) -> bool:
        """Whether this folder already holds a run (its config)."""
        return self.config.exists()

    def arm_dir(self, arm: str) -> Path:
        """``arms/<arm>/`` (checked to stay inside the run folder)."""
        return contained(self.root, Path("arms") / arm)

    def arm_config_path(self, arm: str) -> Path:
        """``arms/<arm>/config.yaml``: the arm's resolved config."""
        return self.arm_dir(arm) / "config.yaml"

    def fold(self, arm: str, repeat: int, fold: int) -> FoldDir:
        """The folder of one fold of one arm."""
        return FoldDir(self.arm_dir(arm) / f"repeat{repeat}_fold{fold}", arm, repeat, fold)

    # --- writing -----------------------------------------------------------------------------------------

    def write_config(self, config: Config) -> None:
        """Store the main arm's resolved config."""
        write_atomic(self.config, dump_config(config))

    def write_arm_config(self, arm: str, config: Config) -> None:
        """Store one arm's resolved config."""
        write_atomic(self.arm_config_path(arm), dump_config(config))

    def write_splits(self, rows: list[dict]) -> None:
        """``rows``: ``case_id, patient_key, repeat, fold[, role]`` of every assignment."""
        write_csv(self.splits, SPLIT_COLUMNS, [{"role": "val", **row} for row in rows])

    def write_cache_entries(self, cache_root: Path, used: dict[str, dict[str, str]]) -> None:
        """``cache_entries.json``: the cache folder and, per arm whose cases were prepared apart, the entry of
        each case (its content key: files and preprocessing)."""
        write_json(self.cache_entries, {"cache": str(cache_root), "entries": used})

    def write_state(self, state: dict) -> None:
        """``run.json``."""
        write_json(self.run_json, state)

    def log(self, message: str) -> None:
        """Append one timestamped plain line to ``log.txt`` (always written, also with ``--quiet``)."""
        self.root.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        with open(self.log_file, "a", encoding="utf-8") as f:
            f.write(f"{stamp} {message}\n")

    # --- reading -----------------------------------------------------------------------------------------

    def read_config(self) -> Config:
        """The main arm's config (input files are not required to exist any more)."""
        if not self.config.is_file():
            raise InputError(f"{self.root} is not a medtl cv run folder (no config.yaml); pass the --out folder "
                             "of `medtl cv`")
        return load_config(self.config, check_paths=False)

    def read_state(self) -> dict:
        """``run.json`` (empty for a run made before medtl wrote it)."""
        return json.loads(self.run_json.read_text()) if self.run_json.exists() else {}

    def arm_names(self) -> list[str]:
        """The run's arms, main arm first."""
        state = self.read_state()
        if state.get("arms"):
            return list(state["arms"])
        from .arms import resolve_arms

        names = [a.name for a in resolve_arms(self.read_config(), check_paths=False)]
        if not self.arm_dir(names[0]).exists() and (self.root / "arms" / "pretrained").exists():
            names[0] = "pretrained"  # a run made before main arms were named by their start
        return names

    def seed_arms(self, arm: str) -> list[str]:
        """``arm``'s training replicates of ``cv.seeds`` that have an arm folder (``<arm>.seed1``, ...), in order."""
        replicates = []
        for name in self.arm_names():
            head, _, tail = name.rpartition(".seed")
            if head == arm and tail.isdigit():
                replicates.append((int(tail), name))
        return [name for _, name in sorted(replicates)]

    def main_arm(self) -> str:
        """The arm ``predict`` and ``evaluate`` use by default."""
        return self.arm_names()[0]

    def read_arm_config(self, arm: str) -> Config:
        """One arm's resolved config; runs made before per-arm configs were written derive it again."""
        names = self.arm_names()
        if arm not in names:
            import difflib

            close = difflib.get_close_matches(arm, names, n=1, cutoff=0.4)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise InputError(f"run {self.root} has no arm '{arm}'; {hint}its arms are {names} (choose with --arm)")
        path = self.arm_config_path(arm)
        if path.is_file():
            return load_config(path, check_paths=False)
        from .arms import resolve_arms

        arms = resolve_arms(self.read_config(), check_paths=False)
        return {(a.name if a is not arms[0] else names[0]): a.config for a in arms}[arm]

    def read_splits(self) -> list[dict]:
        """Rows of ``splits.csv`` with ``repeat`` and ``fold`` as integers."""
        _, rows = read_csv(self.splits)
        return [{**row, "repeat": int(row["repeat"]), "fold": int(row["fold"])} for row in rows]

    def fold_ids(self) -> list[tuple[int, int]]:
        """``(repeat, fold)`` of every fold of the run, from ``splits.csv``."""
        return sorted({(r["repeat"], r["fold"]) for r in self.read_splits() if r.get("role", "val") in ("val", "test")})

    def folds(self, arm: str) -> list[FoldDir]:
        """Every fold folder of ``arm`` (finished or not), in (repeat, fold) order."""
        return [self.fold(arm, repeat, fold) for repeat, fold in self.fold_ids()]
