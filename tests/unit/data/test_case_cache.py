"""The shared prepared-case cache: whole entries or none, damage never served, a bound that spares running jobs."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from medtl.config import load_config
from medtl.data import dataset
from medtl.data.case_cache import CaseCache, cache_bound_bytes
from medtl.data.manifest import read_manifest
from medtl.errors import InputError
from medtl.samples.sample_sets import write_radiograph_set

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return write_radiograph_set(tmp_path_factory.mktemp("xr"), n_patients=6, images_per_patient=1, size=32, seed=3)


def resize_config(images, *extra):
    return load_config(None, [f"data.manifest={images / 'manifest.csv'}", "data.image_size=32", *extra])


def prepare(images, cache, config=None):
    config = config or resize_config(images)
    return dataset.prepare_cases(read_manifest(config.data.manifest, "classification"), config, cache,
                                 progress=False)


def entry(digest: str, value: float = 1.0, size: int = 16):
    return digest, {"image": np.full((1, size, size), value, np.float32)}, {"notes": [], "spacing": [1.0, 1.0]}


def test_an_entry_reads_back_as_written_in_memory_or_as_files(tmp_path):
    cache = CaseCache(tmp_path)
    digest, arrays, meta = entry("a" * 64, 2.5)
    cache.put(digest, {**arrays, "mask": None}, meta)
    read = cache.get(digest)
    assert read.meta == meta and set(read.arrays) == {"image"} and np.array_equal(read.arrays["image"], arrays["image"])
    mapped = cache.get(digest, in_memory=False)
    assert isinstance(mapped.arrays["image"], Path)
    assert np.array_equal(np.load(mapped.arrays["image"], mmap_mode="r"), arrays["image"])
    assert cache.get("b" * 64) is None
    assert not list((tmp_path / "staging").iterdir())  # nothing left behind by the write


@pytest.mark.parametrize("damage", ["truncate", "flip", "meta", "record"])
def test_a_damaged_entry_is_never_served_and_the_case_is_prepared_again(images, tmp_path, damage, caplog):
    cache = CaseCache(tmp_path)
    cases, _ = prepare(images, cache)
    folder = cache.entry_folder(cases[0].content_hash)
    image = folder / "image.npy"
    if damage == "truncate":
        image.write_bytes(image.read_bytes()[:-100])
    elif damage == "flip":  # same size, one value edited
        data = bytearray(image.read_bytes())
        data[-4] ^= 0x40
        image.write_bytes(bytes(data))
    elif damage == "meta":  # the recorded facts edited, still valid JSON
        record = json.loads((folder / "entry.json").read_text())
        record["meta"]["spacing"] = [9.0, 9.0]
        (folder / "entry.json").write_text(json.dumps(record))
    else:
        (folder / "entry.json").write_text("{")
    assert cache.get(cases[0].content_hash) is None
    assert "damaged" in caplog.text and not folder.exists()
    again, _ = prepare(images, cache)
    fresh, _ = prepare(images, None)
    assert np.array_equal(again[0].image, fresh[0].image) and again[0].spacing == fresh[0].spacing
    assert cache.get(cases[0].content_hash) is not None  # stored again, whole


def test_the_bound_evicts_least_recently_used_entries_first(tmp_path):
    cache = CaseCache(tmp_path)
    digests = [c * 64 for c in "abcd"]
    for age, digest in enumerate(digests):
        cache.put(*entry(digest))
        stamp = time.time() - 1000 + age * 100  # a used longest ago, d most recently
        os.utime(cache.entry_folder(digest) / "entry.json", (stamp, stamp))
    cache.lease.release()  # this process holds nothing now (as after a finished run)
    size = cache.entries()[0].size
    report = cache.evict(bound=2 * size)
    assert report["removed"] == 2 and report["freed_bytes"] == 2 * size
    assert [e.digest[0] for e in cache.entries()] == ["c", "d"]
    cache.get(digests[2])  # c used now: d is the least recently used
    cache.lease.release()
    cache.evict(bound=size)
    assert [e.digest[0] for e in cache.entries()] == ["c"]


HOLDER = """
import sys, time
from medtl.data.case_cache import CaseCache
cache = CaseCache(sys.argv[1])
assert cache.get(sys.argv[2], in_memory=False) is not None
print("holding", flush=True)
time.sleep(60)
"""


def test_entries_a_running_job_holds_are_never_evicted(tmp_path):
    cache = CaseCache(tmp_path)
    for digest in ("a" * 64, "b" * 64):
        cache.put(*entry(digest))
    cache.lease.release()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path), "a" * 64], stdout=subprocess.PIPE,
                              text=True, cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "holding"
        report = cache.evict(bound=0, everything=True)
        assert report["removed"] == 1 and report["kept_in_use"] == 1
        assert [e.digest[0] for e in cache.entries()] == ["a"]
    finally:
        holder.kill()
        holder.wait()
    cache.evict(bound=0)  # the holder is gone: its lease is stale and removed, the entry goes
    assert cache.entries() == [] and not list(cache.leases_folder.glob("*.txt"))


PREPARER = """
import json, sys
from medtl.config import load_config
from medtl.data.dataset import prepare_cases
from medtl.data.manifest import read_manifest
config = load_config(None, [f"data.manifest={sys.argv[2]}", "data.image_size=32"])
cases, skipped = prepare_cases(read_manifest(config.data.manifest, "classification"), config, sys.argv[1],
                               progress=False)
print(json.dumps({c.case_id: [c.content_hash, float(c.image.sum())] for c in cases}))
"""


@pytest.mark.heavy
def test_two_processes_preparing_the_same_cases_share_the_entries(images, tmp_path):
    runs = [subprocess.Popen([sys.executable, "-c", PREPARER, str(tmp_path), str(images / "manifest.csv")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT) for _ in range(2)]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert all(run.returncode == 0 for run in runs), outputs
    first, second = (json.loads(out.strip().splitlines()[-1]) for out, _ in outputs)
    assert first == second and len(first) == 6
    cache = CaseCache(tmp_path)
    assert sorted(e.digest for e in cache.entries()) == sorted(h[:32] for h, _ in first.values())
    assert not list((tmp_path / "staging").iterdir())
    assert cache.verify() == []
    assert not list(cache.leases_folder.glob("*.txt"))  # both released their leases on exit


def test_a_changed_file_gets_a_new_entry_and_the_old_one_is_not_served(images, tmp_path):
    import shutil

    copy = tmp_path / "data"
    shutil.copytree(images, copy)
    cache = CaseCache(tmp_path / "cache")
    config = resize_config(copy)
    before, _ = prepare(copy, cache, config)
    target = copy / read_manifest(config.data.manifest, "classification").cases[0].image.relative_to(copy)
    import pydicom

    ds = pydicom.dcmread(target)
    ds.PixelData = (ds.pixel_array.max() - ds.pixel_array).astype(ds.pixel_array.dtype).tobytes()
    ds.save_as(target)
    after, _ = prepare(copy, cache, config)
    assert after[0].content_hash != before[0].content_hash
    assert not np.array_equal(after[0].image, before[0].image)
    assert len(cache.entries()) == 7  # the old entry stays (other runs may use it) but is never this file's


def test_the_bound_setting_is_checked(monkeypatch):
    monkeypatch.setenv("MEDTL_CACHE_GB", "0.5")
    assert cache_bound_bytes() == 500_000_000
    monkeypatch.setenv("MEDTL_CACHE_GB", "lots")
    with pytest.raises(InputError, match="MEDTL_CACHE_GB"):
        cache_bound_bytes()


def test_a_run_prepares_nothing_a_previous_run_prepared(images, tmp_path, monkeypatch):
    cache = CaseCache(tmp_path)
    prepare(images, cache)
    calls = []
    real = dataset._prepare
    monkeypatch.setattr(dataset, "_prepare", lambda *a, **k: calls.append(1) or real(*a, **k))
    prepare(images, cache, resize_config(images, "data.augment.enabled=false", "cv.folds=3"))
    assert calls == []
    prepare(images, cache, resize_config(images, "data.image_size=24"))
    assert len(calls) == 6


def test_a_case_read_from_the_cache_carries_its_difference_hash_without_recomputing_it(images, tmp_path,
                                                                                      monkeypatch):
    from medtl.data import duplicates

    cache = CaseCache(tmp_path)
    first, _ = prepare(images, cache)
    expected = [duplicates.difference_hash(case.image) for case in first]
    monkeypatch.setattr(duplicates, "difference_hash", lambda image: pytest.fail("dHash recomputed"))
    again, _ = prepare(images, cache)
    assert [duplicates.case_dhash(case) for case in again] == expected


def test_an_entry_written_without_a_difference_hash_still_gives_the_right_one(images, tmp_path):
    from medtl.data.duplicates import case_dhash, difference_hash

    cache = CaseCache(tmp_path)
    first, _ = prepare(images, cache)
    digest = first[0].content_hash
    read = cache.get(digest)
    meta = {k: v for k, v in read.meta.items() if k != "dhash"}  # as an entry of an earlier release
    shutil.rmtree(cache.entry_folder(digest))
    cache.put(digest, {"image": read.arrays["image"], "mask": None}, meta)
    again, _ = prepare(images, cache)
    assert again[0].dhash is None and case_dhash(again[0]) == difference_hash(first[0].image)


def test_entries_looked_up_together_come_back_in_order_and_are_held_against_eviction(tmp_path):
    cache = CaseCache(tmp_path)
    for value, digest in enumerate(["a" * 64, "c" * 64]):
        cache.put(*entry(digest, float(value)))
    found = CaseCache(tmp_path).get_many(["c" * 64, "b" * 64, "a" * 64])
    assert [e and e.digest for e in found] == ["c" * 64, None, "a" * 64]
    assert [float(e.arrays["image"].flat[0]) for e in found if e] == [1.0, 0.0]
    assert {"a" * 32, "c" * 32} <= cache.leased()
    assert cache.evict(bound=0)["removed"] == 0  # this process holds both


@pytest.mark.parametrize("array", [np.arange(12, dtype=np.float32).reshape(1, 3, 4), np.zeros((2, 0, 3), np.int16),
                                   np.asfortranarray(np.arange(6, dtype=np.int64).reshape(2, 3)),
                                   np.array(3.5), np.arange(5, dtype=">i4")])
def test_npy_bytes_read_back_as_numpy_reads_them_and_writable(array):
    import io

    from medtl.data.case_cache import npy_from_bytes

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    data = buffer.getvalue()
    for _ in range(2):  # the header parsed by NumPy, then remembered
        read = npy_from_bytes(data)
        expected = np.load(io.BytesIO(data))
        assert read.dtype == expected.dtype and read.shape == expected.shape and np.array_equal(read, expected)
        read[...] = 0  # a private copy
    with pytest.raises(ValueError):
        npy_from_bytes(data[:-1] if array.size else data + b"\0")


def test_cache_command_reports_and_prunes_the_shared_cache(images, tmp_path, monkeypatch, capsys):
    from medtl.cli import main

    monkeypatch.setenv("MEDTL_HOME", str(tmp_path / "home"))
    cache = CaseCache()
    assert cache.root == tmp_path / "home" / "cache" / "cases"
    prepare(images, cache)
    assert main(["cache", "info"]) == 0
    out = capsys.readouterr().out
    assert "entries: 6," in out and "in use by running jobs: 6 entries" in out  # this process holds them
    assert main(["cache", "prune", "--all"]) == 0
    assert "kept 6 entries in use" in capsys.readouterr().out and len(cache.entries()) == 6
    cache.lease.release()  # as when the run that prepared them has finished
    (cache.root / "staging" / "999999999-interrupted").mkdir(parents=True)
    assert main(["cache", "prune", "--max-gb", "0.000001", "--verify"]) == 0
    out = capsys.readouterr().out
    assert "removed 6 entries" in out and "1 interrupted writes" in out and cache.entries() == []
