"""Building blocks of `medtl predict`: grid mapping, journal, shards, DICOM-SEG, error details."""

import numpy as np
import pydicom
import pytest

from medtl.data.synthetic import SeriesSpec, phantom_volume, write_enhanced_ct, write_series
from medtl.errors import InputError, public_detail
from medtl.io import load_volume
from medtl.predict.items import parse_shard, shard_of
from medtl.predict.journal import Journal
from medtl.predict.resample import labels_on_original_grid, to_original_grid


def test_a_ramp_survives_the_trip_to_the_network_grid_and_back():
    from medtl.config import load_config
    from medtl.transforms.network_input import network_input
    from medtl.io.volume import Volume

    config = load_config(None, ["data.dims=2", "data.image_size=[40,40]"])
    rows = np.mgrid[0:100, 0:70][0].astype(np.float32)
    prepared = network_input(Volume(rows, (1.0, 1.0), (0, 0, 0), np.eye(3)), config, "case")
    net = prepared.network_affine
    i = np.arange(40, dtype=np.float32)[:, None] * np.ones((1, 40), np.float32)
    ramp_on_network = net[0, 0] * i + net[0, 3]  # the original row index of each network pixel
    back = to_original_grid(ramp_on_network[None], net, prepared.input_affine, prepared.input_shape)[0]
    assert back.shape == (100, 70)
    assert np.abs(back - rows)[2:-2].max() < 1e-3


def test_3d_mapping_uses_world_coordinates():
    # network grid = input grid shifted by one voxel along the slice axis and twice as coarse in-plane
    input_affine = np.diag([2.0, 0.5, 0.5, 1.0])
    network_affine = np.diag([2.0, 1.0, 1.0, 1.0])
    network_affine[0, 3] = 2.0
    probs = np.zeros((2, 6, 4, 4), np.float32)
    probs[1, 2, 1, 1] = 1.0  # world (6, 1, 1)
    probs[0] = 1 - probs[1]
    labels, foreground = labels_on_original_grid(probs, network_affine, input_affine, (7, 8, 8))
    assert labels.shape == (7, 8, 8) and foreground.shape == (1, 7, 8, 8)
    assert labels[3, 2, 2] == 1  # input voxel (3, 2, 2) is world (6, 1, 1)
    assert labels[2].sum() == 0 and labels[4].sum() == 0


def test_multiclass_argmax_on_the_original_grid():
    probs = np.zeros((3, 4, 4), np.float32)
    probs[0], probs[1, :2], probs[2, 2:] = 0.2, 0.7, 0.7
    labels, foreground = labels_on_original_grid(probs, np.eye(4), np.eye(4), (4, 4))
    assert (labels[:2] == 1).all() and (labels[2:] == 2).all() and foreground.shape == (2, 4, 4)


def test_journal_ignores_a_partial_last_line_and_never_duplicates(tmp_path):
    path = tmp_path / "journal.jsonl"
    journal = Journal(path)
    journal.append({"key": "a", "status": "ok"})
    journal.append({"key": "b", "status": "ok"})
    journal.append({"key": "a", "status": "ok"})  # already committed: ignored
    journal.close()
    with open(path, "a") as f:
        f.write('{"key": "c", "sta')  # a writer killed mid-line
    reopened = Journal(path)
    assert list(reopened.records) == ["a", "b"] and "c" not in reopened
    reopened.append({"key": "c", "status": "ok"})
    reopened.close()
    assert [line.count('"key"') for line in path.read_text().splitlines()] == [1, 1, 1]
    assert list(Journal(path).records) == ["a", "b", "c"]


def test_shards_are_disjoint_and_cover_every_key():
    keys = [f"key{i}" for i in range(500)]
    parts = [{k for k in keys if shard_of(k, 4) == s} for s in range(1, 5)]
    assert sum(len(p) for p in parts) == len(keys) and set().union(*parts) == set(keys)
    assert all(len(p) > 50 for p in parts)  # roughly balanced
    assert parse_shard("2/4") == (2, 4) and parse_shard(None) == (1, 1)
    for bad in ("0/4", "5/4", "two/4", "1-4"):
        with pytest.raises(InputError, match="shard"):
            parse_shard(bad)


def test_error_details_lose_paths_that_may_hold_names():
    detail = public_detail(InputError("case 7: no loadable DICOM image in /data/DOE^JOHN_12345/CT (3 files)"))
    assert "DOE" not in detail and "<path>" in detail and "3 files" in detail


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
