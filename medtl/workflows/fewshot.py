"""``medtl fewshot``: a pretrained encoder on held-out N-way K-shot episodes, beside honest baselines.

Each encoder (a run's source models, or one checkpoint, and ImageNet weights when cached)
solves the same episodes: with its own adaptation when it was meta-learned (inner steps, or
prototypes), with a linear probe on its frozen features, and by fine-tuning it for a fixed
number of steps. Accuracy and AUC per episode; means with 95% CIs over episodes; paired
differences against the first solver. Nothing is written outside ``--out``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import META_TASKS, Config, TaskSpec, load_config
from ..data.case_cache import CaseCache
from ..data.dataset import prepare_cases
from ..data.manifest import read_manifest
from ..data.target_overlap import target_overlap
from ..errors import ConfigError, InputError, WeightsUnavailableError
from ..io.pseudonym import medtl_home
from ..meta.episode_scores import episode_scores, mean_ci
from ..meta.episodes import EpisodeSampler, build_families, stack_images
from ..meta.methods import build_meta_method
from ..meta.solvers import fine_tune, linear_probe, own_solver
from ..models import create_model
from ..models.weights import load_state_dict_file
from ..plumbing.atomic import write_csv, write_json
from ..plumbing.progress import progress_bar
from ..rundir import RunDir

log = logging.getLogger("medtl")


@dataclass
class FewShotOptions:
    """What ``medtl fewshot`` was asked."""

    ways: int = 2
    shots: int = 5
    queries: int = 5
    episodes: int = 50
    column: str = "label"
    steps: int | None = None  # inner steps of a meta-learned model (default: meta.eval_inner_steps or inner_steps)
    finetune_steps: int = 20
    finetune_lr: float = 1e-3
    seed: int = 0
    allow_overlap: bool = False


@dataclass
class Encoder:
    """One pretrained encoder under test: a name, where its weights come from, and its meta method if any."""

    name: str
    pretrained: str
    meta_method: str | None = None


def encoders_of(target: Path, config: Config) -> list[Encoder]:
    """A run's source models (meta-learned first), or the one checkpoint ``target``; then ImageNet weights."""
    found = []
    if target.is_dir():
        stages_file = RunDir(target).source_stages
        stages = json.loads(stages_file.read_text()) if stages_file.exists() else {}
        for stage in stages.values():
            path = medtl_home() / "source_models" / stage["fingerprint"] / "model.safetensors"
            if not path.exists():
                log.warning("source model %s of arms %s is no longer in the cache: left out", stage["fingerprint"],
                            ", ".join(stage["arms"]))
                continue
            method = stage["summary"]["method"] if stage["summary"].get("meta") else None
            found.append(Encoder(stage["arms"][0], str(path), method))
        if not found:
            raise InputError(f"run {target} has no source model to evaluate (no model.pretrained: source arm, or its "
                             "models were removed from the cache); pass a checkpoint instead")
    else:
        _, metadata = load_state_dict_file(target)
        found.append(Encoder(target.stem, str(target), metadata.get("meta_method")))
    found.sort(key=lambda e: e.meta_method is None)
    if "imagenet" in _published(config):
        found.append(Encoder("imagenet", "imagenet"))
    return found


def _published(config: Config) -> list[str]:
    from ..models.backbones import get_backbone_spec

    sources = get_backbone_spec(config.model.backbone).sources
    return [name for name, by_dims in sources.items() if config.data.dims in by_dims]


def episode_cases(manifest_path: Path, config: Config, column: str, progress: bool):
    """The held-out manifest's prepared images and its one family (the ``column``'s classes)."""
    spec = TaskSpec(name="c0", kind="classification", column=column)
    manifest = read_manifest(manifest_path, "multitask", group_by=config.cv.group_by, tasks=[spec])
    for case in manifest.cases:
        case.label = None
    stage = config.derive({"task": "classification", "tasks": [], "data.positive_class": None, "compare": [],
                           "tune": None}, where="fewshot preprocessing")
    cases, skipped = prepare_cases(manifest, stage, CaseCache(), progress)
    if not cases:
        raise InputError(f"no usable image in {manifest_path}")
    labels = [c.labels.get("c0") for c in cases]
    family = build_families([f"{manifest_path.name}:{column}"], [labels], [manifest.class_names["c0"]],
                            [c.patient_key for c in cases])
    return cases, family, skipped


def check_held_out(config: Config, cases: list, allow: bool) -> list[str]:
    """Refuse episode images that a meta-learning source of the config trained on (pixels or patients)."""
    if config.source is None or config.source.task not in META_TASKS:
        return []
    from .pretrain import source_stage_config
    from .pretrain_meta import read_episode_pool

    pool, _, _, _ = read_episode_pool(config, source_stage_config(config), False)
    overlap = target_overlap(cases, pool)
    if not overlap.n_cases:
        return []
    message = (f"the few-shot manifest holds images the meta-learning sources trained on: {overlap.describe()}; "
               "few-shot scores on them would be optimistic")
    if not allow:
        raise InputError(message + ". Use a held-out manifest (or --allow-overlap to report it anyway)")
    return [message]


def _model(config: Config, encoder: Encoder, ways: int):
    model = create_model(config.model.backbone, dims=config.data.dims, num_classes=ways, task="classification",
                         pretrained=encoder.pretrained, input_adapt=config.model.input_adapt,
                         inflate=config.model.inflate, download=False)
    if "head.*" in model.adaptation.new:  # a meta-learned head for another number of ways: start from zero
        torch.nn.init.zeros_(model.head.fc.weight)
        torch.nn.init.zeros_(model.head.fc.bias)
    return model


def _solvers(config: Config, encoder: Encoder, model, options: FewShotOptions) -> dict:
    solvers = {}
    if encoder.meta_method:
        steps = options.steps or config.meta.eval_inner_steps or config.meta.inner_steps
        method = build_meta_method(encoder.meta_method, model, config.meta)
        own = "prototypes" if encoder.meta_method == "protonet" else f"{encoder.meta_method} {steps} step(s)"
        solvers[f"{encoder.name}: {own}"] = own_solver(method, steps)
    solvers[f"{encoder.name}: linear probe"] = linear_probe
    solvers[f"{encoder.name}: fine-tune {options.finetune_steps} steps"] = fine_tune(options.finetune_steps,
                                                                                     options.finetune_lr)
    return solvers


def run_fewshot(target: str | Path, manifest: str | Path, out: str | Path, options: FewShotOptions,
                config_path: str | Path | None = None, progress: bool = True) -> dict:
    """Solve ``options.episodes`` episodes of ``manifest`` with every encoder and solver; write and return the
    summary (``fewshot.json``) and the per-episode scores (``episodes.csv``) under ``out``."""
    target, out = Path(target), Path(out)
    if target.is_dir():
        config = load_config(RunDir(target).config)
    elif config_path is None:
        raise ConfigError("a checkpoint needs --config CONFIG (the preprocessing and backbone it was trained with)")
    else:
        config = load_config(config_path)
    cases, families, skipped = episode_cases(Path(manifest), config, options.column, progress)
    notes = check_held_out(config, cases, options.allow_overlap)
    sampler = EpisodeSampler(families, options.ways, options.shots, options.queries, options.seed)
    encoders, rows, skipped_encoders = encoders_of(target, config), [], []
    torch.manual_seed(options.seed)
    clock = EpisodeClock(options.episodes * len(encoders))
    with progress_bar("few-shot episodes", options.episodes * len(encoders), progress) as advance:
        for encoder in encoders:
            try:
                model = _model(config, encoder, options.ways)
            except WeightsUnavailableError as exc:
                skipped_encoders.append({"encoder": encoder.name, "reason": str(exc).split(";")[0]})
                advance(options.episodes)
                clock.skip(options.episodes)
                continue
            solvers = _solvers(config, encoder, model, options)
            for number in range(options.episodes):
                episode = sampler.episode(number)
                support, query = stack_images(cases, episode.support), stack_images(cases, episode.query)
                support_y, query_y = torch.tensor(episode.support_labels), np.asarray(episode.query_labels)
                for name, solve in solvers.items():
                    scores = episode_scores(query_y, solve(model, support, support_y, query))
                    rows.append({"episode": number, "solver": name, **scores})
                advance(1)
                clock.done(encoder.name, number, options.episodes)
    summary = summarise(rows, options, cases, notes, skipped, skipped_encoders)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "episodes.csv", ["episode", "solver", "accuracy", "auc"], rows)
    write_json(out / "fewshot.json", summary)
    return summary


class EpisodeClock:
    """A log line with the ETA every quarter of an encoder's episodes (what a redirected run shows)."""

    def __init__(self, total: int):
        self.total, self.finished, self.skipped, self.start = total, 0, 0, time.perf_counter()

    def skip(self, count: int) -> None:
        self.skipped += count

    def done(self, encoder: str, number: int, episodes: int) -> None:
        self.finished += 1
        if (number + 1) % max(1, episodes // 4) and number + 1 != episodes:
            return
        left = (time.perf_counter() - self.start) / self.finished * (self.total - self.skipped - self.finished)
        eta = f"{left / 60:.1f} min" if left >= 60 else f"{left:.0f} s"
        log.info("few-shot: %s episode %d/%d; ETA %s", encoder, number + 1, episodes, eta)


def summarise(rows: list[dict], options: FewShotOptions, cases: list, notes: list[str], skipped: list,
              skipped_encoders: list) -> dict:
    """Per solver: mean accuracy and AUC with 95% CIs over episodes, and the paired difference from the first."""
    solvers = list(dict.fromkeys(r["solver"] for r in rows))
    by = {s: {r["episode"]: r for r in rows if r["solver"] == s} for s in solvers}
    first = solvers[0] if solvers else None
    table = []
    for solver in solvers:
        entry = {"solver": solver, **{m: mean_ci([r[m] for r in by[solver].values()]) for m in ("accuracy", "auc")}}
        if solver != first:
            entry["difference_from_first"] = {
                m: mean_ci([by[first][e][m] - by[solver][e][m] for e in by[solver]]) for m in ("accuracy", "auc")}
        table.append(entry)
    patients = len({c.patient_key for c in cases})
    note = (f"{options.episodes} episodes drawn from {patients} patients: the CIs are over episodes of this set "
            "(episodes share patients, so they are not independent samples of the population); a patient-level "
            "bootstrap would be wider. Read the paired differences (same episodes) rather than two separate CIs.")
    return {"ways": options.ways, "shots": options.shots, "queries": options.queries, "episodes": options.episodes,
            "column": options.column, "seed": options.seed, "finetune_steps": options.finetune_steps,
            "finetune_lr": options.finetune_lr, "first": first, "solvers": table, "n_images": len(cases),
            "n_patients": patients, "n_skipped_images": len(skipped), "skipped_encoders": skipped_encoders,
            "notes": notes + [note]}


def format_summary(summary: dict) -> list[str]:
    """Printed lines: one per solver, with the paired difference from the first solver."""
    def ci(v):
        return f"{v['mean']:.3f} [{v['low']:.3f}, {v['high']:.3f}]" if not math.isnan(v["low"]) else f"{v['mean']:.3f}"

    lines = [f"{summary['ways']}-way {summary['shots']}-shot, {summary['queries']} queries per class, "
             f"{summary['episodes']} episodes ({summary['n_patients']} patients)"]
    for entry in summary["solvers"]:
        line = f"  {entry['solver']:<44} accuracy {ci(entry['accuracy'])}  AUC {ci(entry['auc'])}"
        if "difference_from_first" in entry:
            d = entry["difference_from_first"]["accuracy"]
            line += f"  (first minus this: accuracy {d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}])"
        lines.append(line)
    lines += [f"  skipped {s['encoder']}: {s['reason']}" for s in summary["skipped_encoders"]]
    return lines + [f"note: {n}" for n in summary["notes"]]
