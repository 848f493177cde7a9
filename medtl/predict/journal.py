"""Append-only record of finished items: what makes ``medtl predict`` resumable.

One JSON line per finished item, flushed and fsynced before the next item starts,
after that item's files were renamed into place. A run killed mid-write leaves at
most one partial last line, which is ignored on reading, so that item is simply
done again. Reading keeps the first record of each key, so nothing is duplicated.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


class Journal:
    """``journal.jsonl`` in the output folder."""

    def __init__(self, path: Path):
        self.path = path
        self.records: dict[str, dict] = {}
        if path.exists():
            self._read()
        self._file = None

    def _read(self) -> None:
        with open(self.path, "rb") as f:
            data = f.read()
        complete = data[: data.rfind(b"\n") + 1]  # a killed writer may leave a partial last line
        for line in complete.splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            self.records.setdefault(record["key"], record)
        if len(complete) != len(data):
            with open(self.path, "r+b") as f:
                f.truncate(len(complete))

    def __contains__(self, key: str) -> bool:
        return key in self.records

    def append(self, record: dict) -> None:
        if record["key"] in self.records:
            return
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a", encoding="utf-8")
        self._file.write(json.dumps(record, allow_nan=True) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self.records[record["key"]] = record

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
