"""``medtl export RUN --out DIR``: the run's networks as ONNX or torch.export, checked against PyTorch.

Order: open the arm's fold models; write each network and ``preprocessing.json`` into
``DIR/.incomplete/``; run the **parity gate** (every exported network against its
PyTorch model on the validation cases of its own fold, prepared by medtl exactly as in
training, through the same whole-image / sliding-window code); only when every value
agrees within ``atol + rtol * |PyTorch|`` are ``model.json`` and the model card written
and the files moved into ``DIR``. A failed gate leaves no exported model behind.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch

from .._version import __version__
from ..calibration.scaled import TemperatureScaled
from ..config import PUBLISHED_WEIGHTS
from ..data.case_cache import CaseCache
from ..data.dataset import prepare_cases
from ..data.manifest import Manifest, read_config_manifest
from ..errors import InputError, MedtlError
from ..export.card import card_sections, render_html, render_markdown
from ..export.manifest import MANIFEST_VERSION, ExportManifest, export_model_id
from ..export.networks import FORMATS, OPSET, load_network, write_network
from ..export.parity import Parity, compare_outputs
from ..export.spec import NetworkIO, PreprocessingSpec, describe_steps, write_spec
from ..models.backbones import get_backbone_spec
from ..models.trained import TrainedRun, load_trained_run
from ..models.weights import WEIGHT_FILES
from ..plumbing.atomic import write_atomic, write_json
from ..plumbing.hashing import sha256_file
from ..plumbing.progress import progress_bar
from ..plumbing.swap import ASIDE, check_own, recover, swap_in
from ..rundir import ExportDir, RunDir, check_output_folder

log = logging.getLogger("medtl")


class ParityError(MedtlError):
    """The exported network does not reproduce the PyTorch model within the tolerance."""


@dataclass
class ExportResult:
    """What was written and the parity figures."""

    out: Path
    model: dict  # model.json


def _input_shape(trained: TrainedRun) -> list[int]:
    data = trained.config.data
    return list(data.image_size) if data.mode == "resize" else list(data.patch_size)


def build_spec(trained: TrainedRun) -> PreprocessingSpec:
    """``preprocessing.json`` of an arm: its data settings, the steps in words, the network's input and output."""
    config = trained.config
    data = config.data.model_dump(mode="json", exclude={"manifest", "augment", "patches_per_case",
                                                        "foreground_ratio", "resample_mask"})
    dense = trained.task.uses_mask
    geometry = ("Segmentation: softmax over classes, mean over members, argmax; the label map is interpolated from "
                "the network grid back onto the input's original grid (same shape, spacing, origin, direction) "
                "through the two index-to-world affines, as medtl predict writes masks." if dense else
                "Classification: softmax over classes, mean over members; one probability per class in "
                "class_names order.")
    if trained.calibration is not None:
        geometry += (" The logits are already divided by each member's calibration temperature (model.json "
                     "calibration.temperatures_in_network)." + (
                         " A prediction set (model.json calibration.sets) holds class k when its score (lac: "
                         "1 - p_k; aps: the summed probability of the classes ranked at or above k) is at most the "
                         "threshold of class k (by: class) or the one threshold (by: none)."
                         if trained.calibration.sets is not None else ""))
    return PreprocessingSpec(task=trained.task_name, class_names=trained.class_names, data=data,
                             steps=describe_steps(config.data, dense),
                             normalisation={"subtrahend": 0.449, "divisor": 0.226},
                             network=NetworkIO(input_shape=["batch", 1, *_input_shape(trained)],
                                               output="voxel_logits" if dense else "class_logits",
                                               channel_adaptation=config.model.input_adapt),
                             output_geometry=geometry, threads=config.train.threads,
                             batch_size=config.train.batch_size)


def _validation_images(trained: TrainedRun, rundir: RunDir, max_cases: int | None, progress: bool) -> dict:
    """``member name -> prepared images`` of the cases its fold scored (read from the run's manifest)."""
    config = trained.config
    if config.data.manifest is None or not Path(config.data.manifest).is_file():
        raise InputError(f"the parity gate runs the models on the run's validation images, but the run's manifest "
                         f"{config.data.manifest} is not there; restore it (the check needs real cases)")
    manifest = read_config_manifest(config)
    wanted = {}
    for member in trained.members:
        ids = [row["case_id"] for row in rundir.fold(trained.arm, member.repeat, member.fold).read_done()["rows"]]
        wanted[member.name] = ids[:max_cases] if max_cases else ids
    needed = {i for ids in wanted.values() for i in ids}
    subset = Manifest(manifest.path, [c for c in manifest.cases if c.case_id in needed], manifest.class_names)
    cases, _ = prepare_cases(subset, config, CaseCache(), progress)
    by_id = {c.case_id: c for c in cases}
    return {name: [by_id[i].image for i in ids if i in by_id] for name, ids in wanted.items()}


def _starting_weights_licence(trained: TrainedRun) -> str:
    source = trained.config.model.pretrained
    if source in PUBLISHED_WEIGHTS:
        spec = get_backbone_spec(trained.config.model.backbone)
        weight = WEIGHT_FILES[spec.source_for(source, trained.config.data.dims)]
        revision = f" (file {weight.filename}, revision {weight.revision})" if weight.revision else ""
        return weight.licence + revision
    if source == "none":
        return "none (random initialisation)"
    return "the researcher's own source model (see the source stage below): the licence of its data applies"




def _calibration_entry(trained: TrainedRun) -> dict | None:
    """``model.json["calibration"]``: the temperatures already inside the networks, and the prediction sets."""
    if trained.calibration is None:
        return None
    entry = trained.calibration.to_dict()
    entry["temperatures_in_network"] = entry.pop("temperatures")
    return entry


def _previous_export(out: Path) -> list[str]:
    """The files of an earlier export in ``out`` (to be replaced); any other content is refused."""
    if not out.exists():
        return []
    if not out.is_dir():
        raise InputError(f"--out {out} is a file; give a folder (new, empty, or an earlier export to replace)")
    present = sorted(p.name for p in out.iterdir() if p.name not in (".incomplete", ASIDE))
    if not present:
        return []
    folder = ExportDir(out)
    if not folder.model_json.is_file():
        raise InputError(f"--out {out} already holds files that are not a medtl export (e.g. {present[0]}); give a "
                         "new or empty folder")
    members = [m["file"] for m in json.loads(folder.model_json.read_text()).get("members", [])]
    return [name for name in present if name in (*ExportDir.FILES, *members)]


def export_run(run_dir: str | Path, out: str | Path, fmt: str = "onnx", arm: str | None = None,
               fold: int | None = None, atol: float = 1e-4, rtol: float = 1e-3, max_cases: int | None = None,
               progress: bool = True, calibration: str | Path | None = None) -> ExportResult:
    """Export ``arm``'s fold models (all: an ensemble, or one ``fold``) of a finished run into ``out``.

    A calibrated run's temperatures are written into the networks (logits divided by them), and its
    prediction-set thresholds (one fold's, or an ensemble's from ``medtl calibrate``: ``calibration``)
    into ``model.json``."""
    from .calibrate import with_calibration

    check_output_folder(out, "export")
    if fmt not in FORMATS:
        raise InputError(f"--format {fmt}: use one of {', '.join(FORMATS)}")
    trained = with_calibration(load_trained_run(run_dir, arm=arm, fold=fold), calibration)
    if trained.task.is_composite:
        raise InputError(f"arm '{trained.arm}' is a task: multitask model (its heads return one output per task); "
                         "export handles task: classification and segmentation runs so far: predict with the run "
                         "folder instead (medtl predict RUN INPUT --out DIR)")
    rundir = RunDir(run_dir)
    out = Path(out)
    created = not out.exists()
    if out.is_dir():
        done = recover(out, "model.json")
        if done:
            log.warning("--out %s: %s", out, done)
    previous = _previous_export(out)
    staging = ExportDir(out).staging
    check_own(staging)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    models = trained.build_models(torch.device("cpu"))
    if trained.calibration is not None:  # calibrated logits out of the network itself: nothing for a runner to forget
        models = [TemperatureScaled(m, t) for m, t in zip(models, trained.calibration.temperatures)]
    example = torch.randn(2, 1, *_input_shape(trained))
    members, parity = [], Parity(atol, rtol)
    try:
        spec = build_spec(trained)
        write_spec(ExportDir(staging).spec, spec)
        images = _validation_images(trained, rundir, max_cases, progress)
        with progress_bar("export and parity check", len(models), progress) as advance:
            for member, model in zip(trained.members, models):
                file = f"{member.name}{FORMATS[fmt]}"
                write_network(model, staging / file, fmt, example)
                exported = load_network(staging / file, trained.task.uses_mask, torch.device("cpu"),
                                        written_now=True)
                compare_outputs(member.name, model, exported, images[member.name], trained.config.data, parity,
                                trained.config.train.batch_size)
                members.append({"name": member.name, "repeat": member.repeat, "fold": member.fold, "file": file,
                                "sha256": sha256_file(staging / file), "source_sha256": sha256_file(member.path)})
                advance(1, f"exported {member.name}")
        if not parity.passed:
            raise ParityError(f"parity gate failed: the exported {fmt} network differs from the PyTorch model by up to "
                              f"{parity.max_abs:.3g} (abs) / {parity.max_rel:.3g} (rel) on {parity.n_cases} validation "
                              f"cases (limits abs {atol}, rel {rtol}); nothing was exported. "
                              + ("Non-finite outputs appeared. " if parity.non_finite else "")
                              + "Report this with the run's config; --atol/--rtol loosen the gate knowingly")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created and not any(out.iterdir()):
            out.rmdir()  # a failed export claims no folder
        raise
    metrics = json.loads(rundir.metrics.read_text())
    env = json.loads(rundir.env.read_text()) if rundir.env.exists() else {}
    spec_sha256 = sha256_file(ExportDir(staging).spec)
    model_json = {"version": MANIFEST_VERSION, "medtl_version": __version__,
                  "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  "format": fmt, "opset": OPSET if fmt == "onnx" else None,
                  "model_id": export_model_id(trained.arm, spec_sha256, [m["sha256"] for m in members],
                                              _calibration_entry(trained)),
                  "run_model_id": trained.model_id, "arm": trained.arm, "task": trained.task_name, "class_names": trained.class_names,
                  "folds": [m["name"] for m in members], "ensemble": len(members) > 1, "members": members,
                  "data_sha256": env.get("data", {}).get("sha256"), "run_config_sha256": trained.config_sha256(),
                  "metrics": metrics["arms"][trained.arm]["summary"], "primary_metric": metrics["primary_metric"],
                  "preprocessing_sha256": spec_sha256, "parity": parity.summary(),
                  "calibration": _calibration_entry(trained)}
    model_json = ExportManifest.model_validate(model_json).model_dump(mode="json")  # what predict will accept
    write_json(ExportDir(staging).model_json, model_json)
    sections = card_sections(rundir, trained, spec, model_json, _starting_weights_licence(trained))
    title = f"Model card: {trained.task_name} model {model_json['model_id']}"
    write_atomic(ExportDir(staging).card_md, render_markdown(title, sections))
    write_atomic(ExportDir(staging).card_html, render_html(title, sections))
    # a re-export replaces the old one whole (no network of it stays behind), and a kill at any moment of the
    # replacement leaves the old export or the new one (model.json is the commit mark)
    swap_in(staging, out, previous, "model.json")
    log.info("exported %d network(s) to %s; parity max abs error %.2e", len(members), out, parity.max_abs)
    return ExportResult(out, model_json)
