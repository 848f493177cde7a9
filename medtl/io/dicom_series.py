"""Group indexed DICOM files into volumes (``SeriesPlan``), without decoding pixels.

Rules (README, messy input): index the whole tree first, then group by SeriesInstanceUID;
split a series whose planes differ in orientation, matrix, spacing or image type
(``SERIES_SPLIT``); where planes share a position, split by the first 4th-dimension
key that explains it (echo, temporal position, trigger time, b-value, ...), drop
exact copies (``DUPLICATE_DROPPED``) and refuse real conflicts
(``DUPLICATE_POSITION_CONFLICT``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from .dicom_geometry import StackGeometry, plane_geometry, position_keys, stack_geometry
from .dicom_pixels import pixel_digest
from .dicom_records import FOURTH_DIMENSION_KEYS, DicomFile, Frame, series_group
from .pseudonym import keyed_hash
from .reasons import Finding, Reason

MIN_VOLUME_SLICES = 3


@dataclass
class SeriesPlan:
    """One loadable volume: sorted frames, geometry and findings."""

    series_key: str
    patient_key: str
    modality: str
    kind: str  # "3d", "2d" or "multiframe"
    geometry: StackGeometry | None
    files: dict[str, DicomFile]
    findings: list[Finding] = field(default_factory=list)
    refused: Finding | None = None
    counted_files: list[str] = field(default_factory=list)

    @property
    def site_key(self) -> str:
        """The keyed equipment/institution hash of the series' first file (see ``dicom_header.site_key``)."""
        return next(iter(self.files.values())).site_key if self.files else ""

    @property
    def frames(self) -> list[Frame]:
        return self.geometry.frames

    @property
    def shape(self) -> tuple[int, ...]:
        first = next(iter(self.files.values()))
        if self.kind == "2d":
            return first.plane_shape
        return (len(self.frames), *first.plane_shape)


@dataclass
class Assembly:
    """Result of grouping: usable plans, refused plans, and files dropped on the way."""

    plans: list[SeriesPlan] = field(default_factory=list)
    dropped: list[tuple[str, Finding]] = field(default_factory=list)


def _geometry_key(frame: Frame, info: DicomFile, rounded: dict) -> tuple:
    orientation = _rounded(frame.orientation, rounded)
    spacing = _rounded(frame.pixel_spacing, rounded)
    # the SOP class keeps a classic and an enhanced copy of one series apart: both load, as separate volumes
    return (orientation, *info.plane_shape, spacing, info.image_type[:3], info.bits_stored, info.sop_class_uid)


def _rounded(values: tuple | None, cache: dict) -> tuple | None:
    """``values`` rounded to 3 decimals by numpy, once per distinct tuple (a series repeats one orientation)."""
    if not values:
        return None
    found = cache.get(values)
    if found is None:
        found = cache[values] = tuple(np.round(values, 3))
    return found


def assemble_series(files: list[DicomFile]) -> Assembly:
    """Group usable (non-skipped) files into plans; every input file ends up counted once."""
    by_series: dict[str, list[DicomFile]] = defaultdict(list)
    for info in sorted(files, key=lambda f: f.path):
        by_series[series_group(info)].append(info)
    assembly = Assembly()
    for group, members in by_series.items():
        one = assemble_one_series(group, members)
        assembly.plans += one.plans
        assembly.dropped += one.dropped
    return assembly


def assemble_one_series(series_uid: str, members: list[DicomFile]) -> Assembly:
    """The plans of one series group (``series_group``; ``members`` in path order); each file counted once.

    A file's frames are only ever in its own group's plans, so groups assemble independently.
    """
    assembly = Assembly()
    _assemble_one_series(series_uid, _drop_same_sop(members, assembly), assembly)
    counted: set[str] = set()
    for plan in assembly.plans:
        plan.counted_files = [p for p in dict.fromkeys(f.path for f in plan.frames) if p not in counted]
        counted.update(plan.counted_files)
    # a file counts once: in the first volume holding any of its frames, else in one skipped row (its first reason;
    # an enhanced copy drops once per frame, and a file can lose some frames and keep others)
    dropped: dict[str, Finding] = {}
    for path, finding in assembly.dropped:
        if path not in counted:
            dropped.setdefault(path, finding)
    assembly.dropped = list(dropped.items())
    return assembly


def _safe_digest(info: DicomFile) -> str:
    try:
        return pixel_digest(info)
    # an undecodable copy cannot be shown identical: it counts as different
    except Exception:  # noqa: BLE001
        return f"undecodable:{info.path}"


def _drop_same_sop(members: list[DicomFile], assembly: Assembly) -> list[DicomFile]:
    """One file per SOPInstanceUID: exact copies are dropped, copies with other pixels refuse the UID entirely.

    Which of two different images is "the" instance cannot be known, so neither is used
    (the sort order of file names must never decide).
    """
    by_uid: dict[str, list[DicomFile]] = defaultdict(list)
    for info in members:
        by_uid[info.sop_instance_uid or info.path].append(info)
    kept = []
    for same in by_uid.values():
        if len(same) == 1:
            kept.append(same[0])
        elif len({_safe_digest(info) for info in same}) == 1:
            kept.append(same[0])
            assembly.dropped += [(info.path, Finding(Reason.DUPLICATE_DROPPED, "same SOPInstanceUID, same pixels"))
                                 for info in same[1:]]
        else:
            assembly.dropped += [(info.path, Finding(Reason.SOP_INSTANCE_CONFLICT, f"{len(same)} files"))
                                 for info in same]
    return kept


def _assemble_one_series(series_uid: str, members: list[DicomFile], assembly: Assembly) -> None:
    files = {info.path: info for info in members}
    singles, stackable, rounded = [], defaultdict(list), {}
    for info in members:
        if info.projection or (info.n_frames > 1 and not info.enhanced):
            singles.append(info)
            continue
        for frame in info.frames:
            if frame.position is None or frame.orientation is None:
                singles.append(info)
                break
        else:
            for frame in info.frames:
                stackable[_geometry_key(frame, info, rounded)].append(frame)

    groups = [(str(key), frames) for key, frames in stackable.items()]
    pieces: list[tuple[str, list[Frame], list[Finding], str]] = []
    for label, frames in groups:
        for sub_label, sub_frames, findings in _split_by_fourth_dimension(frames, files, assembly):
            pieces.append((label + sub_label, sub_frames, findings, sub_label.lstrip("|")))
    n_volumes = len(pieces) + len(singles)
    encodings = {key[:-1]: set() for key in stackable}
    for key in stackable:
        encodings[key[:-1]].add(key[-1])
    copies = {str(key) for key in stackable if len(encodings[key[:-1]]) > 1}
    for label, frames, findings, fourth in pieces:
        if label.split("|")[0] in copies:
            findings.append(Finding(Reason.ENCODING_COPY, "classic and enhanced copies of one series"))
    for index, (label, frames, findings, fourth) in enumerate(pieces):
        if n_volumes > 1:  # the key and its value say which volume this is (b-value and direction, echo, ...)
            which = f": {fourth}" if fourth else ""
            findings.append(Finding(Reason.SERIES_SPLIT, f"part {index + 1} of {n_volumes}{which}"))
        key = keyed_hash(series_uid + (f"|{label}" if n_volumes > 1 else ""), "series")
        assembly.plans.append(_stack_plan(key, files[frames[0].path], frames, files, findings))
    for index, info in enumerate(singles):
        findings = [Finding(Reason.SERIES_SPLIT, f"part {len(pieces) + index + 1} of {n_volumes}")] \
            if n_volumes > 1 else []
        key = keyed_hash(series_uid + (f"|{info.sop_instance_uid}" if n_volumes > 1 else ""), "series")
        assembly.plans.append(_single_plan(key, info, findings))


def _split_by_fourth_dimension(frames: list[Frame], files: dict[str, DicomFile], assembly: Assembly):
    """Yield ``(label, frames, findings)`` so that no two frames of a piece share a position."""
    positions = position_keys(frames)
    if len(set(positions)) == len(positions):
        yield "", frames, []
        return
    for key in FOURTH_DIMENSION_KEYS:
        values = [f.fourth.get(key) for f in frames]
        if None in values or len(set(values)) < 2:
            continue
        parts: dict[str, list[Frame]] = defaultdict(list)
        for frame, value in zip(frames, values):
            parts[value].append(frame)
        if all(len(set(position_keys(p))) == len(p) for p in parts.values()):
            for value, part in sorted(parts.items()):
                yield f"|{key}={value}", part, []
            return
    blocks = _instance_cycle(frames, positions)
    if blocks is not None:
        for number, block in enumerate(blocks, start=1):
            yield f"|volume={number}", block, []
        return
    yield "", *_resolve_duplicates(frames, positions, files, assembly)


def _instance_cycle(frames: list[Frame], positions: list) -> list[list[Frame]] | None:
    """Volumes of a 4D series that names none: InstanceNumber runs through every position once per volume.

    The last resort (some fMRI exports carry no temporal key): used only when the
    instance numbers are unique and each consecutive block of them covers every
    position exactly once. Exact copies (which share an instance number) never pass.
    """
    numbers = [f.instance_number for f in frames]
    count = len(set(positions))
    if None in numbers or len(set(numbers)) != len(numbers) or len(frames) % count:
        return None
    ordered = sorted(frames, key=lambda f: f.instance_number)
    blocks = [ordered[i:i + count] for i in range(0, len(ordered), count)]
    return blocks if all(len(set(position_keys(b))) == count for b in blocks) else None


def _resolve_duplicates(frames, positions, files, assembly):
    """Drop exact pixel copies at a repeated position; refuse if any copy differs."""
    findings: list[Finding] = []
    by_position: dict[float, list[Frame]] = defaultdict(list)
    for frame, position in zip(frames, positions):
        by_position[position].append(frame)
    kept: list[Frame] = []
    drops: list[tuple[str, Finding]] = []
    for position, same in by_position.items():
        kept.append(same[0])
        if len(same) == 1:
            continue
        # an undecodable copy cannot be shown identical: it differs (a conflict), never a silent drop
        digests = {_safe_digest(files[f.path]) for f in same}
        if len(digests) > 1 or any(f.path == same[0].path for f in same[1:]):
            # the whole stack is refused, so the copies found identical so far are not dropped either
            return frames, [Finding(Reason.DUPLICATE_POSITION_CONFLICT, f"{len(same)} images at one position")]
        drops += [(copy.path, Finding(Reason.DUPLICATE_DROPPED, "identical pixels")) for copy in same[1:]]
    assembly.dropped += drops
    findings += [Finding(Reason.DUPLICATE_DROPPED)] * bool(drops)
    return kept, findings


def _stack_plan(key: str, first: DicomFile, frames: list[Frame], files: dict[str, DicomFile],
                findings: list[Finding]) -> SeriesPlan:
    used = {f.path: files[f.path] for f in frames}
    plan = SeriesPlan(key, first.patient_key, first.modality, "3d", None, used, findings)
    conflict = next((f for f in findings if f.reason is Reason.DUPLICATE_POSITION_CONFLICT), None)
    if conflict:
        plan.refused = conflict
        plan.geometry = StackGeometry(frames, (), (0.0, 0.0, 0.0), np.eye(3))
        return plan
    if len(frames) == 1:
        plan.kind = "2d"
        plan.geometry = plane_geometry(frames[0], [])
    else:
        plan.geometry = stack_geometry(frames)
    plan.findings.extend(plan.geometry.findings)
    if len(frames) < MIN_VOLUME_SLICES and first.modality not in {"CR", "DX"}:
        plan.findings.append(Finding(Reason.TOO_FEW_SLICES, f"{len(frames)} slices"))
    _merge_file_findings(plan)
    return plan


def _single_plan(key: str, info: DicomFile, findings: list[Finding]) -> SeriesPlan:
    """A projection image, legacy multi-frame file, or a plane without geometry."""
    frame = info.frames[0]
    geometry = plane_geometry(frame, [])
    plan = SeriesPlan(key, info.patient_key, info.modality, "2d", geometry, {info.path: info}, findings)
    if info.n_frames > 1:
        plan.kind = "multiframe"
        plan.geometry = StackGeometry(info.frames, (1.0, *geometry.spacing), geometry.origin,
                                      geometry.direction[:, [2, 0, 1]], geometry.findings)
    if not info.projection and (frame.position is None or frame.orientation is None or info.n_frames > 1):
        plan.findings.append(Finding(Reason.NO_GEOMETRY))
    plan.findings.extend(plan.geometry.findings)
    _merge_file_findings(plan)
    return plan


def _merge_file_findings(plan: SeriesPlan) -> None:
    seen = {str(f) for f in plan.findings}
    for info in plan.files.values():
        for finding in info.findings:
            if str(finding) not in seen:
                seen.add(str(finding))
                plan.findings.append(finding)
