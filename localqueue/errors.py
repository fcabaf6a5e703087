"""The localqueue exception tree.

Every error localqueue raises on purpose derives from :class:`LocalQueueError`, so callers
can catch one class. The CLI maps these classes to exit codes in exactly one place
(``localqueue.cli.exit_codes``).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from queue import Empty, Full
else:
    # queue.Empty itself, from the C module: ``queue`` (and threading) stay unloaded on the
    # CLI's start-up path. queue.Full is loaded when first asked for (module __getattr__).
    try:
        from _queue import Empty
    except ImportError:  # an interpreter without the C module
        from queue import Empty

__all__ = [
    "Empty",
    "Full",
    "InvalidQueueNameError",
    "KeyHeldError",
    "LeaseLostError",
    "LocalQueueError",
    "MessageNotFoundError",
    "StoreError",
    "StoreLockedError",
    "StoreReplacedError",
]


class LocalQueueError(Exception):
    """Base class of every error localqueue raises on purpose."""


class InvalidQueueNameError(LocalQueueError, ValueError):
    """A queue name is not 1-128 characters of ``[A-Za-z0-9._-]``."""


class LeaseLostError(LocalQueueError):
    """The caller no longer holds the message's lease.

    Raised by ack / release / dead_letter / extend_lease when the lease token does not
    match: the lease expired and another worker leased the message, or the message was
    already acked, released or dead-lettered. Nothing was changed.
    """


class MessageNotFoundError(LocalQueueError, KeyError):
    """No message with that id (in that state) exists in the queue."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "message not found"


class KeyHeldError(LocalQueueError):
    """A deduplication key is held by another message of the queue (one that is ready,
    delayed or inflight): raised by ``put(..., on_conflict="error")`` and by
    ``requeue_dead`` of a dead letter whose key was taken meanwhile. Nothing was written.
    ``key`` is the key, ``message_id`` the id of the message holding it (None when the
    clash is between two dead letters being requeued together)."""

    def __init__(self, message: str, key: str, message_id: str | None = None) -> None:
        super().__init__(message)
        self.key = key
        self.message_id = message_id


class StoreError(LocalQueueError):
    """The store cannot be used: unreadable, corrupt, not a localqueue store, a newer
    schema version, disk full, read-only, or a missing optional backend."""


class StoreReplacedError(StoreError):
    """The store file was deleted or replaced while this process had it open: going on
    would write to a file nobody else sees, so a worker stops instead."""


class StoreLockedError(LocalQueueError):
    """The store stayed locked by another process past its busy timeout. Try again."""


def __getattr__(name: str) -> type[Exception]:
    if name == "Full":
        from queue import Full

        return Full
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
