"""The report's "Calibration and prediction sets" section: before/after with CIs, coverage per class and site,
set sizes, triage and the risk-coverage table, and the reliability diagram before and after."""

from __future__ import annotations

from ..plumbing.html import html_image, html_table
from . import figures

LABELS = {"ece": "ECE (10 equal-width bins)", "ece_equal_mass": "ECE (10 equal-mass bins)", "brier": "Brier",
          "nll": "NLL", "pooled_auc": "pooled AUC"}
POOLING = ("Each fold has its own temperature, so a fold's AUC is unchanged, but the pooled out-of-fold AUC "
           "(cases of all folds ranked together) can move: both are shown.")
GUARANTEE = ("Prediction sets hold the true class with probability at least 1 - alpha for every class (Mondrian) "
             "when the scored cases are exchangeable with the calibration cases (the fold's inner selection split: "
             "training patients held out); a new site, scanner or period breaks that assumption, and the per-site "
             "coverage below shows whether it held here.")


def _ci(figure: dict) -> list:
    return [figure["value"], *figure["ci95"]]


def _coverage_rows(block: dict) -> list[list]:
    coverage = block["coverage"]
    rows = [["overall", coverage["n"], coverage["rate"], *coverage["ci95"]]]
    rows += [[f"class {name}", v["n"], v["rate"], *v["ci95"]] for name, v in coverage["per_class"].items()]
    rows += [[f"site {name}", v["n"], v["rate"], *v["ci95"]] for name, v in coverage.get("per_site", {}).items()]
    return rows


def calibration_section(metrics: dict, arm_rows: dict[str, list[dict]], class_names) -> tuple[str, str]:
    """``(title, html)`` for every arm with a ``calibration`` block (a multitask arm: each classification task)."""
    body, curves, figures_html = "", {}, ""
    for arm, result in metrics["arms"].items():
        calibrated = result.get("calibration")
        if not calibrated:
            continue
        for head, block in (calibrated["tasks"] if "tasks" in calibrated else {"": calibrated}).items():
            names = list(class_names[head] if head else class_names)
            rows = [r for r in arm_rows[arm] if r.get("task", "") == head]
            title = f"{arm}, task {head}" if head else arm
            body += _block_html(title, block)
            curves[title] = block["risk_coverage"]
            shown = {f"{title} before": [{**r, **{f"prob_{n}": r.get(f"raw_prob_{n}", r[f"prob_{n}"]) for n in names}}
                                         for r in rows], f"{title} after": rows}
            figures_html += html_image(figures.calibration_figure(shown, names), f"calibration of {title}")
    if any("coverage" in str(r.get("calibration", {})) for r in metrics["arms"].values()):
        body = f"<p>{GUARANTEE}</p>" + body
    body = f"<p>{POOLING}</p>" + body + figures_html
    body += html_image(figures.risk_coverage_figure(curves), "risk-coverage")
    return "Calibration and prediction sets (fitted per fold on its inner selection split)", body


def _block_html(title: str, block: dict) -> str:
    """One calibrated head's tables: before/after, per site, coverage, triage, risk-coverage."""
    names = [n for n in ("ece", "ece_equal_mass", "brier", "nll", "pooled_auc") if n in block["before"]]
    header = [""] + [h for n in names for h in (LABELS[n], "95% CI", "")]
    body = f"<h3>{title}</h3>" + html_table(header, [[when, *[v for n in names for v in _ci(block[when][n])]]
                                                     for when in ("before", "after")])
    if block.get("per_site"):
        body += "<p>Per site (patients resampled within the site):</p>" + html_table(
            ["site", "cases", "", "ECE (equal mass)", "95% CI", "", "Brier", "95% CI", "", "NLL", "95% CI", ""],
            [[site, v["n_cases"], when, *_ci(v[when]["ece_equal_mass"]), *_ci(v[when]["brier"]),
              *_ci(v[when]["nll"])] for site, v in block["per_site"].items() for when in ("before", "after")])
    if "coverage" in block:
        body += (f"<p>Target coverage {block['coverage']['target']:.2f}; mean set size "
                 f"{block['sets']['mean_size']:.2f}, single-class sets {block['sets']['singleton_share']:.1%}, "
                 f"empty sets {block['sets']['empty_share']:.1%}.</p>")
        body += html_table(["coverage of", "cases", "covered", "95% CI low", "95% CI high"], _coverage_rows(block))
        triage = block["triage"]
        groups = [("all", triage), *((f"site {s}", t) for s, t in triage.get("per_site", {}).items())]
        body += f"<p>Triage: {triage['rule']}.</p>" + html_table(
            ["cases", "n", "referred", "accepted", "error among accepted", "95% CI low", "95% CI high"],
            [[name, t["cases"], t["referral_rate"], t["accepted"], t["error_among_accepted"]["rate"],
              *t["error_among_accepted"]["ci95"]] for name, t in groups])
    return body + html_table(["share referred (least confident)", "cases kept", "accuracy of the kept"],
                             [[p["abstention"], p["kept"], p["accuracy"]] for p in block["risk_coverage"]])
