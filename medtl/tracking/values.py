"""What trackers record, as flat ``{name: number}`` and ``{name: text}`` maps (no patient data, no paths)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

SKIPPED_EPOCH_KEYS = ("epoch", "seconds")  # the step itself; wall time differs between a run and its resume


def numbers(record: dict, skip: tuple[str, ...] = ()) -> dict[str, float]:
    """The finite numeric entries of a record (bools and NaN left out)."""
    return {k: float(v) for k, v in record.items() if k not in skip and isinstance(v, (int, float))
            and not isinstance(v, bool) and math.isfinite(float(v))}


def epoch_values(record: dict) -> dict[str, float]:
    """One epoch's numbers: ``train_loss``, ``lr``, ``inner_score``, DANN and multitask facts."""
    return numbers(record, SKIPPED_EPOCH_KEYS)


def summary_values(metrics: dict) -> dict[str, float]:
    """``summary/<arm>/<metric>/<pooled|ci95_low|ci95_high|mean|std>`` (multitask: ``summary/<task>/...``)
    and ``compare/<a>_vs_<b>/<metric>/<diff|ci95_low|ci95_high|p_value|p_holm>`` of metrics.json."""
    blocks = {f"{name}/": block for name, block in metrics.get("tasks", {}).items()} or {"": metrics}
    out: dict[str, float] = {}
    for prefix, block in blocks.items():
        for arm, result in block["arms"].items():
            for metric, s in result["summary"].items():
                values = {"pooled": s["pooled"], "ci95_low": s["ci95"][0], "ci95_high": s["ci95"][1],
                          "mean": s["mean"], "std": s["std"]}
                out.update({f"summary/{prefix}{arm}/{metric}/{k}": v for k, v in values.items()})
        for c in block["comparisons"]:
            values = {"diff": c["mean_diff"], "ci95_low": c["ci95"][0], "ci95_high": c["ci95"][1],
                      "p_value": c["p_value"], **({"p_holm": c["p_holm"]} if "p_holm" in c else {})}
            out.update({f"compare/{prefix}{c['a']}_vs_{c['b']}/{c['metric']}/{k}": v for k, v in values.items()})
    return numbers(out)


def _public(value: Any) -> str:
    """A config value as a parameter: a path becomes its file's content hash (paths can name patients)."""
    if isinstance(value, str) and ("/" in value or "\\" in value):
        from ..plumbing.hashing import sha256_file

        path = Path(value)
        return f"file sha256 {sha256_file(path)[:16]}" if path.is_file() else "a path (not a file here)"
    return str(value)


def config_params(flat: dict[str, Any]) -> dict[str, str]:
    """The resolved config's leaves as parameters (``tracking.*`` left out: it names the tracker itself)."""
    return {k: _public(v)[:500] for k, v in flat.items() if not k.startswith(("tracking.", "track"))}
