"""``meta``: the meta-learning source stage (``source.task: maml | fomaml | anil | protonet``; docs/meta.md)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from .base import Section

META_TASKS = ("maml", "fomaml", "anil", "protonet")


class MetaSource(Section):
    """One labelled source of episodes: a manifest and the label columns whose classes make N-way tasks."""

    manifest: Path
    columns: list[str] = Field(default_factory=lambda: ["label"], min_length=1)

    @field_validator("columns")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"columns = {value} repeats a column")
        return value


class MetaConfig(Section):
    """How episodes are drawn and how the meta-learner adapts to each of them.

    An episode is an N-way K-shot task: ``ways`` classes of one (source, column), ``shots``
    support and ``queries`` query images per class, every image from a different patient
    (support and query are patient-disjoint). ``source.epochs`` epochs of
    ``episodes_per_epoch`` episodes, ``tasks_per_step`` episodes per outer (Adam, ``source.lr``) step.
    """

    sources: list[MetaSource] = Field(default_factory=list)  # empty: source.manifest's label column
    ways: int = Field(2, ge=2)
    shots: int = Field(5, ge=1)
    queries: int = Field(5, ge=1)
    episodes_per_epoch: int = Field(64, ge=1)
    tasks_per_step: int = Field(4, ge=1)
    inner_steps: int = Field(1, ge=1)  # maml / fomaml / anil: gradient steps on the support set
    inner_lr: float = Field(0.05, gt=0)
    learn_inner_lr: bool = False  # maml / fomaml / anil: one learnable inner learning rate per tensor (Meta-SGD)
    eval_inner_steps: int | None = Field(None, ge=1)  # steps at few-shot evaluation (default: inner_steps)
    prototype_head: bool = True  # protonet: a target classification head starts from the training prototypes
