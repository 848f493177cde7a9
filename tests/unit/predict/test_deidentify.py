"""A de-identified DICOM-SEG holds no patient attribute and no source UID, and its references stay consistent."""

import numpy as np
import pydicom

from medtl.predict.deidentify import pseudonym_uid
from medtl.samples.synthetic import SeriesSpec, phantom_volume, write_series


def test_deidentified_seg_has_no_patient_data_or_source_uids(tmp_path):
    from medtl.io.dicom import dicom_plan
    from medtl.predict.dicom_seg import write_dicom_seg

    spec = SeriesSpec(stored=phantom_volume((5, 16, 16), seed=2), patient_id="DOE^JOHN_12345",
                      patient_name="DOE^JOHN")
    write_series(tmp_path / "series", spec)
    plan = dicom_plan(tmp_path / "series")
    refs = [(f.path, f.index) for f in plan.frames]
    labels = np.zeros((5, 16, 16), np.uint8)
    labels[1:4, 4:9, 4:9] = 1
    path = write_dicom_seg(tmp_path / "seg.dcm", refs, labels, ["background", "lesion"], "m", deidentify=True)
    raw = path.read_bytes()
    sources = [pydicom.dcmread(p, stop_before_pixels=True) for p, _ in refs]
    source_uids = {str(s.SOPInstanceUID) for s in sources} | {str(sources[0].StudyInstanceUID),
                                                               str(sources[0].SeriesInstanceUID)}
    assert b"DOE" not in raw and b"JOHN" not in raw and b"12345" not in raw
    assert not any(uid.encode() in raw for uid in source_uids)
    seg = pydicom.dcmread(path)
    assert seg.PatientIdentityRemoved == "YES" and seg.PatientName.family_name == "ANON"
    referenced = {str(item.ReferencedSOPInstanceUID) for series in seg.ReferencedSeriesSequence
                  for item in series.ReferencedInstanceSequence}
    assert referenced == {pseudonym_uid(str(s.SOPInstanceUID)) for s in sources}  # same mapping every time
    assert seg.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4"  # standard UIDs are kept
