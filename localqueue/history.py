"""The history of finished messages (issue 28): what a store keeps of a message that
was acked or dead-lettered while its queue's retention was on, and its JSON shape.

A store returns a :data:`HistoryRow` (bytes and timestamps, as ``Row`` is for live
messages); :func:`history_dict` decodes it into the shape ``queue history`` prints.
"""

from __future__ import annotations

from collections import namedtuple

TYPE_CHECKING = False  # typing costs start-up time; mypy still reads these imports
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = [
    "HISTORY_FIELDS",
    "HISTORY_STATUSES",
    "PRUNE_BATCH",
    "Deferred",
    "HistoryRow",
    "encode_output",
    "history_dict",
]

#: The statuses a record can have: how its message ended.
HISTORY_STATUSES = ("acked", "dead")

#: How many records one pruning step deletes at most (one short transaction).
PRUNE_BATCH = 100

#: One finished message as a store keeps it.
HistoryRow = namedtuple(
    "HistoryRow",
    [
        "id",  # str: the message's id
        "queue",  # str
        "key",  # str | None: its deduplication key
        "value",  # bytes: the JSON-encoded value
        "status",  # "acked" | "dead"
        "attempts",  # int: times leased
        "enqueued_at",  # float
        "first_started_at",  # float | None: its first lease (None: leased before the history step)
        "finished_at",  # float: when it was acked or dead-lettered
        "duration",  # float | None: seconds the last attempt ran, as its worker measured
        "worker",  # str | None: who held it last (leased_by)
        "exit_code",  # int | None: the last attempt's exit code (queue exec)
        "error",  # bytes | None: the JSON-encoded last error
        "errors",  # bytes | None: a JSON array of every attempt's error, oldest first
        "output",  # bytes | None: JSON, the last attempt's output tail or return value
    ],
)
HISTORY_FIELDS: tuple[str, ...] = HistoryRow._fields


class Deferred:
    """An output worked out only if a history record is written: ``make()`` gives the
    value (``queue exec`` keeps its job's output tails this way, so that a queue without
    history pays nothing for them)."""

    __slots__ = ("make",)

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


def encode_output(output: Any) -> bytes | None:
    """A settlement's ``output`` as its history record keeps it (None: none): JSON, or
    the ``repr`` of a value that is not JSON (a handler may return anything); a
    :class:`Deferred` is worked out first. Stores call this only when they write a
    record, so a queue that keeps no history never encodes an output."""
    if type(output) is Deferred:
        output = output.make()
    if output is None:
        return None
    from localqueue import codec

    try:
        return codec.encode(output)
    except (TypeError, ValueError):
        return codec.encode(repr(output))


def history_dict(row: HistoryRow) -> dict[str, Any]:
    """The JSON shape of one record (``queue history``, ``queue inspect`` of a finished
    id): its fields with ``value``, ``error``, ``errors`` and ``output`` decoded, and
    ``"state": "finished"``."""
    from localqueue.codec import decode

    record = row._asdict()
    for name in ("value", "error", "errors", "output"):
        if record[name] is not None:
            record[name] = decode(record[name])
    if record["errors"] is None:
        record["errors"] = []
    return {"id": record.pop("id"), "queue": record.pop("queue"), "state": "finished", **record}
