"""QueueMessage and QueueStats: the message model and its JSON shape.

``QueueMessage.to_dict()`` is the one shape every API consumer and every CLI command
prints (SPEC "Message model"). Plain slotted classes rather than dataclasses: this module
is on the start-up path of every ``localqueue`` command, and ``dataclasses`` drags in
``inspect``.
"""

from __future__ import annotations

from collections import namedtuple

TYPE_CHECKING = False  # typing costs start-up time; mypy still reads these imports

if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, Literal, TypeAlias

    MessageState: TypeAlias = Literal["ready", "delayed", "inflight", "dead"]

__all__ = [
    "AFTER_VALUE",
    "FIELDS",
    "LIMITS",
    "QueueMessage",
    "QueueSettings",
    "QueueStats",
    "Row",
    "json_lines",
]

#: One message as a store returns it (see :mod:`localqueue.stores.base`). Its fields
#: are a message's fields, in the order of ``to_dict()``; ``value`` and ``last_error`` are
#: still JSON bytes here and decoded in a :class:`QueueMessage`.
Row = namedtuple(  # typing.NamedTuple would cost typing's import time
    "Row",
    [
        "id",  # str
        "queue",  # str
        "value",  # bytes: the JSON-encoded value
        "state",  # "ready" | "delayed" | "inflight" | "dead": effective at the store's clock
        "attempts",  # int: times leased
        "enqueued_at",  # float
        "available_at",  # float | None
        "leased_at",  # float | None
        "lease_expires_at",  # float | None
        "leased_by",  # str | None
        "lease_token",  # str | None
        "last_error",  # bytes | None: the JSON-encoded error
        "failed_at",  # float | None
        "dead_at",  # float | None
        "key",  # str | None: the deduplication key given at enqueue
        "priority",  # int: higher is leased first (0 unless given)
        "group",  # str | None: the group, whose inflight messages --per-group limits
    ],
)
FIELDS: tuple[str, ...] = Row._fields

#: A queue's settings, kept in the store and obeyed by every worker and ``pop`` at each
#: lease (see :mod:`localqueue.stores.base`, "Queue settings"). ``paused``: the queue
#: leases nothing. ``max_inflight``: at most this many of its messages under a live lease
#: at once. ``rate`` per ``rate_period`` seconds: at most that many leases started in any
#: window of that length. ``per_group``: at most this many messages of one group under a
#: live lease at once. None: no such limit. A queue never given settings has the
#: defaults. ``_asdict()`` is its JSON shape.
QueueSettings = namedtuple(
    "QueueSettings",
    ["paused", "max_inflight", "rate", "rate_period", "per_group"],
    defaults=[False, None, None, None, None],
)
#: The limits of :class:`QueueSettings` (what ``set_limits`` sets), in the order a held
#: back lease names them.
LIMITS = ("max_inflight", "rate", "per_group")


class QueueMessage:
    """One message as the store last saw it. ``value`` is the decoded JSON value.

    ``duplicate`` is True on what ``put`` returns for a value it did not write because
    its key was held (the message holding it); it is not part of :meth:`to_dict`.
    """

    __slots__ = (*FIELDS, "duplicate")

    def __init__(
        self,
        id: str,
        queue: str,
        value: Any,
        state: MessageState,
        attempts: int,
        enqueued_at: float,
        available_at: float | None,
        leased_at: float | None = None,
        lease_expires_at: float | None = None,
        leased_by: str | None = None,
        lease_token: str | None = None,
        last_error: dict[str, Any] | None = None,
        failed_at: float | None = None,
        dead_at: float | None = None,
        key: str | None = None,
        priority: int = 0,
        group: str | None = None,
    ) -> None:
        self.id = id
        self.queue = queue
        self.value = value
        self.state = state
        self.attempts = attempts
        self.enqueued_at = enqueued_at
        self.available_at = available_at
        self.leased_at = leased_at
        self.lease_expires_at = lease_expires_at
        self.leased_by = leased_by
        self.lease_token = lease_token
        self.last_error = last_error
        self.failed_at = failed_at
        self.dead_at = dead_at
        self.key = key
        self.priority = priority
        self.group = group
        self.duplicate = False

    def to_dict(self) -> dict[str, Any]:
        """The SPEC shape, field for field, in a stable order."""
        return {
            "id": self.id,
            "queue": self.queue,
            "value": self.value,
            "state": self.state,
            "attempts": self.attempts,
            "enqueued_at": self.enqueued_at,
            "available_at": self.available_at,
            "leased_at": self.leased_at,
            "lease_expires_at": self.lease_expires_at,
            "leased_by": self.leased_by,
            "lease_token": self.lease_token,
            "last_error": self.last_error,
            "failed_at": self.failed_at,
            "dead_at": self.dead_at,
            "key": self.key,
            "priority": self.priority,
            "group": self.group,
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, QueueMessage):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in FIELDS)
        return f"QueueMessage({fields})"


class QueueStats:
    """Counts of one queue's messages by state at one instant (immutable).

    ``ready`` counts messages a worker could lease now (including those whose lease
    expired), ``delayed`` those whose ``available_at`` is still in the future,
    ``inflight`` those under a live lease, ``dead`` the dead letters.
    """

    __slots__ = ("dead", "delayed", "inflight", "ready")

    ready: int
    delayed: int
    inflight: int
    dead: int

    def __init__(self, ready: int = 0, delayed: int = 0, inflight: int = 0, dead: int = 0) -> None:
        set_ = object.__setattr__
        set_(self, "ready", ready)
        set_(self, "delayed", delayed)
        set_(self, "inflight", inflight)
        set_(self, "dead", dead)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"QueueStats is immutable; cannot set {name!r}")

    @property
    def total(self) -> int:
        return self.ready + self.delayed + self.inflight + self.dead

    def to_dict(self) -> dict[str, int]:
        return {
            "ready": self.ready,
            "delayed": self.delayed,
            "inflight": self.inflight,
            "dead": self.dead,
            "total": self.total,
        }

    def _key(self) -> tuple[int, int, int, int]:
        return (self.ready, self.delayed, self.inflight, self.dead)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, QueueStats):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (
            f"QueueStats(ready={self.ready}, delayed={self.delayed},"
            f" inflight={self.inflight}, dead={self.dead})"
        )


_PLAIN = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ._-")
# A row's JSON line is {"id":..., "queue":..., "value": <bytes>, <BETWEEN>, "last_error":
# <bytes>, <AFTER>}; the slices pick the fields after the value, between, and after.
_VALUE, _ERROR = FIELDS.index("value"), FIELDS.index("last_error")
#: A Row's fields after ``value`` (``row[AFTER_VALUE]``): what a QueueMessage built from
#: a row just written takes as it is, next to the caller's own value.
AFTER_VALUE = slice(_VALUE + 1, None)
_BETWEEN = slice(_VALUE + 1, _ERROR)
_AFTER_ERROR = slice(_ERROR + 1, None)
_KEY = FIELDS.index("key")
_BEFORE_KEY = slice(_VALUE + 1, _KEY)
_AFTER_KEY = slice(_KEY + 1, None)


def json_lines(rows: Sequence[Row]) -> bytes:
    """``to_dict()`` of each store row as JSON Lines, without decoding anything.

    The stored value (and last error) bytes are spliced in as they are, and what rows
    share (a batch from one ``put`` shares all but id and value) is encoded once; the
    result parses to exactly ``QueueMessage.to_dict()``. ``queue add`` prints 20,000
    messages this way in a few milliseconds (bench: ``cli``, stdin).
    """
    from localqueue.codec import decode, dumps_line

    if not rows:
        return b""
    first = rows[0]
    queue, rest = first.queue, first[AFTER_VALUE]
    ids = [row.id for row in rows]
    same = first.last_error is None and all(
        row.queue == queue and row[AFTER_VALUE] == rest for row in rows
    )
    if not same and first.last_error is None and first.key is not None:
        # A keyed put: only ids, values and keys differ (each key its own JSON string).
        before, after = first[_BEFORE_KEY], first[_AFTER_KEY]
        same_but_keys = all(
            row.queue == queue and row[_BEFORE_KEY] == before and row[_AFTER_KEY] == after
            for row in rows
        )
        if same_but_keys and _PLAIN.issuperset("".join(ids)):
            head = b'","queue":' + dumps_line(queue)[:-1] + b',"value":'
            middle = b"," + _members(first, _BEFORE_KEY) + b',"key":'
            tail = b"," + _members(first, _AFTER_KEY) + b"}\n"
            return b"".join(
                [
                    b'{"id":"' + i.encode() + head + row.value + middle
                    + dumps_line(row.key)[:-1] + tail
                    for i, row in zip(ids, rows, strict=True)
                ]
            )  # fmt: skip
    if same and _PLAIN.issuperset("".join(ids)):
        # Only ids and values differ (a put): b'{"id":"' + id + head + value + tail, each.
        head = b'","queue":' + dumps_line(queue)[:-1] + b',"value":'
        tail = b"," + _members(first, AFTER_VALUE) + b"}\n"
        between = tail + b'{"id":"'
        body = between.join(
            [i.encode() + head + row.value for i, row in zip(ids, rows, strict=True)]
        )
        return b'{"id":"' + body + tail
    out: list[bytes] = []
    shared: tuple[Any, ...] | None = None
    head = middle = tail = b""
    for row in rows:
        if not _PLAIN.issuperset(row.id):  # store ids are plain; escape anything else
            error = None if row.last_error is None else decode(row.last_error)
            decoded = row._replace(value=decode(row.value), last_error=error)
            out.append(dumps_line(QueueMessage(*decoded).to_dict()))
            continue
        now_shared = (row.queue, *row[_BETWEEN], *row[_AFTER_ERROR])
        if now_shared != shared:
            shared = now_shared
            head = b'","queue":' + dumps_line(row.queue)[:-1] + b',"value":'
            middle = b"," + _members(row, _BETWEEN) + b',"last_error":'
            tail = b"," + _members(row, _AFTER_ERROR) + b"}\n"
        error_json = b"null" if row.last_error is None else row.last_error
        out.append(b'{"id":"' + row.id.encode() + head + row.value + middle + error_json + tail)
    return b"".join(out)


def _members(row: Row, fields: slice) -> bytes:
    """``"name":value,...`` of these fields of ``row`` (an object without its braces)."""
    from localqueue.codec import dumps_line

    members = dict(zip(FIELDS[fields], row[fields], strict=True))
    return dumps_line(members)[1:-2]  # drop "{" and "}\n"
