"""DICOM-SEG output (highdicom) referencing the source series, for return to a PACS.

This is the one medtl output that carries patient data: a SEG object must repeat the
source study's patient and study modules so the archive files it with the images.
It is written only when the input was DICOM, and the README says so.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._version import __version__
from ..errors import InputError
from ..plumbing.atomic import atomic_path

# Type 2 attributes highdicom copies from the source; anonymised exports often drop them.
# DICOM allows them empty, so a missing one is added empty (never invented).
_TYPE2_COPIED = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                 "ReferringPhysicianName", "AccessionNumber", "StudyID")


def _source_datasets(frame_refs: list[tuple[str, int]]):
    import pydicom

    paths = list(dict.fromkeys(path for path, _ in frame_refs))
    datasets = {p: pydicom.dcmread(p, stop_before_pixels=True) for p in paths}
    for dataset in datasets.values():
        for keyword in _TYPE2_COPIED:
            if keyword not in dataset:
                setattr(dataset, keyword, "")
    return paths, datasets


def _source_order(frame_refs: list[tuple[str, int]], labels: np.ndarray, paths: list[str], datasets: dict):
    """Source images and the label frames in the order highdicom expects."""
    if len(paths) == 1 and int(getattr(datasets[paths[0]], "NumberOfFrames", 1) or 1) > 1:
        # one multi-frame source: SEG frames follow the source's frame numbers; frames not in the volume stay empty
        source = datasets[paths[0]]
        out = np.zeros((int(source.NumberOfFrames), *labels.shape[1:]), dtype=labels.dtype)
        for k, (_, index) in enumerate(frame_refs):
            out[index] = labels[k]
        return [source], out
    if any(int(getattr(d, "NumberOfFrames", 1) or 1) > 1 for d in datasets.values()):
        raise InputError("series mixes several multi-frame files; DICOM-SEG needs one multi-frame source or "
                         "single-frame sources")
    return [datasets[path] for path, _ in frame_refs], labels


def write_dicom_seg(path: Path, frame_refs: list[tuple[str, int]], labels: np.ndarray, class_names: list[str],
                    model_id: str, deidentify: bool = False) -> Path:
    """Write ``labels`` ((frames, rows, cols), volume order) as a binary DICOM-SEG beside the source series.

    ``deidentify`` applies the PS3.15 basic profile (``medtl.predict.deidentify``) for sharing.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    paths, datasets = _source_datasets(frame_refs)
    sources, pixels = _source_order(frame_refs, labels.astype(np.uint8), paths, datasets)
    algorithm = hd.AlgorithmIdentificationSequence(name="medtl", version=__version__,
                                                   family=codes.cid7162.ArtificialIntelligence,
                                                   parameters={"model": model_id})
    segments = [hd.seg.SegmentDescription(
        segment_number=c, segment_label=class_names[c][:64] if c < len(class_names) else f"class {c}",
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Lesion, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm) for c in range(1, max(2, len(class_names)))]
    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=pixels, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=segments, series_instance_uid=hd.UID(), series_number=9901,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="medtl", manufacturer_model_name="medtl",
        software_versions=__version__, device_serial_number="none", series_description="medtl segmentation",
        omit_empty_frames=bool(pixels.any()))
    if deidentify:
        from .deidentify import deidentify_dataset

        deidentify_dataset(seg)
    with atomic_path(path) as tmp:
        seg.save_as(tmp)
    return path
