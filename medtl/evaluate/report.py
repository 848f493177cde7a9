"""report.html of ``medtl cv``: one self-contained page a reviewer can read (no patient data, figures inline)."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from ..plumbing.atomic import write_atomic
from ..plumbing.html import format_value, html_image, html_page, html_table
from ..tasks import task_of
from . import figures
from .stats import degenerate_interval_note
from .summary import plain_reading


def _summary_table(metrics: dict, names) -> str:
    rows, notes = [], []
    for arm, result in metrics["arms"].items():
        for name in names:
            s = result["summary"][name]
            rows.append([arm, name, s["mean"], s["std"], s["pooled"], s["ci95"][0], s["ci95"][1]])
            note = degenerate_interval_note(tuple(s["ci95"]), metrics.get("n_patients", 0))
            if note:
                notes.append(f"{arm} {name}: {note}.")
    table = html_table(["arm", "metric", "mean of folds", "SD of folds", "pooled OOF", "95% CI low", "95% CI high"],
                       rows)
    return table + "".join(f"<p>Note: {html.escape(n)}</p>" for n in notes)


def _folds_table(metrics: dict, names) -> str:
    sites = any("test_site" in f for result in metrics["arms"].values() for f in result["folds"])
    rows = [[arm, f["repeat"], f["fold"], *([f.get("test_site", "")] if sites else []), f["n_train"], f["n_inner"],
             f["n_val"], f["n_val_patients"], *[f[n] for n in names]]
            for arm, result in metrics["arms"].items() for f in result["folds"]]
    return html_table(["arm", "repeat", "fold", *(["test site"] if sites else []), "n train", "n inner", "n val",
                       "val patients", *names], rows)


def network_input_size(run, arm: str | None = None) -> str:
    """The size of the arrays the network (of ``arm``, default the main arm) was trained on, read from its cases."""
    cases = run.cases_of(arm) if arm else run.cases
    shapes = sorted({"x".join(map(str, c.spatial_shape)) for c in cases})
    data = (run.arms[arm].config if arm else run.config).data
    if data.fixed_size:
        return ", ".join(shapes)
    window = data.sliding_window
    smallest = np.min([c.spatial_shape for c in cases], axis=0)
    largest = np.max([c.spatial_shape for c in cases], axis=0)
    return (f"patches of {'x'.join(map(str, data.patch_size))} ({data.patches_per_case} per case per epoch, "
            f"{data.foreground_ratio:.0%} centred on foreground) from cases at native extent "
            f"{'x'.join(map(str, smallest))} to {'x'.join(map(str, largest))}; " +
            (f"predicted by sliding window (overlap {window.overlap}, {window.blend} blending)"
             if task_of(run.config).uses_mask else
             f"window logits (overlap {window.overlap}) reduced by {data.aggregate}"))


def _task_blocks(run) -> dict[str, tuple[dict, tuple[str, ...]]]:
    """``{title prefix: (metrics of one task, its metric names)}``: the run itself, or each task of a multitask run."""
    if "tasks" not in run.metrics:
        return {"": (run.metrics, task_of(run.config).metric_names)}
    multi = task_of(run.config)
    return {f"{name}: ": (result, multi.tasks[name].metric_names) for name, result in run.metrics["tasks"].items()}


def _comparison_table(comparisons: list[dict]) -> str:
    rows = [[c["a"], c["b"], c["metric"], c["mean_diff"], c["ci95"][0], c["ci95"][1], c["p_value"],
             c.get("p_holm", "—") if c.get("role") != "primary" else "primary", c["n_patients"], c["test"]]
            for c in comparisons]
    return html_table(["a", "b", "metric", "a − b", "95% CI low", "95% CI high", "p", "Holm p", "patients", "test"],
                      rows)


def _sections(run) -> list[tuple[str, str]]:
    metrics, config = run.metrics, run.config
    task = task_of(config)
    blocks = _task_blocks(run)
    sections = []
    readings = [plain_reading(c) for block, _ in blocks.values() for c in block["comparisons"]]
    verdicts = "".join(f'<p class="verdict">{html.escape(v)}</p><p>{html.escape(r)}</p>'
                       for v, r in zip(run.verdicts, readings)) or \
        "<p>No comparison arm ran (set <code>compare: [scratch]</code> for a from-scratch control).</p>"
    if metrics.get("multiplicity", {}).get("primary"):
        verdicts += f"<p><b>Multiplicity.</b> {html.escape(metrics['multiplicity']['note'])}.</p>"
    tables = "".join((f"<h3>{html.escape(prefix.rstrip(': '))}</h3>" if prefix else "") + _summary_table(block, names)
                     for prefix, (block, names) in blocks.items())
    sections.append(("Verdict", verdicts + tables))
    if run.warnings:
        items = "".join(f"<li>{html.escape(w)}</li>" for w in run.warnings)
        sections.append(("Warnings and fallbacks", f'<div class="warn"><ul>{items}</ul></div>'))
    else:
        sections.append(("Warnings and fallbacks", "<p>None: no case skipped, no fallback used.</p>"))
    counts = task.data_counts(run.cases, run.class_names)
    data_rows = [["cases", metrics["n_cases"]], ["patients", metrics["n_patients"]],
                 *[[k, v] for k, v in counts.items()], ["network input size (as trained)", network_input_size(run)],
                 *[[f"network input size, arm {name} (its own data settings)", network_input_size(run, name)]
                   for name in run.arms if name in run.arm_cases],
                 ["dims", config.data.dims], *[["note", note] for note in metrics.get("notes", [])]]
    sections.append(("Data", html_table(["", "value"], data_rows)))
    split_rows = [[f.repeat, f.fold, len(f.train), len(f.val), len({run.cases[i].patient_key for i in f.val})]
                  for f in run.folds]
    sections.append(("Splits (patient-grouped, stratified; no patient on both sides)",
                     html_table(["repeat", "fold", "train cases", "val cases", "val patients"], split_rows)))
    for prefix, (block, names) in blocks.items():
        sections.append((f"{prefix}Per-fold results", _folds_table(block, names)))
        if block["comparisons"]:
            sections.append((f"{prefix}Comparison (paired, same folds, same cases)",
                             _comparison_table(block["comparisons"])))
    from .sites_report import adaptation_section, sites_section

    if "tune" in metrics:
        from .tune_report import search_section

        for block in [metrics["tune"], *metrics["tune"].get("also_tuned", {}).values()]:
            sections.append(search_section(block))
    if "seeds" in metrics:
        sections.append(_seeds_section(metrics["seeds"]))
    if metrics.get("federated"):
        from .federated_report import federated_section

        sections.append(federated_section(metrics))
    if metrics.get("privacy"):
        from .privacy_report import privacy_section

        sections.append(privacy_section(metrics["privacy"]))
    if "label_efficiency" in metrics:
        sections.append(_label_efficiency_section(metrics["label_efficiency"]))

    if "sites" in metrics:
        sections.append(sites_section(metrics))
    if "domain_adaptation" in metrics:
        sections.append(adaptation_section(metrics, {name: arm.histories for name, arm in run.arms.items()}))
    arm_rows = {name: arm.rows for name, arm in run.arms.items()}
    sections += task.report_sections(arm_rows, run.class_names, figures, lambda: _overlays(run))
    if any("calibration" in result for result in metrics["arms"].values()):
        from .calibration_report import calibration_section

        sections.append(calibration_section(metrics, arm_rows, run.class_names))
    histories = {name: arm.histories for name, arm in run.arms.items()}
    sections.append(_training_cost_section(run))
    sections.append(("Learning curves", html_image(figures.learning_curves_figure(histories), "learning curves")))
    if "tasks" in metrics:
        sections.append(_task_weights_section(run))
    if metrics.get("explanations"):
        from .explain_report import explanation_section

        sections.append(explanation_section(metrics["explanations"], getattr(run, "explanations", {})))
    if metrics.get("source_stages"):
        from .source_report import source_section

        sections.append(source_section(metrics["source_stages"]))
    adaptation = ""
    for name, arm in run.arms.items():
        report = arm.adaptation
        adapted = "".join(f"<li><code>{html.escape(k)}</code>: {html.escape(v)}</li>" for k, v in report["adapted"].items())
        new = "".join(f"<li><code>{html.escape(k)}</code>: {html.escape(v)}</li>" for k, v in report["new"].items())
        adaptation += (f"<h3>{html.escape(name)}: {html.escape(report['source'])}</h3>"
                       f"<p>file {format_value(report['file'])}, sha256 {format_value((report['sha256'] or '–')[:16])}; "
                       f"{len(report['loaded'])} tensors loaded as is, {len(report['adapted'])} adapted, "
                       f"{len(report['new'])} new, {len(report['dropped'])} dropped, "
                       f"{len(report['unexpected'])} unexpected</p>{_licence_line(report)}"
                       f"<details><summary>adapted and new tensors</summary><ul>{adapted}{new}</ul></details>")
    sections.append(("Pretrained weights and adaptation", adaptation))
    from ..config import dump_config

    sections.append(("Resolved config", f"<pre>{html.escape(dump_config(config))}</pre>"))
    return sections


def _licence_line(report: dict) -> str:
    """The terms the loaded published file carries at its revision (empty for own checkpoints)."""
    if not report.get("licence"):
        return ""
    revision = f" (revision {html.escape(report['revision'])})" if report.get("revision") else ""
    return f"<p>licence of the file: {html.escape(report['licence'])}{revision}</p>"


def _training_cost_section(run) -> tuple[str, str]:
    """Per arm: its fine-tuning strategy, parameters trained of all, seconds per epoch and (GPU) peak memory."""
    rows = []
    for name, arm in run.arms.items():
        last = next((h[-1] for h in arm.histories if h), {})
        costs = [f.cost for f in arm.folds]
        seconds = [c["seconds_per_epoch"] for c in costs if "seconds_per_epoch" in c]
        peaks = [c["peak_gpu_mib"] for c in costs if "peak_gpu_mib" in c]
        trained, total = last.get("trainable_params"), last.get("total_params")
        rows.append([name, arm.config.finetune.strategy, f"{trained / 1e6:.3f}M" if trained else "–", f"{total / 1e6:.2f}M" if total else "–",
                     f"{100 * trained / total:.2f}%" if trained and total else "–",
                     f"{np.mean(seconds):.2f}" if seconds else "–", f"{max(peaks):.0f}" if peaks else "–"])
    note = ("<p>Parameters trained in the last epoch (a parameter-efficient arm: adapters or tuned tensors and the "
            "head). Seconds per epoch: mean over the folds' epochs trained in this run (same machine, same threads "
            "for every arm). Peak memory is measured on a GPU only; on CPU see <code>benchmarks/peft_epoch.py</code>, "
            "which runs each strategy in its own process.</p>")
    return ("Training cost per arm", note + html_table(["arm", "strategy", "trained", "of", "share", "s/epoch",
                                                        "peak GPU MiB"], rows))


def _task_weights_section(run) -> tuple[str, str]:
    """Each multi-task arm's task losses and loss weights per epoch (first fold), figure and table."""
    weighting = run.config.multitask.weighting
    histories = {name: arm.histories[0] for name, arm in run.arms.items()
                 if arm.histories and any(k.startswith("weight_") for k in arm.histories[0][0])}
    words = {"equal": "every task weight 1", "fixed": "the configured tasks[].weight",
             "uncertainty": "learned (Kendall et al. 2018: exp(-s) x loss + s/2 per task; the weight shown is exp(-s))"}
    rows = [[arm, h["epoch"] + 1, *[h.get(f"weight_{t}", "") for t in run.metrics["tasks"]],
             *[h.get(f"loss_{t}", "") for t in run.metrics["tasks"]]] for arm, history in histories.items()
            for h in history]
    tasks = list(run.metrics["tasks"])
    text = (f"<p>Loss weighting: <b>{html.escape(weighting)}</b> ({html.escape(words[weighting])}). A case without a "
            "task's target is left out of that task's loss. Single-task control arms have one task (weight 1).</p>")
    return ("Multi-task loss weights", text + html_image(figures.task_losses_figure(histories), "task losses") +
            html_table(["arm", "epoch", *[f"weight {t}" for t in tasks], *[f"loss {t}" for t in tasks]], rows))


def _seeds_section(seeds: dict) -> tuple[str, str]:
    """cv.seeds: how much each arm's figure and each difference move with the training seed alone."""
    metric = seeds["metric"]
    arms = [[arm, *[round(v, 4) for v in spread["values"]], spread["sd"], spread["min"], spread["max"]]
            for arm, spread in seeds["arms"].items()]
    header = ["arm", *[f"seed {s}" for s in range(seeds["n"])], "SD", "min", "max"]
    differences = [[c["a"], c["b"], *[round(d, 4) for d in c["per_seed"]], c["sd"],
                    "yes" if c["within_seed_noise"] else "no"] for c in seeds["comparisons"]]
    text = (f"<p>Every arm was trained with {seeds['n']} seeds on the same folds; the metrics and comparisons above "
            "are of the seed-averaged predictions, with CIs that resample patients. Below, each seed's own "
            f"{html.escape(metric)} and each comparison's difference per seed: the spread the patient CIs do not "
            f"show. {html.escape(seeds['rule'])}: another seed could have reversed such a difference.</p>")
    return (f"Training seeds ({seeds['n']})", text + html_table(header, arms) +
            html_table(["a", "b", *[f"seed {s}" for s in range(seeds["n"])], "SD", "within seed noise"],
                       differences))


def _label_efficiency_section(curves: dict) -> tuple[str, str]:
    metric = curves["metric"]
    points = [[arm, p["fraction"], p.get("achieved_share"), p["labelled_patients"], p["value"], *p["ci95"]]
              for arm, series in curves["curves"].items() for p in series]
    comparisons = [[c["fraction"], c["a"], c["b"], c["mean_diff"], c["ci95"][0], c["ci95"][1], c["p_value"],
                    "primary" if c.get("role") == "primary" else c.get("p_holm", "—")] for c in curves["comparisons"]]
    text = ("<p>Every arm trained again with the labels of only a share of each training fold's patients "
            "(stratified; smaller shares nested in larger ones); the share covers the model-selection patients "
            "when their labels choose the epoch. The scored folds are the same at every share. 'achieved share': "
            "labelled / available patients, mean over folds.</p>")
    if curves.get("meta_reading"):
        text += f"<p><strong>{html.escape(curves['meta_reading'])}</strong></p>"
    return ("Label efficiency", text +
            html_image(figures.label_efficiency_figure(curves["curves"], metric), "label efficiency") +
            html_table(["arm", "share of labels", "achieved share", "labelled patients per fold", metric, "95% CI low", "95% CI high"],
                       points) +
            html_table(["share", "a", "b", "a − b", "95% CI low", "95% CI high", "p", "Holm p"], comparisons))


def _overlays(run) -> str:
    parts = []
    for name in run.arms:
        for fold in run.rundir.folds(name)[:2]:
            if not fold.overlays.exists():
                continue
            with np.load(fold.overlays) as data:
                for i in range(len(data["image"])):
                    parts.append(html_image(figures.overlay_figure(data["image"][i], data["truth"][i], data["pred"][i],
                                                                   f"{name} {fold.name} #{i + 1}"), "overlay"))
    return "".join(parts) or "<p>No overlays saved.</p>"


def write_report(run) -> Path:
    """Write ``report.html`` of a finished cv run (``medtl.workflows.cv.CVRun``)."""
    page = html_page("medtl cv report", f"medtl cross-validation report: {run.config.task}", _sections(run))
    return write_atomic(run.rundir.report, page)
