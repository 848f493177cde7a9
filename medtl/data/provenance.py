"""env.json: what produced a run (versions, seeds, device, data and weight hashes)."""

from __future__ import annotations

import platform
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

PACKAGES = ("medtl", "torch", "monai", "numpy", "pydicom", "nibabel", "SimpleITK", "scikit-learn", "scipy",
            "torchmetrics", "pydantic", "highdicom", "safetensors")


def package_versions() -> dict[str, str]:
    """Installed versions of medtl and the packages that decide its numbers."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def data_hash(content_hashes: list[str]) -> str:
    """One digest of a set of cases (order-free)."""
    from ..plumbing.hashing import sha256_text

    return sha256_text(*sorted(content_hashes))


def environment(seed: int, device: str, content_hashes: list[str], weights: dict[str, list[dict]]) -> dict:
    """env.json: versions, platform, device, seed, data hash and the weight files of each arm."""
    import torch

    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": sys.version.split()[0], "platform": platform.platform(), "packages": package_versions(),
        "device": device, "cuda": torch.version.cuda, "torch_threads": torch.get_num_threads(), "seed": seed,
        "data": {"n_cases": len(content_hashes), "sha256": data_hash(content_hashes)},
        "weights": weights,
    }


def write_training_images(path: Path, pixel_hashes: list[str]) -> None:
    """Keyed hashes of the pixels of every image the run saw, so ``medtl evaluate`` can spot them again.

    Pixels, not file bytes: a renamed or re-exported copy (other file name, header, UIDs)
    of a training image is still found. Keyed (project salt), so the file cannot confirm
    that a known image was in the training set.
    """
    from ..plumbing.atomic import write_json

    write_json(path, {"hash": "pixels-v1", "images": sorted({keyed_pixel_hash(h) for h in pixel_hashes})})


def keyed_pixel_hash(pixel_hash: str) -> str:
    """The form in which pixel hashes are stored and compared (keyed with the project salt)."""
    from ..io.pseudonym import keyed_hash

    return keyed_hash(pixel_hash, "image-pixels")


def training_overlap(path: Path, keyed_hashes: list[str]) -> int | None:
    """How many of ``keyed_hashes`` (``keyed_pixel_hash``) are images of the run (``None``: no comparable record)."""
    import json

    if not path.exists():
        return None
    record = json.loads(path.read_text())
    if record.get("hash") != "pixels-v1":
        return None  # an older run hashed file bytes: not comparable
    seen = set(record["images"])
    return sum(h in seen for h in keyed_hashes if h)
