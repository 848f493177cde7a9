"""The model card (``model_card.md`` and ``model_card.html``) of an exported model, from its run folder.

Only counts, settings, hashes and metrics: no patient data, ids or file names. Sections
follow Mitchell et al. 2019 (model details, intended use, data, metrics, caveats), with
what medtl knows on top: preprocessing, pretraining source and its licence, calibration,
every warning and skip the run recorded, the training environment and the parity figures.
"""

from __future__ import annotations

import html
import json
import math
from collections import Counter
from dataclasses import dataclass, field

from ..plumbing.atomic import read_csv
from ..plumbing.html import html_page, html_table
from ..rundir import RunDir


@dataclass
class Section:
    """One card section: paragraphs, then tables ``(header, rows)``."""

    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[tuple[list[str], list[list]]] = field(default_factory=list)


def _number(value) -> str:
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.3f}"
    return "–" if value is None else str(value)


def _metric_rows(summary: dict) -> list[list]:
    return [[name, s["pooled"], s["ci95"][0], s["ci95"][1], s["mean"], s["std"]] for name, s in summary.items()]


def card_sections(rundir: RunDir, trained, spec, model_json: dict, weight_licence: str) -> list[Section]:
    """The card's content for ``trained`` (an arm of the run in ``rundir``) as exported with ``spec``."""
    metrics = json.loads(rundir.metrics.read_text())
    env = json.loads(rundir.env.read_text()) if rundir.env.exists() else {}
    config, arm = trained.config, trained.arm
    card = config.card
    sections = [Section("Model details", [
        f"{trained.task_name} model `{model_json['model_id']}` (the run's `{trained.model_id}` as exported): arm "
        f"`{arm}` of a medtl cross-validation run, "
        f"{len(trained.members)} fold model(s) ({', '.join(m.name for m in trained.members)}); "
        f"{'their softmax outputs are averaged' if len(trained.members) > 1 else 'one model'}. "
        f"Exported as {model_json['format']} by medtl {model_json['medtl_version']}.",
        f"Classes: {', '.join(trained.class_names)}."] + ([f"Licence of this model: {card.licence}."]
                                                          if card.licence else []) +
        ([f"Contact: {card.contact}."] if card.contact else []))]
    use = [f"Intended use: {card.intended_use}" if card.intended_use else
           "Intended use: not stated in the run's config (add a `card:` section with intended_use, out_of_scope, "
           "users, contact, licence). A research model: not a medical device, not validated for clinical use."]
    use += [f"Out of scope: {card.out_of_scope}"] if card.out_of_scope else []
    use += [f"Users: {card.users}"] if card.users else []
    sections.append(Section("Intended use", use))

    data = Section("Training data", [f"{metrics['n_cases']} cases of {metrics['n_patients']} patients; folds are "
                                     "patient-level (no patient on both sides)."])
    rows = [r for r in read_csv(rundir.predictions)[1] if r["arm"] == arm] if rundir.predictions.exists() else []
    if rows and trained.task.uses_label:
        counts = Counter(r["label"] for r in rows)
        data.tables.append((["class", "cases"], [[name, counts.get(name, 0)] for name in trained.class_names]))
    if rows and "site" in rows[0]:
        sites = Counter(r["site"] for r in rows)
        data.tables.append((["site", "cases"], sorted([[s, n] for s, n in sites.items()])))
    skipped = read_csv(rundir.skipped_cases)[1] if rundir.skipped_cases.exists() else []
    if skipped:
        reasons = Counter(r["reason"] for r in skipped)
        data.tables.append((["skipped: reason", "cases"], sorted([[k, v] for k, v in reasons.items()])))
    sections.append(data)
    sections.append(Section("Preprocessing", [f"{i + 1}. {step}" for i, step in enumerate(spec.steps)] +
                            [f"Network input {spec.network.input_shape}; output {spec.network.output} "
                             f"({spec.network.activation} over axis 1). {spec.output_geometry}"]))

    adaptation = json.loads(trained.members[0].path.with_name("adaptation.json").read_text()) \
        if trained.members[0].path.with_name("adaptation.json").exists() else {}
    architecture = [f"Backbone {config.model.backbone} ({config.data.dims}D), {spec.network.in_channels} input "
                    f"channel (first layer adapted by `{config.model.input_adapt}`), "
                    f"{trained.task.head_description}.",
                    f"Starting weights: {adaptation.get('source', config.model.pretrained)}"
                    + (f", file sha256 {adaptation['sha256'][:16]}" if adaptation.get("sha256") else "") + ".",
                    f"Licence of the starting weights: {weight_licence}."]
    for stage in metrics.get("source_stages", []):
        if arm in stage["arms"]:
            architecture.append(f"Source stage {stage['fingerprint']}: {stage.get('method', 'supervised')} on "
                                f"{stage['n_cases']} images" + (f"; {'; '.join(stage['notes'])}" if stage["notes"]
                                                                else "") + ".")
    if metrics.get("privacy", {}).get(arm):
        from ..evaluate.privacy_report import privacy_sentence

        architecture.append(privacy_sentence(arm, metrics["privacy"][arm]) + ".")
    sections.append(Section("Architecture and pretraining", architecture))

    result = metrics["arms"][arm]
    performance = Section("Metrics (out-of-fold, 95% CI by patient bootstrap)",
                          ["Each case scored once by the fold model that did not train on its patient. The exported "
                           "ensemble has not been scored on new data: use `medtl evaluate` on an external set."],
                          [(["metric", "pooled", "CI low", "CI high", "mean of folds", "SD of folds"],
                            _metric_rows(result["summary"]))])
    primary = metrics["primary_metric"]
    performance.tables.append(([f"arm of the run (exported: {arm})", primary, "CI low", "CI high"],
                               [[name, r["summary"][primary]["pooled"], *r["summary"][primary]["ci95"]]
                                for name, r in metrics["arms"].items()]))
    comparisons = [[c["a"], c["b"], c["metric"], c["mean_diff"], c["ci95"][0], c["ci95"][1], c["p_value"],
                    "primary" if c.get("role") == "primary" else c.get("p_holm", "—")]
                   for c in metrics.get("comparisons", []) if arm in (c["a"], c["b"])]
    if comparisons:
        performance.tables.append((["a", "b", "metric", "a − b", "CI low", "CI high", "p", "Holm p"], comparisons))
    per_site = metrics.get("sites", {}).get("per_site", {}).get(arm) if isinstance(metrics.get("sites"), dict) else None
    if per_site:
        performance.tables.append((["site", primary, "CI low", "CI high", "cases", "patients"],
                                   [[site, v["metrics"][primary]["value"], *v["metrics"][primary]["ci95"],
                                     v["n_cases"], v["n_patients"]] for site, v in per_site.items()]))
    if trained.task.uses_label and "brier" in result["summary"]:
        performance.paragraphs.append(
            f"Calibration: Brier {_number(result['summary']['brier']['pooled'])}, expected calibration error "
            f"{_number(result['summary']['ece']['pooled'])} (10 bins); see the run's report for the reliability plot.")
    sections.append(performance)
    if model_json.get("calibration"):
        sections.append(_calibration_section(model_json["calibration"], result.get("calibration")))

    if "tune" in metrics:
        sections.append(_search_section(metrics["tune"], arm))
    caveats = [w for w in metrics.get("warnings", [])]
    sections.append(Section("Known failure modes and caveats", [f"- {w}" for w in caveats] or
                            ["The run recorded no warning, skip or fallback."]))
    parity = model_json["parity"]
    sections.append(Section("Exported model", [
        f"Parity gate passed on {parity['n_cases']} validation cases of the run: max abs error "
        f"{parity['max_abs_error']:.2e}, max rel error {parity['max_rel_error']:.2e} (limits abs {parity['atol']}, "
        f"rel {parity['rtol']}, elementwise abs <= atol + rtol x |PyTorch|)."
        + (f" {parity['note']}." if parity.get("note") else "")]))
    packages = env.get("packages", {})
    sections.append(Section("Training environment", [
        f"{', '.join(f'{k} {v}' for k, v in packages.items())}; device {env.get('device', '–')}, seed "
        f"{env.get('seed', '–')}, data sha256 {env.get('data', {}).get('sha256', '–')[:16]}."]))
    return sections


def _search_section(search: dict, arm: str) -> Section:
    """The run's nested hyper-parameter search (medtl tune): the space, each outer fold's choice, the final values."""
    space = [[key, ", ".join(f"{kind} {value}" for kind, value in dim.items())] for key, dim in search["space"].items()]
    chosen = [[o["outer"], *[o["params"][key] for key in search["space"]]] for o in search["outer"]]
    final = search["final"]
    return Section("Hyper-parameter search", [
        f"The run searched {len(search['space'])} setting(s) by nested cross-validation ({search['sampler']} "
        f"sampler, {search['trials']} trials per outer fold, {search['inner_folds']} inner folds, "
        f"{search['direction']} {search['metric']}); this export is arm `{arm}`"
        + (" (the untuned settings)" if arm != "tuned" else "") + "."
        + (f" Compare arms searched the same way: {', '.join(search['also_tuned'])}." if search.get("also_tuned")
           else ""),
        "Final values (" + "; ".join(f"{k}: {final['rules'][k]}" for k in final["params"]) + "): " +
        ", ".join(f"{k}={v}" for k, v in final["params"].items()) + "."],
        [(["setting", "searched"], space), (["outer fold", *search["space"]], chosen)])


def _calibration_section(entry: dict, measured: dict | None) -> Section:
    """What the exported probabilities and prediction sets are, the guarantee, its assumptions, and the coverage
    the run measured (out-of-fold, per class and per site)."""
    temperatures = ", ".join(f"{t:.3f}" for t in entry["temperatures_in_network"])
    paragraphs = [f"The networks' logits are divided by their calibration temperatures ({temperatures}; fitted on "
                  "each fold's inner selection split, never on scored cases), so a softmax gives calibrated "
                  "probabilities."]
    sets = entry.get("sets")
    if sets:
        paragraphs.append(
            f"Prediction sets (model.json calibration.sets, score {sets['score']}, by {sets['by']}) hold the true class "
            f"with probability at least {1 - sets['alpha']:.2f}"
            + (" for every class (class-conditional)" if sets["by"] == "class" else "")
            + f", thresholds from {entry['sets_from']}. The guarantee assumes the cases are exchangeable with the "
            "calibration cases: a new site, scanner, protocol or period breaks it; check the coverage on your own "
            "labelled cases (`medtl evaluate`).")
    elif entry.get("note"):
        paragraphs.append(entry["note"])
    section = Section("Calibration and prediction sets", paragraphs)
    if measured:
        section.tables.append((["", "ECE", "Brier", "NLL"], [[when, measured[when]["ece"]["value"],
                                                              measured[when]["brier"]["value"],
                                                              measured[when]["nll"]["value"]]
                                                             for when in ("before", "after")]))
        coverage = measured.get("coverage")
        if coverage:
            rows = [["overall", coverage["n"], coverage["rate"], *coverage["ci95"]]]
            rows += [[f"class {k}", v["n"], v["rate"], *v["ci95"]] for k, v in coverage["per_class"].items()]
            rows += [[f"site {k}", v["n"], v["rate"], *v["ci95"]] for k, v in coverage.get("per_site", {}).items()]
            section.paragraphs.append(f"Coverage measured out-of-fold in the run (each fold's own sets; target "
                                      f"{coverage['target']:.2f}):")
            section.tables.append((["coverage of", "cases", "covered", "CI low", "CI high"], rows))
    return section


def render_markdown(title: str, sections: list[Section]) -> str:
    """The card as Markdown."""
    lines = [f"# {_plain(title)}", ""]
    for section in sections:
        lines += [f"## {_plain(section.title)}", ""]
        lines += [p for paragraph in section.paragraphs for p in (_plain(paragraph), "")]
        for header, rows in section.tables:
            lines.append("| " + " | ".join(_plain(h) for h in header) + " |")
            lines.append("|" + " --- |" * len(header))
            lines += ["| " + " | ".join(_plain(_number(v)).replace("|", "\\|") for v in row) + " |" for row in rows]
            lines.append("")
    return "\n".join(lines)


def _plain(text: str) -> str:
    """Text as literal Markdown: most Markdown viewers render inline HTML, and site names and the ``card:`` text
    are the user's (a ``<script>`` in them must show as text, as in the HTML card)."""
    return html.escape(str(text), quote=False)


def render_html(title: str, sections: list[Section]) -> str:
    """The card as one self-contained HTML page."""
    parts = []
    for section in sections:
        body = "".join(f"<p>{html.escape(p)}</p>" for p in section.paragraphs)
        body += "".join(html_table(header, rows) for header, rows in section.tables)
        parts.append((section.title, body))
    return html_page(title, title, parts)
