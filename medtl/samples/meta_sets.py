"""A labelled source for meta-learning: one radiograph generator, several label rules (many small tasks).

Every image holds one nodule; ``manifest.csv`` labels each image by three rules: ``lung``
(which lung), ``nodule`` (small or large nodule) and ``position`` (the patient straight, or
tilted by 6-10 degrees), plus ``label``, their combination (8 classes), which carries exactly
the same information: the supervised-source control pretrains on it, so both arms see the same
labels. PNG, one image per patient, other patients than every other sample set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from ..plumbing.atomic import write_csv
from .radiographs import make_radiograph

SIZES = {"small": (0.03, 0.045), "large": (0.06, 0.085)}


def write_meta_source(root: str | Path, n_patients: int, size: int = 96, seed: int = 0) -> Path:
    """Write ``images/*.png`` and ``manifest.csv`` (image, patient_id, lung, nodule, position, label) under ``root``."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for p in range(n_patients):
        side, nodule, position = p % 2, ("small", "large")[(p // 2) % 2], ("straight", "tilted")[(p // 4) % 2]
        image = make_radiograph(size, rng, True, contrast=(0.08, 0.18), radius=SIZES[nodule], side=side)
        density = image.density
        if position == "tilted":
            angle = float(rng.uniform(6, 10)) * (1 if rng.random() < 0.5 else -1)
            density = ndimage.rotate(density, angle, reshape=False, order=1, mode="nearest")
        name = f"images/m{p:04d}.png"
        pixels = np.clip(np.rint(np.clip(density, 0, 1.2) / 1.2 * 255), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(root / name, optimize=False)
        sides = ("right", "left")[side]
        rows.append({"image": name, "patient_id": f"META-{seed:03d}-{p:04d}", "lung": sides, "nodule": nodule,
                     "position": position, "label": f"{sides}-{nodule}-{position}"})
    write_csv(root / "manifest.csv", ["image", "patient_id", "lung", "nodule", "position", "label"], rows)
    return root
