"""The report's federated section: who the clients were, what travelled, and what federating cost or gained."""

from __future__ import annotations

import html

from ..plumbing.html import html_table
from .summary import plain_reading, verdict_line

BATCH_NORM = {"average": "BatchNorm weights and statistics averaged with every other tensor",
              "local": "BatchNorm kept per client (FedBN); the shared model scored here carries their case-weighted "
                       "average"}


def federated_reading(metrics: dict, arm: str) -> list[str]:
    """In words: the federated arm against pooled training and against each site alone (paired CIs)."""
    lines = []
    for comparison in metrics.get("comparisons", []):
        if comparison["a"] == arm and (comparison["b"] == "pooled" or comparison["b"].startswith("local-")):
            lines.append(f"{verdict_line(comparison)}. {plain_reading(comparison)}")
    return lines


def federated_section(metrics: dict) -> tuple[str, str]:
    """``("Federated training", html)`` from ``metrics["federated"]`` (each federated arm's per-fold facts)."""
    parts = ["<p>Simulated in one process: each site is a client that trains only on its own training patients "
             "of the fold; after every round the server averages the clients' weights, weighted by their training "
             "images. Only model weights and image counts travel between client and server (no image, label or "
             "case id). This shows what federating the training costs in accuracy; it does not show a deployment's "
             "security (transport, who runs the server, what the weights themselves leak).</p>"]
    for arm, folds in metrics["federated"].items():
        first = folds[0]
        settings = (f"{first['rounds']} rounds of {first['local_epochs']} local epoch(s), "
                    f"{first['clients_per_round'] or 'all'} client(s) per round, {BATCH_NORM[first['batch_norm']]}"
                    + (f", proximal term mu = {first['mu']:g} (FedProx)" if first.get("mu") else ""))
        parts.append(f"<h3>{html.escape(arm)} ({html.escape(first['method'])})</h3><p>{html.escape(settings)}.</p>")
        sites = sorted({s for f in folds for s in f["clients"]})
        rows = [[index, *[f["clients"].get(s, 0) for s in sites]] for index, f in enumerate(folds)]
        parts.append(html_table(["fold", *[f"{s or '(no site)'}: training images" for s in sites]], rows))
        parts += [f"<p>{html.escape(line)}</p>" for line in federated_reading(metrics, arm)]
    return "Federated training", "".join(parts)
