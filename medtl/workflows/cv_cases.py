"""An arm's own prepared cases, when its data settings differ from the main arm's (same cases, same order)."""

from __future__ import annotations

from ..arms import Arm
from ..data.case_cache import CaseCache
from ..data.dataset import PreparedCase, prepare_cases, preprocessing_fingerprint
from ..errors import InputError
from ..rundir import RunDir


def own_cases(arm: Arm, manifest, config, rundir: RunDir, cases: list[PreparedCase], progress: bool = False,
              keep_paths: bool = False) -> list[PreparedCase] | None:
    """The arm's cases prepared with its own settings, in the main arm's order; ``None`` when they are the same.

    An arm is trained and scored on exactly the main arm's cases (the folds index them);
    an arm that cannot use one of them is refused, because its comparison would not be
    paired.
    """
    if preprocessing_fingerprint(arm.config) == preprocessing_fingerprint(config):
        return None
    own, skipped = prepare_cases(manifest, arm.config, CaseCache(), progress, keep_paths)
    by_id = {c.case_id: c for c in own}
    lost = [s for s in skipped if s["case_id"] in {c.case_id for c in cases}]
    if lost:
        raise InputError(f"arm '{arm.name}' cannot use case {lost[0]['case_id']} ({lost[0]['reason']}) that the "
                         f"main arm uses ({len(lost)} case(s) in all); arms are compared on the same cases, so "
                         "change that arm's data settings or remove the case")
    return [by_id[c.case_id] for c in cases]
