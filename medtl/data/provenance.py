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


def write_training_images(path: Path, image_hashes: list[str]) -> None:
    """Keyed hashes of the content of every image the run saw, so ``medtl evaluate`` can spot them again.

    Keyed (project salt), so the file cannot confirm that a known image was in the training set.
    """
    from ..io.pseudonym import keyed_hash
    from ..plumbing.atomic import write_json

    write_json(path, {"images": sorted({keyed_hash(h, "image-content") for h in image_hashes})})


def training_overlap(path: Path, image_paths: list[Path]) -> int | None:
    """How many of ``image_paths`` are byte-identical to an image of the run (``None``: run lacks the record)."""
    import json

    from ..io.pseudonym import keyed_hash
    from ..plumbing.hashing import sha256_path

    if not path.exists():
        return None
    seen = set(json.loads(path.read_text())["images"])
    return sum(keyed_hash(sha256_path(p), "image-content") in seen for p in image_paths if p.exists())
