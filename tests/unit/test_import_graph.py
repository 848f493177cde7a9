"""Imports flow one way: no cycle among medtl's subpackages, and no stage imports a higher layer.

Every import counts, also those inside functions (medtl imports heavy modules lazily).
"""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2] / "medtl"
# Lower layers first. Within a layer, imports are allowed as long as they form no cycle.
LAYERS = [{"errors", "plumbing", "config", "arms", "rundir"}, {"io"}, {"tasks", "models", "transforms", "data"},
          {"train", "evaluate", "predict", "export", "domain", "ssl", "explain", "tracking", "executors"},
          {"workflows"}, {"cli", "__main__"}]


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
