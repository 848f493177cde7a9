"""Replace the files of a folder with staged ones so that a kill at any moment leaves the old set or the new set.

The folder itself cannot be renamed (it is the user's ``--out``, and nothing may be written
beside it), so the swap happens inside it, with one file as the commit mark (``last``,
e.g. ``model.json``):

1. the old files move into ``folder/.previous/``, the mark first (from then on the folder
   has no mark: a swap is under way), then ``.previous/.all-aside`` says they all are;
2. the staged files move in, the mark last (the mark's arrival commits the new set);
3. ``.previous/`` is deleted.

``recover`` (called before the next swap, or by a reader) finishes an interrupted swap: with
the mark in place the new set is complete and ``.previous/`` goes; without it the new files
that arrived are removed and the old ones move back.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Sequence

ASIDE = ".previous"
ALL_ASIDE = ".all-aside"  # in ASIDE once every old file is there: from then on new files arrive


def _move(source: Path, target: Path) -> None:
    source.replace(target)


def check_own(*paths: Path) -> None:
    """Refuse working folders that medtl did not make: a link or a file where its folder goes (a planted link
    would send the swap's moves and deletions elsewhere)."""
    from ..errors import InputError

    for path in paths:
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            raise InputError(f"{path} is a {'link' if path.is_symlink() else 'file'}, not a folder medtl made; "
                             "remove it and run again")


def recover(folder: Path, last: str) -> str | None:
    """Finish a swap a kill interrupted; returns what was done (``None``: nothing to do)."""
    aside = folder / ASIDE
    check_own(aside)
    if not aside.is_dir():
        return None
    if (folder / last).is_file():
        shutil.rmtree(aside)
        return "completed an interrupted replacement (the new files were all in place)"
    if (aside / ALL_ASIDE).exists():  # every old file was aside: what is in the folder arrived new
        for path in folder.iterdir():
            if path.is_file():
                path.unlink()
        (aside / ALL_ASIDE).unlink()
    for name in sorted((p.name for p in aside.iterdir()), key=lambda name: name == last):  # the mark back last
        _move(aside / name, folder / name)
    aside.rmdir()
    return "restored the previous files after an interrupted replacement"


def swap_in(staging: Path, folder: Path, old: Sequence[str], last: str) -> None:
    """Replace ``old`` (file names in ``folder``) with every file of ``staging``; ``last`` is the commit mark."""
    aside = folder / ASIDE
    aside.mkdir()
    for name in sorted((n for n in old if (folder / n).exists()), key=lambda n: n != last):  # the mark first
        _move(folder / name, aside / name)
    (aside / ALL_ASIDE).touch()
    for path in sorted(staging.iterdir(), key=lambda p: p.name == last):  # the mark last
        _move(path, folder / path.name)
    staging.rmdir()
    shutil.rmtree(aside)
