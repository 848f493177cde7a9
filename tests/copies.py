"""Images and their copies as hospitals and public datasets produce them: renamed, re-exported one grey level
brighter, re-exported as 16-bit PNG, re-encoded as JPEG; and images that are not copies. Used by the leak-guard
tests of every guard (issue 27.2)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

COPY_KINDS = {"renamed": "pixels", "plus1": "network", "sixteen": "network", "jpeg": "near"}


def original(seed: int, size: int = 64) -> np.ndarray:
    """A smooth grey image in [20, 200] (no clipping when a grey level is added)."""
    noise = np.random.default_rng(seed).random((size, size))
    smooth = ndimage.gaussian_filter(noise, 4)
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    return (20 + 180 * smooth).astype(np.uint8)


def write_copy(image: np.ndarray, kind: str, path_stem: Path) -> Path:
    """``image`` written as a copy of ``kind`` (``renamed``, ``plus1``, ``sixteen``, ``jpeg``)."""
    if kind == "jpeg":
        path = path_stem.with_suffix(".jpg")
        sitk.WriteImage(sitk.GetImageFromArray(image), str(path), True, 92)
        return path
    path = path_stem.with_suffix(".png")
    array = {"renamed": image, "plus1": image + np.uint8(1), "sixteen": image.astype(np.uint16) * 257}[kind]
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path))
    return path


def write_manifest(path: Path, rows: list[dict]) -> Path:
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_originals(root: Path, n: int = 8, size: int = 64, site: str | None = None, seed: int = 0) -> list[dict]:
    """``n`` originals (patients ``P<seed>-<i>``, labels alternating) as PNG under ``root``; their manifest rows."""
    rows = []
    for i in range(n):
        name = f"orig{seed}-{i}.png"
        sitk.WriteImage(sitk.GetImageFromArray(original(seed * 100 + i, size)), str(root / name))
        row = {"image": name, "label": i % 2, "patient_id": f"P{seed}-{i}"}
        if site:
            row["site"] = site
        rows.append(row)
    return rows
