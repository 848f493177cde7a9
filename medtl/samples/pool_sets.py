"""An unlabelled pool of radiographs for self-supervised pretraining (PNG, as public datasets ship them).

The images come from the target task's generator (same anatomy, nodule contrast and
prevalence) but from other patients; ``manifest.csv`` has only ``image`` and
``patient_id`` (PNG files carry no patient id). ``probe.csv`` gives labels (nodule
present) for the images of the first ``probe_patients`` patients: the small labelled set
of the linear-probe monitor.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..plumbing.atomic import write_csv
from .radiographs import make_radiograph


def write_unlabelled_pool(root: str | Path, n_patients: int, images_per_patient: int = 2, size: int = 128,
                          seed: int = 0, probe_patients: int = 30, contrast: tuple[float, float] = (0.06, 0.16)
                          ) -> Path:
    """Write ``images/*.png``, ``manifest.csv`` (image, patient_id) and ``probe.csv`` (+ label) under ``root``."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows, probe = [], []
    for p in range(n_patients):
        patient_id = f"POOL-{seed:03d}-{p:04d}"
        for i in range(images_per_patient):
            image = make_radiograph(size, rng, bool(rng.random() < 0.5), contrast=contrast)
            name = f"images/u{p:04d}_{i}.png"
            pixels = np.clip(np.rint(np.clip(image.density, 0, 1.2) / 1.2 * 255), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name, optimize=False)
            rows.append({"image": name, "patient_id": patient_id})
            if p < probe_patients:
                probe.append({"image": name, "label": int(image.finding), "patient_id": patient_id})
    write_csv(root / "manifest.csv", ["image", "patient_id"], rows)
    write_csv(root / "probe.csv", ["image", "label", "patient_id"], probe)
    return root
