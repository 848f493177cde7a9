"""Progress bars for long work (rich), silent when disabled or not on a terminal."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Callable, Iterator


@contextmanager
def progress_bar(description: str, total: float, enabled: bool = True,
                 eta: Callable[[], str] | None = None) -> Iterator[Callable[..., None]]:
    """Yield ``advance(n, description=None, total=None)``; shows count, rate and ETA on stderr when ``enabled`` on a
    terminal.

    ``n`` may be a fraction (a batch of an epoch), so rate and ETA move within long units;
    ``total`` replaces the bar's total (work that will not run after all). ``eta`` gives the
    time-left text (``medtl.plumbing.eta``) instead of rich's estimate from the overall rate.
    """
    if not enabled or not sys.stderr.isatty():
        yield lambda n=1, description=None, total=None: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]}"), TextColumn("{task.fields[eta]}") if eta else TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True)) as progress:
        task = progress.add_task(description, total=total, rate="", eta=eta() if eta else "")

        def advance(n: float = 1, description: str | None = None, total: float | None = None) -> None:
            if description is not None:
                progress.update(task, description=description)
            if total is not None:
                progress.update(task, total=total)
            progress.advance(task, n)
            if eta:
                progress.update(task, eta=eta())
            speed = progress.tasks[task].speed
            progress.update(task, rate=(f"{speed:,.0f}/s" if speed >= 10 else f"{speed:.2g}/s") if speed else "")

        yield advance
