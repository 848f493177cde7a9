"""Exception and warning hierarchy.

Every user-facing problem is a ``MedtlError``: its message says what went wrong,
the offending value, where (file, case, config key) and how to fix it. The CLI turns
it into one line and exit code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class MedtlError(Exception):
    """Base class of every error medtl raises on purpose."""


class ConfigError(MedtlError, ValueError):
    """A config file or a ``--set`` override is invalid."""


class InputError(MedtlError, ValueError):
    """An input file, folder or manifest cannot be used.

    ``reason`` is the stable reason code (see ``medtl.io.reasons``) when one applies.
    """

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        self.reason = reason


class MedtlWarning(UserWarning):
    """A recorded, visible warning (never a silent fallback)."""


def public_detail(exc: BaseException, limit: int = 200) -> str:
    """An error message fit for skipped.csv: the part after the case prefix, with paths removed.

    Export paths often hold patient names (``DOE^JOHN_12345/``), so any token with a path
    separator is replaced by ``<path>``.
    """
    import re

    text = str(exc).split(": ", 1)[-1]
    return re.sub(r"[^\s;,()']*[/\\][^\s;,()']*", "<path>", text)[:limit]
