"""Typed results of cross-validation: one ``FoldResult`` per (arm, repeat, fold), one ``ArmResult`` per arm.

A ``FoldResult`` is what ``done.json`` holds (``FoldDir.write_result`` / ``FoldDir.read_result``);
an ``ArmResult`` gathers an arm's folds in (repeat, fold) order. The summaries, the report,
the trackers and the CLI read these objects, never raw dicts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class FoldResult:
    """One finished fold of one arm.

    ``record``: the fold's metrics and counts (``fold``, ``repeat``, ``n_train``, ``n_val``,
    ``selected_epoch``, the task's metrics); ``rows``: out-of-fold per-case rows; ``history``:
    one dict per epoch; ``inner_rows``: rows of the drop's reference cases (leave-one-site-out
    only: training sites' held-out patients, disjoint from the selection cases under ``best_inner``); ``method``: facts of the training method (e.g. DANN's target-image count, importance
    weights); ``adaptation``: what happened to every pretrained tensor; ``notes``: fallbacks the
    report must show; ``cost``: what the fold's training cost on this machine (``seconds_per_epoch``,
    ``peak_gpu_mib`` on a GPU): machine-dependent, so kept out of ``record`` and the metrics.
    """

    record: dict[str, Any]
    rows: list[dict] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)
    inner_rows: list[dict] = field(default_factory=list)
    method: dict[str, Any] = field(default_factory=dict)
    adaptation: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    cost: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The ``done.json`` layout (``method`` is stored as ``domain`` there, as older runs wrote it)."""
        out = asdict(self)
        out["domain"] = out.pop("method")
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "FoldResult":
        """Read ``done.json`` (also those written before ``inner_rows``/``notes`` existed)."""
        return cls(record=dict(data["record"]), rows=list(data.get("rows", [])),
                   history=list(data.get("history", [])), inner_rows=list(data.get("inner_rows", [])),
                   method=dict(data.get("domain", data.get("method", {}))),
                   adaptation=dict(data.get("adaptation", {})), notes=list(data.get("notes", [])),
                   cost=dict(data.get("cost", {})))


@dataclass(frozen=True)
class ArmResult:
    """Every fold of one arm, in (repeat, fold) order, with the arm's resolved config."""

    name: str
    config: Any  # medtl.config.Config
    folds: tuple[FoldResult, ...]

    @property
    def records(self) -> list[dict]:
        """Each fold's record."""
        return [f.record for f in self.folds]

    @property
    def rows(self) -> list[dict]:
        """Out-of-fold rows of every fold (one per scored case, per task for multitask, per repeat)."""
        return [row for f in self.folds for row in f.rows]

    @property
    def histories(self) -> list[list[dict]]:
        """Per fold: its epoch history."""
        return [f.history for f in self.folds]

    @property
    def inner_rows(self) -> list[list[dict]]:
        """Per fold: rows of its drop-reference cases (leave-one-site-out), else empty lists."""
        return [f.inner_rows for f in self.folds]

    @property
    def method_facts(self) -> list[dict]:
        """Per fold: the training method's facts (empty for plain fine-tuning)."""
        return [f.method for f in self.folds]

    @property
    def adaptation(self) -> dict:
        """What happened to the pretrained tensors (the same in every fold: the first fold's report)."""
        return self.folds[0].adaptation if self.folds else {}

    @property
    def notes(self) -> list[str]:
        """Every fold's notes."""
        return [note for f in self.folds for note in f.notes]


@dataclass
class SourceModel:
    """A trained (or cached) source-stage checkpoint (supervised or self-supervised) and its summary."""

    path: Path
    reused: bool
    fingerprint: str
    summary: dict
    notes: list[str] = field(default_factory=list)  # about this use (leak guard, ignored labels): for the report
