"""StoredMessage: one message as the Memory and LMDB stores keep it.

The Memory store holds these objects in a dict; the LMDB store packs them into values
(:mod:`localqueue.stores._lmdb_format`). ``state`` is the stored state code of the
store contract (``WAITING``, ``INFLIGHT``, ``DEAD``); the effective one a :data:`Row`
shows depends on the clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from localqueue.errors import LeaseLostError, MessageNotFoundError
from localqueue.history import HistoryRow, encode_output
from localqueue.stores.base import DEAD, INFLIGHT, WAITING, Row, effective_state

if TYPE_CHECKING:
    from localqueue.outcome import Settlement

__all__ = ["StoredMessage", "held"]

M = TypeVar("M", bound="StoredMessage")


@dataclass(slots=True)
class StoredMessage:
    id: str
    queue: str
    value: bytes
    state: int
    attempts: int
    seq: int  # enqueue order: ties between equal visibility times go to the older message
    enqueued_at: float
    available_at: float | None
    leased_at: float | None = None
    lease_expires_at: float | None = None
    leased_by: str | None = None
    lease_token: str | None = None
    last_error: bytes | None = None
    failed_at: float | None = None
    dead_at: float | None = None
    key: str | None = None
    priority: int = 0
    first_started_at: float | None = None
    errors: list[bytes] | None = None  # every attempt's error, while a history is kept
    group: str | None = None

    def lease_order(self) -> tuple[int, float, int]:
        """Sorts visible messages the way ``lease`` hands them out (see the contract)."""
        return (-self.priority, self.visible_at(), self.seq)

    def replace(self, value: bytes, priority: int, available_at: float, group: str | None) -> None:
        """What ``put_keyed(on_conflict="replace")`` does to a waiting holder."""
        self.value, self.priority, self.available_at = value, priority, available_at
        self.group = group

    def live_lease(self, now: float) -> bool:
        """Whether this message is under a lease that has not expired (what the limits
        of a queue count)."""
        return (
            self.state == INFLIGHT
            and self.lease_expires_at is not None
            and (self.lease_expires_at > now)
        )

    def visible_at(self) -> float:
        """When ``lease`` may hand this message out (not meaningful for a dead one)."""
        when = self.lease_expires_at if self.state == INFLIGHT else self.available_at
        assert when is not None
        return when

    def effective_state(self, now: float) -> str:
        return effective_state(self.state, self.visible_at(), now)

    def lease(self, now: float, lease_timeout: float, leased_by: str | None, token: str) -> None:
        self.state = INFLIGHT
        self.attempts += 1
        if self.first_started_at is None:
            self.first_started_at = now
        self.leased_at, self.lease_expires_at = now, now + lease_timeout
        self.leased_by, self.lease_token = leased_by, token

    def clear_lease(self) -> None:
        self.leased_at = self.lease_expires_at = None
        self.leased_by = self.lease_token = None

    def release(self, now: float, delay: float, error: bytes | None) -> None:
        """Back to waiting after ``delay``, with ``error`` as the last one if given."""
        self.state, self.available_at = WAITING, now + delay
        self.clear_lease()
        if error is not None:
            self.last_error, self.failed_at = error, now

    def bury(self, now: float, error: bytes | None) -> None:
        """Into the dead letters, with ``error`` as the last one if given."""
        self.state, self.dead_at = DEAD, now
        self.clear_lease()
        if error is not None:
            self.last_error, self.failed_at = error, now

    def revive(self, now: float, delay: float) -> None:
        """A dead letter back to waiting after ``delay``."""
        self.state, self.dead_at, self.available_at = WAITING, None, now + delay

    def history_row(
        self, status: str, now: float, settlement: Settlement | None, error: bytes | None
    ) -> HistoryRow:
        """The history record of this message, acked or dead-lettered (``status``) now,
        with what ``settlement`` says of its last attempt; ``error`` is that attempt's
        (appended to the errors of the earlier ones)."""
        errors = [*(self.errors or []), *([error] if error is not None else [])]
        return HistoryRow(
            self.id,
            self.queue,
            self.key,
            self.value,
            status,
            self.attempts,
            self.enqueued_at,
            self.first_started_at,
            now,
            None if settlement is None else settlement.duration,
            self.leased_by,
            None if settlement is None else settlement.exit_code,
            None if status == "acked" else error or self.last_error,
            b"[" + b",".join(errors) + b"]" if errors else None,
            None if settlement is None else encode_output(settlement.output),
        )

    def row(self, now: float) -> Row:
        return Row(
            self.id,
            self.queue,
            self.value,
            self.effective_state(now),
            self.attempts,
            self.enqueued_at,
            self.available_at,
            self.leased_at,
            self.lease_expires_at,
            self.leased_by,
            self.lease_token,
            self.last_error,
            self.failed_at,
            self.dead_at,
            self.key,
            self.priority,
            self.group,
        )


def held(record: M | None, queue: str, message_id: str, token: str | None) -> M:
    """``record`` (message ``message_id`` of ``queue`` as found, or None) if the caller
    holding ``token`` may settle it, else the store contract's error."""
    if record is None:
        if token is None:
            raise MessageNotFoundError(f"no message {message_id!r} in queue {queue!r}")
        raise LeaseLostError(f"message {message_id!r} is no longer leased (already settled)")
    if record.state != INFLIGHT or (token is not None and record.lease_token != token):
        raise LeaseLostError(f"lease on message {message_id!r} was lost")
    return record
