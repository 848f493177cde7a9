"""DICOM-SEG frames follow the source instances and frame numbers."""

import numpy as np
import pydicom

from medtl.io import load_volume
from medtl.samples.synthetic import SeriesSpec, phantom_volume, write_enhanced_ct, write_series


def _read_seg(path, source_paths):
    import highdicom as hd

    seg = hd.seg.segread(path)
    uids = [pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in source_paths]
    return seg, uids


def test_dicom_seg_of_a_shuffled_series_reads_back_slice_by_slice(tmp_path):
    from medtl.io.dicom import dicom_plan
    from medtl.predict.dicom_seg import write_dicom_seg

    spec = SeriesSpec(stored=phantom_volume((9, 20, 24), seed=4), patient_id="DOE^JOHN_12345")
    folder = tmp_path / "series"
    write_series(folder, spec, shuffle=True)
    plan = dicom_plan(folder)
    refs = [(f.path, f.index) for f in plan.frames]
    labels = np.zeros((9, 20, 24), np.uint8)
    for k in range(9):
        labels[k, k:k + 3, 2 * k:2 * k + 4] = 1  # different on every slice: order errors show
    path = write_dicom_seg(tmp_path / "out.dcm", refs, labels, ["background", "lesion"], "arm:ensemble2:abc")
    seg, uids = _read_seg(path, [p for p, _ in refs])
    pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, combine_segments=True)
    assert np.array_equal(pixels, labels)
    assert seg.SegmentSequence[0].SegmentLabel == "lesion"
    assert seg.PatientID == "DOE^JOHN_12345" and seg.Manufacturer == "medtl"


def test_dicom_seg_of_an_enhanced_multiframe_ct_follows_its_frame_numbers(tmp_path):
    from medtl.io.dicom import dicom_plan
    from medtl.predict.dicom_seg import write_dicom_seg

    spec = SeriesSpec(stored=phantom_volume((6, 16, 16), seed=5))
    path = write_enhanced_ct(tmp_path / "enhanced.dcm", spec, frame_order=[3, 0, 5, 1, 4, 2])
    dataset = pydicom.dcmread(path)
    dataset.FrameOfReferenceUID = "1.2.826.0.1.3680043.8.498.1"  # the enhanced CT IOD requires it
    dataset.save_as(path)
    plan = dicom_plan(path)
    refs = [(f.path, f.index) for f in plan.frames]
    assert [i for _, i in refs] != list(range(6))  # volume order differs from frame order
    labels = np.zeros((6, 16, 16), np.uint8)
    for k in range(6):
        labels[k, k:k + 2, :k + 1] = 1
    out = write_dicom_seg(tmp_path / "seg.dcm", refs, labels, ["background", "lesion"], "m")
    import highdicom as hd

    seg = hd.seg.segread(out)
    frames = seg.get_pixels_by_source_frame(
        source_sop_instance_uid=pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID,
        source_frame_numbers=[i + 1 for _, i in refs], combine_segments=True)
    assert np.array_equal(frames, labels)
    volume = load_volume(path)
    assert volume.array.shape == (6, 16, 16)
