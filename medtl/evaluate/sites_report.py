"""The Sites section of report.html: per-site metrics, the drop at unseen sites, the shift check, methods."""

from __future__ import annotations

import html

from ..plumbing.html import html_image, html_table
from . import figures


def _per_site_table(sites: dict, metric: str) -> str:
    rows = []
    for arm, by_site in sites["per_site"].items():
        for site, entry in by_site.items():
            value = entry["metrics"][metric]
            rows.append([arm, site, entry["n_cases"], entry["n_patients"], value["value"], *value["ci95"]])
    return html_table(["arm", "site", "cases", "patients", metric, "95% CI low", "95% CI high"], rows)


def _drop_table(drop: dict) -> str:
    rows = [[arm, site, d["training_sites_held_out"], d["test_site"], d["drop"], *d["ci95"], d["n_held_out_patients"],
             d["n_test_patients"]] for arm, by_site in drop.items() for site, d in by_site.items()]
    metric = next((d["metric"] for by_site in drop.values() for d in by_site.values()), "metric")
    return html_table(["arm", "test site", f"{metric}, held-out patients of the training sites",
                       f"{metric} at the unseen site", "drop", "95% CI low", "95% CI high", "held-out patients",
                       "test-site patients"], rows)


def _comparison_table(comparisons: list[dict]) -> str:
    rows = [[c["site"], c["a"], c["b"], c["metric"], c["mean_diff"], c["ci95"][0], c["ci95"][1], c["p_value"],
             c.get("p_holm", "—"), c["n_patients"]] for c in comparisons]
    return html_table(["site", "a", "b", "metric", "a − b", "95% CI low", "95% CI high", "p", "Holm p (all "
                       "secondary comparisons)", "patients"], rows)


def _shift_table(checks: list[dict]) -> str:
    rows = [[c["features"], c["n_sites"], c["n_cases"], c["auc"], *c["ci95"], c.get("note", "")] for c in checks]
    return html_table(["features of", "sites", "cases", "site AUC", "95% CI low", "95% CI high", "note"], rows)


def weight_warnings(domain: dict) -> list[str]:
    """Plain words for re-weighting whose weights mostly hit the clip bound (the domains barely overlap)."""
    out = []
    for arm, folds in domain.items():
        for index, facts in enumerate(folds):
            weights = facts.get("weights")
            if weights and weights["n_clipped"] > weights["n"] / 2:
                out.append(f"arm '{arm}' fold {index}: {weights['n_clipped']} of {weights['n']} importance weights hit "
                           f"the clip bound; the domain classifier separates the domains almost perfectly "
                           f"(AUC {weights['domain_auc']:.2f}), so the density ratio cannot be estimated well and the "
                           "weights carry little beyond the clipping (ESS "
                           f"{weights['ess']:.1f} of {weights['n']})")
    return out


def _domain_table(domain: dict, histories: dict) -> str:
    rows = []
    for arm, folds in domain.items():
        for index, facts in enumerate(folds):
            weights = facts.get("weights", {})
            last = histories.get(arm, [[]])[index][-1:] if index < len(histories.get(arm, [])) else []
            accuracy = last[0].get("domain_accuracy") if last else None
            rows.append([arm, index, facts.get("method", ""), facts.get("n_target_images", ""),
                         weights.get("ess", ""), weights.get("n", ""), weights.get("min", ""), weights.get("max", ""),
                         weights.get("n_clipped", ""), weights.get("domain_auc", ""),
                         "" if accuracy is None else accuracy])
    return html_table(["arm", "fold", "method", "target images", "ESS", "training cases", "min weight", "max weight",
                       "clipped", "domain AUC (frozen features)", "discriminator accuracy, last epoch"], rows)


def sites_section(metrics: dict) -> tuple[str, str]:
    """``("Sites", html)`` for a run whose manifest has a site column."""
    sites, metric = metrics["sites"], metrics["primary_metric"]
    counts = ", ".join(f"{html.escape(s)} ({n} cases)" for s, n in sites["cases_per_site"].items())
    parts = [f"<p>Sites (the manifest's site column): {counts}. Scheme: {html.escape(sites['scheme'])}.</p>",
             "<h3>Metrics per site</h3>", _per_site_table(sites, metric),
             html_image(figures.site_metric_figure(sites["per_site"], metric), "metric per site")]
    if sites.get("drop"):
        parts += ["<h3>Drop at an unseen site</h3><p>Each site scored by models that never saw it, against the "
                  "same models on held-out patients of their training sites that were not used to choose the "
                  "epoch (positive = worse at the new hospital).</p>", _drop_table(sites["drop"])]
    for note in sites.get("drop_notes", []):
        parts.append(f"<p>{html.escape(note)}</p>")
    if sites["comparisons"]:
        parts += ["<h3>Methods compared per site (paired patient bootstrap)</h3>", _comparison_table(sites["comparisons"])]
    parts.append("<h3>Shift check: can the model's features tell the sites apart?</h3><p>A logistic regression "
                 "predicts each case's site from pooled encoder features (out-of-fold over patients); AUC 0.5 = the "
                 "sites look alike to the model, 1.0 = every image betrays its site.</p>")
    parts.append(_shift_table(sites["shift_check"]) if sites["shift_check"] else
                 f"<p>{html.escape(sites.get('shift_check_note', 'not computed'))}</p>")
    return "Sites", "".join(parts)


def adaptation_section(metrics: dict, histories: dict) -> tuple[str, str]:
    """``("Domain adaptation", html)``: target images, importance weights and ESS, discriminator accuracy."""
    text = ("<p>DANN: the discriminator's accuracy near 0.5 at the end means the encoder's features no longer tell "
            "training from target images apart. Re-weighting: ESS is the number of equally weighted cases the "
            "weighted loss is worth.</p>")
    return "Domain adaptation", text + _domain_table(metrics["domain_adaptation"], histories)
