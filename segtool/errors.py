"""Exceptions whose message is what the user reads: one line, naming the thing at fault."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none): what goes
    after "cannot read (...)" when a library's error becomes one of segtool's lines."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class SegtoolError(Exception):
    """Base class: the CLI prints ``str(error)`` on one line and moves on or exits."""

    exit_code = 1


class UsageError(SegtoolError, ValueError):
    """The command line or API call asks for something that cannot work (a ValueError, as in MediaPipe)."""

    exit_code = 2


class InputError(SegtoolError):
    """One input (image, video, path list) cannot be read; other inputs go on."""


class OutputError(SegtoolError):
    """An output cannot be written (permissions, full disk, unknown format)."""


class OutputStorageError(OutputError):
    """The storage under the outputs refuses every write (full, over quota, read-only).

    No later input could succeed either, so a batch stops here instead of failing each one.
    """


class ModelError(SegtoolError):
    """A model is unknown, missing, damaged or not what its name says."""


class ModelNotInstalledError(ModelError):
    """A known model that needs `segtool models install NAME` first."""


class ClusterError(SegtoolError):
    """The Ray cluster cannot be reached, or it failed the job as a whole (--engine ray)."""


class ProviderError(SegtoolError):
    """An execution provider was asked for that onnxruntime does not offer here."""

    exit_code = 2
