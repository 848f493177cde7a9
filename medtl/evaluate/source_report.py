"""The report's source-pretraining section: which source models the arms started from, and how they trained."""

from __future__ import annotations

import html

from ..plumbing.html import html_image, html_table
from . import figures


def source_section(stages: list[dict]) -> tuple[str, str]:
    """``("Source pretraining", html)`` from ``metrics["source_stages"]``."""
    rows = []
    for stage in stages:
        probe = stage.get("probe")
        curve = [h["probe_auc"] for h in stage["history"] if "probe_auc" in h]
        probe_text = (f"{probe['kind']} on {probe['n_cases']} labelled images: {curve[0]:.3f} before, "
                      f"{curve[-1]:.3f} after" if probe and curve else "none")
        rows.append([stage["fingerprint"], ", ".join(stage["arms"]), stage.get("method", "supervised"),
                     stage["n_cases"], stage.get("n_patients", "–"), stage.get("n_labels_ignored", "–"), probe_text])
    notes = "".join(f"<li>{html.escape(n)}</li>" for stage in stages for n in stage["notes"])
    meta = [stage for stage in stages if stage.get("meta")]
    text = ("<p>Self-supervised stages never read labels; the probe only monitors (no epoch is selected by "
            "it).</p>" + (f'<div class="warn"><ul>{notes}</ul></div>' if notes else ""))
    for stage in meta:
        settings, last = stage["settings"], stage["history"][-1]
        families = "; ".join(f"{f['name']} ({', '.join(f['class_names'])})" for f in stage["families"])
        text += (f"<p>Meta-learned stage {html.escape(stage['fingerprint'])} ({html.escape(stage['method'])}): "
                 f"{settings['ways']}-way {settings['shots']}-shot episodes with {settings['queries']} queries per "
                 f"class from {html.escape(families)}; {last['episodes']} episodes, last epoch's query accuracy "
                 f"{last['query_accuracy']:.3f} (of the adapted model, on training episodes: not a test score; "
                 f"<code>medtl fewshot</code> measures held-out episodes). {html.escape(stage.get('batch_norm', ''))}"
                 "</p>")
    return ("Source pretraining", text +
            html_table(["model", "arms", "method", "images", "patients", "labels ignored", "linear probe"], rows) +
            html_image(figures.source_curves_figure(stages), "source stage learning curves"))
