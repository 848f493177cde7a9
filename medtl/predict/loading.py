"""Loading and preprocessing items in DataLoader workers (prefetched while the model runs).

A worker returns the network input plus the small facts needed to map outputs back
(affines, original shape, geometry, DICOM frame references), never the original
volume, so memory per item in flight stays at network size. Any failure becomes a
reason code on that item; the batch goes on.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from ..config import Config
from ..errors import InputError
from ..io.reasons import Reason
from ..plumbing.redact import public_detail
from .inflight import InflightMarks
from .items import PredictItem
from .writers import OutputGeometry

log = logging.getLogger("medtl")


def _load(item: PredictItem, rgb: str = "refuse"):
    """``(Volume, frame_refs)``; frame_refs are ``(file, frame index)`` in volume order for DICOM inputs."""
    from ..io.dicom import dicom_plan, plan_to_volume
    from ..io.load import is_volume_file, load_volume

    plan = item.plan
    if plan is None and item.path is not None and not is_volume_file(item.path):
        if not item.path.exists():
            raise InputError(f"case {item.key}: image not found", "FILE_NOT_FOUND")
        plan = dicom_plan(item.path)
    if plan is not None:
        volume = plan_to_volume(plan)
        if "RESAMPLED_SLICES" in volume.reason_codes:  # its slices are no longer the source instances: no SEG
            return volume, None
        return volume, [(frame.path, frame.index) for frame in plan.frames]
    return load_volume(item.path, rgb=rgb), None


def load_item(item: PredictItem, config: Config, truth: bool) -> dict:
    """Everything the main process needs for one item (raises ``InputError`` when unusable)."""
    from ..data.provenance import image_record
    from ..io.load import load_volume
    from ..tasks import task_of
    from ..transforms.network_input import network_input

    volume, frame_refs = _load(item, config.data.rgb)
    mask = None
    # the truth mask of a segmentation run, or the ROI a classification run crops around (data.roi: mask)
    # (a multitask case may have no truth mask: it is then not scored on the segmentation task)
    task = task_of(config)
    if (truth and task.uses_mask and (not task.is_composite or item.mask is not None)) or \
            (config.data.roi == "mask" and item.mask is not None):
        if not item.mask.exists():
            raise InputError(f"case {item.key}: mask file not found", "FILE_NOT_FOUND")
        mask = load_volume(item.mask, as_label=True)
    prepared = network_input(volume, config, item.key, mask)
    notes = [code for code in dict.fromkeys(item.reasons.split(";") + prepared.notes) if code]
    return {"image": torch.as_tensor(np.asarray(prepared.sample["image"], dtype=np.float32)),
            "network_affine": prepared.network_affine, "input_affine": prepared.input_affine,
            "input_shape": prepared.input_shape, "geometry": OutputGeometry.of(volume),
            "spacing": tuple(float(s) for s in volume.spacing[-len(prepared.input_shape):]),
            "patient_key": item.patient_key or volume.metadata.get("patient_key", ""),
            "frame_refs": frame_refs, "notes": notes, "truth_mask": prepared.mask,
            "image_keys": image_record(np.asarray(prepared.sample["image"], dtype=np.float32), volume.pixel_hash())
            if truth else {}}


class ItemDataset(torch.utils.data.Dataset):
    """``dataset[i]`` -> ``{"index": i, ...}``, or ``{"index": i, "error": (reason, detail)}``."""

    def __init__(self, items: list[PredictItem], config: Config, truth: bool, marks: InflightMarks | None = None):
        self.items, self.config, self.truth, self.marks = items, config, truth, marks

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        item = self.items[index]
        if self.marks is not None:
            self.marks.begin(item.key)
        try:
            return self._load(index, item)
        finally:
            if self.marks is not None:
                self.marks.end(item.key)

    def _load(self, index: int, item: PredictItem) -> dict:
        try:
            return {"index": index, **load_item(item, self.config, self.truth)}
        except InputError as exc:
            return {"index": index, "error": (exc.reason or Reason.IMAGE_UNREADABLE.name, public_detail(exc))}
        # A reader bug on one odd series must not abort a batch of thousands; it is recorded instead.
        except Exception as exc:  # noqa: BLE001
            log.warning("unexpected %s while loading %s; recorded as IMAGE_UNREADABLE", type(exc).__name__, item.key)
            return {"index": index, "error": (Reason.IMAGE_UNREADABLE.name, type(exc).__name__)}


def collate_items(batch: list[dict]) -> list[dict]:
    """Keep items separate: failures travel with successes, images are stacked later."""
    return batch


def quiet_worker(_: int) -> None:
    """One thread per loader worker (the main process runs the model on the others)."""
    torch.set_num_threads(1)
