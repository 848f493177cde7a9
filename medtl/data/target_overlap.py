"""A source stage's images against the target run: the leak guard of every source stage.

Pretraining on images of the target run (identical pixels under any name or id) or of
its patients lets the encoder see cases it is later scored on: with labels (supervised
source stage) the scores are optimistic; without (self-supervised) the use is
transductive. Either is refused unless ``source.allow_target_images`` allows it, and then
the report says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError


@dataclass
class PoolOverlap:
    """Source images that belong to the target run: by identical pixels, by patient, or either."""

    n_cases: int  # source images overlapping by either key
    by_image: int
    by_patient: int
    n_without_patient: int  # source images with no patient key (checked by pixels only)

    def describe(self) -> str:
        """One line for logs and the report."""
        return (f"{self.n_cases} source image(s) belong to the target run ({self.by_image} with identical pixels, "
                f"{self.by_patient} of its patients)")


def target_overlap(pool: list, target: list) -> PoolOverlap:
    """Compare source and target cases (objects with ``image_hash`` and ``patient_key``)."""
    target_pixels = {c.image_hash for c in target if c.image_hash}
    target_patients = {c.patient_key for c in target if c.patient_key}
    by_image = [bool(c.image_hash) and c.image_hash in target_pixels for c in pool]
    by_patient = [bool(c.patient_key) and c.patient_key in target_patients for c in pool]
    return PoolOverlap(sum(a or b for a, b in zip(by_image, by_patient)), sum(by_image), sum(by_patient),
                       sum(not c.patient_key for c in pool))


def check_pool(overlap: PoolOverlap, allow: bool, labelled: bool = False) -> str | None:
    """Refuse an overlapping source set unless allowed; returns the note the report must carry when allowed."""
    if not overlap.n_cases:
        return None
    what = "the labelled source manifest" if labelled else "the self-supervised pool"
    if not allow:
        raise InputError(f"{what} holds images of the target run: {overlap.describe()}. Pretraining on them lets the "
                         "encoder see images it is later scored on. Remove them from the source manifest, or set "
                         "source.allow_target_images: true to allow it (the report will say so)")
    if labelled:
        return (f"source stage trained on target patients: {overlap.describe()}; allowed "
                "(source.allow_target_images: true): the encoder learned labels of cases it is scored on, so the "
                "scores of arms that start from it are optimistic")
    return (f"transductive pretraining: {overlap.describe()}; they were allowed (source.allow_target_images: true), "
            "so the encoder saw unlabelled images of patients it is scored on - some reviewers reject this")
