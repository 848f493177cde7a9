"""``medtl predict``: a trained run's models over a manifest or an export folder."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from ..models.trained import load_trained_run
from ..predict.engine import PredictOptions, PredictOutcome, predict_items
from ..predict.items import PredictInputs, read_inputs
from ..rundir import PredictDir


def predict_run(run_dir: str | Path, source: str | Path, out: str | Path, options: PredictOptions,
                arm: str | None = None, fold: int | None = None) -> tuple[PredictOutcome, PredictInputs]:
    """Predict every usable input of ``source`` with ``arm``'s fold models (or one fold) into ``out``.

    ``run_dir`` may also be a folder written by ``medtl export``: its ONNX / torch.export
    networks then run with the same loading, accounting, resume and outputs.
    """
    from ..export.loaded import is_export_dir, load_export_dir
    from ..rundir import check_output_folder

    check_output_folder(out, "predict")
    if is_export_dir(run_dir):
        if arm is not None or fold is not None:
            raise InputError(f"{run_dir} is an exported model (its members are fixed at export); drop --arm/--fold, "
                             "or export again with the arm and fold you want")
        trained = load_export_dir(run_dir)
    else:
        trained = load_trained_run(run_dir, arm=arm, fold=fold)
    from .calibrate import with_calibration

    trained = with_calibration(trained, options.calibration)
    if trained.config.data.roi == "mask" and Path(source).is_dir():
        raise InputError(f"run {trained.path} classifies a region around each case's mask (data.roi: mask), and "
                         f"{source} is a folder without masks; predict from a manifest CSV with a mask column")
    inputs = read_inputs(source, trained.task_name, targets=False, workers=options.workers, progress=options.progress,
                         tasks=trained.config.tasks)
    return predict_items(trained, inputs, out, options), inputs


def predict_shard(run_dir: str, source: str, out: str, options: PredictOptions, arm: str | None,
                  fold: int | None) -> dict:
    """One shard of a distributed predict, in this process (a cluster worker); returns its predict.json."""
    from dataclasses import replace

    # a worker process may not start loader processes of its own (Dask's are daemonic); it is one unit of many
    options = replace(options, workers=0, progress=False)
    outcome, _ = predict_run(run_dir, source, out, options, arm=arm, fold=fold)
    return outcome.summary


def predict_on_engine(run_dir: str | Path, source: str | Path, out: str | Path, options: PredictOptions,
                      engine, arm: str | None = None, fold: int | None = None) -> dict:
    """``medtl predict --executor dask|ray --shards N``: N shards on the engine, each resumable in
    ``OUT/shards/<i>of<N>/``, merged into ``OUT`` by the same code as ``medtl merge``; returns the merged summary."""
    from ..executors import open_executor
    from ..predict.merge import merge_shards

    count = options.shard[1]
    if options.shard[0] != 1 and count > 1:
        raise InputError("--shard I/N runs one shard here; with --executor give the number of shards with --shards N")
    out = Path(out)
    folders = [PredictDir(out).shard(i, count).path for i in range(1, count + 1)]
    from dataclasses import replace

    calls = [(str(run_dir), str(source), str(folder), replace(options, shard=(i, count)), arm, fold)
             for i, folder in enumerate(folders, start=1)]
    executor = open_executor(engine.executor, engine.scheduler, engine.workers)
    try:
        executor.map(predict_shard, calls, [f"shard {i}/{count}" for i in range(1, count + 1)])
    finally:
        executor.close()
    return merge_shards(folders, out)
