"""Series whose reading kills the process (a native decoder fault) are found and skipped on resume.

A loader marks a series before reading it and clears the mark after, whatever
the outcome in Python. A mark left behind means the process died while that
series was being read: a resumed run retries such suspects first, one at a time
(so a second death names exactly one series), and skips a series whose mark
shows ``CRASH_LIMIT`` attempts as ``LOADER_CRASHED``. Deleting its mark retries it.
"""

from __future__ import annotations

from pathlib import Path

CRASH_LIMIT = 2


class InflightMarks:
    """One small file per series being read: ``<folder>/<key>`` holding the attempt count."""

    def __init__(self, folder: Path):
        self.folder = folder

    def count(self, key: str) -> int:
        try:
            return int((self.folder / key).read_text() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def begin(self, key: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        attempts = self.count(key) + 1
        (self.folder / key).write_text(str(attempts))

    def end(self, key: str) -> None:
        (self.folder / key).unlink(missing_ok=True)

    def suspects(self) -> dict[str, int]:
        """Series a previous run died while reading, with their attempt counts."""
        if not self.folder.is_dir():
            return {}
        return {path.name: self.count(path.name) for path in self.folder.iterdir() if path.is_file()}
