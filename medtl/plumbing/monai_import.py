"""Import MONAI without the optional packages it imports eagerly for parts medtl never uses.

``import monai`` imports every MONAI submodule, and two of them pull in large optional
packages when these are installed: ``monai.networks.nets.transchex`` imports
``transformers``' BERT modelling code (3-5 s on the 2-core reference machine) and
``monai.handlers.mlflow_handler`` imports ``mlflow`` (about 1 s). medtl uses neither
Transchex nor MONAI's MLflow handler, so while MONAI itself is being imported those
packages are made to look absent (MONAI records the failed optional import and only
raises if Transchex or the handler are used); they are importable again as soon as
MONAI's import is done, so medtl's own users of them (foundation models, PEFT, the
MLflow tracker) import them normally. A package already imported before MONAI is left
alone. ``MEDTL_FULL_MONAI_IMPORT=1`` turns this off.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType
from typing import Any

HIDDEN_DURING_MONAI_IMPORT = ("transformers", "mlflow")


class _RestoringLoader:
    """MONAI's own loader, with the hidden packages absent for the duration of its ``exec_module`` (a loader by
    protocol: ``importlib.abc`` itself costs more to import than this whole module)."""

    def __init__(self, loader: Any):
        self.loader = loader

    def create_module(self, spec: Any) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        hidden = [name for name in HIDDEN_DURING_MONAI_IMPORT if name not in sys.modules]
        for name in hidden:
            sys.modules[name] = None  # `import name` raises ImportError, which MONAI's optional_import records
        try:
            module.__loader__ = module.__spec__.loader = self.loader  # MONAI keeps its own loader, as without medtl
            self.loader.exec_module(module)
        finally:
            for name in hidden:
                if sys.modules.get(name, ...) is None:
                    del sys.modules[name]


class _MonaiFinder:
    """Finds ``monai`` with the other finders and wraps its loader; steps aside after the first time."""

    def find_spec(self, name: str, path=None, target=None) -> Any:
        if name != "monai":
            return None
        uninstall()
        for finder in sys.meta_path:
            spec = finder.find_spec(name, path, target) if hasattr(finder, "find_spec") else None
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _RestoringLoader(spec.loader)
                return spec
        return None


def install() -> None:
    """Wrap MONAI's first import (once per process; nothing when MONAI is already imported or it is turned off)."""
    if "monai" in sys.modules or os.environ.get("MEDTL_FULL_MONAI_IMPORT", "") not in ("", "0"):
        return
    if not any(isinstance(finder, _MonaiFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _MonaiFinder())


def uninstall() -> None:
    sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, _MonaiFinder)]
