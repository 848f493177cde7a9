"""The source stages of a cv run: each arm's own, trained or reused once, recorded in the run folder.

``source_stages.json`` keeps, per source stage, the model's fingerprint, the arms that
start from it, its summary (method, pool size, history with the probe curve) and the
notes of this use (leak guard, ignored labels). A resumed run whose source model would
now be a different one (its pool or settings changed) is refused while folds trained on
the old one exist: mixing them would report numbers of two different starting points.
"""

from __future__ import annotations

import json

from ..arms import Arm
from ..errors import InputError
from ..plumbing.atomic import write_json
from .cv_progress import source_kind


def _recorded(run) -> dict:
    path = run.rundir.source_stages
    return json.loads(path.read_text()) if path.exists() else {}


def _record(run, arm: Arm, key: str, model) -> None:
    stages = _recorded(run)
    previous = stages.get(key)
    if previous and previous["fingerprint"] != model.fingerprint:
        finished = [f.name for name in previous["arms"] for f in run.rundir.folds(name) if f.done.exists()]
        if finished:
            raise InputError(f"the source stage of arm '{arm.name}' now gives model {model.fingerprint}, but "
                             f"{len(finished)} finished fold(s) of this run started from model "
                             f"{previous['fingerprint']} (its pool, probe set or settings changed). Use a new --out "
                             "folder, or delete the arms' folders to retrain them")
    arms = sorted(set((previous or {}).get("arms", [])) | {arm.name}) if previous and \
        previous["fingerprint"] == model.fingerprint else [arm.name]
    summary = {k: v for k, v in model.summary.items() if k != "adaptation"}
    stages[key] = {"fingerprint": model.fingerprint, "arms": arms, "reused": model.reused, "notes": model.notes,
                   "summary": summary}
    write_json(run.rundir.source_stages, stages)


def pretrained_for(run, arm: Arm, reporter) -> str:
    """The arm's ``model.pretrained``, with ``source`` replaced by the checkpoint of the arm's own source stage.

    Each arm's source stage comes from that arm's config (an arm may pretrain on another
    pool or with another method); arms whose stages are identical share one model.
    """
    if arm.config.model.pretrained != "source":
        return arm.config.model.pretrained
    from .pretrain import source_key, train_source_model

    key = source_key(arm.config)
    if key not in run.sources:
        source = arm.config.source
        reporter.line(f"source stage ({source.task}) for arm '{arm.name}': pretraining on {source.manifest.name} "
                      "(or reusing the cached model)")
        on_epoch, on_batch = reporter.callbacks(f"source stage ({source.task})", source.epochs,
                                                kind=source_kind(key))
        model = train_source_model(arm.config, progress=False, on_epoch=on_epoch, on_batch=on_batch,
                                   target_cases=run.cases)
        if model.reused:
            reporter.skip(source_kind(key))
            reporter.advance(0, "source stage reused from cache")
        state = "reused from cache" if model.reused else "trained now"
        what = (f"classes {model.summary['class_names']}" if "method" not in model.summary else
                f"meta-learned ({model.summary['method']}) on {len(model.summary['families'])} label column(s)"
                if model.summary.get("meta") else f"self-supervised ({model.summary['method']}), labels not used")
        message = f"source model {model.fingerprint} {state}: {model.summary['n_cases']} source cases, {what}"
        reporter.line(message)  # a fact of the run (the report's Source pretraining section), not a warning
        for line in model.notes:
            run.warnings.append(line)
            reporter.line(line)
        run.sources[key] = model
    _record(run, arm, key, run.sources[key])
    return str(run.sources[key].path)


def source_stages(run) -> list[dict]:
    """``metrics.json["source_stages"]``: every source model the run's arms started from (also on a resume)."""
    arms = set(run.arms)
    return [{"fingerprint": stage["fingerprint"], "arms": [a for a in stage["arms"] if a in arms],
             "notes": stage["notes"], **stage["summary"]}
            for stage in _recorded(run).values() if set(stage["arms"]) & arms]
