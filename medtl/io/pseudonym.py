"""Keyed pseudonyms for patient and series identifiers.

Raw identifiers never leave memory: outputs carry ``HMAC-SHA256(salt, value)``
truncated to 16 hex characters. The salt is per project: ``MEDTL_SALT`` if set,
otherwise a random salt created once in ``$MEDTL_HOME/salt`` (default
``~/.medtl/salt``). Keep that file to get stable keys across runs; anyone holding
it can test guesses of identifiers, so do not publish it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from functools import lru_cache
from pathlib import Path

from ..plumbing.atomic import atomic_path


def medtl_home() -> Path:
    return Path(os.environ.get("MEDTL_HOME", Path.home() / ".medtl"))


@lru_cache(maxsize=4)
def _salt_for(env_salt: str | None, home: str | None, user_home: str | None) -> bytes:
    if env_salt:
        return env_salt.encode()
    path = medtl_home() / "salt"
    if not path.exists():
        with atomic_path(path, mode=0o600) as tmp:  # private: anyone holding it can test guesses of identifiers
            tmp.write_text(secrets.token_hex(32))
    return path.read_text().strip().encode()


def project_salt() -> bytes:
    """The salt used for every key of this project/user."""
    # keyed by the variables medtl_home() reads, so the (per-file) call costs no path work
    return _salt_for(os.environ.get("MEDTL_SALT"), os.environ.get("MEDTL_HOME"), os.environ.get("HOME"))


def keyed_hash(value: str, kind: str) -> str:
    """Opaque, stable key for ``value``; ``kind`` separates name spaces (patient, series, file)."""
    digest = hmac.new(project_salt(), f"{kind}\0{value}".encode(), hashlib.sha256)
    return digest.hexdigest()[:16]
