"""MemoryQueueStore: the whole store contract in one process's memory.

Meant for tests and throwaway work. It keeps real state (leases, tokens, dead letters),
so code tested against it behaves the same on SQLite; nothing survives the process.
"""

from __future__ import annotations

import itertools
import secrets
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from localqueue.errors import Full, MessageNotFoundError
from localqueue.message import QueueStats
from localqueue.stores.base import DEAD, PEEK_STATES, WAITING, QueueStore, Row
from localqueue.stores.record import StoredMessage, held

if TYPE_CHECKING:
    from localqueue.outcome import Settlement

__all__ = ["MemoryQueueStore"]


class MemoryQueueStore(QueueStore):
    """All queues in a dict, guarded by one lock (reentrant: a batch holds it across the
    steps it is made of, so other threads see all of it or none)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._records: dict[str, StoredMessage] = {}
        self._known: set[str] = set()  # every queue name put to, also once drained
        self._seq = itertools.count(1)
        self._tag = secrets.token_hex(4)

    def __repr__(self) -> str:
        return "MemoryQueueStore()"

    def _find(self, queue: str, message_id: str) -> StoredMessage | None:
        record = self._records.get(message_id)
        return record if record is not None and record.queue == queue else None

    def _held(self, queue: str, message_id: str, token: str | None) -> StoredMessage:
        return held(self._find(queue, message_id), queue, message_id, token)

    def put(
        self, queue: str, values: Sequence[bytes], *, delay: float = 0.0, maxsize: int = 0
    ) -> list[Row]:
        with self._lock:
            now = self.clock()
            if maxsize > 0:
                pending = sum(
                    1 for r in self._records.values() if r.queue == queue and r.state == WAITING
                )
                if pending + len(values) > maxsize:
                    raise Full
            rows = []
            for value in values:
                seq = next(self._seq)
                message_id = f"{self._tag}-{seq}"
                record = StoredMessage(
                    message_id, queue, bytes(value), WAITING, 0, seq, now, now + delay
                )
                self._records[record.id] = record
                rows.append(record.row(now))
            if values:
                self._known.add(queue)
            return rows

    def settle_many(
        self,
        queue: str,
        settlements: Sequence[Settlement],
        *,
        lease: int = 0,
        lease_timeout: float = 30.0,
        leased_by: str | None = None,
    ) -> tuple[list[bool], list[Row]]:
        with self._lock:
            return super().settle_many(
                queue, settlements, lease=lease, lease_timeout=lease_timeout, leased_by=leased_by
            )

    def lease_many(
        self, queue: str, n: int, *, lease_timeout: float, leased_by: str | None
    ) -> list[Row]:
        with self._lock:
            return super().lease_many(queue, n, lease_timeout=lease_timeout, leased_by=leased_by)

    def extend_leases(
        self,
        queue: str,
        leases: Sequence[tuple[str, str | None]],
        seconds: float,
        *,
        wait: float | None = None,
    ) -> list[float | None]:
        with self._lock:
            return super().extend_leases(queue, leases, seconds)

    def lease(self, queue: str, *, lease_timeout: float, leased_by: str | None) -> Row | None:
        with self._lock:
            now = self.clock()
            visible = [
                r
                for r in self._records.values()
                if r.queue == queue and r.state != DEAD and r.visible_at() <= now
            ]
            if not visible:
                return None
            record = min(visible, key=lambda r: (r.visible_at(), r.seq))
            record.lease(now, lease_timeout, leased_by, secrets.token_hex(16))
            return record.row(now)

    def ack(self, queue: str, message_id: str, lease_token: str | None) -> None:
        with self._lock:
            self._held(queue, message_id, lease_token)
            del self._records[message_id]

    def release(
        self,
        queue: str,
        message_id: str,
        lease_token: str | None,
        *,
        delay: float = 0.0,
        error: bytes | None = None,
    ) -> Row:
        with self._lock:
            record = self._held(queue, message_id, lease_token)
            now = self.clock()
            record.release(now, delay, error)
            return record.row(now)

    def dead_letter(
        self, queue: str, message_id: str, lease_token: str | None, *, error: bytes | None = None
    ) -> Row:
        with self._lock:
            record = self._held(queue, message_id, lease_token)
            now = self.clock()
            record.bury(now, error)
            return record.row(now)

    def extend_lease(
        self, queue: str, message_id: str, lease_token: str | None, seconds: float
    ) -> Row:
        with self._lock:
            record = self._held(queue, message_id, lease_token)
            now = self.clock()
            record.lease_expires_at = now + seconds
            return record.row(now)

    def requeue_dead(self, queue: str, message_id: str, *, delay: float = 0.0) -> Row:
        with self._lock:
            record = self._find(queue, message_id)
            if record is None or record.state != DEAD:
                raise MessageNotFoundError(f"no dead letter {message_id!r} in queue {queue!r}")
            now = self.clock()
            record.revive(now, delay)
            return record.row(now)

    def requeue_all_dead(self, queue: str, *, delay: float = 0.0) -> int:
        with self._lock:
            now = self.clock()
            dead = [r for r in self._records.values() if r.queue == queue and r.state == DEAD]
            for record in dead:
                record.revive(now, delay)
            return len(dead)

    def purge(self, queue: str, *, dead_only: bool = False) -> int:
        with self._lock:
            doomed = [
                r.id
                for r in self._records.values()
                if r.queue == queue and (r.state == DEAD or not dead_only)
            ]
            for message_id in doomed:
                del self._records[message_id]
            return len(doomed)

    def get(self, queue: str, message_id: str) -> Row | None:
        with self._lock:
            record = self._find(queue, message_id)
            return None if record is None else record.row(self.clock())

    def dead_letters(self, queue: str, limit: int | None = None) -> list[Row]:
        with self._lock:
            now = self.clock()
            dead = sorted(
                (r for r in self._records.values() if r.queue == queue and r.state == DEAD),
                key=lambda r: (r.dead_at, r.seq),
            )
            return [r.row(now) for r in dead[:limit]]

    def _count(self, records: list[StoredMessage], now: float) -> QueueStats:
        counts = {"ready": 0, "delayed": 0, "inflight": 0, "dead": 0}
        for record in records:
            counts[record.effective_state(now)] += 1
        return QueueStats(**counts)

    def stats(self, queue: str) -> QueueStats:
        with self._lock:
            mine = [r for r in self._records.values() if r.queue == queue]
            return self._count(mine, self.clock())

    def queues(self) -> dict[str, QueueStats]:
        with self._lock:
            now = self.clock()
            by_queue: dict[str, list[StoredMessage]] = {}
            for record in self._records.values():
                by_queue.setdefault(record.queue, []).append(record)
            return {name: self._count(by_queue[name], now) for name in sorted(by_queue)}

    def peek(self, queue: str, *, state: str | None = None, limit: int | None = None) -> list[Row]:
        if state is not None and state not in PEEK_STATES:
            raise ValueError(f"state must be one of {', '.join(PEEK_STATES)}, got {state!r}")
        with self._lock:
            now = self.clock()
            found = sorted(
                (r for r in self._records.values() if r.queue == queue), key=lambda r: r.seq
            )
            rows = [r.row(now) for r in found if state is None or r.effective_state(now) == state]
        return rows if limit is None else rows[:limit]

    def delete(self, queue: str, message_ids: Sequence[str]) -> int:
        ids = list(dict.fromkeys(message_ids))
        with self._lock:
            missing = [i for i in ids if i not in self._records or self._records[i].queue != queue]
            if missing:
                raise MessageNotFoundError(
                    f"no message {', '.join(map(repr, missing))} in queue {queue!r}"
                )
            for message_id in ids:
                del self._records[message_id]
        return len(ids)

    def known_queues(self) -> list[str]:
        with self._lock:
            return sorted(self._known)

    def next_visible_in(self, queue: str) -> float | None:
        with self._lock:
            times = [
                r.visible_at()
                for r in self._records.values()
                if r.queue == queue and r.state != DEAD
            ]
            if not times:
                return None
            return max(0.0, min(times) - self.clock())
