"""Unlabelled target images for domain adaptation: label-free by construction.

A ``TargetImage`` has no label and no mask field, and the two ways to make one read no
target: ``target_images_of`` copies only the pixels (and their hash) of prepared cases
(the held-out site of leave-one-site-out), and ``read_target_manifest`` reads only the
``image`` column of a CSV (a ``label`` or ``mask`` column is never parsed). The
adaptation code receives only ``TargetImage`` objects, so it cannot see a target label,
whatever a manifest holds.
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

log = logging.getLogger("medtl")


@dataclass(frozen=True)
class TargetImage:
    """One unlabelled, preprocessed target image ``(1, *spatial)`` (array, or its ``.npy`` file)."""

    image_data: np.ndarray | Path
    image_hash: str  # SHA-256 of the loaded pixels (for the overlap checks)
    group: str = ""  # opaque patient group (keyed hash), so that a patient's images stay together when cross-fitting

    @property
    def image(self) -> np.ndarray:
        """The network-ready array."""
        data = self.image_data
        return np.load(data, mmap_mode="r", allow_pickle=False) if isinstance(data, Path) else data


def target_images_of(cases: Sequence) -> list[TargetImage]:
    """The pixels of prepared cases and their opaque patient group, nothing else (labels and masks stay behind)."""
    return [TargetImage(c.image_data, c.image_hash, c.group_key) for c in cases]


def read_image_column(path: Path) -> list[Path]:
    """The ``image`` column of a CSV (paths relative to its folder); no other column is read."""
    from ..errors import InputError
    from ..plumbing.paths import missing_file_message
    from ..plumbing.text import read_user_text

    if not path.is_file():
        raise InputError(missing_file_message(path, "adapt.target_manifest", "point it at a CSV with an image column"))
    reader = csv.reader(io.StringIO(read_user_text(path, "adapt.target_manifest"), newline=""))
    header = [c.strip() for c in next(reader, [])]
    if "image" not in header:
        raise InputError(f"adapt.target_manifest {path} needs an 'image' column; it has {header}")
    column = header.index("image")
    images = [(path.parent / row[column].strip()).resolve() for row in reader
              if len(row) > column and row[column].strip()]
    if not images:
        raise InputError(f"adapt.target_manifest {path} lists no image")
    return images


def read_target_manifest(path: Path, config, progress: bool = False) -> tuple[list[TargetImage], list[dict]]:
    """Load and preprocess the target manifest's images like training images, without any target.

    Returns the images and skip records (``image``: row number, ``reason``) of the rows
    that could not be used (a bad target image is skipped, never fatal).
    """
    from ..errors import InputError
    from ..io import load_volume
    from ..io.reasons import Reason
    from ..plumbing.progress import progress_bar
    from ..transforms.network_input import network_input

    images, skipped = [], []
    paths = read_image_column(Path(path))
    with progress_bar("target images", len(paths), progress) as advance:
        for row, image_path in enumerate(paths, start=2):
            try:
                volume = load_volume(image_path, rgb=config.data.rgb)
                prepared = network_input(volume, config, f"target row {row}", None)
                array = np.asarray(prepared.sample["image"], dtype=np.float32)
                # the DICOM header's keyed patient key, when there is one: a patient's images stay together
                images.append(TargetImage(array, volume.pixel_hash(), volume.metadata.get("patient_key", "")))
            except InputError as exc:
                skipped.append({"row": row, "reason": exc.reason or Reason.IMAGE_UNREADABLE.name})
            # one unreadable target image must not stop the run; it is counted instead
            except Exception as exc:  # noqa: BLE001
                skipped.append({"row": row, "reason": Reason.IMAGE_UNREADABLE.name, "detail": type(exc).__name__})
            advance(1)
    if skipped:
        log.warning("%d target image(s) skipped", len(skipped))
    return images, skipped
