"""QueueMessage and QueueStats: the message model and its JSON shape.

``QueueMessage.to_dict()`` is the one shape every API consumer and every CLI command
prints (SPEC "Message model").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

MessageState = Literal["ready", "delayed", "inflight", "dead"]

__all__ = ["MessageState", "QueueMessage", "QueueStats"]


@dataclass(slots=True, eq=False)
class QueueMessage:
    """One message as the store last saw it. ``value`` is the decoded JSON value."""

    id: str
    queue: str
    value: Any
    state: MessageState
    attempts: int
    enqueued_at: float
    available_at: float | None
    leased_at: float | None = None
    lease_expires_at: float | None = None
    leased_by: str | None = None
    lease_token: str | None = None
    last_error: dict[str, Any] | None = None
    failed_at: float | None = None
    dead_at: float | None = None

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


@dataclass(frozen=True, slots=True)
class QueueStats:
    """Counts of one queue's messages by state at one instant.

    ``ready`` counts messages a worker could lease now (including those whose lease
    expired), ``delayed`` those whose ``available_at`` is still in the future,
    ``inflight`` those under a live lease, ``dead`` the dead letters.
    """

    ready: int = 0
    delayed: int = 0
    inflight: int = 0
    dead: int = 0

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
