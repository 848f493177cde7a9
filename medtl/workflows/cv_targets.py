"""The unlabelled target images of adaptation arms in ``medtl cv`` (DANN, re-weighting).

Either each arm's ``adapt.target_manifest`` (prepared once per run, label-free), or,
in leave-one-site-out, the pixels of each fold's held-out site.
"""

from __future__ import annotations

from ..arms import Arm
from ..data.dataset import PreparedCase, preprocessing_fingerprint
from ..data.overlap import overlap_counts
from ..domain.targets import TargetImage, read_target_manifest, target_images_of
from ..errors import InputError


def targets_for(run, arm: Arm, scored: list[PreparedCase]) -> list[TargetImage] | None:
    """An adaptation arm's unlabelled target images for one fold: ``adapt.target_manifest``'s, or (leave one
    site out) the pixels of the held-out site's cases, which carry no label past this point."""
    if arm.config.adapt.method == "none":
        return None
    if arm.name in run.target_images:
        return run.target_images[arm.name]
    return target_images_of(scored)


def load_target_images(run, arms: list[Arm], progress: bool) -> None:
    """Prepare each adaptation arm's ``adapt.target_manifest`` images once (label-free; skips counted)."""
    prepared: dict[tuple, list[TargetImage]] = {}
    for arm in arms:
        path = arm.config.adapt.target_manifest
        if arm.config.adapt.method == "none" or path is None:
            continue
        key = (str(path), preprocessing_fingerprint(arm.config))
        if key not in prepared:
            images, skipped = read_target_manifest(path, arm.config, progress)
            if not images:
                raise InputError(f"adapt.target_manifest {path}: none of its {len(skipped)} image(s) could be used "
                                 f"({sorted({s['reason'] for s in skipped})})")
            overlap = overlap_counts(images, run.cases)
            message = (f"arm '{arm.name}': {len(images)} unlabelled target image(s) from {path.name}"
                       + (f", {len(skipped)} skipped" if skipped else "")
                       + (f"; {overlap.copies} of them are images of this run's cases ({overlap.describe()}; "
                          "transductive use: the method saw them, without labels, before they were scored)"
                          if overlap.copies else "")
                       + (f"; {overlap.near} are near-identical to this run's images (possible copies, e.g. JPEG "
                          "re-encodes)" if overlap.near and not overlap.copies else ""))
            run.warnings.append(message)
            run.rundir.log(message)
            prepared[key] = images
        run.target_images[arm.name] = prepared[key]
