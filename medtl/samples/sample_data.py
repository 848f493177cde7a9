"""``medtl sample-data OUT``: the synthetic sample sets shipped in ``sample_data/``.

Deterministic (same seed, same bytes) and never real patients:

* ``cls2d_target/``: small 2D radiograph set (nodule present/absent, masks) - the target task;
  ``manifest_multitask.csv`` lists the same images with the masks of every third patient and
  the labels of every ninth left out (partial targets, for ``configs/sample_multitask2d.yaml``);
* ``cls2d_source/``: larger 2D set for source-task pretraining (which lung holds a clearer nodule);
* ``ct3d/``: CT-like volumes with lesions (half DICOM series with shuffled names, half NIfTI), masks;
* ``sites2d/``: the nodule task at three hospitals whose scanners differ (intensity curve, noise, blur,
  field of view, header equipment fields), a ``site`` column; hospital_c is small;
* ``ssl_pool/``: 320 unlabelled PNG radiographs of 160 other patients for self-supervised pretraining
  (``manifest.csv``: image and patient_id only), and ``probe.csv``: labels for 60 of them (the
  linear-probe monitor);
* ``meta2d_source/``: 128 PNG radiographs of 128 other patients labelled by three rules (nodule side,
  nodule size, patient position: straight or tilted) and by their combination (``label``): episodes for meta-learning;
* ``scan_demo/``: a messy export for ``medtl scan``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from ..io.nifti import write_nifti
from ..plumbing.atomic import write_csv
from .ct_volumes import make_ct_volume
from .demo_export import write_demo_export
from .meta_sets import write_meta_source
from .pool_sets import write_unlabelled_pool
from .sample_sets import write_multitask_manifest, write_radiograph_set
from .site_sets import write_site_set
from .synthetic import SeriesSpec, write_series

SIZES = {"full": {"target": 40, "source": 100, "ct": 20, "px": 128, "ct_shape": (32, 64, 64), "sites": (30, 30, 12),
                  "pool": 160, "meta": 128},
         "tiny": {"target": 8, "source": 8, "ct": 6, "px": 48, "ct_shape": (12, 32, 32), "sites": (6, 6, 6),
                  "pool": 12, "meta": 24}}


def write_ct_set(root: Path, n_cases: int, shape: tuple[int, int, int], seed: int) -> Path:
    rng = np.random.default_rng(seed)
    rows = []
    spacing = (3.0, 0.9, 0.9)
    for index in range(n_cases):
        lesion = index % 2 == 0
        hu, mask = make_ct_volume(shape, rng, lesion)
        patient = f"SYNTH-CT-{index:04d}"
        spec = SeriesSpec(stored=np.clip(np.rint(hu + 1024), 0, 4095).astype(np.int16), spacing=spacing,
                          origin=(-28.8, -28.8, -48.0 + index), patient_id=patient, seed=seed * 1000 + index)
        direction = np.stack([spec.normal, spec.column_cosine, spec.row_cosine], axis=1)
        if index % 4 < 2:  # DICOM series, shuffled opaque file names
            image = f"dicom/case{index:03d}"
            write_series(root / image, spec, instance_numbers="shuffled")
        else:
            image = f"nifti/case{index:03d}.nii.gz"
            write_nifti(root / image, hu.astype(np.int16), spacing, spec.position(0), direction)
        write_nifti(root / f"masks/case{index:03d}.nii.gz", mask, spacing, spec.position(0), direction)
        rows.append({"image": image, "label": int(lesion), "mask": f"masks/case{index:03d}.nii.gz",
                     "patient_id": patient})
    write_csv(root / "manifest.csv", ["image", "label", "mask", "patient_id"], rows)
    return root


def write_sample_data(out: str | Path, seed: int = 0, size: str = "full") -> Path:
    """Write every sample set under ``out`` (replacing what is there)."""
    sizes = SIZES[size]
    out = Path(out)
    for name in ("cls2d_target", "cls2d_source", "ct3d", "scan_demo", "sites2d", "ssl_pool", "meta2d_source"):
        shutil.rmtree(out / name, ignore_errors=True)
    write_radiograph_set(out / "cls2d_target", sizes["target"], 2, sizes["px"], seed=seed + 1,
                         contrast=(0.06, 0.16))
    write_multitask_manifest(out / "cls2d_target")
    write_radiograph_set(out / "cls2d_source", sizes["source"], 2, sizes["px"], seed=seed + 2, task="side")
    write_ct_set(out / "ct3d", sizes["ct"], sizes["ct_shape"], seed + 3)
    write_demo_export(out / "scan_demo", seed)
    write_site_set(out / "sites2d", sizes["sites"], sizes["px"], seed + 4)
    write_unlabelled_pool(out / "ssl_pool", sizes["pool"], 2, sizes["px"], seed + 5,
                          probe_patients=min(30, sizes["pool"] // 2))
    write_meta_source(out / "meta2d_source", sizes["meta"], min(sizes["px"], 96), seed + 6)
    (out / "README.md").write_text(__doc__.replace("``", "`") +
                                   f"\nRegenerate with `medtl sample-data sample_data --seed {seed}`.\n")
    return out
