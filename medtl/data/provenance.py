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


def write_training_images(path: Path, cases: list) -> None:
    """Keyed hashes of every image the run saw, so ``medtl evaluate`` can spot them again, copies included.

    Three keys per image (the rule of ``medtl.data.overlap``): the pixels (not file bytes: a
    renamed or re-exported copy with other file name, header or UIDs is still found), the
    network input rounded to 1e-3 (a re-export with other pixels but the same input), and the
    dHash of the network input (near-identical copies such as JPEG re-encodes). The hashes are
    keyed with the project salt and the dHashes masked with a salt-derived key (bit distances
    are kept), so the file cannot confirm that a known image was in the training set.
    """
    from ..plumbing.atomic import write_json
    from .overlap import image_keys, network_hash

    keys = image_keys(cases)
    write_json(path, {"hash": "pixels-v2", "images": sorted({keyed_pixel_hash(c.image_hash) for c in cases}),
                      "network": sorted({keyed_network_hash(network_hash(c.image)) for c in cases}),
                      "dhash": sorted({masked_dhash(d.tobytes()) for d in keys.dhashes})})


def keyed_pixel_hash(pixel_hash: str) -> str:
    """The form in which pixel hashes are stored and compared (keyed with the project salt)."""
    from ..io.pseudonym import keyed_hash

    return keyed_hash(pixel_hash, "image-pixels")


def keyed_network_hash(digest: str) -> str:
    """The form in which network-input hashes (``medtl.data.overlap.network_hash``) are stored and compared."""
    from ..io.pseudonym import keyed_hash

    return keyed_hash(digest, "network-input")


def masked_dhash(dhash: bytes) -> str:
    """A dHash XOR a key derived from the project salt, as hex: distances between masked hashes are the distances
    between the hashes, but without the salt an image's masked hash cannot be computed."""
    import hashlib
    import hmac

    from ..io.pseudonym import project_salt

    mask = hmac.new(project_salt(), b"dhash-mask", hashlib.sha256).digest()
    return bytes(a ^ b for a, b in zip(dhash, mask)).hex()


def image_record(image, pixel_hash: str) -> dict:
    """The keyed keys of one image for ``training_overlap`` (``pixel_hash``, ``network_hash``, ``dhash``)."""
    from .duplicates import difference_hash
    from .overlap import network_hash

    return {"pixel_hash": keyed_pixel_hash(pixel_hash), "network_hash": keyed_network_hash(network_hash(image)),
            "dhash": masked_dhash(difference_hash(image))}


def training_overlap(path: Path, records: list[dict]):
    """How many ``records`` (``image_record``) are copies of, or near-identical to, images of the run:
    an ``OverlapCounts``, or ``None`` when the run has no comparable record (made by an older medtl)."""
    import json

    import numpy as np

    from .duplicates import close_pairs
    from .overlap import OverlapCounts

    if not path.exists():
        return None
    record = json.loads(path.read_text())
    if record.get("hash") not in ("pixels-v1", "pixels-v2"):
        return None  # an older run hashed file bytes: not comparable
    pixels, network = set(record["images"]), set(record.get("network", []))
    seen = [bytes.fromhex(h) for h in record.get("dhash", [])]
    kinds = ["pixels" if r.get("pixel_hash") in pixels else "network" if r.get("network_hash") in network else ""
             for r in records]
    candidates = [i for i, k in enumerate(kinds) if not k and records[i].get("dhash")]
    if seen and candidates:
        mine = np.stack([np.frombuffer(bytes.fromhex(records[i]["dhash"]), dtype=np.uint8) for i in candidates])
        theirs = np.stack([np.frombuffer(h, dtype=np.uint8) for h in seen])
        for i, _ in close_pairs(mine, theirs):
            kinds[candidates[i]] = "near"
    return OverlapCounts(kinds.count("pixels"), kinds.count("network"), kinds.count("near"))

