"""N-way K-shot episodes: patient-disjoint, class-balanced, seeded per episode.

A *family* is one label column of one source manifest (its classes are the classes an
episode chooses from). Episode ``e`` is drawn by ``numpy.random.default_rng((seed, e))``
alone, so it is the same whatever the worker count, order or resume point. Every image of
an episode comes from a different patient: support and query never share a patient, and
neither do two classes.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import InputError

MAX_DRAWS = 50  # redraws of an episode's classes when shared patients leave one short


@dataclass
class TaskFamily:
    """The classes of one (source, column): per class, ``{patient key: [image indices]}``."""

    name: str
    class_names: list[str]
    patients: list[dict[str, list[int]]]

    def patient_counts(self) -> list[int]:
        """Patients with at least one image of each class."""
        return [len(members) for members in self.patients]


@dataclass
class Episode:
    """One task: image indices and labels ``0..ways-1`` of its support and query sets."""

    number: int
    family: str
    classes: list[str]  # class name of label 0, 1, ...
    support: list[int]
    support_labels: list[int]
    query: list[int]
    query_labels: list[int]
    patients: list[str] = field(default_factory=list)  # support patients, then query patients


def build_families(names: list[str], labels: list[list[int | None]], class_names: list[list[str]],
                   patients: list[str]) -> list[TaskFamily]:
    """Families from per-family label vectors over the same images (``None``: the image has no label there)."""
    families = []
    for name, column, classes in zip(names, labels, class_names):
        members: list[dict[str, list[int]]] = [defaultdict(list) for _ in classes]
        for index, label in enumerate(column):
            if label is not None:
                members[label][patients[index]].append(index)
        families.append(TaskFamily(name, list(classes), [dict(m) for m in members]))
    return families


class EpisodeSampler:
    """Draws episode ``e`` of ``(ways, shots, queries)`` from the families, refusing a family that cannot form one."""

    def __init__(self, families: list[TaskFamily], ways: int, shots: int, queries: int, seed: int):
        self.ways, self.shots, self.queries, self.seed = ways, shots, queries, seed
        need = shots + queries
        self.families, self.eligible = [], []
        problems = []
        for family in families:
            counts = family.patient_counts()
            eligible = [c for c, n in enumerate(counts) if n >= need]
            if len(eligible) < ways:
                shown = ", ".join(f"{name} {n}" for name, n in zip(family.class_names, counts))
                problems.append(f"{family.name}: {len(family.class_names)} class(es), patients per class: {shown}")
            self.families.append(family)
            self.eligible.append(eligible)
        if problems:
            raise InputError(f"a {ways}-way {shots}-shot task with {queries} queries per class needs {ways} classes "
                             f"with at least {need} patients each (one image per patient; support and query "
                             "patients differ), and these sources cannot form one: " + "; ".join(problems)
                             + ". Lower meta.ways, meta.shots or meta.queries, or remove the column")

    def episode(self, number: int) -> Episode:
        """Episode ``number`` (a function of the seed and the number alone).

        A patient with images of several classes can serve one class only per episode; when
        such patients leave a chosen class short, the classes are drawn again (from the same
        seeded stream, so the result stays a function of the seed and the number).
        """
        rng = np.random.default_rng((self.seed, number))
        for _ in range(MAX_DRAWS):
            episode = self._draw(rng, number)
            if episode is not None:
                return episode
        raise InputError(f"episode {number}: no {self.ways} classes of one column had {self.shots + self.queries} "
                         f"distinct patients each after {MAX_DRAWS} draws (patients with images of several classes "
                         "can serve one class only); lower meta.shots or meta.queries")

    def _draw(self, rng: np.random.Generator, number: int) -> Episode | None:
        index = int(rng.integers(len(self.families)))
        family, eligible = self.families[index], self.eligible[index]
        chosen = [eligible[i] for i in rng.permutation(len(eligible))[: self.ways]]
        used: set[str] = set()
        support, support_labels, query, query_labels, support_patients, query_patients = [], [], [], [], [], []
        for label, class_index in enumerate(chosen):
            members = family.patients[class_index]
            available = sorted(p for p in members if p not in used)
            if len(available) < self.shots + self.queries:
                return None
            picked = [available[i] for i in rng.permutation(len(available))[: self.shots + self.queries]]
            used.update(picked)
            images = [members[p][int(rng.integers(len(members[p])))] for p in picked]
            support += images[: self.shots]
            query += images[self.shots:]
            support_labels += [label] * self.shots
            query_labels += [label] * self.queries
            support_patients += picked[: self.shots]
            query_patients += picked[self.shots:]
        return Episode(number, family.name, [family.class_names[c] for c in chosen], support, support_labels, query,
                       query_labels, support_patients + query_patients)


class EpisodeImages(torch.utils.data.Dataset):
    """Episodes ``start .. start + count - 1`` as ``(support x, support y, query x, query y, number)`` tensors."""

    def __init__(self, sampler: EpisodeSampler, images: list, start: int, count: int):
        self.sampler, self.images, self.start, self.count = sampler, images, start, count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, offset: int):
        episode = self.sampler.episode(self.start + offset)
        return (stack_images(self.images, episode.support), torch.tensor(episode.support_labels),
                stack_images(self.images, episode.query), torch.tensor(episode.query_labels), episode.number)


def stack_images(images: list, indices: list[int]) -> torch.Tensor:
    """``(n, 1, *spatial)`` float32 of the images at ``indices`` (prepared cases or arrays)."""
    return torch.from_numpy(np.stack([np.asarray(getattr(images[i], "image", images[i]), dtype=np.float32)
                                      for i in indices]))
