"""Series whose reading kills the process (a native decoder fault) are found and skipped on resume.

A loader marks a series before reading it and clears the mark after, whatever
the outcome in Python. A mark left behind means the process died while that
series was being read: a resumed run retries such suspects first, one at a time
(so a second death names exactly one series), and skips a series whose mark
shows ``CRASH_LIMIT`` attempts as ``LOADER_CRASHED``. Deleting its mark retries it.
"""

from __future__ import annotations

from pathlib import Path

from ..plumbing.paths import contained, safe_stem

CRASH_LIMIT = 2


class InflightMarks:
    """One small file per series being read, holding its key and the attempt count.

    The file is named by ``safe_stem(key)`` and checked to stay inside the folder: a
    key from a manifest is never used as a path.
    """

    def __init__(self, folder: Path):
        self.folder = folder

    def _path(self, key: str) -> Path:
        return contained(self.folder, safe_stem(key))

    def count(self, key: str) -> int:
        """Attempts recorded for ``key`` (0: none)."""
        return self._read(self._path(key))[1]

    @staticmethod
    def _read(path: Path) -> tuple[str, int]:
        try:
            key, attempts = path.read_text(encoding="utf-8").rsplit("\n", 1)
            return key, int(attempts)
        except (FileNotFoundError, ValueError):
            return "", 0

    def begin(self, key: str) -> None:
        """Mark ``key`` as being read (one more attempt)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self._path(key).write_text(f"{key}\n{self.count(key) + 1}", encoding="utf-8")

    def end(self, key: str) -> None:
        """Clear the mark of ``key``."""
        self._path(key).unlink(missing_ok=True)

    def suspects(self) -> dict[str, int]:
        """Series a previous run died while reading, with their attempt counts."""
        if not self.folder.is_dir():
            return {}
        marks = (self._read(path) for path in self.folder.iterdir() if path.is_file())
        return {key: attempts for key, attempts in marks if key}

    def restore(self, before: dict[str, int]) -> None:
        """Undo the marks of this run after a clean interruption (Ctrl-C, SIGTERM).

        Only a process that died while reading may count as a crash; a series that was
        merely in flight when the user stopped the run gets back its earlier count.
        """
        for key in self.suspects():
            if key in before:
                self._path(key).write_text(f"{key}\n{before[key]}", encoding="utf-8")
            else:
                self.end(key)
