"""The commands that run a trained model: predict, evaluate, calibrate, export and merge (their arguments and
handlers); ``medtl.cli`` builds the parser and dispatches."""

from __future__ import annotations

import argparse

from .errors import MedtlError


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
    if parity.get("note"):
        print(f"parity gate: {parity['note']}")
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
                        help="loader processes that read and preprocess ahead (default on the CPU: a quarter of the "
                             "cores, none below 4, the model's threads get the rest; with a GPU: min(4, cores-1))")
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
        for head, fitted in (result["tasks"].items() if "tasks" in result else [("", result)]):
            sets = fitted["conformal"]
            print(f"{result['model_id']}{f' task {head}' if head else ''}: thresholds for {1 - sets['alpha']:.0%} "
                  f"coverage ({sets['score']}, by {sets['by']}) fitted on {fitted['n_cases']} cases of "
                  f"{fitted['n_patients']} patients")
        print(f"written to {args.out}/calibration.json")
        for note in result["notes"]:
            print(f"warning: {note}")
    return 0


def add_predict_commands(commands) -> None:
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
