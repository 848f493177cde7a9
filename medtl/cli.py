"""The ``medtl`` command. Subcommands parse only paths and run options; experiment
settings come from the config file plus ``--set``."""

from __future__ import annotations

import argparse
import logging
import sys

from ._version import __version__
from .cli_cache import add_cache_command
from .cli_fewshot import add_fewshot_command
from .cli_predict import add_predict_commands
from .errors import MedtlError

log = logging.getLogger("medtl")
_OUTPUT_ERRNOS = {13, 1, 28, 30, 122}  # EACCES, EPERM, ENOSPC, EROFS, EDQUOT


def _cmd_scan(args: argparse.Namespace) -> int:
    from .io.scan import scan_export, write_scan

    result = scan_export(args.export_dir, keep_paths=args.keep_paths, workers=args.workers,
                         include_derived=args.include_derived, progress=not args.quiet,
                         verify_pixels=args.verify_pixels, keep_sources=False)
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
    config = load_config(args.config, [*args.set, *engine])
    if getattr(args, "gpus", None):
        if config.tune is not None:
            from .errors import ConfigError

            raise ConfigError("--gpus does not combine with a tune: section (the search runs its trials through "
                              "run.executor); drop --gpus, or run the final config with medtl cv --gpus")
        return _launch_torchrun(args.argv, args.gpus)
    out = Path(args.out) if args.out else Path("runs") / Path(args.config).stem
    if args.command == "tune" or config.tune is not None:  # medtl cv with a tune: section searches it (nested)
        from .workflows.tune import run_tune

        run = run_tune(config, out, progress=not args.quiet, keep_paths=args.keep_paths)
        if not args.quiet:
            _print_run(run, out)
            _print_search(run.metrics["tune"], out)
        return 0
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
        _print_run(run, out)
    return 0


def _print_run(run, out) -> None:
    """The warnings, each task's main result, the verdicts in words, and where the report is."""
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
    if run.metrics.get("privacy"):
        from .evaluate.privacy_report import privacy_sentence

        for name, spent in run.metrics["privacy"].items():
            print(privacy_sentence(name, spent))
    print(f"report: {out / 'report.html'}")


def _print_search(block: dict, out) -> None:
    """What the nested search chose and how much tuning on the reported folds would have flattered the model."""
    gap = block["optimism"]["gap"]
    print(f"search: {block['metric']} {block['optimism']['naive_inner_best']:.3f} on the inner folds of the chosen "
          f"trials (what tuning on the reported folds would say); optimism gap {gap['difference']:+.3f} "
          f"[{gap['ci95'][0]:+.3f}, {gap['ci95'][1]:+.3f}]")
    if block["chosen_differ"]:
        print(f"the outer folds chose different values of {', '.join(block['chosen_differ'])}")
    print(f"final model config: {out / block['final']['config']}")


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
    if model.summary.get("meta"):
        history = model.summary["history"]
        print(f"meta-learning ({model.summary['method']}): query accuracy after adaptation "
              f"{history[0]['query_accuracy']:.3f} in the first epoch, {history[-1]['query_accuracy']:.3f} in the last "
              f"({history[-1]['episodes']} training episodes; `medtl fewshot` scores held-out ones)")
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
        installed = weights.import_weights(args.file, args.key)
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
                print(f"           from {row['url']} (revision {row['revision']})\n"
                      f"           licence: {row['licence']}")
    return 0


def _config_arguments(parser: argparse.ArgumentParser) -> None:
    """CONFIG, --set and --quiet: how every experiment command takes its settings."""
    parser.add_argument("config", metavar="CONFIG", help="experiment YAML")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or summary")


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

    tune = commands.add_parser("tune", help="hyper-parameter search by nested cross-validation (Optuna)",
                               description="Search tune.space on inner patient-grouped folds of each outer fold's "
                                           "training patients only, retrain the best parameters on the outer "
                                           "training set and score them once on the outer fold (arm 'tuned'), "
                                           "beside the untuned main arm and the compare arms. Needs medtl[tune]. "
                                           "Re-running on the same --out resumes (finished trials are kept). "
                                           "See docs/tune.md.")
    _config_arguments(tune)
    tune.add_argument("--out", metavar="RUN", help="run folder (default: runs/<config name>)")
    tune.add_argument("--executor", choices=["local", "dask", "ray"],
                      help="where the trials run (run.executor), tune.parallel of them side by side")
    tune.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler or Ray address (run.scheduler)")
    tune.add_argument("--cluster-workers", type=int, metavar="N", help="size of the local cluster (run.workers)")
    tune.add_argument("--keep-paths", action="store_true",
                      help="show file paths in skip details and logs (they may hold patient names: local use only)")
    tune.set_defaults(run_command=_cmd_cv)

    pretrain = commands.add_parser("pretrain", help="train the config's source stage (supervised or "
                                                    "self-supervised pretraining)",
                                   description="Train the backbone on the config's `source` manifest (supervised, or "
                                               "self-supervised with source.task simclr | byol | restore on "
                                               "unlabelled images, or meta-learning with source.task maml | fomaml | "
                                               "anil | protonet on episodes of labelled manifests) and write a checkpoint (safetensors + metadata) "
                                               "that model.pretrained accepts. An identical source stage is reused "
                                               "from the cache.")
    _config_arguments(pretrain)
    pretrain.add_argument("--out", metavar="FILE", help="also copy the checkpoint here (.safetensors)")
    pretrain.set_defaults(run_command=_cmd_pretrain)

    add_predict_commands(commands)
    add_fewshot_command(commands)
    add_cache_command(commands)

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
    weights.add_argument("--as", dest="key", metavar="KEY", help="import: the weight file this is (a key from "
                         "`medtl weights list`), when its name is not unique, e.g. model.safetensors")
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
