"""Behaviour that depends on the task is asked of the ``Task`` object: no code outside ``medtl/tasks/`` compares a
name with ``"classification"``, ``"segmentation"`` or ``"multitask"`` (DESIGN: a new task is one file plus a
registration, so nothing else may need editing)."""

import ast
from pathlib import Path

ROOT = Path(__file__).parents[3] / "medtl"
TASK_NAMES = {"classification", "segmentation", "multitask"}
# the config validates its own fields (which task a key applies to) and cannot import the tasks (a lower layer)
ALLOWED = {ROOT / "config"}


def _compares_a_task_name(node: ast.Compare) -> bool:
    operands = [node.left, *node.comparators]
    literals = set()
    for operand in operands:
        if isinstance(operand, ast.Constant) and isinstance(operand.value, str):
            literals.add(operand.value)
        elif isinstance(operand, (ast.Tuple, ast.List, ast.Set)):
            literals |= {e.value for e in operand.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
    return bool(literals & TASK_NAMES) and any(isinstance(op, (ast.Eq, ast.NotEq, ast.In, ast.NotIn))
                                               for op in node.ops)


def offenders() -> list[str]:
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        if (ROOT / "tasks") in path.parents or any(a in path.parents for a in ALLOWED):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare) and _compares_a_task_name(node):
                found.append(f"{path.relative_to(ROOT.parent)}:{node.lineno}")
    return found


def test_no_module_outside_tasks_compares_task_names():
    assert offenders() == []


def test_the_check_finds_a_comparison(tmp_path, monkeypatch):
    tree = ast.parse('if config.task == "segmentation" or kind in ("classification", "x"):\n    pass\n')
    compares = [n for n in ast.walk(tree) if isinstance(n, ast.Compare)]
    assert [_compares_a_task_name(n) for n in compares] == [True, True]
