"""The report section of a nested hyper-parameter search (``medtl tune``): what each outer fold chose, how far
the inner-fold score of the chosen trial is from the outer score (the optimism of tuning on reported folds),
parameter importance, the trial histories and the audit."""

from __future__ import annotations

import html

from ..plumbing.html import html_image, html_table
from . import figures


def _value(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def search_section(search: dict) -> tuple[str, str]:
    """``(title, html)`` of the ``tune`` block of metrics.json."""
    keys = list(search["space"])
    metric = search["metric"]
    tuned, base = html.escape(search.get("tuned_arm", "tuned")), html.escape(search.get("arm", "the main arm"))
    intro = (f"<p>{len(keys)} setting(s) of arm <code>{base}</code> searched with the "
             f"{html.escape(search['sampler'])} sampler, "
             f"{search['trials']} trial(s) per outer fold, each cross-validated on {search['inner_folds']} "
             f"patient-grouped inner folds of that outer fold's <b>training patients only</b>; the chosen parameters "
             f"were retrained on the whole outer training set and scored once on the outer fold (arm "
             f"<code>{tuned}</code>), compared with the untuned <code>{base}</code> on the same outer folds"
             f"{' (the primary comparison)' if tuned == 'tuned' else ''}. Objective: {search['direction']} "
             f"{html.escape(metric)}"
             f"{', median pruning' if search['pruning'] else ''}. Arms run <b>fixed</b> (untuned, the settings "
             f"their config gives): {', '.join(map(html.escape, search.get('fixed_arms', []))) or 'none'}.</p>")
    space = html_table(["setting", "distribution"], [[k, ", ".join(f"{kind} {v}" for kind, v in dim.items())]
                                                     for k, dim in search["space"].items()])
    rows = [[o["outer"], o["best_trial"], *[_value(o["params"][k]) for k in keys], o["inner_best"], o["outer_score"],
             o["gap"]["difference"], o["gap"]["ci95"][0], o["gap"]["ci95"][1],
             f"{o['trials']['complete']}/{o['trials']['pruned']}/{o['trials']['fail']}"]
            for o in search["outer"]]
    chosen = html_table(["outer fold", "chosen trial", *keys, f"inner {metric} (chosen)", f"outer {metric}",
                         "gap", "gap CI low", "gap CI high", "complete/pruned/failed"], rows)
    differ = search["chosen_differ"]
    words = (f"<p>The outer folds chose <b>different</b> values of {', '.join(map(html.escape, differ))}: the search "
             "is not stable on this data, so the tuned arm's estimate is that of the search procedure, not of one "
             "setting.</p>" if differ else "<p>Every outer fold chose the same values.</p>")
    gap = search["optimism"]["gap"]
    optimism = (f"<p><b>What the naive way would have said.</b> The chosen trials scored {metric} "
                f"{search['optimism']['naive_inner_best']:.3f} on average on their inner folds, the folds they were "
                f"selected on: that is the number a search that tunes and reports on the same folds would give. "
                f"Scored once on the outer folds, the tuned models differ from it by {gap['difference']:+.3f} "
                f"(inner − outer; 95% CI {gap['ci95'][0]:+.3f} to {gap['ci95'][1]:+.3f}, patients of each set "
                "resampled): a positive gap is the optimism of selecting on validation folds.</p>")
    final = search["final"]
    final_rows = [[k, _value(v), final["rules"][k]] for k, v in final["params"].items()]
    parts = [intro, space, chosen, words, optimism, "<h3>Final model</h3>",
             html_table(["setting", "value", "rule"], final_rows),
             f"<p>Config written to <code>{html.escape(final['config'])}</code> (no <code>tune:</code> section).</p>"]
    if search["importance"]:
        parts += ["<h3>Parameter importance</h3>",
                  html_table(["setting", "importance"], sorted(([k, v] for k, v in search["importance"].items()),
                                                               key=lambda r: -r[1])),
                  f"<p>{html.escape(search['importance_method'])}; on few trials it is a rough guide.</p>"]
    parts.append(html_image(figures.search_history_figure(search["outer"], metric, search["direction"]),
                            "trial history"))
    audit = search["audit"]
    parts.append(f"<p><b>Audit.</b> {audit['trial_folds_checked']} trial fold(s) of {audit['outer_folds']} outer "
                 "fold(s) checked: every patient a trial trained, selected or was scored on belongs to its outer "
                 "fold's training patients (tune/audit.json).</p>")
    title = "Hyper-parameter search (nested cross-validation)" + ("" if tuned == "tuned" else f" of arm {base}")
    return title, "".join(parts)
