"""report.html of ``medtl evaluate``: external-validation results, self-contained, no patient data."""

from __future__ import annotations

import html
from pathlib import Path

from ..plumbing.atomic import write_atomic
from ..plumbing.html import html_page, html_table
from ..tasks import task_of
from . import figures
from .stats import degenerate_interval_note


def _headline(metrics: dict, model_id: str, prefix: str = "") -> str:
    name = metrics["primary_metric"]
    main = metrics["summary"][name]
    lo, hi = main["ci95"]
    text = (f"{prefix}{model_id}: {name} {main['pooled']:.3f} (95% CI {lo:.3f}–{hi:.3f}, patient bootstrap) "
            f"on {metrics['n_cases']} cases of {metrics['n_patients']} patients")
    note = degenerate_interval_note((lo, hi), metrics["n_patients"])
    return f'<p class="verdict">{html.escape(text)}</p>' + (f"<p>Note: {html.escape(note)}.</p>" if note else "")


def _blocks(result, trained) -> dict[str, tuple[dict, tuple[str, ...]]]:
    """``{title prefix: (one task's metrics, its metric names)}``: the run, or each scored task of a multitask run."""
    task = task_of(trained.config)
    if "tasks" not in result.metrics:
        return {"": (result.metrics, task.metric_names)}
    return {f"{name}: ": (block, task.tasks[name].metric_names) for name, block in result.metrics["tasks"].items()
            if "summary" in block}


def _sections(result, trained) -> list[tuple[str, str]]:
    metrics, task = result.metrics, task_of(trained.config)
    blocks = _blocks(result, trained)
    body = ""
    for prefix, (block, _) in blocks.items():
        summary = [[name, s["pooled"], s["ci95"][0], s["ci95"][1], s["mean"], s["std"]]
                   for name, s in block["summary"].items()]
        body += _headline(block, metrics["model_id"], prefix) + html_table(
            ["metric", "ensemble", "95% CI low", "95% CI high", "mean of fold models", "SD of fold models"], summary)
    unscored = [name for name, block in metrics.get("tasks", {}).items() if "summary" not in block]
    if unscored:
        body += f"<p>Not scored (no case of the manifest has its target): {html.escape(', '.join(unscored))}</p>"
    sections = [("Result", body)]
    if result.warnings:
        items = "".join(f"<li>{html.escape(w)}</li>" for w in result.warnings)
        sections.append(("Warnings and skipped cases", f'<div class="warn"><ul>{items}</ul></div>'))
    else:
        sections.append(("Warnings and skipped cases", "<p>None: every case was scored.</p>"))
    for prefix, (block, names) in blocks.items():
        per_model = [[f["model"], f["n_train"], *[f[n] for n in names]] for f in block["folds"]]
        sections.append((f"{prefix}Each fold model on the external set",
                         html_table(["model", "trained on", *names], per_model)))
    if "sites" in metrics:
        from .sites_report import sites_section

        sections.append(sites_section(metrics))
    sections += task.external_sections(result.rows, result.member_rows, result.class_names, figures)
    from ..config import dump_config

    model = html_table(["", ""], [["run", trained.path.name], ["arm", trained.arm], ["model id", trained.model_id],
                                  ["fold models", ", ".join(m.name for m in trained.members)]])
    sections.append(("Model", model))
    sections.append(("Run config (preprocessing used for these predictions)",
                     f"<pre>{html.escape(dump_config(trained.config))}</pre>"))
    return sections


def write_external_report(result, trained) -> Path:
    """Write ``report.html`` of ``medtl evaluate`` into ``result.out``."""
    page = html_page("medtl external validation", f"medtl external validation: {trained.task_name}",
                     _sections(result, trained))
    return write_atomic(result.out / "report.html", page)
