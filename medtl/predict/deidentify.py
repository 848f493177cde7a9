"""De-identification of a DICOM-SEG for sharing (DICOM PS3.15 Annex E basic profile, applied by medtl).

A SEG must reference its source, so by default it repeats the source's patient and
study attributes and UIDs. ``deidentify_dataset`` makes a copy fit to leave the
hospital: identifying attributes are removed or emptied, names and ids become keyed
pseudonyms, and every non-standard UID (the SEG's own and every reference to the
source) is replaced by ``2.25.<keyed hash>``. The same source UID always maps to the
same new UID under one project salt, so SEGs of one study still reference each other
and a source series de-identified with the same salt.
"""

from __future__ import annotations

from ..io.pseudonym import keyed_hash

# Emptied (type 2 in the SEG IOD) or removed (type 3) attributes of the basic profile that a SEG can hold.
_EMPTIED = ("PatientBirthDate", "PatientSex", "AccessionNumber", "ReferringPhysicianName", "StudyID",
            "StudyDate", "StudyTime", "SeriesDate", "SeriesTime", "ContentDate", "ContentTime")
_REMOVED = ("PatientBirthTime", "OtherPatientIDs", "OtherPatientIDsSequence", "OtherPatientNames", "PatientAge",
            "PatientSize", "PatientWeight", "PatientAddress", "PatientTelephoneNumbers", "EthnicGroup",
            "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName", "StationName",
            "PerformingPhysicianName", "OperatorsName", "RequestingPhysician", "StudyDescription",
            "InstanceCreationDate", "InstanceCreationTime", "AcquisitionDateTime", "DeviceSerialNumber")
_STANDARD_UID_ROOT = "1.2.840.10008."  # DICOM's own UIDs (SOP classes, transfer syntaxes, coding schemes)


def pseudonym_uid(uid: str) -> str:
    """A new UID for ``uid``, the same one every time under this project's salt."""
    return "2.25." + str(int(keyed_hash(uid, "dicom-uid"), 16))


def _replace_uids(dataset, seen: set[int]) -> None:
    # highdicom shares item objects between sequences: each dataset is rewritten once
    if id(dataset) in seen:
        return
    seen.add(id(dataset))
    for element in dataset:
        if element.VR == "SQ":
            for item in element.value:
                _replace_uids(item, seen)
        elif element.VR == "UI" and element.value:
            values = element.value if element.VM > 1 else [element.value]
            new = [v if str(v).startswith(_STANDARD_UID_ROOT) else pseudonym_uid(str(v)) for v in values]
            element.value = new if element.VM > 1 else new[0]


def deidentify_dataset(dataset) -> None:
    """Apply the basic profile to ``dataset`` (a pydicom Dataset, e.g. a SEG) in place."""
    patient = str(dataset.get("PatientID", "")) or str(dataset.get("PatientName", ""))
    pseudonym = keyed_hash(patient, "patient") if patient else "unknown"
    dataset.PatientName = f"ANON^{pseudonym}"
    dataset.PatientID = pseudonym
    for keyword in _EMPTIED:
        if keyword in dataset:
            setattr(dataset, keyword, "")
    for keyword in _REMOVED:
        if keyword in dataset:
            delattr(dataset, keyword)
    seen: set[int] = set()
    _replace_uids(dataset, seen)
    if getattr(dataset, "file_meta", None) is not None:
        _replace_uids(dataset.file_meta, seen)
    dataset.PatientIdentityRemoved = "YES"
    dataset.DeidentificationMethod = "medtl: DICOM PS3.15 basic application level confidentiality profile"
