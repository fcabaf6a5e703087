"""QueueMessage and QueueStats: the message model and its JSON shape.

``QueueMessage.to_dict()`` is the one shape every API consumer and every CLI command
prints (SPEC "Message model"). Plain slotted classes rather than dataclasses: this module
is on the start-up path of every ``localqueue`` command, and ``dataclasses`` drags in
``inspect``.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs start-up time; mypy still reads these imports

if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, Literal, TypeAlias

    MessageState: TypeAlias = Literal["ready", "delayed", "inflight", "dead"]

__all__ = ["QueueMessage", "QueueStats", "json_lines"]

FIELDS = (
    "id",
    "queue",
    "value",
    "state",
    "attempts",
    "enqueued_at",
    "available_at",
    "leased_at",
    "lease_expires_at",
    "leased_by",
    "lease_token",
    "last_error",
    "failed_at",
    "dead_at",
)


class QueueMessage:
    """One message as the store last saw it. ``value`` is the decoded JSON value."""

    __slots__ = FIELDS

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


def json_lines(rows: Sequence[tuple[Any, ...]]) -> bytes:
    """``to_dict()`` of each store row as JSON Lines, without decoding anything.

    The stored value (and last error) bytes are spliced in as they are, and what rows
    share (a batch from one ``put`` shares all but id and value) is encoded once; the
    result parses to exactly ``QueueMessage.to_dict()``. ``queue add`` prints 20,000
    messages this way in a few milliseconds.
    """
    from localqueue.codec import decode, dumps_line

    if not rows:
        return b""
    first = rows[0]
    queue, rest = first[1], first[3:]
    ids = [row[0] for row in rows]
    same = first[11] is None and all(row[1] == queue and row[3:] == rest for row in rows)
    if same and _PLAIN.issuperset("".join(ids)):
        # Only ids and values differ (a put): b'{"id":"' + id + head + value + tail, each.
        head = b'","queue":' + dumps_line(queue)[:-1] + b',"value":'
        tail = b"," + _members(FIELDS[3:], rest) + b"}\n"
        between = tail + b'{"id":"'
        body = between.join([i.encode() + head + row[2] for i, row in zip(ids, rows, strict=True)])
        return b'{"id":"' + body + tail
    out: list[bytes] = []
    shared: tuple[Any, ...] | None = None
    head = middle = tail = b""
    for row in rows:
        now_shared = (row[1], *row[3:11], *row[12:])
        if now_shared != shared:
            shared = now_shared
            head = b'","queue":' + dumps_line(row[1])[:-1] + b',"value":'
            middle = b"," + _members(FIELDS[3:11], row[3:11]) + b',"last_error":'
            tail = b"," + _members(FIELDS[12:], row[12:]) + b"}\n"
        message_id = row[0]
        if not _PLAIN.issuperset(message_id):  # store ids are plain; escape anything else
            fields = list(row)
            fields[2] = decode(row[2])
            fields[11] = None if row[11] is None else decode(row[11])
            out.append(dumps_line(QueueMessage(*fields).to_dict()))
            continue
        error = row[11]
        out.append(
            b'{"id":"'
            + message_id.encode()
            + head
            + row[2]
            + middle
            + (b"null" if error is None else error)
            + tail
        )
    return b"".join(out)


def _members(names: tuple[str, ...], values: tuple[Any, ...]) -> bytes:
    """``"name":value,...`` for JSON-native values (an object without its braces)."""
    from localqueue.codec import dumps_line

    return dumps_line(dict(zip(names, values, strict=True)))[1:-2]  # drop "{" and "}\n"
