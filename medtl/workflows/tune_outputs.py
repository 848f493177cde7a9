"""The outputs ``medtl tune`` adds to a cv run: the ``tune`` block of metrics.json and ``RUN/tune/`` files
(``trials.csv``, ``audit.json``, ``final_config.yaml``)."""

from __future__ import annotations

import math

import numpy as np

from ..arms import is_tuned_arm
from ..config import dump_config
from ..evaluate.stats import mean_unpaired_difference
from ..plumbing.atomic import write_atomic, write_csv, write_json
from ..tune.final import differing_keys, final_parameters
from .tune_audit import audit_search
from .tune_trial import SearchContext, trial_store

FINAL_CONFIG = "final_config.yaml"


def _inner_rows(ctx: SearchContext, found) -> list[dict]:
    """The chosen trial's out-of-fold rows on its inner folds (each outer training case once)."""
    store = trial_store(ctx, found.fold, found.best_number)
    return [row for folder in store.folds(ctx.main.name) for row in folder.read_result().rows]


def _gaps(run, ctx: SearchContext, searches) -> tuple[list[dict], dict]:
    """Per outer fold and over all of them: the chosen trial's inner score (mean of its inner folds) minus the
    tuned model's outer score, with patient-bootstrap CIs (each set resampled on its own)."""
    objective, tuned = ctx.objective, run.arms[ctx.tuned_name]
    boot, seed = ctx.config.cv.bootstrap, ctx.config.train.seed
    pairs, per_fold = [], []
    for found, result in zip(searches, tuned.folds):
        inner_stat, inner_patients = objective.statistic(ctx.config, _inner_rows(ctx, found), run.class_names)
        outer_stat, outer_patients = objective.statistic(ctx.config, result.rows, run.class_names)
        pairs.append((inner_stat, inner_patients, outer_stat, outer_patients))
        per_fold.append({"inner": inner_stat(np.arange(len(inner_patients))),
                         "outer": outer_stat(np.arange(len(outer_patients)))})
    overall = mean_unpaired_difference(pairs, boot, seed)  # one set of resamples: each fold's CI and the mean's
    for fold, part in zip(per_fold, overall.pop("parts")):
        fold["gap"] = part
    return per_fold, overall


def tune_block(run, ctx: SearchContext, searches) -> dict:
    """metrics.json's ``tune``: the search settings, each outer fold's choice and scores, the optimism gap, the
    parameter importance, the final parameters and the audit."""
    tune, objective = ctx.config.tune, ctx.objective
    per_fold, overall = _gaps(run, ctx, searches)
    chosen = [found.best_params for found in searches]
    final, rules = final_parameters(tune.space, chosen)
    outer = []
    for found, gap in zip(searches, per_fold):
        states = [t.state.name for t in found.study.trials()]
        outer.append({"outer": found.key, "repeat": found.fold.repeat, "fold": found.fold.fold,
                      "best_trial": found.best_number, "params": found.best_params,
                      "inner_best": found.best_value,
                      "outer_score": _finite(gap["outer"]), "gap": gap["gap"],
                      "trials": {s.lower(): states.count(s) for s in ("COMPLETE", "PRUNED", "FAIL")},
                      "stopped_by_timeout": found.stopped_by_timeout, "seconds": round(found.seconds, 1),
                      "history": [[t.number, _finite(t.value) if t.value is not None else None, t.state.name]
                                  for t in found.study.trials()],
                      "importance": found.study.importance()})
    importances = [o["importance"] for o in outer if o["importance"]]
    importance = ({key: float(np.mean([imp.get(key, 0.0) for imp in importances])) for key in tune.space}
                  if importances else None)
    naive = float(np.mean([o["inner_best"] for o in outer]))
    differ = differing_keys(tune.space, chosen)
    return {"space": {key: dim.model_dump(exclude_none=True) for key, dim in tune.space.items()},
            "sampler": tune.sampler, "trials": tune.trials, "inner_folds": tune.inner_folds, "parallel": tune.parallel,
            "metric": objective.metric, "direction": objective.direction, "pruning": tune.pruning,
            "seed": tune.seed if tune.seed is not None else ctx.config.train.seed, "timeout": tune.timeout,
            "outer": outer,
            "arm": ctx.main.name, "tuned_arm": ctx.tuned_name,
            "fixed_arms": [name for name in run.arms if not is_tuned_arm(name)],
            "optimism": {"naive_inner_best": naive, "gap": overall,
                         "note": ("naive_inner_best is the mean over outer folds of the best trial's inner-fold "
                                  "score: what tuning and reporting on the same folds would have said; gap is that "
                                  "score minus the tuned model's score on the outer fold, averaged over outer folds, "
                                  "with a 95% CI that resamples the patients of each set on its own")},
            "chosen_differ": differ,
            "importance": importance,
            "importance_method": "fANOVA (Optuna), mean over outer folds",
            "final": {"params": final, "rules": rules, "config": f"{ctx.folder}/{FINAL_CONFIG}"},
            "audit": audit_search(ctx, searches)}


def _finite(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def write_tune_files(run, searched: list, blocks: list[dict]) -> None:
    """``tune/trials.csv`` (every trial of every outer fold of every searched arm), ``tune/audit.json`` and each
    searched arm's ``final_config.yaml`` (its config with the final parameters and without ``tune``: a config to
    train the final model). ``searched``: ``(context, outer searches)`` per searched arm, main arm first."""
    folder = run.rundir.child("tune").root
    config = run.config
    keys = list(config.tune.space)
    inner = [f"inner_{k}" for k in range(config.tune.inner_folds)]
    rows = []
    for ctx, searches in searched:
        rows += _trial_rows(run, ctx, searches, keys, inner)
    write_csv(folder / "trials.csv", ["arm", "outer", "trial", "state", *keys, *inner, "inner_mean", "chosen",
                                      "seconds", "error", "folder"], rows)
    write_json(folder / "audit.json", {block["arm"]: block["audit"] for block in blocks})
    for (ctx, _), block in zip(searched, blocks):
        _write_final_config(run, ctx, block)


def _trial_rows(run, ctx: SearchContext, searches, keys: list[str], inner: list[str]) -> list[dict]:
    rows = []
    for found in searches:
        for trial in found.study.trials():
            scores = trial.user_attrs.get("inner_scores", [])
            params = {key: trial.params.get(key, "") for key in keys}
            rows.append({"arm": ctx.main.name, "outer": found.key, "trial": trial.number, "state": trial.state.name,
                         **params,
                         **{name: scores[i] if i < len(scores) else "" for i, name in enumerate(inner)},
                         "inner_mean": trial.value if trial.value is not None else "",
                         "chosen": trial.number == found.best_number,
                         "seconds": round(trial.user_attrs.get("seconds", 0.0), 2),
                         "error": trial.user_attrs.get("error", ""),
                         "folder": str(trial_store(ctx, found.fold, trial.number).root.relative_to(run.rundir.root))})
    return rows


def _write_final_config(run, ctx: SearchContext, block: dict) -> None:
    final = ctx.main.config.derive({**block["final"]["params"], "tune": None}, where="tune final", check_paths=False)
    values = "".join(f"#   {key}: {value!r} ({block['final']['rules'][key]})\n"
                     for key, value in block["final"]["params"].items())
    header = (f"# medtl tune: the config of the final model of arm '{ctx.main.name}', with the searched keys set to:\n"
              + values +
              "# Its honest performance estimate is the nested one of the run that wrote it; a cv of this config on "
              "the same data would be optimistic (the values were chosen on these patients).\n")
    write_atomic(run.rundir.root / block["final"]["config"], header + dump_config(final))
