"""A small, deliberately messy synthetic export for `medtl scan` demos (sample_data/scan_demo)."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np

from .synthetic import SeriesSpec, phantom_volume, write_radiograph, write_series


def write_demo_export(root: str | Path, seed: int = 0) -> Path:
    """Two CT patients, radiographs, a NIfTI volume and typical junk; same seed, same bytes."""
    import nibabel as nib

    root = Path(root)
    for number, tilt in ((1, 0.0), (2, 0.35)):
        patient = f"SYNTH{number:04d}"
        spec = SeriesSpec(stored=phantom_volume((24, 64, 64), seed=seed + number), spacing=(2.5, 0.8, 0.8),
                          patient_id=patient, seed=seed + number, slice_offset=(0.0, 2.5 * tilt, 0.0))
        paths = write_series(root / f"patient_{number}" / "ct", spec, instance_numbers="shuffled")
        if number == 2:
            paths[10].unlink()  # a missing slice
            shutil.copy(paths[3], paths[3].with_name("copy_of_" + paths[3].name))
    rng = np.random.default_rng(seed)
    for number in (1, 2):
        image = (rng.normal(2000, 150, (96, 80))).clip(0, 4095).astype(np.uint16)
        write_radiograph(root / f"patient_{number}" / "cr" / "chest.dcm", image, modality="CR",
                         photometric="MONOCHROME1" if number == 1 else "MONOCHROME2", bits_stored=12,
                         patient_id=f"SYNTH{number:04d}", seed=seed + number)
    affine = np.diag([1.2, 1.2, 3.0, 1.0])
    (root / "research").mkdir(parents=True, exist_ok=True)
    # Uncompressed on purpose: gzip headers carry a timestamp and would break "same seed, same bytes".
    nib.save(nib.Nifti1Image(phantom_volume((16, 48, 48), seed=seed).transpose(2, 1, 0), affine),
             root / "research" / "volume.nii")
    (root / "README.txt").write_text("Synthetic export for the medtl scan demo. No real patients.\n")
    (root / "patient_1" / "Thumbs.db").write_bytes(bytes(rng.integers(0, 256, 512, dtype=np.uint8)))
    (root / "patient_2" / "ct_backup.dcm.gz").write_bytes(
        gzip.compress(sorted((root / "patient_2" / "ct").iterdir())[0].read_bytes(), mtime=0))
    return root
