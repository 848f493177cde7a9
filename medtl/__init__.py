"""medtl: medical-imaging transfer learning that tells the truth about its results."""

from __future__ import annotations

from ._version import __version__
from .plumbing import monai_import

monai_import.install()  # MONAI's first import skips packages only its unused parts import (see that module)

__all__ = ["__version__", "MedtlError", "Volume", "load_volume", "load_volumes", "load_config", "scan_export", "create_model",
           "run_cv", "cross_validate", "RunDir", "get_task", "predict_run", "evaluate_run", "export_run", "calibrate_run",
           "PredictOptions"]


_LAZY = {  # public name -> (module, attribute), imported on first use so that `import medtl` stays fast
    "MedtlError": ("medtl.errors", "MedtlError"), "Volume": ("medtl.io", "Volume"),
    "load_volume": ("medtl.io", "load_volume"), "load_volumes": ("medtl.io", "load_volumes"),
    "load_config": ("medtl.config", "load_config"), "create_model": ("medtl.models", "create_model"),
    "run_cv": ("medtl.workflows.cv", "run_cv"), "cross_validate": ("medtl.workflows.engine", "cross_validate"),
    "RunDir": ("medtl.rundir", "RunDir"), "get_task": ("medtl.tasks", "get_task"),
    "predict_run": ("medtl.workflows.predict", "predict_run"),
    "evaluate_run": ("medtl.workflows.evaluate", "evaluate_run"),
    "export_run": ("medtl.workflows.export", "export_run"),
    "calibrate_run": ("medtl.workflows.calibrate", "calibrate_run"),
    "PredictOptions": ("medtl.predict.engine", "PredictOptions"), "scan_export": ("medtl.io.scan", "scan_export"),
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'medtl' has no attribute {name!r}")
    import importlib

    module, attribute = _LAZY[name]
    return getattr(importlib.import_module(module), attribute)
