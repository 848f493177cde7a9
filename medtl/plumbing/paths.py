"""Messages about paths the user gave: what is missing, and the closest name that exists."""

from __future__ import annotations

import difflib
import hashlib
import re
from pathlib import Path

from ..errors import OutsideOutputError


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


_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def safe_stem(key: str) -> str:
    """A file-name stem for an id: the id itself when it is a plain name, else a hash of it.

    Ids come from manifests (``case_id``) and may hold ``/``, ``..``, absolute paths or
    control characters; those never reach the file system. Plain ids stay readable.
    """
    if _SAFE_NAME.fullmatch(key) and ".." not in key:
        return key
    return "id-" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def contained(root: str | Path, relative: str | Path) -> Path:
    """``root / relative``, refused unless it resolves (symbolic links followed) to a place inside ``root``.

    Call it before every write or delete whose name is not a literal of the code.
    """
    root = Path(root)
    target = root / relative
    try:
        resolved_root, resolved = root.resolve(), target.resolve()
    except (RuntimeError, OSError):  # a link loop on the way
        resolved_root, resolved = root.absolute(), None
    if resolved is None or (resolved != resolved_root and resolved_root not in resolved.parents):
        raise OutsideOutputError(f"refused to write or delete {relative!s}: it resolves outside the output folder "
                                 f"{root}; output names come from ids and are never followed outside --out")
    return target
