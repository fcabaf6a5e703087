"""Named exit codes, and the one place that turns an exception into one of them.

Commands raise library errors (``localqueue.errors``) or :class:`CliError`; ``app.main``
catches them here, prints ``localqueue: error: ...`` on stderr and exits with the code.
"""

from __future__ import annotations

import sys

__all__ = [
    "DATA_ERROR",
    "EMPTY",
    "ERROR",
    "INTERRUPTED",
    "JOBS_DEAD",
    "JOBS_RETRYING",
    "NOT_FOUND",
    "OK",
    "OUTPUT_LOST",
    "STORE_BUSY",
    "USAGE",
    "CliError",
    "UsageError",
    "code_for",
    "describe",
    "error",
    "note",
    "report",
    "warning",
]

OK = 0
ERROR = 1  # runtime error
USAGE = 2  # bad flags, invalid queue name, unimportable handler, missing command
EMPTY = 3  # nothing to pop, or --timeout elapsed
NOT_FOUND = 4  # unknown message id, wrong state, stale --lease-token, a key already held
JOBS_DEAD = 5  # a draining worker dead-lettered at least one message it handled
JOBS_RETRYING = 6  # a draining worker released failed messages for a later attempt (none dead)
OUTPUT_LOST = 7  # the messages were committed, but their output could not be written
DATA_ERROR = 65  # invalid input data; nothing was written (sysexits EX_DATAERR)
STORE_BUSY = 75  # store locked past its busy timeout; try again (sysexits EX_TEMPFAIL)
INTERRUPTED = 130  # a second SIGINT/SIGTERM stopped a worker mid-message


class CliError(Exception):
    """An error a command reports as ``localqueue: error: <message>`` with ``code``."""

    def __init__(self, message: str, code: int = ERROR) -> None:
        super().__init__(message)
        self.code = code


class UsageError(CliError):
    """A usage error (exit 2)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, USAGE)


def code_for(exc: BaseException) -> int | None:
    """The exit code for ``exc``, or None when it is not an error we expect."""
    from localqueue import errors
    from localqueue.config import ConfigError

    if isinstance(exc, CliError):
        return exc.code
    if isinstance(exc, errors.Empty):
        return EMPTY
    if isinstance(exc, errors.LeaseLostError | errors.MessageNotFoundError | errors.KeyHeldError):
        return NOT_FOUND
    if isinstance(exc, errors.StoreLockedError):
        return STORE_BUSY
    if isinstance(exc, errors.InvalidQueueNameError | ConfigError):
        return USAGE
    if isinstance(exc, errors.LocalQueueError):
        return ERROR
    if isinstance(exc, ValueError):  # negative delays/timeouts from the library
        return USAGE
    return None


def describe(exc: BaseException) -> str:
    """The text of a diagnostic for ``exc``."""
    text = str(exc)
    return text if text else type(exc).__name__


def report(exc: BaseException) -> int:
    """Print the diagnostic for ``exc`` (when it has a message) and return its exit code."""
    code = code_for(exc)
    if code is None:
        code = ERROR
        message = f"unexpected {type(exc).__name__}: {exc}"
    else:
        message = describe(exc)
    if code != EMPTY or isinstance(exc, CliError):  # an empty queue is an answer, not news
        error(message)
    return code


def error(message: str) -> None:
    """Write ``localqueue: error: message`` to stderr."""
    note(f"error: {message}")


def warning(message: str) -> None:
    """Write ``localqueue: warning: message`` to stderr."""
    note(f"warning: {message}")


def note(message: str) -> None:
    """Write ``localqueue: message`` to stderr (what a person should know)."""
    try:
        sys.stderr.write(f"localqueue: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
