"""The prepared-case cache shared by every run: ``$MEDTL_HOME/cache/cases``, content-addressed.

An entry is keyed by the SHA-256 of its input files' content and the preprocessing
fingerprint (``dataset.preprocessing_fingerprint``), so cv, tune, pretraining and every
label-fraction arm of every run read the same entry, and a changed file or setting never
meets a stale one. Layout::

    cases/entries/<d[:2]>/<d[:32]>/   image.npy [mask.npy foreground.npy] entry.json (written last)
    cases/leases/<host>-<pid>-<n>.txt  the entries a running process has open (one digest per line)
    cases/staging/                    entries being written (renamed into entries/ when complete)
    cases/.lock                       taken shared to open or publish an entry, exclusively to evict

Guarantees:
- an entry appears whole or not at all (written under ``staging/``, renamed in);
- ``entry.json`` holds every file's size and SHA-256 and a checksum of itself: a
  truncated or edited entry is discarded and the case prepared again, never served;
- ``MEDTL_CACHE_GB`` (default 20) bounds the cache; least recently used entries go first,
  and never one a live process has leased (opened or written); the bound is enforced when
  a batch of cases has been prepared and by ``medtl cache prune``;
- two processes preparing the same case both succeed: the second publish finds the
  entry in place and discards its own copy.
"""

from __future__ import annotations

import atexit
import fcntl
import hashlib
import io
import itertools
import json
import logging
import os
import shutil
import socket
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import InputError
from ..io.pseudonym import medtl_home
from ..plumbing.atomic import process_alive as _alive

log = logging.getLogger("medtl")

DEFAULT_BOUND_GB = 20.0
ARRAY_NAMES = ("image", "mask", "foreground")
_ENTRY = "entry.json"
_lease_numbers = itertools.count()


def cache_bound_bytes() -> int:
    """``MEDTL_CACHE_GB`` in bytes (default 20 GB)."""
    raw = os.environ.get("MEDTL_CACHE_GB", "").strip()
    if not raw:
        return int(DEFAULT_BOUND_GB * 1e9)
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise InputError(f"MEDTL_CACHE_GB={raw!r} is not a positive number of gigabytes; set it to e.g. 50, or unset "
                         f"it for the default of {DEFAULT_BOUND_GB:g}")
    return int(value * 1e9)


@dataclass
class CachedEntry:
    """An entry read back: its recorded facts and its arrays (in memory, or their ``.npy`` files)."""

    digest: str
    meta: dict
    arrays: dict[str, np.ndarray | Path] = field(default_factory=dict)


@dataclass
class EntryInfo:
    """One entry on disk, for bounds and ``medtl cache info``."""

    digest: str
    folder: Path
    size: int
    last_used: float


class _Lease:
    """This process's lease file under one cache: the entries it has opened or written, one per line (the file
    and the cache's lock file stay open for the process's life: an entry read costs no extra opens)."""

    def __init__(self, folder: Path):
        self.pid = os.getpid()
        self.path = folder / f"{socket.gethostname()}-{self.pid}-{next(_lease_numbers)}.txt"
        self.held: set[str] = set()
        self._handle = None
        self.lock_handle = None
        atexit.register(self.release)

    def add(self, digest: str) -> None:
        self.add_many([digest])

    def add_many(self, digests: list[str]) -> None:
        new = [d for d in dict.fromkeys(digests) if d not in self.held]
        if not new:
            return
        if self._handle is None or self._handle.closed:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.path, "a", encoding="ascii")
        self._handle.write("".join(d + "\n" for d in new))  # whole lines, flushed before the lock is let go
        self._handle.flush()
        self.held.update(new)

    def release(self) -> None:
        if os.getpid() == self.pid:  # a forked worker exits without removing its parent's lease
            if self._handle is not None:
                self._handle.close()
            self.path.unlink(missing_ok=True)
            self.held.clear()


class CaseCache:
    """The shared prepared-case cache (``root`` defaults to ``$MEDTL_HOME/cache/cases``)."""

    _leases: dict[tuple[int, str], _Lease] = {}

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else medtl_home() / "cache" / "cases"
        self._resolved: str | None = None

    def __repr__(self) -> str:
        return f"CaseCache({str(self.root)!r})"

    @property
    def entries_folder(self) -> Path:
        return self.root / "entries"

    @property
    def leases_folder(self) -> Path:
        return self.root / "leases"

    def entry_folder(self, digest: str) -> Path:
        """Where the entry of ``digest`` lives (whether or not it exists)."""
        return Path(self._entry_path(digest))

    def _entry_path(self, digest: str) -> str:
        return os.path.join(self.entries_folder, digest[:2], digest[:32])  # a str: thousands are made per run

    @property
    def lease(self) -> _Lease:
        """This process's lease on this cache (created on first use, removed when the process exits)."""
        if self._resolved is None:  # resolving the path costs a system call per folder: once per cache object
            self._resolved = str(self.root.resolve())
        key = (os.getpid(), self._resolved)
        if key not in self._leases:
            self._leases[key] = _Lease(self.leases_folder)
        return self._leases[key]

    @contextmanager
    def _locked(self, exclusive: bool) -> Iterator[None]:
        lease = self.lease
        if lease.lock_handle is None:
            self.root.mkdir(parents=True, exist_ok=True)
            lease.lock_handle = open(self.root / ".lock", "a")
        fcntl.flock(lease.lock_handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(lease.lock_handle, fcntl.LOCK_UN)

    # --- reading and writing entries ---------------------------------------------------------------------

    def get(self, digest: str, in_memory: bool = True) -> CachedEntry | None:
        """The verified entry of ``digest``, or ``None`` (absent, or corrupt: then it is discarded).

        ``in_memory`` loads the arrays; otherwise they are returned as their files (opened
        memory-mapped on each use; the lease keeps them from eviction while this process runs).
        """
        return self.get_many([digest], in_memory)[0]

    def get_many(self, digests: list[str], in_memory: bool = True) -> list[CachedEntry | None]:
        """``get`` of each digest, in order; the entries found are leased under one lock and one lease write (a
        run opens thousands)."""
        folders = [self._entry_path(digest) for digest in digests]
        with self._locked(exclusive=False):
            present = [os.path.isfile(os.path.join(folder, _ENTRY)) for folder in folders]
            self.lease.add_many([digest for digest, found in zip(digests, present) if found])
        out: list[CachedEntry | None] = []
        for digest, folder, found in zip(digests, folders, present):
            out.append(self._opened(digest, folder, in_memory) if found else None)
        return out

    def _opened(self, digest: str, folder: str, in_memory: bool) -> CachedEntry | None:
        try:
            entry = self._verified(digest, Path(folder), in_memory)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("prepared-case cache entry %s is damaged (%s): preparing the case again", digest[:12], exc)
            self._discard(Path(folder))
            return None
        try:
            os.utime(os.path.join(folder, _ENTRY))  # last use, for least-recently-used eviction
        except OSError:
            pass
        return entry

    def put(self, digest: str, arrays: dict[str, np.ndarray | None], meta: dict, in_memory: bool = True
            ) -> CachedEntry:
        """Publish an entry (arrays and facts) under ``digest`` and return it as ``get`` would."""
        staging = self.root / "staging" / f"{os.getpid()}-{uuid.uuid4().hex}"
        staging.mkdir(parents=True)
        files = {}
        try:
            for name, array in arrays.items():
                if array is None:
                    continue
                buffer = io.BytesIO()
                np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
                data = buffer.getvalue()
                (staging / f"{name}.npy").write_bytes(data)
                files[name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            (staging / _ENTRY).write_text(json.dumps(_sealed({"digest": digest, "meta": meta, "files": files})))
            folder = self.entry_folder(digest)
            folder.parent.mkdir(parents=True, exist_ok=True)
            with self._locked(exclusive=False):
                self.lease.add(digest)
                try:
                    staging.rename(folder)
                except OSError:  # published meanwhile by another process: the same content by its key
                    if not (folder / _ENTRY).is_file():
                        raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        stored = {name: array for name, array in arrays.items() if array is not None}
        if in_memory:
            return CachedEntry(digest, meta, stored)
        return CachedEntry(digest, meta, {name: folder / f"{name}.npy" for name in stored})

    def _verified(self, digest: str, folder: Path, in_memory: bool) -> CachedEntry:
        with open(os.path.join(folder, _ENTRY), encoding="utf-8") as f:
            record = json.load(f)
        if record.get("check") != _check(record) or record.get("digest") != digest:
            raise ValueError(f"{_ENTRY} does not match its checksum")
        arrays: dict[str, np.ndarray | Path] = {}
        for name, expected in record["files"].items():
            path = os.path.join(folder, f"{name}.npy")
            size = os.stat(path).st_size
            if size != expected["bytes"]:
                raise ValueError(f"{name}.npy has {size} bytes, {expected['bytes']} were written")
            data = None
            if in_memory:
                with open(path, "rb") as f:
                    data = f.read()
            if (hashlib.sha256(data).hexdigest() if data is not None else _sha256_of(Path(path))) != expected["sha256"]:
                raise ValueError(f"{name}.npy differs from what was written (checksum)")
            arrays[name] = npy_from_bytes(data) if data is not None else Path(path)
        return CachedEntry(digest, record["meta"], arrays)

    def _discard(self, folder: Path) -> None:
        """Take an entry out (renamed away under the exclusive lock, then deleted)."""
        trash = self.root / "staging" / f"discard-{uuid.uuid4().hex}"
        trash.parent.mkdir(parents=True, exist_ok=True)
        with self._locked(exclusive=True):
            try:
                folder.rename(trash)
            except OSError:
                return
        shutil.rmtree(trash, ignore_errors=True)

    # --- bounds --------------------------------------------------------------------------------------------

    def entries(self) -> list[EntryInfo]:
        """Every complete entry, least recently used first."""
        found = []
        for record in self.entries_folder.glob(f"*/*/{_ENTRY}"):
            folder = record.parent
            try:
                size = sum(p.stat().st_size for p in folder.iterdir())
                found.append(EntryInfo(folder.name, folder, size, record.stat().st_mtime))
            except OSError:  # evicted while listed
                continue
        return sorted(found, key=lambda e: (e.last_used, e.digest))

    def leased(self) -> set[str]:
        """Digest prefixes (entry names) held by live processes; leases of finished processes are removed."""
        held: set[str] = set()
        host = socket.gethostname()
        for path in self.leases_folder.glob("*.txt"):
            owner, _, rest = path.stem.rpartition("-")[0].rpartition("-")
            pid = int(rest) if rest.isdigit() else -1
            if owner == host and pid > 0 and not _alive(pid):
                path.unlink(missing_ok=True)
                continue
            try:
                held.update(line.strip()[:32] for line in path.read_text(encoding="ascii").splitlines() if line)
            except OSError:
                continue
        return held

    def evict(self, bound: int | None = None, everything: bool = False) -> dict:
        """Remove least recently used entries no live process holds until the cache fits ``bound`` bytes
        (default ``MEDTL_CACHE_GB``; ``everything``: every such entry). Returns counts and bytes."""
        bound = cache_bound_bytes() if bound is None else bound
        removed, freed, kept_leased = 0, 0, 0
        doomed = []
        with self._locked(exclusive=True):
            entries = self.entries()
            total = sum(e.size for e in entries)
            held = self.leased()
            for entry in entries:
                if not everything and total <= bound:
                    break
                if entry.digest in held:
                    kept_leased += 1
                    continue
                trash = self.root / "staging" / f"evict-{uuid.uuid4().hex}"
                trash.parent.mkdir(parents=True, exist_ok=True)
                try:
                    entry.folder.rename(trash)
                except OSError:
                    continue
                doomed.append(trash)
                total -= entry.size
                removed += 1
                freed += entry.size
        for trash in doomed:
            shutil.rmtree(trash, ignore_errors=True)
        if total > bound and not everything:
            log.warning("the prepared-case cache holds %.2f GB, over MEDTL_CACHE_GB (%.2f GB): %d entries in use by "
                        "running jobs are kept", total / 1e9, bound / 1e9, kept_leased)
        return {"removed": removed, "freed_bytes": freed, "kept_in_use": kept_leased, "bytes_after": total}

    def remove_stale_staging(self) -> int:
        """Delete staging folders of processes that no longer run (an interrupted write or removal); returns how
        many."""
        removed = 0
        for folder in (self.root / "staging").glob("*"):
            head = folder.name.split("-", 1)[0]
            try:
                old = time.time() - folder.stat().st_mtime > 3600
            except OSError:
                continue
            if (not _alive(int(head))) if head.isdigit() else old:  # removals are named discard-/evict-
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
        return removed

    def verify(self) -> list[str]:
        """Check every entry's checksums; damaged entries are discarded. Returns their names."""
        damaged = []
        for entry in self.entries():
            try:
                record = json.loads((entry.folder / _ENTRY).read_text())
                self._verified(record.get("digest", ""), entry.folder, in_memory=False)
            except (OSError, ValueError, KeyError, TypeError):
                damaged.append(entry.digest)
                self._discard(entry.folder)
        return damaged


def _check(record: dict) -> str:
    body = {k: v for k, v in record.items() if k != "check"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _sealed(record: dict) -> dict:
    return {**record, "check": _check(record)}


_NPY_HEADERS: dict[bytes, tuple[np.dtype, tuple[int, ...], str, int]] = {}


def npy_from_bytes(data: bytes) -> np.ndarray:
    """``np.load`` of an ``.npy`` file's bytes (no pickles), as a writable array.

    Parsing an ``.npy`` header costs more than reading a small array (NumPy evaluates it as a
    Python literal); every entry of a run has one of a few headers, so each is parsed once by
    ``np.load`` and remembered by its exact bytes.
    """
    length = 10 + int.from_bytes(data[8:10], "little") if data[6:7] == b"\x01" else (
        12 + int.from_bytes(data[8:12], "little"))
    header = data[:length]
    known = _NPY_HEADERS.get(header)
    if known is None:
        array = np.load(io.BytesIO(data), allow_pickle=False)
        if not array.dtype.hasobject and len(_NPY_HEADERS) < 1024:
            _NPY_HEADERS[header] = (array.dtype, array.shape, "F" if np.isfortran(array) else "C", length)
        return array
    dtype, shape, order, offset = known
    if len(data) - offset != dtype.itemsize * int(np.prod(shape)):
        raise ValueError(f"an .npy file holds {len(data) - offset} data bytes; its header says {shape} {dtype}")
    return np.frombuffer(bytearray(memoryview(data)[offset:]), dtype=dtype).reshape(shape, order=order)


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def age_of(seconds: float) -> str:
    """``3 h`` / ``2 d``: how long ago a time stamp was, for ``medtl cache info``."""
    age = max(0.0, time.time() - seconds)
    return f"{age / 86400:.1f} d" if age >= 86400 else f"{age / 3600:.1f} h"
