"""Messages about paths the user gave: what is missing, and the closest name that exists."""

from __future__ import annotations

import difflib
from pathlib import Path


def missing_file_message(path: Path, what: str, fix: str) -> str:
    """"``what`` not found: ``path``; did you mean ...? ``fix``" with the closest name in the same folder."""
    path = Path(path)
    folder = path.parent
    names = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    close = difflib.get_close_matches(path.name, names, n=1, cutoff=0.6)
    if close:
        hint = f"did you mean '{folder / close[0]}'? "
    elif not folder.is_dir():
        hint = f"(its folder {folder} does not exist) "
    else:
        hint = ""
    return f"{what} not found: {path}; {hint}{fix}"
