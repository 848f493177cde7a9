"""``medtl tune`` overhead: the search of one outer fold against the same fits run as a bare loop, in one run.

The search (Optuna TPE, SQLite study, one nested run folder per trial, pruning off) of one outer fold is
timed; then every trial it ran is fitted again as a plain ``cross_validate`` call on the same inner folds
into a fresh folder (the bare loop: the same work without the search). The ratio is search / bare loop;
what it adds is Optuna's sampling, the study database and the trial bookkeeping. Small fits (a tiny
ResNet on 32-px images) make the ratio a worst case: the overhead per trial is fixed.

Both are measured ``--repeats`` times, alternating (the search is deterministic: each repeat, in a fresh run
folder, runs the same trials); the fastest of each is compared, so a slow moment of the machine does not
land on one side only.

Run: python benchmarks/tune_overhead.py [--trials 12] [--inner-folds 3] [--patients 40] [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import yaml


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--inner-folds", type=int, default=3)
    parser.add_argument("--patients", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from medtl.config import load_config
    from medtl.executors import open_executor
    from medtl.rundir import RunDir
    from medtl.samples.sample_sets import write_radiograph_set
    from medtl.tune import decode_params, objective_of
    from medtl.workflows import cross_validate
    from medtl.workflows.cv import prepare_run
    from medtl.workflows.tune_search import SearchClock, search_outer_fold
    from medtl.workflows.tune_trial import SearchContext, inner_folds, remember_context, trial_arm
    from medtl.workflows.validate import check_experiment

    root = Path(tempfile.mkdtemp(prefix="medtl-tune-bench-"))
    data = write_radiograph_set(root / "data", n_patients=args.patients, images_per_patient=2, size=32, seed=3)
    raw = {"data": {"manifest": str(data / "manifest.csv"), "dims": 2, "image_size": [32, 32]},
           "model": {"backbone": "tiny-resnet", "pretrained": "none"},
           "train": {"epochs": 2, "batch_size": 8, "lr": 0.003, "threads": 2}, "cv": {"folds": 3, "bootstrap": 100},
           "tune": {"space": {"train.lr": {"log_uniform": [1e-4, 3e-2]},
                              "finetune.strategy": {"choice": ["linear", "full"]}, "train.epochs": {"int": [1, 4]}},
                    "trials": args.trials, "inner_folds": args.inner_folds, "startup_trials": 5}}
    (root / "tune.yaml").write_text(yaml.safe_dump(raw))
    config = load_config(root / "tune.yaml")
    checked = check_experiment(config)
    searches, bares = [], []
    for repeat in range(args.repeats):
        run, _ = prepare_run(config, RunDir(root / f"run{repeat}"), checked, progress=False)
        ctx = SearchContext(config, checked.arms[0], checked.manifest, run.rundir, run.cases, run.class_names,
                            objective_of(config))
        remember_context(ctx)
        fold = run.folds[0]
        cases, folds = inner_folds(ctx, fold)
        if repeat == 0:  # warm-up: one fit outside both measurements (imports, first-call allocations)
            cross_validate([trial_arm(ctx, {})], cases, folds[:1], RunDir(root / "warm"), class_names=run.class_names)
        began = time.perf_counter()
        found = search_outer_fold(ctx, fold, 0, lambda params: "none", open_executor("local"),
                                  SearchClock(args.trials, lambda *a, **k: None))
        searches.append(time.perf_counter() - began)
        trials = found.study.trials()
        began = time.perf_counter()
        for trial in trials:
            arm = trial_arm(ctx, decode_params(config.tune.space, trial.params))
            cross_validate([arm], cases, folds, RunDir(root / f"bare{repeat}" / f"t{trial.number}"),
                           class_names=run.class_names)
        bares.append(time.perf_counter() - began)
    search, bare = min(searches), min(bares)

    print(f"one outer fold: {len(trials)} trials x {len(folds)} inner folds ({len(cases)} training cases)")
    print(f"search (Optuna TPE, SQLite, nested folders): {search:.2f} s (fastest of {', '.join(f'{t:.2f}' for t in searches)})")
    print(f"bare loop of the same fits (cross_validate):  {bare:.2f} s (fastest of {', '.join(f'{t:.2f}' for t in bares)})")
    print(f"ratio search / bare loop: {search / bare:.3f}  (target <= 1.15)")
    print(f"per trial: search {search / len(trials):.3f} s, bare {bare / len(trials):.3f} s")


if __name__ == "__main__":
    main()
