"""Keeping patient data out of logs and error details.

Export paths often hold patient names (``DOE^JOHN_12345/``) and DICOM UIDs identify
studies. ``redact`` replaces both in free text; ``PhiFilter`` applies it to every log
record that reaches a handler (medtl's, pydicom's, Python warnings), and
``redacting_excepthook`` to tracebacks. Paths of Python and of medtl's own code stay
readable, so a bug report still says where the bug is.
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
from functools import lru_cache
from pathlib import Path

_PATH = re.compile(r"[^\s;,()'\"<>=]*[/\\][^\s;,()'\"<>=]*")
_NOT_A_PATH = re.compile(r"[\d/.:+-]+")  # "1/4" (a shard), "3/10" (a ratio): no names in it
# a DICOM UID (PS3.5 9.1): components of digits without leading zeros, the first 0, 1 or 2 (ISO/ITU roots), at
# most 64 characters; an IPv4 address (four numbers up to 255, e.g. a scheduler or tracking server) is not one
# (UUID-derived UIDs are 2.25.<a 128-bit number>: three components, but not a version number)
_UID = re.compile(r"(?<![\w.])(?:[012](?:\.(?:0|[1-9]\d*)){3,}|2\.25\.[1-9]\d{6,})(?![\w.])")


def _uid(match: re.Match) -> str:
    token = match.group(0)
    parts = token.split(".")
    if len(token) > 64 or (len(parts) == 4 and all(int(p) <= 255 for p in parts)):
        return token  # an IPv4 address (or not a UID at all)
    return "<uid>"


@lru_cache(maxsize=1)  # called for every log record
def _code_roots() -> tuple[str, ...]:
    return (sys.prefix, sys.base_prefix, str(Path(__file__).resolve().parents[2]))


def redact(text: str) -> str:
    """``text`` with data paths replaced by ``<path>`` and DICOM UIDs by ``<uid>``."""
    roots = _code_roots()

    def path(match: re.Match) -> str:
        token = match.group(0)
        if token.startswith(roots) or "://" in token or _NOT_A_PATH.fullmatch(token):
            return token
        return "<path>"

    return _UID.sub(_uid, _PATH.sub(path, text))


def public_detail(exc: BaseException, limit: int = 240) -> str:
    """An error message fit for skipped.csv: the part after the case prefix, redacted, at most ``limit`` chars
    (a longer one is cut at a word, marked with ``[...]``, never mid-word)."""
    text = redact(str(exc).split(": ", 1)[-1])
    if len(text) <= limit:
        return text
    return text[:limit - 6].rsplit(" ", 1)[0].rstrip(" ;,") + " [...]"


class PhiFilter(logging.Filter):
    """Rewrites each record's message (and exception text) through ``redact``."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record still gets logged, redacted
            message = str(record.msg)
        record.msg, record.args = redact(message), None
        if record.exc_info:
            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)))
            record.exc_info = None
        return True


def redacting_excepthook(kind, value, tb) -> None:
    """Print an unexpected error's traceback with data paths and UIDs redacted."""
    sys.stderr.write(redact("".join(traceback.format_exception(kind, value, tb))))


def install(keep_paths: bool = False) -> None:
    """Route Python warnings and pydicom's own handler through the root handlers, all filtered."""
    logging.captureWarnings(True)
    import pydicom.config  # noqa: F401 - it installs its own stderr handler on import; taken out below

    third_party = logging.getLogger("pydicom")
    for handler in list(third_party.handlers):
        third_party.removeHandler(handler)
    third_party.propagate = True
    third_party.setLevel(logging.ERROR)
    if keep_paths:
        return
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, PhiFilter) for f in handler.filters):
            handler.addFilter(PhiFilter())
    sys.excepthook = redacting_excepthook
