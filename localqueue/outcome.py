"""How held messages end: :class:`Outcome` (the queue's words) and :class:`Settlement`
(the store's: ids and JSON bytes), for ``settle_many``.

Kept out of :mod:`localqueue.queue` and :mod:`localqueue.stores.base` so that commands
that never settle in batches (``queue add`` runs in shell loops) do not import
``typing``: 8 ms of a 20 ms start-up (``python -X importtime -c "import typing"``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from localqueue.message import QueueMessage

__all__ = ["SETTLE_ACTIONS", "Outcome", "Settlement"]

#: What :meth:`QueueStore.settle_many` can do with a held message (the words of the
#: workers' outcome lines).
SETTLE_ACTIONS = ("acked", "released", "dead")


class Settlement(NamedTuple):
    """One held message's outcome, for :meth:`QueueStore.settle_many`.

    ``action`` is one of :data:`SETTLE_ACTIONS`: ``"acked"`` deletes the message,
    ``"released"`` makes it visible again after ``delay`` seconds, ``"dead"`` moves it to
    the dead letters; ``error`` (JSON bytes) becomes ``last_error`` for the last two.
    ``then_put`` values (JSON bytes) are appended to queue ``to`` in the same
    transaction, only if this settlement is applied: a crash can neither lose them nor
    put them twice for one settlement.

    ``duration`` (seconds the attempt ran), ``exit_code`` and ``output`` (the tail of a
    command's output, or a handler's return value, as given: not yet JSON) go into the
    history record of an acked or dead-lettered message while its queue keeps a history
    (``keep``); the store encodes ``output`` (:func:`localqueue.history.encode_output`)
    only when it writes that record.
    """

    message_id: str
    lease_token: str | None
    action: str
    delay: float = 0.0
    error: bytes | None = None
    then_put: tuple[bytes, ...] = ()
    to: str | None = None
    duration: float | None = None
    exit_code: int | None = None
    output: Any = None


class Outcome(NamedTuple):
    """How a held message ends, for :meth:`PersistentQueue.settle_many`: ``status``
    ``"acked"``, ``"released"`` (visible again after ``delay`` seconds) or ``"dead"``;
    ``error`` becomes ``last_error`` (release, dead); ``then_put`` values go to queue
    ``to`` (this queue when None) in the same transaction. ``duration``, ``exit_code``
    and ``output`` (any JSON value, or a :class:`~localqueue.history.Deferred` one) are
    kept in the message's history record, if its queue keeps a history."""

    message: QueueMessage | str
    status: str
    delay: float = 0.0
    error: BaseException | dict[str, Any] | str | None = None
    then_put: Iterable[Any] = ()
    to: str | None = None
    duration: float | None = None
    exit_code: int | None = None
    output: Any = None
