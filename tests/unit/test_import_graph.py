"""Imports flow one way: no cycle among medtl's subpackages, and no stage imports a higher layer.

Every import counts, also those inside functions (medtl imports heavy modules lazily).
"""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2] / "medtl"
# Lower layers first. Within a layer, imports are allowed as long as they form no cycle.
LAYERS = [{"_version", "errors", "plumbing", "config", "arms", "results", "rundir"}, {"io"},
          {"tasks", "models", "transforms", "data", "samples", "calibration"},
          {"train", "evaluate", "predict", "export", "domain", "ssl", "meta", "explain", "tracking", "executors", "tune"},
          {"workflows"}, {"cli", "cli_predict", "cli_fewshot", "cli_cache", "__main__"}]


def import_graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        relative = path.relative_to(ROOT)
        if relative.parts == ("__init__.py",):
            continue  # the public API facade imports lazily from everything
        unit = relative.parts[0].removesuffix(".py")
        package = list(relative.parent.parts)
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package[:len(package) - node.level + 1]
                module = base + (node.module.split(".") if node.module else [])
                targets = [module[0]] if module else [n.name for n in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("medtl."):
                targets = [node.module.split(".")[1]]
            elif isinstance(node, ast.Import):
                targets = [a.name.split(".")[1] for a in node.names if a.name.startswith("medtl.")]
            edges.setdefault(unit, set()).update(t for t in targets if t != unit and t != "__version__")
    return edges


def layer_of(unit: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if unit in layer)


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]):
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return trail + [node, nxt]
            if nxt not in state and (cycle := visit(nxt, trail + [node])):
                return cycle
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node, [])):
            return cycle
    return None


def test_no_cycle_among_subpackages():
    assert find_cycle(import_graph()) is None


def test_the_checker_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_stage_imports_a_higher_layer():
    edges = import_graph()
    units = set(edges) | {t for targets in edges.values() for t in targets}
    unknown = sorted(u for u in units if not any(u in layer for layer in LAYERS))
    assert not unknown, f"place these in LAYERS: {unknown}"
    upward = sorted((a, b) for a, targets in edges.items() for b in targets if layer_of(b) > layer_of(a))
    assert not upward


def test_each_subpackage_imports_on_its_own():
    packages = sorted(p.name for p in ROOT.iterdir() if (p / "__init__.py").exists())
    code = "; ".join(f"import medtl.{name}" for name in packages)
    subprocess.run([sys.executable, "-c", code], check=True)


def module_graph() -> dict[str, set[str]]:
    """Module -> the medtl modules it imports (dotted names; a package is its ``__init__``), every import counted."""
    modules = {".".join(p.relative_to(ROOT.parent).with_suffix("").parts).removesuffix(".__init__"): p
               for p in ROOT.rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[:len(package) - node.level + 1]
                    module = ".".join(base + (node.module.split(".") if node.module else []))
                else:
                    module = node.module or ""
                candidates = [f"{module}.{a.name}" for a in node.names] + [module]
            elif isinstance(node, ast.Import):
                candidates = [a.name for a in node.names]
            else:
                continue
            for candidate in candidates:
                while candidate and candidate not in modules:
                    candidate = candidate.rpartition(".")[0]
                if candidate and candidate != name:
                    targets.add(candidate)
                    break
        edges[name] = targets
    return edges


def test_no_cycle_among_the_modules_of_a_package():
    edges = module_graph()
    for package in sorted({n.rpartition(".")[0] for n in edges if n.count(".") >= 1}):
        inside = {n: {t for t in targets if t.rpartition(".")[0] == package and t != package}
                  for n, targets in edges.items() if n.rpartition(".")[0] == package}
        assert find_cycle(inside) is None, f"modules of {package} import each other in a circle"
