"""Prepared cases: patch mode keeps them at native extent on disk, memory-mapped on use, cached by content."""

import numpy as np
import pytest

from medtl.config import load_config
from medtl.data import dataset
from medtl.data.manifest import read_manifest
from medtl.samples.sample_data import write_ct_set


@pytest.fixture(scope="module")
def ct_set(tmp_path_factory):
    return write_ct_set(tmp_path_factory.mktemp("ct"), 4, (12, 40, 36), seed=5)


def patch_config(ct_set, *extra):
    return load_config(None, [f"data.manifest={ct_set / 'manifest.csv'}", "task=segmentation", "data.dims=3",
                              "data.mode=patch", "data.patch_size=32", "data.spacing=[3,0.9,0.9]",
                              "data.intensity=window", *extra])


def test_patch_mode_stores_native_extent_cases_and_maps_them_on_use(ct_set, tmp_path):
    config = patch_config(ct_set)
    manifest = read_manifest(config.data.manifest, "segmentation")
    cases, skipped = dataset.prepare_cases(manifest, config, tmp_path / "cache", progress=False)
    assert not skipped and len(cases) == 4
    for case in cases:
        assert isinstance(case.image, np.memmap) and isinstance(case.mask, np.memmap)
        assert case.spatial_shape == (12, 40, 36)  # native grid: already at data.spacing, nothing resized
        assert case.spacing == pytest.approx((3.0, 0.9, 0.9))
        if case.mask.any():
            assert case.mask[0][tuple(case.foreground.T)].all()
        else:
            assert len(case.foreground) == 0
    stored = sorted(p.name for p in (tmp_path / "cache").rglob("*") if p.is_file())
    assert stored.count("image.npy") == 4 and stored.count("entry.json") == 4


def test_stored_cases_are_reused_unless_preprocessing_changes(ct_set, tmp_path, monkeypatch):
    config = patch_config(ct_set)
    manifest = read_manifest(config.data.manifest, "segmentation")
    first, _ = dataset.prepare_cases(manifest, config, tmp_path, progress=False)
    real_prepare = dataset._prepare
    calls = []

    def counting(*args):
        calls.append(args[0].case_id)
        return real_prepare(*args)

    monkeypatch.setattr(dataset, "_prepare", counting)
    # sampling and inference settings do not change a prepared case
    sampling = patch_config(ct_set, "data.patches_per_case=9", "data.foreground_ratio=0.9",
                            "data.sliding_window.overlap=0.25", "data.patch_size=64")
    again, _ = dataset.prepare_cases(manifest, sampling, tmp_path, progress=False)
    assert calls == []
    assert [c.content_hash for c in again] == [c.content_hash for c in first]
    assert all(np.array_equal(a.image, b.image) for a, b in zip(first, again))
    dataset.prepare_cases(manifest, patch_config(ct_set, "data.window=[50,300]"), tmp_path, progress=False)
    assert len(calls) == 4


def test_a_half_written_stored_case_is_prepared_again(ct_set, tmp_path):
    config = patch_config(ct_set)
    manifest = read_manifest(config.data.manifest, "segmentation")
    cases, _ = dataset.prepare_cases(manifest, config, tmp_path, progress=False)
    folder = cases[0].image_data.parent
    (folder / "image.npy").write_bytes(b"garbage")  # damaged after it was written
    again, skipped = dataset.prepare_cases(manifest, config, tmp_path, progress=False)
    fresh, _ = dataset.prepare_cases(manifest, config, None, progress=False)  # no cache: arrays in memory
    assert not skipped and isinstance(again[0].image, np.memmap) and not isinstance(fresh[0].image, np.memmap)
    assert np.array_equal(again[0].image, fresh[0].image)


@pytest.mark.parametrize("batch", [1, 256])
def test_skipped_cases_are_listed_in_manifest_order_whatever_the_reason(tmp_path, monkeypatch, batch):
    """A missing file is found while keying a case, an unreadable one while preparing it: the skip list follows
    the manifest either way (the cache looks entries up for many cases at a time)."""
    from medtl.samples.sample_sets import write_radiograph_set

    monkeypatch.setattr(dataset, "_LOOKUP_BATCH", batch)
    images = write_radiograph_set(tmp_path / "xr", n_patients=5, images_per_patient=1, size=32, seed=1)
    names = sorted((images / "images").iterdir())
    names[1].write_bytes(b"not an image")  # unreadable: found when preparing
    names[3].unlink()  # missing: found when keying
    config = load_config(None, [f"data.manifest={images / 'manifest.csv'}", "data.image_size=32"])
    manifest = read_manifest(config.data.manifest, "classification")
    cases, skipped = dataset.prepare_cases(manifest, config, tmp_path / "cache", progress=False)
    by_file = {c.image.name: c.case_id for c in manifest.cases}
    assert [row["case_id"] for row in skipped] == [by_file[names[1].name], by_file[names[3].name]]
    assert [row["reason"] for row in skipped][1] == "FILE_NOT_FOUND" and len(cases) == 3


def test_a_patch_mode_volume_read_from_the_cache_carries_its_own_difference_hash(ct_set, tmp_path, monkeypatch):
    """3D native-extent entries (memory-mapped) store the dHash of their volume as 2D entries do."""
    from medtl.data import duplicates

    config = patch_config(ct_set)
    manifest = read_manifest(config.data.manifest, "segmentation")
    dataset.prepare_cases(manifest, config, tmp_path / "cache", progress=False)
    again, _ = dataset.prepare_cases(manifest, config, tmp_path / "cache", progress=False)
    expected = [duplicates.difference_hash(np.asarray(case.image)) for case in again]
    monkeypatch.setattr(duplicates, "difference_hash", lambda image: pytest.fail("dHash recomputed"))
    assert [duplicates.case_dhash(case) for case in again] == expected
