"""Identical or near-identical images filed under different patients: leakage in disguise.

A re-exported, re-encoded or resized copy of an image keeps (almost all of) its
difference hash (dHash, 256 bits) on the preprocessed image: measured here, a copy
with noise and a 1% gain change differs in 1-3 bits, while different images of the
sample sets differ in 13 or more. Two cases within ``MAX_BITS`` of each other but filed
under different patient groups are probably the same image twice; if they are the
same person, patient-level folds leak. ``cv`` reports every such pair.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

HASH_SIZE = 16  # 16 x 16 = 256 bits
MAX_BITS = 4  # at most this many differing bits: near-identical
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint16)


def difference_hash(image: np.ndarray) -> bytes:
    """dHash of a network input ``(1, *spatial)``: signs of horizontal gradients on a 16 x 17 thumbnail."""
    from skimage.transform import resize

    plane = np.asarray(image[0], dtype=np.float32)
    if plane.ndim == 3:  # a volume: its mean projection along the slices
        plane = plane.mean(axis=0)
    thumb = resize(plane, (HASH_SIZE, HASH_SIZE + 1), anti_aliasing=True, preserve_range=True)
    return np.packbits(thumb[:, 1:] > thumb[:, :-1]).tobytes()


def case_dhash(item) -> bytes:
    """``difference_hash`` of a case's image, computed once per case (the duplicate check, the leak checks and
    the run's training-image record all ask for it)."""
    cached = getattr(item, "dhash", None)
    if cached is None:
        cached = difference_hash(item.image)
        if hasattr(item, "dhash"):
            item.dhash = cached
    return cached


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bit distances ``(len(a), len(b))`` between two stacks of packed hashes."""
    return _POPCOUNT[a[:, None, :] ^ b[None, :, :]].sum(axis=2)


@dataclass(frozen=True)
class DuplicatePairs:
    """Cross-patient (near-)duplicate pairs: ``total`` of them, the first ``len(pairs)`` kept for the message."""

    pairs: list[tuple[str, str]]
    total: int


def close_pairs(a: np.ndarray, b: np.ndarray, max_bits: int = MAX_BITS, same: bool = False):
    """Index pairs ``(i, j)`` of hashes of ``a`` and ``b`` at most ``max_bits`` apart (``same``: ``a is b``, pairs
    with ``i < j`` only).

    Pigeonhole: split the bits into ``max_bits + 1`` bands; two hashes that close agree exactly
    on at least one band, so only hashes sharing a band value are compared (near-linear instead of
    every pair).
    """
    bands = np.array_split(np.arange(a.shape[1]), max_bits + 1)
    seen: set[tuple[int, int]] = set()
    for band in bands:
        index: dict[bytes, list[int]] = {}
        for j in range(len(b)):
            index.setdefault(b[j, band].tobytes(), []).append(j)
        for i in range(len(a)):
            for j in index.get(a[i, band].tobytes(), ()):
                if (same and j <= i) or (i, j) in seen:
                    continue
                seen.add((i, j))
                if int(_POPCOUNT[a[i] ^ b[j]].sum()) <= max_bits:
                    yield i, j


def cross_patient_duplicates(cases, max_bits: int = MAX_BITS, keep: int = 20) -> DuplicatePairs:
    """Pairs of case ids whose images are (near-)identical while their patient groups differ.

    Identical hashes are grouped first and pairs are counted from group sizes, so memory
    stays linear in the cases (50,000 rows of one image are one group, not 1.25e9 pairs);
    at most ``keep`` pairs are listed.
    """
    if len(cases) < 2:
        return DuplicatePairs([], 0)
    hashes = np.stack([np.frombuffer(case_dhash(c), dtype=np.uint8) for c in cases])
    unique, inverse = np.unique(hashes, axis=0, return_inverse=True)
    members: list[list[int]] = [[] for _ in range(len(unique))]
    for i, u in enumerate(np.asarray(inverse).reshape(-1)):
        members[int(u)].append(i)
    groups = [c.group_key for c in cases]
    pairs: list[tuple[str, str]] = []
    total = 0

    def add(first: list[int], second: list[int] | None) -> None:
        nonlocal total
        total += _cross_group_pairs(first, second, groups)
        if len(pairs) < keep:
            for a, b in _first_pairs(first, second, groups, keep - len(pairs)):
                pairs.append((cases[a].case_id, cases[b].case_id))

    for u in range(len(unique)):
        add(members[u], None)
    for u, v in close_pairs(unique, unique, max_bits, same=True):
        add(members[u], members[v])
    return DuplicatePairs(sorted(pairs), total)


def _cross_group_pairs(first: list[int], second: list[int] | None, groups: list[str]) -> int:
    """Pairs (within ``first``, or across ``first`` x ``second``) whose patient groups differ, counted."""
    count_first = Counter(groups[i] for i in first)
    if second is None:
        n = len(first)
        return n * (n - 1) // 2 - sum(k * (k - 1) // 2 for k in count_first.values())
    count_second = Counter(groups[i] for i in second)
    return len(first) * len(second) - sum(k * count_second.get(g, 0) for g, k in count_first.items())


def _first_pairs(first: list[int], second: list[int] | None, groups: list[str], limit: int):
    """Up to ``limit`` index pairs ``(a, b)``, ``a < b``, of different patient groups."""
    found = 0
    for x, a in enumerate(first):
        for b in (first[x + 1:] if second is None else second):
            if groups[a] != groups[b]:
                yield (a, b) if a < b else (b, a)
                found += 1
                if found >= limit:
                    return
