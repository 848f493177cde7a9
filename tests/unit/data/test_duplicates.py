"""Near-identical images under different patients are found; different images and same-patient copies are not."""

from types import SimpleNamespace

import numpy as np

from medtl.data.duplicates import cross_patient_duplicates
from medtl.samples.sample_sets import write_radiograph_set


def test_a_re_encoded_copy_under_another_patient_is_found(tmp_path):
    from medtl.config import load_config
    from medtl.data.dataset import prepare_cases
    from medtl.data.manifest import read_manifest

    root = write_radiograph_set(tmp_path, n_patients=10, images_per_patient=2, size=64, seed=3)
    config = load_config(None, [f"data.manifest={root / 'manifest.csv'}", "data.image_size=64"])
    cases, _ = prepare_cases(read_manifest(config.data.manifest, "classification"), config, None, progress=False)
    assert cross_patient_duplicates(cases).total == 0  # twenty different images: no false alarm
    rng = np.random.default_rng(0)
    copy = SimpleNamespace(case_id="copy", group_key="someone-else",
                           image=(cases[3].image * 1.01 + rng.normal(0, 0.01, cases[3].image.shape)).astype(np.float32))
    same_patient = SimpleNamespace(case_id="twin", group_key=cases[5].group_key, image=cases[5].image.copy())
    found = cross_patient_duplicates([*cases, copy, same_patient])
    assert found.pairs == [(cases[3].case_id, "copy")] and found.total == 1


def test_many_rows_of_one_image_are_counted_not_listed():
    """Issue 35.2: 50,000 rows of one image listed every pair (7.5 GB, MemoryError); 10,000 here (benchmarks: 50k)."""
    image = np.random.default_rng(0).random((1, 32, 32)).astype(np.float32)
    cases = [SimpleNamespace(case_id=f"c{i:05d}", group_key=f"p{i % 1000}", image=image) for i in range(10_000)]
    found = cross_patient_duplicates(cases, keep=10)
    assert len(found.pairs) == 10
    n, per_patient = 10_000, 10
    assert found.total == n * (n - 1) // 2 - 1000 * per_patient * (per_patient - 1) // 2
