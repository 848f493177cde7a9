"""env.json: what produced a run (versions, seeds, device, data and weight hashes)."""

from __future__ import annotations

import hashlib
import platform
import sys
from datetime import datetime, timezone
from importlib import metadata

PACKAGES = ("medtl", "torch", "monai", "numpy", "pydicom", "nibabel", "SimpleITK", "scikit-learn", "scipy",
            "torchmetrics", "pydantic", "highdicom", "safetensors")


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def data_hash(content_hashes: list[str]) -> str:
    return hashlib.sha256("".join(sorted(content_hashes)).encode()).hexdigest()


def environment(seed: int, device: str, content_hashes: list[str], weights: dict[str, list[dict]]) -> dict:
    import torch

    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": sys.version.split()[0], "platform": platform.platform(), "packages": package_versions(),
        "device": device, "cuda": torch.version.cuda, "torch_threads": torch.get_num_threads(), "seed": seed,
        "data": {"n_cases": len(content_hashes), "sha256": data_hash(content_hashes)},
        "weights": weights,
    }
