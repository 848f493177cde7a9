"""The report's explanation section: Grad-CAM overlays per arm and the sanity checks."""

from __future__ import annotations

import html

from ..plumbing.html import html_image, html_table


def explanation_section(summary: dict, figures: dict[str, str]) -> tuple[str, str]:
    """``("Explanation maps", html)`` from ``metrics["explanations"]`` and the overlay figures."""
    rows = []
    for arm, entry in summary["arms"].items():
        if "note" in entry:
            rows.append([arm, entry["note"], None, None, None, None, None])
            continue
        rank = entry["randomisation_spearman"]
        game = entry.get("pointing_game", {})
        label = f"{arm} ({entry['task']} head)" if "task" in entry else arm  # multitask: the head explained
        cases = (f"{entry['n_cases']} of {entry['n_fold_cases']} (seeded sample)" if "n_fold_cases" in entry
                 else entry["n_cases"])
        rows.append([label, entry["layer"], cases, rank["mean"], f"{rank['min']:.2f} to {rank['max']:.2f}",
                     f"{game['hits']}/{game['n']} ({game['share']:.2f})" if game else "no masks",
                     game.get("chance")])
    text = ("<p>Grad-CAM (1 = most important) of each arm's first-fold model on that fold's validation cases, for "
            "the predicted class. Model-randomisation check: Spearman correlation between the maps of the trained "
            "model and of a copy whose head and last encoder stage are re-initialised; near 1 means the maps do not "
            "depend on what was learned. Pointing game: positive cases whose map maximum lies inside the finding's "
            "mask (chance = the mask's share of the image).</p>")
    images = "".join(html_image(figure, f"explanation maps {html.escape(arm)}") for arm, figure in figures.items()
                     if figure)
    return ("Explanation maps", text + html_table(["arm", "layer", "cases", "randomisation rank corr. (mean)",
                                                   "range", "pointing game", "chance"], rows) + images)
