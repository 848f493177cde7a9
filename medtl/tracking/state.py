"""``RUN/tracking.json``: per tracker, its ids and what it has logged (so a resume never logs a step twice)."""

from __future__ import annotations

import json
from pathlib import Path

from ..plumbing.atomic import write_json


class TrackingState:
    """``{tracker: {"ids": {...}, "epochs": {unit: last epoch logged}, "final": [units], "summary": sha}}``."""

    def __init__(self, path: Path):
        self.path = path
        self.data: dict = json.loads(path.read_text()) if path.exists() else {}

    def of(self, tracker: str) -> dict:
        """The (mutable) record of one tracker."""
        return self.data.setdefault(tracker, {"ids": {}, "epochs": {}, "final": [], "summary": ""})

    def save(self) -> None:
        """Write the state atomically (after every logged step: a crash loses at most the step in flight)."""
        write_json(self.path, self.data)
