"""Identical or near-identical images filed under different patients: leakage in disguise.

A re-exported, re-encoded or resized copy of an image keeps (almost all of) its
difference hash (dHash, 256 bits) on the preprocessed image: measured here, a copy
with noise and a 1% gain change differs in 1-3 bits, while different images of the
sample sets differ in 13 or more. Two cases within ``MAX_BITS`` of each other but filed
under different patient groups are probably the same image twice; if they are the
same person, patient-level folds leak. ``cv`` reports every such pair.
"""

from __future__ import annotations

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


def cross_patient_duplicates(cases, max_bits: int = MAX_BITS, chunk: int = 128) -> list[tuple[str, str]]:
    """Pairs of case ids whose images are (near-)identical while their patient groups differ."""
    if len(cases) < 2:
        return []
    hashes = np.stack([np.frombuffer(difference_hash(c.image), dtype=np.uint8) for c in cases])
    groups = np.array([c.group_key for c in cases])
    pairs = []
    for start in range(0, len(cases), chunk):  # chunks keep memory at chunk x n x 32 bytes
        block = hashes[start:start + chunk]
        distance = _POPCOUNT[block[:, None, :] ^ hashes[None, :, :]].sum(axis=2)
        for i, j in zip(*np.nonzero(distance <= max_bits)):
            a, b = start + int(i), int(j)
            if a < b and groups[a] != groups[b]:
                pairs.append((cases[a].case_id, cases[b].case_id))
    return pairs
