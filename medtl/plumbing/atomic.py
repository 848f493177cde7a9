"""Atomic output files: a reader sees the old file or the new one, never half of one.

``write_atomic`` writes bytes or text; ``atomic_path`` is the form for libraries that
write files themselves (nibabel, highdicom, safetensors, torch.save, numpy): they
write to the temporary path it yields, and the file is renamed into place only when
the block finishes without an error.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | Path, mode: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success fsync it and rename it to ``path``.

    The temporary name keeps ``path``'s suffixes (``.nii.gz``, ``.npz``), because some
    writers choose the format from the name. On an error the temporary file is removed
    and ``path`` is left as it was. The file gets ``mode``, by default what the user's
    umask gives a new file (colleagues can read the report), not ``mkstemp``'s 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".tmp-{os.getpid()}-", suffix=f"-{path.name}")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, (0o666 & ~_umask()) if mode is None else mode)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


_TEMP_NAME = re.compile(r"\.tmp-(\d+)-")


def process_alive(pid: int) -> bool:
    """Whether a process of this id runs on this machine (one of another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_orphan_temps(folder: str | Path) -> int:
    """Delete temporary files that ``atomic_path`` left under ``folder`` when its process was killed.

    Only files of processes that no longer run are removed (a concurrent writer keeps
    its file); returns how many were removed.
    """
    removed = 0
    for path in Path(folder).rglob(".tmp-*"):
        match = _TEMP_NAME.match(path.name)
        if match and path.is_file() and not path.is_symlink() and not process_alive(int(match.group(1))):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            with open(tmp, "w", encoding="utf-8", newline="") as f:
                f.write(data)
    return path


def link_or_copy(source: str | Path, target: str | Path) -> None:
    """Hard-link ``source`` as ``target`` (no second copy of a large file); copy it on another file system."""
    import shutil

    try:
        os.link(source, target)
    except OSError:  # another file system (or one without hard links): copy instead
        shutil.copy2(source, target)


def publish_folder(source: str | Path, target: str | Path) -> Path:
    """Make ``target`` a copy of the folder ``source`` (files hard-linked where possible), all at once: built under
    a temporary name beside ``target``, then renamed, so a reader never sees half of it. An existing ``target`` is
    replaced."""
    import shutil

    target = Path(target)
    staging = target.with_name(f".tmp-{os.getpid()}-{target.name}")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging, copy_function=link_or_copy)
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    return target


def strict_json(obj: Any) -> Any:
    """NaN/inf are not JSON: they become ``null`` (a missing number, never a fake one)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v) for v in obj]
    return obj


def write_json(path: str | Path, obj: Any) -> Path:
    """``obj`` as indented strict JSON, atomically."""
    return write_atomic(path, json.dumps(strict_json(obj), indent=2, allow_nan=False) + "\n")


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """One CSV cell as spreadsheets should see it.

    A non-finite number is written empty (never as a number); text that a spreadsheet
    would run as a formula (starting with ``= + - @``, tab or CR, and not a plain number)
    gets a leading apostrophe.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        try:
            float(value)
        except ValueError:
            return "'" + value
    return value


def csv_value(text: str) -> str:
    """Inverse of ``csv_cell`` for text: medtl's own CSVs read back exactly as they were meant."""
    if text.startswith("'") and text[1:].startswith(_FORMULA_START) and csv_cell(text[1:]) == text:
        return text[1:]
    return text


def read_csv(path: str | Path, what: str = "CSV file") -> tuple[list[str], list[dict[str, str]]]:
    """``(columns, rows)`` of a CSV written by ``write_csv`` (or by a user: UTF-8 or UTF-16 with BOM, see
    ``plumbing.text``), cells restored with ``csv_value``."""
    from .text import read_user_text

    reader = csv.DictReader(io.StringIO(read_user_text(path, what), newline=""))
    rows = [{k: csv_value(v or "") for k, v in row.items()} for row in reader]
    return list(reader.fieldnames or []), rows


def write_csv(path: str | Path, columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> Path:
    """Rows (dicts holding exactly ``columns``) as CSV with a header, atomically; cells pass ``csv_cell``."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="raise")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: csv_cell(value) for key, value in row.items()})
    return write_atomic(path, buffer.getvalue())
