"""report.html of ``medtl evaluate``: external-validation results, self-contained, no patient data."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from ..outputs import write_atomic
from . import figures
from .metrics import confusion
from .report import PAGE_STYLE, html_image, html_table
from .summary import metric_names


def _headline(result) -> str:
    metrics = result.metrics
    name = metrics["primary_metric"]
    main = metrics["summary"][name]
    lo, hi = main["ci95"]
    text = (f"{metrics['model_id']}: {name} {main['pooled']:.3f} (95% CI {lo:.3f}–{hi:.3f}, patient bootstrap) "
            f"on {metrics['n_cases']} cases of {metrics['n_patients']} patients")
    return f'<p class="verdict">{html.escape(text)}</p>'


def _sections(result, trained) -> list[tuple[str, str]]:
    metrics, task = result.metrics, trained.task
    names = metric_names(task)
    summary = [[name, s["pooled"], s["ci95"][0], s["ci95"][1], s["mean"], s["std"]]
               for name, s in metrics["summary"].items()]
    sections = [("Result", _headline(result) + html_table(
        ["metric", "ensemble", "95% CI low", "95% CI high", "mean of fold models", "SD of fold models"], summary))]
    if result.warnings:
        items = "".join(f"<li>{html.escape(w)}</li>" for w in result.warnings)
        sections.append(("Warnings and skipped cases", f'<div class="warn"><ul>{items}</ul></div>'))
    else:
        sections.append(("Warnings and skipped cases", "<p>None: every case was scored.</p>"))
    per_model = [[f["model"], f["n_train"], *[f[n] for n in names]] for f in metrics["folds"]]
    sections.append(("Each fold model on the external set", html_table(["model", "trained on", *names], per_model)))
    if task == "classification":
        counts = [[name, sum(r["label_index"] == i for r in result.rows)] for i, name in enumerate(result.class_names)]
        sections.append(("Data", html_table(["class", "cases"], counts)))
        member_rows = {"fold models": [{**r, "repeat": 0, "fold": k} for k, rows in
                                       enumerate(result.member_rows.values()) for r in rows]}
        if len(result.class_names) == 2:
            sections.append(("ROC curves of the fold models",
                             html_image(figures.roc_figure(member_rows, result.class_names[1]), "ROC")))
        sections.append(("Calibration", html_image(figures.calibration_figure({"ensemble": result.rows},
                                                                               result.class_names), "calibration")))
        matrix = confusion(np.array([r["label_index"] for r in result.rows]),
                           np.array([[r[f"prob_{n}"] for n in result.class_names] for r in result.rows]))
        sections.append(("Confusion matrix",
                         html_image(figures.confusion_figure(matrix, result.class_names, "ensemble"), "confusion")))
    else:
        sections.append(("Dice and IoU per case (original image grid)",
                         html_image(figures.distribution_figure({"ensemble": result.rows}), "distributions")))
    from ..config import dump_config

    model = html_table(["", ""], [["run", trained.path.name], ["arm", trained.arm], ["model id", trained.model_id],
                                  ["fold models", ", ".join(m.name for m in trained.members)]])
    sections.append(("Model", model))
    sections.append(("Run config (preprocessing used for these predictions)",
                     f"<pre>{html.escape(dump_config(trained.config))}</pre>"))
    return sections


def write_external_report(result, trained) -> Path:
    body = "".join(f"<h2>{html.escape(title)}</h2>{content}" for title, content in _sections(result, trained))
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>medtl external validation</title>"
            f"<style>{PAGE_STYLE}</style></head><body><h1>medtl external validation: {html.escape(trained.task)}"
            f"</h1>{body}</body></html>")
    return write_atomic(result.out / "report.html", page)
