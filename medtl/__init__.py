"""medtl: medical-imaging transfer learning that tells the truth about its results."""

from __future__ import annotations

from ._version import __version__

__all__ = ["__version__", "MedtlError", "Volume", "load_volume", "load_volumes", "load_config", "scan_export", "create_model",
           "run_cv", "cross_validate", "RunDir", "get_task", "predict_run", "evaluate_run", "export_run",
           "PredictOptions"]


def __getattr__(name: str):
    # Lazy so that `import medtl` (and `medtl --help`) stays fast.
    if name == "MedtlError":
        from .errors import MedtlError

        return MedtlError
    if name in ("Volume", "load_volume", "load_volumes"):
        from . import io

        return getattr(io, name)
    if name == "load_config":
        from .config import load_config

        return load_config
    if name == "create_model":
        from .models import create_model

        return create_model
    if name == "run_cv":
        from .workflows.cv import run_cv

        return run_cv
    if name == "cross_validate":
        from .workflows.engine import cross_validate

        return cross_validate
    if name == "RunDir":
        from .rundir import RunDir

        return RunDir
    if name == "get_task":
        from .tasks import get_task

        return get_task
    if name == "predict_run":
        from .workflows.predict import predict_run

        return predict_run
    if name == "evaluate_run":
        from .workflows.evaluate import evaluate_run

        return evaluate_run
    if name == "export_run":
        from .workflows.export import export_run

        return export_run
    if name == "PredictOptions":
        from .predict.engine import PredictOptions

        return PredictOptions
    if name == "scan_export":
        from .io.scan import scan_export

        return scan_export
    raise AttributeError(f"module 'medtl' has no attribute {name!r}")
