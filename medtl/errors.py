"""Exception and warning hierarchy: one class per decision a caller can make.

Every user-facing problem is a ``MedtlError``: its message says what went wrong,
the offending value, where (file, case, config key) and how to fix it. The CLI turns
it into one line and exit code 2; anything else is a bug and keeps its traceback.

The decisions:

- ``ConfigError``: the experiment as written cannot run; always an error.
- ``UnknownNameError``: the user named something that does not exist (a backbone, a
  task, a checkpoint file, an arm); always an error, with the closest match.
- ``WeightsError``: a weight file exists but is corrupt, fails its hash or is unsafe.
- ``WeightsUnavailableError``: published pretrained weights cannot be obtained here
  (offline, no mirror, not imported); an *extra* arm may be skipped, visibly.
- ``RunMismatchError``: a run folder holds a run whose config, data or splits differ
  from the one asked for; the user picks another ``--out``.
- ``InputError``: an input file, folder or manifest cannot be used.
"""

from __future__ import annotations


class MedtlError(Exception):
    """Base class of every error medtl raises on purpose."""


class ConfigError(MedtlError, ValueError):
    """A config file or a ``--set`` override is invalid."""


class UnknownNameError(ConfigError):
    """A name in the config or on the command line refers to nothing that exists (message has the closest match)."""


class WeightsError(MedtlError):
    """A weight file is corrupt, fails its hash check, or is unsafe to load."""


class WeightsUnavailableError(WeightsError):
    """Published pretrained weights are not available on this machine (offline, not cached, not imported)."""


class RunMismatchError(MedtlError):
    """The run folder holds a run that no longer matches the config, data or splits asked for."""


class TrainingDivergedError(MedtlError):
    """The training loss became NaN or infinite; the fold stops, naming the epoch and the cases of the batch."""


class OutsideOutputError(MedtlError):
    """A write or delete would land outside the output folder (a hostile id or a link); always refused."""


class InputError(MedtlError, ValueError):
    """An input file, folder or manifest cannot be used.

    ``reason`` is the stable reason code (see ``medtl.io.reasons``) when one applies.
    """

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        self.reason = reason


class MedtlWarning(UserWarning):
    """A recorded, visible warning (never a silent fallback)."""
