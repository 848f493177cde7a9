"""Write labelled synthetic sets (DICOM / NIfTI + manifest.csv) for demos and tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..plumbing.atomic import write_csv
from .radiographs import make_radiograph, to_stored
from .synthetic import write_radiograph


def write_mask_2d(path: Path, mask: np.ndarray, spacing: tuple[float, float]) -> None:
    """2D mask as NIfTI whose medtl array is ``(1, rows, cols)``, aligned with the radiograph."""
    import nibabel as nib

    affine = np.diag([-spacing[1], -spacing[0], 1.0, 1.0])  # LPS columns/rows -> RAS
    nib.save(nib.Nifti1Image(mask.T[:, :, None].astype(np.uint8), affine), str(path))


def write_radiograph_set(root: str | Path, n_patients: int, images_per_patient: int = 2, size: int = 128,
                         prevalence: float = 0.5, seed: int = 0, task: str = "finding",
                         contrast: tuple[float, float] = (0.05, 0.14)) -> Path:
    """A 2D set of CR/DX DICOM images with labels, masks and ``manifest.csv``.

    ``task="finding"``: label = nodule present. ``task="side"`` (a related source task):
    every image has a larger, clearer nodule and the label is the lung it is in.
    """
    rng = np.random.default_rng(seed)
    root = Path(root)
    rows = []
    for p in range(n_patients):
        patient_id = f"SYNTH-{seed:03d}-{p:04d}"
        for i in range(images_per_patient):
            if task == "side":
                image = make_radiograph(size, rng, True, contrast=(0.15, 0.3), radius=(0.05, 0.1))
                label = "left" if image.side == 1 else "right"
            else:
                image = make_radiograph(size, rng, bool(rng.random() < prevalence), contrast=contrast)
                label = int(image.finding)
            monochrome1 = bool(rng.random() < 0.3)
            slope, intercept = (2.0, -100.0) if rng.random() < 0.2 else (1.0, 0.0)
            spacing = (0.2 * 1024 / size, 0.2 * 1024 / size)
            name = f"p{p:04d}_{i}"
            write_radiograph(root / "images" / f"{name}.dcm", to_stored(image.density, monochrome1, slope, intercept),
                             pixel_spacing=spacing, modality="DX" if i % 2 else "CR",
                             photometric="MONOCHROME1" if monochrome1 else "MONOCHROME2", slope=slope,
                             intercept=intercept, bits_stored=12, patient_id=patient_id, seed=seed * 100000 + p,
                             instance=i + 1)
            (root / "masks").mkdir(parents=True, exist_ok=True)
            write_mask_2d(root / "masks" / f"{name}.nii.gz", image.mask, spacing)
            rows.append({"image": f"images/{name}.dcm", "label": label, "mask": f"masks/{name}.nii.gz",
                         "patient_id": patient_id})
    write_csv(root / "manifest.csv", ["image", "label", "mask", "patient_id"], rows)
    return root


def write_multitask_manifest(root: str | Path) -> Path:
    """``manifest_multitask.csv`` beside a radiograph set's manifest: the same images, with partial targets.

    Segmentation masks are left out for every third patient (outlining is the expensive
    annotation) and the label for every ninth (never both for one case: 9 is a multiple of 3), so a multi-task
    run has cases that lack one of its targets.
    """
    import csv

    root = Path(root)
    with open(root / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    out = []
    for row in rows:
        patient = int(row["patient_id"].rsplit("-", 1)[1])
        out.append({**row, "mask": "" if patient % 3 == 2 else row["mask"],
                    "label": "" if patient % 9 == 4 else row["label"]})
    write_csv(root / "manifest_multitask.csv", ["image", "label", "mask", "patient_id"], out)
    return root / "manifest_multitask.csv"
