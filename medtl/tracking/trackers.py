"""The trackers of a cv run: MLflow (parent run = the cv run, a nested run per arm x fold) and TensorBoard
(one writer per arm x fold under ``RUN/tb/``), behind one small interface.

Every call is keyed by a *unit* (``<arm>/repeat<R>_fold<K>``) and an epoch; ``TrackingState``
remembers what each tracker has logged, so a resumed run appends the missing steps only.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from ..errors import ConfigError
from .state import TrackingState
from .values import config_params, epoch_values, numbers, summary_values

log = logging.getLogger("medtl")

EXTRAS = {"mlflow": ("mlflow", "medtl[mlflow]"), "tensorboard": ("tensorboard", "medtl[tensorboard]")}


PROBE_SECONDS = 5.0  # one short request to an MLflow server before a run claims its folder


def require_trackers(config) -> None:
    """Refuse a ``track`` entry whose library is not installed (naming the extra that installs it), and an MLflow
    store that cannot work (``check_mlflow_store``), before a run folder is claimed."""
    for name in config.track:
        module, extra = EXTRAS[name]
        try:
            __import__(module)
        except ImportError:
            raise ConfigError(f"track: [{name}] needs the optional package '{module}': pip install '{extra}' (or "
                              f"remove {name} from track)") from None
    if "mlflow" in config.track and config.tracking.mlflow_uri:
        check_mlflow_store(config.tracking.mlflow_uri)


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (``None`` for a server)."""
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


def check_mlflow_store(uri: str) -> None:
    """A database file must be creatable or be SQLite; a server must answer one request within a few seconds
    (MLflow itself retries for minutes and then prints a traceback)."""
    path = sqlite_path(uri)
    if path is not None:
        if not path.parent.is_dir():
            raise ConfigError(f"tracking.mlflow_uri {uri}: the folder {path.parent} does not exist; create it first")
        if path.exists():
            with open(path, "rb") as f:
                if not path.is_file() or f.read(16) != b"SQLite format 3\x00":
                    raise ConfigError(f"tracking.mlflow_uri {uri}: {path} exists and is not an SQLite database; "
                                      "name a new file or an MLflow database")
        return
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=PROBE_SECONDS).close()
    except urllib.error.HTTPError:
        return  # something answers: MLflow's own errors (a proxy, auth) are reported by MLflow with their text
    except (OSError, ValueError) as exc:
        raise ConfigError(f"tracking.mlflow_uri {uri}: no server answers within {PROBE_SECONDS:g} s "
                          f"({getattr(exc, 'reason', exc)}); start it, fix the address, or remove mlflow from "
                          "track") from None


class MlflowTracker:
    """MLflow through its client API (no global active run): runs, params, metrics, artifacts."""

    name = "mlflow"

    def __init__(self, rundir, config, state: TrackingState, flat_config: dict):
        from mlflow.tracking import MlflowClient

        logging.getLogger("mlflow").setLevel(logging.WARNING)  # its store set-up talks at INFO
        uri = config.tracking.mlflow_uri or f"sqlite:///{rundir.mlflow_db.resolve()}"
        self.client, self.state = MlflowClient(tracking_uri=uri), state.of(self.name)
        ids = self.state["ids"]
        if ids.get("tracking_uri") not in (None, uri):
            log.warning("MLflow: this run was tracked at another URI before; new runs are created at %s", uri)
            self.state.update(ids={}, epochs={}, final=[], summary="")
            ids = self.state["ids"]
        ids["tracking_uri"] = uri
        if "experiment_id" not in ids:
            existing = self.client.get_experiment_by_name(config.tracking.experiment)
            ids["experiment_id"] = existing.experiment_id if existing else self.client.create_experiment(
                config.tracking.experiment, artifact_location=_artifact_location(rundir, config.tracking.mlflow_uri))
        if "parent" not in ids:
            run = self.client.create_run(ids["experiment_id"], run_name=f"cv {rundir.root.name}",
                                         tags={"medtl.kind": "cv"})
            ids["parent"] = run.info.run_id
            params = config_params(flat_config)
            from mlflow.entities import Param

            items = [Param(k, v) for k, v in params.items()]
            for start in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
                self.client.log_batch(ids["parent"], params=items[start:start + 100])
        ids.setdefault("children", {})

    def _child(self, unit: str) -> str:
        children = self.state["ids"]["children"]
        if unit not in children:
            arm, fold = unit.split("/", 1)
            run = self.client.create_run(self.state["ids"]["experiment_id"], run_name=f"{arm} {fold}",
                                         tags={"mlflow.parentRunId": self.state["ids"]["parent"], "medtl.arm": arm,
                                               "medtl.fold": fold})
            children[unit] = run.info.run_id
        return children[unit]

    def log_values(self, unit: str | None, values: dict[str, float], step: int) -> None:
        """``values`` at ``step`` on the unit's nested run (``None``: the parent run)."""
        from mlflow.entities import Metric

        run_id = self.state["ids"]["parent"] if unit is None else self._child(unit)
        items = [Metric(k, v, 0, step) for k, v in values.items()]
        for start in range(0, len(items), 1000):
            self.client.log_batch(run_id, metrics=items[start:start + 1000])

    def artifacts(self, paths: list[Path]) -> None:
        for path in paths:
            if path.exists():
                self.client.log_artifact(self.state["ids"]["parent"], str(path))

    def close(self, finished: bool) -> None:
        ids = self.state["ids"]
        for run_id in [*ids.get("children", {}).values(), ids["parent"]]:
            self.client.set_terminated(run_id, "FINISHED" if finished else "KILLED")


def _artifact_location(rundir, uri: str | None) -> str | None:
    """Artifacts live beside the store the user named (MLflow's default is ./mlruns in the working directory);
    a server keeps its own."""
    if uri is None:
        return rundir.mlflow_artifacts.resolve().as_uri()
    path = sqlite_path(uri)
    return (path.resolve().parent / "mlflow-artifacts").as_uri() if path is not None else None


class TensorboardTracker:
    """One ``SummaryWriter`` per unit under ``RUN/tb/<arm>/<fold>``, the results under ``RUN/tb/summary``."""

    name = "tensorboard"

    def __init__(self, rundir, config, state: TrackingState, flat_config: dict):
        self.root, self.state, self.writers = rundir.tensorboard, state.of(self.name), {}

    def _writer(self, unit: str | None):
        key = unit or "summary"
        if key not in self.writers:
            from torch.utils.tensorboard import SummaryWriter

            self.writers[key] = SummaryWriter(log_dir=str(self.root / key))
        return self.writers[key]

    def log_values(self, unit: str | None, values: dict[str, float], step: int) -> None:
        writer = self._writer(unit)
        for key, value in values.items():
            writer.add_scalar(key, value, step)
        writer.flush()

    def artifacts(self, paths: list[Path]) -> None:
        """TensorBoard keeps no files: the report and metrics.json stay in the run folder."""

    def close(self, finished: bool) -> None:
        for writer in self.writers.values():
            writer.close()


BACKENDS = {"mlflow": MlflowTracker, "tensorboard": TensorboardTracker}


class Trackers:
    """All trackers of a run; every call is a no-op when ``track`` is empty."""

    def __init__(self, backends: list, state: TrackingState | None):
        self.backends, self.state = backends, state

    def __bool__(self) -> bool:
        return bool(self.backends)

    def epoch(self, unit: str, record: dict) -> None:
        """One finished epoch of a unit (skipped by a tracker that already has it)."""
        for backend in self.backends:
            logged = backend.state["epochs"]
            if record["epoch"] <= logged.get(unit, -1):
                continue
            backend.log_values(unit, epoch_values(record), int(record["epoch"]))
            logged[unit] = int(record["epoch"])
        self._save()

    def fold(self, unit: str, done) -> None:
        """A finished unit (a ``FoldResult``): its epochs (any the tracker missed, e.g. tracking enabled on resume)
        and its scores."""
        for record in done.history:
            self.epoch(unit, record)
        for backend in self.backends:
            if unit in backend.state["final"]:
                continue
            backend.log_values(unit, {f"final/{k}": v for k, v in numbers(done.record).items()}, 0)
            backend.state["final"].append(unit)
        self._save()

    def finish(self, metrics: dict, files: list[Path]) -> None:
        """The run's results (``summary/...``, ``compare/...``) and its report and metrics.json."""
        values = summary_values(metrics)
        digest = hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()
        for backend in self.backends:
            if backend.state["summary"] != digest:  # a re-run of a finished run logs nothing again
                backend.log_values(None, values, 0)
                backend.state["summary"] = digest
            backend.artifacts(files)
        self._save()
        self.close(True)

    def close(self, finished: bool = False) -> None:
        for backend in self.backends:
            backend.close(finished)
        self._save()

    def _save(self) -> None:
        if self.state is not None:
            self.state.save()


def open_trackers(rundir, config, flat_config: dict) -> Trackers:
    """The trackers ``config.track`` names (their libraries imported only then)."""
    if not config.track:
        return Trackers([], None)
    require_trackers(config)
    state = TrackingState(rundir.tracking)
    backends = [BACKENDS[name](rundir, config, state, flat_config) for name in dict.fromkeys(config.track)]
    state.save()
    return Trackers(backends, state)
