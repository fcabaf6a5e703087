"""Where a cold stop (a second SIGINT/SIGTERM) may interrupt the worker, and where not.

The worker's signal handler raises :class:`~localqueue.cli.worker.ColdStop` into whatever
the main thread is running. A few steps must not be cut in half: between the fork of a
``queue exec`` job and the moment the worker knows its pid (inside ``subprocess.Popen``)
an exception would leave the job running with nobody to stop it. Such steps run under
:func:`shielded`; an interrupt arriving there is held and raised as the step ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["interrupt", "shielded"]

_depth = 0
_held: BaseException | None = None


def interrupt(exc: BaseException) -> None:
    """Raise ``exc`` now, or when the current shielded step ends."""
    global _held
    if _depth:
        _held = exc
        return
    raise exc


@contextmanager
def shielded() -> Iterator[None]:
    global _depth, _held
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if not _depth and _held is not None:
            held, _held = _held, None
            raise held
