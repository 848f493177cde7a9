"""report.html: one self-contained page a reviewer can read (no patient data, figures inline)."""

from __future__ import annotations

import html
import math
from pathlib import Path

import numpy as np

from ..outputs import write_atomic
from . import figures
from .metrics import confusion
from .summary import metric_names

PAGE_STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}.warn{background:#fff4e5;border-left:4px solid #f0a030;padding:.5em 1em}
.verdict{font-size:1.2em;font-weight:600}pre{background:#f7f7f7;padding:1em;overflow:auto;font-size:12px}
img{max-width:100%}h2{border-bottom:1px solid #ddd;padding-bottom:.2em}"""


def format_value(value) -> str:
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.3f}"
    return html.escape(str(value))


def html_table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{format_value(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def html_image(data: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _summary_table(metrics: dict, names) -> str:
    rows = []
    for arm, result in metrics["arms"].items():
        for name in names:
            s = result["summary"][name]
            rows.append([arm, name, s["mean"], s["std"], s["pooled"], s["ci95"][0], s["ci95"][1]])
    return html_table(["arm", "metric", "mean of folds", "SD of folds", "pooled OOF", "95% CI low", "95% CI high"], rows)


def _folds_table(run, names) -> str:
    rows = [[arm, f["repeat"], f["fold"], f["n_train"], f["n_inner"], f["n_val"], f["n_val_patients"],
             *[f[n] for n in names]] for arm, result in run.metrics["arms"].items() for f in result["folds"]]
    return html_table(["arm", "repeat", "fold", "n train", "n inner", "n val", "val patients", *names], rows)


def _sections(run) -> list[tuple[str, str]]:
    metrics, task, config = run.metrics, run.config.task, run.config
    names = metric_names(task)
    sections = []
    verdicts = "".join(f'<p class="verdict">{html.escape(v)}</p>' for v in run.verdicts) or \
        "<p>No comparison arm ran (set <code>compare: [scratch]</code> for a from-scratch control).</p>"
    sections.append(("Verdict", verdicts + _summary_table(metrics, names)))
    if run.warnings:
        items = "".join(f"<li>{html.escape(w)}</li>" for w in run.warnings)
        sections.append(("Warnings and fallbacks", f'<div class="warn"><ul>{items}</ul></div>'))
    else:
        sections.append(("Warnings and fallbacks", "<p>None: no case skipped, no fallback used.</p>"))
    counts = {}
    if task == "classification":
        counts = {name: sum(c.label == i for c in run.cases) for i, name in enumerate(run.class_names)}
    else:
        counts = {"cases with foreground": sum(bool(c.mask.any()) for c in run.cases),
                  "empty masks": sum(not c.mask.any() for c in run.cases)}
    data_rows = [["cases", metrics["n_cases"]], ["patients", metrics["n_patients"]],
                 *[[k, v] for k, v in counts.items()], ["input size", "x".join(map(str, config.data.image_size))],
                 ["dims", config.data.dims]]
    sections.append(("Data", html_table(["", "value"], data_rows)))
    split_rows = [[f.repeat, f.fold, len(f.train), len(f.val), len({run.cases[i].patient_key for i in f.val})]
                  for f in run.folds]
    sections.append(("Splits (patient-grouped, stratified; no patient on both sides)",
                     html_table(["repeat", "fold", "train cases", "val cases", "val patients"], split_rows)))
    sections.append(("Per-fold results", _folds_table(run, names)))
    if metrics["comparisons"]:
        rows = [[c["a"], c["b"], c["metric"], c["mean_diff"], c["ci95"][0], c["ci95"][1], c["p_value"], c["n_patients"],
                 c["test"]] for c in metrics["comparisons"]]
        sections.append(("Comparison (paired, same folds, same cases)",
                         html_table(["a", "b", "metric", "a − b", "95% CI low", "95% CI high", "p", "patients", "test"],
                                rows)))
    arm_rows = {name: arm["rows"] for name, arm in run.arms.items()}
    if task == "classification":
        if len(run.class_names) == 2:
            sections.append(("ROC curves", html_image(figures.roc_figure(arm_rows, run.class_names[1]), "ROC curves")))
        sections.append(("Calibration", html_image(figures.calibration_figure(arm_rows, run.class_names), "calibration")))
        main = next(iter(run.arms))
        rows = run.arms[main]["rows"]
        matrix = confusion(np.array([r["label_index"] for r in rows]),
                           np.array([[r[f"prob_{n}"] for n in run.class_names] for r in rows]))
        sections.append(("Confusion matrix", html_image(figures.confusion_figure(matrix, run.class_names, main), "confusion")))
    else:
        sections.append(("Dice and IoU per case", html_image(figures.distribution_figure(arm_rows), "distributions")))
        sections.append(("Segmentation overlays (green: truth, red dashed: prediction)", _overlays(run)))
    histories = {name: arm["histories"] for name, arm in run.arms.items()}
    sections.append(("Learning curves", html_image(figures.learning_curves_figure(histories), "learning curves")))
    adaptation = ""
    for name, arm in run.arms.items():
        report = arm["adaptation"]
        adapted = "".join(f"<li><code>{html.escape(k)}</code>: {html.escape(v)}</li>" for k, v in report["adapted"].items())
        new = "".join(f"<li><code>{html.escape(k)}</code>: {html.escape(v)}</li>" for k, v in report["new"].items())
        adaptation += (f"<h3>{html.escape(name)}: {html.escape(report['source'])}</h3>"
                       f"<p>file {format_value(report['file'])}, sha256 {format_value((report['sha256'] or '–')[:16])}; "
                       f"{len(report['loaded'])} tensors loaded as is, {len(report['adapted'])} adapted, "
                       f"{len(report['new'])} new, {len(report['dropped'])} dropped, "
                       f"{len(report['unexpected'])} unexpected</p>"
                       f"<details><summary>adapted and new tensors</summary><ul>{adapted}{new}</ul></details>")
    sections.append(("Pretrained weights and adaptation", adaptation))
    from ..config import dump_config

    sections.append(("Resolved config", f"<pre>{html.escape(dump_config(config))}</pre>"))
    return sections


def _overlays(run) -> str:
    parts = []
    for name in run.arms:
        for fold_dir in sorted((run.out / "arms" / name).glob("repeat0_fold*"))[:2]:
            path = fold_dir / "overlays.npz"
            if not path.exists():
                continue
            with np.load(path) as data:
                for i in range(len(data["image"])):
                    parts.append(html_image(figures.overlay_figure(data["image"][i], data["truth"][i], data["pred"][i],
                                                             f"{name} {fold_dir.name} #{i + 1}"), "overlay"))
    return "".join(parts) or "<p>No overlays saved.</p>"


def write_report(run) -> Path:
    body = "".join(f"<h2>{html.escape(title)}</h2>{content}" for title, content in _sections(run))
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>medtl cv report</title>"
            f"<style>{PAGE_STYLE}</style></head><body><h1>medtl cross-validation report: {html.escape(run.config.task)}"
            f"</h1>{body}</body></html>")
    return write_atomic(run.out / "report.html", page)
