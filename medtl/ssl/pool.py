"""The unlabelled pool against the target run: the leak guard, and the pool's identity."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError


@dataclass
class PoolOverlap:
    """Pool images that belong to the target run: by identical pixels, by patient, or either."""

    n_cases: int  # pool images overlapping by either key
    by_image: int
    by_patient: int
    n_without_patient: int  # pool images with no patient key (checked by pixels only)

    def describe(self) -> str:
        """One line for logs and the report."""
        return (f"{self.n_cases} pool image(s) belong to the target run ({self.by_image} with identical pixels, "
                f"{self.by_patient} of its patients)")


def target_overlap(pool: list, target: list) -> PoolOverlap:
    """Compare pool and target cases (objects with ``image_hash`` and ``patient_key``)."""
    target_pixels = {c.image_hash for c in target if c.image_hash}
    target_patients = {c.patient_key for c in target if c.patient_key}
    by_image = [bool(c.image_hash) and c.image_hash in target_pixels for c in pool]
    by_patient = [bool(c.patient_key) and c.patient_key in target_patients for c in pool]
    return PoolOverlap(sum(a or b for a, b in zip(by_image, by_patient)), sum(by_image), sum(by_patient),
                       sum(not c.patient_key for c in pool))


def check_pool(overlap: PoolOverlap, allow: bool) -> str | None:
    """Refuse an overlapping pool unless allowed; returns the note the report must carry when it was allowed."""
    if not overlap.n_cases:
        return None
    if not allow:
        raise InputError(f"the self-supervised pool holds images of the target run: {overlap.describe()}. "
                         "Pretraining on them lets the encoder see images it is later scored on. Remove them from the "
                         "source manifest, or set ssl.allow_target_images: true to allow it (transductive use; the "
                         "report will say so)")
    return (f"transductive pretraining: {overlap.describe()}; they were allowed (ssl.allow_target_images: true), so "
            "the encoder saw unlabelled images of patients it is scored on - some reviewers reject this")
