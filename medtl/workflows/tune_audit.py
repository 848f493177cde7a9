"""The audit of a nested search: every patient any trial trained, selected or was scored on belongs to that
outer fold's training patients, and no patient of the outer fold is among them. Read from the
``fold_images.json`` every trained fold writes, so the check needs nothing but the run folder."""

from __future__ import annotations

import json

from ..errors import MedtlError
from .tune_trial import SearchContext, outer_training


class AuditError(MedtlError):
    """A trial of the search touched a patient outside its outer fold's training set (a leak)."""


def audit_search(ctx: SearchContext, searches) -> dict:
    """Check every trial fold of every outer fold; ``{"outer_folds", "trial_folds_checked", "patients_checked",
    "passed"}``. A violation is an ``AuditError`` naming the trial folder."""
    checked = patients = 0
    for found in searches:
        allowed = {ctx.cases[i].patient_key for i in outer_training(found.fold)}
        scored = {ctx.cases[i].patient_key for i in found.fold.val}
        folder = ctx.rundir.child(f"{ctx.folder}/{found.key}").root
        for images in sorted(folder.glob("trial*/arms/*/*/fold_images.json")):
            roles = json.loads(images.read_text())
            seen = {key for role in ("train", "selection", "scored", "reference")
                    for key in roles.get(role, {}).get("patient_keys", [])}
            outside = seen - allowed
            if outside or seen & scored:
                raise AuditError(f"audit failed: {images.parent.relative_to(ctx.rundir.root)} used "
                                 f"{len(outside | (seen & scored))} patient(s) of the outer fold's scored set or "
                                 "outside its training set; the search leaked and its numbers must not be used")
            checked += 1
            patients += len(seen)
    return {"outer_folds": len(searches), "trial_folds_checked": checked, "patient_memberships_checked": patients,
            "passed": True}
