"""MONAI's first import skips ``transformers``/``mlflow`` (only its unused Transchex and MLflow handler need them)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("transformers") is None, reason="transformers not installed")


def run_fresh(code: str, **env: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, **env})
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.heavy
def test_monai_imports_without_transformers_and_both_stay_importable():
    found = run_fresh(
        "import json, sys\n"
        "import medtl\n"
        "from medtl.models import create_model\n"
        "create_model('resnet18', dims=2, num_classes=2)\n"
        "import monai, monai.networks.nets\n"
        "during = 'transformers' in sys.modules\n"
        "from transformers import ViTConfig\n"  # medtl's foundation models import it afterwards, as usual
        "print(json.dumps({'during': during, 'after': 'transformers' in sys.modules, 'config': ViTConfig.__name__,\n"
        "                  'loader': type(monai.__spec__.loader).__name__, 'transchex': hasattr(monai.networks.nets,\n"
        "                  'Transchex')}))\n")
    assert found == {"during": False, "after": True, "config": "ViTConfig", "loader": "SourceFileLoader",
                     "transchex": True}


@pytest.mark.heavy
def test_a_package_imported_before_monai_is_left_alone_and_the_switch_turns_it_off():
    code = ("import json, sys\n"
            "import mlflow\n"
            "import medtl, monai\n"
            "from monai.handlers import mlflow_handler\n"
            "print(json.dumps({'mlflow': mlflow_handler.mlflow is mlflow,\n"
            "                  'transformers': 'transformers' in sys.modules}))\n")
    if importlib.util.find_spec("mlflow") is None:
        pytest.skip("mlflow not installed")
    assert run_fresh(code) == {"mlflow": True, "transformers": False}
    assert run_fresh(code, MEDTL_FULL_MONAI_IMPORT="1") == {"mlflow": True, "transformers": True}


def test_the_loader_hides_only_absent_packages_during_monai_s_own_code_and_always_puts_them_back(monkeypatch):
    """In process, with a stand-in loader: what MONAI's code sees, and what is left afterwards (an error included)."""
    import types

    from medtl.plumbing import monai_import

    already = types.ModuleType("mlflow")
    monkeypatch.setitem(sys.modules, "mlflow", already)
    monkeypatch.delitem(sys.modules, "transformers", raising=False)
    seen = {}

    class StandIn:
        def create_module(self, spec):
            return None

        def exec_module(self, module):
            seen.update(transformers=sys.modules.get("transformers", "absent"), mlflow=sys.modules.get("mlflow"))
            raise RuntimeError("MONAI failed to import")

    spec = types.SimpleNamespace(loader=None)
    module = types.ModuleType("monai")
    module.__spec__ = spec
    loader = StandIn()
    with pytest.raises(RuntimeError):
        monai_import._RestoringLoader(loader).exec_module(module)
    assert seen == {"transformers": None, "mlflow": already}  # hidden if absent, an imported one left alone
    assert "transformers" not in sys.modules and sys.modules["mlflow"] is already  # put back despite the error
    assert module.__loader__ is loader and spec.loader is loader  # MONAI keeps its own loader
