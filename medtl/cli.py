"""The ``medtl`` command. Subcommands parse only paths and run options; experiment
settings come from the config file plus ``--set``."""

from __future__ import annotations

import argparse
import logging
import sys

from ._version import __version__
from .errors import MedtlError

log = logging.getLogger("medtl")
_OUTPUT_ERRNOS = {13, 1, 28, 30, 122}  # EACCES, EPERM, ENOSPC, EROFS, EDQUOT


def _cmd_scan(args: argparse.Namespace) -> int:
    from .io.scan import scan_export, write_scan

    result = scan_export(args.export_dir, keep_paths=args.keep_paths, workers=args.workers,
                         include_derived=args.include_derived, progress=not args.quiet,
                         verify_pixels=args.verify_pixels)
    out = write_scan(result, args.out, keep_paths=args.keep_paths)
    summary = result.summary
    if not args.quiet:
        reasons = ", ".join(f"{k} {v}" for k, v in summary["skipped_by_reason"].items()) or "none"
        print(f"{summary['files_found']} files: {summary['series']} usable series/volumes "
              f"({summary['files_in_series']} files), {summary['files_skipped']} skipped ({reasons})")
        print(f"{summary['files_per_second']} files/s; inventory written to {out}/series.csv, skipped.csv, scan.json")
    if summary.get("accounting_error"):
        raise MedtlError(summary["accounting_error"])
    if not result.series_rows:
        raise MedtlError(f"no usable series among {summary['files_found']} files in {args.export_dir}; "
                         f"see {out}/skipped.csv for the reason of each file")
    return 0


def _cmd_config(args: argparse.Namespace) -> int:
    from .config import dump_config, load_config
    from .workflows.preflight import preflight

    config = load_config(args.config, args.set)
    result = preflight(config)  # errors and warnings first, then the resolved config
    for problem in result.problems:
        print(f"medtl: error: {problem}", file=sys.stderr)
    for warning in result.warnings:
        print(f"medtl: warning: {warning}", file=sys.stderr)
    if result.problems:
        return 2
    print(dump_config(config), end="")
    checked = result.checked
    classes = f"; classes {checked.manifest.class_names}" if checked.manifest else ""
    print(f"# checked: arms {[a.name for a in checked.arms]}{classes}", file=sys.stderr)
    for fact in result.facts:
        print(f"# {fact}", file=sys.stderr)
    return 1 if result.warnings else 0


def _cmd_cv(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .config import load_config
    from .workflows.cv import run_cv

    engine = [f"run.{key}={value}" for key, value in (("executor", args.executor), ("scheduler", args.scheduler),
                                                       ("workers", args.cluster_workers)) if value is not None]
    if args.gpus:
        return _launch_torchrun(args.argv, args.gpus)
    config = load_config(args.config, [*args.set, *engine])
    out = Path(args.out) if args.out else Path("runs") / Path(args.config).stem
    from .train import distributed as ddp

    ddp.init_from_environment()
    if not ddp.is_main():  # a torchrun follower: trains each unit with rank 0, writes and prints nothing
        from .workflows.cv_units import follow

        follow(str(out))
        ddp.finish()
        return 0
    run = run_cv(config, out, progress=not args.quiet, keep_paths=args.keep_paths)
    ddp.finish()
    if not args.quiet:
        for warning in run.warnings:
            print(f"warning: {warning}")
        # a multitask run: each task's main result and comparisons
        blocks = {f"{name}: ": result for name, result in run.metrics.get("tasks", {}).items()} or {"": run.metrics}
        for prefix, block in blocks.items():
            main = block["summary"][block["primary_metric"]]
            spread = (f"folds {main['mean']:.3f} ± {main['std']:.3f}" if main["std"] == main["std"] else
                      "one scored set, so no spread over folds")  # a fixed split: std is NaN
            print(f"{prefix}{run.metrics['main_arm']}: {block['primary_metric']} {main['pooled']:.3f} "
                  f"(95% CI {main['ci95'][0]:.3f}-{main['ci95'][1]:.3f}, patient bootstrap), {spread}")
        from .evaluate.summary import plain_reading

        comparisons = [c for block in blocks.values() for c in block["comparisons"]]
        for verdict, comparison in zip(run.verdicts, comparisons):
            print(verdict)
            print(f"  {plain_reading(comparison)}")
        print(f"report: {out / 'report.html'}")
    return 0


def _launch_torchrun(argv: list[str], processes: int) -> int:
    """``medtl cv --gpus N``: the same command under ``torchrun`` with N processes on this machine."""
    import subprocess

    rest, skip = [], False
    for item in argv:  # drop --gpus N / --gpus=N: the launched processes run the plain command
        if skip:
            skip = False
        elif item == "--gpus":
            skip = True
        elif not item.startswith("--gpus="):
            rest.append(item)
    # one restart of the whole group: a rank lost to a transient fault (a rendezvous or gloo abort under load) costs
    # a resume from the folds' checkpoints, not the run; a deterministic failure still fails, after one retry
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
               "--max-restarts=1", "-m", "medtl", *rest]
    return subprocess.run(command).returncode


def _predict_options(args: argparse.Namespace):
    from .predict.engine import PredictOptions
    from .predict.items import parse_shard

    return PredictOptions(device=args.device, batch_size=args.batch_size, workers=args.workers,
                          shard=parse_shard(getattr(args, "shard", None)),
                          probability_maps=getattr(args, "probability_maps", False),
                          dicom_seg=not getattr(args, "no_dicom_seg", False),
                          deidentify_seg=getattr(args, "deidentify_seg", False), progress=not args.quiet,
                          explain=getattr(args, "explain", None), explain_class=getattr(args, "explain_class", None),
                          explain_layer=getattr(args, "explain_layer", None),
                          explain_task=getattr(args, "explain_task", None),
                          occlusion_size=getattr(args, "occlusion_size", 16),
                          occlusion_overlap=getattr(args, "occlusion_overlap", 0.5),
                          calibration=getattr(args, "calibration", None))


def _predict_counts(summary: dict, export: bool) -> str:
    """One line whose every count names its unit: inputs (series or cases) and, for a folder, files."""
    reasons = ", ".join(f"{k} {v}" for k, v in summary["skip_rows_by_reason"].items()) or "none"
    if not export:
        return f"{summary['predicted']} case(s) predicted, {summary['skipped_items']} unusable (by reason: {reasons})"
    return (f"{summary['predicted']} series predicted, {summary['skipped_items']} series unusable; files: "
            f"{summary['files_predicted']} predicted, {summary['files_skipped']} skipped (by reason: {reasons}) of "
            f"{summary['files_in_shard']}")


def _cmd_predict(args: argparse.Namespace) -> int:
    from .workflows.predict import predict_run

    if args.executor not in (None, "local"):
        return _predict_on_engine(args)
    outcome, inputs = predict_run(args.run, args.input, args.out, _predict_options(args), arm=args.arm,
                                  fold=args.fold)
    summary = outcome.summary
    if not args.quiet:
        print(f"shard {summary['shard']}: {_predict_counts(summary, inputs.kind == 'export')}")
        print(f"model {summary['model_id']}; written to {outcome.out}/predictions.csv, skipped.csv, predict.json")
    if not outcome.rows and (summary["items_in_shard"] or summary["shard"] == "1/1"):  # an empty shard is fine
        details: dict[str, str] = {}
        for row in inputs.skipped:
            details.setdefault(row["reason"], row.get("detail", ""))
        why = "; ".join(f"{reason}: {detail}" if detail else reason for reason, detail in details.items())
        raise MedtlError(f"nothing could be predicted from {args.input}" + (f" ({why})" if why else "")
                         + f"; see {outcome.out}/skipped.csv for the reason of each input")
    return 0


def _predict_on_engine(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from .config import RunConfig
    from .workflows.predict import predict_on_engine

    engine = RunConfig(executor=args.executor, scheduler=args.scheduler, workers=args.cluster_workers or 2)
    options = replace(_predict_options(args), shard=(1, args.shards))
    summary = predict_on_engine(args.run, args.input, args.out, options, engine, arm=args.arm, fold=args.fold)
    if not args.quiet:
        print(f"{summary['shards']} shard(s) on the {args.executor} executor: {summary['predicted']} predicted, "
              f"{summary['skipped_rows']} skip rows; merged into {args.out}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .workflows.export import export_run

    result = export_run(args.run, args.out, fmt=args.format, arm=args.arm, fold=args.fold, atol=args.atol,
                        rtol=args.rtol, max_cases=args.max_parity_cases, progress=not args.quiet,
                        calibration=args.calibration)
    parity = result.model["parity"]
    print(f"exported {len(result.model['members'])} {result.model['format']} network(s) of arm "
          f"'{result.model['arm']}' to {result.out}")
    print(f"parity gate passed on {parity['n_cases']} validation cases: max abs error {parity['max_abs_error']:.2e}, "
          f"max rel error {parity['max_rel_error']:.2e} (limits {parity['atol']}, {parity['rtol']})")
    print(f"predict with: medtl predict {result.out} INPUT --out DIR; model card: {result.out / 'model_card.html'}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .workflows.evaluate import evaluate_run

    result = evaluate_run(args.run, args.manifest, args.out, _predict_options(args), arm=args.arm, fold=args.fold)
    if not args.quiet:
        metric = result.metrics["primary_metric"]
        main = result.metrics["summary"][metric]
        print(f"{result.metrics['model_id']}: {metric} {main['pooled']:.3f} (95% CI {main['ci95'][0]:.3f}-"
              f"{main['ci95'][1]:.3f}, patient bootstrap) on {result.metrics['n_cases']} cases of "
              f"{result.metrics['n_patients']} patients; {result.metrics['n_skipped']} skipped")
        for warning in result.warnings:
            print(f"warning: {warning}")
        print(f"report: {result.out / 'report.html'}")
    return 0


def _cmd_merge(args: argparse.Namespace) -> int:
    from .predict.merge import merge_shards

    summary = merge_shards(args.shards, args.out)
    print(f"merged {summary['shards']} shard(s): {summary['predicted']} predicted, {summary['skipped_rows']} skip "
          f"rows; written to {args.out}")
    return 0


def _cmd_pretrain(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .config import load_config
    from .workflows.pretrain import export_source_model, train_source_model

    config = load_config(args.config, args.set)
    model = train_source_model(config, progress=not args.quiet)
    path = export_source_model(model, Path(args.out)) if args.out else model.path
    state = "reused (same source config and data)" if model.reused else "trained"
    print(f"source model {model.fingerprint} {state}: {path}")
    probe = [h["probe_auc"] for h in model.summary["history"] if "probe_auc" in h]
    if probe:
        print(f"linear probe AUC {probe[0]:.3f} before pretraining, {probe[-1]:.3f} after "
              f"({model.summary['probe']['n_cases']} labelled images, {model.summary['probe']['kind']})")
    for note in model.notes:
        print(f"note: {note}")
    print(f"use it with model.pretrained: {path}  (or model.pretrained: source in this config)")
    return 0


def _cmd_sample_data(args: argparse.Namespace) -> int:
    from .samples.sample_data import write_sample_data

    out = write_sample_data(args.out, seed=args.seed, size=args.size)
    print(f"sample data written to {out} (seed {args.seed}); manifests: */manifest.csv")
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from .models.backbones import list_backbones

    print(f"{'backbone':<16} {'dims':<6} {'feature channels (strides 2-32)':<34} pretrained sources")
    for spec in list_backbones():
        sources = ", ".join(f"{name} ({'/'.join(f'{d}D' for d in sorted(files))} weights)"
                            for name, files in spec.sources.items()) or "-"
        dims = "/".join(map(str, spec.dims))
        print(f"{spec.name:<16} {dims:<6} {str(spec.feature_channels):<34} {sources}")
    print("any backbone also takes model.pretrained=none or a checkpoint path; 2D weights inflate to 3D")
    return 0


def _cmd_weights(args: argparse.Namespace) -> int:
    from .models import weights

    if args.action == "where":
        print(weights.cache_dir())
    elif args.action == "import":
        if not args.file:
            raise MedtlError("`medtl weights import` needs a FILE: the downloaded checkpoint to verify and install")
        installed = weights.import_weights(args.file)
        if weights.is_verified(installed):
            print(f"verified (sha256 matches the published hash) and installed {installed}")
        else:
            print(f"installed {installed} UNVERIFIED: its publisher gives no hash, so only the file name was matched; "
                  "the SHA-256 of the file is recorded in each run's adaptation report")
    else:
        print(f"cache: {weights.cache_dir()}")
        for row in weights.cached_status():
            mark = "cached " if row["cached"] else "missing"
            print(f"  {mark}  {row['key']:<26} {row['file']:<32} sha256 {row['sha256']}")
            if not row["cached"]:  # where to fetch it on another machine (then `medtl weights import FILE` here)
                print(f"           from {row['url']}\n           licence: {row['licence']}")
    return 0


def _config_arguments(parser: argparse.ArgumentParser) -> None:
    """CONFIG, --set and --quiet: how every experiment command takes its settings."""
    parser.add_argument("config", metavar="CONFIG", help="experiment YAML")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or summary")


def _run_arguments(parser: argparse.ArgumentParser, target: str, target_help: str,
                   run_help: str = "output folder of `medtl cv` (or of `medtl export`)") -> None:
    """RUN, the input, --out and the options shared by predict and evaluate: which models, where they run."""
    parser.add_argument("run", metavar="RUN", help=run_help)
    parser.add_argument(target.lower(), metavar=target, help=target_help)
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (re-use it to resume)")
    parser.add_argument("--fold", type=int, default=None, metavar="K",
                        help="use fold K's model only (default: mean probability of all fold models)")
    parser.add_argument("--arm", default=None, help="arm of the run (default: its main arm)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="images per forward pass (default: the run's train.batch_size); a patch-mode run "
                             "predicts one image at a time, data.sliding_window.batch_size windows per pass")
    parser.add_argument("--workers", type=int, default=None,
                        help="loader processes that read and preprocess ahead (default: min(4, cores-1))")
    parser.add_argument("--no-dicom-seg", action="store_true",
                        help="segmentation: no DICOM-SEG (it repeats the source's patient data and UIDs)")
    parser.add_argument("--deidentify-seg", action="store_true",
                        help="segmentation: write the DICOM-SEG de-identified (PS3.15 basic profile) for sharing")
    parser.add_argument("--calibration", metavar="DIR",
                        help="prediction-set thresholds `medtl calibrate` fitted for this very model (docs/calibration.md)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary")


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from .workflows.calibrate import calibrate_run

    result = calibrate_run(args.run, args.manifest, args.out, _predict_options(args), arm=args.arm, fold=args.fold,
                           alpha=args.alpha, score=args.score, by=args.by)
    if not args.quiet:
        sets = result["conformal"]
        print(f"{result['model_id']}: thresholds for {1 - sets['alpha']:.0%} coverage ({sets['score']}, by "
              f"{sets['by']}) fitted on {result['n_cases']} cases of {result['n_patients']} patients; written to "
              f"{args.out}/calibration.json")
        for note in result["notes"]:
            print(f"warning: {note}")
    return 0


def _add_predict_commands(commands) -> None:
    predict = commands.add_parser(
        "predict", help="run a trained run's models over a manifest or an export folder",
        description="Predict every usable series of an export folder (scanned like `medtl scan`) or every case of "
                    "a manifest with the fold models of RUN (mean probability). Writes predictions.csv, "
                    "skipped.csv (every unusable input with its reason), predict.json and, for segmentation, "
                    "masks/*.nii.gz on the original grid plus seg/*.dcm (DICOM-SEG) for DICOM input. Re-running "
                    "on the same --out resumes.")
    _run_arguments(predict, "INPUT", "export folder or manifest .csv")
    predict.add_argument("--shard", metavar="I/N", help="process part I of N (1-based); merge with `medtl merge`")
    predict.add_argument("--executor", choices=["local", "dask", "ray"],
                         help="run --shards N shards on a Dask or Ray cluster and merge them into --out")
    predict.add_argument("--shards", type=int, default=2, metavar="N",
                         help="with --executor: number of shards (default 2), each resumable under OUT/shards/")
    predict.add_argument("--scheduler", metavar="ADDRESS",
                         help="Dask scheduler or Ray address (else $MEDTL_SCHEDULER; else a local cluster)")
    predict.add_argument("--cluster-workers", type=int, metavar="N",
                         help="size of the local cluster started when there is no scheduler (default 2)")
    predict.add_argument("--probability-maps", action="store_true",
                         help="segmentation: also write per-class probability maps (NIfTI)")
    predict.add_argument("--explain", choices=["gradcam", "occlusion"],
                         help="classification: write an explanation map per case (maps/<key>_<method>.nii.gz, on "
                              "the input's original grid) for the predicted class")
    predict.add_argument("--explain-class", metavar="NAME", help="explain this class instead of the predicted one")
    predict.add_argument("--explain-task", metavar="NAME",
                         help="multitask runs: the classification head to explain (default: the first)")
    predict.add_argument("--explain-layer", metavar="LAYER",
                         help="Grad-CAM layer (default: the deepest encoder stage with at least 3 voxels per axis)")
    predict.add_argument("--occlusion-size", type=int, default=16, metavar="N",
                         help="occlusion box side in network voxels (default 16)")
    predict.add_argument("--occlusion-overlap", type=float, default=0.5, metavar="F",
                         help="overlap of neighbouring occlusion boxes, 0 <= F < 1 (default 0.5; stride = "
                              "size x (1 - overlap))")
    predict.set_defaults(run_command=_cmd_predict)

    evaluate = commands.add_parser(
        "evaluate", help="external validation of a run on a labelled manifest, with patient bootstrap CIs",
        description="Predict MANIFEST with RUN's models and score the predictions with the metrics of `medtl cv` "
                    "(patient-level bootstrap CIs). Writes metrics.json, report.html, predictions.csv, skipped.csv "
                    "(and masks for segmentation); re-running on the same --out resumes.")
    _run_arguments(evaluate, "MANIFEST", "manifest .csv with a label (or mask) column",
                   run_help="output folder of `medtl cv` (not an export folder: the run's record of its training "
                            "images is needed for the leakage check)")
    evaluate.set_defaults(run_command=_cmd_evaluate)

    calibrate = commands.add_parser(
        "calibrate", help="fit prediction-set thresholds for a run's ensemble on a labelled calibration manifest",
        description="Predict MANIFEST (labelled cases new to the run) with RUN's ensemble (or --fold K), each fold "
                    "model's temperature applied, and fit split-conformal thresholds on those outputs. Writes "
                    "calibration.json beside the predictions; pass it to predict/evaluate/export with "
                    "--calibration DIR.")
    _run_arguments(calibrate, "MANIFEST", "manifest .csv with a label column (calibration cases)",
                   run_help="output folder of `medtl cv`")
    calibrate.add_argument("--alpha", type=float, default=None, help="1 - coverage (default: the run's conformal.alpha)")
    calibrate.add_argument("--score", choices=["lac", "aps"], default=None, help="default: the run's conformal.score")
    calibrate.add_argument("--by", choices=["class", "none", "site"], default=None,
                           help="default: the run's conformal.by (class: Mondrian)")
    calibrate.set_defaults(run_command=_cmd_calibrate)

    export = commands.add_parser(
        "export", help="export a run's models (ONNX or torch.export) with a parity gate and a model card",
        description="Write the fold models of one arm of RUN (an ensemble, or --fold K) as ONNX (opset pinned, "
                    "dynamic batch) or torch.export programs, with preprocessing.json (validated schema), model.json "
                    "and model_card.md/.html. The exported networks are run against the PyTorch models on the "
                    "validation cases of their folds; the export is refused unless every output agrees within "
                    "--atol + --rtol x |PyTorch|. `medtl predict OUT INPUT` runs the export.")
    export.add_argument("run", metavar="RUN", help="a finished `medtl cv` output folder")
    export.add_argument("--out", required=True, metavar="DIR")
    export.add_argument("--format", choices=["onnx", "torch-export"], default="onnx")
    which = export.add_mutually_exclusive_group()
    which.add_argument("--fold", type=int, metavar="K", help="export one fold's model")
    which.add_argument("--ensemble", action="store_true", help="export every fold's model (the default)")
    export.add_argument("--arm", help="which arm (default: the run's main arm)")
    export.add_argument("--atol", type=float, default=1e-4, help="parity: absolute tolerance (default 1e-4)")
    export.add_argument("--rtol", type=float, default=1e-3, help="parity: relative tolerance (default 1e-3)")
    export.add_argument("--max-parity-cases", type=int, metavar="N",
                        help="check at most N validation cases per fold (default: all)")
    export.add_argument("--calibration", metavar="DIR",
                        help="an ensemble's prediction-set thresholds from `medtl calibrate` (into model.json)")
    export.add_argument("--quiet", action="store_true", help="no progress bar")
    export.set_defaults(run_command=_cmd_export)

    merge = commands.add_parser(
        "merge", help="combine the --out folders of `medtl predict --shard I/N` runs",
        description="Check that the folders are shards 1..N of one job (same run, input and settings, each "
                    "finished), then write one predictions.csv, skipped.csv and predict.json to --out, with the "
                    "mask and DICOM-SEG files linked or copied in.")
    merge.add_argument("shards", metavar="SHARD_DIR", nargs="+")
    merge.add_argument("--out", required=True, metavar="DIR")
    merge.set_defaults(run_command=_cmd_merge)


def build_parser() -> argparse.ArgumentParser:
    """The ``medtl`` argument parser: one subcommand per workflow."""
    parser = argparse.ArgumentParser(prog="medtl", description="Medical-imaging transfer learning toolkit.")
    parser.add_argument("--version", action="version", version=f"medtl {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    scan = commands.add_parser("scan", help="inventory a DICOM/NIfTI export tree (PHI-free)",
                               description="Index every file under EXPORT_DIR, group DICOM into series and "
                                           "write series.csv, skipped.csv and scan.json to --out.")
    scan.add_argument("export_dir", metavar="EXPORT_DIR")
    scan.add_argument("--out", required=True, metavar="DIR", help="output folder")
    scan.add_argument("--keep-paths", action="store_true",
                      help="write relative file paths instead of opaque keys (paths may hold patient names)")
    scan.add_argument("--workers", type=int, default=None, help="header-reading processes (default: all cores)")
    scan.add_argument("--include-derived", action="store_true",
                      help="keep derived images and secondary captures instead of skipping them")
    scan.add_argument("--verify-pixels", action="store_true",
                      help="also decode every usable series (finds corrupt codestreams; slower)")
    scan.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    scan.set_defaults(run_command=_cmd_scan)

    config = commands.add_parser("config", help="run every check cv makes before training; print the config",
                                 description="Load CONFIG, apply --set overrides and run every check `medtl cv` "
                                             "makes before training (manifest columns, every image and mask file "
                                             "present and readable, patient ids, patients per fold, weights cached "
                                             "or downloadable here) without training or decoding images. Errors "
                                             "and warnings come first, then the resolved config. Exit 0: ready; "
                                             "1: cv would run but skip cases or arms; 2: cv would refuse to start.")
    config.add_argument("config", metavar="CONFIG", nargs="?", help="YAML file (omit for defaults)")
    config.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a key")
    config.set_defaults(run_command=_cmd_config)

    cv = commands.add_parser("cv", help="patient-level cross-validated fine-tuning with a CV report",
                             description="Run K-fold cross-validation of every arm (the configured model and each "
                                         "`compare` entry) on patient-grouped folds; re-running on the same --out "
                                         "resumes. Writes config.yaml, splits.csv, metrics.json, predictions.csv, "
                                         "report.html, env.json and per-fold checkpoints.")
    _config_arguments(cv)
    cv.add_argument("--out", metavar="RUN", help="run folder (default: runs/<config name>)")
    cv.add_argument("--gpus", type=int, metavar="N",
                    help="train each fold with DistributedDataParallel on N processes of this machine (launches "
                         "torchrun; one GPU each, or CPU processes with gloo where there is no GPU)")
    cv.add_argument("--executor", choices=["local", "dask", "ray"],
                    help="where the (arm, fold) units train (run.executor; default local: here, one after the other)")
    cv.add_argument("--scheduler", metavar="ADDRESS",
                    help="Dask scheduler or Ray address (run.scheduler; else $MEDTL_SCHEDULER; else a local cluster)")
    cv.add_argument("--cluster-workers", type=int, metavar="N",
                    help="size of the local cluster started when there is no scheduler (run.workers; default 2)")
    cv.add_argument("--keep-paths", action="store_true",
                    help="show file paths in skip details and logs (they may hold patient names: local use only)")
    cv.set_defaults(run_command=_cmd_cv)

    pretrain = commands.add_parser("pretrain", help="train the config's source stage (supervised or "
                                                    "self-supervised pretraining)",
                                   description="Train the backbone on the config's `source` manifest (supervised, or "
                                               "self-supervised with source.task simclr | byol | restore on "
                                               "unlabelled images) and write a checkpoint (safetensors + metadata) "
                                               "that model.pretrained accepts. An identical source stage is reused "
                                               "from the cache.")
    _config_arguments(pretrain)
    pretrain.add_argument("--out", metavar="FILE", help="also copy the checkpoint here (.safetensors)")
    pretrain.set_defaults(run_command=_cmd_pretrain)

    _add_predict_commands(commands)

    sample = commands.add_parser("sample-data", help="write the synthetic sample sets (deterministic)",
                                 description="Write synthetic, never-real-patient sample sets: a 2D radiograph "
                                             "target set, a larger source set, a 3D CT-like set and a messy export. "
                                             "Same seed, same bytes.")
    sample.add_argument("out", metavar="OUT")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--size", choices=["full", "tiny"], default="full", help="tiny: a few cases, for tests")
    sample.set_defaults(run_command=_cmd_sample_data)

    models = commands.add_parser("models", help="list backbones, their dims and pretrained sources",
                                 description="List registered backbones with dims, feature channels and the "
                                             "pretrained weight sources each supports.")
    models.set_defaults(run_command=_cmd_models)

    weights = commands.add_parser("weights", help="offline pretrained-weight cache: list, import, where",
                                  description="list: known weight files and whether they are cached; "
                                              "import FILE: verify a file obtained elsewhere and install it; "
                                              "where: print the cache folder (TORCH_HOME/hub/checkpoints).")
    weights.add_argument("action", choices=["list", "import", "where"])
    weights.add_argument("file", nargs="?", metavar="FILE", help="checkpoint to import")
    weights.set_defaults(run_command=_cmd_weights)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an interruption so that ``finally`` blocks and clean-up run."""


def _on_sigterm(signum, frame) -> None:
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    """Run one command; a ``MedtlError`` becomes one line on stderr and exit code 2.

    Ctrl-C (exit 130) and SIGTERM (exit 143) print one line saying how to resume; an
    output folder that cannot be written is one clear error (exit 2), not a traceback.
    """
    import signal
    import threading

    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # the command as given (--gpus re-launches it)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="medtl: %(levelname)s: %(message)s", stream=sys.stderr)
    # pydicom logs per-file parsing remarks (with raw UIDs); medtl records those as reason codes instead.
    from .plumbing.redact import install

    install(keep_paths=getattr(args, "keep_paths", False))
    logging.getLogger("nibabel").setLevel(logging.ERROR)
    logging.getLogger("highdicom").setLevel(logging.WARNING)
    try:
        return args.run_command(args)
    except MedtlError as exc:
        print(f"medtl: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print("medtl: interrupted; re-run the same command to resume (finished work is kept)", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    except (PermissionError, OSError) as exc:
        if exc.errno not in _OUTPUT_ERRNOS:
            raise
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"medtl: error: cannot read or write{where}: {exc.strerror}; check the permissions and free space "
              "of the output folder (or choose another --out)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
