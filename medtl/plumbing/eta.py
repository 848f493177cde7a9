"""Time left of a job made of units of several kinds (an arm's fold epochs, a source stage's epochs).

A rate over the whole job mixes kinds that cost very differently (a patch-mode arm's
epoch and a resized arm's), counts work that never runs (a finished fold on resume, an arm
skipped for missing weights) as instantly done, and swings inside an epoch (the
inner-split scoring at its end advances nothing). Here each kind keeps its own seconds
per unit (the median of its last finished units, so a slow first epoch stops counting once
there are three), work that will not run is dropped from the plan, and the unit in
progress counts down smoothly: its elapsed time is taken off its estimate.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict, deque

RECENT = 5  # finished units per kind whose median is the kind's rate


class WorkEstimate:
    """Planned units per kind; ``finished``/``drop`` as the job goes; ``seconds_left`` at any moment."""

    def __init__(self, planned: dict[str, float], clock=time.monotonic):
        self.remaining: dict[str, float] = {k: float(v) for k, v in planned.items() if v > 0}
        self._durations: dict[str, deque] = defaultdict(lambda: deque(maxlen=RECENT))
        self._clock = clock
        self._current: str | None = None
        self._since = clock()

    @property
    def total(self) -> float:
        """Units still planned (the bar's total moves with ``drop``)."""
        return sum(self.remaining.values())

    def start(self, kind: str) -> None:
        """Units of ``kind`` start now (its first unit's clock starts)."""
        self._current, self._since = kind, self._clock()

    def finished(self, kind: str, units: float = 1.0) -> None:
        """``units`` of ``kind`` finished; their time is the time since the last start or finish."""
        now = self._clock()
        if units > 0:
            self._durations[kind].append((now - self._since) / units)
        self.remaining[kind] = max(0.0, self.remaining.get(kind, 0.0) - units)
        self._current, self._since = kind, now

    def drop(self, kind: str, units: float) -> None:
        """``units`` of ``kind`` will not run (finished before a resume, a skipped arm, a reused stage)."""
        self.remaining[kind] = max(0.0, self.remaining.get(kind, 0.0) - units)

    def rate(self, kind: str) -> float | None:
        """Seconds per unit of ``kind``: its own recent median, else the mean of the kinds measured so far."""
        if self._durations.get(kind):
            return statistics.median(self._durations[kind])
        measured = [statistics.median(d) for d in self._durations.values() if d]
        return sum(measured) / len(measured) if measured else None

    def seconds_left(self) -> float | None:
        """Estimated seconds to finish every planned unit; ``None`` until one unit has been timed."""
        total = 0.0
        for kind, units in self.remaining.items():
            if units <= 0:
                continue
            rate = self.rate(kind)
            if rate is None:
                return None
            total += units * rate
        if self._current is not None and self.remaining.get(self._current, 0) > 0:
            rate = self.rate(self._current) or 0.0
            total -= min(self._clock() - self._since, rate)  # the unit in progress counts down, never below 0
        return max(0.0, total)

    def text(self) -> str:
        """``ETA 1 h 05 min`` / ``ETA 4 min`` / ``ETA after the first epoch``."""
        left = self.seconds_left()
        if left is None:
            return "ETA after the first epoch"
        minutes = round(left / 60)
        if left < 90:
            return f"ETA {round(left)} s"
        return f"ETA {minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"ETA {minutes} min"
