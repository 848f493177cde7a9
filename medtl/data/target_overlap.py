"""A source stage's images against the target run: the leak guard of every source stage.

Pretraining on images of the target run (identical pixels or an identical network input,
under any name, format or id: ``medtl.data.overlap``) or of
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
    """Source images that belong to the target run: copies (identical pixels or network input), images of its
    patients, or either; and possible copies (near-identical: reported, not refused)."""

    n_cases: int  # source images that are copies of target images or of target patients
    by_image: int  # identical pixels
    by_patient: int
    n_without_patient: int  # source images with no patient key (checked by their images only)
    by_network: int = 0  # other pixels, identical network input (a re-export)
    near: int = 0  # near-identical, not identical (a JPEG re-encode, a filtered export): possible copies

    def describe(self) -> str:
        """One line for logs and the report."""
        return (f"{self.n_cases} source image(s) belong to the target run ({self.by_image} with identical pixels, "
                f"{self.by_network} with an identical network input after preprocessing (a re-export), "
                f"{self.by_patient} of its patients)")

    def near_note(self) -> str | None:
        """The possible copies, when there are any."""
        if not self.near:
            return None
        return (f"{self.near} source image(s) are near-identical to target-run images without being identical "
                "(possible copies, e.g. JPEG re-encodes): kept; check them if the pool could hold the target's images")


def target_overlap(pool: list, target: list) -> PoolOverlap:
    """Compare source and target cases (objects with ``image``, ``image_hash`` and ``patient_key``) by the one rule
    of ``medtl.data.overlap``, and by patient."""
    from .overlap import image_keys, relations

    found = relations(image_keys(pool), image_keys(target))
    target_patients = {c.patient_key for c in target if c.patient_key}
    by_patient = [bool(c.patient_key) and c.patient_key in target_patients for c in pool]
    copies = [r.is_copy for r in found]
    return PoolOverlap(sum(a or b for a, b in zip(copies, by_patient)), sum(r.kind == "pixels" for r in found),
                       sum(by_patient), sum(not c.patient_key for c in pool),
                       by_network=sum(r.kind == "network" for r in found),
                       near=sum(r.kind == "near" and not p for r, p in zip(found, by_patient)))


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
