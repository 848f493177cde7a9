"""Text files users bring (manifests, splits files, target lists), in the encodings spreadsheets save.

Excel on Windows saves "Unicode text" as UTF-16 with a byte-order mark and "CSV UTF-8"
with a UTF-8 one; older tools save cp1252/Latin-1. UTF-8 (with or without BOM) and UTF-16
with a BOM are read; anything else is one line naming the file, the byte offset of the
first byte that is not UTF-8, and how to re-save it, never a ``UnicodeDecodeError``.
"""

from __future__ import annotations

import codecs
from pathlib import Path

from ..errors import InputError

_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def read_user_text(path: str | Path, what: str = "file") -> str:
    """The text of ``path`` (``what`` names it in errors: "manifest", "cv.splits_file", ...)."""
    data = Path(path).read_bytes()
    encoding = next((name for bom, name in _BOMS if data.startswith(bom)), "utf-8")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as error:
        raise InputError(f"{what} {Path(path).name} is not UTF-8 or UTF-16 text: byte {error.start} "
                         f"(0x{data[error.start]:02x}) cannot be decoded as {error.encoding}; it was probably saved as "
                         "Latin-1/Windows-1252. Re-save it as 'CSV UTF-8' (Excel: File > Save As > CSV UTF-8) or convert "
                         f"it, e.g. `iconv -f cp1252 -t utf-8 {Path(path).name} > fixed.csv`") from None
