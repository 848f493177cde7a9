"""One rule for "the same image", used by every leak guard.

A copy of an image need not have the same pixels: a PNG re-export one grey level
brighter, or as 16 bits instead of 8, has other pixels but (after intensity
normalisation) the same network input, bit for bit or to 1e-6; a JPEG re-encode has a
network input a little off but the same picture. Comparing raw pixels only (SHA-256)
misses all of them. Every guard therefore asks three questions, strongest first:

- ``pixels``: identical decoded pixels (SHA-256), under any file name, format or id;
- ``network``: identical network input (largest difference at most ``NETWORK_TOLERANCE``),
  checked on the images whose difference hashes are close;
- ``near``: near-identical difference hash (dHash of the network input, at most
  ``MAX_BITS`` of 256 bits apart) without an identical input: a possible copy (a JPEG
  re-encode, a slightly cropped or filtered export), reported with counts, never silently
  ignored and never treated as proof.

``pixels`` and ``network`` are copies: a source stage that holds them is refused, a fold
that would train on them is refused, leave-one-site-out leaves them out of the fold.
``near`` is reported. The users: ``medtl.data.splits`` (leave-one-site-out),
``medtl.workflows.cv_fold`` (fold leak check), ``medtl.data.target_overlap`` (source
stages), ``medtl.workflows.cv_targets`` (``adapt.target_manifest``) and
``medtl.data.provenance`` (``medtl evaluate`` against ``training_images.json``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from .duplicates import MAX_BITS, case_dhash, close_pairs, hamming

NETWORK_TOLERANCE = 1e-5  # largest |difference| of two network inputs that are the same input (float32 noise)
NETWORK_DECIMALS = 3  # the stored network-input hash rounds to this many decimals (training_images.json)
CANDIDATES = 8  # close-dHash images compared array to array per image (the closest first)
COPY_KINDS = ("pixels", "network")


@dataclass(frozen=True)
class ImageKeys:
    """What the guards compare of a list of images: pixel hashes, difference hashes and (lazily) the arrays."""

    pixels: tuple[str, ...]
    dhashes: np.ndarray  # (n, 32) uint8
    array: Callable[[int], np.ndarray]  # the network input of image i

    def __len__(self) -> int:
        return len(self.pixels)

    def subset(self, indices: Sequence[int]) -> "ImageKeys":
        """The keys of ``indices`` (in that order)."""
        chosen = list(indices)
        return ImageKeys(tuple(self.pixels[i] for i in chosen), self.dhashes[chosen] if chosen else
                         np.zeros((0, self.dhashes.shape[1]), np.uint8), lambda i: self.array(chosen[i]))


def image_keys(items: Sequence) -> ImageKeys:
    """Keys of prepared cases or target images (anything with ``image`` and ``image_hash``)."""
    dhashes = (np.stack([np.frombuffer(case_dhash(item), dtype=np.uint8) for item in items])
               if items else np.zeros((0, 32), np.uint8))
    return ImageKeys(tuple(item.image_hash for item in items), dhashes, lambda i: items[i].image)


def same_network_input(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two network inputs are the same input (same shape, every value within ``NETWORK_TOLERANCE``)."""
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and float(np.max(np.abs(a.astype(np.float32) - b.astype(np.float32)))) <= \
        NETWORK_TOLERANCE


def network_hash(image: np.ndarray) -> str:
    """SHA-256 of the network input rounded to ``NETWORK_DECIMALS`` (for comparisons without the arrays:
    ``medtl evaluate`` against a run's ``training_images.json``)."""
    array = np.round(np.asarray(image, dtype=np.float32), NETWORK_DECIMALS) + 0.0  # + 0.0: no negative zeros
    return hashlib.sha256(str(array.shape).encode() + array.astype(np.float32).tobytes()).hexdigest()


@dataclass(frozen=True)
class Relation:
    """The strongest relation of one image to a set: ``kind`` (``pixels``/``network``/``near``/``""``), the
    index of the image it matched in that set (-1: none) and the dHash distance in bits."""

    kind: str = ""
    other: int = -1
    bits: int = -1

    @property
    def is_copy(self) -> bool:
        """Identical pixels or identical network input."""
        return self.kind in COPY_KINDS


def relations(pool: ImageKeys, target: ImageKeys, max_bits: int = MAX_BITS) -> list[Relation]:
    """For each image of ``pool``, its strongest relation to any image of ``target``.

    Target images with the same dHash are one group; close groups are found by
    ``close_pairs`` (near-linear), so memory and time stay linear in the images.
    """
    out = [Relation()] * len(pool)
    if not len(pool) or not len(target):
        return out
    by_pixels: dict[str, int] = {}
    for j, digest in enumerate(target.pixels):
        if digest:
            by_pixels.setdefault(digest, j)
    unique, inverse = np.unique(target.dhashes, axis=0, return_inverse=True)
    members: dict[int, list[int]] = {}
    for j, u in enumerate(np.asarray(inverse).reshape(-1)):
        members.setdefault(int(u), []).append(j)
    close: dict[int, list[tuple[int, int]]] = {}
    for i, u in close_pairs(pool.dhashes, unique, max_bits):
        close.setdefault(i, []).append((int(hamming(pool.dhashes[i:i + 1], unique[u:u + 1])[0, 0]), u))
    for i in range(len(pool)):
        if pool.pixels[i] and pool.pixels[i] in by_pixels:
            j = by_pixels[pool.pixels[i]]
            out[i] = Relation("pixels", j, int(hamming(pool.dhashes[i:i + 1], target.dhashes[j:j + 1])[0, 0]))
        elif i in close:
            candidates = [(bits, j) for bits, u in sorted(close[i]) for j in members[u]][:CANDIDATES]
            mine = pool.array(i)
            match = next(((bits, j) for bits, j in candidates if same_network_input(mine, target.array(j))), None)
            out[i] = Relation("network", match[1], match[0]) if match else Relation("near", candidates[0][1],
                                                                                     candidates[0][0])
    return out


@dataclass(frozen=True)
class OverlapCounts:
    """How many images of a pool are copies of, or possibly copies of, images of a target set."""

    pixels: int
    network: int
    near: int

    @property
    def copies(self) -> int:
        """Identical pixels or identical network input."""
        return self.pixels + self.network

    def describe(self) -> str:
        """Words for logs and reports, e.g. ``3 identical (1 same pixels, 2 same network input, e.g. a re-export)``."""
        parts = []
        if self.copies:
            parts.append(f"{self.copies} identical ({self.pixels} same pixels, {self.network} same network input "
                         "after preprocessing, e.g. a re-export)")
        if self.near:
            parts.append(f"{self.near} possible copies (near-identical, e.g. a JPEG re-encode)")
        return ", ".join(parts) or "none"

    @classmethod
    def of(cls, found: Sequence[Relation]) -> "OverlapCounts":
        """Counts of a ``relations`` result."""
        kinds = [r.kind for r in found]
        return cls(kinds.count("pixels"), kinds.count("network"), kinds.count("near"))


def overlap_counts(pool: Sequence, target: Sequence) -> OverlapCounts:
    """``relations`` of two lists of prepared cases / target images, counted."""
    return OverlapCounts.of(relations(image_keys(pool), image_keys(target)))


def copy_keys(items: Sequence) -> list[str]:
    """A key per image such that copies (``pixels`` or ``network``) share one: the pixel hash of the first image of
    its copy group. Leave-one-site-out excludes a training case whose key is a test-site key."""
    keys = image_keys(items)
    parent = list(range(len(items)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def join(i: int, j: int) -> None:
        a, b = root(i), root(j)
        if a != b:
            parent[max(a, b)] = min(a, b)

    first_of: dict[str, int] = {}
    for i, digest in enumerate(keys.pixels):
        if digest:
            join(i, first_of.setdefault(digest, i))
    if len(items) > 1:
        unique, inverse = np.unique(keys.dhashes, axis=0, return_inverse=True)
        members: list[list[int]] = [[] for _ in range(len(unique))]
        for i, u in enumerate(np.asarray(inverse).reshape(-1)):
            members[int(u)].append(i)
        representatives: list[list[int]] = []
        for group in members:  # one array comparison per image against its group's distinct inputs
            reps: list[int] = []
            for i in group:
                match = next((r for r in reps[:CANDIDATES] if same_network_input(keys.array(i), keys.array(r))), None)
                if match is None:
                    reps.append(i)
                else:
                    join(i, match)
            representatives.append(reps)
        for u, v in close_pairs(unique, unique, same=True):
            for a in representatives[u][:CANDIDATES]:
                for b in representatives[v][:CANDIDATES]:
                    if root(a) != root(b) and same_network_input(keys.array(a), keys.array(b)):
                        join(a, b)
    return [keys.pixels[root(i)] or f"image-{root(i)}" for i in range(len(items))]


def possible_copy_notes(cases: Sequence, folds: Sequence) -> list[str]:
    """Leave-one-site-out: per test site, the training-site cases near-identical to one of its images (possible
    copies; copies themselves are already left out of the fold)."""
    keys, notes = image_keys(cases), []
    for fold in folds:
        others = list(fold.train) + list(fold.inner)
        near = sum(r.kind == "near" for r in relations(keys.subset(others), keys.subset(fold.val)))
        if near:
            notes.append(f"test site '{cases[fold.val[0]].site}': {near} training-site case(s) are near-identical to "
                         "one of its images (possible copies, e.g. JPEG re-encodes); kept, check them")
    return notes
