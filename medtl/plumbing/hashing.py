"""SHA-256 of files, folders and text: the one hasher for weights, data fingerprints and run state."""

from __future__ import annotations

import hashlib
from pathlib import Path

_BLOCK = 1 << 20


def _update_from_file(digest, path: Path) -> None:
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_BLOCK), b""):
            digest.update(block)


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of one file's bytes."""
    digest = hashlib.sha256()
    _update_from_file(digest, Path(path))
    return digest.hexdigest()


def sha256_path(path: str | Path) -> str:
    """Hex SHA-256 of a file, or of every file under a folder (relative names included, sorted).

    For a single file the file's own name is part of the digest, so that a DICOM folder
    and a NIfTI file with the same bytes never collide.
    """
    path = Path(path)
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode())
        _update_from_file(digest, file)
    return digest.hexdigest()


def sha256_text(*parts: str) -> str:
    """Hex SHA-256 of the concatenated ``parts``."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode())
    return digest.hexdigest()
